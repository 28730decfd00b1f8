"""One ranking kernel for every rank metric of the toolkit: compare.py's R@k (each caption queries the references)
and retrieval.py's R@K / MRR / NDCG@10 (text <-> image, several relevant items per query).

Each query ranks every key by its dot product (the cosine of L2-normalised rows). Two tie rules:

- `expected` (default). Scores are computed in float64 from the float32 (or float16) rows and rounded to float32;
  keys whose rounded score *equals* another's tie. Identical embeddings (a duplicated image, identical reference
  texts) therefore always tie, and two distinct scores tie only when they agree to float32 precision (a relative
  6e-8), however small they are: an absolute tolerance (retrieval's former 1e-6) counts distinct low-signal scores
  as ties. Ties are broken uniformly at random *in expectation*: with g keys strictly above the best relevant key
  and a tie group of T keys (m of them relevant) at its score, R@k is P(a relevant key among the first k - g of a
  random order of the T) = 1 - C(T - m, k - g) / C(T, k - g); with one relevant key, clip((k - g) / T, 0, 1).
  MRR is E[1 / (g + F)], F the position of the first relevant key in the random order of the tie group; NDCG@10
  sums, for each relevant key, the mean discount over the positions its own tie group spans (expectation is
  linear). Without ties these are the usual 0/1 hit, 1 / rank and NDCG.
- `argsort` ([VaseVQA-3D]'s compare.py): float32 scores ranked by `numpy.argsort(s)[::-1]` (among exactly equal
  scores the later index of numpy's sort comes first); ranks are positions in that order.

Why by hand: no maintained library ranks in bounded memory with an explicit tie rule and per-query values (needed
for bootstrap CIs); sentence-transformers' InformationRetrievalEvaluator builds top-k lists and breaks ties by sort
order. Memory: the score matrix is never built whole. Keys are taken in blocks and queries in chunks so that one
chunk holds at most `max_chunk_elements` float64 scores (`DEFAULT_MAX_CHUNK_ELEMENTS`: 32 MB, the one budget of
both callers); per (query, relevant key) pair only counts are kept, so the result does not depend on the chunking.
The argsort rule needs whole rows (its order depends on numpy's sort of the row): its chunks are rows only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RECALL_KS = (1, 5, 10)  # the k of every R@k this toolkit reports (compare.py and retrieval.py)
NDCG_K = 10
DEFAULT_MAX_CHUNK_ELEMENTS = 4_000_000  # scores per chunk: 32 MB of float64 (both callers' memory budget)
RULES = ("expected", "argsort")


@dataclass(frozen=True)
class Ranking:
    """Per query: where its best relevant key ranks, the tie group there, its expected MRR and NDCG@10."""

    pool_size: int
    rule: str
    better: np.ndarray  # keys ranked above the best relevant key (strictly higher score; argsort: before it)
    tied: np.ndarray  # other keys with exactly the best relevant key's (rounded) score
    tied_relevant: np.ndarray  # of those, relevant ones (expected rule; 0 under argsort)
    n_relevant: np.ndarray
    mrr: np.ndarray  # expected reciprocal rank of the first relevant key
    ndcg: np.ndarray  # expected NDCG@10
    nonrelevant_tie: np.ndarray  # bool: a relevant key ties a non-relevant one

    def hits(self, k: int) -> np.ndarray:
        """0..1 credit of each query toward R@k under the ranking's rule."""
        if self.rule == "argsort":
            return (self.better < k).astype(np.float64)
        one = np.clip((k - self.better) / (self.tied + 1.0), 0.0, 1.0)  # one relevant key in its tie group
        several = np.flatnonzero(self.tied_relevant > 0)
        if len(several):
            group = self.tied[several] + 1  # T: the tie group at the best relevant key's score
            relevant = self.tied_relevant[several] + 1  # m
            slots = np.clip(k - self.better[several], 0, group)  # positions of the tie group inside the top k
            miss = np.ones(len(group), dtype=np.float64)  # P(no relevant key in them) = C(T-m, j) / C(T, j)
            for i in range(int(slots.max(initial=0))):
                active = i < slots
                miss[active] *= np.maximum(group[active] - relevant[active] - i, 0) / (group[active] - i)
            one[several] = 1.0 - miss
        return one

    def recall(self, k: int) -> float:
        return float(self.hits(k).mean()) if len(self.better) else float("nan")

    def chance(self, k: int) -> float:
        """R@k of a random ranking with one relevant key per query, min(k, N) / N."""
        return min(k, self.pool_size) / self.pool_size if self.pool_size else float("nan")

    @property
    def best_rank(self) -> np.ndarray:
        """1-based rank of the best relevant key ("expected": if every tie were broken in its favour)."""
        return self.better + 1


def _as_lists(relevant: Sequence[np.ndarray] | np.ndarray | None, n_queries: int) -> list[np.ndarray]:
    if relevant is None:
        return [np.array([i]) for i in range(n_queries)]
    if isinstance(relevant, np.ndarray) and relevant.ndim == 1 and relevant.dtype.kind in "iu":
        return [relevant[i:i + 1] for i in range(n_queries)]
    return [np.asarray(r, dtype=np.int64) for r in relevant]


def _discount_sums() -> np.ndarray:
    """D[n] = sum of the NDCG discounts 1 / log2(p + 1) of positions 1..min(n, NDCG_K)."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, NDCG_K + 2)))])


def rank(queries: np.ndarray, keys: np.ndarray, relevant: Sequence[np.ndarray] | np.ndarray | None = None,
         rule: str = "expected", max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS, progress: bool = False,
         desc: str = "ranking") -> Ranking:
    """Rank every key for every query and score the relevant ones (default: key i is query i's one relevant key).

    `relevant`: per query, the indices of its relevant keys (an int array of shape (n_queries,) for one each).
    """
    if rule not in RULES:
        raise ValueError(f"unknown ranking rule {rule!r}; choose from {', '.join(RULES)}")
    n_queries, pool = len(queries), len(keys)
    lists = _as_lists(relevant, n_queries)
    if len(lists) != n_queries:
        raise ValueError(f"{len(lists)} relevance lists for {n_queries} queries")
    if any(len(r) == 0 for r in lists):
        raise ValueError("every query needs at least one relevant key")
    if any(len(r) and (r.min() < 0 or r.max() >= pool) for r in lists):
        raise ValueError(f"a relevant key index is outside the pool of {pool} keys")
    if n_queries == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Ranking(pool, rule, empty, empty, empty, empty, np.zeros(0), np.zeros(0), np.zeros(0, dtype=bool))
    n_rel = np.fromiter((len(r) for r in lists), dtype=np.int64, count=n_queries)
    pair_query = np.repeat(np.arange(n_queries), n_rel)  # (pairs,), grouped by query
    pair_key = np.concatenate(lists).astype(np.int64) if n_queries else pair_query
    first_pair = np.concatenate([[0], np.cumsum(n_rel)])
    if rule == "argsort":
        return _rank_argsort(queries, keys, pair_query, pair_key, first_pair, n_rel, max_chunk_elements, progress,
                             desc)
    return _rank_expected(queries, keys, pair_query, pair_key, first_pair, n_rel, max_chunk_elements, progress, desc)


def _progress_bar(total: int, progress: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="chunk", disable=not progress or total < 2, leave=False)


def _rank_expected(queries, keys, pair_query, pair_key, first_pair, n_rel, max_chunk_elements, progress,
                   desc) -> Ranking:
    n_queries, pool = len(queries), len(keys)
    dim = int(keys.shape[1]) if keys.ndim == 2 else 1
    max_rel = int(n_rel.max()) if n_queries else 1
    n_pairs = len(pair_key)
    own = np.empty(n_pairs, dtype=np.float32)  # each pair's own score, rounded like the chunk scores
    step = max(1, int(max_chunk_elements) // max(2 * dim, 1))
    single_block = max(1, min(pool, int(max_chunk_elements) // max(max_rel, 1))) >= pool
    for a in range(0, 0 if single_block else n_pairs, step):  # several key blocks: computed up front
        b = min(a + step, n_pairs)
        q = np.asarray(queries[pair_query[a:b]], dtype=np.float32).astype(np.float64)
        k = np.asarray(keys[pair_key[a:b]], dtype=np.float32).astype(np.float64)
        own[a:b] = np.einsum("ij,ij->i", q, k).astype(np.float32)
    above = np.zeros(n_pairs, dtype=np.int64)  # other keys strictly above the pair's own score
    equal = np.zeros(n_pairs, dtype=np.int64)  # other keys with exactly its (rounded) score
    block = max(1, min(pool, int(max_chunk_elements) // max(max_rel, 1)))
    rows = max(1, int(max_chunk_elements) // (block * max_rel))
    single_block = block >= pool  # then each own score is read from the very chunk it is compared in
    bar = _progress_bar(math.ceil(pool / block) * math.ceil(n_queries / rows) if n_queries else 0, progress, desc)
    for k0 in range(0, pool, block):
        k1 = min(k0 + block, pool)
        keys_t = np.asarray(keys[k0:k1], dtype=np.float32).astype(np.float64).T
        for q0 in range(0, n_queries, rows):
            q1 = min(q0 + rows, n_queries)
            scores = (np.asarray(queries[q0:q1], dtype=np.float32).astype(np.float64) @ keys_t).astype(np.float32)
            p0, p1 = first_pair[q0], first_pair[q1]
            pair_scores = scores if max_rel == 1 else scores[pair_query[p0:p1] - q0]  # (pairs, block)
            inside = np.flatnonzero((pair_key[p0:p1] >= k0) & (pair_key[p0:p1] < k1))
            self_scores = pair_scores[inside, pair_key[p0:p1][inside] - k0]
            if single_block:
                own[p0:p1] = self_scores
            own_c = own[p0:p1, None]
            above[p0:p1] += (pair_scores > own_c).sum(axis=1)
            equal[p0:p1] += (pair_scores == own_c).sum(axis=1)
            # the pair's own key is not an "other" key, whatever its chunk score rounds to
            above[p0 + inside] -= self_scores > own[p0 + inside]
            equal[p0 + inside] -= self_scores == own[p0 + inside]
            bar.update(1)
    bar.close()
    return _expected_metrics(pool, own, above, equal, pair_query, first_pair, n_rel)


def _expected_metrics(pool, own, above, equal, pair_query, first_pair, n_rel) -> Ranking:
    n_queries = len(n_rel)
    # the best relevant key of each query (highest own score) and how many relevant keys share its score
    order = np.lexsort((-own.astype(np.float64), pair_query))  # within each query, best first
    best = order[first_pair[:-1]] if n_queries else np.zeros(0, dtype=np.int64)
    best_score = own[best] if n_queries else own[:0]
    same_as_best = own == np.repeat(best_score, n_rel)
    tied_relevant = np.bincount(pair_query[same_as_best], minlength=n_queries) - 1
    better, tied = above[best], equal[best]
    # relevant keys sharing each pair's score (itself included): the rest of its tie group is non-relevant
    codes = np.stack([pair_query, (own + np.float32(0.0)).view(np.int32)], axis=1)  # -0.0 == 0.0
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    relevant_in_group = counts[inverse.reshape(-1)]
    nonrelevant_tie = np.zeros(n_queries, dtype=bool)
    np.logical_or.at(nonrelevant_tie, pair_query, equal + 1 > relevant_in_group)
    # MRR: E[1 / (g + F)], P(F = i) = C(T - i, m - 1) / C(T, m); exactly 1 / (g + 1) without ties
    mrr = 1.0 / (better + 1.0)
    for q in np.flatnonzero(tied > 0):
        g, group, m = int(better[q]), int(tied[q]) + 1, int(tied_relevant[q]) + 1
        total = math.comb(group, m)
        mrr[q] = sum(math.comb(group - i, m - 1) / (g + i) for i in range(1, group - m + 2)) / total
    # NDCG@10: each relevant key's mean discount over the positions its tie group spans, over the ideal DCG
    sums = _discount_sums()
    size = equal + 1
    alone = np.where(above + 1 <= NDCG_K, 1.0 / np.log2(above + 2.0), 0.0)  # no tie: the usual discount
    spread = (sums[np.minimum(above + size, NDCG_K)] - sums[np.minimum(above, NDCG_K)]) / size
    dcg_pair = np.where(size == 1, alone, spread)
    dcg = np.bincount(pair_query, weights=dcg_pair, minlength=n_queries)
    ndcg = dcg / sums[np.minimum(n_rel, NDCG_K)]
    return Ranking(pool, "expected", better, tied, tied_relevant, n_rel, mrr, ndcg, nonrelevant_tie)


def _rank_argsort(queries, keys, pair_query, pair_key, first_pair, n_rel, max_chunk_elements, progress,
                  desc) -> Ranking:
    """numpy.argsort(s)[::-1] of each float32 score row, as [VaseVQA-3D]; needs whole rows."""
    n_queries, pool = len(queries), len(keys)
    queries32 = np.ascontiguousarray(queries, dtype=np.float32)
    keys_t = np.ascontiguousarray(keys, dtype=np.float32).T
    positions = np.zeros(len(pair_key), dtype=np.int64)  # 0-based position of each relevant key
    tied_pair = np.zeros(len(pair_key), dtype=np.int64)
    max_rel = int(n_rel.max()) if n_queries else 1
    rows = max(1, int(max_chunk_elements) // max(pool * max_rel, 1))
    bar = _progress_bar(math.ceil(n_queries / rows), progress, desc)
    for q0 in range(0, n_queries, rows):
        q1 = min(q0 + rows, n_queries)
        scores = (queries32[q0:q1] @ keys_t).astype(np.float32)
        order = np.argsort(scores, axis=1)[:, ::-1]  # row-wise, the same sort as numpy.argsort(s)[::-1]
        p0, p1 = first_pair[q0], first_pair[q1]
        local = pair_query[p0:p1] - q0
        positions[p0:p1] = np.argmax(order[local] == pair_key[p0:p1, None], axis=1)
        own = scores[local, pair_key[p0:p1]]
        tied_pair[p0:p1] = (scores[local] == own[:, None]).sum(axis=1) - 1
        bar.update(1)
    bar.close()
    by_position = np.lexsort((positions, pair_query))  # within each query, the best-placed relevant key first
    best_pair = by_position[first_pair[:-1]] if n_queries else by_position
    first = positions[best_pair]
    sums = _discount_sums()
    ranks = positions + 1
    dcg_pair = np.where(ranks <= NDCG_K, 1.0 / np.log2(ranks + 1.0), 0.0)
    ndcg = np.bincount(pair_query, weights=dcg_pair, minlength=n_queries) / sums[np.minimum(n_rel, NDCG_K)]
    nonrelevant_tie = np.zeros(n_queries, dtype=bool)  # not tracked by this rule (its order decides)
    return Ranking(pool, "argsort", first, tied_pair[best_pair], np.zeros(n_queries, dtype=np.int64), n_rel,
                   1.0 / (first + 1.0), ndcg, nonrelevant_tie)
