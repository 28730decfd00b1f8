"""The comparison across models of ONE run: batch_evaluation_summary.json, model_comparison_table.md/.csv.

Built from the in-memory results of this call only, never from compare_*.json files lying in the output folder,
so a stale result of an earlier run can never enter the table. Sorted by overall score (best first, missing
last), with warnings when the models' numbers are not comparable (different id sets, metric signatures or
overall components). Cells show "value ± half-width of the 95 % CI"; per column the best model is bold and a
model not significantly different from it (paired bootstrap, p >= 0.05) carries a dagger.
"""

from __future__ import annotations

import csv
import html
import io
from datetime import datetime, timezone
from typing import Any

from vlmkit.evaluation import metrics as registry
from vlmkit.evaluation.bootstrap import ALPHA, BootstrapSettings, Comparison
from vlmkit.evaluation.evaluator import ModelResult
from vlmkit.evaluation.report import fmt_metric, group_by_reason
from vlmkit.evaluation.signatures import differing_fields

OVERALL = registry.OVERALL_KEY
PARTIAL = f"{OVERALL}_partial"
NOT_DIFFERENT = "†"
SIGNIFICANCE_TEST = ("paired bootstrap test against the best model per metric: the same resamples of the shared "
                     "items for every model; CI = percentile interval of the resampled difference; two-sided "
                     "p = (1 + #{|d_b - d| >= |d|}) / (B + 1)")


def _sort_key(row: dict[str, Any]) -> tuple:
    value = row[OVERALL]
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
    differing = []
    for metric in registry.table_metrics():
        sigs = {r.model_name: r.signatures[metric] for r in results if metric in r.signatures}
        fields = differing_fields(sigs) if len(sigs) > 1 else []
        if fields:
            differing.append(f"{metric} ({', '.join(fields)})")
    if differing:
        warnings.append("metric signatures differ between models (see metric_signatures): " + "; ".join(differing))
    components = {r.model_name: r.overall.components for r in results}
    if len(set(components.values())) > 1:
        warnings.append("overall scores use different components per model: " + "; ".join(
            f"{name}: {', '.join(c)}" for name, c in components.items()))
    return warnings


def _common_signatures(results: list[ModelResult]) -> dict[str, Any]:
    """{metric: signature} where all models agree, {metric: {model: signature}} where they differ."""
    out: dict[str, Any] = {}
    for metric in dict.fromkeys(m for r in results for m in r.signatures):
        sigs = {r.model_name: r.signatures[metric] for r in results if metric in r.signatures}
        out[metric] = next(iter(sigs.values())) if len(set(sigs.values())) == 1 else sigs
    return out


def summary(results: list[ModelResult], model_data: dict[str, dict[str, Any]], ground_truth: str,
            files: dict[str, str], significance: tuple[dict[str, dict[str, Comparison]], list[str]] | None = None,
            bootstrap: BootstrapSettings | None = None) -> dict[str, Any]:
    rows = []
    columns = registry.table_metrics()
    for r in results:
        data = model_data[r.model_name]
        rows.append({
            "model_name": r.model_name,
            **{k: data[k] for k in columns},
            "confidence_intervals": {k: v for k, v in data["confidence_intervals"].items() if k in columns},
            PARTIAL: r.overall.partial,
            "overall_components": list(r.overall.components),
            "pairs": len(r.matched),
            "coverage": r.matched.coverage["coverage"],
            "generated_file": str(r.matched.generated_file),
            "result_file": files[r.model_name],
            "unavailable": data["unavailable"],
            "confidence_interval_unavailable": data["confidence_interval_unavailable"],
            "metric_signatures": data["metric_signatures"],
        })
    rows.sort(key=_sort_key)
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    first = results[0] if results else None
    comparisons, shared = significance or ({}, [])
    bootstrap = bootstrap or BootstrapSettings()
    return {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ground_truth_file": ground_truth,
        "protocol": first.protocol.name if first else None,
        "models_evaluated": len(rows),
        "ranking": [row["model_name"] for row in rows],
        "models": rows,
        "warnings": comparability_warnings(results),
        "encoders": first.encoders if first else {},
        "metric_signatures": _common_signatures(results),
        "bootstrap": {"resamples": bootstrap.resamples, "seed": bootstrap.seed, "level": bootstrap.level,
                      "fid_resamples": bootstrap.fid_resamples, "interval": "percentile",
                      "resampling": "items with their (generated, reference) pairs; retrieval pool and CIDEr IDF "
                                    "fixed to the full set"},
        "significance": {metric: {name: c.to_json() for name, c in by_model.items()}
                         for metric, by_model in comparisons.items()},
        "significance_method": {"test": SIGNIFICANCE_TEST, "alpha": ALPHA, "shared_items": len(shared),
                                "resamples": bootstrap.resamples, "seed": bootstrap.seed} if comparisons else None,
        "note": "built from this run's results only; sorted by overall_score (partial scores marked)",
    }


def md_escape(text: str) -> str:
    """User text (a model name) for a markdown table cell: no raw HTML, no column break."""
    return html.escape(str(text), quote=False).replace("|", "\\|")


def cell_parts(data: dict[str, Any], row: dict[str, Any], metric: str) -> tuple[str, bool, bool]:
    """(value ± half-width [+ partial mark], is best, not significantly different from the best)."""
    text = fmt_metric(metric, row[metric], row["confidence_intervals"].get(metric))
    if metric == OVERALL and row[PARTIAL] and row[metric] is not None:
        value, _, rest = text.partition(" ± ")
        text = value + "*" + (f" ± {rest}" if rest else "")
    comparison = (data.get("significance") or {}).get(metric, {}).get(row["model_name"])
    if comparison is None:
        return text, False, False
    return text, bool(comparison.get("best")), not comparison.get("best") and comparison["p"] >= ALPHA


def table_notes(data: dict[str, Any]) -> list[str]:
    """Footnotes shared by the markdown and HTML tables (plain text)."""
    notes = []
    boot = data.get("bootstrap") or {}
    if any(row["confidence_intervals"] for row in data["models"]):
        notes.append(f"± = half the width of the {boot.get('level', 0.95):.0%} paired-bootstrap percentile CI over "
                     f"items (B={boot.get('resamples')}, seed {boot.get('seed')}); R@k in percentage points; the "
                     f"exact bounds are in batch_evaluation_summary.json and the csv.")
    method = data.get("significance_method")
    if method:
        notes.append(f"bold: best model of the column; {NOT_DIFFERENT}: not significantly different from it "
                     f"(paired bootstrap test, two-sided p >= {method['alpha']}, on the {method['shared_items']} "
                     f"items all models share); unmarked: significantly worse.")
    if any(row[PARTIAL] for row in data["models"]):
        notes.append("* partial overall score: the weighted mean of the available components only "
                     "(see overall_components in batch_evaluation_summary.json).")
    columns, labels = registry.table_metrics(), registry.labels()
    for key, suffix in (("unavailable", "n/a"), ("confidence_interval_unavailable", "no CI")):
        reasons: dict[str, str] = {}
        for row in data["models"]:
            for metric, reason in row[key].items():
                if metric in columns:
                    reasons.setdefault(metric, reason)
        for reason, metrics in group_by_reason(reasons).items():
            notes.append(f"{', '.join(labels[m] for m in metrics)} {suffix}: {reason}")
    return notes


def signature_lines(data: dict[str, Any]) -> list[str]:
    lines, columns = [], registry.table_metrics()
    for metric, sig in data.get("metric_signatures", {}).items():
        if metric not in columns:
            continue
        if isinstance(sig, str):
            lines.append(f"{metric}: {sig}")
        else:
            lines += [f"{metric} [{model}]: {s}" for model, s in sig.items()]
    return lines


def markdown_table(data: dict[str, Any]) -> str:
    columns, labels = registry.table_metrics(), registry.labels()
    header = ["Rank", "Model", *(labels[m] for m in columns), "Pairs", "Coverage"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in data["models"]:
        cells = [str(row["rank"]), md_escape(row["model_name"])]
        for metric in columns:
            text, best, same = cell_parts(data, row, metric)
            text = text.replace("*", "\\*")
            cells.append(f"**{text}**" if best else text + (f" {NOT_DIFFERENT}" if same else ""))
        cells += [str(row["pairs"]), f"{row['coverage']:.0%}"]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [n.replace("*", "\\*") for n in table_notes(data)]
    notes += [f"WARNING: {md_escape(w)}" for w in data["warnings"]]
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    signatures = signature_lines(data)
    if signatures:
        lines += ["", f"Metric signatures (protocol {data.get('protocol')}):", ""]
        lines += [f"    {s}" for s in signatures]
    return "\n".join(lines) + "\n"


def csv_table(data: dict[str, Any]) -> str:
    """One row per model; CI bounds and the p-value against the best as extra columns; signatures as # lines."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = registry.table_metrics()
    extra = [f"{m}_{part}" for m in columns for part in ("ci_low", "ci_high", "p_vs_best")]
    writer.writerow(["rank", "model_name", *columns, PARTIAL, "pairs", "coverage",
                     "generated_file", *extra])

    def number(value: Any) -> str:
        return "" if value is None else repr(float(value))

    for row in data["models"]:
        values = []
        for metric in columns:
            low, high = row["confidence_intervals"].get(metric, (None, None))
            comparison = (data.get("significance") or {}).get(metric, {}).get(row["model_name"]) or {}
            values += [number(low), number(high), number(comparison.get("p"))]
        writer.writerow([row["rank"], row["model_name"], *(number(row[m]) for m in columns),
                         str(row[PARTIAL]).lower(), row["pairs"], row["coverage"],
                         row["generated_file"], *values])
    for line in [*table_notes(data), *(f"WARNING: {w}" for w in data["warnings"]), *signature_lines(data)]:
        buffer.write(f"# {line}\n")
    return buffer.getvalue()
