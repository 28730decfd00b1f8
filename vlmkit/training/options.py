"""Every setting of a training run, in one dataclass: the defaults of train.py's flags and of programmatic runs.

`train.py` builds its parser from these defaults (`defaults()`), so a flag's default is written once, here, and
`tests/test_launchers.py` checks that train.sh's settings mirror them. `check_options` rejects combinations that
cannot work before anything heavy is imported; `vlmkit.training.run.run` does the rest.
"""

from __future__ import annotations

import argparse
import importlib.util
from dataclasses import dataclass, fields
from typing import Any

from vlmkit.ids import VIEWS
from vlmkit.images import DEFAULT_MAX_IMAGE_PIXELS
from vlmkit.io import InputError

REPORT_BACKENDS = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}


@dataclass
class TrainOptions:
    # model
    arch: str = "llava"
    stage: str = "finetune"
    vision_model: str | None = None
    lm_model: str | None = None
    base_model: str | None = None
    pretrained_projector: str | None = None
    vision_feature_layer: int = -2
    # data
    data: str | None = None  # required
    image_folder: str | None = None
    prompt: str | None = None
    views: tuple[str, ...] = VIEWS
    max_length: int | None = None
    min_pixels: int | None = None
    max_pixels: int | None = None
    skip_bad_samples: bool = False
    max_samples: int | None = None
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    preflight_workers: int = 0
    preflight_only: bool = False
    # evaluation
    eval_data: str | None = None
    eval_image_folder: str | None = None  # default: image_folder
    eval_strategy: str | None = None
    eval_steps: int | None = None
    eval_generate: int = 0
    # scope
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target: str | None = None
    train_lm_layers: int = 0
    unfreeze_vision: bool = False
    unfreeze_merger: bool = False
    load_in_4bit: bool = False
    # training (HF Trainer names)
    output_dir: str | None = None  # required
    overwrite_output_dir: bool = False
    resume_from_checkpoint: str | None = None
    num_train_epochs: float = 1.0
    max_steps: int = -1
    per_device_train_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-4
    projector_lr: float | None = None
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    lr_scheduler_type: str = "cosine"
    max_grad_norm: float = 1.0
    logging_steps: int = 10
    save_steps: int = 500
    save_total_limit: int | None = None
    seed: int = 42
    bf16: bool = False
    fp16: bool = False
    gradient_checkpointing: bool = False
    deepspeed: str | None = None
    dataloader_num_workers: int = 0
    group_by_length: bool = False
    report_to: str = "none"
    local_rank: int = -1
    verbose: bool = False

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Flag defaults for argparse (`parser.set_defaults(**TrainOptions.defaults())`); tuples as comma lists."""
        return {f.name: ",".join(f.default) if isinstance(f.default, tuple) else f.default for f in fields(cls)}

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainOptions:
        names = {f.name for f in fields(cls)}
        unknown = set(vars(args)) - names
        if unknown:  # a flag without an option field would be silently ignored
            raise RuntimeError(f"train.py flags without a TrainOptions field: {sorted(unknown)}")
        return cls(**{k: v for k, v in vars(args).items() if k in names})

    @property
    def composing(self) -> bool:
        return bool(self.vision_model or self.lm_model)

    @property
    def lora(self) -> bool:
        """LoRA on the LM: fine-tuning, unless the last N LM layers are trained in full instead."""
        return self.stage == "finetune" and not self.train_lm_layers

    @property
    def report_backends(self) -> list[str]:
        return [b.strip() for b in self.report_to.split(",") if b.strip() and b.strip() != "none"]


def check_options(o: TrainOptions) -> None:
    """Option combinations that make no sense, rejected before anything heavy is imported."""
    if not o.data or not o.output_dir:
        raise InputError("--data and --output_dir are required")
    if o.composing and not (o.vision_model and o.lm_model):
        raise InputError("composing a LLaVA model needs both --vision_model and --lm_model")
    if o.arch == "qwen2_5_vl":
        if o.composing or o.pretrained_projector:
            raise InputError("--arch qwen2_5_vl fine-tunes an existing Qwen2.5-VL: pass --base_model only")
        if o.stage == "pretrain":
            raise InputError("--stage pretrain trains a LLaVA projector; Qwen2.5-VL's is trained (use finetune)")
        if o.projector_lr is not None and not (o.unfreeze_merger or o.unfreeze_vision):
            raise InputError("--projector_lr applies to Qwen2.5-VL's merger, which stays frozen without "
                             "--unfreeze_merger")
        if not o.base_model:
            raise InputError("--arch qwen2_5_vl needs --base_model (a local Qwen2.5-VL folder)")
    else:
        if o.composing and o.base_model:
            raise InputError("pass either --vision_model + --lm_model (compose) or --base_model, not both")
        if o.pretrained_projector and o.stage == "pretrain":
            raise InputError("--pretrained_projector initialises a finetune run; drop it for --stage pretrain")
        if o.pretrained_projector and o.composing:
            raise InputError("--pretrained_projector brings its own base; drop --vision_model/--lm_model")
        if not (o.composing or o.base_model or o.pretrained_projector):
            raise InputError("--arch llava needs --vision_model + --lm_model, --base_model or --pretrained_projector")
        if o.unfreeze_merger:
            raise InputError("--unfreeze_merger: Qwen2.5-VL's patch merger; LLaVA's projector trains anyway")
    if (o.min_pixels or o.max_pixels) and o.arch != "qwen2_5_vl":
        raise InputError("--min_pixels/--max_pixels set Qwen2.5-VL's dynamic resolution; LLaVA uses the vision "
                         "model's fixed input size")
    if o.max_length is not None and o.max_length < 16:
        raise InputError(f"--max_length {o.max_length}: too small")
    for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "lora_r", "save_steps",
                 "logging_steps"):
        if getattr(o, name) < 1:
            raise InputError(f"--{name} must be >= 1")
    if o.max_samples is not None and o.max_samples < 1:
        raise InputError(f"--max_samples {o.max_samples}: must be >= 1")
    if o.preflight_workers < 0 or o.eval_generate < 0 or o.train_lm_layers < 0:
        raise InputError("--preflight_workers, --eval_generate and --train_lm_layers must be >= 0")
    if o.train_lm_layers:
        if o.stage == "pretrain":
            raise InputError("--train_lm_layers: --stage pretrain keeps the language model frozen")
        if o.lora_target:
            raise InputError("--train_lm_layers trains the last layers in full instead of LoRA; drop --lora_target")
        if o.load_in_4bit:
            raise InputError("--train_lm_layers cannot train 4-bit layers; drop --load_in_4bit")
    strategy = o.eval_strategy or ("steps" if o.eval_data else "no")
    if strategy not in ("no", "steps", "epoch"):
        raise InputError(f"--eval_strategy {o.eval_strategy}: choose no, steps or epoch")
    if strategy != "no" and not o.eval_data:
        raise InputError(f"--eval_strategy {strategy} needs --eval_data")
    if o.eval_generate and not o.eval_data:
        raise InputError("--eval_generate needs --eval_data (it captions eval samples)")
    if o.eval_steps is not None and o.eval_steps < 1:
        raise InputError("--eval_steps must be >= 1")
    check_report_to(o.report_to)


def check_report_to(value: str, flag: str = "--report_to") -> None:
    """`--report_to` backends must be installed: checked before any model is loaded, not when the Trainer starts.
    `flag` names the setting in the message (retrieval configs: `<file>: report_to`)."""
    backends = [b.strip() for b in value.split(",") if b.strip()]
    for backend in backends:
        if backend == "none":
            continue
        if backend not in REPORT_BACKENDS:
            raise InputError(f"{flag} {backend}: choose none, {', '.join(REPORT_BACKENDS)} (comma-separated)")
        if not any(importlib.util.find_spec(m) is not None for m in REPORT_BACKENDS[backend]):
            hint = ("pip install wandb; without network set WANDB_MODE=offline and upload later with `wandb sync`"
                    if backend == "wandb" else "pip install tensorboard")
            raise InputError(f"{flag} {backend}: the {backend} package is not installed ({hint})")
    if "none" in backends and len(backends) > 1:
        raise InputError(f"{flag} {value}: 'none' excludes the others")
