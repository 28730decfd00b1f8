"""merge_lora_weights.py: independent of folder names, loud on failure, never leaves a partial output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import merge_lora_weights
import train
from vlmkit.io import InputError


@pytest.fixture(scope="module")
def trained(tmp_path_factory, repo_root, tiny_clip_dir, tiny_qwen2_lm_dir) -> Path:
    out = tmp_path_factory.mktemp("merge") / "run"
    examples = repo_root / "examples"
    assert train.main(["--vision_model", str(tiny_clip_dir), "--lm_model", str(tiny_qwen2_lm_dir),
                       "--data", str(examples / "groundTruth.json"), "--image_folder",
                       str(examples / "multiview_images"), "--views", "front", "--output_dir", str(out),
                       "--max_steps", "2", "--learning_rate", "1e-2", "--per_device_train_batch_size", "2",
                       "--gradient_accumulation_steps", "2", "--bf16"]) == 0  # bf16 autocast works on CPU too
    return out


def copy_adapter(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("base", "checkpoint-*"))
    return dst


def test_merge_reads_the_base_from_metadata_not_folder_names(trained, tmp_path):
    from transformers import AutoModelForImageTextToText

    # A name that folder-name heuristics would misread (LLaVA's builder keys off "lora" / "llava" in it).
    adapter = copy_adapter(trained, tmp_path / "llava-v1.5-7b-checkpoint-999-merged")
    out = tmp_path / "out"
    assert merge_lora_weights.main(["--adapter", str(adapter), "--output_dir", str(out)]) == 0
    info = json.loads((out / "vlmkit_merge.json").read_text())
    assert info["base_model"] == str((trained / "base").resolve()) and info["kind"] == "adapter"
    assert AutoModelForImageTextToText.from_pretrained(out).config.model_type == "llava"

    # Base moved: a clear error, and --base_model fixes it.
    moved = copy_adapter(trained, tmp_path / "moved")
    for name in ("vlmkit_training.json", "adapter_config.json"):
        data = json.loads((moved / name).read_text())
        data["base_model" if name.startswith("vlmkit") else "base_model_name_or_path"] = str(tmp_path / "gone")
        (moved / name).write_text(json.dumps(data))
    with pytest.raises(InputError, match="not found .*pass --base_model"):
        merge_lora_weights.main(["--adapter", str(moved), "--output_dir", str(tmp_path / "out2")])
    assert merge_lora_weights.main(["--adapter", str(moved), "--output_dir", str(tmp_path / "out2"),
                                    "--base_model", str(trained / "base")]) == 0


def test_a_merge_that_changes_the_logits_fails_and_writes_nothing(trained, tmp_path, monkeypatch, capsys):
    import torch
    from peft import LoraModel

    original = LoraModel.merge_and_unload

    def broken_merge(self, *args, **kwargs):
        model = original(self, *args, **kwargs)
        with torch.no_grad():
            model.model.language_model.layers[0].self_attn.q_proj.weight.add_(0.5)
        return model

    monkeypatch.setattr(LoraModel, "merge_and_unload", broken_merge)
    out = tmp_path / "merged"
    assert merge_lora_weights.main(["--adapter", str(trained), "--output_dir", str(out)]) == 1
    assert "merged logits differ from the adapter's" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no output, no temporary folder


def test_merge_refuses_to_overwrite_or_to_merge_a_full_model(trained, tmp_path):
    out = tmp_path / "merged"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="exists; pass --overwrite"):
        merge_lora_weights.main(["--adapter", str(trained), "--output_dir", str(out)])
    assert (out / "keep.txt").read_text() == "mine"
    with pytest.raises(InputError, match="already a standalone checkpoint"):
        merge_lora_weights.main(["--adapter", str(trained / "base"), "--output_dir", str(tmp_path / "x")])
    assert merge_lora_weights.main(["--adapter", str(trained), "--output_dir", str(out), "--overwrite",
                                    "--dtype", "bfloat16"]) == 0
    assert not (out / "keep.txt").exists()
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged"]
    (tmp_path / "a_file").write_text("mine")
    with pytest.raises(InputError, match="--output_dir is a file, not a folder"):
        merge_lora_weights.main(["--adapter", str(trained), "--output_dir", str(tmp_path / "a_file"), "--overwrite"])
    assert (tmp_path / "a_file").read_text() == "mine"
