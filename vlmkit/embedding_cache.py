"""A persistent, content-addressed embedding cache: a re-run encodes only the texts and images it has not seen.

Key = SHA-256 over (namespace, content): the namespace names the encoder exactly as the metric signature does
(folder name @ fingerprint of its configs and weights) plus every setting that changes the vector (max sequence
length, padding, normalisation, device, library versions); the content is the text itself, or a SHA-256 of an
image file's bytes. So a different fine-tune, a changed setting or an edited render is a miss, never a stale hit.

Storage: one SQLite database in WAL mode (Python's own sqlite3), each batch of new entries written in one
transaction. Why SQLite rather than one file per entry: a compare run adds ~10^4 entries of 1.5 kB, which as files
would cost an inode, an fsync and a rename each, and least-recently-used bookkeeping would need a second index;
SQLite gives atomic multi-entry commits (a SIGKILL at any point leaves the last committed state: the WAL's
uncommitted frames are discarded on the next open), concurrent writers that serialise on its lock instead of
overwriting each other (a busy timeout waits), readers that never block, and LRU as one indexed column. Each entry
also carries a BLAKE2b checksum of its bytes, dtype and shape, verified on every read: an entry that does not
verify (a bad disk block, a hand-edited file) is deleted and recomputed, never trusted; a database SQLite cannot
open is moved aside and a new one started. WAL needs a local filesystem (not NFS): if the folder cannot hold one,
the run goes on without a cache and says so.

Bounded by `max_bytes`: after each write, the least recently used entries are deleted until the total is at most
90 % of the bound. Tests point the default folder elsewhere with VLMKIT_CACHE_DIR (tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlmkit.options import Options, opt
from vlmkit.ranges import Range

log = logging.getLogger(__name__)

DB_NAME = "embeddings.sqlite3"
DEFAULT_MAX_GB = 4.0
BUSY_TIMEOUT_S = 120.0
_SELECT_CHUNK = 500  # keys per SELECT ... IN (...) (SQLite's default variable limit is far above)
SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,      -- sha256(namespace, content)
    namespace TEXT NOT NULL,   -- the encoder and its settings, readable (for `what is in my cache`)
    dtype TEXT NOT NULL,
    shape TEXT NOT NULL,
    data BLOB NOT NULL,
    checksum TEXT NOT NULL,    -- blake2b(dtype, shape, data)
    size INTEGER NOT NULL,
    last_used REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_lru ON entries(last_used);
"""


def default_cache_dir() -> Path:
    """$VLMKIT_CACHE_DIR, else $XDG_CACHE_HOME/vlmkit/embeddings, else ~/.cache/vlmkit/embeddings."""
    explicit = os.environ.get("VLMKIT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "vlmkit" / "embeddings"


def content_key(namespace: str, content: str | bytes) -> str:
    data = content.encode("utf-8") if isinstance(content, str) else content
    return hashlib.sha256(namespace.encode("utf-8") + b"\0" + data).hexdigest()


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (an image's identity in the cache: a re-rendered view is a new entry)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fixed_batches(lengths: Sequence[int], batch_size: int) -> list[tuple[list[int], int]]:
    """Batches of one shape: (indices, real) with len(indices) == batch_size, all of one token length (longest
    first, input order inside); the first `real` indices are the batch's texts, the rest repeat its first one.

    Why: a row must not depend on its companions (padding and batch size change last bits), or a cached vector
    would differ from a fresh one; vlmkit/evaluation/encoders.py has the measurements. Used by compare's encoders
    and vlmkit/retrieval/model.py."""
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(int(n), []).append(i)
    out = []
    for n in sorted(groups, reverse=True):
        group = groups[n]
        for start in range(0, len(group), batch_size):
            real = group[start:start + batch_size]
            out.append((real + [real[0]] * (batch_size - len(real)), len(real)))
    return out


def _checksum(dtype: str, shape: str, data: bytes) -> str:
    return hashlib.blake2b(f"{dtype}|{shape}|".encode() + data, digest_size=16).hexdigest()


class EmbeddingCache:
    """Verified get / atomic put of arrays by content key; safe for concurrent processes and SIGKILL."""

    def __init__(self, folder: str | os.PathLike, max_bytes: int | None = int(DEFAULT_MAX_GB * 2**30)):
        self.folder = Path(folder).expanduser()
        self.path = self.folder / DB_NAME
        self.max_bytes = max_bytes
        self.hits = self.misses = self.rejected = 0
        self.folder.mkdir(parents=True, exist_ok=True)
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:  # not a database, or a damaged header: never trusted
            aside = self.path.with_name(f"{DB_NAME}.corrupt-{int(time.time())}")
            log.warning("embedding cache %s cannot be read (%s): moved to %s, starting an empty one", self.path, exc,
                        aside.name)
            for suffix in ("", "-wal", "-shm"):
                part = Path(str(self.path) + suffix)
                if part.exists():
                    part.replace(Path(str(aside) + suffix))
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a committed entry survives a process kill
            db.executescript(SCHEMA)
            db.execute("SELECT count(*) FROM entries").fetchone()  # reads a page: a garbage file fails here
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading --------------------------------------------------------------------------------------------
    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The verified arrays of the keys present; an entry that fails its checksum is deleted (and missing)."""
        found: dict[str, np.ndarray] = {}
        bad: list[str] = []
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _SELECT_CHUNK):
            chunk = unique[start:start + _SELECT_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT key, dtype, shape, data, checksum FROM entries WHERE key IN ({marks})",
                                    chunk).fetchall()
            for key, dtype, shape, data, checksum in rows:
                array = _decode(dtype, shape, data, checksum)
                if array is None:
                    bad.append(key)
                else:
                    found[key] = array
        if bad:
            self.rejected += len(bad)
            log.warning("embedding cache: %d entries failed their checksum and are recomputed", len(bad))
            self._write(lambda db: db.executemany("DELETE FROM entries WHERE key = ?", [(k,) for k in bad]))
        if found:
            now = time.time()
            self._write(lambda db: db.executemany("UPDATE entries SET last_used = ? WHERE key = ?",
                                                  [(now, k) for k in found]))
        self.hits += len(found)
        self.misses += len(unique) - len(found)
        return found

    # ---- writing --------------------------------------------------------------------------------------------
    def put_many(self, namespace: str, entries: Mapping[str, np.ndarray]) -> None:
        """Store the arrays in ONE transaction (all of them, or none after a crash), then keep within max_bytes."""
        now = time.time()
        rows = []
        for key, array in entries.items():
            array = np.ascontiguousarray(array)
            dtype, shape, data = array.dtype.str, ",".join(map(str, array.shape)), array.tobytes()
            rows.append((key, namespace, dtype, shape, data, _checksum(dtype, shape, data), len(data), now))
        if rows:
            self._write(lambda db: db.executemany(
                "INSERT OR REPLACE INTO entries (key, namespace, dtype, shape, data, checksum, size, last_used) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows))
            self._evict()

    def _write(self, work: Callable[[sqlite3.Connection], object]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # takes the write lock now (waits up to the busy timeout for another writer)
        try:
            work(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def total_bytes(self) -> int:
        return int(self._db.execute("SELECT coalesce(sum(size), 0) FROM entries").fetchone()[0])

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM entries").fetchone()[0])

    def _evict(self) -> None:
        if self.max_bytes is None:
            return
        total = self.total_bytes()
        if total <= self.max_bytes:
            return
        target = int(self.max_bytes * 0.9)

        def evict(db: sqlite3.Connection) -> None:
            excess = total - target
            doomed, freed = [], 0
            for key, size in db.execute("SELECT key, size FROM entries ORDER BY last_used, key"):
                if freed >= excess:
                    break
                doomed.append((key,))
                freed += size
            db.executemany("DELETE FROM entries WHERE key = ?", doomed)

        self._write(evict)
        log.info("embedding cache: evicted least recently used entries down to %.1f MB", self.total_bytes() / 1e6)

    # ---- the one call encoders use ----------------------------------------------------------------------------
    def get_or_compute(self, namespace: str, contents: Sequence[str | bytes],
                       compute: Callable[[list[int]], np.ndarray], chunk: int = 2048) -> np.ndarray:
        """Rows for `contents` (texts, or image digests), computing only the missing ones with
        `compute(indices) -> (len(indices), dim)` and storing them; returns rows in the order of `contents`.

        The missing ones are computed and committed `chunk` at a time, so a run killed after an hour of encoding
        keeps what it finished (the encoders' vectors do not depend on how the texts are chunked)."""
        keys = [content_key(namespace, c) for c in contents]
        found = self.get_many(keys)
        missing = [i for i, k in enumerate(keys) if k not in found]
        for start in range(0, len(missing), max(1, chunk)):
            part = missing[start:start + max(1, chunk)]
            computed = np.asarray(compute(part))
            if len(computed) != len(part):
                raise RuntimeError(f"expected {len(part)} embeddings, got {len(computed)}")
            self.put_many(namespace, {keys[i]: computed[j] for j, i in enumerate(part)})
            for j, i in enumerate(part):
                found[keys[i]] = computed[j]
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[k] for k in keys])


def _decode(dtype: str, shape: str, data: bytes, checksum: str) -> np.ndarray | None:
    if _checksum(dtype, shape, data) != checksum:
        return None
    try:
        dims = tuple(int(d) for d in shape.split(",") if d)
        array = np.frombuffer(data, dtype=np.dtype(dtype))
        return array.reshape(dims).copy()
    except (TypeError, ValueError):
        return None


def open_cache(folder: str | os.PathLike | None, max_gb: float | None = DEFAULT_MAX_GB,
               enabled: bool = True) -> EmbeddingCache | None:
    """The cache at `folder` (default: `default_cache_dir()`), or None when disabled or the folder cannot hold it
    (then the run encodes everything, and says why once)."""
    if not enabled:
        return None
    folder = Path(folder).expanduser() if folder else default_cache_dir()
    try:
        return EmbeddingCache(folder, None if max_gb is None else int(max_gb * 2**30))
    except (OSError, sqlite3.Error) as exc:
        log.warning("embedding cache unavailable at %s (%s: %s): encoding without it", folder,
                    type(exc).__name__, exc)
        return None


@dataclass
class CacheOptions(Options):
    """The cache's flags, one declaration for every command that encodes (compare.py, retrieval.py eval / index);
    nest it in the command's options."""

    cache_dir: Path | None = opt(None, "persistent embedding cache (texts and images seen before by the same encoder "
                                       "are not encoded again; numbers are bitwise the same); default "
                                       "$VLMKIT_CACHE_DIR, else $XDG_CACHE_HOME/vlmkit/embeddings "
                                       "(~/.cache/vlmkit/embeddings)")
    no_cache: bool = opt(False, "encode everything, read and write no cache")
    cache_max_gb: float = opt(DEFAULT_MAX_GB, "bound of the cache; least recently used entries are evicted beyond it",
                              range=Range(0, lo_open=True, note="the embedding cache's bound"))

    def open(self) -> EmbeddingCache | None:
        """The cache these settings name, or None (--no_cache, or a folder that cannot hold one)."""
        return open_cache(self.cache_dir, self.cache_max_gb, not self.no_cache)
