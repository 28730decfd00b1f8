"""Length-controlled Bradley–Terry: does a model win because it describes better, or because it says more?

Each vote gets a covariate x = (len_left − len_right) / (len_left + len_right) (caption length in words, so x lies in
[−1, 1] and is 0 for equal lengths, as in Chatbot Arena's style control), and the model becomes
P(left wins) = σ(θ_left − θ_right + β·x). β > 0 means the longer caption is preferred at equal quality; the θ are the
ratings with that preference taken out. Fitted per vote (the covariate differs per vote, so the tallies of
`bradley_terry` do not suffice) by maximum likelihood with scipy's L-BFGS-B; B bootstrap resamples over items are one
stacked problem with per-vote weights (the number of times the vote's item was drawn).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from vlmkit.evaluation.bootstrap import resample_counts
from vlmkit.ratings.bradley_terry import RIDGE, VoteTable

WORD = re.compile(r"\w+")


def word_count(text: str) -> int:
    return len(WORD.findall(text))


def length_covariate(table: VoteTable, lengths: Mapping[tuple[str, str], int]) -> np.ndarray:
    """x per vote of the table; lengths[(model, item_id)] = words of that model's caption of the item."""
    left = np.array([lengths[(v.left, v.item_id)] for v in table.votes], dtype=np.float64)
    right = np.array([lengths[(v.right, v.item_id)] for v in table.votes], dtype=np.float64)
    total = left + right
    return np.where(total > 0, (left - right) / np.where(total > 0, total, 1.0), 0.0)


def _objective(flat: np.ndarray, table: VoteTable, x: np.ndarray, weights: np.ndarray,
               ridge: float) -> tuple[float, np.ndarray]:
    b, k = weights.shape[0], table.k
    params = flat.reshape(b, k + 1)
    theta, beta = params[:, :k], params[:, k]
    z = theta[:, table.left] - theta[:, table.right] + beta[:, None] * x[None, :]
    y = table.score[None, :]
    loglik = (weights * (y * log_expit(z) + (1.0 - y) * log_expit(-z))).sum()
    r = weights * (y - expit(z))  # d loglik / dz
    grad = np.zeros_like(params)
    for row in range(b):  # bincount is per row; B is small here (a few hundred)
        grad[row, :k] = (np.bincount(table.left, r[row], minlength=k) - np.bincount(table.right, r[row], minlength=k))
    grad[:, k] = r @ x
    value = -float(loglik) + ridge * float((theta * theta).sum())
    grad = -grad
    grad[:, :k] += 2.0 * ridge * theta
    return value, grad.ravel()


def fit_length_controlled(table: VoteTable, x: np.ndarray, weights: np.ndarray | None = None,
                          ridge: float = RIDGE) -> tuple[np.ndarray, np.ndarray]:
    """(θ (B, K) summing to ~0, β (B,)) for per-vote weights (B, V); weights None = one fit with weight 1."""
    w = np.ones((1, len(x))) if weights is None else np.asarray(weights, dtype=np.float64)
    b, k = w.shape[0], table.k
    result = minimize(_objective, np.zeros(b * (k + 1)), args=(table, x, w, ridge), jac=True, method="L-BFGS-B",
                      options={"maxiter": 20000, "maxcor": 30, "ftol": 1e-15, "gtol": 1e-9})
    params = result.x.reshape(b, k + 1)
    theta = params[:, :k] - params[:, :k].mean(axis=1, keepdims=True)
    return theta, params[:, k]


def bootstrap_length_controlled(table: VoteTable, x: np.ndarray, resamples: int,
                                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """θ (B, K) and β (B,) on resamples over items; the same draw counts as the plain fit's bootstrap (same seed)."""
    if not resamples or not len(table.items):
        return np.empty((0, table.k)), np.empty(0)
    counts = np.concatenate(list(resample_counts(len(table.items), resamples, seed)))
    return fit_length_controlled(table, x, counts[:, table.item])
