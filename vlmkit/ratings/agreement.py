"""Which automatic metric agrees with your experts: Kendall τ of model rankings and pairwise accuracy per vote.

For each metric of a compare run that has per-item values:

- **Kendall τ** (τ-b, ties counted as scipy.stats.kendalltau counts them) between the models' mean metric over the
  voted items and their human Bradley–Terry θ. With K models it moves in steps of 2/(K(K−1)/2): 8 models, 28 pairs.
- **Pairwise accuracy**: over every decided human vote (a winner; ties and both_bad are left out), the share in which
  the metric scores the caption the voter preferred higher; a metric tie counts half.

Both get a percentile bootstrap CI over items: the very resamples of the BT bootstrap (same draw counts, same seed),
so the τ of a resample compares the metric's and the humans' rankings on the same drawn items. Lower-is-better
metrics (the Fréchet distance) are negated first. A metric without per-item values (the Fréchet distance, a corpus
value) gets τ from its corpus values and no CI, and no pairwise accuracy (reason given).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from vlmkit.evaluation import metrics as registry
from vlmkit.evaluation.bootstrap import resample_counts
from vlmkit.io import InputError
from vlmkit.ratings.analysis import Ratings
from vlmkit.ratings.bradley_terry import LEFT_SCORE, VoteTable, fit_bradley_terry
from vlmkit.ratings.compare_run import CompareRun
from vlmkit.votes import Vote


def kendall_tau_b(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """τ-b of the rows of a (R, K) against b (R, K) (or (K,)); NaN where one side is all ties."""
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    i, j = np.triu_indices(a.shape[1], k=1)
    sa, sb = np.sign(a[:, i] - a[:, j]), np.sign(b[:, i] - b[:, j])
    na, nb = (sa != 0).sum(axis=1), (sb != 0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sa * sb).sum(axis=1) / np.sqrt(na * nb)


def _interval(values: np.ndarray, level: float) -> list[float] | None:
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    tail = (1.0 - level) / 2.0
    return [float(v) for v in np.quantile(values, [tail, 1.0 - tail])]


def _clean(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def metric_agreement(ratings: Ratings, run: CompareRun, level: float,
                     judge_votes: Sequence[Vote] = ()) -> dict[str, Any]:
    """{"rows": [...] best first, "models", "votes", "items", "method"}; ``judge_votes`` (pairwise judge verdicts,
    e.g. compare.py --judge_pairs) add one row per judge source."""
    table = ratings.table
    not_human = [s for s in ratings.data["sources"] if s != "human"]
    if not_human:
        raise InputError(f"--compare_dir: the agreement is measured against human votes; these ratings include "
                         f"{', '.join(not_human)} (pass --source human)")
    missing_models = [m for m in table.models if m not in run.models]
    if missing_models:
        raise InputError(f"{run.folder}: no compare result for model(s) {', '.join(missing_models)} of the votes "
                         f"(it has {', '.join(run.models)})")
    for m in table.models:
        absent = [it for it in table.items if it not in run.models[m].per_item]
        if absent:
            raise InputError(f"{run.folder}: model {m!r} has no per-sample row for voted item {absent[0]!r} "
                             f"({len(absent)} item(s) missing)")
    optional = {m.key: m.label for g in registry.OPTIONAL_GROUPS for m in g.metrics}  # judge metrics
    labels, lower = {**optional, **registry.labels()}, registry.lower_is_better()
    per_item = run.per_item_metrics()
    corpus_only = [k for k in dict.fromkeys(k for r in run.models.values() for k in r.metrics)
                   if k not in per_item and all(k in run.models[m].metrics for m in table.models)
                   and k in labels]
    decided = np.array([v.winner in ("left", "right") for v in table.votes])
    n_items = len(table.items)
    resamples = len(ratings.theta_boot)
    counts = (np.concatenate(list(resample_counts(n_items, resamples, ratings.data["bootstrap"]["seed"])))
              if resamples else np.empty((0, n_items)))
    rows: list[dict[str, Any]] = []
    for metric in per_item:
        sign = -1.0 if metric in lower else 1.0
        raw = [[run.models[m].per_item[it][metric] for m in table.models] for it in table.items]
        values = sign * np.array(raw, dtype=np.float64)  # None (an unreadable judge answer) -> NaN, left out
        ok = np.isfinite(values)
        filled = np.where(ok, values, 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            tau = float(kendall_tau_b(filled.sum(axis=0) / ok.sum(axis=0), ratings.theta)[0])
            tau_ci = None
            if resamples:
                means = (counts @ filled) / (counts @ ok.astype(np.float64))
                tau_ci = _interval(kendall_tau_b(means, ratings.theta_boot), level)
        left = values[table.item, table.left]
        right = values[table.item, table.right]
        usable = decided & np.isfinite(left) & np.isfinite(right)
        prefers_left = np.where(left > right, 1.0, np.where(left < right, 0.0, 0.5))
        correct = np.where(table.score == 1.0, prefers_left, 1.0 - prefers_left)[usable]
        item_of = table.item[usable]
        hits = np.bincount(item_of, correct, minlength=n_items)
        n = np.bincount(item_of, minlength=n_items).astype(np.float64)
        accuracy = float(hits.sum() / n.sum()) if n.sum() else None
        accuracy_ci = None
        if resamples and n.sum():
            with np.errstate(invalid="ignore", divide="ignore"):
                accuracy_ci = _interval((counts @ hits) / (counts @ n), level)
        rows.append({"metric": metric, "label": labels.get(metric, metric), "kendall_tau": _clean(tau),
                     "kendall_tau_ci": tau_ci, "pairwise_accuracy": accuracy, "pairwise_accuracy_ci": accuracy_ci,
                     "decided_votes": int(n.sum()), "metric_ties": int((correct == 0.5).sum()),
                     "votes_without_value": int((decided & ~usable).sum()),
                     **({"reason": "the metric gives every model the same mean: tau is undefined"}
                        if not np.isfinite(tau) else {}),
                     "lower_is_better": metric in lower})
    for metric in corpus_only:
        sign = -1.0 if metric in lower else 1.0
        corpus = sign * np.array([run.models[m].metrics[metric] for m in table.models])
        rows.append({"metric": metric, "label": labels.get(metric, metric),
                     "kendall_tau": _clean(float(kendall_tau_b(corpus, ratings.theta)[0])), "kendall_tau_ci": None,
                     "pairwise_accuracy": None, "pairwise_accuracy_ci": None, "decided_votes": int(decided.sum()),
                     "metric_ties": None, "lower_is_better": metric in lower,
                     "reason": "a corpus value without per-item values: tau from the corpus values over all "
                               "items, no CI, no pairwise accuracy"})
    rows += judge_rows(ratings, judge_votes, counts, level)
    rows.sort(key=lambda r: (r["pairwise_accuracy"] is None, -(r["pairwise_accuracy"] or 0.0),
                             -(r["kendall_tau"] if r["kendall_tau"] is not None else -2.0), r["metric"]))
    return {
        "rows": rows, "models": list(table.models), "items": n_items, "decided_votes": int(decided.sum()),
        "compare_dir": str(run.folder),
        "method": "tau-b between the models' mean metric over the voted items and the human BT theta; pairwise "
                  "accuracy over decided votes (metric ties count 0.5); percentile bootstrap CIs over items with the "
                  f"BT bootstrap's resamples (B={resamples}); sorted by pairwise accuracy, then tau",
    }



def judge_rows(ratings: Ratings, judge_votes: Sequence[Vote], counts: np.ndarray, level: float) -> list[dict]:
    """One agreement row per pairwise judge source: tau of its own BT ranking (on the human items and models)
    against the humans', and its pairwise accuracy on the human votes: the judge's mean verdict on that item and
    pair (both shown orders averaged: a flip counts half; ties half; both_bad left out)."""
    table = ratings.table
    index = {item: i for i, item in enumerate(table.items)}
    models = set(table.models)
    by_source: dict[str, list[Vote]] = defaultdict(list)
    for vote in judge_votes:
        if vote.source != "human" and vote.item_id in index and {vote.left, vote.right} <= models:
            by_source[vote.source].append(vote)
    decided = [v for v in table.votes if v.winner in ("left", "right")]
    rows = []
    for source, votes in sorted(by_source.items()):
        own = VoteTable.from_votes(votes, models=table.models)
        tallies = np.zeros((len(table.items), table.k * table.k))
        for row, item in zip(own.item_tallies(), own.items, strict=True):
            tallies[index[item]] = row
        k = table.k
        theta = fit_bradley_terry(tallies.sum(axis=0).reshape(k, k))
        tau_ci = None
        if len(counts):
            boot = fit_bradley_terry((counts @ tallies).reshape(len(counts), k, k))
            tau_ci = _interval(kendall_tau_b(boot, ratings.theta_boot), level)
        verdicts: dict[tuple[str, str, str], list[float]] = defaultdict(list)  # (item, a, b): scores of a
        for v in own.votes:
            verdicts[(v.item_id, v.left, v.right)].append(LEFT_SCORE[v.winner])
            verdicts[(v.item_id, v.right, v.left)].append(1.0 - LEFT_SCORE[v.winner])
        hits = np.zeros(len(table.items))
        n = np.zeros(len(table.items))
        for v in decided:
            scores = verdicts.get((v.item_id, v.left, v.right))
            if not scores:
                continue
            prefers_left = float(np.mean(scores))
            hits[index[v.item_id]] += prefers_left if v.winner == "left" else 1.0 - prefers_left
            n[index[v.item_id]] += 1
        accuracy_ci = None
        if len(counts) and n.sum():
            with np.errstate(invalid="ignore", divide="ignore"):
                accuracy_ci = _interval((counts @ hits) / (counts @ n), level)
        rows.append({"metric": source, "label": f"{source} (pairwise votes)",
                     "kendall_tau": _clean(float(kendall_tau_b(theta, ratings.theta)[0])), "kendall_tau_ci": tau_ci,
                     "pairwise_accuracy": float(hits.sum() / n.sum()) if n.sum() else None,
                     "pairwise_accuracy_ci": accuracy_ci, "decided_votes": int(n.sum()),
                     "votes_without_value": len(decided) - int(n.sum()), "judge_votes": len(own.votes),
                     "lower_is_better": False})
    return rows
