"""Text-to-text retrieval recall R@k with a memory footprint linear in the number of items (compare.py).

Each generated caption queries the pool of all N references (one per matched item, by cosine of L2-normalised
embeddings); R@k is the share of queries whose own reference ranks in the top k. Chance level is min(k, N) / N.
The ranking is the toolkit's one kernel, `vlmkit.ranking.rank` (shared with retrieval.py), under the protocol's
rule: `expected` (vlmkit: scores in float64 rounded to float32, equal rounded scores tie and share the hit in
expectation, clip((k - g) / (t + 1), 0, 1) with g better and t tied references) or `argsort` ([VaseVQA-3D]:
`numpy.argsort(s)[::-1]` of float32 scores). See vlmkit/ranking.py for both rules and the memory bound.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vlmkit.ranking import DEFAULT_MAX_CHUNK_ELEMENTS, Ranking, rank

__all__ = ["DEFAULT_MAX_CHUNK_ELEMENTS", "TIE_RULES", "rank_counts"]
TIE_RULES = {
    "expected": ("scores computed in float64 and rounded to float32; references whose rounded cosine equals the "
                 "correct one's tie (identical reference texts always tie); ties are broken at random in "
                 "expectation: with g better and t tied references a query counts clip((k - g) / (t + 1), 0, 1) "
                 "toward R@k"),
    "argsort": ("float32 cosines ranked with numpy.argsort(s)[::-1] as in VaseVQA-3D; among exactly equal scores "
                "numpy's sort order decides"),
}


def rank_counts(queries: np.ndarray, keys: np.ndarray, targets: Sequence[int] | np.ndarray | None = None,
                max_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS, progress: bool = False,
                rule: str = "expected") -> Ranking:
    """Count, for each query i, the keys ranked above / level with its target key (default: key i)."""
    relevant = None if targets is None else np.asarray(targets, dtype=np.int64)
    return rank(queries, keys, relevant, rule=rule, max_chunk_elements=max_chunk_elements, progress=progress,
                desc="retrieval")
