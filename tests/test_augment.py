"""dataprocess.augment: re-captioning a training JSONL with a tiny VLM through the shared generation engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataprocess import augment
from tests.fixtures.crash import crash_generate_on_call
from vlmkit.io import InputError, read_json, read_jsonl
from vlmkit.multiview import discover_objects
from vlmkit.records import load_caption_records
from vlmkit.samples import caption_sample, load_training_jsonl

PROMPT = "Describe the vase."


@pytest.fixture()
def train_jsonl(examples_copy: Path) -> Path:
    """Six two-view caption samples (paths relative to the JSONL's folder) + two that cannot be re-captioned."""
    data = examples_copy / "data"
    data.mkdir()
    truth = {r.id: r.caption for r in load_caption_records(examples_copy / "groundTruth.json")}
    rows = []
    for obj in discover_objects(examples_copy / "multiview_images"):
        images = [f"../multiview_images/{obj.path.name}/{v}.jpg" for v in ("front", "back")]
        rows.append(caption_sample(obj.id, images, truth[obj.id], PROMPT, source="vasevqa").to_json())
    rows.insert(2, caption_sample("missing_1", ["../nowhere/front.jpg"], "A vase.", PROMPT).to_json())
    two_answers = caption_sample("chat_2", [rows[0]["images"][0]], "A vase.", PROMPT).to_json()
    two_answers["conversations"] += [{"from": "human", "value": "Colour?"}, {"from": "gpt", "value": "Black."}]
    rows.append(two_answers)
    path = data / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def argv(model: Path, train: Path, output: Path, *extra: str) -> list[str]:
    return ["--input", str(train), "--output", str(output), "--model_path", str(model), "--max_new_tokens", "6",
            "--no_progress", *extra]


def without_timestamps(rows: list[dict]) -> list[dict]:
    return [{**r, "provenance": {k: v for k, v in r["provenance"].items() if k != "created"}} for r in rows]


def test_augment_recaptions_keeps_originals_and_resumes(tiny_qwen2_5_vl_dir: Path, train_jsonl: Path,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "augmented" / "aug.jsonl"  # another folder: image paths must be rewritten
    assert augment.main(argv(tiny_qwen2_5_vl_dir, train_jsonl, out, "--batch_size", "8")) == 1  # 2 failures

    samples = load_training_jsonl(out)  # a valid training file in its own right
    originals = {r["id"]: r for r in read_jsonl(train_jsonl)}
    assert len(samples) == 6 and "missing_1" not in {s.id for s in samples}
    for sample in samples:
        original = originals[sample.id]
        assert sample.extra["original_caption"] == original["conversations"][1]["value"]
        assert sample.conversations[0] == original["conversations"][0]  # the question is unchanged
        assert sample.conversations[1]["value"].strip() and sample.extra["source"] == "vasevqa"
        assert all(p.is_file() for p in sample.resolved_images(out.parent))
        provenance = sample.extra["provenance"]
        assert provenance["tool"] == "dataprocess.augment" and provenance["model"] == "Qwen2.5-VL-tiny"
        assert provenance["prompt"] == PROMPT and provenance["generation"]["max_new_tokens"] == 6
        assert provenance["model_class"] == "Qwen2_5_VLForConditionalGeneration" and provenance["created"]
    assert len({s.conversations[1]["value"] for s in samples}) > 1
    report = read_json(tmp_path / "augmented" / "aug.report.json")
    assert report["totals"]["captioned"] == 6 and report["totals"]["failed"] == 2
    reasons = {f["id"]: f["reason"] for f in report["failures"]}
    assert reasons["missing_1"].startswith("no usable image:") and "view image1 missing" in reasons["missing_1"]
    assert reasons["chat_2"] == "sample has 2 answers (only caption samples, one answer)"
    clean = without_timestamps(read_jsonl(out))

    # crash after the first batch, then resume: nothing lost, nothing duplicated, same result
    crashed = tmp_path / "crashed" / "aug.jsonl"
    crash_generate_on_call(monkeypatch, 2)  # the process dies in the second batch
    with pytest.raises(KeyboardInterrupt):
        augment.main(argv(tiny_qwen2_5_vl_dir, train_jsonl, crashed, "--batch_size", "2"))
    assert [r["id"] for r in read_jsonl(crashed)] == [r["id"] for r in clean[:2]]
    monkeypatch.undo()
    with pytest.raises(InputError, match="already exists; pass --resume"):
        augment.main(argv(tiny_qwen2_5_vl_dir, train_jsonl, crashed, "--batch_size", "2"))
    assert augment.main(argv(tiny_qwen2_5_vl_dir, train_jsonl, crashed, "--batch_size", "2", "--resume")) == 1
    assert without_timestamps(read_jsonl(crashed)) == clean
    report = read_json(tmp_path / "crashed" / "aug.report.json")
    assert report["totals"]["already_done"] == 2 and report["totals"]["captioned"] == 4


def test_augment_with_a_fixed_prompt(tiny_qwen2_5_vl_dir: Path, train_jsonl: Path, tmp_path: Path) -> None:
    out = tmp_path / "aug.jsonl"
    assert augment.main(argv(tiny_qwen2_5_vl_dir, train_jsonl, out, "--prompt", "A photo of")) == 1
    assert {r["provenance"]["prompt"] for r in read_jsonl(out)} == {"A photo of"}
    with pytest.raises(InputError, match="--output must differ from --input"):
        augment.main(argv(tiny_qwen2_5_vl_dir, train_jsonl, train_jsonl, "--overwrite"))


def test_augment_with_a_blip2_class_captioner(examples_copy: Path, tmp_path: Path) -> None:
    from demo.tiny.blip2 import build_tiny_blip2

    model = build_tiny_blip2(tmp_path / "blip2-tiny")
    rows = [caption_sample(o.id, [str(o.view_files["front"])], "A vase.", PROMPT).to_json()
            for o in discover_objects(examples_copy / "multiview_images")]  # absolute paths stay absolute
    train = tmp_path / "single.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out" / "aug.jsonl"
    assert augment.main(argv(model, train, out, "--prompt", "", "--batch_size", "4")) == 0  # no chat template
    result = read_jsonl(out)
    assert [r["images"] for r in result] == [r["images"] for r in rows]
    assert {r["provenance"]["model_class"] for r in result} == {"Blip2ForConditionalGeneration"}
    assert len({r["conversations"][1]["value"] for r in result}) > 1
