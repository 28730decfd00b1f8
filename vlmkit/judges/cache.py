"""Every judge answer, cached per (judge fingerprint, prompt hash, decoding, inputs), so a re-run judges only what
is new and a judge that is not needed is never loaded.

One sqlite file (stdlib; WAL journal, one transaction per batch): a run killed with kill -9 keeps every batch it
had committed and answers them from here when it runs again. Keys are SHA-256 digests of the JSON list
[kind, judge, prompt hash, decoding, *inputs] (inputs: caption and reference, or the views' identity for FLEUR);
values are JSON. Issue 19's persistent embedding cache was not on main when this was written: this small store is
separate, and can move onto a shared one later.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def cache_key(kind: str, judge: str, prompt: str, decoding: str, inputs: Sequence[str]) -> str:
    raw = json.dumps([kind, judge, prompt, decoding, *inputs], ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


class JudgeCache:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()
        self.hits = 0
        self.misses = 0

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            rows = self._db.execute(f"SELECT key, value FROM answers WHERE key IN ({','.join('?' * len(chunk))})",
                                    chunk).fetchall()
            out.update({k: json.loads(v) for k, v in rows})
        self.hits += sum(k in out for k in keys)
        self.misses += sum(k not in out for k in keys)
        return out

    def put_many(self, items: Iterable[tuple[str, Any]]) -> None:
        with self._db:  # one transaction: a batch is stored whole or not at all
            self._db.executemany("INSERT OR REPLACE INTO answers (key, value) VALUES (?, ?)",
                                 [(k, json.dumps(v, ensure_ascii=False)) for k, v in items])

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        self._db.close()
