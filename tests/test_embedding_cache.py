"""The persistent embedding cache: hit = miss bitwise, corrupted / half-written entries recomputed, concurrent
writers lose nothing, LRU bound, and compare.py reads it (a re-run encodes only what is new)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from tests.test_compare_golden import normalise
from vlmkit.embedding_cache import DB_NAME, EmbeddingCache, content_key, default_cache_dir
from vlmkit.evaluation.pipeline import CompareOptions, run_comparison

REPO = Path(__file__).resolve().parent.parent


def _outputs(folder: Path, roots: dict[str, str]) -> dict[str, str]:
    return {p.name: normalise(p.read_text(encoding="utf-8"), roots) for p in sorted(folder.iterdir()) if p.is_file()}


def _options(examples: Path, out: Path, files: list[str], clip: Path, cache: Path | None) -> CompareOptions:
    return CompareOptions(generated=[examples / "captions" / f for f in files],
                          ground_truth=examples / "groundTruth.json", output_dir=out, clip_model=str(clip),
                          images_dir=examples / "multiview_images", bootstrap=200, cache=cache is not None,
                          cache_dir=cache, groups=frozenset({"clip", "clip_image", "semantic", "fid", "retrieval",
                                                             "lexical"}))


def test_a_warm_run_with_one_new_model_encodes_only_it_and_writes_the_same_bytes(
        examples_copy: Path, tmp_path: Path, tiny_clip_dir: Path) -> None:
    cache = tmp_path / "cache"
    roots = {str(tmp_path): "<tmp>", str(examples_copy): "<examples>"}
    old = ["image_illustration-vague.json", "image_illustration-generic.json"]
    new = [*old, "image_illustration-close.json"]
    cold = run_comparison(_options(examples_copy, tmp_path / "cold", old, tiny_clip_dir, cache))
    assert cold.timings["sentence_encoded"] == cold.timings["sentence_texts"] == 18  # 6 refs + 2 x 6 captions
    warm = run_comparison(_options(examples_copy, tmp_path / "warm", new, tiny_clip_dir, cache))
    plain = run_comparison(_options(examples_copy, tmp_path / "plain", new, tiny_clip_dir, None))
    assert warm.timings["sentence_encoded"] == 6 and warm.timings["clip_text_encoded"] == 6  # the new captions
    assert plain.timings["sentence_encoded"] == 24
    assert _outputs(tmp_path / "warm", roots) == {
        name: text.replace("<tmp>/plain", "<tmp>/warm") for name, text in _outputs(tmp_path / "plain", roots).items()}
    # a second warm run encodes nothing, the renders included, and its numbers are the cold ones bitwise
    again = run_comparison(_options(examples_copy, tmp_path / "again", old, tiny_clip_dir, cache))
    assert again.timings["sentence_encoded"] == 0 and again.timings["clip_text_encoded"] == 0
    for a, b in zip(cold.results, again.results, strict=True):
        assert a.metrics == b.metrics
        for key, values in a.per_sample.items():
            np.testing.assert_array_equal(values, b.per_sample[key])


def test_a_corrupted_entry_is_recomputed_never_trusted(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path) as cache:
        vectors = np.random.default_rng(0).normal(size=(3, 8)).astype(np.float32)
        calls: list[list[int]] = []
        first = cache.get_or_compute("ns", ["a", "b", "c"], lambda idx: calls.append(idx) or vectors[idx])
    db = sqlite3.connect(tmp_path / DB_NAME)
    blob = bytearray(db.execute("SELECT data FROM entries WHERE key = ?", (content_key("ns", "b"),)).fetchone()[0])
    blob[5] ^= 0x40  # one flipped bit in a stored vector
    db.execute("UPDATE entries SET data = ? WHERE key = ?", (bytes(blob), content_key("ns", "b")))
    db.commit()
    db.close()
    with EmbeddingCache(tmp_path) as cache:
        again = cache.get_or_compute("ns", ["a", "b", "c"], lambda idx: calls.append(idx) or vectors[idx])
        assert cache.rejected == 1 and cache.hits == 2
    assert calls == [[0, 1, 2], [1]]
    np.testing.assert_array_equal(again, first)


def test_a_database_that_is_not_one_is_moved_aside(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with EmbeddingCache(tmp_path) as cache:
        assert len(cache) == 0
        cache.put_many("ns", {"k": np.ones(4, np.float32)})
    assert len(list(tmp_path.glob(f"{DB_NAME}.corrupt-*"))) == 1


WRITER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from vlmkit.embedding_cache import EmbeddingCache, content_key
    folder, name, n, pause = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    cache = EmbeddingCache(folder)
    for batch in range(0, n, 10):
        entries = {content_key("ns", f"{name}-{i}"): np.full(16, i, np.float32) for i in range(batch, batch + 10)}
        if pause:  # a slow transaction: killed while it holds uncommitted rows
            def work(db, entries=entries):
                for key, value in entries.items():
                    db.execute("INSERT INTO entries VALUES (?, 'ns', ?, '16', ?, 'x', 64, 0)",
                               (key, value.dtype.str, value.tobytes()))
                    print("row", flush=True)
                    time.sleep(pause)
            cache._write(work)
        else:
            cache.put_many("ns", entries)
    print("done", flush=True)
""")


def _writer(folder: Path, name: str, n: int, pause: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", WRITER, str(folder), name, str(n), str(pause)], env=env,
                            stdout=subprocess.PIPE, text=True)


def test_two_writers_at_once_lose_nothing(tmp_path: Path) -> None:
    writers = [_writer(tmp_path, name, 300) for name in ("a", "b")]
    for w in writers:
        assert w.wait(timeout=300) == 0
    with EmbeddingCache(tmp_path) as cache:
        keys = [content_key("ns", f"{name}-{i}") for name in ("a", "b") for i in range(300)]
        found = cache.get_many(keys)
        assert len(found) == 600 and cache.rejected == 0
        assert found[content_key("ns", "b-123")].tolist() == [123.0] * 16


def test_a_writer_killed_mid_transaction_leaves_only_complete_entries(tmp_path: Path) -> None:
    writer = _writer(tmp_path, "k", 1000, pause=0.05)
    for _ in range(3):  # inside its first transaction, three rows written but not committed
        assert writer.stdout.readline().strip() == "row"
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=60)
    with EmbeddingCache(tmp_path) as cache:
        assert len(cache) == 0  # the uncommitted transaction is gone; nothing half-written is visible
        cache.put_many("ns", {content_key("ns", "after"): np.zeros(4, np.float32)})
        assert len(cache) == 1


def test_half_written_rows_fail_their_checksum_and_are_recomputed(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path) as cache:
        cache.put_many("ns", {content_key("ns", "t"): np.arange(8, dtype=np.float32)})
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("UPDATE entries SET data = substr(data, 1, 13)")  # a truncated vector (a torn write, a bad block)
    db.commit()
    db.close()
    with EmbeddingCache(tmp_path) as cache:
        out = cache.get_or_compute("ns", ["t"], lambda idx: np.arange(8, dtype=np.float32)[None, :])
        assert cache.rejected == 1
    np.testing.assert_array_equal(out[0], np.arange(8, dtype=np.float32))


def test_least_recently_used_entries_are_evicted_beyond_the_bound(tmp_path: Path) -> None:
    with EmbeddingCache(tmp_path, max_bytes=4000) as cache:  # 10 vectors of 400 bytes
        for i in range(10):
            cache.put_many("ns", {f"k{i}": np.full(100, i, np.float32)})
            time.sleep(0.002)
        cache.get_many(["k0"])  # used again: now the most recent
        cache.put_many("ns", {"k10": np.full(100, 10, np.float32)})
        left = set(cache.get_many([f"k{i}" for i in range(11)]))
        assert cache.total_bytes() <= 3600
        assert "k0" in left and "k10" in left and "k1" not in left and "k2" not in left


def test_the_default_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VLMKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "vlmkit" / "embeddings"
    monkeypatch.setenv("VLMKIT_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"


def test_missing_rows_are_committed_a_chunk_at_a_time(tmp_path: Path) -> None:
    """A run killed during encoding keeps every finished chunk (here: the compute fails on the third chunk)."""
    def compute(indices: list[int]) -> np.ndarray:
        if indices[0] >= 20:
            raise KeyboardInterrupt
        return np.asarray(indices, dtype=np.float32)[:, None].repeat(4, axis=1)

    texts = [f"t{i}" for i in range(30)]
    with EmbeddingCache(tmp_path) as cache:
        with pytest.raises(KeyboardInterrupt):
            cache.get_or_compute("ns", texts, compute, chunk=10)
        assert len(cache) == 20
        calls: list[list[int]] = []
        rows = cache.get_or_compute("ns", texts, lambda idx: calls.append(idx) or np.full((len(idx), 4), -1.0,
                                                                                              np.float32), chunk=10)
    assert calls == [list(range(20, 30))]
    assert rows[:20, 0].tolist() == list(range(20)) and (rows[20:] == -1).all()
