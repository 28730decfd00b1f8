"""Text-to-text retrieval recall R@k with a memory footprint linear in the number of items.

Each generated caption queries the pool of all N references (one per matched item, by cosine of
L2-normalised embeddings); R@k is the share of queries whose own reference ranks in the top k. Chance
level is min(k, N) / N. Two ranking rules, one per protocol:

- `expected` (vlmkit). Scores are computed in float64 from the float32 embeddings and rounded to float32;
  a reference whose rounded score *equals* the correct reference's is a tie. Identical reference texts (one
  embedding, see `EmbeddingStore`) therefore always tie, and two distinct scores tie only when they agree to
  float32 precision (a relative 6e-8), however small the scores are. (An absolute tolerance, as before, counted
  distinct low-signal scores as ties.) Ties are broken uniformly at random *in expectation*: with g strictly
  better references and t tied ones, the query counts clip((k - g) / (t + 1), 0, 1) toward R@k. Without ties
  this is the usual 0/1 hit.
- `argsort` ([VaseVQA-3D]). float32 scores, the references ranked by `numpy.argsort(s)[::-1]` (so among exactly
  equal scores the later index of numpy's sort comes first), hit if the own reference is among the first k.

Memory: the similarity matrix is never built whole. Queries are processed in chunks of rows so that a chunk
holds at most `max_chunk_elements` scores; for each query only two counts are kept, so the result does not
depend on the chunk size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from vlmkit.ranking import RECALL_KS

DEFAULT_KS = RECALL_KS
DEFAULT_MAX_CHUNK_ELEMENTS = 4_000_000  # 32 MB of float64 scores per chunk
RULES = ("expected", "argsort")
TIE_RULES = {
    "expected": ("scores computed in float64 and rounded to float32; references whose rounded cosine equals the "
                 "correct one's tie (identical reference texts always tie); ties are broken at random in "
                 "expectation: with g better and t tied references a query counts clip((k - g) / (t + 1), 0, 1) "
                 "toward R@k"),
    "argsort": ("float32 cosines ranked with numpy.argsort(s)[::-1] as in VaseVQA-3D; among exactly equal scores "
                "numpy's sort order decides"),
}


@dataclass(frozen=True)
class RetrievalResult:
    pool_size: int
    better: np.ndarray  # per query: references ranked above the correct one (strictly higher score for "expected")
    tied: np.ndarray  # per query: other references with exactly the correct one's (rounded) score
    ks: tuple[int, ...] = DEFAULT_KS
    rule: str = "expected"

    def hits(self, k: int) -> np.ndarray:
        """0..1 credit of each query toward R@k under the result's rule."""
        if self.rule == "argsort":
            return (self.better < k).astype(np.float64)
        return np.clip((k - self.better) / (self.tied + 1.0), 0.0, 1.0)

    def recall(self, k: int) -> float:
        return float(self.hits(k).mean()) if len(self.better) else float("nan")

    def chance(self, k: int) -> float:
        return min(k, self.pool_size) / self.pool_size if self.pool_size else float("nan")

    @property
    def best_rank(self) -> np.ndarray:
        """1-based rank of the correct reference ("expected": if every tie were broken in its favour)."""
        return self.better + 1


def rank_counts(queries: np.ndarray, keys: np.ndarray, targets: Sequence[int] | np.ndarray | None = None,
                max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS, progress: bool = False,
                rule: str = "expected") -> RetrievalResult:
    """Count, for each query i, the keys ranked above / level with its target key (default: key i)."""
    if rule not in RULES:
        raise ValueError(f"unknown retrieval rule {rule!r}")
    dtype = np.float64 if rule == "expected" else np.float32
    queries = np.ascontiguousarray(queries, dtype=np.float32).astype(dtype, copy=False)
    keys = np.ascontiguousarray(keys, dtype=np.float32).astype(dtype, copy=False)
    n_queries, pool = len(queries), len(keys)
    targets = np.arange(n_queries) if targets is None else np.asarray(targets, dtype=np.int64)
    better = np.zeros(n_queries, dtype=np.int64)
    tied = np.zeros(n_queries, dtype=np.int64)
    rows = max(1, int(max_chunk_elements) // max(pool, 1))
    keys_t = keys.T
    starts = range(0, n_queries, rows)
    for start in tqdm(starts, desc="retrieval", unit="chunk", disable=not progress or len(starts) < 2, leave=False):
        stop = min(start + rows, n_queries)
        scores = (queries[start:stop] @ keys_t).astype(np.float32)  # (rows, pool)
        own = targets[start:stop]
        correct = scores[np.arange(stop - start), own][:, None]
        tied[start:stop] = (scores == correct).sum(axis=1) - 1  # minus the target itself
        if rule == "expected":
            better[start:stop] = (scores > correct).sum(axis=1)
        else:
            order = np.argsort(scores, axis=1)[:, ::-1]  # row-wise, the same sort as numpy.argsort(s)[::-1]
            better[start:stop] = np.argmax(order == own[:, None], axis=1)
    return RetrievalResult(pool, better, tied, rule=rule)
