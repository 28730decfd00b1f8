"""CLIP / SigLIP dual encoders: recognising a folder, loading it with sentence-transformers, LoRA, merging, encoding.

sentence-transformers (>= 5.4) loads a plain HF CLIP or SigLIP folder as ONE model with two modalities (text via
`get_text_features`, images via `get_image_features`), trains it with its losses and trainer, saves LoRA adapters
(`add_adapter`) and loads them back; so every model here is a `SentenceTransformer`, and what the toolkit adds is
the checking: a folder that is not a CLIP/SigLIP dual encoder (a vision tower alone, a captioner, a text
encoder) is a one-line error read from its config.json, before any weights are loaded.

SigLIP's text tower pools the LAST position, and the released models were trained with text padded to 64 tokens,
so SigLIP models are set to `padding="max_length"` (saved with the model's sentence-transformers config).

Folders a training run writes (`vlmkit_retrieval.json` names the base): `output_dir/` (adapter, loadable by
sentence-transformers) and `output_dir/merged/` (the adapter merged into the weights with peft's
`merge_and_unload`: a standard HF folder -- config, safetensors, processor -- plus sentence-transformers' module
files, so `CLIPModel.from_pretrained`, `AutoModel`, compare.py `--clip_model` and `SentenceTransformer` load it).
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlmkit.embedding_cache import fixed_batches
from vlmkit.io import InputError, read_json

log = logging.getLogger(__name__)

SUPPORTED = {"clip": "CLIP", "siglip": "SigLIP"}
TRAINING_INFO = "vlmkit_retrieval.json"
ADAPTER_CONFIG = "adapter_config.json"
MERGE_ATOL = 1e-5


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    kind: str  # clip | siglip
    base: Path  # the folder with config.json and the base weights (== path unless an adapter)
    adapter: bool
    dim: int

    @property
    def label(self) -> str:
        return SUPPORTED[self.kind]


def _adapter_base(folder: Path, flag: str) -> Path:
    info = read_json(folder / TRAINING_INFO) if (folder / TRAINING_INFO).is_file() else {}
    recorded = info.get("base_model") or read_json(folder / ADAPTER_CONFIG).get("base_model_name_or_path")
    if not recorded:
        raise InputError(f"{folder}: {flag}: a LoRA adapter that names no base model")
    base = Path(recorded)
    if not (base / "config.json").is_file():
        raise InputError(f"{folder}: {flag}: the adapter's base model {base} is not there (moved?); use the "
                         "merged/ folder, or put the base back")
    return base


def inspect_model(path: str | os.PathLike, flag: str = "--model") -> ModelInfo:
    """What `path` is (CLIP or SigLIP, plain or LoRA adapter), from its JSON files only; else a one-line error."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise InputError(f"{folder}: {flag}: model folder not found (weights are never downloaded at run time; pass a "
                         "local CLIP or SigLIP folder, e.g. python download_models.py --model clip-vit-base-patch32)")
    adapter = (folder / ADAPTER_CONFIG).is_file()
    base = _adapter_base(folder, flag) if adapter else folder
    if not (base / "config.json").is_file():
        raise InputError(f"{folder}: {flag}: not a model folder (no config.json)")
    config = read_json(base / "config.json")
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in SUPPORTED:
        arch = ", ".join((config or {}).get("architectures") or []) if isinstance(config, dict) else ""
        raise InputError(f"{folder}: {flag}: a {model_type or 'unknown'} model{f' ({arch})' if arch else ''}, not "
                         "CLIP or SigLIP: retrieval needs a text-image dual encoder (model_type clip or siglip)")
    has_processor = any((folder / f).is_file() or (base / f).is_file()
                        for f in ("preprocessor_config.json", "processor_config.json"))
    if not has_processor:
        raise InputError(f"{folder}: {flag}: no image processor (preprocessor_config.json or processor_config.json)")
    if model_type == "clip":
        dim = int(config.get("projection_dim", 512))
    else:
        text = config.get("text_config") or {}
        dim = int(text.get("projection_size") or text.get("hidden_size") or 768)
    return ModelInfo(folder, model_type, base, adapter, dim)


def configure(model: Any, kind: str) -> Any:
    """Model-family settings sentence-transformers does not infer (SigLIP's fixed-length text padding)."""
    if kind == "siglip":
        module = model[0]
        length = int(getattr(module.processor.tokenizer, "model_max_length", 64) or 64)
        length = min(length, int(module.model.config.text_config.max_position_embeddings))
        kwargs = dict(getattr(module, "processing_kwargs", {}) or {})
        kwargs["text"] = {**kwargs.get("text", {}), "padding": "max_length", "max_length": length}
        module.processing_kwargs = kwargs
    return model


def load_encoder(path: str | os.PathLike, device: str = "cpu", flag: str = "--model", info: ModelInfo | None = None):
    """A `SentenceTransformer` for a CLIP/SigLIP folder, adapter folder or merged folder."""
    info = info or inspect_model(path, flag)
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(str(info.path), device=device, local_files_only=True)
    except Exception as exc:  # a corrupt or incomplete folder the user pointed at
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise InputError(f"{info.path}: {flag}: cannot load {info.label} model ({type(exc).__name__}: "
                         f"{first[:200]})") from None
    modalities = set(getattr(model, "modalities", []) or [])
    if not {"text", "image"} <= modalities:
        raise InputError(f"{info.path}: {flag}: sentence-transformers loads it with modalities {sorted(modalities)}; "
                         "retrieval needs text and image")
    return configure(model, info.kind).eval()


def add_lora(model: Any, r: int, alpha: int, dropout: float, targets: list[str]) -> None:
    """LoRA on both towers through sentence-transformers' `add_adapter` (peft)."""
    from peft import LoraConfig

    try:
        model.add_adapter(LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets),
                                     bias="none"))
    except ValueError as exc:
        raise InputError(f"lora_target_modules {targets}: {str(exc).splitlines()[0]}") from None


def trainable_summary(model: Any) -> dict[str, int]:
    params = list(model.parameters())
    return {"trainable": sum(p.numel() for p in params if p.requires_grad), "total": sum(p.numel() for p in params)}


# ---------------------------------------------------------------------------------------------------- encoding
# Every text and image batch has ONE shape: texts of one token length only (no padding) and always `batch_size`
# rows (a short batch is filled with copies of its first item, whose rows are dropped); the same rule as compare's
# encoders (vlmkit.embedding_cache.fixed_batches). Why: padding and the batch size change embeddings' last bits, so
# without it a vector read from the embedding cache (encoded in another run's batches) would differ from a fresh
# one, and a caption's embedding would depend on the other captions of the file. Training-time validation uses the
# same functions, so metrics.jsonl still equals `retrieval.py eval` on the same checkpoint.
@dataclass(frozen=True)
class ModelCache:
    """The persistent embedding cache (vlmkit/embedding_cache.py) for one model folder: `fingerprint` identifies
    the folder as compare's signatures do (model_fingerprint; an adapter also names its base's)."""

    store: Any  # EmbeddingCache
    fingerprint: str

    @classmethod
    def for_model(cls, store: Any, info: ModelInfo) -> ModelCache | None:
        if store is None:
            return None
        from vlmkit.evaluation.signatures import model_fingerprint

        fingerprint = model_fingerprint(info.path)
        if info.adapter:
            fingerprint += "+" + model_fingerprint(info.base)
        return cls(store, f"{info.path.name}@{fingerprint}")

    def namespace(self, model: Any, kind: str, batch_size: int) -> str:
        """Everything that changes a vector: the model, its text settings (context, padding), normalisation, the
        fixed batch shape, device and library versions (the processor's image settings are in its JSON files,
        which the fingerprint covers)."""
        from vlmkit.evaluation.signatures import package_version

        text = (getattr(model[0], "processing_kwargs", {}) or {}).get("text", {})
        return (f"retrieval-{kind}|{self.fingerprint}|max{getattr(model, 'max_seq_length', None)}|"
                f"pad{text.get('padding', 'longest')}:{text.get('max_length', '')}|norm1|fixed-batch{batch_size}|"
                f"{getattr(model, 'device', 'cpu')}|st{package_version('sentence-transformers')}|"
                f"tf{package_version('transformers')}|torch{package_version('torch')}|"
                f"pillow{package_version('pillow') if kind == 'image' else ''}")


def _text_lengths(model: Any, texts: Sequence[str]) -> list[int]:
    """The token length each text is encoded at (after sentence-transformers' truncation to max_seq_length); all
    equal when the model pads to a fixed length (SigLIP)."""
    module = model[0]
    text_kwargs = (getattr(module, "processing_kwargs", {}) or {}).get("text", {})
    if text_kwargs.get("padding") == "max_length":
        return [0] * len(texts)
    processor = getattr(module, "processor", None)
    tokenizer = getattr(processor, "tokenizer", None) or processor or model.tokenizer
    limit = int(getattr(model, "max_seq_length", None) or 10**9)
    ids = tokenizer(list(texts), truncation=False, verbose=False)["input_ids"]
    return [min(len(i), limit) for i in ids]


def _encode_fixed(model: Any, items: list[Any], lengths: list[int], batch_size: int, out: np.ndarray,
                  bar: Any = None) -> None:
    import torch

    with torch.inference_mode():
        for batch, real in fixed_batches(lengths, batch_size):
            rows = model.encode([items[i] for i in batch], batch_size=batch_size, convert_to_numpy=True,
                                normalize_embeddings=True, show_progress_bar=False)
            out[batch[:real]] = rows[:real]
            if bar is not None:
                bar.update(real)


def _with_cache(cache: ModelCache | None, namespace: str, contents: list[str], n: int, dim: int, dtype: Any,
                compute: Any) -> np.ndarray:
    """float32 rows from `compute(indices)`, through the cache when there is one; cast to `dtype` at the end (the
    cache holds float32, so float16 storage reads the same rows)."""
    if cache is None:
        return compute(list(range(n))).astype(dtype, copy=False)
    if not n:
        return np.zeros((0, dim), dtype=dtype)
    hits = cache.store.hits
    rows = cache.store.get_or_compute(namespace, contents, compute)
    log.info("embedding cache: %d of %d %s read, %d encoded", cache.store.hits - hits, n,
             namespace.split("|")[0].removeprefix("retrieval-") + "s", n - (cache.store.hits - hits))
    return rows.astype(dtype, copy=False)


def encode_texts(model: Any, texts: Sequence[str], batch_size: int = 64, dtype: Any = np.float32,
                 progress: bool = True, desc: str = "encoding texts", cache: ModelCache | None = None) -> np.ndarray:
    """L2-normalised text embeddings in batches of one shape; with `cache`, only texts not seen before are encoded."""
    from tqdm.auto import tqdm

    texts = list(texts)
    dim = model.get_embedding_dimension()

    def compute(indices: list[int]) -> np.ndarray:
        part = [texts[i] for i in indices]
        out = np.zeros((len(part), dim), dtype=np.float32)
        with tqdm(total=len(part), desc=desc, unit="text", leave=False,
                  disable=not progress or len(part) <= batch_size) as bar:
            _encode_fixed(model, part, _text_lengths(model, part), batch_size, out, bar)
        return out

    namespace = cache.namespace(model, "text", batch_size) if cache else ""
    return _with_cache(cache, namespace, texts, len(texts), dim, dtype, compute)


def encode_image_batch(model: Any, images: list[Any], batch_size: int) -> np.ndarray:
    """Embeddings of images already opened, in batches of one shape (every image is resized to one size)."""
    out = np.zeros((len(images), model.get_embedding_dimension()), dtype=np.float32)
    _encode_fixed(model, list(images), [0] * len(images), batch_size, out)
    return out


def encode_images(model: Any, paths: Sequence[str], batch_size: int = 64, dtype: Any = np.float32,
                  progress: bool = True, desc: str = "encoding images", cache: ModelCache | None = None) -> np.ndarray:
    """L2-normalised image embeddings; images are opened (vlmkit.images.open_rgb) one batch at a time, so memory
    holds one batch of pixels plus the (n, dim) matrix. With `cache`, an image whose file bytes were seen before
    (by this model, at these settings) is not opened or encoded again."""
    from tqdm.auto import tqdm

    from vlmkit.images import open_rgb

    paths = list(paths)
    dim = model.get_embedding_dimension()

    def compute(indices: list[int]) -> np.ndarray:
        out = np.zeros((len(indices), dim), dtype=np.float32)
        with tqdm(total=len(indices), desc=desc, unit="img", leave=False,
                  disable=not progress or len(indices) <= batch_size) as bar:
            for start in range(0, len(indices), batch_size):
                batch = [open_rgb(paths[i]) for i in indices[start:start + batch_size]]
                out[start:start + len(batch)] = encode_image_batch(model, batch, batch_size)
                bar.update(len(batch))
        return out

    if cache is None:
        return _with_cache(None, "", [], len(paths), dim, dtype, compute)
    from vlmkit.embedding_cache import file_digest

    return _with_cache(cache, cache.namespace(model, "image", batch_size), [file_digest(p) for p in paths],
                       len(paths), dim, dtype, compute)


# ------------------------------------------------------------------------------------------------------ merging
def probe_inputs() -> tuple[list[str], list[Any]]:
    """Fixed texts and images that the merged model must embed exactly like the adapter model."""
    from PIL import Image, ImageDraw

    texts = ["a red-figure hydria with a warrior", "black-figure amphora, side view", "a blue circle"]
    # Two fixed drawings (no randomness): a red disc and a blue triangle on grey, 64 px.
    disc, triangle = Image.new("RGB", (64, 64), (128, 128, 128)), Image.new("RGB", (64, 64), (128, 128, 128))
    ImageDraw.Draw(disc).ellipse([11, 11, 53, 53], fill=(220, 30, 30))
    ImageDraw.Draw(triangle).polygon([(32, 11), (11, 53), (53, 53)], fill=(30, 60, 220))
    return texts, [disc, triangle]


def embed_probe(model: Any) -> np.ndarray:
    texts, images = probe_inputs()
    return np.concatenate([encode_texts(model, texts, progress=False), encode_image_batch(model, images, 8)])


class MergeError(Exception):
    """The merged model does not reproduce the adapter's embeddings."""


def merge_adapter(adapter_dir: Path, merged_dir: Path, device: str = "cpu") -> float:
    """Merge the LoRA adapter in `adapter_dir` into its base and write `merged_dir`; returns the largest
    embedding difference (adapter vs reloaded merged folder) on the probe inputs.

    Built in a temporary sibling folder and renamed into place only after the reload check passes."""
    import torch
    from peft import PeftModel
    from transformers import AutoModel

    info = inspect_model(adapter_dir, "adapter")
    adapter_model = load_encoder(adapter_dir, device, info=info)
    reference = embed_probe(adapter_model)
    base = AutoModel.from_pretrained(str(info.base), dtype=torch.float32).to(device)
    merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload().eval()
    # The adapter model's processor and sentence-transformers settings, with the merged weights inside.
    adapter_model[0].model = merged
    staging = merged_dir.with_name(f".{merged_dir.name}.staging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        adapter_model.save(str(staging))
        (staging / ADAPTER_CONFIG).unlink(missing_ok=True)
        diff = float(np.abs(embed_probe(load_encoder(staging, device, flag="merged")) - reference).max())
        if not diff <= MERGE_ATOL:
            raise MergeError(f"{merged_dir}: merged embeddings differ from the adapter's by {diff:.2e} > "
                             f"{MERGE_ATOL:.0e}; nothing written")
        if merged_dir.exists():
            shutil.rmtree(merged_dir)
        os.replace(staging, merged_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return diff
