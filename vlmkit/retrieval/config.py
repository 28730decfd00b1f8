"""The training config: the [CLIP retrieval guide]'s YAML keys, with defaults < YAML file < `--config_override`.

The same config system as train.py's (`vlmkit.config_files`): the file is read by the one reader (safe YAML, or
JSON), a field's help and range are its metadata (declared once, checked once in `validate`), the command line wins
over the file, and a key that is not a field -- a typo -- is the same one-line error naming the file, the closest
valid key and the full list, before anything is loaded. Every key is a field of `RetrievalConfig` (typed; the help
text is what `retrieval.py train --list_keys` prints). Overrides are `key=value` strings; the value is parsed as
YAML and then converted to the field's type (so `learning_rate=2e-5`, which YAML 1.1 reads as a string, is still a
float). Relative paths are relative to the current folder, as in the guide's `run.py`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmkit.io import InputError
from vlmkit.ranges import POSITIVE, Range, check_value

LOSS_TYPES = ("infonce", "symmetric_infonce", "sigmoid")
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
EVAL_STRATEGIES = ("epoch", "steps", "no")
DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]


def _f(default: Any, help: str, range: Range | None = None) -> Any:
    """A key with its help and (numbers) its declared range: HfArgumentParser-style metadata, as train.py's."""
    meta = {"help": help, "range": range} if range is not None else {"help": help}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RetrievalConfig:
    # model
    model_name_or_path: str = _f("", "LOCAL folder of the CLIP or SigLIP model to fine-tune (never downloaded)")
    encoder_mode: str = _f("auto", "auto: CLIP or SigLIP, read from the folder's config.json (the only mode)")
    use_lora: bool = _f(True, "LoRA on both towers (false: full fine-tune)")
    lora_r: int = _f(16, "LoRA rank", range=POSITIVE)
    lora_alpha: int = _f(32, "LoRA alpha (usually 2 x rank)", range=POSITIVE)
    lora_dropout: float = _f(0.0, "LoRA dropout (peft's default 0; with > 0 a resumed run draws other dropout masks "
                                  "than an uninterrupted one)", range=Range(0, 1, hi_open=True))
    lora_target_modules: list = _f(DEFAULT_LORA_TARGETS, "module names that get LoRA (attention and MLP "
                                                         "projections of both towers)")
    # data
    data_path: str = _f("", "training pairs JSONL: {\"query\": text, \"positive\": image[, \"negatives\": [images]]}")
    val_data_path: str | None = _f(None, "validation pairs JSONL (image-disjoint from training); null: no validation")
    image_root: str | None = _f(None, "folder the image paths are relative to (null: each JSONL's own folder)")
    output_dir: str = _f("", "adapter, checkpoints/, metrics.jsonl, training_curves.png and merged/ go here")
    skip_bad_samples: bool = _f(False, "skip (count and list) pairs with a missing/corrupt image instead of stopping")
    # optimisation
    epochs: float = _f(3.0, "training epochs", range=Range(0, note="with max_steps > 0 it is ignored"))
    max_steps: int = _f(-1, "stop after this many optimizer steps (> 0 overrides epochs)",
                        range=Range(-1, note="-1: use epochs"))
    batch_size: int = _f(128, "pairs per batch per device: the in-batch negatives (more is better)", range=POSITIVE)
    gradient_accumulation_steps: int = _f(1, "accumulate gradients over this many batches (does NOT add negatives)",
                                          range=POSITIVE)
    learning_rate: float = _f(2e-5, "peak learning rate", range=Range(0, 1, lo_open=True))
    weight_decay: float = _f(0.01, "AdamW weight decay", range=Range(0))
    max_grad_norm: float = _f(1.0, "gradient clipping norm", range=Range(0, note="0: no clipping"))
    scheduler_type: str = _f("cosine", f"learning-rate schedule: {', '.join(SCHEDULERS)}")
    warmup_ratio: float = _f(0.1, "share of the steps used for linear warm-up", range=Range(0, 1, hi_open=True))
    seed: int = _f(42, "random seed (data order, LoRA init)", range=Range(0, 2**32 - 1))
    bf16: bool = _f(False, "bfloat16 mixed precision")
    fp16: bool = _f(False, "float16 mixed precision (GPU only)")
    # loss
    loss_type: str = _f("infonce", "infonce: text->image InfoNCE; symmetric_infonce: text->image and image->text "
                                   "averaged (CLIP's loss); sigmoid: SigLIP's pairwise sigmoid loss")
    temperature: float = _f(0.05, "InfoNCE temperature tau (scale 1/tau); the sigmoid loss uses the model's own "
                                  "learned logit scale and bias instead", range=Range(0, lo_open=True))
    use_gradient_cache: bool = _f(False, "GradCache: large batches in little memory (infonce losses only)")
    gradient_cache_chunk_size: int = _f(64, "GradCache mini-batch size", range=POSITIVE)
    use_mrl: bool = _f(False, "Matryoshka representation learning: also train truncated embeddings")
    mrl_dims: list = _f([512, 256, 128, 64], "Matryoshka dimensions (each <= the model's embedding size)")
    # logging, evaluation, saving
    logging_steps: int = _f(10, "log the training loss every N steps", range=POSITIVE)
    save_steps: int = _f(0, "checkpoint every N steps (0: at the end of every epoch)",
                         range=Range(0, note="0: every epoch"))
    save_total_limit: int | None = _f(2, "keep at most this many checkpoints (null: all)",
                                      range=Range(1, optional=True, note="null: keep all"))
    eval_strategy: str = _f("epoch", f"validation: {', '.join(EVAL_STRATEGIES)} (needs val_data_path)")
    eval_steps: int | None = _f(None, "with eval_strategy steps: validate every N steps", range=Range(1, optional=True))
    eval_batch_size: int = _f(64, "encoding batch size for validation", range=POSITIVE)
    report_to: str = _f("none", "none, tensorboard, wandb, ... (the HF Trainer's integrations)")
    torch_distributed_debug: str = _f("no", "TORCH_DISTRIBUTED_DEBUG for multi-process runs: no, INFO, DETAIL")
    merge: bool = _f(True, "write output_dir/merged/, a standard HF model folder, after training")
    dataloader_num_workers: int = _f(0, "data loader worker processes", range=Range(0, 256))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(RetrievalConfig)}

# Declared ranges of the numeric keys, from the fields (checked after defaults < YAML < overrides are merged; floats
# must be finite).
RANGES: dict[str, Range] = {name: f.metadata["range"] for name, f in FIELDS.items() if "range" in f.metadata}
_HINTS = typing.get_type_hints(RetrievalConfig)


def describe_keys() -> str:
    """`key (type, default): help` per line, for --list_keys."""
    lines = []
    for name, f in FIELDS.items():
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        lines.append(f"{name} = {default!r}: {f.metadata['help']}")
    return "\n".join(lines)


def _unknown_key(key: str, where: str) -> InputError:
    from vlmkit.config_files import unknown_key

    return unknown_key(key, where, FIELDS)


def _convert(key: str, value: Any, where: str) -> Any:
    """`value` (from YAML or an override) as the declared type of `key`."""
    hint = _HINTS[key]
    optional = type(None) in typing.get_args(hint)
    base = next((a for a in typing.get_args(hint) if a is not type(None)), hint) if optional else hint
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
        if optional:
            return None
        raise InputError(f"{where}: {key} cannot be null")
    bad = InputError(f"{where}: {key}={value!r} is not a valid {getattr(base, '__name__', base)}")
    if base is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        raise bad
    if base is int:
        if isinstance(value, bool):
            raise bad
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise bad from None
        if not math.isfinite(number) or not number.is_integer() or abs(number) > 2**63:
            raise bad
        return int(number)
    if base is float:
        if isinstance(value, bool):
            raise bad
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise bad from None
        if not math.isfinite(number):
            raise InputError(f"{where}: {key} must be a finite number, got {number}")
        return number
    if base is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        if not isinstance(value, list):
            raise bad
        if key == "mrl_dims":
            return [_convert("max_steps", v, f"{where}: {key}") for v in value]
        if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
            raise bad
        return [str(v) for v in value]
    if isinstance(value, (dict, list)):
        raise bad
    if isinstance(value, bool):  # YAML 1.1 reads an unquoted `no` (eval_strategy: no) as false
        return "yes" if value else "no"
    return str(value)


def parse_override(item: str) -> tuple[str, Any]:
    from vlmkit.safe_yaml import load_yaml_value

    if "=" not in item:
        raise InputError(f"--config_override {item!r}: expected key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    hint = _HINTS.get(key)
    if hint is str or (hint is not None and str in typing.get_args(hint) and raw.strip().lower() not in
                       ("null", "none", "~")):
        return key, raw  # a string setting is taken as written (no YAML: `no`, `1e-5`, `on` stay text)
    try:
        value = load_yaml_value(raw, f"--config_override {item}") if raw.strip() else ""
    except InputError as exc:
        if "not allowed" in str(exc):
            raise  # an alias or anchor in an override
        value = raw  # not YAML: taken as text (and refused by the key's type if that is not text)
    return key, value


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> RetrievalConfig:
    """Defaults < YAML (or JSON) file < overrides; then `validate`. The file is read by
    `vlmkit.config_files.read_config_mapping` (safe YAML: no aliases or anchors, no key given twice), as train.py's
    `--config` is."""
    from vlmkit.config_files import read_config_mapping

    values: dict[str, Any] = {}
    if path is not None:
        for key, value in read_config_mapping(path, "retrieval config").items():
            if key not in FIELDS:
                raise _unknown_key(str(key), str(path))
            values[key] = _convert(key, value, f"{path}: {key}")
    for item in overrides or []:
        key, value = parse_override(item)
        if key not in FIELDS:
            raise _unknown_key(key, "--config_override")
        values[key] = _convert(key, value, f"--config_override {item}")
    config = RetrievalConfig(**values)
    validate(config, str(path) if path else "--config_override")
    return config


def validate(c: RetrievalConfig, where: str) -> None:
    """Settings that cannot work, refused before any data or model is read."""
    for key in ("model_name_or_path", "data_path", "output_dir"):
        if not getattr(c, key):
            raise InputError(f"{where}: {key} is required")
    if c.encoder_mode != "auto":
        raise InputError(f"{where}: encoder_mode {c.encoder_mode!r}: only 'auto' (CLIP or SigLIP from config.json)")
    choices = {"loss_type": LOSS_TYPES, "scheduler_type": SCHEDULERS, "eval_strategy": EVAL_STRATEGIES,
               "torch_distributed_debug": ("no", "INFO", "DETAIL")}
    for key, allowed in choices.items():
        if getattr(c, key) not in allowed:
            raise InputError(f"{where}: {key} {getattr(c, key)!r}: choose one of {', '.join(allowed)}")
    for key, rng in RANGES.items():
        check_value(getattr(c, key), key, where, rng)
    if c.epochs <= 0 and c.max_steps <= 0:
        raise InputError(f"{where}: epochs must be > 0 (or max_steps > 0)")
    from vlmkit.training.options import check_report_to

    check_report_to(c.report_to, f"{where}: report_to")
    if c.use_gradient_cache and c.loss_type == "sigmoid":
        raise InputError(f"{where}: use_gradient_cache works with loss_type infonce or symmetric_infonce "
                         "(sentence-transformers' cached losses are softmax losses), not sigmoid")
    if c.use_mrl and (not c.mrl_dims or any(d < 1 for d in c.mrl_dims)):
        raise InputError(f"{where}: mrl_dims must be a non-empty list of positive sizes")
    if c.eval_strategy != "no" and not c.val_data_path:
        raise InputError(f"{where}: eval_strategy {c.eval_strategy} needs val_data_path (or set eval_strategy: no)")
    if c.eval_strategy == "steps" and not c.eval_steps:
        raise InputError(f"{where}: eval_strategy steps needs eval_steps")
    if c.bf16 and c.fp16:
        raise InputError(f"{where}: bf16 and fp16 exclude each other")
    if Path(c.output_dir).resolve() == Path(c.model_name_or_path).resolve():
        raise InputError(f"{where}: output_dir is the model folder; choose another output_dir")
