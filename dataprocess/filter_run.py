"""The streaming filter's parts: one chunk's job (evaluate, write its parts, commit it), the run's summary from the
chunk summaries, and the final commit that streams the parts into the output files."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from dataprocess.dataset import STATS_KEY, Input
from dataprocess.dedup_run import part_name
from dataprocess.ops import FilterOp, ImageProblem, Sample
from dataprocess.recipe import Recipe
from dataprocess.workdir import WorkDir
from vlmkit.executor import ray_node_id
from vlmkit.images import set_max_image_pixels
from vlmkit.io import StagedCommit
from vlmkit.streams import ChunkRef, shard_paths

# A drop: (position of the op in recipe.ops, reason, image path or None, image problem kind or None)
Drop = tuple[int, str, str | None, str | None]


def evaluate(ops: list[FilterOp], chunk: list[tuple[str, tuple[str, ...]]]) -> list[tuple[dict, Drop | None]]:
    """Run every sample of a chunk through the operators in order; stop at the first one that drops it."""
    image_cache: dict[str, Any] = {}
    out: list[tuple[dict, Drop | None]] = []
    for text, images in chunk:
        sample = Sample(text, images)
        stats: dict[str, Any] = {}
        drop: Drop | None = None
        for pos, op in enumerate(ops):
            try:
                op.compute(sample, stats, image_cache)
            except ImageProblem as problem:
                drop = (pos, f"{problem.kind} image: {problem.path} ({problem.detail})", problem.path, problem.kind)
                break
            if not op.keep(stats):
                drop = (pos, op.reason(stats), None, None)
                break
        out.append((stats, drop))
    return out


class FilterJob:
    """Filter one chunk: read it, evaluate it, write its kept part, stats and dropped lines, then its summary
    (the chunk's commit). Picklable, so local pool workers and Ray workers run the same code."""

    def __init__(self, inp: Input, ops: list[FilterOp], work: WorkDir, keep_stats: bool, max_pixels: int | None):
        self.inp, self.ops, self.work, self.keep_stats, self.max_pixels = inp, ops, work, keep_stats, max_pixels
        self.writer = inp.part_writer(keep_stats)

    def setup(self) -> None:
        set_max_image_pixels(self.max_pixels)  # the driver's --max_image_pixels, in every worker

    def __call__(self, ref: ChunkRef) -> dict[str, Any]:
        self.setup()
        start = time.perf_counter()
        items = self.inp.items(ref)
        results = evaluate(self.ops, [(item.text, item.images) for item in items])
        kept, stats_lines, dropped_lines, bad = [], [], [], []
        seen, dropped, dropped_bad = [0] * len(self.ops), [0] * len(self.ops), [0] * len(self.ops)
        hashes = []
        for pos_in_chunk, (item, (stats, drop)) in enumerate(zip(items, results, strict=True)):
            value = stats.pop("__hash__", None)  # a deduplicator's hash: not a Data-Juicer stat
            if drop is None and value:
                hashes.append({"chunk": ref.index, "pos": pos_in_chunk, "h": value, "id": item.id,
                               "where": item.where})
            stats_lines.append(json.dumps({"id": item.id, "kept": drop is None, STATS_KEY: stats},
                                          ensure_ascii=False))
            last = len(self.ops) - 1 if drop is None else drop[0]
            for pos in range(last + 1):
                seen[pos] += 1
            if drop is None:
                kept.append(self.inp.kept_record(item, stats if self.keep_stats else None))
                continue
            dropped[drop[0]] += 1
            op = self.ops[drop[0]]
            row = {"id": item.id, "where": item.where, "op": op.name, "op_index": op.index, "reason": drop[1],
                   "stats": stats}
            if drop[2] is not None:
                dropped_bad[drop[0]] += 1
                row.update({"image": drop[2], "image_problem": drop[3]})
                bad.append({"id": item.id, "where": item.where, "path": drop[2], "kind": drop[3],
                            "reason": drop[1]})
            dropped_lines.append(json.dumps(row, ensure_ascii=False))
        self.writer.write_part(self.work.part(ref.index, "kept"), kept)
        for name, lines in (("stats", stats_lines), ("dropped", dropped_lines)):
            tmp = self.work.part(ref.index, name + ".tmp")
            tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            os.replace(tmp, self.work.part(ref.index, name))
        if self.ops and getattr(self.ops[-1], "is_deduplicator", False):
            tmp = self.work.part(ref.index, "hashes.jsonl.tmp")
            tmp.write_text("".join(json.dumps(h, ensure_ascii=False) + "\n" for h in hashes), encoding="utf-8")
            os.replace(tmp, self.work.part(ref.index, "hashes.jsonl"))
        summary = {"index": ref.index, "total": len(items), "kept": len(kept), "seen": seen, "dropped": dropped,
                   "dropped_bad_image": dropped_bad, "bad": bad, "seconds": time.perf_counter() - start,
                   "node": ray_node_id(), "pid": os.getpid()}
        self.work.finish(ref.index, summary)
        return summary


def output_paths(export_path: Path, shards: int = 1) -> dict[str, Any]:
    stem = export_path.with_suffix("")
    kept = shard_paths(export_path, shards)
    return {"kept": kept if shards > 1 else export_path, "stats": Path(f"{stem}_stats.jsonl"),
            "dropped": Path(f"{stem}_dropped.jsonl"), "summary": Path(f"{stem}_summary.json")}


def all_files(paths: dict[str, Any]) -> list[Path]:
    return [p for v in paths.values() for p in (v if isinstance(v, list) else [v])]


def summarize(inp: Input, recipe: Recipe, chunks: list[dict[str, Any]], paths: dict[str, Any], seconds: float,
              np: int, executor: str) -> dict[str, Any]:
    """The run's summary from its chunk summaries (in chunk order)."""
    per_op = []
    for pos, op in enumerate(recipe.ops):
        entry = {**op.describe(), "seen": sum(c["seen"][pos] for c in chunks),
                 "dropped": sum(c["dropped"][pos] for c in chunks)}
        if op.uses_images:
            entry["dropped_bad_image"] = sum(c["dropped_bad_image"][pos] for c in chunks)
        per_op.append(entry)
    bad = [b for c in chunks for b in c["bad"]]
    total, kept = sum(c["total"] for c in chunks), sum(c["kept"] for c in chunks)
    return {
        "input": str(inp.path), "format": inp.format, "container": inp.source.container,
        "text_view": inp.text_view if inp.format in ("training", "llava") else None,
        "image_root": str(inp.root),
        "outputs": {k: ([str(x) for x in v] if isinstance(v, list) else str(v)) for k, v in paths.items()},
        "total": total, "kept": kept, "dropped": total - kept,
        "ops": per_op,
        "bad_images": {
            "samples_dropped": len(bad),
            "missing": sum(1 for b in bad if b["kind"] == "missing"),
            "unreadable": sum(1 for b in bad if b["kind"] != "missing"),  # every other kind (see by_kind)
            "by_kind": dict(Counter(b["kind"] for b in bad).most_common()),
            "items": bad,
        },
        "recipe": recipe.describe(), "np": np, "executor": executor, "chunks": len(chunks),
        "seconds": round(seconds, 3),
        "samples_per_second": round(total / seconds, 1) if seconds > 0 else None,
    }


def commit_outputs(inp: Input, job: FilterJob, chunks: list[dict[str, Any]], summary: dict[str, Any],
                   paths: dict[str, Any], work: WorkDir) -> None:
    """Assemble the chunk parts into the final files (streaming, one part at a time) and publish them as one set;
    the work folder goes at the commit point."""
    kept_finals = paths["kept"] if isinstance(paths["kept"], list) else [paths["kept"]]
    with StagedCommit(all_files(paths)) as commit:
        job.writer.assemble([work.part(c["index"], part_name(c, "kept")) for c in chunks], [c["kept"] for c in chunks],
                            kept_finals, [commit.path(p) for p in kept_finals])
        for p in kept_finals:
            commit.staged(p)
        for name in ("stats", "dropped"):
            with open(commit.path(paths[name]), "wb") as out:
                for c in chunks:
                    with open(work.part(c["index"], part_name(c, name)), "rb") as part:
                        shutil.copyfileobj(part, out)
            commit.staged(paths[name])
        commit.path(paths["summary"]).write_text(json.dumps(summary, ensure_ascii=False, indent=2) + "\n",
                                                 encoding="utf-8")
        commit.staged(paths["summary"])
        commit.commit(before_publish=work.remove)
