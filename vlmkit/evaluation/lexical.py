"""Lexical overlap: Jaccard similarity of lower-cased token sets (VaseVQA-3D's `lexical_similarity`).

Two tokenisations, one per protocol:

- `words` (vlmkit): runs of Unicode word characters (`\\w+`), so punctuation does not glue onto words
  ("Attica." and "Attica" are the same word) and hyphenated terms split ("black-figure" -> black, figure).
  Two texts without any word are identical (1.0).
- `whitespace` (vasevqa3d): `set(text.lower().split())`, the reference's tokens, punctuation kept
  ("Attica." and "Attica" differ, "525–475" is one token). Two texts without any token score 0.0, as there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"\w+")
TOKENISATIONS = ("words", "whitespace")


def word_set(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def whitespace_set(text: str) -> frozenset[str]:
    return frozenset(text.lower().split())


def jaccard(a: str, b: str, tokens: str = "words") -> float:
    """|A ∩ B| / |A ∪ B| of the token sets (see the module docstring for the empty case)."""
    split = word_set if tokens == "words" else whitespace_set
    wa, wb = split(a), split(b)
    union = len(wa | wb)
    if not union:
        return 1.0 if tokens == "words" else 0.0
    return len(wa & wb) / union


def jaccard_per_pair(generated: Sequence[str], references: Sequence[str], tokens: str = "words") -> np.ndarray:
    if tokens not in TOKENISATIONS:
        raise ValueError(f"unknown tokenisation {tokens!r}")
    return np.fromiter((jaccard(g, r, tokens) for g, r in zip(generated, references, strict=True)), dtype=np.float64,
                       count=len(generated))
