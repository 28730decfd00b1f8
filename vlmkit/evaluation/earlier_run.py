"""The files an earlier compare.py run wrote into an --output_dir, so that a new run leaves no stale ones beside it.

compare.py's --output_dir holds ONE run. Its per-model files are named after the models (compare_<model>.json,
.txt, _per_sample.jsonl), so a run that compares other models (or renamed ones) would leave the earlier run's files
next to its own, where they read as part of the new comparison. The earlier run's summary lists its result files;
once the new set is committed, those the new run did not rewrite are removed. Only files that summary names (and
their .txt / _per_sample.jsonl siblings) are touched: nothing else in the folder is compare.py's to delete.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from vlmkit.evaluation.pipeline import SUMMARY_FILE

log = logging.getLogger(__name__)


def earlier_run_files(output_dir: Path) -> set[Path]:
    """The per-model files the summary in `output_dir` says its run wrote (empty: no readable summary)."""
    try:
        summary = json.loads((output_dir / SUMMARY_FILE).read_text(encoding="utf-8"))
        result_files = [Path(row["result_file"]) for row in summary.get("models", [])]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return set()
    found = set()
    for named in result_files:
        result = output_dir / named.name  # by name: never outside the output folder, whatever the cwd was
        if result.suffix != ".json" or not result.name.startswith("compare_"):
            continue
        found |= {result, result.with_suffix(".txt"), result.with_name(result.stem + "_per_sample.jsonl")}
    return found


def remove_earlier_run_files(earlier: set[Path], written: Iterable[str | Path]) -> list[Path]:
    """Delete the files of `earlier` that this run did not write; returns them (for the log)."""
    kept = {Path(p).resolve() for p in written}
    removed = []
    for path in sorted(earlier):
        if path.resolve() not in kept and path.is_file():
            path.unlink()
            removed.append(path)
    if removed:
        log.info("removed %d file(s) of the earlier run that this run did not write: %s", len(removed),
                 ", ".join(p.name for p in removed))
    return removed
