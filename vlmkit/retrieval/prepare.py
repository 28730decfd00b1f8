"""What `retrieval.py train` checks before it imports torch or loads a model: config-dependent model checks, the
output folder, the checkpoint to resume (only complete ones), every image of the data. Kept free of heavy imports
so that a bad input is refused in about a second (bench/bench_checks.py)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmkit.io import InputError, read_json
from vlmkit.outputs import check_output_dir
from vlmkit.retrieval.config import RetrievalConfig
from vlmkit.retrieval.data import BadSample, Pair, load_checked
from vlmkit.retrieval.model import TRAINING_INFO, ModelInfo, inspect_model
from vlmkit.training.checkpoint import checkpoints_in as training_checkpoints_in
from vlmkit.training.checkpoint import manifest_problem

log = logging.getLogger("vlmkit.retrieval.train")

CHECKPOINTS = "checkpoints"
SKIPPED_FILE = "skipped_samples.json"
FORMAT = "vlmkit-retrieval/1"


def world() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment (torchrun / accelerate launch), before any init."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def checkpoints_in(output_dir: Path) -> list[Path]:
    """`checkpoints/checkpoint-N` folders by step, complete or not (see `checkpoint_problem`)."""
    return training_checkpoints_in(output_dir / CHECKPOINTS)


def checkpoint_problem(folder: Path) -> str | None:
    """Why `folder` is not a complete checkpoint, or None. The Trainer writes a checkpoint file by file in place, so
    a kill leaves a folder that looks like one; `InfoCallback` writes TRAINING_INFO last, with every file's size
    (`vlmkit.training.checkpoint.file_manifest`, as train.py does), and this compares them."""
    try:
        info = read_json(folder / TRAINING_INFO) if (folder / TRAINING_INFO).is_file() else None
    except InputError:
        return f"unreadable {TRAINING_INFO}"
    if not isinstance(info, dict):
        return f"no {TRAINING_INFO} (written last: the save did not finish)"
    return manifest_problem(folder, info.get("files") or {})


def resolve_resume(output_dir: Path, resume: str | None, overwrite: bool) -> Path | None:
    existing = checkpoints_in(output_dir)
    started = existing or (output_dir / TRAINING_INFO).is_file()
    if resume in (None, ""):
        if started and not overwrite:
            what = existing[-1].name if existing else "a finished run"
            raise InputError(f"{output_dir}: output_dir holds {what}; pass --resume_from_checkpoint last to "
                             "continue, or --overwrite_output_dir to start afresh")
        return None
    if overwrite:
        raise InputError("--resume_from_checkpoint and --overwrite_output_dir exclude each other")
    if resume == "last":
        if not existing:
            raise InputError(f"{output_dir}: no checkpoints/checkpoint-N to resume from")
        for candidate in reversed(existing):
            problem = checkpoint_problem(candidate)
            if problem is None:
                return candidate
            log.warning("%s is incomplete (%s: killed while saving?); trying the one before", candidate, problem)
        raise InputError(f"{output_dir}: no complete checkpoint to resume from ({existing[-1].name}: "
                         f"{checkpoint_problem(existing[-1])})")
    path = Path(resume)
    if not path.is_dir():
        raise InputError(f"--resume_from_checkpoint {path}: folder not found")
    problem = checkpoint_problem(path)
    if problem is not None:
        raise InputError(f"--resume_from_checkpoint {path}: incomplete checkpoint ({problem}); pass 'last' to take "
                         "the newest complete one")
    return path


def training_info(config: RetrievalConfig, info: ModelInfo) -> dict[str, Any]:
    return {"format": FORMAT, "base_model": str(info.base.resolve()), "kind": info.kind, "config": config.to_dict()}


def check_resume_matches(checkpoint: Path, info: dict[str, Any]) -> None:
    saved = read_json(checkpoint / TRAINING_INFO) if (checkpoint / TRAINING_INFO).is_file() else None
    if saved is None:
        raise InputError(f"{checkpoint}: no {TRAINING_INFO}; not a checkpoint of retrieval.py train")
    for key in ("base_model", "kind"):
        if saved.get(key) != info.get(key):
            raise InputError(f"{checkpoint}: was trained with {key}={saved.get(key)}, this run has {info.get(key)}")
    for key in ("use_lora", "lora_r", "lora_target_modules", "loss_type"):
        if saved["config"].get(key) != info["config"].get(key):
            raise InputError(f"{checkpoint}: was trained with {key}={saved['config'].get(key)!r}, this config has "
                             f"{info['config'].get(key)!r}")


@dataclass
class Prepared:
    """Everything checked before the model is loaded."""

    config: RetrievalConfig
    info: ModelInfo
    output_dir: Path
    resume: Path | None
    train: list[Pair]
    val: list[Pair]
    skipped: list[BadSample]
    negatives: int


def count_negatives(pairs: list[Pair]) -> int:
    """Hard negatives per pair used in training: the smallest number any pair has (columns must be rectangular)."""
    counts = [len(p.negatives) for p in pairs]
    k = min(counts)
    if max(counts) > k:
        if k == 0:
            log.warning("hard negatives ignored: %d of %d pairs have none (every pair needs the same number)",
                        counts.count(0), len(pairs))
        else:
            log.warning("using the first %d hard negatives of every pair (the fewest any pair has)", k)
    return k


def prepare(config: RetrievalConfig, resume: str | None, overwrite: bool) -> Prepared:
    info = inspect_model(config.model_name_or_path, "model_name_or_path")
    if config.loss_type == "sigmoid" and info.kind != "siglip":
        raise InputError(f"{config.model_name_or_path}: loss_type sigmoid needs a SigLIP model (it uses the model's "
                         "learned logit bias); use infonce or symmetric_infonce for CLIP")
    if config.use_mrl and max(config.mrl_dims) > info.dim:
        raise InputError(f"mrl_dims {config.mrl_dims}: larger than the model's embedding size {info.dim}")
    output_dir = check_output_dir(config.output_dir, "output_dir")
    checkpoint = resolve_resume(output_dir, resume, overwrite)
    if checkpoint is not None:
        check_resume_matches(checkpoint, training_info(config, info))
    train, skipped = load_checked(config.data_path, config.image_root, config.skip_bad_samples)
    val: list[Pair] = []
    if config.val_data_path:
        val, val_skipped = load_checked(config.val_data_path, config.image_root, config.skip_bad_samples)
        skipped += val_skipped
        shared = {p.positive for p in train} & {p.positive for p in val}
        if shared:
            log.warning("%d validation images are also training images: validation is not image-disjoint",
                        len(shared))
    if skipped:
        log.warning("skipping %d pairs with bad images (listed in %s), e.g. %s", len(skipped),
                    output_dir / SKIPPED_FILE, skipped[0].describe())
    return Prepared(config, info, output_dir, checkpoint, train, val, skipped, count_negatives(train))
