"""Shards for many GPUs or machines, and the merge that joins them.

Shard `i` of `k` is the i-th contiguous block of the sorted item list (sizes differ by at most one), so shards are
deterministic, disjoint and cover every item; concatenating them in index order gives the single-run order. Shard
files live in `<output_dir>/shards/` so that compare.sh, which scans `<output_dir>/image_*.json`, never mistakes a
shard for a model.
The merge holds every shard's lock while it reads (a shard still being written is refused) and writes the merged
file and its report as one unit.
"""

from __future__ import annotations

import json
import logging
import re
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from vlmkit.generation.outputs import check_writable_target
from vlmkit.io import InputError, read_json, write_all_or_nothing
from vlmkit.options import Options, opt
from vlmkit.outputs import OutputLock
from vlmkit.records import parse_caption_records

log = logging.getLogger(__name__)

SHARD_DIR = "shards"


def validate_parts(parts: int, index: int, n: int | None = None, *, parts_flag: str = "--num_shards",
                   index_flag: str = "--shard_index", unit: str = "items") -> None:
    """The part count and index of a split over processes (shards here, VQA chunks): a count below 1, an index out
    of range, or more parts than the n items (some would be empty, a silent no-op) is a one-line error."""
    if parts < 1:
        raise InputError(f"{parts_flag} {parts}: must be at least 1")
    if not 0 <= index < parts:
        raise InputError(f"{index_flag} {index}: out of range; must be in 0..{parts - 1} for {parts_flag} {parts}")
    if n is not None and parts > n:
        raise InputError(f"{parts_flag} {parts}: more parts than the {n} {unit} (every part needs at least one); "
                         f"use {parts_flag} {n} or fewer")


def part_range(n: int, parts: int, index: int, **flags: str) -> tuple[int, int]:
    """[start, stop) of the `index`-th of `parts` contiguous, deterministic, never empty blocks of n items."""
    validate_parts(parts, index, n, **flags)
    return n * index // parts, n * (index + 1) // parts


@dataclass
class ShardOptions(Options):
    """One process per GPU or machine: which shard this one captions, or the merge of them all."""

    TITLE: ClassVar[str | None] = "sharding (one process per GPU or machine)"
    num_shards: int | None = opt(None, "split the objects into this many shards")
    shard_index: int = opt(0, "which shard this process captions (0-based)")
    merge: bool = opt(False, "do not generate: merge the shard files of --output_dir/shards into the final file")

    def check(self) -> None:
        validate_parts(1 if self.num_shards is None else self.num_shards, self.shard_index)


def select_shard(items: list, num_shards: int, shard_index: int) -> list:
    """The `shard_index`-th of `num_shards` contiguous blocks; an empty shard is an error, not a silent no-op."""
    start, stop = part_range(len(items), num_shards, shard_index)
    return items[start:stop]


def output_stem(output_name: str) -> str:
    return output_name[:-5] if output_name.endswith(".json") else output_name


def report_name(output_name: str) -> str:
    """`image_qwen.json` → `qwen_caption_generation_report.json` (VaseVQA-3D's report name)."""
    stem = output_stem(output_name)
    return f"{stem.removeprefix('image_')}_caption_generation_report.json"


def shard_output_path(output_dir: Path, output_name: str, shard_index: int, num_shards: int) -> Path:
    return output_dir / SHARD_DIR / f"{output_stem(output_name)}.shard-{shard_index}-of-{num_shards}.json"


def _find_shards(output_dir: Path, output_name: str, num_shards: int | None) -> tuple[int, dict[int, Path]]:
    stem = output_stem(output_name)
    pattern = re.compile(re.escape(stem) + r"\.shard-(\d+)-of-(\d+)\.json$")
    found: dict[int, dict[int, Path]] = {}
    shard_dir = output_dir / SHARD_DIR
    for path in sorted(shard_dir.glob(f"{stem}.shard-*-of-*.json")) if shard_dir.is_dir() else []:
        match = pattern.match(path.name)
        if match:
            found.setdefault(int(match[2]), {})[int(match[1])] = path
    if num_shards is None:
        if len(found) > 1:
            runs = ", ".join(f"of-{k}" for k in sorted(found))
            raise InputError(f"{shard_dir}: shard files of several runs ({runs}); pass --num_shards")
        if not found:
            raise InputError(f"{shard_dir}: no shard files {stem}.shard-*-of-*.json to merge")
        num_shards = next(iter(found))
    shards = found.get(num_shards, {})
    missing = [i for i in range(num_shards) if i not in shards]
    if missing:
        names = ", ".join(f"{stem}.shard-{i}-of-{num_shards}.json" for i in missing)
        raise InputError(f"{shard_dir}: missing shard files {names}; run (or --resume) those shards first")
    return num_shards, shards


def merge_shards(output_dir: str | Path, output_name: str, num_shards: int | None = None,
                 overwrite: bool = False) -> dict[str, Any]:
    """Join shard files into `<output_dir>/<output_name>`, first record per id wins; returns the merged report."""
    output_dir = Path(output_dir)
    target = output_dir / output_name
    check_writable_target(target, resume=False, overwrite=overwrite)
    num_shards, shards = _find_shards(output_dir, output_name, num_shards)
    with ExitStack() as held:  # a shard still being written is refused, not merged half-done
        for index in range(num_shards):
            held.enter_context(OutputLock(shards[index], f"shard {index} of {num_shards}"))
        return _merge(output_dir, output_name, target, num_shards, shards)


def _merge(output_dir: Path, output_name: str, target: Path, num_shards: int,
           shards: dict[int, Path]) -> dict[str, Any]:
    merged: list[dict[str, Any]] = []
    seen: set[str] = set()
    duplicates: list[str] = []
    shard_reports: list[dict[str, Any]] = []
    for index in range(num_shards):
        path = shards[index]
        data = read_json(path)
        for record, raw in zip(parse_caption_records(data, path), data, strict=True):
            if record.id in seen:
                duplicates.append(record.id)
                continue
            seen.add(record.id)
            merged.append(raw)
        report_path = path.parent / report_name(path.name)
        shard_reports.append(read_json(report_path) if report_path.is_file() else
                             {"output": str(path), "status": "no report found"})
    if duplicates:
        log.warning("%d duplicate ids across shards kept once: %s", len(duplicates), ", ".join(duplicates[:5]))
    totals: dict[str, int] = {}
    for rep in shard_reports:
        for key, value in rep.get("totals", {}).items():
            totals[key] = totals.get(key, 0) + int(value)
    report = {
        "status": "merged",
        "output": str(target),
        "num_shards": num_shards,
        "records": len(merged),
        "duplicates_dropped": duplicates,
        "totals": totals,
        "failures": [f for rep in shard_reports for f in rep.get("failures", [])],
        "skipped_views": [w for rep in shard_reports for w in rep.get("skipped_views", [])],
        "shards": [{"file": str(shards[i]), "status": rep.get("status"), "totals": rep.get("totals"),
                    "seconds": rep.get("seconds")} for i, rep in enumerate(shard_reports)],
    }
    write_all_or_nothing({target: json.dumps(merged, ensure_ascii=False, indent=2) + "\n",
                          output_dir / report_name(output_name): json.dumps(report, ensure_ascii=False, indent=2)
                          + "\n"})
    log.info("merged %d shards into %s (%d captions)", num_shards, target, len(merged))
    return report
