"""dataprocess.explore: statistics pinned on a hand-made set (values derived by hand in the comments)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from dataprocess.explore import int_histogram
from dataprocess.explore import main as explore_main
from tests.fixtures.caption_data import make_corrupt, make_image, write_jsonl
from vlmkit.cli import run_main


@pytest.fixture()
def small_set(tmp_path: Path) -> Path:
    make_image(tmp_path / "img" / "good1.jpg", (300, 250))
    shutil.copy(tmp_path / "img" / "good1.jpg", tmp_path / "img" / "dup.jpg")  # same bytes, other name
    make_image(tmp_path / "img" / "rot.jpg", (100, 50), orientation=6)  # displayed 50 x 100
    make_corrupt(tmp_path / "img" / "corrupt.jpg")
    return write_jsonl(tmp_path / "data.jsonl", [
        {"text": "A red vase.", "images": ["img/good1.jpg"]},                       # 3 words, 11 chars
        {"text": "A red vase.", "images": ["img/good1.jpg"]},                       # exact duplicate text
        {"text": "Two black horses pull a chariot", "images": ["img/dup.jpg", "img/rot.jpg"]},  # 6 words
        {"text": "🏺", "images": ["img/missing.jpg"]},                               # 0 words, 1 char
        {"text": " ".join(["the"] * 12), "images": ["img/corrupt.jpg"]},             # 12 words, 47 chars
    ])


def test_explore_statistics_pinned(small_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert explore_main(["--input", str(small_set), "--output_dir", str(out), "--long_words", "10", "--np", "1"]) == 0
    report = json.loads((out / "explore.json").read_text())
    text = report["text"]
    wc = text["word_count"]
    # word counts 3, 3, 6, 0, 12: mean 24/5; population variance (1.8²+1.8²+1.2²+4.8²+7.2²)/5 = 16.56
    assert (wc["count"], wc["mean"], wc["min"], wc["median"], wc["max"]) == (5, 4.8, 0, 3, 12)
    assert wc["std"] == pytest.approx(math.sqrt(16.56), abs=1e-6)
    assert text["text_length_chars"]["mean"] == pytest.approx((11 + 11 + 31 + 1 + 47) / 5)
    # lower-cased words: 24 in all; distinct: a red vase two black horses pull chariot the = 9
    assert (text["total_words"], text["vocabulary_size"], text["lexical_diversity"]) == (24, 9, 0.375)
    assert (text["short"]["samples"], text["short"]["ratio"]) == (3, 0.6)  # fewer than 5 words: 3, 3, 0
    assert (text["long"]["samples"], text["long"]["ratio"]) == (1, 0.2)  # more than 10 words: 12
    assert text["duplicates"]["duplicate_samples"] == 1 and text["duplicates"]["duplicate_groups"] == 1
    assert text["duplicates"]["examples"] == [{"text": "A red vase.", "count": 2}]
    assert text["top_words"][0] == {"word": "the", "count": 12}
    assert sum(b["count"] for b in wc["histogram"]) == 5 and wc["histogram"][0]["from"] == 0
    images = report["images"]
    assert (images["references"], images["distinct_paths"]) == (6, 5)
    assert (images["readable"], images["missing"], images["unreadable"]) == (3, 1, 1)
    assert images["samples_with_bad_images"] == 2 and images["samples_without_images"] == 0
    assert {p["kind"] for p in images["problems"]} == {"missing", "unreadable"}
    # readable: dup 300x250, good1 300x250, rot 50x100 (EXIF orientation applied)
    assert (images["width"]["mean"], images["width"]["min"]) == (pytest.approx(650 / 3, abs=1e-5), 50)
    assert (images["height"]["mean"], images["height"]["max"]) == (200, 250)
    assert (images["small_side"]["images"], images["small_side"]["ratio"]) == (1, pytest.approx(1 / 3, abs=1e-6))
    assert images["formats"] == {"JPEG": 3}
    assert images["shared_paths"] == {"paths_used_by_several_samples": 1, "extra_references": 1}
    assert images["content_duplicates"]["groups"] == 1 and images["content_duplicates"]["redundant_files"] == 1
    md = (out / "explore.md").read_text()
    assert "| words per sample (mean ± std) | 4.80 ± 4.07 |" in md and "| lexical diversity" in md
    assert "| readable / missing / unreadable | 3 / 1 / 1 |" in md
    from PIL import Image

    for name in ("text_length_analysis.png", "word_frequency_analysis.png", "image_analysis.png"):
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.width > 300


def test_explore_without_hashing_or_images(tmp_path: Path, small_set: Path) -> None:
    out = tmp_path / "nohash"
    explore_main(["--input", str(small_set), "--output_dir", str(out), "--no_image_hash", "--np", "1"])
    report = json.loads((out / "explore.json").read_text())
    assert report["images"]["content_duplicates"] == {"unavailable": "image hashing disabled (--no_image_hash)"}
    caps = tmp_path / "caps.jsonl"
    write_jsonl(caps, [{"text": "", "images": []}])
    explore_main(["--input", str(caps), "--output_dir", str(tmp_path / "empty")])
    report = json.loads((tmp_path / "empty" / "explore.json").read_text())
    assert report["text"]["lexical_diversity"] == {"unavailable": "the data set has no words"}  # never 0.0
    assert report["images"]["unavailable"] == "no sample refers to an image"
    assert report["text"]["empty_texts"] == 1


def test_int_histogram_bins() -> None:
    assert int_histogram([0, 1, 1, 5], bins=3) == [{"from": 0, "to": 2, "count": 3}, {"from": 2, "to": 4, "count": 0},
                                                   {"from": 4, "to": 6, "count": 1}]


def test_explore_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"images": ["a_1.jpg"], "caption": "   "}]))
    with pytest.raises(SystemExit) as exit_:
        run_main(explore_main, ["--input", str(bad), "--output_dir", str(tmp_path / "out")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.json: item 0 (id a_1): empty caption" in err[0]
    assert not (tmp_path / "out").exists()


def test_describe_from_counts_equals_numpy_on_the_expanded_values() -> None:
    """explore streams: it keeps value -> count, and must give np.mean / np.std / np.percentile's numbers."""
    import numpy as np

    from dataprocess.explore import describe

    rng = np.random.RandomState(0)
    for n in (1, 2, 7, 1000):
        values = [int(v) for v in rng.randint(0, 60, n)]
        arr = np.asarray(values, dtype=float)
        got = describe(values)
        p = np.percentile(arr, [5, 25, 50, 75, 95])
        assert got == {"count": n, "mean": round(float(arr.mean()), 6), "std": round(float(arr.std()), 6),
                       "min": float(arr.min()), "p5": round(float(p[0]), 6), "p25": round(float(p[1]), 6),
                       "median": round(float(p[2]), 6), "p75": round(float(p[3]), 6), "p95": round(float(p[4]), 6),
                       "max": float(arr.max())}
