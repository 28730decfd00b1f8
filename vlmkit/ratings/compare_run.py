"""A finished compare.py run read back from its folder: per model, the corpus metrics (compare_<model>.json) and every
item's caption and per-item scores (compare_<model>_per_sample.jsonl, the values compare's bootstrap resamples)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmkit.io import InputError, read_json, read_jsonl
from vlmkit.ratings.length import word_count
from vlmkit.records import load_caption_records

NOT_METRICS = frozenset({"retrieval_rank", "retrieval_ties", "views_used", "views_missing"})
SUMMARY_FILE = "batch_evaluation_summary.json"


@dataclass
class ModelRun:
    name: str
    metrics: dict[str, float]  # corpus values that are numbers
    per_item: dict[str, dict[str, Any]]  # item id -> per-sample row
    signatures: dict[str, str] = field(default_factory=dict)


@dataclass
class CompareRun:
    folder: Path
    models: dict[str, ModelRun]

    def captions(self) -> dict[tuple[str, str], str]:
        return {(m, item): row["generated"] for m, run in self.models.items() for item, row in run.per_item.items()}

    def per_item_metrics(self) -> list[str]:
        """Metrics with per-item values in every model's rows (numbers, or null for an unreadable judge answer)."""
        names: list[str] | None = None
        for run in self.models.values():
            rows = list(run.per_item.values())
            keys = [k for k in (rows[0] if rows else {}) if k not in NOT_METRICS and k in run.metrics
                    and all(k in r and (r[k] is None or _number(r[k])) for r in rows)
                    and any(_number(r[k]) for r in rows)]
            names = keys if names is None else [k for k in names if k in keys]
        return names or []


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def read_compare_run(folder: Path) -> CompareRun:
    """Every compare_<model>.json of the folder with its per-sample file; bad or missing files are InputErrors."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: --compare_dir is not a folder")
    models: dict[str, ModelRun] = {}
    for path in sorted(folder.glob("compare_*.json")):
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
            raise InputError(f"{path}: not a compare.py result (no metadata)")
        name = data["metadata"].get("model_name")
        per_sample = data["metadata"].get("per_sample_file")
        if not isinstance(name, str) or not isinstance(per_sample, str):
            raise InputError(f"{path}: metadata lacks model_name or per_sample_file")
        rows = read_jsonl(path.with_name(Path(per_sample).name))
        per_item = {}
        for number, row in enumerate(rows, start=1):
            if not (isinstance(row, dict) and isinstance(row.get("id"), str) and isinstance(row.get("generated"), str)):
                raise InputError(f"{path.with_name(per_sample)}: line {number}: a per-sample row needs id and "
                                 f"generated")
            per_item.setdefault(row["id"], row)
        metrics = {k: float(v) for k, v in data.items() if _number(v)}
        if name in models:
            raise InputError(f"{path}: model {name!r} appears twice in {folder}")
        models[name] = ModelRun(name, metrics, per_item, dict(data.get("metric_signatures") or {}))
    if not models:
        raise InputError(f"{folder}: no compare_<model>.json files (run compare.py with --output_dir there first)")
    return CompareRun(folder, models)


def read_caption_files(paths: Sequence[Path]) -> dict[tuple[str, str], str]:
    """Captions from generated caption files ([{images, caption, data_by}]), named as compare.py names them."""
    from vlmkit.evaluation.pipeline import model_name_for

    out: dict[tuple[str, str], str] = {}
    for path in paths:
        records = load_caption_records(path)
        name = model_name_for(Path(path), records)
        for record in records:
            out.setdefault((name, record.id), record.caption)
    return out


def caption_lengths(captions: dict[tuple[str, str], str]) -> dict[tuple[str, str], int]:
    return {key: word_count(text) for key, text in captions.items()}
