"""internvl.py: the transformers backend on a tiny InternVL-hf checkpoint, and the lmdeploy adapter against a FAKE
lmdeploy module (lmdeploy is GPU-only; this checks what we send to its pipeline, not lmdeploy itself)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

import internvl
from vlmkit.io import InputError, read_json
from vlmkit.multiview import discover_objects
from vlmkit.records import load_caption_records

SHORT_PROMPT = "Describe the vase ({views_phrase})."


def internvl_argv(model: Path, input_dir: Path, output_dir: Path, prompt_file: Path, *extra: str) -> list[str]:
    return ["--model_path", str(model), "--input_dir", str(input_dir), "--output_dir", str(output_dir),
            "--prompt_file", str(prompt_file), "--max_new_tokens", "6", "--no_progress", *extra]


@pytest.fixture()
def prompt_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompt.txt"
    path.write_text(SHORT_PROMPT, encoding="utf-8")
    return path


def test_internvl_hf_backend_end_to_end(tiny_internvl_dir: Path, repo_root: Path, tmp_path: Path,
                                        prompt_file: Path) -> None:
    images = repo_root / "examples" / "multiview_images"
    outputs = []
    for batch_size in ("1", "6"):
        out = tmp_path / f"bs{batch_size}"
        # --backend auto: config.json says model_type "internvl" (the -hf format), so transformers runs it on CPU
        assert internvl.main(internvl_argv(tiny_internvl_dir, images, out, prompt_file,
                                           "--batch_size", batch_size)) == 0
        outputs.append(read_json(out / "image_InternVL-tiny-hf.json"))
    assert outputs[0] == outputs[1]  # batched (left-padded) greedy output equals unbatched
    records = load_caption_records(tmp_path / "bs6" / "image_InternVL-tiny-hf.json", require_data_by=True)
    assert [r.id for r in records] == [o.id for o in discover_objects(images)]
    assert [r.images[0] for r in records] == [o.image_name for o in discover_objects(images)]
    assert len({r.caption for r in records}) > 1 and {r.data_by for r in records} == {"InternVL-tiny-hf"}
    report = read_json(tmp_path / "bs6" / "InternVL-tiny-hf_caption_generation_report.json")
    assert report["settings"]["backend"]["model_class"] == "InternVLForConditionalGeneration"
    assert report["totals"]["captioned"] == 6 and report["failures"] == []


class FakeLmdeploy(types.ModuleType):
    """Stands in for the `lmdeploy` package: records engine/generation configs and every prompt sent."""

    def __init__(self) -> None:
        super().__init__("lmdeploy")
        self.pipelines: list[FakePipeline] = []

        class Config:
            def __init__(self, **kwargs):
                self.kwargs = kwargs
                self.__dict__.update(kwargs)

        self.TurbomindEngineConfig = type("TurbomindEngineConfig", (Config,), {})
        self.PytorchEngineConfig = type("PytorchEngineConfig", (Config,), {})
        self.GenerationConfig = type("GenerationConfig", (Config,), {})

    def pipeline(self, model_path: str, backend_config=None, **kwargs):
        pipe = FakePipeline(model_path, backend_config, kwargs)
        self.pipelines.append(pipe)
        return pipe


class FakePipeline:
    def __init__(self, model_path: str, backend_config, kwargs) -> None:
        self.model_path, self.backend_config, self.kwargs = model_path, backend_config, kwargs
        self.calls: list[tuple[list, object]] = []

    def __call__(self, prompts, gen_config=None):
        self.calls.append((prompts, gen_config))

        def answer(messages):
            urls = [c["image_url"]["url"] for c in messages[0]["content"] if c["type"] == "image_url"]
            return types.SimpleNamespace(text=f" caption of {Path(urls[0]).parent.name[:8]} ({len(urls)} views) ")

        return [answer(m) for m in prompts]


@pytest.fixture()
def fake_lmdeploy(monkeypatch: pytest.MonkeyPatch) -> FakeLmdeploy:
    fake = FakeLmdeploy()
    monkeypatch.setitem(sys.modules, "lmdeploy", fake)
    return fake


@pytest.fixture()
def original_format_model(tmp_path: Path) -> Path:
    """A stand-in for an original-format InternVL folder (model_type internvl_chat): config.json and a (one-tensor)
    safetensors file, which is all the checks before loading look at."""
    import numpy as np
    from safetensors.numpy import save_file

    model = tmp_path / "OpenGVLab" / "InternVL3_5-4B"
    model.mkdir(parents=True)
    (model / "config.json").write_text('{"model_type": "internvl_chat"}')
    save_file({"stand_in": np.zeros(1, dtype=np.float32)}, str(model / "model.safetensors"))
    return model


def test_fake_lmdeploy_pipeline_gets_tp_engine_config_and_multiview_messages(
        fake_lmdeploy: FakeLmdeploy, original_format_model: Path, examples_copy: Path, tmp_path: Path,
        prompt_file: Path) -> None:
    images = examples_copy / "multiview_images"
    (sorted(images.iterdir())[1] / "top.jpg").unlink()
    argv = internvl_argv(original_format_model, images, tmp_path / "out", prompt_file, "--tp", "2",
                         "--session_len", "4096", "--batch_size", "4", "--max_patches", "2")
    assert internvl.main(argv) == 0  # --backend auto on an original-format checkpoint -> lmdeploy turbomind

    (pipe,) = fake_lmdeploy.pipelines
    assert pipe.model_path == str(original_format_model)
    assert type(pipe.backend_config).__name__ == "TurbomindEngineConfig"
    assert pipe.backend_config.kwargs == {"tp": 2, "session_len": 4096, "cache_max_entry_count": 0.8,
                                          "max_batch_size": 4}
    assert [len(prompts) for prompts, _ in pipe.calls] == [4, 2]  # batches go to the pipeline together
    gen_config = pipe.calls[0][1]
    assert gen_config.kwargs["do_sample"] is False and gen_config.kwargs["top_k"] == 1
    assert gen_config.kwargs["max_new_tokens"] == 6

    objects = discover_objects(images)
    messages = [m for prompts, _ in pipe.calls for m in prompts]
    for obj, message in zip(objects, messages, strict=True):
        (turn,) = message
        assert turn["role"] == "user"
        text, *image_items = turn["content"]
        expected_views = [v for v in ("front", "back", "left", "right", "top", "bottom") if v in obj.view_files]
        assert text == {"type": "text", "text": f"Describe the vase ({len(expected_views)} views: "
                                                f"{', '.join(expected_views)})."}
        assert [i["image_url"]["url"] for i in image_items] == [str(obj.view_files[v].resolve())
                                                                for v in expected_views]
        assert {i["image_url"]["max_dynamic_patch"] for i in image_items} == {2}

    records = read_json(tmp_path / "out" / "image_InternVL3_5-4B.json")
    assert [r["caption"] for r in records] == [
        f"caption of {o.path.name[:8]} ({5 if i == 1 else 6} views)" for i, o in enumerate(objects)]
    report = read_json(tmp_path / "out" / "InternVL3_5-4B_caption_generation_report.json")
    assert report["settings"]["backend"]["backend"] == "lmdeploy-turbomind" and report["settings"]["backend"]["tp"] == 2

    argv = internvl_argv(original_format_model, images, tmp_path / "out2", prompt_file, "--tp", "1",
                         "--backend", "pytorch")
    assert internvl.main(argv) == 0
    assert type(fake_lmdeploy.pipelines[-1].backend_config).__name__ == "PytorchEngineConfig"


def test_fake_lmdeploy_without_gpu_asks_for_one(fake_lmdeploy: FakeLmdeploy, original_format_model: Path,
                                                repo_root: Path, tmp_path: Path, prompt_file: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = internvl_argv(original_format_model, repo_root / "examples" / "multiview_images", tmp_path / "out",
                         prompt_file)  # no --tp: every visible GPU, and there is none
    with pytest.raises(InputError, match="lmdeploy needs a GPU and none is visible"):
        internvl.main(argv)


def test_missing_lmdeploy_fails_with_a_clear_message(original_format_model: Path, repo_root: Path, tmp_path: Path,
                                                     prompt_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lmdeploy", None)  # import lmdeploy -> ImportError
    argv = internvl_argv(original_format_model, repo_root / "examples" / "multiview_images", tmp_path / "out",
                         prompt_file, "--backend", "turbomind", "--tp", "1")
    with pytest.raises(InputError, match=r"lmdeploy is not installed.*requirements-gpu.txt.*--backend hf"):
        internvl.main(argv)
    # a backend that cannot load is bad input (exit 2): no caption file, and no report replacing an earlier one
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
