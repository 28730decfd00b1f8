"""ratings.md and ratings.html: the ratings table, a plot of the ratings with their 95 % CIs (inline SVG, no external
URL), the win-rate matrix, judge consistency, the length analyses and, with a compare run, the metric agreement."""

from __future__ import annotations

import html
from typing import Any

from vlmkit.evaluation.html_report import CSS
from vlmkit.evaluation.tables import md_escape


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(ci: list[float] | None, digits: int = 0) -> str:
    return "n/a" if not ci else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _rating_rows(data: dict[str, Any]) -> list[list[str]]:
    lc = (data.get("length_controlled") or {}).get("models", {})
    rows = []
    for rank, (name, m) in enumerate(data["models"].items(), start=1):
        row = [str(rank), name, _num(m["rating"]), _ci(m["ci"]), str(m["wins"]), str(m["losses"]), str(m["ties"]),
               str(data["both_bad"]["by_model"].get(name, 0))]
        if lc:
            row += [_num(lc[name]["rating"]), _ci(lc[name]["ci"])]
        rows.append(row)
    return rows


def _rating_header(data: dict[str, Any]) -> list[str]:
    head = ["Rank", "Model", "Rating", "95% CI", "Wins", "Losses", "Ties", "both_bad"]
    if data.get("length_controlled"):
        head += ["Length-controlled", "LC 95% CI"]
    return head


def _consistency_rows(data: dict[str, Any]) -> list[list[str]]:
    bias = data.get("length_bias") or {}
    rows = []
    for source, s in data["swap_consistency"].items():
        lb = bias.get(source) or {}
        rows.append([source, str(s["votes"]), str(s["pairs"]), str(s["flipped"]), _pct(s["flip_rate"]),
                     _pct(s["position_first_wins"]), _pct(lb.get("longer_win_rate"))])
    return rows


CONSISTENCY_HEAD = ["Source", "Votes", "Pairs in both orders", "Flipped", "Flip rate", "First shown wins",
                    "Longer wins"]
AGREEMENT_HEAD = ["Metric", "Kendall τ", "τ 95% CI", "Pairwise accuracy", "Acc. 95% CI", "Decided votes"]


def _agreement_rows(agreement: dict[str, Any]) -> list[list[str]]:
    return [[r["label"], _num(r["kendall_tau"], 3), _ci(r["kendall_tau_ci"], 3), _pct(r["pairwise_accuracy"]),
             "n/a" if not r["pairwise_accuracy_ci"] else
             f"[{r['pairwise_accuracy_ci'][0]:.1%}, {r['pairwise_accuracy_ci'][1]:.1%}]", str(r["decided_votes"])]
            for r in agreement["rows"]]


def _notes(data: dict[str, Any]) -> list[str]:
    scale = data["scale"]
    boot = data["bootstrap"]
    notes = [f"Rating = {scale['anchor']:g} + 400·log10(odds of beating {data['baseline']}) (Bradley–Terry by "
             f"maximum likelihood on {data['n_votes']} votes over {data['n_items']} items; ties = half a win each; "
             f"{data['both_bad']['excluded']} both_bad vote(s) excluded).",
             f"95% CI: percentile bootstrap over items (B={boot['resamples']}, seed {boot['seed']}); the baseline's "
             f"CI is zero-width by construction, the others are relative to it."]
    lc = data.get("length_controlled")
    if lc:
        notes.append(f"Length-controlled: β = {lc['beta']:.3f} {_ci(lc['beta_ci'], 3)} log-odds for a wholly longer "
                     f"caption (> 0: longer preferred); B={lc['resamples']}.")
    else:
        notes.append(f"Length-controlled ratings: n/a ({data.get('length_controlled_reason')}).")
    return notes + [f"WARNING: {w}" for w in data["warnings"]]


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows]
    return lines


def _win_matrix(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    names = list(data["models"])
    head = ["row beats column", *names]
    rows = [[a, *("—" if a == b else _pct(data["win_rate"][a][b]) for b in names)] for a in names]
    return head, rows


def _by_source(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    sources = list(data["by_source"])
    head = ["Model", *(f"{s} (n={data['by_source'][s]['n_votes']})" for s in sources)]
    rows = []
    for name in data["models"]:
        cells = []
        for s in sources:
            m = data["by_source"][s]["models"].get(name)
            cells.append("n/a" if m is None else f"{_num(m['rating'])} {_ci(m['ci'])}")
        rows.append([name, *cells])
    return head, rows


def ratings_markdown(data: dict[str, Any]) -> str:
    lines = ["# Model ratings from pairwise votes", ""]
    lines += _md_table(_rating_header(data), _rating_rows(data))
    lines += [""] + [f"- {md_escape(n)}" for n in _notes(data)]
    if data.get("by_source"):
        lines += ["", "## Ratings by source", ""] + _md_table(*_by_source(data))
    lines += ["", "## Win rates", ""] + _md_table(*_win_matrix(data))
    lines += ["", "## Voter consistency", ""] + _md_table(CONSISTENCY_HEAD, _consistency_rows(data))
    agreement = data.get("agreement")
    if agreement:
        lines += ["", "## Which metric agrees with the human votes (best first)", ""]
        lines += _md_table(AGREEMENT_HEAD, _agreement_rows(agreement))
        lines += ["", f"- {md_escape(agreement['method'])}"]
    return "\n".join(lines) + "\n"


def ratings_svg(data: dict[str, Any]) -> str:
    """Horizontal dot plot: one row per model, its rating and 95 % CI as an error bar (plus the length-controlled
    rating as a hollow dot when computed)."""
    models = list(data["models"].items())
    lc = (data.get("length_controlled") or {}).get("models", {})
    values = [v for _, m in models for v in ([m["rating"]] + (m["ci"] or []))]
    values += [v for m in lc.values() for v in [m["rating"], *(m["ci"] or [])]]
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.08, 10.0)
    lo, hi = lo - pad, hi + pad
    left, width, row_h, top = 180, 520, 26, 24
    height = top + row_h * len(models) + 30

    def x(v: float) -> float:
        return left + width * (v - lo) / (hi - lo)

    parts = [f'<svg width="{left + width + 30}" height="{height}" role="img" aria-label="ratings with 95% CIs">']
    for i in range(6):
        tick = lo + (hi - lo) * i / 5
        parts.append(f'<line x1="{x(tick):.1f}" y1="{top - 6}" x2="{x(tick):.1f}" y2="{height - 26}" stroke="#eee"/>'
                     f'<text x="{x(tick):.1f}" y="{height - 12}" font-size="10" text-anchor="middle">{tick:.0f}'
                     f'</text>')
    for row, (name, m) in enumerate(models):
        y = top + row_h * row + row_h / 2
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" font-size="12" text-anchor="end">{_esc(name)}</text>')
        if m["ci"]:
            a, b = x(m["ci"][0]), x(m["ci"][1])
            parts.append(f'<path d="M{a:.1f} {y - 5:.1f}V{y + 5:.1f}M{a:.1f} {y:.1f}H{b:.1f}M{b:.1f} {y - 5:.1f}'
                         f'V{y + 5:.1f}" stroke="#222" fill="none"/>')
        ci_text = f" (95% CI {m['ci'][0]:.0f} to {m['ci'][1]:.0f})" if m["ci"] else ""
        parts.append(f'<circle cx="{x(m["rating"]):.1f}" cy="{y:.1f}" r="5" fill="#4e79a7"><title>{_esc(name)}: '
                     f'{m["rating"]:.0f}{ci_text}</title></circle>')
        if name in lc:
            parts.append(f'<circle cx="{x(lc[name]["rating"]):.1f}" cy="{y:.1f}" r="4" fill="none" '
                         f'stroke="#e15759" stroke-width="2"><title>{_esc(name)} length-controlled: '
                         f'{lc[name]["rating"]:.0f}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{_esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def ratings_html(data: dict[str, Any]) -> str:
    parts = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Model ratings</title>"
             f"<style>{CSS}</style></head><body><h1>Model ratings from pairwise votes</h1>"]
    for warning in data["warnings"]:
        parts.append(f'<div class="warn">Warning: {_esc(warning)}</div>')
    parts.append(ratings_svg(data))
    legend = "filled: rating with 95% CI"
    if data.get("length_controlled"):
        legend += "; hollow red: length-controlled rating"
    parts.append(f'<p class="muted">{_esc(legend)}</p>')
    parts.append(_html_table(_rating_header(data), _rating_rows(data)))
    parts.append('<ul class="muted">' + "".join(f"<li>{_esc(n)}</li>" for n in _notes(data)) + "</ul>")
    if data.get("by_source"):
        parts.append("<h2>Ratings by source</h2>" + _html_table(*_by_source(data)))
    parts.append("<h2>Win rates</h2>" + _html_table(*_win_matrix(data)))
    parts.append("<h2>Voter consistency</h2>" + _html_table(CONSISTENCY_HEAD, _consistency_rows(data)))
    agreement = data.get("agreement")
    if agreement:
        parts.append("<h2>Which metric agrees with the human votes (best first)</h2>"
                     + _html_table(AGREEMENT_HEAD, _agreement_rows(agreement))
                     + f'<p class="muted">{_esc(agreement["method"])}</p>')
    parts.append("</body></html>\n")
    return "\n".join(parts)
