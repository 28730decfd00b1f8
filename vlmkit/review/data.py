"""A compare run as the review app sees it: items, their views, the reference and every model's caption and scores.

Read from the files compare.py writes into its ``--output_dir`` (``batch_evaluation_summary.json`` names the models and
their ``compare_<model>.json``; each of those names its ``_per_sample.jsonl``, which holds every item's caption,
reference and per-item scores). Only files inside the results folder are read: the paths recorded in the summary are
absolute, so they are re-rooted by name, and a results folder that was moved or copied still opens.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmkit.evaluation.metrics import infos, item_score_metrics, labels, table_metrics
from vlmkit.io import InputError, quote, read_json, read_jsonl

SUMMARY_FILE = "batch_evaluation_summary.json"
# The retrieval group's per-item detail column (the caption's rank among all references), not a metric of its own.
RANK_COLUMN = "retrieval_rank"


def _item_metrics() -> tuple[str, ...]:
    """Per-item values shown next to each caption, from compare's metric registry: the gallery's scores first (the
    overall score leads: the default for sorting), then the table's other columns except R@k (0 or 1 per item: the
    rank, last, says more). Only those a run has per item are shown."""
    shown, found = item_score_metrics(), infos()
    return (*shown, *(key for key in table_metrics() if key not in shown and not found[key].percent), RANK_COLUMN)


ITEM_METRICS = _item_metrics()
LOWER_IS_BETTER = frozenset({RANK_COLUMN, *(key for key, m in infos().items() if not m.higher_is_better)})
ITEM_LABELS = {**labels(), RANK_COLUMN: "Retrieval rank"}
SORTS = ("order", "id", "disagreement", "model")


@dataclass
class Item:
    """One object of the run: the reference, every model's caption and per-item scores, its view files."""

    id: str
    reference: str
    captions: dict[str, str] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    views: dict[str, Path] = field(default_factory=dict)

    def spread(self, metric: str) -> float | None:
        """Disagreement between models on this item: max - min of `metric` over the models that have it."""
        values = [s[metric] for s in self.scores.values() if s.get(metric) is not None]
        return max(values) - min(values) if len(values) >= 2 else None

    def matches(self, text: str) -> bool:
        needle = text.casefold()
        return any(needle in h.casefold() for h in (self.id, self.reference, *self.captions.values()))


@dataclass
class ReviewRun:
    """Everything the app serves, loaded once at start."""

    results_dir: Path
    images_dir: Path | None
    models: list[str]  # in the run's ranking order
    metrics: list[str]  # the per-item metrics this run has, in ITEM_METRICS order
    items: list[Item]
    protocol: str | None = None
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_id = {item.id: item for item in self.items}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _inside(root: Path, name: Any, what: str) -> Path:
    """`root / basename(name)`: a file the summary names, looked up inside the results folder only."""
    if not isinstance(name, str) or not name:
        raise InputError(f"{root / SUMMARY_FILE}: {what} is missing or not a file name: {quote(name)}")
    return root / Path(name).name


def load_run(results_dir: str | os.PathLike, images_dir: str | os.PathLike | None = None) -> ReviewRun:
    """Load a compare run; a folder that is not one is an InputError naming the file that is missing or wrong.

    `images_dir` defaults to the renders the run was scored with (its metadata), when that folder still exists.
    """
    root = Path(results_dir).expanduser()
    if not root.is_dir():
        raise InputError(f"{root}: results folder not found")
    summary_path = root / SUMMARY_FILE
    if not summary_path.is_file():
        raise InputError(f"{root}: not a compare run (no {SUMMARY_FILE}; run compare.py or compare.sh with "
                         f"--output_dir {root} first)")
    summary = read_json(summary_path)
    rows = summary.get("models") if isinstance(summary, dict) else None
    if not isinstance(rows, list) or not rows:
        raise InputError(f"{summary_path}: not a compare summary (no 'models' list)")

    items: dict[str, Item] = {}
    models: list[str] = []
    metadata_images: str | None = None
    for row in rows:
        name = row.get("model_name") if isinstance(row, dict) else None
        if not isinstance(name, str) or not name or name in models:
            raise InputError(f"{summary_path}: models: bad or repeated model_name {quote(name)}")
        result_path = _inside(root, row.get("result_file"), f"model {name}: result_file")
        result = read_json(result_path)
        metadata = result.get("metadata") if isinstance(result, dict) else None
        if not isinstance(metadata, dict):
            raise InputError(f"{result_path}: not a compare result (no metadata)")
        metadata_images = metadata_images or metadata.get("images_dir")
        per_sample = _inside(root, metadata.get("per_sample_file"), f"{result_path.name}: per_sample_file")
        for lineno, record in enumerate(read_jsonl(per_sample), start=1):
            if not isinstance(record, dict) or not isinstance(record.get("id"), str) \
                    or not isinstance(record.get("generated"), str) or not isinstance(record.get("reference"), str):
                raise InputError(f"{per_sample}: line {lineno}: needs string id, generated and reference")
            item = items.setdefault(record["id"], Item(record["id"], record["reference"]))
            item.captions[name] = record["generated"]
            item.scores[name] = {m: v for m in ITEM_METRICS if (v := _number(record.get(m))) is not None}
        models.append(name)

    warnings: list[str] = []
    images = Path(images_dir).expanduser() if images_dir is not None else None
    if images is None and metadata_images:
        if Path(metadata_images).is_dir():
            images = Path(metadata_images)
        else:
            warnings.append(f"the run's images_dir {metadata_images} no longer exists: pass --images_dir")
    if images is not None:
        _attach_views(images, items)
    present = {m for item in items.values() for s in item.scores.values() for m in s}
    return ReviewRun(results_dir=root.resolve(), images_dir=images.resolve() if images else None, models=models,
                     metrics=[m for m in ITEM_METRICS if m in present], items=list(items.values()),
                     protocol=summary.get("protocol"), warnings=warnings)


def _attach_views(images_dir: Path, items: dict[str, Item]) -> None:
    from vlmkit.multiview import discover_objects

    if not images_dir.is_dir():
        raise InputError(f"{images_dir}: --images_dir not found")
    for obj in discover_objects(images_dir):
        if obj.id in items:
            items[obj.id].views = dict(obj.views_in_order())


def select_items(run: ReviewRun, *, sort: str = "order", metric: str | None = None, model: str | None = None,
                 q: str = "", descending: bool = True) -> list[Item]:
    """The items to list: filtered by text `q` (id, reference or any caption), then sorted.

    `disagreement` sorts by the spread of `metric` across models, `model` by that model's `metric` (best first when
    `descending`, whatever the metric's direction); items without the value go last. `order` is the run's own order.
    """
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}")
    metric = metric or (run.metrics[0] if run.metrics else None)
    if sort in ("disagreement", "model") and metric not in run.metrics:
        raise ValueError(f"metric must be one of {', '.join(run.metrics) or '(none in this run)'}")
    if sort == "model" and model not in run.models:
        raise ValueError(f"model must be one of {', '.join(run.models)}")
    items = [i for i in run.items if i.matches(q)] if q.strip() else list(run.items)
    if sort == "id":
        return sorted(items, key=lambda i: i.id, reverse=not descending)
    if sort == "order":
        return items if descending else items[::-1]
    if sort == "disagreement":
        key = {i.id: i.spread(metric) for i in items}
        sign = 1.0 if descending else -1.0
    else:
        key = {i.id: i.scores.get(model, {}).get(metric) for i in items}
        sign = (1.0 if descending else -1.0) * (-1.0 if metric in LOWER_IS_BETTER else 1.0)
    have = sorted((i for i in items if key[i.id] is not None), key=lambda i: -sign * key[i.id])
    return have + [i for i in items if key[i.id] is None]
