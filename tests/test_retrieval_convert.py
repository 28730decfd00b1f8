"""dataprocess.convert --retrieval_output: caption data -> retrieval pairs with convert's image-disjoint split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dataprocess.convert import main as convert_main
from tests.fixtures.caption_data import make_image, write_json
from vlmkit.io import InputError
from vlmkit.records import load_caption_records
from vlmkit.retrieval.data import load_checked


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def vasevqa(examples: Path, out: Path, *extra: str) -> None:
    assert convert_main(["--vasevqa", str(examples / "groundTruth.json"), "--multiview_dir",
                         str(examples / "multiview_images"), "--output", str(out / "train.jsonl"),
                         "--retrieval_output", str(out / "pairs.jsonl"), *extra]) == 0


def test_one_pair_per_view_with_the_objects_caption(examples_copy: Path, tmp_path: Path) -> None:
    vasevqa(examples_copy, tmp_path)
    pairs = read_jsonl(tmp_path / "pairs.jsonl")
    captions = {r.id: r.caption for r in load_caption_records(examples_copy / "groundTruth.json")}
    assert len(pairs) == 6 * 6  # six objects x six views
    for pair in pairs:
        assert pair["query"] == " ".join(captions[pair["id"]].split())
        assert Path(pair["positive"]).is_file()  # absolute: the images lie outside the output folder
    assert len({p["positive"] for p in pairs}) == 36
    pairs_read, bad = load_checked(tmp_path / "pairs.jsonl", None, False)  # what retrieval.py reads
    assert len(pairs_read) == 36 and not bad
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert summary["retrieval"]["pairs"] == {"train": 36} and summary["retrieval"]["views"] == "per_view"


def test_per_object_and_the_image_disjoint_split(examples_copy: Path, tmp_path: Path) -> None:
    vasevqa(examples_copy, tmp_path, "--retrieval_views", "per_object", "--val_ratio", "0.34")
    train, val = read_jsonl(tmp_path / "pairs.jsonl"), read_jsonl(tmp_path / "pairs_val.jsonl")
    assert len(train) + len(val) == 6 and len(val) == 2
    assert all(p["positive"].endswith("front.jpg") for p in train + val)  # the first of --views
    # the same split as the training JSONL: the val pairs are exactly the val samples' objects
    val_ids = {s["id"] for s in read_jsonl(tmp_path / "train_val.jsonl")}
    assert {p["id"] for p in val} == val_ids and not val_ids & {p["id"] for p in train}


def test_captions_json_pairs_relative_to_the_pairs_file(tmp_path: Path) -> None:
    make_image(tmp_path / "data" / "img" / "a.jpg", (16, 16))
    make_image(tmp_path / "data" / "img" / "b.jpg", (16, 16))
    caps = write_json(tmp_path / "data" / "captions.json",
                      [{"image": "img/a.jpg", "caption": "a red  hydria"}, {"image": "img/b.jpg", "caption": "x"}])
    assert convert_main(["--captions", str(caps), "--output", str(tmp_path / "data" / "t.jsonl"),
                         "--retrieval_output", str(tmp_path / "data" / "pairs.jsonl")]) == 0
    pairs = read_jsonl(tmp_path / "data" / "pairs.jsonl")
    assert [(p["query"], p["positive"]) for p in pairs] == [("a red hydria", "img/a.jpg"), ("x", "img/b.jpg")]


def test_bad_retrieval_output_is_refused_before_anything_is_written(examples_copy: Path, tmp_path: Path) -> None:
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    with pytest.raises(InputError, match="--retrieval_output is a JSONL file"):
        convert_main(["--vasevqa", str(examples_copy / "groundTruth.json"), "--multiview_dir",
                      str(examples_copy / "multiview_images"), "--output", str(tmp_path / "t.jsonl"),
                      "--retrieval_output", str(tmp_path / "pairs.txt")])
    with pytest.raises(InputError, match="the same output path is used twice"):
        convert_main(["--vasevqa", str(examples_copy / "groundTruth.json"), "--multiview_dir",
                      str(examples_copy / "multiview_images"), "--output", str(tmp_path / "t.jsonl"),
                      "--retrieval_output", str(tmp_path / "t.jsonl")])
    assert list(tmp_path.iterdir()) == []
