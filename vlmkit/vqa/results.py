"""Scoring a set of answers against a question set: per-question scores and `results.json`.

Every question ends up scored, failed (no answer because its image was unreadable or generation failed; listed
with the reason, not counted as wrong and not counted as right) or missing (`--score_only --allow_missing`: no line
in the predictions file; listed). Accuracy is over the scored units (questions; MMBench: circular groups), and
`complete` says whether that is all of them. An accuracy that cannot be computed is null with the reason.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vlmkit.io import write_all_or_nothing
from vlmkit.vqa.mmbench_scoring import circular_hit, extract_choice
from vlmkit.vqa.stats import DEFAULT_RESAMPLES, bootstrap_ci
from vlmkit.vqa.tasks import TaskData
from vlmkit.vqa.textvqa_scoring import normalize_answer, vqa_accuracy_normalized

log = logging.getLogger(__name__)

FORMAT = "vlmkit-vqa-results/1"
RESULTS = "results.json"
SCORED = "predictions_scored.jsonl"
ANSWERS = "answers.jsonl"
TOP_ANSWERS = 10

SCORING = {
    "textvqa": "VQA accuracy as lmms-eval (EvalAIAnswerProcessor normalisation; mean over the leave-one-out subsets "
               "of the human answers of min(#matches/3, 1))",
    "vqa": "VQA accuracy as lmms-eval (EvalAIAnswerProcessor normalisation; mean over the leave-one-out subsets of "
           "the human answers of min(#matches/3, 1); one reference answer: normalised exact match)",
    "mmbench": "MMBench circular accuracy, VLMEvalKit exact matching (option letter, then unique option text; no "
               "LLM judge): a question counts only if every rotation is right",
}


@dataclass
class Scored:
    rows: list[dict[str, Any]]  # predictions_scored.jsonl, in question order
    units: dict[str, float]  # scored unit id -> score (questions; mmbench: circular groups)
    results: dict[str, Any]


def _breakdown(units: dict[str, float], key_of: dict[str, str | None]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[float]] = defaultdict(list)
    for unit, score in units.items():
        groups[key_of.get(unit) or "other"].append(score)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return {k: {"n": len(v), "accuracy": sum(v) / len(v)} for k, v in ordered}


def answer_stats(answers: list[str]) -> dict[str, Any]:
    """Diversity (unique / total) and the most frequent answers, on normalised answers."""
    counts = Counter(answers)
    total = len(answers)
    return {"total": total, "unique": len(counts), "diversity": len(counts) / total if total else None,
            "top": [{"answer": a, "count": c, "share": c / total} for a, c in counts.most_common(TOP_ANSWERS)]}


def _score_open(data: TaskData, answers: dict[str, str]) -> tuple[list[dict], dict[str, float], dict[str, Any]]:
    rows, units, types = [], {}, {}
    for q in data.questions:
        if q.qid not in answers:
            continue
        norm = normalize_answer(answers[q.qid])
        score = vqa_accuracy_normalized(norm, [normalize_answer(a) for a in q.answers])
        units[q.qid] = score
        types[q.qid] = q.question_type
        rows.append({"question_id": q.question_id, "question": q.question, "question_type": q.question_type,
                     "image": str(q.image_path) if q.image_path else None, "answer": answers[q.qid],
                     "normalized_answer": norm, "gt_answers": list(q.answers), "score": score})
    extra = {"by_question_type": _breakdown(units, types),
             "answer_stats": answer_stats([r["normalized_answer"] for r in rows])}
    return rows, units, extra


def _score_mmbench(data: TaskData, answers: dict[str, str], failed_groups: set[int]):
    by_group: dict[int, list] = defaultdict(list)
    rows = []
    for q in data.questions:
        group = q.meta["group"]
        if group in failed_groups or q.qid not in answers:
            continue
        extracted = extract_choice(answers[q.qid], q.meta["options"])
        by_group[group].append((extracted, q.answers[0]))
        rows.append({"question_id": q.question_id, "group": group, "question": q.question,
                     "category": q.meta["category"], "l2_category": q.meta["l2_category"],
                     "options": q.meta["options"], "answer": answers[q.qid], "extracted": extracted,
                     "gt": q.answers[0], "correct": extracted == q.answers[0]})
    units = {str(g): float(circular_hit(pairs)) for g, pairs in by_group.items()}
    for row in rows:
        row["score"] = units[str(row["group"])]
    main = {str(q.meta["group"]): q for q in data.questions if q.question_id == q.meta["group"]}
    sizes = Counter(len(pairs) for pairs in by_group.values())
    extra = {
        "by_category": _breakdown(units, {g: main[g].meta["category"] for g in units}),
        "by_l2_category": _breakdown(units, {g: main[g].meta["l2_category"] for g in units}),
        "mmbench": {"circular": any(size > 1 for size in sizes), "rows_scored": len(rows), "groups_scored": len(units),
                    "rotations_per_group": {str(k): v for k, v in sorted(sizes.items())},
                    "unextractable": sum(r["extracted"] is None for r in rows),
                    "row_accuracy": sum(r["correct"] for r in rows) / len(rows) if rows else None},
        "answer_stats": answer_stats([r["extracted"] or "(unextractable)" for r in rows]),
    }
    return rows, units, extra


def score(data: TaskData, answers: dict[str, str], *, failures: dict[str, str], missing: list[str] | None = None,
          name: str, signature: dict[str, Any], bootstrap: int = DEFAULT_RESAMPLES) -> Scored:
    """Score `answers` (qid -> text); `failures` (qid -> reason) and `missing` (qids) are listed, not scored."""
    missing = missing or []
    by_id = data.by_id()
    not_scored = {**{qid: failures[qid] for qid in failures}, **{qid: "no prediction in the file" for qid in missing}}
    if data.task == "mmbench":
        failed_groups = {by_id[qid].meta["group"] for qid in not_scored}
        rows, units, extra = _score_mmbench(data, answers, failed_groups)
        unit, n_units = "circular group", len({q.meta["group"] for q in data.questions})
    else:
        rows, units, extra = _score_open(data, answers)
        unit, n_units = "question", len(data.questions)
    values = list(units.values())
    accuracy = sum(values) / len(values) if values else None
    results: dict[str, Any] = {
        "format": FORMAT, "name": name, "task": data.task, "scoring": SCORING[data.task],
        "accuracy": accuracy, "ci95": bootstrap_ci(values, resamples=bootstrap),
        "n": len(values), "unit": unit, "n_total": n_units, "complete": not not_scored,
        "n_failed": len(failures), "n_missing": len(missing),
        "failed": [{"question_id": by_id[qid].question_id, "reason": reason} for qid, reason in failures.items()],
        "missing": [by_id[qid].question_id for qid in missing],
        **extra,
        "signature": signature,
        "files": {"scored": SCORED},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if accuracy is None:
        results["accuracy_reason"] = "no question could be scored (every one failed or is missing)"
    if data.task == "mmbench" and not_scored:
        results["mmbench"]["groups_not_scored"] = n_units - len(units)
    return Scored(rows, units, results)


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_results(output_dir: Path, scored: Scored, answer_lines: list[dict[str, Any]] | None = None) -> None:
    """results.json, predictions_scored.jsonl (and answers.jsonl) as ONE commit: never a mix of two runs."""
    files: dict[Path, str] = {output_dir / SCORED: _jsonl(scored.rows)}
    if answer_lines is not None:
        scored.results["files"]["answers"] = ANSWERS
        files[output_dir / ANSWERS] = _jsonl(answer_lines)
    files[output_dir / RESULTS] = json.dumps(scored.results, ensure_ascii=False, indent=2) + "\n"
    write_all_or_nothing(files)
    r = scored.results
    acc = "n/a" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f}%"
    ci = r["ci95"]
    ci_text = "" if ci["low"] is None else f" (95% CI {100 * ci['low']:.2f}-{100 * ci['high']:.2f})"
    log.info("%s %s: accuracy %s%s over %d %ss; %d failed, %d missing -> %s", r["name"], r["task"], acc, ci_text,
             r["n"], r["unit"], r["n_failed"], r["n_missing"], output_dir / RESULTS)
