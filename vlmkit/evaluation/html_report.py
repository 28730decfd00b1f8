"""A self-contained HTML report: metrics table, SVG bar chart and a per-item gallery.

Everything is inline (CSS, SVG, images as base64 JPEG thumbnails), so the file can be mailed or archived
and opened offline; it references no external URL.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from typing import Any

from vlmkit.evaluation import metrics as registry
from vlmkit.evaluation.evaluator import ModelResult
from vlmkit.evaluation.tables import NOT_DIFFERENT, cell_parts, signature_lines, table_notes
from vlmkit.multiview import ObjectFolder, load_view_images

log = logging.getLogger(__name__)

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
THUMB_PX = 96

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:1.5em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:.9em}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:8px 12px;
margin:8px 0}.muted{color:#777;font-size:.85em}.item{border:1px solid #ddd;border-radius:6px;padding:10px;
margin:12px 0}.views{display:flex;gap:6px;flex-wrap:wrap}.views figure{margin:0;text-align:center;font-size:.75em;
color:#666}.views img{width:96px;height:96px;object-fit:contain;background:#fafafa;border:1px solid #eee}
.scroll{overflow-x:auto;max-width:100%}.legend td{text-align:left;vertical-align:top}
.ref{background:#f0f7ff;padding:6px 8px;margin:8px 0}.cap td{vertical-align:top}.swatch{display:inline-block;
width:12px;height:12px;margin-right:4px;vertical-align:middle}
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def bar_chart_svg(rows: list[dict[str, Any]], metrics: tuple[str, ...] | None = None,
                  labels: dict[str, str] | None = None) -> str:
    """Grouped bars: one group per metric, one bar per model, with the 95 % CI as an error bar where a row has
    `confidence_intervals`; n/a values are labelled, not drawn as 0.

    Values are on a 0..1 scale; `metrics` / `labels` (default: the caption metric registry's chart metrics and
    labels) name the groups."""
    metrics = registry.chart_metrics() if metrics is None else metrics
    labels = registry.labels() if labels is None else labels
    models = [r["model_name"] for r in rows]
    bar_w, gap, height, top, bottom, left = 14, 18, 220, 20, 70, 40
    group_w = max(1, len(models)) * bar_w + gap
    width = left + len(metrics) * group_w + 20
    parts = [f'<svg width="{width}" height="{height + top + bottom}" '
             f'role="img" aria-label="metrics by model">']
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = top + height * (1 - tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" text-anchor="end">{tick:g}</text>')
    for g, metric in enumerate(metrics):
        x0 = left + g * group_w + gap / 2
        for i, row in enumerate(rows):
            value = row.get(metric)
            x = x0 + i * bar_w
            color = PALETTE[i % len(PALETTE)]
            if value is None:
                parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + height - 4}" font-size="8" fill="#999" '
                             f'text-anchor="middle" transform="rotate(-90 {x + bar_w / 2:.1f} {top + height - 4})">'
                             f'n/a</text>')
                continue
            v = min(max(float(value), 0.0), 1.0)
            h = height * v
            ci = (row.get("confidence_intervals") or {}).get(metric)
            ci_text = f" (95% CI {ci[0]:.4f} to {ci[1]:.4f})" if ci else ""
            parts.append(f'<rect x="{x:.1f}" y="{top + height - h:.1f}" width="{bar_w - 2}" height="{h:.1f}" '
                         f'fill="{color}"><title>{_esc(row["model_name"])} {_esc(labels[metric])}: '
                         f'{float(value):.4f}{ci_text}</title></rect>')
            if ci:
                parts.append(_error_bar(x + (bar_w - 2) / 2, top, height, ci))
        label_x = x0 + len(models) * bar_w / 2
        parts.append(f'<text x="{label_x:.1f}" y="{top + height + 14}" font-size="10" text-anchor="end" '
                     f'transform="rotate(-35 {label_x:.1f} {top + height + 14})">{_esc(labels[metric])}</text>')
    parts.append("</svg>")
    legend = " ".join(f'<span><span class="swatch" style="background:{PALETTE[i % len(PALETTE)]}"></span>'
                      f'{_esc(m)}</span>' for i, m in enumerate(models))
    return "".join(parts) + f"<div>{legend}</div>"


def _error_bar(x: float, top: float, height: float, ci: list[float] | tuple[float, float]) -> str:
    """A vertical line from the CI's low to its high end (clipped to the 0..1 axis), with caps."""
    y_low, y_high = (top + height * (1 - min(max(float(v), 0.0), 1.0)) for v in ci)
    return (f'<path class="ci" d="M{x - 3:.1f} {y_high:.1f}H{x + 3:.1f}M{x:.1f} {y_high:.1f}V{y_low:.1f}'
            f'M{x - 3:.1f} {y_low:.1f}H{x + 3:.1f}" stroke="#222" stroke-width="1" fill="none"/>')


def _thumbnails(obj: ObjectFolder | None) -> str:
    if obj is None:
        return '<div class="muted">no rendered views found for this id</div>'
    views, images, problems = load_view_images(obj, [v for v, _ in obj.views_in_order()])
    figures = []
    for view, image in zip(views, images, strict=True):
        image.thumbnail((THUMB_PX, THUMB_PX))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=80)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        figures.append(f'<figure><img alt="{_esc(view)}" src="data:image/jpeg;base64,{data}">'
                       f'<figcaption>{_esc(view)}</figcaption></figure>')
    extra = "".join(f'<div class="muted">{_esc(p)}</div>' for p in problems)
    return f'<div class="views">{"".join(figures)}</div>{extra}'


def _metrics_table(summary: dict[str, Any]) -> str:
    columns, labels = registry.table_metrics(), registry.labels()
    head = "".join(f"<th>{_esc(labels[m])}</th>" for m in columns)
    rows = []
    for row in summary["models"]:
        cells = []
        for m in columns:
            text, best, same = cell_parts(summary, row, m)
            cell = f"<b>{_esc(text)}</b>" if best else _esc(text) + (f" {NOT_DIFFERENT}" if same else "")
            cells.append(f"<td>{cell}</td>")
        rows.append(f'<tr><td>{row["rank"]}</td><td class="l">{_esc(row["model_name"])}</td>{"".join(cells)}'
                    f'<td>{row["pairs"]}</td><td>{row["coverage"]:.0%}</td></tr>')
    return (f'<div class="scroll"><table><tr><th>Rank</th><th class="l">Model</th>{head}<th>Pairs</th>'
            f'<th>Coverage</th></tr>{"".join(rows)}</table></div>')


def _legend(protocol: Any) -> str:
    """What each column measures, its range, which way is better and what always holds of it (the registry's)."""
    infos = registry.infos()
    rows = []
    for key in registry.table_metrics():
        m = infos[key]
        better = "higher" if m.higher_is_better else "lower"
        rows.append(f'<tr><td>{_esc(m.label)}</td><td><code>{_esc(key)}</code></td><td>{_esc(m.description)}</td>'
                    f'<td>{_esc(m.range)}</td><td>{better}</td><td>{_esc("; ".join(m.caveats))}</td></tr>')
    return ('<h2>What the columns mean</h2><div class="scroll"><table class="legend"><tr><th>Column</th><th>key</th>'
            '<th>What it measures</th><th>Range</th><th>Better</th><th>Caveats</th></tr>' + "".join(rows)
            + f'</table></div><p class="muted">Protocol {_esc(protocol.name)}: {_esc(protocol.summary)}.</p>')


def _run_caveats(results: list[ModelResult]) -> list[str]:
    """The notes of the .txt reports (pool size, FD at small n, partial scores, missing views), each once; a note
    that holds for some models only names them."""
    models: dict[str, list[str]] = {}
    for r in results:
        for note in r.notes:
            models.setdefault(note, []).append(r.model_name)
    return [note if len(names) == len(results) else f"{', '.join(names)}: {note}" for note, names in models.items()]


def _chart_left_out() -> str:
    infos = registry.infos()
    chart = set(registry.chart_metrics())
    left = [infos[k] for k in registry.table_metrics() if k not in chart]
    if not left:
        return ""
    shown = "; ".join(f"{m.label} (range {m.range}, {'higher' if m.higher_is_better else 'lower'} is better)"
                      for m in left)
    return (f'<p class="muted">Not in the chart, which shows only metrics on a 0..1 scale where higher is better: '
            f'{_esc(shown)}. Their values are in the table above.</p>')


def _item_scores(result: ModelResult, index: int) -> str:
    per = result.per_sample
    shown = []
    labels = registry.labels()
    for key in registry.item_score_metrics():
        if key in per:
            shown.append(f"{labels[key]} {float(per[key][index]):.3f}")
    if "retrieval_rank" in per:
        shown.append(f"rank {int(per['retrieval_rank'][index])}")
    return " · ".join(shown)


def html_report(summary: dict[str, Any], results: list[ModelResult], objects: dict[str, ObjectFolder] | None,
                gallery_limit: int = 50, title: str = "Caption evaluation") -> str:
    order = {name: i for i, name in enumerate(summary["ranking"])}
    results = sorted(results, key=lambda r: order.get(r.model_name, len(order)))
    colors = {r.model_name: PALETTE[i % len(PALETTE)] for i, r in enumerate(results)}
    index = {r.model_name: {item: i for i, item in enumerate(r.matched.ids)} for r in results}
    references: dict[str, str] = {}
    for r in results:
        for item, ref in zip(r.matched.ids, r.matched.references, strict=True):
            references.setdefault(item, ref)
    items = list(references)
    shown = items[: max(0, gallery_limit)]

    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_esc(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{_esc(title)}</h1>",
             f'<p class="muted">Ground truth: {_esc(summary["ground_truth_file"])} · created '
             f'{_esc(summary["created_at"])} · {len(results)} model(s), {len(items)} item(s)</p>']
    enc = summary.get("encoders") or {}
    sentence = (enc.get("sentence_encoder") or {}).get("name")
    clip = (enc.get("clip") or {}).get("name")
    if not results:
        raise ValueError("html_report needs at least one model's result (it carries the protocol)")
    protocol = results[0].protocol
    parts.append(f'<p class="muted">Sentence encoder ({_esc(registry.encoder_uses(protocol, "sentence"))}): '
                 f'{_esc(sentence or "none")} · CLIP ({_esc(registry.encoder_uses(protocol, "clip"))}): '
                 f'{_esc(clip or "unavailable: " + str(enc.get("clip_unavailable_reason")))}</p>')
    for warning in summary["warnings"]:
        parts.append(f'<div class="warn">Warning: {_esc(warning)}</div>')
    parts.append(f"<h2>Metrics (protocol {_esc(protocol.name)})</h2>" + _metrics_table(summary))
    notes = table_notes(summary)
    if notes:
        parts.append('<ul class="muted">' + "".join(f"<li>{_esc(n)}</li>" for n in notes) + "</ul>")
    caveats = _run_caveats(results)
    if caveats:
        parts.append('<p><b>Caveats of this run</b> (as in the compare_&lt;model&gt;.txt reports):</p><ul>'
                     + "".join(f"<li>{_esc(c)}</li>" for c in caveats) + "</ul>")
    parts.append(_legend(protocol))
    signatures = signature_lines(summary)
    if signatures:
        parts.append('<details><summary class="muted">Metric signatures</summary><pre class="muted">'
                     + _esc("\n".join(signatures)) + "</pre></details>")
    parts.append('<h2>Chart</h2><div class="scroll">' + bar_chart_svg(summary["models"]) + "</div>"
                 + '<p class="muted">Error bars: 95% CI (paired bootstrap over items), where computed.</p>'
                 + _chart_left_out())
    parts.append(f"<h2>Items</h2><p class=\"muted\">Showing {len(shown)} of {len(items)} items (ground-truth order)."
                 f"</p>")
    for item in shown:
        rows = []
        for r in results:
            i = index[r.model_name].get(item)
            if i is None:
                rows.append(f'<tr><td class="l"><span class="swatch" style="background:{colors[r.model_name]}"></span>'
                            f'{_esc(r.model_name)}</td><td class="l muted">no prediction</td><td></td></tr>')
                continue
            rows.append(f'<tr><td class="l"><span class="swatch" style="background:{colors[r.model_name]}"></span>'
                        f'{_esc(r.model_name)}</td><td class="l">{_esc(r.matched.generated[i])}</td>'
                        f'<td class="l muted">{_esc(_item_scores(r, i))}</td></tr>')
        thumbs = _thumbnails(objects.get(item)) if objects is not None else ""
        parts.append(f'<div class="item"><b>{_esc(item)}</b>{thumbs}<div class="ref"><b>Reference:</b> '
                     f'{_esc(references[item])}</div><table class="cap">{"".join(rows)}</table></div>')
    parts.append("</body></html>\n")
    return "\n".join(parts)
