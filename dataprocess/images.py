"""Image identity for dedup and split: an exact content hash. Opening images follows `vlmkit.images`."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Exact content hash of a file (identical bytes <=> identical hash); raises OSError when unreadable."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
