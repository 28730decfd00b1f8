"""retrieval.py eval / index with the persistent embedding cache: a warm run reads every embedding, encodes
nothing, and writes bitwise the same metrics and vectors as a cold one; --no_cache writes no cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import retrieval  # noqa: E402
from vlmkit.embedding_cache import DB_NAME, EmbeddingCache  # noqa: E402
from vlmkit.io import InputError  # noqa: E402


@pytest.fixture()
def encode_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows passed to the model's encode (texts and images) -- counts the real encoder's work."""
    from sentence_transformers import SentenceTransformer

    calls: list[int] = []
    original = SentenceTransformer.encode

    def counting(self, inputs, *args, **kwargs):
        calls.append(len(inputs))
        return original(self, inputs, *args, **kwargs)

    monkeypatch.setattr(SentenceTransformer, "encode", counting)
    return calls


def val_with_repeats(shape_pairs_dir: Path, folder: Path) -> Path:
    """val.jsonl plus captions of several token lengths and a second caption for one image (a pool with several
    batches of different shapes at --batch_size 4)."""
    rows = [json.loads(line) for line in (shape_pairs_dir / "val.jsonl").read_text().splitlines()]
    rows = [{**r, "positive": str(shape_pairs_dir / r["positive"])} for r in rows]
    rows.append({"query": "a very small red circle drawn on a plain grey background", "positive": rows[0]["positive"]})
    path = folder / "val.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_eval(model: Path, data: Path, out: Path, cache: Path, *extra: str) -> dict:
    assert retrieval.main(["eval", "--model", str(model), "--data", str(data), "--output", str(out),
                           "--batch_size", "4", "--bootstrap", "50", "--cache_dir", str(cache), *extra]) == 0
    return json.loads(out.read_text())


def test_eval_warm_equals_cold_bitwise_and_encodes_nothing(tiny_clip_dir: Path, tiny_siglip_words_dir: Path,
                                                           shape_pairs_dir: Path, tmp_path: Path,
                                                           encode_calls: list[int]) -> None:
    data = val_with_repeats(shape_pairs_dir, tmp_path)
    cache = tmp_path / "cache"
    zero = ("--zero_shot", str(tiny_siglip_words_dir))
    run_eval(tiny_clip_dir, data, tmp_path / "none.json", cache, *zero, "--no_cache")
    assert encode_calls and not cache.exists()  # --no_cache: nothing written, not even the folder
    encode_calls.clear()
    run_eval(tiny_clip_dir, data, tmp_path / "cold.json", cache, *zero)
    cold_rows = sum(encode_calls)
    assert cold_rows > 0
    pool = json.loads((tmp_path / "cold.json").read_text())["pool"]
    with EmbeddingCache(cache) as store:  # both models: distinct images + captions each
        assert len(store) == 2 * (pool["images"] + pool["captions"])
    encode_calls.clear()
    run_eval(tiny_clip_dir, data, tmp_path / "warm.json", cache, *zero)
    assert encode_calls == []  # the second run encodes nothing
    cold, warm, none = ((tmp_path / f"{n}.json").read_bytes() for n in ("cold", "warm", "none"))
    assert warm == cold == none  # bitwise: the same metrics JSON with, without and from the cache


def test_eval_float16_storage_reads_the_float32_cache(tiny_clip_dir: Path, shape_pairs_dir: Path,
                                                      tmp_path: Path, encode_calls: list[int]) -> None:
    data = shape_pairs_dir / "val.jsonl"
    cache = tmp_path / "cache"
    run_eval(tiny_clip_dir, data, tmp_path / "a.json", cache, "--embedding_dtype", "float16", "--no_cache")
    run_eval(tiny_clip_dir, data, tmp_path / "warm32.json", cache)  # fills the cache in float32
    encode_calls.clear()
    run_eval(tiny_clip_dir, data, tmp_path / "b.json", cache, "--embedding_dtype", "float16")
    assert encode_calls == []
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_embeddings_do_not_depend_on_their_batch(tiny_clip_dir: Path, shape_pairs_dir: Path) -> None:
    """Fixed-shape batches: a caption's / an image's vector is the same alone, in a batch of others, in any order."""
    from vlmkit.retrieval.model import encode_images, encode_texts, load_encoder

    model = load_encoder(tiny_clip_dir)
    rows = [json.loads(line) for line in (shape_pairs_dir / "val.jsonl").read_text().splitlines()]
    texts = [r["query"] for r in rows] + ["a much longer caption with many more words than the others"]
    paths = [str(shape_pairs_dir / r["positive"]) for r in rows][:6]
    together = encode_texts(model, texts, 4, progress=False)
    for i in (0, 5, len(texts) - 1):
        assert np.array_equal(encode_texts(model, [texts[i]], 4, progress=False)[0], together[i])
    assert np.array_equal(encode_texts(model, texts[::-1], 4, progress=False)[::-1], together)
    images = encode_images(model, paths, 4, progress=False)
    assert np.array_equal(encode_images(model, paths[3:], 4, progress=False), images[3:])


def test_index_warm_equals_cold_and_no_cache_writes_nothing(tiny_clip_dir: Path, shape_pairs_dir: Path,
                                                            tmp_path: Path, encode_calls: list[int]) -> None:
    import faiss

    images = shape_pairs_dir / "val.jsonl"
    cache = tmp_path / "cache"

    def index(name: str, *extra: str) -> np.ndarray:
        out = tmp_path / name
        assert retrieval.main(["index", "--model", str(tiny_clip_dir), "--images", str(images), "--output", str(out),
                               "--batch_size", "4", "--part_size", "5", "--cache_dir", str(cache), *extra]) == 0
        flat = faiss.deserialize_index(np.frombuffer((out / "index.faiss").read_bytes(), dtype=np.uint8))
        return flat.reconstruct_n(0, flat.ntotal)

    plain = index("plain", "--no_cache")
    assert not cache.exists()
    encode_calls.clear()
    cold = index("cold")
    assert sum(encode_calls) > 0
    with EmbeddingCache(cache) as store:
        assert len(store) == len(plain)
    encode_calls.clear()
    warm = index("warm")
    assert encode_calls == []
    assert np.array_equal(warm, cold) and np.array_equal(cold, plain)  # bitwise
    assert (tmp_path / "warm" / "index.faiss").read_bytes() == (tmp_path / "cold" / "index.faiss").read_bytes()


def test_another_model_is_a_miss(tiny_clip_dir: Path, tiny_siglip_words_dir: Path, shape_pairs_dir: Path,
                                 tmp_path: Path, encode_calls: list[int]) -> None:
    data = shape_pairs_dir / "val.jsonl"
    cache = tmp_path / "cache"
    run_eval(tiny_clip_dir, data, tmp_path / "clip.json", cache)
    encode_calls.clear()
    run_eval(tiny_siglip_words_dir, data, tmp_path / "siglip.json", cache)
    assert sum(encode_calls) > 0  # the fingerprint differs: nothing of the CLIP run is reused
    assert (cache / DB_NAME).is_file()


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_cache_max_gb_is_range_checked(value: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--cache_max_gb"):
        retrieval.main(["eval", "--model", str(tmp_path), "--data", "x.jsonl", "--output", str(tmp_path / "o.json"),
                        "--cache_max_gb", value])
