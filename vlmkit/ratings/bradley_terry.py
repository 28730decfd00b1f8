"""Bradley–Terry ratings from pairwise votes, by maximum likelihood, with a bootstrap over items.

Model: P(i beats j) = σ(θ_i − θ_j). A tie counts as half a win for each side (the likelihood gets 0.5 of a win and 0.5
of a loss, as Chatbot Arena does); a ``both_bad`` verdict says nothing about which is better and is excluded (and
counted). The fit maximises the log-likelihood of the win totals W[i, j] (how often i beat j) with scipy's L-BFGS-B
and the analytic gradient, plus a vanishing ridge λ·Σθ² (λ = 1e-6): it fixes the free additive constant (θ sums to 0)
and keeps a model that never lost (or never won) in a bootstrap resample at a large finite θ instead of diverging;
on any data where the maximum-likelihood estimate exists its effect is below 1e-5 in θ.

Bootstrap over items (the unit that was sampled: objects, each judged in several pairs): every item's votes are
tallied into one row of K·K win totals, B resamples are one matrix of draw counts (vlmkit.evaluation.bootstrap's
seeded resampler), so the B resampled tallies are one matrix product, and the B fits are one stacked L-BFGS-B
problem (the objective is a sum of B independent problems): no Python loop per resample.

Written by hand on scipy because no maintained library fits BT with half-win ties on tallies, vectorised over
resamples (choix and sklearn's LogisticRegression fit one problem at a time, without ties).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from vlmkit.evaluation.bootstrap import resample_counts
from vlmkit.votes import Vote

RIDGE = 1e-6
ELO_SCALE = 400.0 / math.log(10.0)  # rating points per nat of log-odds: 400·log10(odds)
LEFT_SCORE = {"left": 1.0, "right": 0.0, "tie": 0.5}


@dataclass(frozen=True)
class VoteTable:
    """The decided-or-tied votes as index arrays (both_bad votes only counted)."""

    models: tuple[str, ...]
    items: tuple[str, ...]
    item: np.ndarray  # (V,) index into items
    left: np.ndarray  # (V,) index into models
    right: np.ndarray
    score: np.ndarray  # (V,) 1 left won, 0 right won, 0.5 tie
    votes: tuple[Vote, ...]  # the votes used, in order
    both_bad: int  # excluded votes
    both_bad_by_model: dict[str, int]

    @classmethod
    def from_votes(cls, votes: Sequence[Vote], models: Sequence[str] | None = None) -> VoteTable:
        used = [v for v in votes if v.winner != "both_bad"]
        names = tuple(models) if models is not None else tuple(sorted({m for v in votes for m in (v.left, v.right)}))
        index = {m: i for i, m in enumerate(names)}
        items = tuple(dict.fromkeys(v.item_id for v in used))
        item_index = {it: i for i, it in enumerate(items)}
        both_bad = [v for v in votes if v.winner == "both_bad"]
        return cls(
            models=names, items=items,
            item=np.array([item_index[v.item_id] for v in used], dtype=np.int64),
            left=np.array([index[v.left] for v in used], dtype=np.int64),
            right=np.array([index[v.right] for v in used], dtype=np.int64),
            score=np.array([LEFT_SCORE[v.winner] for v in used], dtype=np.float64),
            votes=tuple(used), both_bad=len(both_bad),
            both_bad_by_model={m: sum(m in (v.left, v.right) for v in both_bad) for m in names})

    @property
    def k(self) -> int:
        return len(self.models)

    def item_tallies(self) -> np.ndarray:
        """(n_items, K·K): row = one item's win totals, column i·K+j = how often i beat j (ties 0.5 each)."""
        k = self.k
        out = np.zeros((len(self.items), k * k))
        np.add.at(out, (self.item, self.left * k + self.right), self.score)
        np.add.at(out, (self.item, self.right * k + self.left), 1.0 - self.score)
        return out

    def wins_matrix(self) -> np.ndarray:
        return self.item_tallies().sum(axis=0).reshape(self.k, self.k)

    def record(self) -> dict[str, dict[str, int]]:
        """Wins, losses and ties of each model (both_bad excluded)."""
        out = {m: {"wins": 0, "losses": 0, "ties": 0} for m in self.models}
        for v in self.votes:
            if v.winner == "tie":
                out[v.left]["ties"] += 1
                out[v.right]["ties"] += 1
            else:
                winner, loser = (v.left, v.right) if v.winner == "left" else (v.right, v.left)
                out[winner]["wins"] += 1
                out[loser]["losses"] += 1
        return out


def _objective(flat: np.ndarray, wins: np.ndarray, ridge: float) -> tuple[float, np.ndarray]:
    b, k, _ = wins.shape
    theta = flat.reshape(b, k)
    diff = theta[:, :, None] - theta[:, None, :]  # θ_i − θ_j
    loglik = float((wins * log_expit(diff)).sum())
    q = wins * expit(-diff)  # W_ij · (1 − σ(θ_i − θ_j))
    grad = q.sum(axis=2) - q.sum(axis=1)
    value = -loglik + ridge * float((theta * theta).sum())
    return value, (-grad + 2.0 * ridge * theta).ravel()


def fit_bradley_terry(wins: np.ndarray, ridge: float = RIDGE) -> np.ndarray:
    """θ (natural log-strengths, summing to ~0) for one (K, K) win matrix or a stack (B, K, K); returns (K,) or (B, K).

    wins[i, j] = how often i beat j (ties as 0.5 each way).
    """
    stacked = np.asarray(wins, dtype=np.float64)
    single = stacked.ndim == 2
    if single:
        stacked = stacked[None]
    b, k, _ = stacked.shape
    # Scale-free stopping rule: the gradient of each sub-problem is at most ~its vote count.
    result = minimize(_objective, np.zeros(b * k), args=(stacked, ridge), jac=True, method="L-BFGS-B",
                      options={"maxiter": 20000, "maxcor": 30, "ftol": 1e-15, "gtol": 1e-9})
    theta = result.x.reshape(b, k)
    theta -= theta.mean(axis=1, keepdims=True)
    return theta[0] if single else theta


def mle_problems(wins: np.ndarray, models: Sequence[str]) -> list[str]:
    """Why the maximum-likelihood estimate does not exist (a model that never lost or never won), or []."""
    played = (wins + wins.T) > 0
    out = []
    for i, name in enumerate(models):
        if not played[i].any():
            continue
        if wins[i].sum() == 0:
            out.append(f"{name} never won (its rating is only bounded by the ridge)")
        elif wins[:, i].sum() == 0:
            out.append(f"{name} never lost (its rating is only bounded by the ridge)")
    return out


def to_elo(theta: np.ndarray, baseline: int, anchor: float) -> np.ndarray:
    """400·log10 odds relative to the baseline model, which gets ``anchor``."""
    theta = np.asarray(theta)
    return anchor + ELO_SCALE * (theta - theta[..., baseline:baseline + 1])


def bootstrap_theta(tallies: np.ndarray, k: int, resamples: int, seed: int, ridge: float = RIDGE) -> np.ndarray:
    """(resamples, K) θ of the BT fits on resamples of the items (rows of ``tallies``)."""
    n = len(tallies)
    if not resamples or n == 0:
        return np.empty((0, k))
    wins = np.concatenate([w @ tallies for w in resample_counts(n, resamples, seed)])
    return fit_bradley_terry(wins.reshape(resamples, k, k), ridge)


def win_rates(wins: np.ndarray) -> np.ndarray:
    """(K, K) share of i's games against j that i won (ties half); NaN where they never met."""
    games = wins + wins.T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(games > 0, wins / np.where(games > 0, games, 1.0), np.nan)
