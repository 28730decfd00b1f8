"""Ranking metrics for retrieval, computed in chunks: Recall@K, MRR, NDCG@10, chance levels, bootstrap CIs.

Why not sentence-transformers' `InformationRetrievalEvaluator` (the tests check our values against it): it encodes
the queries itself, reports MRR only up to a cut-off (@10), gives no per-query values (needed for bootstrap
confidence intervals and paired zero-shot vs fine-tuned differences) and no chance levels, and cannot reuse one
embedding pass for both directions. What is written here is only the counting.

Ranks come from the toolkit's one ranking kernel, `vlmkit.ranking.rank` (shared with compare.py's R@k): scores
in float64 from the (float32 or float16) embeddings, rounded to float32; keys whose rounded score equals a
relevant key's tie with it (identical embeddings, e.g. a duplicated image, always do; distinct scores only when
equal to float32 precision), and ties are shared in expectation (a random order of the tie group). Queries whose
relevant item ties a non-relevant one are counted in `tied_queries`. Memory: the score matrix is never built
whole (keys in blocks, queries in chunks of at most `max_chunk_elements` scores, 32 MB by default), and the
result does not depend on the chunking; float16 embeddings are converted block by block.

Metrics per query, from the 1-based ranks of its relevant items (first = the best of them), in expectation over
the order of tied keys: R@k = [first <= k]; MRR = 1 / first (no cut-off); NDCG@10 = sum_{relevant, rank <= 10}
1/log2(rank+1) divided by the ideal sum_{i=1}^{min(n_relevant, 10)} 1/log2(i+1). Chance levels are the exact
expectations under a uniformly random ranking.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vlmkit.ranking import DEFAULT_MAX_CHUNK_ELEMENTS, NDCG_K, RECALL_KS, Ranking, rank

KS = RECALL_KS
METRICS = tuple(f"R@{k}" for k in KS) + ("MRR", f"NDCG@{NDCG_K}")


@dataclass
class Ranked:
    """Per-query outcome of one direction: the kernel's ranking, and what the reports read from it."""

    ranking: Ranking

    @property
    def first_rank(self) -> np.ndarray:
        """1-based rank of the best relevant item (ties broken in its favour)."""
        return self.ranking.best_rank

    @property
    def ndcg(self) -> np.ndarray:
        return self.ranking.ndcg

    @property
    def n_relevant(self) -> np.ndarray:
        return self.ranking.n_relevant

    @property
    def pool_size(self) -> int:
        return self.ranking.pool_size

    @property
    def tied_queries(self) -> int:
        return int(self.ranking.nonrelevant_tie.sum())

    def per_query(self) -> dict[str, np.ndarray]:
        """Hits, reciprocal ranks and NDCG per query (expected over ties): what the means and the bootstrap use."""
        out = {f"R@{k}": self.ranking.hits(k) for k in KS}
        out["MRR"] = self.ranking.mrr
        out[f"NDCG@{NDCG_K}"] = self.ranking.ndcg
        return out

    def summary(self) -> dict[str, float]:
        return {name: float(values.mean()) for name, values in self.per_query().items()}

    def chance(self) -> dict[str, float]:
        return chance_levels(self.n_relevant, self.pool_size)


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2))


def rank_relevant(queries: np.ndarray, keys: np.ndarray, relevant: Sequence[np.ndarray] | np.ndarray,
                  max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS, progress: bool = False,
                  desc: str = "ranking") -> Ranked:
    """Rank every key for every query (cosine = dot product of L2-normalised rows) and score the relevant ones.

    `relevant`: per query, the indices of its relevant keys (an int array of shape (n_queries,) for one each).
    """
    return Ranked(rank(queries, keys, relevant, rule="expected", max_chunk_elements=max_chunk_elements,
                       progress=progress, desc=desc))


def chance_levels(n_relevant: np.ndarray, pool: int) -> dict[str, float]:
    """Expected metrics under a uniformly random ranking of the pool (exact, averaged over the queries)."""
    out = {name: 0.0 for name in METRICS}
    if pool == 0 or len(n_relevant) == 0:
        return {name: float("nan") for name in METRICS}
    values, counts = np.unique(n_relevant, return_counts=True)
    discounts = _discounts(min(NDCG_K, pool))
    for m, count in zip(values.tolist(), counts.tolist(), strict=True):
        weight = count / len(n_relevant)
        # P(no relevant item in the top k) = C(pool - m, k) / C(pool, k)
        for k in KS:
            kk = min(k, pool)
            miss = math.comb(pool - m, kk) / math.comb(pool, kk) if pool - m >= kk else 0.0
            out[f"R@{k}"] += weight * (1.0 - miss)
        # P(first relevant at rank r) = C(pool - r, m - 1) / C(pool, m)
        total = math.comb(pool, m)
        out["MRR"] += weight * sum(math.comb(pool - r, m - 1) / r for r in range(1, pool - m + 2)) / total
        ideal = discounts[:min(m, NDCG_K)].sum()
        out[f"NDCG@{NDCG_K}"] += weight * (m / pool) * discounts.sum() / ideal
    return out


def bootstrap_ci(per_query: dict[str, np.ndarray], n_resamples: int = 1000, seed: int = 0,
                 other: dict[str, np.ndarray] | None = None, level: float = 0.95) -> dict[str, list[float]]:
    """Percentile bootstrap CI of each metric's mean over queries; with `other` (the same queries under another
    model), the CI of the paired difference mean(per_query) - mean(other)."""
    from vlmkit.evaluation.bootstrap import mean_intervals

    names = list(per_query)
    n = len(next(iter(per_query.values())))
    if n == 0 or n_resamples <= 0:
        return {}
    values = np.stack([per_query[k] - (other[k] if other is not None else 0.0) for k in names], axis=1)  # (n, k)
    lo, hi = mean_intervals(values, n_resamples, seed, level)
    return {name: [float(lo[i]), float(hi[i])] for i, name in enumerate(names)}
