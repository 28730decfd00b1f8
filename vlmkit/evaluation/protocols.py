"""Metric protocols: which definition stands behind each reported key.

Two protocols share the key names of [VaseVQA-3D]'s compare.py but not all definitions:

- `vlmkit` (default): the toolkit's own metric set. `clip_score` is the reference's definition; semantic
  similarity, retrieval and the Fréchet distance use a sentence-transformers model (L2-normalised embeddings),
  lexical similarity splits on `\\w+` words, and retrieval ties are shared in expectation.
- `vasevqa3d`: reproduces the reference implementation's numbers. Semantic similarity and retrieval use the CLIP
  *text* embeddings (so `semantic_similarity` duplicates `clip_score`), R@k ranks with `numpy.argsort(s)[::-1]`,
  lexical similarity is the Jaccard of whitespace tokens (punctuation kept), and the Fréchet distance uses the
  sentence model's embeddings as `encode()` returns them with 1e-6·I added to both covariances.

Under both protocols a metric that cannot be computed is `null` with its reason (the reference silently writes
0.0), and items are matched by id with coverage reported (the reference pairs by position).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PROTOCOL = "vlmkit"
MPNET_DEFAULT = "./models/sentence-transformers/all-mpnet-base-v2"


@dataclass(frozen=True)
class Protocol:
    name: str
    semantic_encoder: str  # "sentence" or "clip"
    retrieval_encoder: str  # "sentence" or "clip"
    retrieval_rule: str  # "expected" (ties shared in expectation) or "argsort" (numpy.argsort(s)[::-1])
    lexical_tokens: str  # "words" (\w+) or "whitespace" (str.split, punctuation kept)
    fid_normalised: bool  # L2-normalise the sentence embeddings before the Fréchet distance
    fid_eps: float  # added to the diagonal of both covariances
    default_sentence_model: str | None  # None: the packaged all-MiniLM-L6-v2
    summary: str


PROTOCOLS: dict[str, Protocol] = {
    "vlmkit": Protocol(
        name="vlmkit", semantic_encoder="sentence", retrieval_encoder="sentence", retrieval_rule="expected",
        lexical_tokens="words", fid_normalised=True, fid_eps=0.0, default_sentence_model=None,
        summary="this toolkit's metric set: sentence-model semantic similarity, retrieval and FD; \\w+ Jaccard"),
    "vasevqa3d": Protocol(
        name="vasevqa3d", semantic_encoder="clip", retrieval_encoder="clip", retrieval_rule="argsort",
        lexical_tokens="whitespace", fid_normalised=False, fid_eps=1e-6, default_sentence_model=MPNET_DEFAULT,
        summary="VaseVQA-3D's compare.py definitions: CLIP text cosine for clip/semantic/R@k, whitespace Jaccard, "
                "FD of raw sentence embeddings with 1e-6·I"),
}


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; choose from {', '.join(PROTOCOLS)}") from None
