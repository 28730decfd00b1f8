"""Optional check of our filter results against the real py-data-juicer, when it is installed.

py-data-juicer is not a requirement of this toolkit (it installs packages at run time and pins many others), so
this only runs with `python -m dataprocess.filter --parity` on a machine where `import data_juicer` works.
It instantiates Data-Juicer's own operator classes with the recipe's parameters and runs each sample through
them in recipe order, on one shared `__dj__stats__` dict (as Data-Juicer's executor does), then compares
the stats and the first dropping operator with ours. Samples with a missing or unreadable image are not
compared: Data-Juicer raises on them (and drops their whole batch).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)) or hasattr(b, "tolist"):
        a = list(a.tolist() if hasattr(a, "tolist") else a)
        b = list(b.tolist() if hasattr(b, "tolist") else b)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def run_parity(dataset, recipe, stats: list[dict], drops: list, limit: int | None = None) -> dict[str, Any]:
    """Compare our per-sample stats/decisions with Data-Juicer's; returns a JSON-able report."""
    try:
        import data_juicer
        from data_juicer.ops import OPERATORS as DJ_OPERATORS
    except Exception as exc:  # noqa: BLE001 - any import failure means "not available here"
        reason = f"py-data-juicer is not importable ({type(exc).__name__}: {exc}); parity check skipped"
        log.warning(reason)
        return {"status": "skipped", "reason": reason}

    dj_ops = []
    for op in recipe.ops:
        params = {**op.params, **op.range_params, "text_key": recipe.text_key, "image_key": recipe.image_key}
        dj_ops.append(DJ_OPERATORS.modules[op.name](**params))
    compared, skipped, mismatches = 0, 0, []
    items = dataset.items if limit is None else dataset.items[:limit]
    for k, item in enumerate(items):
        ours_drop = drops[k]
        if ours_drop is not None and ours_drop[2] is not None:  # an image problem: Data-Juicer would raise
            skipped += 1
            continue
        dj_stats: dict[str, Any] = {}
        dj_drop = None
        for pos, dj_op in enumerate(dj_ops):
            batch = {recipe.text_key: [item.text], recipe.image_key: [list(item.images)], "__dj__stats__": [dj_stats]}
            batch = dj_op.compute_stats_batched(batch)
            dj_stats = batch["__dj__stats__"][0]
            if not bool(list(dj_op.process_batched(batch))[0]):
                dj_drop = pos
                break
        ours_pos = None if ours_drop is None else ours_drop[0]
        same_stats = dj_stats.keys() == stats[k].keys() and all(_same(stats[k][key], dj_stats[key]) for key in dj_stats)
        if dj_drop != ours_pos or not same_stats:
            mismatches.append({"id": item.id, "where": item.where, "ours": {"stats": stats[k], "dropped_by": ours_pos},
                               "data_juicer": {"stats": {key: (v.tolist() if hasattr(v, "tolist") else v)
                                                         for key, v in dj_stats.items()}, "dropped_by": dj_drop}})
        compared += 1
    report = {"status": "ok" if not mismatches else "mismatch", "data_juicer_version": data_juicer.__version__,
              "compared": compared, "skipped_bad_images": skipped, "mismatches": len(mismatches),
              "examples": mismatches[:20]}
    log.info("parity with Data-Juicer %s: %d samples compared, %d mismatches", data_juicer.__version__, compared,
             len(mismatches))
    return report
