"""Searching an index folder (vlmkit.retrieval.index) by text or by image; shared by `search` and `serve`.

The model named in the index's index.json embeds the query (it must be the model that embedded the images: other
embeddings live in another space); `--model` overrides the path when the folder moved.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from vlmkit.io import InputError, iter_jsonl
from vlmkit.retrieval.index import (
    IDS_FILE,
    INDEX_FILE,
    apply_search_params,
    faiss_reason,
    read_faiss,
    read_index_meta,
)

log = logging.getLogger(__name__)


class Searcher:
    """A loaded index + its model. Thread-safe: one query at a time goes through the model and FAISS."""

    def __init__(self, index_dir: str | os.PathLike, device: str = "cpu", model_path: str | None = None):
        from vlmkit.retrieval.model import inspect_model, load_encoder

        self.index_dir = Path(index_dir)
        self.meta = read_index_meta(index_dir)
        info = inspect_model(model_path or self.meta["model"], "--model (the index's model)")
        if info.dim != self.meta["dim"]:
            raise InputError(f"{info.path}: embeds into {info.dim} dimensions, the index holds {self.meta['dim']}")
        self.paths = [obj["path"] for _, obj in iter_jsonl(self.index_dir / IDS_FILE)]
        self.index = read_faiss(self.index_dir / INDEX_FILE)
        if self.index.ntotal != len(self.paths):
            raise InputError(f"{self.index_dir}: {self.index.ntotal} vectors but {len(self.paths)} paths in {IDS_FILE}")
        apply_search_params(self.index, self.meta)
        self.model = load_encoder(info.path, device, info=info)
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return len(self.paths)

    def _search(self, vector: np.ndarray, k: int) -> list[dict[str, Any]]:
        k = max(1, min(int(k), self.size))
        try:
            scores, ids = self.index.search(np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1), k)
        except RuntimeError as exc:
            raise InputError(f"{self.index_dir / INDEX_FILE}: FAISS search failed ({faiss_reason(exc)})") from None
        return [{"rank": r + 1, "id": int(i), "path": self.paths[i], "score": float(s)}
                for r, (i, s) in enumerate(zip(ids[0], scores[0], strict=True)) if i >= 0]

    def search_text(self, query: str, k: int = 10) -> list[dict[str, Any]]:
        from vlmkit.retrieval.model import encode_texts

        query = " ".join(str(query).split())
        if not query:
            raise InputError("empty query")
        check_text(query, "query")
        with self._lock:
            return self._search(encode_texts(self.model, [query], 1, progress=False)[0], k)

    def search_image(self, image: Any, k: int = 10) -> list[dict[str, Any]]:
        """`image`: a PIL image (opened by the caller through vlmkit.images)."""
        from vlmkit.retrieval.model import encode_image_batch

        with self._lock:
            return self._search(encode_image_batch(self.model, [image], 1)[0], k)

    def describe(self) -> dict[str, Any]:
        keys = ("model", "kind", "dim", "index_type", "factory", "count", "nprobe", "efSearch")
        return {k: self.meta[k] for k in keys if k in self.meta}


def check_text(text: str, what: str) -> str:
    """Text that the tokenizer can take: a command-line byte that was not UTF-8 arrives as a lone surrogate
    (Python's surrogateescape), as does a JSON `\\udce9` escape; the tokenizer would raise a TypeError on it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        byte = f"byte 0x{ord(bad) - 0xDC00:02x}" if 0xDC80 <= ord(bad) <= 0xDCFF else f"U+{ord(bad):04X}"
        raise InputError(f"{what}: not UTF-8 text ({byte} at character {exc.start}); pass the query in UTF-8 "
                         "(e.g. iconv -f latin1 -t utf-8)") from None
    return text


def format_results(results: list[dict[str, Any]]) -> str:
    return "\n".join(f"{r['rank']:3d}  {r['score']:+.4f}  {r['path']}" for r in results)
