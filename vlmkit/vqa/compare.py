"""Compare benchmark results of several models (base, adapter, merged, ...) on the same question set.

For each model: accuracy with its 95 % bootstrap CI; against the first model (the baseline): the paired difference
on the questions both answered, with a paired bootstrap CI and a paired permutation test; accuracy per question type
(TextVQA/VQA: first words such as "what brand", "how many"; MMBench: category and l2-category); answer diversity
(unique / total normalised answers) and the most frequent answers (a model that answers "yes" or "A" to everything
shows up here); and the questions where the models disagree most. Written as comparison.md, comparison.json and a
self-contained comparison.html (inline SVG charts, no external URL).

Results of different tasks are refused; results on different dataset files, prompts or decoding settings are
compared, with a warning at the top of every report, since their differences are then not the models' alone.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmkit.evaluation.html_report import CSS, PALETTE, bar_chart_svg
from vlmkit.io import InputError, iter_jsonl, read_json, write_all_or_nothing
from vlmkit.vqa import results as res
from vlmkit.vqa.signature import differing_keys
from vlmkit.vqa.stats import DEFAULT_RESAMPLES, paired_difference

log = logging.getLogger(__name__)

FORMAT = "vlmkit-vqa-comparison/1"
FILES = ("comparison.md", "comparison.json", "comparison.html")
MAX_TYPES_CHARTED = 12
MAX_DISAGREEMENTS = 20


@dataclass
class Loaded:
    name: str
    folder: Path
    results: dict[str, Any]
    units: dict[str, float]  # unit id -> score
    unit_type: dict[str, str]
    unit_answers: dict[str, list[dict[str, Any]]]  # unit id -> its scored rows (MMBench: one per rotation)


def _unit_of(task: str, row: dict[str, Any]) -> str:
    return str(row["group"]) if task == "mmbench" else str(row["question_id"])


RESULT_KEYS = ("task", "unit", "n", "name", "signature", "complete", "accuracy", "scoring", "ci95", "n_total",
               "n_failed", "n_missing", "answer_stats")


def read_results(path: str | Path) -> tuple[Path, Path, dict[str, Any]]:
    """(folder, results.json, its content) of a results folder or file; checked before any scored row is read."""
    path = Path(path)
    folder = path.parent if path.suffix == ".json" else path
    results_file = folder / res.RESULTS if path.suffix != ".json" else path
    data = read_json(results_file)
    if not isinstance(data, dict) or data.get("format") != res.FORMAT:
        raise InputError(f"{results_file}: not a results.json written by eval_vqa.py")
    missing = [k for k in RESULT_KEYS if k not in data]
    if missing:
        raise InputError(f"{results_file}: missing {', '.join(missing)} (not a complete eval_vqa.py results.json)")
    return folder, results_file, data


def load_result(path: str | Path, header: tuple[Path, Path, dict[str, Any]] | None = None) -> Loaded:
    """A results folder (or its results.json) with its predictions_scored.jsonl."""
    folder, results_file, data = header or read_results(path)
    scored = folder / (data.get("files") or {}).get("scored", res.SCORED)
    task = data["task"]
    need = ("group", "score") if task == "mmbench" else ("question_id", "score")
    units, types, answers = {}, {}, {}
    for lineno, row in iter_jsonl(scored):
        if not isinstance(row, dict) or any(k not in row for k in need):
            raise InputError(f"{scored}: line {lineno}: not a scored {task} row (needs {', '.join(need)}; the "
                             f"scored file of another task or run?)")
        unit = _unit_of(task, row)
        try:
            units[unit] = float(row["score"])
        except (TypeError, ValueError):
            raise InputError(f"{scored}: line {lineno}: score {row['score']!r} is not a number") from None
        types[unit] = row.get("category") if task == "mmbench" else row.get("question_type")
        answers.setdefault(unit, []).append(row)
    if len(units) != data["n"]:
        raise InputError(f"{scored}: {len(units)} scored {data['unit']}s, results.json says {data['n']} (files of two "
                         "runs mixed?)")
    return Loaded(data["name"], folder, data, units, types, answers)


def _unique_names(loaded: list[Loaded]) -> None:
    seen: dict[str, int] = {}
    for item in loaded:
        seen[item.name] = seen.get(item.name, 0) + 1
        if seen[item.name] > 1:
            item.name = f"{item.name}#{seen[item.name]}"


def _warnings(loaded: list[Loaded]) -> list[str]:
    base = loaded[0]
    out = []
    for other in loaded[1:]:
        changed = differing_keys(base.results["signature"], other.results["signature"],
                                 ignore=("model", "predictions"))
        if changed:
            out.append(f"{other.name} differs from {base.name} in {', '.join(changed)}: differences are not the "
                       "models' alone")
    for item in loaded:
        if not item.results["complete"]:
            out.append(f"{item.name}: {item.results['n_failed']} failed and {item.results['n_missing']} missing "
                       f"{item.results['unit']}s are not scored (paired tests use the shared ones)")
    return out


def _type_table(loaded: list[Loaded]) -> list[dict[str, Any]]:
    counts: dict[str, int] = {}
    for unit, kind in loaded[0].unit_type.items():
        if unit in loaded[0].units:
            counts[kind or "other"] = counts.get(kind or "other", 0) + 1
    rows = []
    for kind in sorted(counts, key=lambda k: (-counts[k], k)):
        row: dict[str, Any] = {"type": kind, "n": counts[kind], "accuracy": {}}
        for item in loaded:
            scores = [s for u, s in item.units.items() if (item.unit_type.get(u) or "other") == kind]
            row["accuracy"][item.name] = sum(scores) / len(scores) if scores else None
        rows.append(row)
    return rows


def _disagreements(loaded: list[Loaded]) -> list[dict[str, Any]]:
    shared = sorted(set.intersection(*(set(item.units) for item in loaded)))
    spread = []
    for unit in shared:
        scores = [item.units[unit] for item in loaded]
        if max(scores) != min(scores):
            spread.append((-(max(scores) - min(scores)), unit))
    out = []
    for _, unit in sorted(spread)[:MAX_DISAGREEMENTS]:
        first = loaded[0].unit_answers[unit][0]
        out.append({"unit": unit, "question": first.get("question"),
                    "reference": first.get("gt_answers") or first.get("gt"),
                    "answers": {item.name: {"answer": [r["answer"] for r in item.unit_answers[unit]],
                                            "score": item.units[unit]} for item in loaded}})
    return out


def compare(paths: list[str | Path], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, Any]:
    if len(paths) < 1:
        raise InputError("give at least one results folder")
    headers = [read_results(p) for p in paths]
    first_task = headers[0][2]["task"]
    for _, results_file, data in headers[1:]:
        if data["task"] != first_task:
            raise InputError(f"{results_file}: a {data['task']} result, the baseline {headers[0][1]} is {first_task}: "
                             "results of different tasks cannot be compared")
    loaded = [load_result(p, h) for p, h in zip(paths, headers, strict=True)]
    _unique_names(loaded)
    base = loaded[0]
    paired = []
    for other in loaded[1:]:
        shared = sorted(set(base.units) & set(other.units))
        diff = paired_difference([base.units[u] for u in shared], [other.units[u] for u in shared],
                                 resamples=resamples, seed=seed)
        paired.append({"baseline": base.name, "model": other.name, **diff})
    return {
        "format": FORMAT,
        "task": base.results["task"],
        "unit": base.results["unit"],
        "scoring": base.results["scoring"],
        "warnings": _warnings(loaded),
        "models": [{"name": item.name, "results": str(item.folder / res.RESULTS), "accuracy": item.results["accuracy"],
                    "ci95": item.results["ci95"], "n": item.results["n"], "n_total": item.results["n_total"],
                    "complete": item.results["complete"], "n_failed": item.results["n_failed"],
                    "n_missing": item.results["n_missing"], "answer_stats": item.results["answer_stats"],
                    "model": item.results["signature"].get("model"),
                    "dataset_sha256": item.results["signature"]["dataset"]["sha256"]} for item in loaded],
        "paired": paired,
        "by_type": {"key": "category" if base.results["task"] == "mmbench" else "question type",
                    "rows": _type_table(loaded)},
        "disagreements": _disagreements(loaded) if len(loaded) > 1 else [],
    }


def _pct(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}"


def _ci(ci: dict[str, Any]) -> str:
    return "n/a" if ci.get("low") is None else f"{_pct(ci['low'])}–{_pct(ci['high'])}"


def _p(value: float | None) -> str:
    return "n/a" if value is None else (f"{value:.4f}" if value >= 1e-4 else "< 0.0001")


def markdown(report: dict[str, Any]) -> str:
    names = [m["name"] for m in report["models"]]
    lines = [f"# {report['task']} comparison", "", f"Scoring: {report['scoring']}.", ""]
    lines += [f"> **warning:** {w}" for w in report["warnings"]] + ([""] if report["warnings"] else [])
    lines += ["| model | accuracy % | 95% CI | n | failed | missing | answer diversity |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for m in report["models"]:
        stats = m["answer_stats"]
        lines.append(f"| {m['name']} | {_pct(m['accuracy'])} | {_ci(m['ci95'])} | {m['n']} / {m['n_total']} | "
                     f"{m['n_failed']} | {m['n_missing']} | {stats['unique']} / {stats['total']} |")
    if report["paired"]:
        lines += ["", f"## Paired difference (model − baseline, on the {report['unit']}s both scored)", "",
                  "| baseline | model | shared | difference (points) | 95% CI | p (permutation) "
                  "| better / worse / tie |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for p in report["paired"]:
            lines.append(f"| {p['baseline']} | {p['model']} | {p['n']} | {_pct(p['difference'])} | {_ci(p['ci'])} | "
                         f"{_p(p['p_value'])} | {p['b_better']} / {p['a_better']} / {p['ties']} |")
    lines += ["", f"## Accuracy % by {report['by_type']['key']}", "", "| type | n | " + " | ".join(names) + " |",
              "| --- | --- | " + " | ".join("---" for _ in names) + " |"]
    for row in report["by_type"]["rows"]:
        lines.append(f"| {row['type']} | {row['n']} | " + " | ".join(_pct(row["accuracy"][n], 1) for n in names) + " |")
    lines += ["", "## Most frequent answers (normalised)", ""]
    for m in report["models"]:
        top = ", ".join(f"`{t['answer'] or '(empty)'}` {t['count']} ({100 * t['share']:.1f}%)"
                        for t in m["answer_stats"]["top"])
        lines.append(f"- **{m['name']}**: {top or 'none'}")
    if report["disagreements"]:
        lines += ["", f"## Where the models disagree most (first {len(report['disagreements'])})", "",
                  "| id | question | reference | " + " | ".join(names) + " |",
                  "| --- | --- | --- | " + " | ".join("---" for _ in names) + " |"]
        for d in report["disagreements"]:
            ref = d["reference"] if isinstance(d["reference"], str) else ", ".join(dict.fromkeys(d["reference"]))
            cells = [f"{' / '.join(d['answers'][n]['answer'])} ({d['answers'][n]['score']:.2f})" for n in names]
            lines.append(f"| {d['unit']} | {_md(d['question'])} | {_md(ref)} | " + " | ".join(map(_md, cells)) + " |")
    return "\n".join(lines) + "\n"


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def accuracy_chart_svg(models: list[dict[str, Any]]) -> str:
    """Horizontal bars (accuracy %) with 95 % CI whiskers; a model without accuracy is labelled n/a."""
    row_h, left, width = 26, 180, 420
    height = row_h * len(models) + 30
    parts = [f'<svg width="{left + width + 80}" height="{height}" role="img" aria-label="accuracy by model">']
    for tick in range(0, 101, 25):
        x = left + width * tick / 100
        parts.append(f'<line x1="{x}" y1="0" x2="{x}" y2="{height - 20}" stroke="#eee"/>'
                     f'<text x="{x}" y="{height - 6}" font-size="10" text-anchor="middle">{tick}%</text>')
    for i, m in enumerate(models):
        y = i * row_h + 4
        parts.append(f'<text x="{left - 6}" y="{y + 14}" font-size="12" text-anchor="end">{_esc(m["name"])}</text>')
        if m["accuracy"] is None:
            parts.append(f'<text x="{left + 4}" y="{y + 14}" font-size="11" fill="#999">n/a</text>')
            continue
        w = width * m["accuracy"]
        parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{row_h - 8}" '
                     f'fill="{PALETTE[i % len(PALETTE)]}"><title>{_esc(m["name"])}: {_pct(m["accuracy"])}%</title>'
                     f'</rect><text x="{left + w + 4:.1f}" y="{y + 13}" font-size="11">{_pct(m["accuracy"], 1)}'
                     f'</text>')
        ci = m["ci95"]
        if ci.get("low") is not None:
            x0, x1, yc = left + width * ci["low"], left + width * ci["high"], y + (row_h - 8) / 2
            parts.append(f'<line x1="{x0:.1f}" y1="{yc}" x2="{x1:.1f}" y2="{yc}" stroke="#222"/>'
                         f'<line x1="{x0:.1f}" y1="{yc - 5}" x2="{x0:.1f}" y2="{yc + 5}" stroke="#222"/>'
                         f'<line x1="{x1:.1f}" y1="{yc - 5}" x2="{x1:.1f}" y2="{yc + 5}" stroke="#222"/>')
    return "".join(parts) + "</svg>"


def type_chart_svg(report: dict[str, Any]) -> str:
    """Grouped bars: accuracy per question type (the most frequent types), one bar per model."""
    rows = report["by_type"]["rows"][:MAX_TYPES_CHARTED]
    types = tuple(row["type"] for row in rows)
    bars = [{"model_name": m["name"], **{row["type"]: row["accuracy"][m["name"]] for row in rows}}
            for m in report["models"]]
    return bar_chart_svg(bars, types, labels={row["type"]: f"{row['type']} ({row['n']})" for row in rows})


def html_page(report: dict[str, Any], markdown_text: str) -> str:
    """The charts, then every table of the markdown report (rendered as simple HTML tables)."""
    body = [f"<h1>{_esc(report['task'])} comparison</h1>", f'<p class="muted">{_esc(report["scoring"])}</p>']
    body += [f'<div class="warn">{_esc(w)}</div>' for w in report["warnings"]]
    body += ["<h2>Accuracy (95% bootstrap CI)</h2>", accuracy_chart_svg(report["models"]),
             f"<h2>Accuracy by {_esc(report['by_type']['key'])}</h2>", type_chart_svg(report)]
    body.append(_markdown_tables_html(markdown_text))
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_esc(report["task"])} comparison'
            f'</title><style>{CSS}</style></head><body>{"".join(body)}</body></html>\n')


def _markdown_tables_html(text: str) -> str:
    """Headings, lists and pipe tables of our own markdown, as HTML (no markdown dependency for three constructs)."""
    out, table = [], []

    def flush() -> None:
        if table:
            head, *rows = [[c.strip().replace("\\|", "|") for c in _split_row(r)] for r in table if "---" not in r]
            cells = "".join(f'<th class="l">{_esc(c)}</th>' for c in head)
            body = "".join("<tr>" + "".join(f'<td class="l">{_esc(c)}</td>' for c in r) + "</tr>" for r in rows)
            out.append(f"<table><tr>{cells}</tr>{body}</table>")
            table.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("## "):
            out.append(f"<h2>{_esc(line[3:])}</h2>")
        elif line.startswith("- "):
            out.append(f"<div>{_esc(line[2:].replace('**', '').replace('`', ''))}</div>")
    flush()
    return "".join(out)


def _split_row(row: str) -> list[str]:
    cells, current, escaped = [], "", False
    for ch in row.strip().strip("|"):
        if ch == "|" and not escaped:
            cells.append(current)
            current = ""
        else:
            current += ch
        escaped = ch == "\\"
    return [*cells, current]


def write_comparison(report: dict[str, Any], output_dir: Path) -> dict[str, Path]:
    text = markdown(report)
    files = {output_dir / FILES[0]: text,
             output_dir / FILES[1]: json.dumps(report, ensure_ascii=False, indent=2) + "\n",
             output_dir / FILES[2]: html_page(report, text)}
    write_all_or_nothing(files)
    return {name: output_dir / name for name in FILES}
