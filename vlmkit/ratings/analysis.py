"""From votes to ``ratings.json``: BT ratings on the Elo scale with bootstrap CIs, win rates, judge consistency and
the length-controlled variant. `rate.py` is the entry point; this module is the computation, with typed options."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vlmkit.evaluation.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, LEVEL
from vlmkit.io import InputError
from vlmkit.ratings.bradley_terry import (
    ELO_SCALE,
    RIDGE,
    VoteTable,
    bootstrap_theta,
    fit_bradley_terry,
    mle_problems,
    to_elo,
    win_rates,
)
from vlmkit.ratings.consistency import length_bias, swap_consistency
from vlmkit.ratings.length import bootstrap_length_controlled, fit_length_controlled, length_covariate
from vlmkit.votes import Vote

log = logging.getLogger(__name__)

DEFAULT_ANCHOR = 1000.0
DEFAULT_LC_RESAMPLES = 200


@dataclass(frozen=True)
class RateOptions:
    baseline: str | None = None  # default: the first model in name order
    anchor: float = DEFAULT_ANCHOR  # the baseline's rating
    resamples: int = DEFAULT_RESAMPLES
    lc_resamples: int = DEFAULT_LC_RESAMPLES  # the length-controlled fit is per vote: fewer resamples by default
    seed: int = DEFAULT_SEED
    sources: tuple[str, ...] = ()  # () = every source in the files
    level: float = LEVEL


@dataclass
class Ratings:
    """The fit, kept in memory for the agreement analysis (same items, same resamples)."""

    table: VoteTable
    theta: np.ndarray  # (K,)
    theta_boot: np.ndarray  # (B, K)
    data: dict[str, Any]  # ratings.json


def select_votes(votes: Sequence[Vote], sources: Sequence[str]) -> list[Vote]:
    if not sources:
        return list(votes)
    present = sorted({v.source for v in votes})
    unknown = [s for s in sources if s not in present]
    if unknown:
        raise InputError(f"--source: no vote has source {', '.join(unknown)} (the files have {', '.join(present)})")
    return [v for v in votes if v.source in sources]


def _interval(values: np.ndarray, level: float) -> list[float] | None:
    if not len(values):
        return None
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return [float(low), float(high)]


def _length_controlled(table: VoteTable, lengths: Mapping[tuple[str, str], int], baseline: int,
                       options: RateOptions) -> dict[str, Any]:
    x = length_covariate(table, lengths)
    theta, beta = fit_length_controlled(table, x)
    theta_b, beta_b = bootstrap_length_controlled(table, x, options.lc_resamples, options.seed)
    elo = to_elo(theta[0], baseline, options.anchor)
    elo_b = to_elo(theta_b, baseline, options.anchor) if len(theta_b) else theta_b
    return {
        "covariate": "(words_left - words_right) / (words_left + words_right); words = \\w+ tokens",
        "beta": float(beta[0]), "beta_ci": _interval(beta_b, options.level),
        "beta_meaning": "log-odds added for the caption that is wholly longer (x = 1); > 0: longer preferred",
        "models": {m: {"rating": float(elo[i]), "ci": _interval(elo_b[:, i], options.level) if len(elo_b) else None}
                   for i, m in enumerate(table.models)},
        "resamples": options.lc_resamples,
    }


def compute_ratings(all_votes: Sequence[Vote], options: RateOptions,
                    lengths: Mapping[tuple[str, str], int] | None = None) -> Ratings:
    """Everything of ratings.json. ``lengths[(model, item_id)]`` (caption words) enables the length analyses."""
    votes = select_votes(all_votes, options.sources)
    table = VoteTable.from_votes(votes)
    if not table.votes:
        raise InputError(f"no vote to rate: {len(votes)} vote(s), all both_bad" if votes else "no vote to rate")
    if table.k < 2:
        raise InputError("the votes name fewer than two models")
    baseline = options.baseline or table.models[0]
    if baseline not in table.models:
        raise InputError(f"--baseline: {baseline!r} is not a model of the votes ({', '.join(table.models)})")
    if lengths is not None:
        missing = [(v.left if (v.left, v.item_id) not in lengths else v.right, v.item_id) for v in table.votes
                   if (v.left, v.item_id) not in lengths or (v.right, v.item_id) not in lengths]
        if missing:
            model, item = missing[0]
            raise InputError(f"captions: no caption of model {model!r} for item {item!r} "
                             f"({len(missing)} vote(s) lack one)")
    b = table.models.index(baseline)
    start = time.perf_counter()
    wins = table.wins_matrix()
    theta = fit_bradley_terry(wins)
    theta_boot = bootstrap_theta(table.item_tallies(), table.k, options.resamples, options.seed)
    seconds = time.perf_counter() - start
    elo = to_elo(theta, b, options.anchor)
    elo_boot = to_elo(theta_boot, b, options.anchor) if len(theta_boot) else theta_boot
    record = table.record()
    models = {}
    for i, m in enumerate(table.models):
        models[m] = {"rating": float(elo[i]), "ci": _interval(elo_boot[:, i], options.level) if len(elo_boot) else None,
                     **record[m]}
    ranking = sorted(table.models, key=lambda m: (-models[m]["rating"], m))
    rates = win_rates(wins)
    warnings = mle_problems(wins, table.models)
    if len(table.items) < 2 and options.resamples:
        warnings.append("one item only: the bootstrap over items cannot show the uncertainty")
    data: dict[str, Any] = {
        "models": {m: models[m] for m in ranking},
        "n_votes": len(table.votes),
        "baseline": baseline,
        "swap_consistency": swap_consistency(all_votes),
        "ranking": ranking,
        "scale": {"kind": "elo", "formula": "rating = anchor + 400*log10(odds vs baseline) = anchor + "
                                            f"{ELO_SCALE:.4f}*(theta - theta_baseline)",
                  "anchor": options.anchor, "baseline": baseline,
                  "baseline_ci_note": "the baseline's CI is [anchor, anchor] by construction: every other CI is "
                                      "relative to it"},
        "bt_theta": {m: float(theta[i]) for i, m in enumerate(table.models)},
        "both_bad": {"excluded": table.both_bad, "by_model": table.both_bad_by_model},
        "ties": "half a win for each side",
        "win_rate": {m: {o: (None if np.isnan(rates[i, j]) else float(rates[i, j]))
                         for j, o in enumerate(table.models) if j != i} for i, m in enumerate(table.models)},
        "games": {m: {o: float(wins[i, j] + wins[j, i]) for j, o in enumerate(table.models) if j != i}
                  for i, m in enumerate(table.models)},
        "n_items": len(table.items),
        "sources": sorted({v.source for v in votes}),
        "bootstrap": {"resamples": options.resamples, "seed": options.seed, "level": options.level,
                      "unit": "items (every vote of a drawn item comes along)", "interval": "percentile"},
        "fit": {"method": "maximum likelihood, scipy L-BFGS-B", "ridge": RIDGE, "seconds": round(seconds, 4)},
        "warnings": warnings,
    }
    if lengths is not None:
        data["length_bias"] = length_bias(all_votes, lengths)
        data["length_controlled"] = _length_controlled(table, lengths, b, options)
    else:
        data["length_bias"] = None
        data["length_controlled"] = None
        data["length_controlled_reason"] = "needs the captions: pass --compare_dir or --captions"
    sources = data["sources"]
    if len(sources) > 1:  # humans and judges side by side, each fitted on its own votes
        data["by_source"] = {source: _source_ratings(votes, source, baseline, options) for source in sources}
    return Ratings(table, theta, theta_boot, data)


def _source_ratings(votes: Sequence[Vote], source: str, baseline: str, options: RateOptions) -> dict[str, Any]:
    own = [v for v in votes if v.source == source]
    models = sorted({m for v in own for m in (v.left, v.right)})
    if baseline not in models or not any(v.winner != "both_bad" for v in own):
        return {"models": {}, "n_votes": len(own), "reason": f"no decided vote of {source} involves {baseline}"}
    fit = compute_ratings(own, RateOptions(baseline=baseline, anchor=options.anchor, resamples=options.resamples,
                                           seed=options.seed, sources=(), level=options.level))
    return {"models": {m: {"rating": r["rating"], "ci": r["ci"]} for m, r in fit.data["models"].items()},
            "n_votes": fit.data["n_votes"]}
