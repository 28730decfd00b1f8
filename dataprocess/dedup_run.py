"""The group-by of a recipe ending in a deduplicator, after every chunk ran its filters.

Each chunk wrote `chunk-<k>.hashes` (one row per sample that passed the filters and has a non-empty hash: chunk,
position, hash, id, where). `find_duplicates` groups the rows by hash and keeps the first of each group in data set
order (chunk, position); every other row is a duplicate of that first sample. Locally this is one streaming pass in
chunk order holding one entry per distinct hash; under Ray it is a Ray Data `groupby("h")` (a shuffle across the
cluster's workers), and only the duplicates come back to the driver. `apply_duplicates` then rewrites the chunks
that hold duplicates: their kept part loses them, their stats lines say `kept: false`, their dropped lines get a row
each (in sample order), and the chunk summary is marked, so a resumed run does not apply it twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dataprocess.dataset import STATS_KEY
from dataprocess.workdir import WorkDir
from vlmkit.executor import ExecutorOptions, ray_session
from vlmkit.streams import ChunkRef, Source

Dups = dict[int, dict[int, tuple[str, str]]]  # chunk -> position -> (id of the first sample, hash)


def _rows(path: Path):
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def find_duplicates(work: WorkDir, chunks: list[dict[str, Any]], opts: ExecutorOptions) -> Dups:
    files = [work.part(c["index"], "hashes.jsonl") for c in chunks]
    dups: Dups = {}
    if opts.is_ray:
        files = [str(f) for f in files if f.stat().st_size]
        if not files:
            return dups
        with ray_session(opts):
            import ray

            def later_ones(group):
                group = group.sort_values(["chunk", "pos"])
                return group.iloc[1:].assign(first=group.iloc[0]["id"])

            ds = ray.data.read_json(files).groupby("h").map_groups(later_ones, batch_format="pandas")
            for row in ds.iter_rows():
                dups.setdefault(int(row["chunk"]), {})[int(row["pos"])] = (str(row["first"]), str(row["h"]))
        return dups
    first: dict[str, tuple[int, int, str]] = {}
    for f in files:
        for row in _rows(f):
            chunk, pos, sid = first.setdefault(row["h"], (row["chunk"], row["pos"], row["id"]))
            if (chunk, pos) != (row["chunk"], row["pos"]):
                dups.setdefault(row["chunk"], {})[row["pos"]] = (sid, row["h"])
    return dups


def part_name(summary: dict[str, Any], name: str) -> str:
    """A chunk's part file name: the rewritten one once its duplicates were applied."""
    return f"{name}.dedup" if summary.get("dedup_applied") else name


def _read_part(job, path: Path) -> list[Any]:
    kind = job.writer.kind
    if kind in ("jsonl", "json"):
        return list(_rows(path))
    if kind == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path, schema=job.writer.schema).to_pylist()
    return [r for r, _ in Source._read_webdataset(ChunkRef(0, str(path), 0, 1 << 62, 0))]


def apply_duplicates(job, summary: dict[str, Any], dups: dict[int, tuple[str, str]]) -> dict[str, Any]:
    """Move the chunk's duplicates from kept to dropped, into new part files (`.dedup`): the original parts stay
    as they are, so a run killed half-way simply applies them again; the summary, written last, switches over."""
    if summary.get("dedup_applied") or not dups:
        return summary
    work: WorkDir = job.work
    k = summary["index"]
    op = job.ops[-1]
    hashes = {row["pos"]: row for row in _rows(work.part(k, "hashes.jsonl"))}
    kept = iter(_read_part(job, work.part(k, "kept")))
    dropped = iter(_rows(work.part(k, "dropped")))
    new_kept, new_stats, new_dropped = [], [], []
    for pos, line in enumerate(_rows(work.part(k, "stats"))):
        if not line["kept"]:
            new_dropped.append(next(dropped))
        elif pos in dups:
            next(kept)
            first, value = dups[pos]
            line = {**line, "kept": False}
            new_dropped.append({"id": line["id"], "where": hashes[pos]["where"], "op": op.name,
                                "op_index": op.index, "reason": f"same {op.method} hash {value} as sample {first}",
                                "stats": line[STATS_KEY], "duplicate_of": first})
        else:
            new_kept.append(next(kept))
        new_stats.append(line)
    job.writer.write_part(work.part(k, "kept.dedup"), new_kept)
    for name, rows in (("stats", new_stats), ("dropped", new_dropped)):
        tmp = work.part(k, name + ".dedup.tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        os.replace(tmp, work.part(k, name + ".dedup"))
    pos_op = len(job.ops) - 1
    summary = {**summary, "kept": len(new_kept), "dedup_applied": True}
    summary["dropped"] = [*summary["dropped"][:pos_op], summary["dropped"][pos_op] + len(dups)]
    work.finish(k, summary)
    return summary
