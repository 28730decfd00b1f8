"""retrieval.py index / search: FAISS index of the fine-tuned tiny CLIP's image embeddings, resumable building."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from vlmkit.io import InputError

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import retrieval  # noqa: E402

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black"]


def circles_jsonl(shape_pairs_dir: Path, folder: Path) -> Path:
    """The 8 circles (one per colour: shape_000, 008, ..., 056) and their captions."""
    rows = [{"query": f"a {c} circle", "positive": str(shape_pairs_dir / "images" / f"shape_{8 * k:03d}.png")}
            for k, c in enumerate(COLOURS)]
    path = folder / "circles.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def circle_index(retrieval_run: Path, shape_pairs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("circle_index")
    out = folder / "index"
    assert retrieval.main(["index", "--model", str(retrieval_run / "merged"), "--images",
                           str(circles_jsonl(shape_pairs_dir, folder)), "--output", str(out)]) == 0
    return out


def search(capsys, *args: str) -> list[dict]:
    capsys.readouterr()
    assert retrieval.main(["search", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["results"]


def test_each_caption_finds_its_own_image_first(capsys, circle_index: Path, shape_pairs_dir: Path) -> None:
    meta = json.loads((circle_index / "index.json").read_text())
    assert meta["count"] == 8 and meta["factory"] == "Flat" and meta["dim"] == 16
    for k, colour in enumerate(COLOURS):
        results = search(capsys, "--index", str(circle_index), "--query", f"a {colour} circle", "-k", "3")
        assert results[0]["path"] == str(shape_pairs_dir / "images" / f"shape_{8 * k:03d}.png"), colour
        assert [r["rank"] for r in results] == [1, 2, 3] and results[0]["score"] >= results[1]["score"]


def test_flat_search_equals_brute_force_cosine(capsys, circle_index: Path, retrieval_run: Path) -> None:
    from vlmkit.retrieval.model import encode_images, encode_texts, load_encoder

    paths = [json.loads(line)["path"] for line in (circle_index / "ids.jsonl").read_text().splitlines()]
    model = load_encoder(retrieval_run / "merged")
    scores = encode_images(model, paths) @ encode_texts(model, ["a green circle"])[0]
    results = search(capsys, "--index", str(circle_index), "--query", "a green circle", "-k", "8")
    assert [r["path"] for r in results] == [paths[i] for i in np.argsort(-scores, kind="stable")]
    assert [r["score"] for r in results] == pytest.approx(np.sort(scores)[::-1].tolist(), abs=1e-5)


def test_an_image_query_finds_itself(capsys, circle_index: Path, shape_pairs_dir: Path) -> None:
    image = str(shape_pairs_dir / "images" / "shape_016.png")
    results = search(capsys, "--index", str(circle_index), "--image", image, "-k", "2")
    assert results[0]["path"] == image and results[0]["score"] == pytest.approx(1.0, abs=1e-5)
    capsys.readouterr()
    assert retrieval.main(["search", "--index", str(circle_index), "--query", "a red circle", "-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].split()[0] == "1" and lines[0].endswith("shape_000.png")


def test_a_bad_image_stops_or_is_skipped_and_listed(retrieval_run: Path, shape_pairs_dir: Path,
                                                    tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for k in range(3):
        (images / f"{k}.png").write_bytes((shape_pairs_dir / "images" / f"shape_{k:03d}.png").read_bytes())
    (images / "bad.png").write_bytes(b"\x89PNG broken")
    args = ["index", "--model", str(retrieval_run / "merged"), "--images", str(images), "--output",
            str(tmp_path / "idx")]
    with pytest.raises(InputError, match=r"bad\.png: unreadable image .*--skip_bad_samples"):
        retrieval.main(args)
    assert not (tmp_path / "idx").exists()
    assert retrieval.main(args + ["--skip_bad_samples", "--index_type", "hnsw"]) == 0
    meta = json.loads((tmp_path / "idx" / "index.json").read_text())
    assert meta["count"] == 3 and meta["factory"] == "HNSW32" and meta["skipped"][0]["image"].endswith("bad.png")
    with pytest.raises(InputError, match="holds an index already; pass --overwrite"):
        retrieval.main(args + ["--skip_bad_samples"])


def test_an_interrupted_index_resumes_from_its_saved_parts(retrieval_run: Path, shape_pairs_dir: Path,
                                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vlmkit.retrieval import model as model_module

    images = str(shape_pairs_dir / "images")
    args = ["index", "--model", str(retrieval_run / "merged"), "--images", images, "--part_size", "16"]
    assert retrieval.main(args + ["--output", str(tmp_path / "reference")]) == 0

    calls: list[int] = []
    real = model_module.encode_images

    def interrupted(model, paths, *a, **k):
        calls.append(len(paths))
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if killed while embedding the third part
        return real(model, paths, *a, **k)

    monkeypatch.setattr(model_module, "encode_images", interrupted)
    out = tmp_path / "index"
    with pytest.raises(KeyboardInterrupt):
        retrieval.main(args + ["--output", str(out)])
    assert sorted(p.name for p in (out / ".parts").glob("part-*.npy")) == ["part-00000.npy", "part-00001.npy"]
    assert not (out / "index.json").exists()
    with pytest.raises(InputError, match="partly embedded collection; pass --resume"):
        retrieval.main(args + ["--output", str(out)])
    with pytest.raises(InputError, match="not an index folder .*--resume"):
        retrieval.main(["search", "--index", str(out), "--query", "a red circle"])
    calls.clear()

    def counted(model, paths, *a, **k):
        calls.append(len(paths))
        return real(model, paths, *a, **k)

    monkeypatch.setattr(model_module, "encode_images", counted)
    assert retrieval.main(args + ["--output", str(out), "--resume"]) == 0
    assert calls == [16, 16]  # only the two missing parts of four are embedded again
    assert not (out / ".parts").exists()
    assert (out / "ids.jsonl").read_text() == (tmp_path / "reference" / "ids.jsonl").read_text()
    import faiss

    a = faiss.read_index(str(out / "index.faiss"))
    b = faiss.read_index(str(tmp_path / "reference" / "index.faiss"))
    np.testing.assert_array_equal(a.reconstruct_n(0, a.ntotal), b.reconstruct_n(0, b.ntotal))


def test_ivf_index_and_index_type_errors(retrieval_run: Path, shape_pairs_dir: Path, tmp_path: Path) -> None:
    from vlmkit.retrieval.search import Searcher

    base = ["index", "--model", str(retrieval_run / "merged"), "--images", str(shape_pairs_dir / "images")]
    assert retrieval.main(base + ["--output", str(tmp_path / "ivf"), "--index_type", "ivf", "--nlist", "4",
                                  "--nprobe", "4"]) == 0
    searcher = Searcher(tmp_path / "ivf")
    assert searcher.describe()["factory"] == "IVF4,Flat" and searcher.index.nprobe == 4  # every cell: exact
    top = searcher.search_image(__import__("PIL.Image").Image.open(shape_pairs_dir / "images" / "shape_005.png"), 1)
    assert top[0]["path"].endswith("shape_005.png")
    with pytest.raises(InputError, match="--index_type bogus: choose flat, ivf, hnsw"):
        retrieval.main(base + ["--output", str(tmp_path / "x"), "--index_type", "bogus"])
    with pytest.raises(InputError, match="FAISS cannot build"):
        retrieval.main(base + ["--output", str(tmp_path / "y"), "--index_type", "IVF4,PQ7"])
