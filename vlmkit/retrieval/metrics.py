"""Ranking metrics for retrieval, computed in chunks: Recall@K, MRR, NDCG@10, chance levels, bootstrap CIs.

Why not sentence-transformers' `InformationRetrievalEvaluator` (the tests check our values against it): it encodes
the queries itself, reports MRR only up to a cut-off (@10), gives no per-query values (needed for bootstrap
confidence intervals and paired zero-shot vs fine-tuned differences) and no chance levels, and cannot reuse one
embedding pass for both directions. What is written here is only the counting.

Ranks. For a query with scores s over the pool, the rank of a relevant item r is its position in
`np.argsort(-s, kind="stable")` (1-based): 1 + #{j: s_j > s_r} + #{j < r: s_j == s_r}, i.e. exact ties are broken
by pool order, deterministically and independently of the chunking. Queries whose relevant item ties a
non-relevant one (within 1e-6; duplicate images or captions) are counted in `tied_queries`.

Memory: the score matrix is never built whole; queries are processed in chunks of rows so that a chunk holds at
most `max_chunk_elements` float32 scores (32 MB by default); the embeddings themselves may be float16 (half the
memory of 100k x 512 float32 = 200 MB) and are converted chunk by chunk.

Metrics per query, from the 1-based ranks of its relevant items (first = the best of them):
R@k = [first <= k]; MRR = 1 / first (no cut-off); NDCG@10 = sum_{relevant, rank <= 10} 1/log2(rank+1) divided by
the ideal sum_{i=1}^{min(n_relevant, 10)} 1/log2(i+1). Chance levels are the exact expectations under a uniformly
random ranking.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

KS = (1, 5, 10)
NDCG_K = 10
METRICS = tuple(f"R@{k}" for k in KS) + ("MRR", f"NDCG@{NDCG_K}")
TIE_EPS = 1e-6
DEFAULT_MAX_CHUNK_ELEMENTS = 8_000_000


@dataclass
class Ranked:
    """Per-query outcome: the rank of the best relevant item and the query's NDCG@10."""

    first_rank: np.ndarray  # (n_queries,) int64, 1-based
    ndcg: np.ndarray  # (n_queries,) float64
    n_relevant: np.ndarray  # (n_queries,) int64
    pool_size: int
    tied_queries: int

    def per_query(self) -> dict[str, np.ndarray]:
        """0/1 hits, reciprocal ranks and NDCG per query: the values the means and the bootstrap are taken of."""
        out = {f"R@{k}": (self.first_rank <= k).astype(np.float64) for k in KS}
        out["MRR"] = 1.0 / self.first_rank
        out[f"NDCG@{NDCG_K}"] = self.ndcg
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
    Only counts leave a chunk (numpy: BLAS matmul, then two vectorised comparisons per score).
    """
    from tqdm.auto import tqdm

    n_queries, pool = len(queries), len(keys)
    single = isinstance(relevant, np.ndarray) and relevant.ndim == 1 and relevant.dtype.kind in "iu"
    if single:
        targets = relevant.astype(np.int64)
        relevant = [targets[i:i + 1] for i in range(n_queries)]
    if len(relevant) != n_queries:
        raise ValueError(f"{len(relevant)} relevance lists for {n_queries} queries")
    if any(len(r) == 0 for r in relevant):
        raise ValueError("every query needs at least one relevant key")
    n_rel = np.fromiter((len(r) for r in relevant), dtype=np.int64, count=n_queries)
    max_rel = int(n_rel.max()) if n_queries else 1
    keys_t = np.ascontiguousarray(keys, dtype=np.float32).T
    first = np.zeros(n_queries, dtype=np.int64)
    ndcg = np.zeros(n_queries, dtype=np.float64)
    discounts = _discounts(NDCG_K)
    tied = 0
    rows = max(1, int(max_chunk_elements) // max(pool * max_rel, 1))
    starts = range(0, n_queries, rows)
    for start in tqdm(starts, desc=desc, unit="chunk", disable=not progress or len(starts) < 2, leave=False):
        stop = min(start + rows, n_queries)
        scores = np.asarray(queries[start:stop], dtype=np.float32) @ keys_t  # (rows, pool)
        counts = n_rel[start:stop]
        r_np = np.concatenate([np.asarray(relevant[i], dtype=np.int64) for i in range(start, stop)])
        pair_scores = scores if max_rel == 1 else scores[np.repeat(np.arange(stop - start), counts)]  # (pairs, pool)
        own = pair_scores[np.arange(len(r_np)), r_np][:, None]
        greater = (pair_scores > own).sum(axis=1)
        near_np = (pair_scores >= own - TIE_EPS).sum(axis=1) - greater  # within eps below or level, self included
        ranks = 1 + greater.astype(np.int64)
        own_np = own[:, 0]
        # Rare: another key scores (almost) the same. Exact ties are broken by pool order, as a stable argsort does;
        # a tie with a key that is not relevant to the query is counted.
        pair_query = np.repeat(np.arange(start, stop), counts)
        tied_query = np.zeros(stop - start, dtype=bool)
        for p in np.flatnonzero(near_np > 1):
            row = pair_scores[p]
            ranks[p] += int((row[:r_np[p]] == own_np[p]).sum())
            q = pair_query[p]
            close = np.flatnonzero(np.abs(row - own_np[p]) <= TIE_EPS)
            tied_query[q - start] |= bool(np.setdiff1d(close, relevant[q]).size)
        tied += int(tied_query.sum())
        if max_rel == 1:  # text -> image: one relevant image per caption, fully vectorised
            first[start:stop] = ranks
            ndcg[start:stop] = np.where(ranks <= NDCG_K, 1.0 / np.log2(ranks + 1.0), 0.0)
            continue
        offset = 0
        for i in range(start, stop):
            m = int(n_rel[i])
            r = np.sort(ranks[offset:offset + m])
            first[i] = r[0]
            hit = r[r <= NDCG_K]
            ndcg[i] = float((1.0 / np.log2(hit + 1.0)).sum() / discounts[:min(m, NDCG_K)].sum())
            offset += m
    return Ranked(first, ndcg, n_rel, pool, tied)


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
    rng = np.random.default_rng(seed)
    names = list(per_query)
    n = len(next(iter(per_query.values())))
    if n == 0 or n_resamples <= 0:
        return {}
    values = np.stack([per_query[k] - (other[k] if other is not None else 0.0) for k in names])  # (metrics, n)
    means = np.empty((n_resamples, len(names)))
    for b in range(n_resamples):
        means[b] = values[:, rng.integers(0, n, n)].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2], axis=0)
    return {name: [float(lo[i]), float(hi[i])] for i, name in enumerate(names)}
