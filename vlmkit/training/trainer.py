"""The HF `Trainer` set-up: a projector learning rate of its own, DeepSpeed config checks, no-LoRA checkpoints.

We keep the HF Trainer (and its DeepSpeed integration, which fills the configs' "auto" values) and change only
what it cannot express: a separate learning rate for the projector (a parameter group), checkpoints of only the
parts trained in full when there is no LoRA (projector pre-training, `--train_lm_layers`), and group-by-length
batches from the lengths the preflight measured. The callbacks every run uses are in `callbacks.py`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from transformers import Trainer

from vlmkit.io import InputError
from vlmkit.training.checkpoint import TRAINED_FILE, folder_kind, load_weights, read_trained, save_trained
from vlmkit.training.lora import is_projector_param

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs" / "deepspeed"


# ------------------------------------------------------------------------------------------------ DeepSpeed
def resolve_deepspeed_config(value: str | None) -> Path | None:
    """`zero2`/`zero3`/`zero3_offload` name a shipped config; anything else is a path to a JSON config."""
    if not value:
        return None
    path = Path(value)
    if not path.suffix and not path.exists():
        path = CONFIG_DIR / f"{value}.json"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))
        raise InputError(f"--deepspeed {value}: config not found (shipped: {shipped}, or a path to a JSON file)")
    return path


def load_deepspeed_config(path: Path) -> dict[str, Any]:
    from vlmkit.io import read_config_json

    config = read_config_json(path, "DeepSpeed config")  # no key twice, no NaN (vlmkit.io)
    if not isinstance(config, dict):
        raise InputError(f"{path}: a DeepSpeed config is a JSON object")
    return config


def offload_devices(config: dict[str, Any]) -> list[str]:
    zero = config.get("zero_optimization", {}) or {}
    return [f"{key}={zero[key].get('device')}" for key in ("offload_optimizer", "offload_param")
            if isinstance(zero.get(key), dict) and zero[key].get("device", "none") != "none"]


def check_combination(*, deepspeed: dict[str, Any] | None, deepspeed_path: Path | None, cuda: bool, bf16: bool,
                      fp16: bool, projector_lr: float | None, bf16_supported: bool = True) -> None:
    """Reject option combinations that cannot work, before any model is loaded."""
    if bf16 and fp16:
        raise InputError("--bf16 and --fp16 exclude each other")
    if fp16 and not cuda:
        raise InputError("--fp16 needs a CUDA GPU (float16 mixed precision is GPU-only); use --bf16 or neither")
    if bf16 and cuda and not bf16_supported:
        raise InputError("--bf16: this GPU has no bfloat16 support (pre-Ampere); use --fp16")
    if deepspeed is None:
        return
    stage = (deepspeed.get("zero_optimization") or {}).get("stage", 0)
    offload = offload_devices(deepspeed)
    if offload and not cuda:
        raise InputError(f"{deepspeed_path}: offloads ({', '.join(offload)}) to free GPU memory; without a CUDA GPU "
                         "there is nothing to offload from: use zero3 (or zero2) on CPU")
    if offload and stage < 2:
        raise InputError(f"{deepspeed_path}: offloading needs ZeRO stage 2 or 3, the config has stage {stage}")
    if projector_lr is not None and "optimizer" in deepspeed:
        raise InputError(f"{deepspeed_path}: has an 'optimizer' section, so DeepSpeed builds one optimizer with one "
                         "learning rate and --projector_lr would be ignored; remove the section (the Trainer's "
                         "AdamW is used) or drop --projector_lr")
    for key, flag in (("bf16", bf16), ("fp16", fp16)):
        enabled = (deepspeed.get(key) or {}).get("enabled", "auto")
        if enabled is True and not flag:
            raise InputError(f"{deepspeed_path}: enables {key} but --{key} is not given; set it to \"auto\" or "
                             f"pass --{key}")


# ----------------------------------------------------------------------------------------------- the trainer
class VLMTrainer(Trainer):
    """`Trainer` with a separate projector learning rate, weights-only checkpoints without LoRA (`weights_only`)
    and group-by-length batches from known `lengths`."""

    def __init__(self, *args: Any, projector_lr: float | None = None, weights_only: bool = False,
                 lengths: list[int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.projector_lr = projector_lr
        self.weights_only = weights_only
        self.lengths = lengths
        self.trained_names = {n for n, p in self.model.named_parameters() if p.requires_grad}

    # The projector starts from random weights while LoRA adapts a pretrained LM, so LLaVA-style training gives
    # the projector a larger learning rate: one parameter group per (projector?, weight decay?) pair.
    def create_optimizer(self, model=None):
        offload = self.is_deepspeed_enabled and bool(offload_devices(self.args.hf_deepspeed_config.config))
        if self.optimizer is not None or (self.projector_lr is None and not offload):
            return super().create_optimizer(model)
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[bool, bool], list] = {}
        for name, p in opt_model.named_parameters():
            if p.requires_grad:
                groups.setdefault((is_projector_param(name), name in decay), []).append(p)
        param_groups = []
        for (projector, decays), params in sorted(groups.items()):
            group: dict[str, Any] = {"params": params, "weight_decay": self.args.weight_decay if decays else 0.0}
            if projector and self.projector_lr is not None:
                group["lr"] = self.projector_lr
            param_groups.append(group)
        optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
        if offload:
            # ZeRO-Offload keeps optimizer states on the CPU and accepts only DeepSpeed's CPU Adam (which is what
            # DeepSpeed would build from an "optimizer" config section, but that would drop our param groups).
            from deepspeed.ops.adam import DeepSpeedCPUAdam

            optimizer_cls = DeepSpeedCPUAdam
            optimizer_kwargs = {"lr": self.args.learning_rate, "betas": (self.args.adam_beta1, self.args.adam_beta2),
                                "eps": self.args.adam_epsilon, "adamw_mode": True}
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer

    # transformers takes group-by-length lengths only from a `datasets.Dataset` column; for any other dataset it
    # encodes every sample (images included) to measure `input_ids`, and would measure the batch axis of our
    # [1, L] tensors. The preflight has measured every sample already, so the sampler gets those lengths.
    def _get_train_sampler(self, train_dataset=None):
        if self.args.train_sampling_strategy == "group_by_length" and self.lengths is not None:
            from transformers.trainer_pt_utils import LengthGroupedSampler

            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=self.lengths)
        return super()._get_train_sampler(train_dataset)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        if self.weights_only and self.is_deepspeed_enabled:
            # No LoRA: gather just the parameters trained in full, not the whole (frozen) model.
            output_dir = output_dir or self.args.output_dir
            if (self.deepspeed.config.get("zero_optimization", {}) or {}).get("stage") == 3:
                # DeepSpeed's own gather of partitioned weights (what the HF Trainer calls for ZeRO-3 saves too);
                # it is the only one that can leave the frozen base out.
                state_dict = self.deepspeed._zero3_consolidated_16bit_state_dict(exclude_frozen_parameters=True)
            else:
                state_dict = self.accelerator.get_state_dict(self.deepspeed)
            self._save(output_dir, state_dict=state_dict)
            return
        super().save_model(output_dir, _internal_call)

    # `_save` and `_load_from_checkpoint` are where the Trainer writes and reads the model of every checkpoint (and
    # of the final save); it has no public hook for saving only part of a model that is not a peft adapter, so
    # without LoRA these two are overridden to write/read `trained_weights.safetensors` instead of the full model.
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        if not self.weights_only:
            return super()._save(output_dir, state_dict)
        output_dir = output_dir or self.args.output_dir
        if not self.args.should_save:
            return
        if state_dict is None:
            state_dict = self.accelerator.unwrap_model(self.model).state_dict()
        save_trained(state_dict, self.trained_names, output_dir)
        if self.processing_class is not None:
            self.processing_class.save_pretrained(output_dir)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        if not self.weights_only:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        if folder_kind(resume_from_checkpoint) != "weights":
            raise InputError(f"{resume_from_checkpoint}: no {TRAINED_FILE} (not a checkpoint of a run without LoRA)")
        load_weights(model or self.model, read_trained(resume_from_checkpoint), resume_from_checkpoint)
