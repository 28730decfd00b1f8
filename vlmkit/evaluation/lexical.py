"""Lexical overlap: Jaccard similarity of lower-cased word sets (VaseVQA-3D's `lexical_similarity`).

Words are runs of Unicode word characters (`\\w+`), so punctuation does not glue onto words
("Attica." and "Attica" are the same word) and hyphenated terms split ("black-figure" -> black, figure).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"\w+")


def word_set(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def jaccard(a: str, b: str) -> float:
    """|A ∩ B| / |A ∪ B| of the word sets; two texts without any word are identical (1.0)."""
    wa, wb = word_set(a), word_set(b)
    union = len(wa | wb)
    return len(wa & wb) / union if union else 1.0


def jaccard_per_pair(generated: Sequence[str], references: Sequence[str]) -> np.ndarray:
    return np.fromiter((jaccard(g, r) for g, r in zip(generated, references, strict=True)), dtype=np.float64,
                       count=len(generated))
