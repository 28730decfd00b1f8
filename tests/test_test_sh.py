"""test.sh and caption.py on a tiny LLaVA checkpoint (the shape train.py produces), with and without a LoRA adapter."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import caption
from vlmkit.io import InputError, read_json
from vlmkit.multiview import discover_objects
from vlmkit.records import load_caption_records

SHORT_PROMPT = "Describe the vase ({views_phrase})."


@pytest.fixture(scope="module")
def llava_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A base LLaVA, a LoRA adapter on its LM (+ a trained projector via modules_to_save) and the merged model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from demo.tiny.llava import build_tiny_llava

    root = tmp_path_factory.mktemp("llava")
    base = build_tiny_llava(root / "llava-tiny")
    model = AutoModelForImageTextToText.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=r".*language_model.*\.(q_proj|v_proj)",
                        modules_to_save=["multi_modal_projector"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    torch.manual_seed(1)
    with torch.no_grad():  # as if the projector had been trained too
        for name, param in peft_model.named_parameters():
            if "modules_to_save" in name:
                param.add_(0.3 * torch.randn_like(param))
    adapter = root / "llava-tiny-lora"
    peft_model.save_pretrained(adapter)
    merged = root / "llava-tiny-merged"
    peft_model.merge_and_unload().save_pretrained(merged)
    AutoProcessor.from_pretrained(base).save_pretrained(merged)
    prompt = root / "prompt.txt"
    prompt.write_text(SHORT_PROMPT, encoding="utf-8")
    return {"base": base, "adapter": adapter, "merged": merged, "prompt": prompt}


def run_test_sh(repo_root: Path, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "BATCH_SIZE": "3", "MAX_NEW_TOKENS": "6", "DEVICE": "cpu", **env}
    return subprocess.run(["sh", str(repo_root / "test.sh")], env=full_env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_test_sh_with_adapter_equals_merged_model_and_differs_from_base(
        llava_models: dict[str, Path], repo_root: Path, tmp_path: Path) -> None:
    images = repo_root / "examples" / "multiview_images"
    out = tmp_path / "captions"
    common = {"INPUT_DIR": str(images), "OUTPUT_DIR": str(out), "PROMPT_FILE": str(llava_models["prompt"])}
    done = run_test_sh(repo_root, MODEL_PATH=str(llava_models["base"]), ADAPTER_PATH=str(llava_models["adapter"]),
                       NAME="llava-lora", **common)
    assert done.returncode == 0, done.stderr[-2000:]
    done = run_test_sh(repo_root, MODEL_PATH=str(llava_models["merged"]), NAME="llava-merged", **common)
    assert done.returncode == 0, done.stderr[-2000:]

    adapter = load_caption_records(out / "image_llava-lora.json", require_data_by=True)
    merged = load_caption_records(out / "image_llava-merged.json", require_data_by=True)
    truth = load_caption_records(repo_root / "examples" / "groundTruth.json")
    assert sorted(r.id for r in adapter) == sorted(r.id for r in truth)  # ready for compare.sh
    assert {r.data_by for r in adapter} == {"llava-lora"} and {r.data_by for r in merged} == {"llava-merged"}
    assert [r.caption for r in adapter] == [r.caption for r in merged]
    assert len({r.caption for r in adapter}) > 1
    assert read_json(out / "llava-lora_caption_generation_report.json")["settings"]["adapter_path"] == str(
        llava_models["adapter"])

    argv = ["--model_path", str(llava_models["base"]), "--input_dir", str(images), "--output_dir", str(out),
            "--prompt_file", str(llava_models["prompt"]), "--max_new_tokens", "6", "--no_progress"]
    assert caption.main(argv) == 0
    base = load_caption_records(out / "image_llava-tiny.json", require_data_by=True)
    assert [r.caption for r in base] != [r.caption for r in adapter]  # the adapter was really applied

    rerun = run_test_sh(repo_root, MODEL_PATH=str(llava_models["merged"]), NAME="llava-merged", RESUME="1", **common)
    assert rerun.returncode == 0 and "6 already captioned, 0 to do" in rerun.stderr


def test_caption_py_on_a_flat_folder_of_images(llava_models: dict[str, Path], repo_root: Path,
                                               tmp_path: Path) -> None:
    flat = tmp_path / "photos"
    flat.mkdir()
    objects = discover_objects(repo_root / "examples" / "multiview_images")
    for obj in objects:
        shutil.copy(obj.view_files["front"], flat / obj.image_name)
    (flat / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    argv = ["--model_path", str(llava_models["merged"]), "--input_dir", str(flat), "--output_dir",
            str(tmp_path / "out"), "--max_new_tokens", "6", "--no_progress", "--batch_size", "4"]
    assert caption.main(argv) == 1  # the broken image is a recorded failure
    records = load_caption_records(tmp_path / "out" / "image_llava-tiny-merged.json", require_data_by=True)
    assert [list(r.images) for r in records] == [[o.image_name] for o in objects]
    assert [r.id for r in records] == [o.id for o in objects]
    report = read_json(tmp_path / "out" / "llava-tiny-merged_caption_generation_report.json")
    assert [f["id"] for f in report["failures"]] == ["broken"]
    assert report["settings"]["layout"] == "flat"
    assert report["settings"]["prompt_template"].startswith("Please analyse this image of an ancient Greek vase.")


def test_adapter_given_as_model_path_is_explained(llava_models: dict[str, Path], repo_root: Path,
                                                  tmp_path: Path) -> None:
    argv = ["--model_path", str(llava_models["adapter"]), "--input_dir", str(repo_root / "examples" /
            "multiview_images"), "--output_dir", str(tmp_path), "--no_progress"]
    with pytest.raises(InputError, match="is a LoRA adapter, not a model; pass its base model with --model_path"):
        caption.main(argv)
