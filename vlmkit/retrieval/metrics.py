"""Ranking metrics for retrieval, computed in chunks: Recall@K, MRR, NDCG@10, chance levels, bootstrap CIs.

Why not sentence-transformers' `InformationRetrievalEvaluator` (the tests check our values against it): it encodes
the queries itself, reports MRR only up to a cut-off (@10), gives no per-query values (needed for bootstrap
confidence intervals and paired zero-shot vs fine-tuned differences) and no chance levels, and cannot reuse one
embedding pass for both directions. What is written here is only the counting.

Ranks. For a query with scores s over the pool, the rank of a relevant item r is
1 + #{j: s_j > s_r + eps} + #{j < r: |s_j - s_r| <= eps}, eps = 1e-6: scores that close count as equal (identical
embeddings, e.g. a duplicated image, differ by float rounding, ~1e-7) and are ordered by pool position. Without such
near-ties this is the 1-based position in `np.argsort(-s, kind="stable")`; it never depends on the chunking.
Queries whose relevant item ties a non-relevant one are counted in `tied_queries`.

Memory: the score matrix is never built whole: keys are taken in blocks and queries in chunks so that one score
chunk holds at most `max_chunk_elements` float32 values (32 MB by default), and only per-pair counts are kept. The
embeddings may be stored as float16 (half of 100k x 512 x 4 bytes = 200 MB): each key block and query chunk is
converted to float32 when it is used, so no float32 copy of a whole matrix is ever made.

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


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def rank_relevant(queries: np.ndarray, keys: np.ndarray, relevant: Sequence[np.ndarray] | np.ndarray,
                  max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS, progress: bool = False,
                  desc: str = "ranking") -> Ranked:
    """Rank every key for every query (cosine = dot product of L2-normalised rows) and score the relevant ones.

    `relevant`: per query, the indices of its relevant keys (an int array of shape (n_queries,) for one each).

    How, in bounded memory: each (query, relevant key) pair's own score s_r is computed first; then the keys are
    walked in blocks (each converted to float32 once) and, for every chunk of queries, a pair counts the other keys
    scoring above s_r + eps, and notes the few within s_r +- eps (position, relevance) for the tie rule.
    """
    from tqdm.auto import tqdm

    n_queries, pool = len(queries), len(keys)
    if isinstance(relevant, np.ndarray) and relevant.ndim == 1 and relevant.dtype.kind in "iu":
        relevant = [relevant[i:i + 1] for i in range(n_queries)]
    if len(relevant) != n_queries:
        raise ValueError(f"{len(relevant)} relevance lists for {n_queries} queries")
    if any(len(r) == 0 for r in relevant):
        raise ValueError("every query needs at least one relevant key")
    n_rel = np.fromiter((len(r) for r in relevant), dtype=np.int64, count=n_queries)
    max_rel = int(n_rel.max()) if n_queries else 1
    pair_query = np.repeat(np.arange(n_queries), n_rel)  # (pairs,), grouped by query
    pair_key = np.concatenate([np.asarray(r, dtype=np.int64) for r in relevant]) if n_queries else pair_query
    first_pair = np.concatenate([[0], np.cumsum(n_rel)])  # pairs of query i: first_pair[i]:first_pair[i + 1]
    relevant_codes = pair_query * pool + pair_key  # (query, key) as one sortable code
    relevant_codes.sort()
    own = np.empty(len(pair_key), dtype=np.float32)
    step = max(1, int(max_chunk_elements) // max(2 * queries.shape[1], 1))  # two gathered (step, dim) float32 rows
    for a in range(0, len(pair_key), step):
        b = min(a + step, len(pair_key))
        own[a:b] = np.einsum("ij,ij->i", _f32(queries[pair_query[a:b]]), _f32(keys[pair_key[a:b]]))
    greater = np.zeros(len(pair_key), dtype=np.int64)  # other keys above own + eps
    tied_before = np.zeros(len(pair_key), dtype=np.int64)  # other keys within own +- eps, earlier in the pool
    tied_other = np.zeros(len(pair_key), dtype=bool)  # a NON-relevant key within own +- eps
    dim = int(keys.shape[1]) if keys.ndim == 2 else 1
    block = max(1, min(pool, int(max_chunk_elements) // max(max_rel, dim)))  # a key block: <= the chunk budget
    rows = max(1, int(max_chunk_elements) // (block * max_rel))
    n_steps = math.ceil(pool / block) * math.ceil(n_queries / rows)
    bar = tqdm(total=n_steps, desc=desc, unit="chunk", disable=not progress or n_steps < 2, leave=False)
    for k0 in range(0, pool, block):
        k1 = min(k0 + block, pool)
        keys_t = _f32(keys[k0:k1]).T
        for q0 in range(0, n_queries, rows):
            q1 = min(q0 + rows, n_queries)
            scores = _f32(queries[q0:q1]) @ keys_t  # (rows, block)
            p0, p1 = first_pair[q0], first_pair[q1]
            own_c = own[p0:p1, None]
            pair_scores = scores if max_rel == 1 else scores[pair_query[p0:p1] - q0]  # (pairs, block)
            above = pair_scores > own_c + TIE_EPS
            greater[p0:p1] += above.sum(axis=1)
            band = (pair_scores >= own_c - TIE_EPS) & ~above  # the relevant key itself is in its own band
            hit_rows = np.flatnonzero(band.any(axis=1))
            rr, cc = np.nonzero(band[hit_rows])
            pairs, others = p0 + hit_rows[rr], k0 + cc
            keep = others != pair_key[pairs]
            pairs, others = pairs[keep], others[keep]
            np.add.at(tied_before, pairs[others < pair_key[pairs]], 1)
            codes = pair_query[pairs] * pool + others
            pos = np.searchsorted(relevant_codes, codes)
            is_relevant = (pos < len(relevant_codes)) & (relevant_codes[np.minimum(pos, len(relevant_codes) - 1)]
                                                         == codes)
            tied_other[pairs[~is_relevant]] = True
            bar.update(1)
    bar.close()
    ranks = 1 + greater + tied_before
    tied_query = np.zeros(n_queries, dtype=bool)
    np.logical_or.at(tied_query, pair_query, tied_other)
    discounts = _discounts(NDCG_K)
    if max_rel == 1:
        first = ranks
        ndcg = np.where(ranks <= NDCG_K, 1.0 / np.log2(ranks + 1.0), 0.0)
    else:
        first = np.zeros(n_queries, dtype=np.int64)
        ndcg = np.zeros(n_queries, dtype=np.float64)
        for i in range(n_queries):
            r = np.sort(ranks[first_pair[i]:first_pair[i + 1]])
            first[i] = r[0]
            hit = r[r <= NDCG_K]
            ndcg[i] = float((1.0 / np.log2(hit + 1.0)).sum() / discounts[:min(len(r), NDCG_K)].sum())
    return Ranked(first, ndcg, n_rel, pool, int(tied_query.sum()))


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
