"""--backend vllm without vLLM: the one-line error, and the engine's inputs through a STAND-IN `vllm` module.

The stand-in (`StandinVllm` below, installed as `sys.modules["vllm"]`) is not vLLM: it records what `vllm.LLM` and
`SamplingParams` are given and answers `LLM.chat` with a text naming each conversation's first image, so the tests
check the engine settings (tensor parallelism, images per prompt), the decoding mapping, the chunking and that every
output goes back to its own item. The real engine runs in bench/gpu/bench_engines.py on a GPU machine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sys
import types
from pathlib import Path

import pytest

import qwen
from vlmkit.ids import item_id
from vlmkit.io import InputError, read_json


class StandinVllm(types.ModuleType):
    """A stand-in for the `vllm` package: records engine and sampling arguments and every chat call."""

    def __init__(self, truncate_first: bool = False):
        super().__init__("vllm")
        self.__version__ = "0.0-standin"
        self.engines: list[dict] = []
        self.chats: list[list] = []
        self.params: list[dict] = []
        module = self

        class SamplingParams:
            def __init__(self, **kwargs):
                module.params.append(kwargs)

        class LLM:
            def __init__(self, **kwargs):
                module.engines.append(kwargs)

            def chat(self, conversations, sampling_params=None, use_tqdm=True):
                module.chats.append(conversations)
                outputs = []
                for i, conversation in enumerate(conversations):
                    url = conversation[0]["content"][0]["image_url"]["url"]
                    text = "caption of " + hashlib.sha256(url.encode()).hexdigest()[:8]
                    finish = "length" if truncate_first and len(module.chats) == 1 and i == 0 else "stop"
                    completion = types.SimpleNamespace(text=text, finish_reason=finish)
                    outputs.append(types.SimpleNamespace(request_id=str(i), outputs=[completion]))
                return outputs

        self.LLM, self.SamplingParams = LLM, SamplingParams


def argv(model: Path, images: Path, out: Path, *extra: str) -> list[str]:
    return ["--backend", "vllm", "--model_path", str(model), "--input_dir", str(images), "--output_dir", str(out),
            "--max_new_tokens", "7", "--no_progress", *extra]


def test_without_vllm_the_run_stops_with_one_line(tiny_qwen2_5_vl_dir: Path, repo_root: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError, as on a machine without it
    with pytest.raises(InputError, match=r"^vllm is not installed: it is GPU-only, install it in its own environment"):
        qwen.main(argv(tiny_qwen2_5_vl_dir, repo_root / "examples" / "multiview_images", tmp_path / "out"))
    assert not (tmp_path / "out" / "image_Qwen2.5-VL-tiny.json").exists()


def test_engine_inputs_chunks_and_results_mapped_back(tiny_qwen2_5_vl_dir: Path, repo_root: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    standin = StandinVllm(truncate_first=True)
    monkeypatch.setitem(sys.modules, "vllm", standin)
    images = repo_root / "examples" / "multiview_images"
    out = tmp_path / "out"
    assert qwen.main(argv(tiny_qwen2_5_vl_dir, images, out, "--tp", "2", "--engine_chunk", "4", "--batch_size", "1",
                          "--views", "front,top")) == 0
    (engine,) = standin.engines
    assert engine == {"model": str(tiny_qwen2_5_vl_dir), "tensor_parallel_size": 2,
                      "limit_mm_per_prompt": {"image": 2}, "gpu_memory_utilization": 0.9, "seed": 0}
    assert standin.params == [{"max_tokens": 7, "min_tokens": 0, "temperature": 0.0, "top_p": 1.0, "top_k": -1,
                               "repetition_penalty": 1.0, "seed": 0}]
    assert [len(c) for c in standin.chats] == [4, 2]  # chunks of --engine_chunk, not of --batch_size
    folders = sorted(p for p in images.iterdir() if p.is_dir())
    records = read_json(out / "image_Qwen2.5-VL-tiny.json")
    for folder, record in zip(folders, records, strict=True):
        url = "data:image/jpeg;base64," + base64.b64encode((folder / "front.jpg").read_bytes()).decode()
        assert item_id(record["images"][0]) == item_id(folder.name)
        assert record["caption"] == "caption of " + hashlib.sha256(url.encode()).hexdigest()[:8]
    first = standin.chats[0][0][0]["content"]
    assert [p["type"] for p in first] == ["image_url", "image_url", "text"]
    report = read_json(out / "Qwen2.5-VL-tiny_caption_generation_report.json")
    assert report["truncated"]["count"] == 1 and report["truncated"]["items"][0]["id"] == item_id(folders[0].name)
    assert report["settings"]["backend"]["backend"] == "vllm" and report["settings"]["backend"]["tp"] == 2


def test_a_folder_vllm_cannot_load_is_refused_before_the_engine_starts(tiny_qwen2_5_vl_dir: Path, repo_root: Path,
                                                                       tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    standin = StandinVllm()
    monkeypatch.setitem(sys.modules, "vllm", standin)
    model = tmp_path / "custom"
    shutil.copytree(tiny_qwen2_5_vl_dir, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "architectures": ["MyCustomVLM"],
                                                   "auto_map": {"AutoModel": "modeling_custom.Model"}}))
    with pytest.raises(InputError, match="not loadable by vLLM as it is: config.json has auto_map"):
        qwen.main(argv(model, repo_root / "examples" / "multiview_images", tmp_path / "out"))
    assert standin.engines == []
    # a class vLLM implements itself with config code in the folder (InternVL's original format): trust_remote_code
    (model / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoConfig": "configuration_x.Config"}}))
    assert qwen.main(argv(model, repo_root / "examples" / "multiview_images", tmp_path / "out2", "--tp", "1")) == 0
    assert standin.engines[0]["trust_remote_code"] is True
    with pytest.raises(InputError, match="--adapter_path: merge the adapter first"):
        qwen.main(argv(tiny_qwen2_5_vl_dir, repo_root / "examples" / "multiview_images", tmp_path / "out",
                       "--adapter_path", str(model)))
