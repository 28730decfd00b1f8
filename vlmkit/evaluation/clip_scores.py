"""CLIP-based scores computed from L2-normalised embeddings.

- clip_score (VaseVQA-3D's definition): cosine of the CLIP *text* embeddings of the generated and the reference
  caption. It needs no image; it is a text-text similarity in CLIP's space.
- clip_image_score: CLIPScore (Hessel et al., EMNLP 2021), image-grounded and reference-free:
  CLIP-S(c, v) = w * max(cos(E_img(v), E_txt(c)), 0) with w = 2.5, averaged over the object's rendered views.
- ref_clip_score: RefCLIPScore, the harmonic mean of CLIP-S and max(max_r cos(E_txt(c), E_txt(r)), 0) over the
  references r (one per item here).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CLIPSCORE_W = 2.5


def rowwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of matching rows of two L2-normalised matrices."""
    return np.einsum("ij,ij->i", a.astype(np.float64), b.astype(np.float64))


def clip_image_scores(view_embeddings: Sequence[np.ndarray], caption_embeddings: np.ndarray,
                      w: float = CLIPSCORE_W) -> np.ndarray:
    """Per item: mean over its views of w * max(cos(view, caption), 0)."""
    out = np.empty(len(view_embeddings), dtype=np.float64)
    for i, views in enumerate(view_embeddings):
        cos = views.astype(np.float64) @ caption_embeddings[i].astype(np.float64)
        out[i] = float(np.mean(w * np.clip(cos, 0.0, None)))
    return out


def ref_clip_scores(clip_s: np.ndarray, text_cosine: np.ndarray) -> np.ndarray:
    """Harmonic mean of CLIP-S and the clipped caption-reference cosine (0 when either is 0)."""
    ref = np.clip(text_cosine, 0.0, None)
    denom = clip_s + ref
    with np.errstate(invalid="ignore", divide="ignore"):
        hm = np.where(denom > 0, 2.0 * clip_s * ref / np.where(denom > 0, denom, 1.0), 0.0)
    return hm
