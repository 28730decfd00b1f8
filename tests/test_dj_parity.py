"""The image operators against REAL Data-Juicer 1.6.1 answers, recorded on adversarial files.

tests/data/dj_parity/record_with_data_juicer.py ran Data-Juicer's own operator classes (in a separate venv with
py-data-juicer 1.6.1; it is not a requirement of vlmkit) on the committed images and cases; this test runs
`python -m dataprocess.filter` on the same files and compares every stat, every keep decision and every kept sample.
Cases: aspect ratios at the default bounds (0.333 vs 1/3, exactly 3.0), EXIF rotation, 1x1 and 100:1 images,
greyscale / RGBA / palette / CMYK files, multi-image samples under any/all, size strings Data-Juicer parses its own way
("1.5KB" is 15 KiB, "2 kib", bare bytes), and de-duplication by phash/dhash/whash/ahash of byte copies,
re-encodings, rescales, mirrors, EXIF-rotated copies, image-less samples, multi-image samples in both orders, and
consider_text with lowercase / ignore_non_character.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataprocess.filter import main
from tests.fixtures.caption_data import read_jsonl, write_jsonl

HERE = Path(__file__).resolve().parent / "data" / "dj_parity"
CASES = json.loads((HERE / "cases.json").read_text())["cases"]
RECORDED = json.loads((HERE / "data_juicer_1.6.1.json").read_text())


def _run(tmp_path: Path, case: dict) -> tuple[list[dict], list[str]]:
    rows = [{"id": f"s{k}", "text": s["text"], "images": [str(HERE / "images" / n) for n in s["images"]]}
            for k, s in enumerate(case["samples"])]
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps({"process": [{case["op"]: case["params"]}]}))
    out = tmp_path / "out.jsonl"
    assert main(["--recipe", str(recipe), "--dataset_path", str(data), "--export_path", str(out), "--no_progress",
                 "--np", "1", "--chunk_size", "5"]) == 0
    return read_jsonl(tmp_path / "out_stats.jsonl"), [r["id"] for r in read_jsonl(out)]


def test_the_recording_is_data_juicer_1_6_1() -> None:
    assert RECORDED["data_juicer_version"] == "1.6.1" and len(RECORDED["results"]) == len(CASES) == 17


@pytest.mark.parametrize("k", range(len(CASES)), ids=[f"{k}-{c['op']}" for k, c in enumerate(CASES)])
def test_same_answers_as_data_juicer(tmp_path: Path, k: int) -> None:
    case, recorded = CASES[k], RECORDED["results"][k]
    stats, kept = _run(tmp_path, case)
    if case["op"] == "image_deduplicator":
        assert kept == [f"s{i}" for i in recorded["kept"]]
        return
    keys = {key for r in recorded for key in r["stats"]}
    ours = [{key: s["__dj__stats__"][key] for key in keys} for s in stats]
    assert ours == [r["stats"] for r in recorded]  # floats compared exactly: W / H in float64 on both sides
    assert [s["kept"] for s in stats] == [r["keep"] for r in recorded]
    assert [f"s{i}" for i, r in enumerate(recorded) if r["keep"]] == kept


CLIP_CASES = json.loads((HERE / "cases_clip.json").read_text())["cases"]
CLIP_RECORDED = json.loads((HERE / "data_juicer_1.6.1_clip.json").read_text())


def test_image_text_similarity_agrees_with_data_juicer(tmp_path: Path, tiny_clip_dir: Path) -> None:
    """The same tiny random CLIP (demo.tiny.clip, seed 0) scored by Data-Juicer's operator and by ours: chunks split
    on the eoc token, image tokens counted per chunk, an image token without words still scored, flips, avg / max /
    min, any / all, text truncated at the model's positions, EXIF rotation and mode conversion of the images."""
    assert CLIP_RECORDED["data_juicer_version"] == "1.6.1" and len(CLIP_RECORDED["results"]) == len(CLIP_CASES) == 5
    for k, (case, recorded) in enumerate(zip(CLIP_CASES, CLIP_RECORDED["results"], strict=True)):
        case = {**case, "params": {**case["params"], "hf_clip": str(tiny_clip_dir)}}
        stats, kept = _run(tmp_path / str(k), case)
        ours = [s["__dj__stats__"]["image_text_similarity"] for s in stats]
        theirs = [r["stats"]["image_text_similarity"] for r in recorded]
        assert [len(v) for v in ours] == [len(v) for v in theirs], k
        for a, b in zip(ours, theirs, strict=True):
            assert a == pytest.approx(b, abs=1e-6), k  # the same model on the same CPU; float32 forward passes
        assert [s["kept"] for s in stats] == [r["keep"] for r in recorded], k
