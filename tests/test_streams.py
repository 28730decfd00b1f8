"""Streaming data sets: Parquet, WebDataset and HF datasets inputs filter to the same kept records as JSONL; part
files (--output_shards) concatenate to the single-file output; a killed run resumes from its finished chunks."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from dataprocess import filter as dp_filter
from tests.fixtures.caption_data import make_corrupt, make_image, read_jsonl, write_jsonl
from vlmkit.streams import ChunkRef, Source, split_counts

RECIPE = "process:\n  - words_num_filter:\n      min_num: 3\n  - image_shape_filter:\n      min_width: 200\n"
SIZES = {"big": (300, 240), "wide": (400, 100), "small": (120, 300)}


def rows(tmp: Path) -> list[dict]:
    """12 samples: short texts (dropped by words_num_filter), small images (dropped by image_shape_filter), one
    corrupt image (dropped, listed), the rest kept."""
    img = tmp / "img"
    for name, size in SIZES.items():
        make_image(img / f"{name}.jpg", size)
    make_corrupt(img / "corrupt.jpg")
    names = ["big", "small", "wide", "big", "corrupt", "wide", "small", "big", "big", "wide", "small", "big"]
    out = []
    for k, name in enumerate(names):
        text = "two words" if k % 5 == 3 else f"sample {k} shows a {name} vase with painted figures"
        out.append({"id": f"s{k:02d}", "text": text, "images": [f"img/{name}.jpg"]})
    return out


def run_filter(tmp: Path, data: Path, export: Path, *extra: str) -> int:
    recipe = tmp / "recipe.yaml"
    recipe.write_text(RECIPE)
    return dp_filter.main(["--recipe", str(recipe), "--dataset_path", str(data), "--export_path", str(export),
                           "--np", "1", "--no_progress", "--chunk_size", "5", *extra])


@pytest.fixture()
def jsonl_run(tmp_path: Path) -> tuple[list[dict], Path]:
    data = write_jsonl(tmp_path / "data.jsonl", rows(tmp_path))
    assert run_filter(tmp_path, data, tmp_path / "out" / "kept.jsonl") == 0
    return read_jsonl(tmp_path / "out" / "kept.jsonl"), tmp_path / "out"


EXPECTED_KEPT = ["s00", "s02", "s05", "s07", "s09", "s11"]  # s03, s08 short; s01, s06, s10 small; s04 corrupt


def test_jsonl_reference(jsonl_run) -> None:
    kept, out = jsonl_run
    assert [r["id"] for r in kept] == EXPECTED_KEPT
    summary = json.loads((out / "kept_summary.json").read_text())
    assert summary["total"] == 12 and summary["chunks"] == 3 and summary["bad_images"]["by_kind"] == {"unreadable": 1}
    assert [o["dropped"] for o in summary["ops"]] == [2, 4]
    assert not list(out.glob(".*work"))  # the work folder goes at the commit point


def test_parquet_with_paths_and_with_embedded_bytes(tmp_path: Path, jsonl_run) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    kept, out = jsonl_run
    data = rows(tmp_path)
    # paths, in two files of a folder with small row groups (chunks cross row groups and files)
    folder = tmp_path / "pq"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(data[:7]), folder / "a.parquet", row_group_size=3)
    pq.write_table(pa.Table.from_pylist(data[7:]), folder / "b.parquet", row_group_size=2)
    # relative paths are resolved against the data's folder (here pq/), or --image_folder
    assert run_filter(tmp_path, folder, tmp_path / "o1" / "kept.parquet", "--image_folder", str(tmp_path)) == 0
    assert pq.read_table(tmp_path / "o1" / "kept.parquet").to_pylist() == kept
    # embedded bytes: the same images, the corrupt one included
    embedded = [{**r, "images": [(tmp_path / p).read_bytes() for p in r["images"]]} for r in data]
    pq.write_table(pa.Table.from_pylist(embedded), tmp_path / "emb.parquet")
    assert run_filter(tmp_path, tmp_path / "emb.parquet", tmp_path / "o2" / "kept.parquet") == 0
    got = pq.read_table(tmp_path / "o2" / "kept.parquet").to_pylist()
    assert [r["id"] for r in got] == EXPECTED_KEPT
    assert got[0]["images"][0] == (tmp_path / "img" / "big.jpg").read_bytes()
    dropped = {r["id"]: r for r in read_jsonl(tmp_path / "o2" / "kept_dropped.jsonl")}
    assert dropped["s04"]["image_problem"] == "unreadable" and "emb.parquet: row 4: image 0" in dropped["s04"]["image"]
    stats = read_jsonl(tmp_path / "o2" / "kept_stats.jsonl")
    assert stats == read_jsonl(out / "kept_stats.jsonl")  # same stats as from the files


def test_webdataset_shards(tmp_path: Path, jsonl_run) -> None:
    import io

    kept, out = jsonl_run
    data = rows(tmp_path)
    shards = tmp_path / "wds"
    shards.mkdir()
    for s, part in enumerate((data[:5], data[5:])):
        with tarfile.open(shards / f"shard-{s:04d}.tar", "w") as tar:
            for r in part:
                for name, payload in ((f"{r['id']}.json", json.dumps({"id": r["id"], "text": r["text"]}).encode()),
                                      (f"{r['id']}.jpg", (tmp_path / r["images"][0]).read_bytes())):
                    info = tarfile.TarInfo(name)
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    assert run_filter(tmp_path, shards, tmp_path / "o" / "kept.tar") == 0
    refs = Source(tmp_path / "o" / "kept.tar").plan(100)
    got = Source(tmp_path / "o" / "kept.tar").read(refs[0])
    assert [r["__key__"] for r, _ in got] == EXPECTED_KEPT
    assert got[0][0]["members"]["jpg"] == (tmp_path / "img" / "big.jpg").read_bytes()
    assert read_jsonl(tmp_path / "o" / "kept_stats.jsonl") == read_jsonl(out / "kept_stats.jsonl")
    # two runs give the same bytes (fixed member times and owners)
    assert run_filter(tmp_path, shards, tmp_path / "o2" / "kept.tar") == 0
    assert (tmp_path / "o" / "kept.tar").read_bytes() == (tmp_path / "o2" / "kept.tar").read_bytes()


def test_hf_save_to_disk_folder(tmp_path: Path, jsonl_run) -> None:
    import datasets
    import pyarrow.parquet as pq

    kept, out = jsonl_run
    data = rows(tmp_path)
    ds = datasets.Dataset.from_list([{**r, "images": [str(tmp_path / p) for p in r["images"]]} for r in data])
    ds.save_to_disk(str(tmp_path / "hf"), num_shards=3)
    assert len(list((tmp_path / "hf").glob("*.arrow"))) > 1  # several Arrow files, read in state.json's order
    assert run_filter(tmp_path, tmp_path / "hf", tmp_path / "o" / "kept.parquet") == 0
    got = pq.read_table(tmp_path / "o" / "kept.parquet").to_pylist()
    assert [r["id"] for r in got] == EXPECTED_KEPT
    assert [r["text"] for r in got] == [r["text"] for r in kept]
    # HF's Image feature ({"bytes", "path"} structs)
    features = datasets.Features({"id": datasets.Value("string"), "text": datasets.Value("string"),
                                  "images": datasets.List(datasets.Image())})
    ds = datasets.Dataset.from_list([{**r, "images": [str(tmp_path / p) for p in r["images"]]} for r in data],
                                    features=features)
    ds.save_to_disk(str(tmp_path / "hf_img"))
    assert run_filter(tmp_path, tmp_path / "hf_img", tmp_path / "o2" / "kept.parquet") == 0
    assert [r["id"] for r in pq.read_table(tmp_path / "o2" / "kept.parquet").to_pylist()] == EXPECTED_KEPT


def test_output_shards_concatenate_to_the_single_file(tmp_path: Path, jsonl_run) -> None:
    kept, out = jsonl_run
    data = tmp_path / "data.jsonl"
    assert run_filter(tmp_path, data, tmp_path / "sh" / "kept.jsonl", "--output_shards", "4") == 0
    parts = [tmp_path / "sh" / f"kept-{i:05d}-of-00004.jsonl" for i in range(4)]
    assert [len(read_jsonl(p)) for p in parts] == split_counts(6, 4) == [2, 2, 1, 1]
    assert b"".join(p.read_bytes() for p in parts) == (out / "kept.jsonl").read_bytes()
    assert not (tmp_path / "sh" / "kept.jsonl").exists()


def test_json_output_is_byte_identical_to_the_whole_document_dump(tmp_path: Path) -> None:
    make_image(tmp_path / "a_front.jpg", (300, 300))
    recs = [{"images": ["a_front.jpg"], "caption": f"caption number {k} with enough words"} for k in range(7)]
    data = tmp_path / "caps.json"
    data.write_text(json.dumps(recs))
    assert run_filter(tmp_path, data, tmp_path / "o" / "kept.json") == 0
    assert (tmp_path / "o" / "kept.json").read_text() == json.dumps(recs, ensure_ascii=False, indent=2) + "\n"


def test_a_killed_run_resumes_from_its_finished_chunks(tmp_path: Path, jsonl_run, monkeypatch) -> None:
    kept, out = jsonl_run
    data = tmp_path / "data.jsonl"
    real = dp_filter.FilterJob.__call__
    calls: list[int] = []

    def dies_at_third_chunk(self, ref: ChunkRef):
        if ref.index == 2:
            raise KeyboardInterrupt  # the driver is stopped after two chunks committed
        calls.append(ref.index)
        return real(self, ref)

    monkeypatch.setattr(dp_filter.FilterJob, "__call__", dies_at_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        run_filter(tmp_path, data, tmp_path / "r" / "kept.jsonl")
    assert not (tmp_path / "r" / "kept.jsonl").exists()
    assert len(list((tmp_path / "r" / ".kept.jsonl.work").glob("chunk-*.json"))) == 2
    monkeypatch.setattr(dp_filter.FilterJob, "__call__", lambda self, ref: calls.append(ref.index) or real(self, ref))
    assert run_filter(tmp_path, data, tmp_path / "r" / "kept.jsonl", "--resume") == 0
    assert calls == [0, 1, 2]  # only the unfinished chunk ran again
    for name in ("kept.jsonl", "kept_stats.jsonl", "kept_dropped.jsonl"):
        assert (tmp_path / "r" / name).read_bytes() == (out / name).read_bytes()
    assert json.loads((tmp_path / "r" / "kept_summary.json").read_text())["resumed_chunks"] == 2


def test_jsonl_chunks_name_their_lines(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_bytes(b'\xef\xbb\xbf{"text": "a"}\n\n{"text": "b"}\n{"text": "c"}\n{bad\n')
    src = Source(data)
    refs = src.plan(2)
    assert [(r.count, r.first) for r in refs] == [(2, 1), (2, 4)]
    assert [w for _, w in src.read(refs[0])] == [f"{data}: line 1", f"{data}: line 3"]
    with pytest.raises(Exception, match="line 5: malformed JSON"):
        src.read(refs[1])


def test_explore_reads_parquet_with_embedded_images(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dataprocess import explore

    data = rows(tmp_path)
    embedded = [{**r, "images": [(tmp_path / p).read_bytes() for p in r["images"]]} for r in data]
    pq.write_table(pa.Table.from_pylist(embedded), tmp_path / "emb.parquet")
    assert explore.main(["--input", str(tmp_path / "emb.parquet"), "--output_dir", str(tmp_path / "ex"),
                         "--np", "1"]) == 0
    report = json.loads((tmp_path / "ex" / "explore.json").read_text())
    assert report["text"]["samples"] == 12
    images = report["images"]
    assert images["references"] == 12 and images["readable"] == 11 and images["unreadable"] == 1
    # the same pictures as files: identical bytes are content duplicates (5 big, 3 wide, 3 small copies)
    assert images["content_duplicates"]["redundant_files"] == 8


def test_ray_is_imported_only_when_asked_for(tmp_path: Path) -> None:
    import subprocess
    import sys

    data = write_jsonl(tmp_path / "data.jsonl", rows(tmp_path))
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    code = ("import sys; from dataprocess import filter as f; import qwen, render, eval_vqa; "
            f"assert f.main(['--recipe', {str(tmp_path / 'recipe.yaml')!r}, '--dataset_path', {str(data)!r}, "
            f"'--export_path', {str(tmp_path / 'o' / 'k.jsonl')!r}, '--no_progress', '--np', '1']) == 0; "
            "print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parent.parent,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.parametrize(("extra", "export", "message"), [
    (["--output_shards", "2"], "kept.json", "a .json output is one document"),
    ([], "kept.jsonl", "must end in .json"),
    (["--ray_address", "auto"], "kept.json", "--ray_address / --gpus_per_worker / --ray_tmpdir need --executor ray"),
    (["--output_shards", "0"], "kept.json", "--output_shards 0: must be >= 1"),
])
def test_bad_streaming_settings_are_one_line_errors(tmp_path: Path, capsys, extra, export, message) -> None:
    from vlmkit.cli import run_main

    make_image(tmp_path / "a_front.jpg", (300, 300))
    data = tmp_path / "caps.json"
    data.write_text(json.dumps([{"images": ["a_front.jpg"], "caption": "a caption with enough words"}]))
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    with pytest.raises(SystemExit) as exit_info:
        run_main(dp_filter.main, ["--recipe", str(tmp_path / "recipe.yaml"), "--dataset_path", str(data),
                                  "--export_path", str(tmp_path / "o" / export), "--no_progress", *extra])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
