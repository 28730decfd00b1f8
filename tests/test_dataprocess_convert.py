"""dataprocess.convert: every source format round-trips into the training JSONL; dedup; leak-free split."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from dataprocess.convert import main as convert_main
from dataprocess.split import dedup, group_split, image_groups
from tests.fixtures.caption_data import make_image, read_jsonl, write_json, write_jsonl
from vlmkit.cli import run_main
from vlmkit.ids import VIEWS
from vlmkit.samples import DEFAULT_CAPTION_PROMPT, load_training_jsonl


def convert(*argv: str) -> int:
    return convert_main([*argv])


def resolved(path: Path) -> list[tuple[str, list[str], list[dict]]]:
    """(id, absolute image paths, conversations) of each sample of a written training JSONL."""
    return [(s.id, [os.path.normpath(p) for p in map(str, s.resolved_images(path.parent))], s.conversations)
            for s in load_training_jsonl(path)]


def test_llava_round_trip_keeps_every_turn(tmp_path: Path) -> None:
    coco = tmp_path / "coco"
    make_image(coco / "000000000001.jpg", (64, 48))
    make_image(coco / "000000000002.jpg", (64, 48))
    turns = [{"from": "human", "value": "<image>\nWhat is on the table?"}, {"from": "gpt", "value": "A vase."},
             {"from": "human", "value": "What colour is it?"}, {"from": "gpt", "value": "Red and black."}]
    detail = write_json(tmp_path / "llava" / "detail_23k.json", [
        {"id": "000000000001", "image": "000000000001.jpg", "conversations": turns},
        {"id": "000000000002", "image": "000000000002.jpg", "conversations": turns[:2]}])
    reasoning = write_json(tmp_path / "llava" / "complex_reasoning_77k.json", [
        {"id": "000000000001", "image": "000000000001.jpg", "conversations": turns[:2]}])
    out = tmp_path / "data" / "train.jsonl"
    assert convert("--llava", str(detail), str(reasoning), "--llava_image_folder", str(coco), "--output", str(out)) == 0
    got = resolved(out)
    assert [g[0] for g in got] == ["000000000001", "000000000002", "000000000001-2"]  # repeated COCO id renamed
    assert got[0][1] == [str(coco / "000000000001.jpg")] and got[0][2] == turns
    assert got[2][2] == turns[:2]
    assert read_jsonl(out)[0]["source"] == "llava"
    assert read_jsonl(out)[0]["images"] == [str(coco / "000000000001.jpg")]  # outside the output folder: absolute
    summary = json.loads((tmp_path / "data" / "train_summary.json").read_text())
    assert summary["renamed_duplicate_ids"] == 1 and summary["samples_read"] == 3


def test_aichallenger_modes(tmp_path: Path) -> None:
    make_image(tmp_path / "aic" / "img" / "a1.jpg", (32, 32))
    make_image(tmp_path / "aic" / "img" / "b2.jpg", (32, 32))
    caps = ["一个穿着 红色衣服的人\n在街上走", " 两只狗在草地上玩耍 ", "第三句", "第四句", "第五句"]
    ann = write_json(tmp_path / "aic" / "caption_train.json", [
        {"url": "http://x/a1.jpg", "image_id": "a1.jpg", "caption": caps},
        {"url": "http://x/b2.jpg", "image_id": "b2.jpg", "caption": caps[:2]}])
    out = tmp_path / "aic" / "all.jsonl"
    convert("--aichallenger", str(ann), "--aichallenger_image_folder", str(tmp_path / "aic" / "img"),
            "--prompt", "请描述这张图片。", "--output", str(out))
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == ["a1_c0", "a1_c1", "a1_c2", "a1_c3", "a1_c4", "b2_c0", "b2_c1"]
    assert rows[0]["images"] == ["img/a1.jpg"]  # inside the output folder: relative
    assert rows[0]["conversations"] == [{"from": "human", "value": "<image>\n请描述这张图片。"},
                                        {"from": "gpt", "value": "一个穿着 红色衣服的人 在街上走"}]
    assert rows[1]["conversations"][1]["value"] == "两只狗在草地上玩耍" and rows[1]["caption_index"] == 1
    assert resolved(out)[0][1] == [str(tmp_path / "aic" / "img" / "a1.jpg")]
    first = tmp_path / "aic" / "first.jsonl"
    convert("--aichallenger", str(ann), "--aichallenger_image_folder", str(tmp_path / "aic" / "img"),
            "--aichallenger_mode", "first", "--output", str(first))
    assert [(r["id"], r["caption_index"]) for r in read_jsonl(first)] == [("a1", 0), ("b2", 0)]
    assert read_jsonl(first)[0]["conversations"][0]["value"] == f"<image>\n{DEFAULT_CAPTION_PROMPT}"
    picks = []
    for seed in ("0", "0", "7"):
        rnd = tmp_path / "aic" / f"random{len(picks)}.jsonl"
        convert("--aichallenger", str(ann), "--aichallenger_image_folder", str(tmp_path / "aic" / "img"),
                "--aichallenger_mode", "random", "--seed", seed, "--output", str(rnd))
        picks.append([r["caption_index"] for r in read_jsonl(rnd)])
    assert picks[0] == picks[1]  # same seed, same choice


def test_captions_json_and_training_jsonl_round_trip(tmp_path: Path) -> None:
    make_image(tmp_path / "set" / "images" / "cat.png", (20, 20), "PNG")
    caps = write_json(tmp_path / "set" / "captions.json", [{"image": "images/cat.png", "caption": " A cat. "}])
    out = tmp_path / "set" / "train.jsonl"
    convert("--captions", str(caps), "--output", str(out))
    assert read_jsonl(out) == [{"id": "cat", "images": ["images/cat.png"], "conversations": [
        {"from": "human", "value": f"<image>\n{DEFAULT_CAPTION_PROMPT}"}, {"from": "gpt", "value": "A cat."}],
        "source": "captions"}]
    # our own training JSONL goes through unchanged (images re-based onto the new output folder)
    again = tmp_path / "other" / "merged.jsonl"
    convert("--training", str(out), "--output", str(again))
    assert resolved(again) == resolved(out)
    assert read_jsonl(again)[0]["images"] == [str(tmp_path / "set" / "images" / "cat.png")]


def test_vasevqa_multiview_objects(examples_copy: Path, tmp_path: Path) -> None:
    gt, mv = examples_copy / "groundTruth.json", examples_copy / "multiview_images"
    out = examples_copy / "vase.jsonl"
    convert("--vasevqa", str(gt), "--multiview_dir", str(mv), "--vasevqa_prompt", "Describe the vase.",
            "--output", str(out))
    rows = read_jsonl(out)
    truth = json.loads(gt.read_text())
    assert len(rows) == 6 and rows[0]["id"] == "3f2a9c1e-8b4d-4e6a-9f1b-2c7d5e8a0b13_1"
    assert rows[0]["conversations"] == [{"from": "human", "value": "<image>\n" * 6 + "Describe the vase."},
                                        {"from": "gpt", "value": truth[0]["caption"]}]
    assert [Path(p).name for p in rows[0]["images"]] == [f"{v}.jpg" for v in VIEWS]
    assert rows[0]["images"][0].startswith("multiview_images/") and rows[0]["views"] == list(VIEWS)
    assert all(p.is_file() for s in load_training_jsonl(out) for p in s.resolved_images(out.parent))
    # a missing view is an error naming the file and item, or a listed drop with --skip_missing_images
    folder = next(p for p in mv.iterdir() if p.name.startswith("7c1e4b2a"))
    (folder / "top.jpg").unlink()
    with pytest.raises(Exception, match=r"groundTruth.json: item 1 \(id 7c1e4b2a-0d9f-4a3c-8e5b-6f2a1d9c4e70_2\)"):
        convert("--vasevqa", str(gt), "--multiview_dir", str(mv), "--output", str(tmp_path / "x.jsonl"))
    some = tmp_path / "front_back.jsonl"
    convert("--vasevqa", str(gt), "--multiview_dir", str(mv), "--views", "front,back", "--output", str(some))
    assert len(read_jsonl(some)) == 6 and len(read_jsonl(some)[1]["images"]) == 2  # top not needed
    skip = tmp_path / "skip.jsonl"
    convert("--vasevqa", str(gt), "--multiview_dir", str(mv), "--skip_missing_images", "--output", str(skip))
    assert len(read_jsonl(skip)) == 5
    dropped = read_jsonl(tmp_path / "skip_dropped.jsonl")
    assert len(dropped) == 1 and "missing view(s) top" in dropped[0]["reason"]


def _aic_with_copies(tmp_path: Path, n_images: int = 12) -> Path:
    """n images x 3 captions, plus a byte-identical copy of image 0 under another name (2 captions)."""
    folder = tmp_path / "aic"
    recs = []
    for i in range(n_images):
        make_image(folder / f"im{i}.jpg", (16, 16), color=(i * 20, 0, 0))
        recs.append({"image_id": f"im{i}.jpg", "caption": [f"caption {i} a", f"caption {i} b", f"caption {i} c"]})
    shutil.copy(folder / "im0.jpg", folder / "copy_of_im0.jpg")
    recs.append({"image_id": "copy_of_im0.jpg", "caption": ["caption 0 a", "another caption"]})
    return write_json(folder / "ann.json", recs)


def test_split_never_leaks_an_image_and_is_deterministic(tmp_path: Path) -> None:
    ann = _aic_with_copies(tmp_path)
    runs = []
    for k, seed in enumerate(("1", "1", "2")):
        out = tmp_path / f"run{k}" / "train.jsonl"
        convert("--aichallenger", str(ann), "--val_ratio", "0.3", "--seed", seed, "--dedup", "image_text",
                "--output", str(out))
        train, val = resolved(out), resolved(out.parent / "train_val.jsonl")
        runs.append(([t[0] for t in train], [v[0] for v in val]))
        # identical bytes count as the same image: im0 and its copy are one group
        train_imgs = {Path(p).name.replace("copy_of_", "") for t in train for p in t[1]}
        val_imgs = {Path(p).name.replace("copy_of_", "") for v in val for p in v[1]}
        assert train_imgs and val_imgs and not train_imgs & val_imgs
        assert len(train) + len(val) == 12 * 3 + 2 - 1  # one exact duplicate (copy, "caption 0 a") removed
        assert 9 <= len(val) <= round(0.3 * 37)  # whole groups of 3 (and im0's group of 4) up to 11 samples
        summary = json.loads((out.parent / "train_summary.json").read_text())
        assert summary["split"]["grouped_by"] == "content hash" and summary["dedup"]["dropped"] == 1
    assert runs[0] == runs[1] and runs[0] != runs[2]


def test_group_split_and_dedup_units() -> None:
    keys = [("a",), ("a", "b"), ("b",), ("c",), (), ("d",), ("d",)]
    assert image_groups(keys) == [[0, 1, 2], [3], [4], [5, 6]]
    for seed in range(5):
        train, val, n = group_split(keys, 0.4, seed)
        assert n == 4 and sorted(train + val) == list(range(7)) and len(val) <= 3 and val
        for i in val:
            for j in train:
                assert not set(keys[i]) & set(keys[j])
    assert group_split(keys, 0.0) == (list(range(7)), [], 4)
    from vlmkit.samples import caption_sample

    samples = [caption_sample("1", ["x"], "cap"), caption_sample("2", ["y"], "cap"), caption_sample("3", ["x"], "cap"),
               caption_sample("4", ["x"], "other"), caption_sample("5", [], "cap")]
    hashes = [("h1",), ("h1",), ("h1",), ("h1",), ()]  # x and y have the same content
    assert dedup(samples, hashes, "image") == ([0, 4], [(1, 0), (2, 0), (3, 0)])
    assert dedup(samples, hashes, "image_text") == ([0, 3, 4], [(1, 0), (2, 0)])
    assert dedup(samples, hashes, "none") == ([0, 1, 2, 3, 4], [])


@pytest.mark.parametrize(("make", "message"), [
    (lambda d: ["--output", f"{d}/o.jsonl"], "no input given"),
    (lambda d: ["--llava", f"{d}/bad.json", "--output", f"{d}/o.jsonl"], "bad.json: malformed JSON at line 1"),
    (lambda d: ["--aichallenger", f"{d}/aic_empty.json", "--output", f"{d}/o.jsonl"],
     "aic_empty.json: item 0 (x.jpg): caption 1 is empty"),
    (lambda d: ["--captions", f"{d}/caps.json", "--output", f"{d}/o.jsonl"],
     "caps.json: sample 0 (id missing): image not found"),
    (lambda d: ["--vasevqa", f"{d}/caps.json", "--output", f"{d}/o.jsonl"], "--vasevqa needs --multiview_dir"),
    (lambda d: ["--training", f"{d}/t.jsonl", "--output", f"{d}/t.jsonl"], "output path is also an input"),
    (lambda d: ["--captions", f"{d}/caps.json", "--output", f"{d}/o.json"], "use a .jsonl name"),
    (lambda d: ["--training", f"{d}/t.jsonl", "--output", f"{d}/o.jsonl"], "t.jsonl: line 1: 1 '<image>' "
                                                                           "placeholders for 0 images"),
])
def test_convert_cli_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture, make, message: str) -> None:
    (tmp_path / "bad.json").write_text("[{")
    write_json(tmp_path / "aic_empty.json", [{"image_id": "x.jpg", "caption": ["fine", "  "]}])
    write_json(tmp_path / "caps.json", [{"image": "missing.jpg", "caption": "a caption"}])
    write_jsonl(tmp_path / "t.jsonl", [{"id": "a", "conversations": [{"from": "human", "value": "<image>\nq"},
                                                                     {"from": "gpt", "value": "a"}]}])
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SystemExit) as exit_:
        run_main(convert_main, make(tmp_path))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
