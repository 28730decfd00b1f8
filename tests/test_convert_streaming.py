"""dataprocess.convert streams: memory holds one chunk of samples (plus a compact index), whatever the data set's
size, and the outputs do not depend on the chunk size."""

from __future__ import annotations

import json
from pathlib import Path

from dataprocess.convert import main as convert_main
from tests.fixtures.caption_data import make_image, write_jsonl

FILES = ("train.jsonl", "train_val.jsonl", "train_dropped.jsonl", "pairs.jsonl", "pairs_val.jsonl")


def synthetic(tmp_path: Path, n: int) -> Path:
    """n training samples over n // 3 images (so dedup and the image-grouped split have work), some exact repeats."""
    images = [make_image(tmp_path / "img" / f"{k}.png", (8, 8), fmt="PNG", color=(k % 256, k // 256, 7))
              for k in range(max(1, n // 3))]
    rows = []
    for i in range(n):
        caption = f"caption {i % 2}"
        rows.append({"id": f"s{i % (n - 5)}", "images": [str(images[i % len(images)])],
                     "conversations": [{"from": "human", "value": "<image>\nDescribe."},
                                       {"from": "gpt", "value": caption}]})
    return write_jsonl(tmp_path / "in.jsonl", rows)


def run(tmp_path: Path, data: Path, name: str, chunk_size: int) -> tuple[dict[str, str], dict]:
    out = tmp_path / name
    assert convert_main(["--training", str(data), "--output", str(out / "train.jsonl"), "--val_ratio", "0.2",
                         "--dedup", "image_text", "--retrieval_output", str(out / "pairs.jsonl"), "--np", "2",
                         "--chunk_size", str(chunk_size)]) == 0
    texts = {f: (out / f).read_text().replace(str(out), "OUT") for f in FILES}
    summary = json.loads((out / "train_summary.json").read_text().replace(str(out), "OUT"))
    return texts, summary


def test_peak_samples_do_not_grow_with_the_data_set(tmp_path: Path) -> None:
    peaks = {}
    for n in (60, 240):
        data = synthetic(tmp_path / str(n), n)
        streamed, summary = run(tmp_path / str(n), data, "streamed", chunk_size=16)
        whole, whole_summary = run(tmp_path / str(n), data, "whole", chunk_size=10 * n)
        assert streamed == whole  # byte-identical outputs, whatever the chunk size
        assert summary["samples_read"] == n and summary["dedup"]["dropped"] > 0 and summary["split"]["val"] > 0
        assert summary["renamed_duplicate_ids"] == 5
        assert whole_summary["streaming"]["peak_samples_in_memory"] == n
        assert summary.pop("streaming") != whole_summary.pop("streaming")
        assert summary == whole_summary
        peaks[n] = json.loads((tmp_path / str(n) / "streamed" / "train_summary.json").read_text())["streaming"]
    assert peaks[60]["peak_samples_in_memory"] == peaks[240]["peak_samples_in_memory"] == 16


def test_errors_name_the_sample_index_in_its_file_across_chunks(tmp_path: Path) -> None:
    data = synthetic(tmp_path, 30)
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    rows[21]["images"] = [str(tmp_path / "img" / "gone.png")]
    write_jsonl(data, rows)
    out = tmp_path / "o" / "train.jsonl"
    args = ["--training", str(data), "--output", str(out), "--chunk_size", "4"]
    try:
        convert_main(args)
    except Exception as exc:  # InputError: one line naming the item
        assert f"{data}: sample 21 (id s21)" in str(exc) and "gone.png" in str(exc)
    else:
        raise AssertionError("a missing image must fail")
    assert not out.exists()  # nothing half written
    assert convert_main([*args, "--skip_missing_images"]) == 0
    dropped = [json.loads(line) for line in (tmp_path / "o" / "train_dropped.jsonl").read_text().splitlines()]
    assert [d["id"] for d in dropped] == ["s21"] and dropped[0]["where"].endswith("sample 21 (id s21)")
    assert len(out.read_text().splitlines()) == 29
