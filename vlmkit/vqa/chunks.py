"""Chunks of a question set for one process per GPU, and the files each chunk writes.

Chunk i of K is the i-th contiguous block of the question list in file order (sizes differ by at most one), so
chunks are deterministic, disjoint, cover every question and are never empty: K larger than the number of
questions is an error naming both numbers. (LLaVA's `ceil(len/n)` split gives empty trailing chunks, and crashes,
when K > len.) Each chunk writes, under `<output_dir>/chunks/`:

- `answers.chunk-<i>-of-<K>.jsonl`: `{"question_id", "answer"}` lines, rewritten atomically after every batch
  (temp file + rename), so a kill -9 loses at most the batch in flight and `--resume` continues;
- `answers.chunk-<i>-of-<K>.meta.json`: the run's signature and how the question set was loaded, written when the
  chunk starts (`--merge` reloads the question set from it and refuses chunks of different runs);
- `answers.chunk-<i>-of-<K>.report.json`: the run report (totals, failures with reasons), written when the chunk
  ends, also when it is interrupted; removed when a chunk (re)starts, so a chunk killed with -9 has none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmkit.generation.shards import part_range, validate_parts
from vlmkit.io import InputError, atomic_write_jsonl, iter_jsonl

CHUNK_DIR = "chunks"
STEM = "answers"
_NAME = re.compile(re.escape(STEM) + r"\.chunk-(\d+)-of-(\d+)\.jsonl$")


CHUNK_FLAGS = {"parts_flag": "--num_chunks", "index_flag": "--chunk_idx", "unit": "questions"}


def validate_chunk_args(num_chunks: int, chunk_idx: int, n: int | None = None) -> None:
    validate_parts(num_chunks, chunk_idx, n, **CHUNK_FLAGS)


def chunk_range(n: int, num_chunks: int, chunk_idx: int) -> tuple[int, int]:
    """[start, stop) of chunk `chunk_idx` of `num_chunks` over `n` questions (see the module docstring)."""
    return part_range(n, num_chunks, chunk_idx, **CHUNK_FLAGS)


@dataclass(frozen=True)
class ChunkFiles:
    output_dir: Path
    index: int
    num_chunks: int

    @property
    def stem(self) -> str:
        return f"{STEM}.chunk-{self.index}-of-{self.num_chunks}"

    @property
    def answers(self) -> Path:
        return self.output_dir / CHUNK_DIR / f"{self.stem}.jsonl"

    @property
    def meta(self) -> Path:
        return self.output_dir / CHUNK_DIR / f"{self.stem}.meta.json"

    @property
    def report(self) -> Path:
        return self.output_dir / CHUNK_DIR / f"{self.stem}.report.json"


def read_answers(path: Path) -> dict[str, dict[str, Any]]:
    """qid -> {"question_id", "answer"} of a chunk or predictions file; a repeated question is an input error.

    `answer` may also be called `text` (LLaVA's answer files).
    """
    out: dict[str, dict[str, Any]] = {}
    for lineno, row in iter_jsonl(path):
        if not isinstance(row, dict) or "question_id" not in row:
            raise InputError(f"{path}: line {lineno}: not an answer line {{\"question_id\": ..., \"answer\": ...}}")
        text = row.get("answer", row.get("text"))
        if not isinstance(text, str):
            raise InputError(f"{path}: line {lineno}: question {row['question_id']}: no \"answer\" string")
        qid = str(row["question_id"])
        if qid in out:
            raise InputError(f"{path}: question {row['question_id']}: answered twice (lines of two runs mixed?)")
        out[qid] = {"question_id": row["question_id"], "answer": text}
    return out


def write_answers(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_jsonl(path, rows)


def find_chunks(output_dir: Path, num_chunks: int | None = None) -> tuple[int, dict[int, ChunkFiles]]:
    """The chunk files of one run; several runs' files (different K) need `--num_chunks`, a missing chunk is an
    error naming it."""
    folder = output_dir / CHUNK_DIR
    found: dict[int, set[int]] = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = _NAME.match(path.name)
        if match:
            found.setdefault(int(match[2]), set()).add(int(match[1]))
    if num_chunks is None:
        if not found:
            raise InputError(f"{folder}: no chunk files {STEM}.chunk-*-of-*.jsonl to merge")
        if len(found) > 1:
            runs = ", ".join(f"of-{k}" for k in sorted(found))
            raise InputError(f"{folder}: chunk files of several runs ({runs}); pass --num_chunks, or remove the stale "
                             "ones")
        num_chunks = next(iter(found))
    present = found.get(num_chunks, set())
    missing = [i for i in range(num_chunks) if i not in present]
    if missing:
        names = ", ".join(ChunkFiles(output_dir, i, num_chunks).answers.name for i in missing[:4])
        more = f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        raise InputError(f"{folder}: missing chunk {names}{more}; run those chunks (--chunk_idx) first")
    return num_chunks, {i: ChunkFiles(output_dir, i, num_chunks) for i in range(num_chunks)}
