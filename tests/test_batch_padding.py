"""Batched captioning pads on the LEFT: a batch whose items have DIFFERENT input lengths (objects with 6, 3 and 1
views, so different numbers of image tokens and different prompts) gives each item exactly the greedy caption it
gets alone. With right padding the shorter items would generate after their pad tokens and differ."""

from __future__ import annotations

from pathlib import Path

import pytest

import qwen
from vlmkit.io import read_json

MODEL_NAME = "Qwen2.5-VL-tiny"
KEEP = {0: ("front",), 1: ("front", "back", "left"), 3: ("top",), 4: ("front", "right")}  # others keep all six


@pytest.fixture()
def uneven_objects(examples_copy: Path) -> Path:
    folders = sorted((examples_copy / "multiview_images").iterdir())
    for i, folder in enumerate(folders):
        for view in folder.glob("*.jpg"):
            if i in KEEP and view.stem not in KEEP[i]:
                view.unlink()
    return examples_copy / "multiview_images"


def test_a_batch_of_items_with_different_input_lengths_equals_each_item_alone(
        tiny_qwen2_5_vl_dir: Path, uneven_objects: Path, tmp_path: Path) -> None:
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Describe the vase ({views_phrase}).", encoding="utf-8")
    outputs = {}
    for batch_size in ("1", "6"):
        out = tmp_path / f"bs{batch_size}"
        assert qwen.main(["--model_path", str(tiny_qwen2_5_vl_dir), "--input_dir", str(uneven_objects),
                          "--output_dir", str(out), "--max_new_tokens", "6", "--min_pixels", "784", "--max_pixels",
                          "3136", "--prompt_file", str(prompt), "--no_progress", "--batch_size", batch_size]) in (0, 1)
        outputs[batch_size] = read_json(out / f"image_{MODEL_NAME}.json")
        report = read_json(out / f"{MODEL_NAME}_caption_generation_report.json")
        assert report["totals"]["captioned"] == 6
        assert report["totals"]["skipped_views"] == 5 + 3 + 5 + 4  # the inputs really differ in length
    assert outputs["6"] == outputs["1"]  # one batch of 6 uneven items, left-padded == each alone
    assert len({r["caption"] for r in outputs["1"]}) > 1
