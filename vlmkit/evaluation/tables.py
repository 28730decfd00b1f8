"""The comparison across models of ONE run: batch_evaluation_summary.json, model_comparison_table.md/.csv.

Built from the in-memory results of this call only, never from compare_*.json files lying in the output folder,
so a stale result of an earlier run can never enter the table. Sorted by overall score (best first, missing
last), with warnings when the models' numbers are not comparable.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from typing import Any

from vlmkit.evaluation.evaluator import ModelResult
from vlmkit.evaluation.metrics import LABELS
from vlmkit.evaluation.report import group_by_reason

TABLE_METRICS = ("overall_score", "clip_score", "clip_image_score", "semantic_similarity", "r_at_1", "r_at_5",
                 "r_at_10", "lexical_similarity", "bleu_4", "meteor", "rouge_l", "cider", "fid_score")


def _sort_key(row: dict[str, Any]) -> tuple:
    value = row["overall_score"]
    return (value is None, -(value or 0.0), row["model_name"])


def comparability_warnings(results: list[ModelResult]) -> list[str]:
    warnings: list[str] = []
    if len(results) < 2:
        return warnings
    id_sets = {r.model_name: frozenset(r.matched.ids) for r in results}
    if len(set(id_sets.values())) > 1:
        sizes = ", ".join(f"{name}: {len(ids)} items" for name, ids in id_sets.items())
        warnings.append(f"models were scored on different id sets ({sizes}); retrieval pools and FD sample sizes "
                        f"differ, so their scores are not directly comparable")
    encoders = {r.model_name: json.dumps(r.encoders, sort_keys=True) for r in results}
    if len(set(encoders.values())) > 1:
        warnings.append("models were scored with different encoders: " + "; ".join(
            f"{r.model_name}: {_encoder_names(r)}" for r in results))
    components = {r.model_name: r.overall.components for r in results}
    if len(set(components.values())) > 1:
        warnings.append("overall scores use different components per model: " + "; ".join(
            f"{name}: {', '.join(c)}" for name, c in components.items()))
    return warnings


def _encoder_names(result: ModelResult) -> str:
    enc = result.encoders
    return ", ".join(f"{k}={(v or {}).get('name')}" for k, v in enc.items() if isinstance(v, dict) or v is None)


def summary(results: list[ModelResult], model_data: dict[str, dict[str, Any]], ground_truth: str,
            files: dict[str, str]) -> dict[str, Any]:
    rows = []
    for r in results:
        data = model_data[r.model_name]
        rows.append({
            "model_name": r.model_name,
            **{k: data[k] for k in TABLE_METRICS},
            "overall_score_partial": r.overall.partial,
            "overall_components": list(r.overall.components),
            "pairs": len(r.matched),
            "coverage": r.matched.coverage["coverage"],
            "generated_file": str(r.matched.generated_file),
            "result_file": files[r.model_name],
            "unavailable": data["unavailable"],
        })
    rows.sort(key=_sort_key)
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    first = results[0] if results else None
    return {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ground_truth_file": ground_truth,
        "models_evaluated": len(rows),
        "ranking": [row["model_name"] for row in rows],
        "models": rows,
        "warnings": comparability_warnings(results),
        "encoders": first.encoders if first else {},
        "note": "built from this run's results only; sorted by overall_score (partial scores marked)",
    }


def _cell(value: Any, metric: str) -> str:
    if value is None:
        return "n/a"
    if metric.startswith("r_at_"):
        return f"{value:.2%}"
    return f"{value:.4f}"


def markdown_table(data: dict[str, Any]) -> str:
    header = ["Rank", "Model", *(LABELS[m] for m in TABLE_METRICS), "Pairs", "Coverage"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    any_partial = False
    for row in data["models"]:
        cells = [str(row["rank"]), row["model_name"]]
        for metric in TABLE_METRICS:
            cell = _cell(row[metric], metric)
            if metric == "overall_score" and row["overall_score_partial"] and row[metric] is not None:
                cell += "*"
                any_partial = True
            cells.append(cell)
        cells += [str(row["pairs"]), f"{row['coverage']:.0%}"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = []
    if any_partial:
        notes.append("\\* partial overall score: the weighted mean of the available components only "
                     "(see overall_components in batch_evaluation_summary.json).")
    reasons: dict[str, str] = {}
    for row in data["models"]:
        for metric, reason in row["unavailable"].items():
            if metric in TABLE_METRICS:
                reasons.setdefault(metric, reason)
    for reason, metrics in group_by_reason(reasons).items():
        notes.append(f"{', '.join(LABELS[m] for m in metrics)} n/a: {reason}")
    notes += [f"WARNING: {w}" for w in data["warnings"]]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def csv_table(data: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["rank", "model_name", *TABLE_METRICS, "overall_score_partial", "pairs", "coverage",
                     "generated_file"])
    for row in data["models"]:
        writer.writerow([row["rank"], row["model_name"], *("" if row[m] is None else repr(float(row[m]))
                                                           for m in TABLE_METRICS),
                         str(row["overall_score_partial"]).lower(), row["pairs"], row["coverage"],
                         row["generated_file"]])
    return buffer.getvalue()
