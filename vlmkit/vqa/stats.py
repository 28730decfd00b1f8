"""Uncertainty of a benchmark accuracy and of the difference between two models on the same questions.

- `bootstrap_ci`: percentile bootstrap over questions (MMBench: over circular groups), seeded, so a rerun gives the
  same interval (the resampler of `vlmkit.evaluation.bootstrap`, shared with compare.py). With 5,000 TextVQA
  questions the 95 % interval is about +-1.3 points: differences smaller than that between two fine-tunes are noise.
- `paired_difference`: on the questions both models answered, the mean per-question score difference, its paired
  bootstrap interval, and a two-sided paired sign-flip permutation test (approximate randomisation, the usual test
  for "is system B better than A on the same test set"; it needs no normality and works for TextVQA's fractional
  scores and MMBench's 0/1 alike).
numpy is enough for both; scipy's `bootstrap` / `permutation_test` would hold every resample in memory at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_PERMUTATIONS = 10000
BLOCK = 256  # sign-flip permutations per vectorised block (bounds memory to BLOCK x n)


def _sign_flip_means(values: np.ndarray, permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `values` under random sign flips (the permutation test's null distribution), in bounded blocks."""
    n = len(values)
    out = []
    for start in range(0, permutations, BLOCK):
        size = min(BLOCK, permutations - start)
        signs = rng.integers(0, 2, size=(size, n), dtype=np.int8) * 2 - 1
        out.append((signs * values).mean(axis=1))
    return np.concatenate(out)


def bootstrap_ci(scores, resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """{"low", "high", "level", "method"}; low/high are null (with the reason) when there is nothing to resample."""
    values = np.asarray(scores, dtype=np.float64)
    method = f"percentile bootstrap over {len(values)} items, {resamples} resamples, seed {seed}"
    if len(values) == 0 or resamples < 1:
        return {"low": None, "high": None, "level": level, "method": method,
                "reason": "no scored items" if len(values) == 0 else "bootstrap disabled (--bootstrap 0)"}
    from vlmkit.evaluation.bootstrap import mean_intervals

    low, high = mean_intervals(values, resamples, seed, level)
    return {"low": float(low[0]), "high": float(high[0]), "level": level, "method": method}


def paired_difference(a, b, *, resamples: int = DEFAULT_RESAMPLES, permutations: int = DEFAULT_PERMUTATIONS,
                      seed: int = 0) -> dict[str, Any]:
    """B minus A on paired per-question scores: mean difference, bootstrap CI, sign-flip permutation p-value."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError("paired scores must have the same length")
    diff = b - a
    n = len(diff)
    out: dict[str, Any] = {"n": n, "mean_a": float(a.mean()) if n else None, "mean_b": float(b.mean()) if n else None,
                           "difference": float(diff.mean()) if n else None,
                           "b_better": int((diff > 0).sum()), "a_better": int((diff < 0).sum()),
                           "ties": int((diff == 0).sum())}
    if n == 0:
        return {**out, "ci": bootstrap_ci(diff, resamples, seed), "p_value": None,
                "test": "paired sign-flip permutation test", "reason": "no shared questions"}
    rng = np.random.default_rng(seed)
    observed = abs(diff.mean())
    if not diff.any():
        p_value = 1.0
    else:
        flipped = np.abs(_sign_flip_means(diff, permutations, rng))
        # + 1 in numerator and denominator: the observed assignment is one of the permutations (never p = 0).
        p_value = float((np.count_nonzero(flipped >= observed - 1e-12) + 1) / (permutations + 1))
    return {**out, "ci": bootstrap_ci(diff, resamples, seed), "p_value": p_value,
            "test": f"two-sided paired sign-flip permutation test, {permutations} permutations, seed {seed}"}
