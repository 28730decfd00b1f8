"""One model's result as files: compare_<model>.json (VaseVQA-3D's keys at the top level, then everything needed
to read them honestly), compare_<model>.txt (a human report) and compare_<model>_per_sample.jsonl."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from vlmkit.evaluation import metrics as registry
from vlmkit.evaluation.evaluator import ModelResult

PER_SAMPLE_ROUND = 6


def safe_name(name: str) -> str:
    """A model name usable in a file name."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._") or "model"


def output_names(model_name: str) -> dict[str, str]:
    stem = f"compare_{safe_name(model_name)}"
    return {"json": f"{stem}.json", "txt": f"{stem}.txt", "per_sample": f"{stem}_per_sample.jsonl"}


def _clean(value: Any) -> Any:
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, np.integer):
        return int(value)
    return value


def result_json(result: ModelResult, files: dict[str, str], settings: dict[str, Any]) -> dict[str, Any]:
    m = result.metrics
    out: dict[str, Any] = {k: _clean(m.get(k)) for k in registry.vasevqa3d_keys()}
    out.update({k: _clean(m.get(k)) for k in registry.all_metrics() if k not in out})
    out[f"{registry.OVERALL_KEY}_partial"] = result.overall.partial
    out["protocol"] = result.protocol.name
    out["confidence_intervals"] = {k: [_clean(lo), _clean(hi)] for k, (lo, hi) in result.confidence_intervals.items()}
    out["confidence_interval_unavailable"] = dict(result.ci_unavailable)
    out["metric_signatures"] = dict(result.signatures)
    out["unavailable"] = dict(result.reasons)
    out["overall"] = result.overall.to_json()
    for spec in registry.GROUPS:  # each group's own section (retrieval pool, FD sample sizes, views)
        if spec.details_key and spec.details_key in result.details:
            out[spec.details_key] = result.details[spec.details_key]
    out["coverage"] = result.matched.coverage
    out["notes"] = list(result.notes)
    out["metadata"] = {
        "total_pairs": len(result.matched),
        "generated_file": str(result.matched.generated_file),
        "ground_truth_file": str(result.matched.ground_truth_file),
        "model_name": result.model_name,
        "per_sample_file": files.get("per_sample"),
        "encoders": result.encoders,
        "overall_weights": registry.overall_weights(),
        **settings,
        "seconds_scoring": round(result.seconds, 3),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return out


def per_sample_rows(result: ModelResult) -> list[dict[str, Any]]:
    matched = result.matched
    rows = []
    keys = list(result.per_sample)
    for i, item in enumerate(matched.ids):
        row: dict[str, Any] = {"id": item, "generated": matched.generated[i], "reference": matched.references[i]}
        for key in keys:
            value = result.per_sample[key][i]
            if np.issubdtype(type(value), np.integer):
                row[key] = int(value)
            else:  # NaN: an item a metric could not score (an unreadable judge answer): null, never 0
                row[key] = round(float(value), PER_SAMPLE_ROUND) if math.isfinite(float(value)) else None
        rows.append(row)
    return rows


def per_sample_jsonl(result: ModelResult) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in per_sample_rows(result))


def group_by_reason(reasons: dict[str, str]) -> dict[str, list[str]]:
    """{metric: reason} -> {reason: [metrics]}, so one missing model is explained once."""
    grouped: dict[str, list[str]] = {}
    for metric, reason in reasons.items():
        grouped.setdefault(reason, []).append(metric)
    return grouped


def fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def fmt_metric(metric: str, value: float | None, ci: tuple[float, float] | list[float] | None = None) -> str:
    """A value as the tables show it: R@k in %, others with 4 decimals; with its CI as ± half-width."""
    if value is None:
        return "n/a"
    percent = registry.is_percent(metric)
    text = f"{value:.2%}" if percent else f"{value:.4f}"
    if ci is not None and None not in ci:
        half = (ci[1] - ci[0]) / 2.0
        text += f" ± {half * 100:.2f}" if percent else f" ± {half:.4f}"
    return text


def text_report(result: ModelResult, data: dict[str, Any]) -> str:
    """VaseVQA-3D's human report (same sections), with the caveats next to the numbers."""
    m, meta, cov = result.metrics, data["metadata"], result.matched.coverage
    lines = [f"# Caption evaluation report - {result.model_name}", "", "## Basic information",
             f"- Model name: {result.model_name}",
             f"- Evaluated pairs: {len(result.matched)} of {cov['ground_truth_items']} ground-truth items "
             f"(coverage {cov['coverage']:.1%})",
             f"- Generated file: {meta['generated_file']}", f"- Ground truth file: {meta['ground_truth_file']}"]
    enc, protocol = result.encoders, result.protocol
    labels = registry.labels()
    if enc.get("sentence_encoder"):
        lines.append(f"- Sentence encoder ({registry.encoder_uses(protocol, 'sentence')}): "
                     f"{enc['sentence_encoder']['name']}")
    lines.append(f"- CLIP model ({registry.encoder_uses(protocol, 'clip')}): "
                 f"{enc['clip']['name'] if enc.get('clip') else 'unavailable'}")
    for key, label in (("missing_predictions", "missing predictions"), ("unmatched_generated",
                       "generated ids not in ground truth"), ("duplicate_generated_ids", "duplicate generated ids"),
                       ("duplicate_ground_truth_ids", "duplicate ground-truth ids")):
        if cov[key]["count"]:
            lines.append(f"- {cov[key]['count']} {label}: {', '.join(cov[key]['ids'])}")

    def line(key: str, digits: int = 4) -> str:
        value, percent = m.get(key), registry.is_percent(key)
        shown = "n/a" if value is None else (f"{value:.2%}" if percent else f"{value:.{digits}f}")
        ci = result.confidence_intervals.get(key)
        if ci is not None:
            shown += (f"  (95% CI {ci[0]:.2%} to {ci[1]:.2%})" if percent else
                      f"  (95% CI {ci[0]:.{digits}f} to {ci[1]:.{digits}f})")
        return f"- {labels[key]}: {shown}" + ("  (unavailable, see below)" if key in result.reasons else "")

    lines += [f"- Protocol: {protocol.name} — {protocol.summary}", "", "## Metrics"]
    sections = registry.report_sections()
    for number, (section, groups) in enumerate(sections.items(), start=1):
        lines += ["", f"### {number}. {section}", *(line(k) for k in registry.section_metrics(section))]
        for spec in groups:
            if spec.report_lines and spec.details_key in data:
                lines += spec.report_lines(data)
    lines += ["", f"### {len(sections) + 1}. Overall score", line(registry.OVERALL_KEY)]
    overall = data["overall"]
    if overall["partial"]:
        lines.append(f"  PARTIAL: from {', '.join(overall['components'])} ({overall['weight_covered']:.0%} of the "
                     f"weight); missing {', '.join(overall['missing_components'])}")
    lines.append(f"  formula: {overall['formula']}")
    if result.reasons:
        lines += ["", "## Unavailable metrics"]
        for reason, metrics in group_by_reason(result.reasons).items():
            lines.append(f"- {', '.join(labels.get(m, m) for m in metrics)}: {reason}")
    if result.ci_unavailable:
        lines += ["", "## No confidence interval"]
        for reason, metrics in group_by_reason(result.ci_unavailable).items():
            lines.append(f"- {', '.join(labels.get(m, m) for m in metrics)}: {reason}")
    if result.notes:
        lines += ["", "## Notes"] + [f"- {n}" for n in result.notes]
    if result.signatures:
        width = max(len(k) for k in result.signatures)
        lines += ["", "## Metric signatures"] + [f"- {k.ljust(width)}  {sig}" for k, sig in result.signatures.items()]
    return "\n".join(lines) + "\n"


def model_files(result: ModelResult, out_json: Path, settings: dict[str, Any]) -> tuple[dict[Path, str], dict]:
    """The three files of one model, as {path: text}, plus the JSON data (for the summary)."""
    per_sample_path = out_json.with_name(out_json.stem + "_per_sample.jsonl")
    txt_path = out_json.with_suffix(".txt")
    data = result_json(result, {"per_sample": per_sample_path.name}, settings)
    return {
        out_json: json.dumps(data, ensure_ascii=False, indent=2) + "\n",
        txt_path: text_report(result, data),
        per_sample_path: per_sample_jsonl(result),
    }, data
