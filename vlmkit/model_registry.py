"""The default models of every script, where they live under ./models, and their ids on both hubs.

Data, not downloading: it sits below both of its readers, `vlmkit.models.require_model_dir` (which names the
download command in the error for a missing default folder) and `vlmkit.hub` (download_models.py), so no import runs
from the product up into the downloader. Kept free of heavy imports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vlmkit.io import InputError

DEFAULT_MODELS_DIR = "./models"


@dataclass(frozen=True)
class ModelEntry:
    """One default model. `folder` is relative to the models folder (the scripts' defaults use ./models)."""

    name: str
    folder: str
    hf_id: str
    ms_id: str
    kind: str  # vlm, clip, sentence, vision, lm: decides which files `check` expects
    used_by: str
    remote_code: bool = False  # the checkpoint's own modelling code is needed to instantiate it

    def path(self, models_dir: str | os.PathLike = DEFAULT_MODELS_DIR) -> Path:
        return Path(models_dir) / self.folder

    def repo_id(self, source: str) -> str:
        return self.hf_id if source == "hf" else self.ms_id


REGISTRY: tuple[ModelEntry, ...] = (
    ModelEntry("Qwen2.5-VL-3B-Instruct", "Qwen2.5-VL-3B-Instruct", "Qwen/Qwen2.5-VL-3B-Instruct",
               "Qwen/Qwen2.5-VL-3B-Instruct", "vlm",
               "qwen.py, dataprocess.augment; train.py --arch qwen2_5_vl (BASE_VLM)"),
    ModelEntry("InternVL3_5-4B", "OpenGVLab/InternVL3_5-4B", "OpenGVLab/InternVL3_5-4B", "OpenGVLab/InternVL3_5-4B",
               "vlm", "internvl.py (lmdeploy)", remote_code=True),
    ModelEntry("clip-vit-base-patch32", "openai/clip-vit-base-patch32", "openai/clip-vit-base-patch32",
               "openai-mirror/clip-vit-base-patch32", "clip", "compare.py / compare.sh --clip_model"),
    ModelEntry("all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2",
               "sentence-transformers/all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2", "sentence",
               "compare.py --sentence_model (VaseVQA-3D's encoder; default: the packaged MiniLM)"),
    ModelEntry("siglip-so400m-patch14-384", "siglip-so400m-patch14-384", "google/siglip-so400m-patch14-384",
               "google/siglip-so400m-patch14-384", "vision", "train.sh VISION_MODEL (LLaVA)"),
    ModelEntry("Qwen2.5-3B-Instruct", "Qwen2.5-3B-Instruct", "Qwen/Qwen2.5-3B-Instruct", "Qwen/Qwen2.5-3B-Instruct",
               "lm", "train.sh LM_MODEL (LLaVA)"),
)


def find(name: str) -> ModelEntry:
    """The entry called `name` (case-insensitive; also its folder or either hub id)."""
    key = name.strip().lower()
    for entry in REGISTRY:
        if key in (entry.name.lower(), entry.folder.lower(), entry.hf_id.lower(), entry.ms_id.lower()):
            return entry
    raise InputError(f"--model {name}: not a default model; choose from {', '.join(e.name for e in REGISTRY)} "
                     f"(python download_models.py --list)")


def entry_for_path(path: str | os.PathLike) -> tuple[ModelEntry, Path] | None:
    """(entry, models folder) when `path` ends with a default model's folder, e.g. ./models/openai/clip-vit-..."""
    parts = PurePosixPath(Path(os.path.normpath(Path(path).expanduser())).as_posix()).parts
    for entry in REGISTRY:
        tail = PurePosixPath(entry.folder).parts
        if len(parts) >= len(tail) and tuple(p.lower() for p in parts[-len(tail):]) == tuple(
                t.lower() for t in tail):
            base = Path(*parts[:-len(tail)]) if len(parts) > len(tail) else Path(".")
            return entry, base
    return None


def download_hint(path: str | os.PathLike) -> str | None:
    """`python download_models.py --model NAME [--local_dir DIR]` for a default model's folder, else None."""
    found = entry_for_path(path)
    if found is None:
        return None
    entry, base = found
    local = "" if os.path.normpath(base) == os.path.normpath(DEFAULT_MODELS_DIR) else f" --local_dir {base}"
    return f"python download_models.py --model {entry.name}{local}"
