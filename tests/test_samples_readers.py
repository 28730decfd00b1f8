"""One reader per training-data format (vlmkit.training_data): every format, in every container it comes in, is
detected as the same format and read to the same samples by every consumer: train.py's loader, the older
`load_training_data` name, dataprocess's input (explore / filter) and convert (and the retrieval pairs it writes)."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dataprocess.convert import main as convert_main
from dataprocess.dataset import open_input
from tests.fixtures.caption_data import make_image, read_jsonl, write_json, write_jsonl
from vlmkit.ids import VIEWS
from vlmkit.io import InputError
from vlmkit.samples import caption_sample, load_training_data
from vlmkit.training.data import load_samples
from vlmkit.training_data import detect_format, read_training_data

NAMES = ("a_1", "b_2", "c_3")


def _images(tmp: Path) -> list[str]:
    for name in NAMES:
        make_image(tmp / "img" / f"{name}.jpg", (32, 24))
    return [f"img/{name}.jpg" for name in NAMES]


def _training_rows(tmp: Path, absolute: bool = False) -> list[dict[str, Any]]:
    paths = [str(tmp / p) if absolute else p for p in _images(tmp)]
    return [caption_sample(n, [p], f"A vase number {k}.", source="t").to_json()
            for k, (n, p) in enumerate(zip(NAMES, paths, strict=True))]


def _dj_rows(tmp: Path) -> list[dict[str, Any]]:
    return [{"id": n, "text": f"<__dj__image> A vase number {k}. <|__dj__eoc|>", "images": [p]}
            for k, (n, p) in enumerate(zip(NAMES, _images(tmp), strict=True))]


def training_jsonl(tmp: Path) -> Path:
    return write_jsonl(tmp / "train.jsonl", _training_rows(tmp))


def training_parquet(tmp: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(_training_rows(tmp)), tmp / "train.parquet")
    return tmp / "train.parquet"


def training_hf(tmp: Path) -> Path:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(_training_rows(tmp, absolute=True)).save_to_disk(str(tmp / "hf"), num_shards=2)
    return tmp / "hf"


def training_webdataset(tmp: Path) -> Path:
    with tarfile.open(tmp / "train.tar", "w") as tar:
        for row in _training_rows(tmp, absolute=True):
            payload = json.dumps(row).encode()
            info = tarfile.TarInfo(f"{row['id']}.json")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return tmp / "train.tar"


def dj_jsonl(tmp: Path) -> Path:
    return write_jsonl(tmp / "dj.jsonl", _dj_rows(tmp))


def dj_parquet(tmp: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(_dj_rows(tmp)), tmp / "dj.parquet")
    return tmp / "dj.parquet"


def llava_json(tmp: Path) -> Path:
    rows = [{"id": n, "image": p.removeprefix("img/"), "conversations": [
        {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": f"A vase number {k}."}]}
        for k, (n, p) in enumerate(zip(NAMES, _images(tmp), strict=True))]
    return write_json(tmp / "llava.json", rows)


def captions_json(tmp: Path) -> Path:
    rows = [{"image": p, "caption": f"A vase number {k}."} for k, p in enumerate(_images(tmp))]
    return write_json(tmp / "captions.json", rows)


# name, how to write it, its format, the image folder (train.py's --image_folder; None: the data's folder)
CASES: list[tuple[str, Callable[[Path], Path], str, str | None]] = [
    ("training-jsonl", training_jsonl, "training", None),
    ("training-parquet", training_parquet, "training", None),
    ("training-hf", training_hf, "training", None),
    ("training-webdataset", training_webdataset, "training", None),
    ("dj-jsonl", dj_jsonl, "dj", None),
    ("dj-parquet", dj_parquet, "dj", None),
    ("llava-json", llava_json, "llava", "img"),
    ("captions-json", captions_json, "captions", None),
]


def _norm(root: Path, name: str) -> str:
    return os.path.normpath(name if os.path.isabs(name) else os.path.join(os.path.abspath(root), name))


@pytest.mark.parametrize(("name", "make", "fmt", "folder"), CASES, ids=[c[0] for c in CASES])
def test_every_format_is_read_to_the_same_samples_by_every_consumer(tmp_path: Path, name: str, make, fmt: str,
                                                                    folder: str | None) -> None:
    path = make(tmp_path)
    image_folder = str(tmp_path / folder) if folder else None
    assert detect_format(path) == fmt

    samples, root = read_training_data(path, image_folder)
    want = [(n, [str(tmp_path / "img" / f"{n}.jpg")], f"A vase number {k}.") for k, n in enumerate(NAMES)]

    def seen(got: list, got_root: Path) -> list:
        return [(s.id, [_norm(got_root, p) for p in s.images],
                 next(t["value"] for t in s.conversations if t["from"] == "gpt")) for s in got]

    assert seen(samples, root) == want
    assert seen(*load_samples(path, image_folder)) == want  # train.py
    assert seen(*load_training_data(path, image_folder)) == want

    inp = open_input(path, image_folder=image_folder)  # explore / filter
    items = [item for ref in inp.plan(2) for item in inp.items(ref)]
    assert inp.format == fmt
    assert [(i.id, [os.path.normpath(str(p)) for p in i.images]) for i in items] == [(n, p) for n, p, _ in want]

    if fmt == "llava":
        args = ["--llava", str(path), "--llava_image_folder", image_folder]
    elif fmt == "captions":
        args = ["--captions", str(path)]
    else:
        args = ["--training", str(path)]
    out = tmp_path / "out" / "train.jsonl"
    assert convert_main([*args, "--output", str(out), "--retrieval_output", str(tmp_path / "out" / "pairs.jsonl"),
                         "--np", "1"]) == 0
    converted = read_jsonl(out)
    assert [(r["id"], [_norm(out.parent, p) for p in r["images"]],
             r["conversations"][-1]["value"]) for r in converted] == want
    pairs = read_jsonl(tmp_path / "out" / "pairs.jsonl")
    assert [(p["id"], p["query"]) for p in pairs] == [(n, a) for n, _, a in want]


def test_groundtruth_captions_join_their_object_folders_for_every_consumer(examples_copy: Path,
                                                                         tmp_path: Path) -> None:
    gt, folder = examples_copy / "groundTruth.json", examples_copy / "multiview_images"
    assert detect_format(gt) == "captions"
    samples, root = read_training_data(gt, str(folder))
    trained = [(s.id, [_norm(root, p) for p in s.images]) for s in samples]
    assert len(trained) == 6 and all(len(images) == len(VIEWS) for _, images in trained)
    assert [(s.id, s.images) for s in load_samples(gt, str(folder))[0]] == [(s.id, s.images) for s in samples]

    inp = open_input(gt, multiview_dir=str(folder))
    assert inp.format == "captions"
    assert [(i.id, [os.path.normpath(p) for p in i.images]) for i in inp.dataset().items] == trained

    out = tmp_path / "out" / "train.jsonl"
    assert convert_main(["--vasevqa", str(gt), "--multiview_dir", str(folder), "--output", str(out),
                         "--np", "1"]) == 0
    assert [(r["id"], [_norm(out.parent, p) for p in r["images"]]) for r in read_jsonl(out)] == trained


def test_undetectable_and_bad_records_are_one_line_errors(tmp_path: Path) -> None:
    write_json(tmp_path / "odd.json", [{"what": 1}])
    with pytest.raises(InputError, match=r"odd.json: cannot tell the format"):
        read_training_data(tmp_path / "odd.json")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(InputError, match=r"empty.jsonl: empty file"):
        read_training_data(tmp_path / "empty.jsonl")
    # neither conversations nor a text: read as training data, whose own check names the problem
    write_jsonl(tmp_path / "typo.jsonl", [{"id": "x", "images": [], "conversation": []}])
    with pytest.raises(InputError, match=r"typo.jsonl: line 1: 'conversations' must be a non-empty list"):
        read_training_data(tmp_path / "typo.jsonl")
    write_jsonl(tmp_path / "dj.jsonl", [{"id": "x", "text": "<__dj__image> <|__dj__eoc|>", "images": ["a.jpg"]}])
    with pytest.raises(InputError, match=r"dj.jsonl: line 1: empty text"):
        read_training_data(tmp_path / "dj.jsonl")
