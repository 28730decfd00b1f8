"""Text-to-text retrieval recall R@k with a memory footprint linear in the number of items.

Each generated caption queries the pool of all N references (one per matched item, by cosine of
L2-normalised embeddings); R@k is the share of queries whose own reference ranks in the top k. Chance
level is min(k, N) / N.

Tie rule: a reference whose score is within `TIE_EPS` of the correct reference's score is a tie (identical
reference texts have identical embeddings, and float rounding differs by ~1e-7). Ties are broken uniformly at
random *in expectation*: with g strictly better references and t tied ones, the query counts
clip((k - g) / (t + 1), 0, 1) toward R@k. Without ties this is the usual 0/1 hit.

Memory: the similarity matrix is never built whole. Queries are processed in chunks of rows so that a chunk
holds at most `max_chunk_elements` scores; for each query only two counts (better, tied) are kept, so no
top-k list or sort is needed and the result does not depend on the chunk size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

TIE_EPS = 1e-6
DEFAULT_KS = (1, 5, 10)
DEFAULT_MAX_CHUNK_ELEMENTS = 8_000_000  # 32 MB of float32 scores per chunk


@dataclass(frozen=True)
class RetrievalResult:
    pool_size: int
    better: np.ndarray  # per query: references scoring strictly higher than the correct one
    tied: np.ndarray  # per query: other references within TIE_EPS of the correct one
    ks: tuple[int, ...] = DEFAULT_KS

    def hits(self, k: int) -> np.ndarray:
        """Expected 0..1 credit of each query toward R@k under the tie rule."""
        return np.clip((k - self.better) / (self.tied + 1.0), 0.0, 1.0)

    def recall(self, k: int) -> float:
        return float(self.hits(k).mean()) if len(self.better) else float("nan")

    def chance(self, k: int) -> float:
        return min(k, self.pool_size) / self.pool_size if self.pool_size else float("nan")

    @property
    def best_rank(self) -> np.ndarray:
        """1-based rank of the correct reference if every tie were broken in its favour."""
        return self.better + 1


def rank_counts(queries: np.ndarray, keys: np.ndarray, targets: Sequence[int] | np.ndarray | None = None,
                max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS, progress: bool = False,
                tie_eps: float = TIE_EPS) -> RetrievalResult:
    """Count, for each query i, the keys scoring above / level with its target key (default: key i)."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    keys = np.ascontiguousarray(keys, dtype=np.float32)
    n_queries, pool = len(queries), len(keys)
    targets = np.arange(n_queries) if targets is None else np.asarray(targets, dtype=np.int64)
    better = np.zeros(n_queries, dtype=np.int64)
    tied = np.zeros(n_queries, dtype=np.int64)
    rows = max(1, int(max_chunk_elements) // max(pool, 1))
    keys_t = keys.T
    starts = range(0, n_queries, rows)
    for start in tqdm(starts, desc="retrieval", unit="chunk", disable=not progress or len(starts) < 2, leave=False):
        stop = min(start + rows, n_queries)
        scores = queries[start:stop] @ keys_t  # (rows, pool)
        correct = scores[np.arange(stop - start), targets[start:stop]][:, None]
        better[start:stop] = (scores > correct + tie_eps).sum(axis=1)
        tied[start:stop] = (np.abs(scores - correct) <= tie_eps).sum(axis=1) - 1  # minus the target itself
    return RetrievalResult(pool, better, tied)
