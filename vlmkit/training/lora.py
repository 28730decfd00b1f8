"""Which parameters train: LoRA on the language model only, the projector in full, the vision tower frozen.

`target_modules="all-linear"` would also put LoRA on the vision tower (CLIP/SigLIP attention and MLP, Qwen2.5-VL's
vision blocks), so the target is a regex anchored on the language model. peft matches a string target with
`re.fullmatch` against each module's dotted name (`model.language_model.layers.0.self_attn.q_proj` in
transformers' LLaVA and Qwen2.5-VL alike).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from vlmkit.io import InputError

log = logging.getLogger(__name__)

LM_LINEAR_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_LORA_TARGET = r".*\blanguage_model\.(?:.*\.)?(?:" + "|".join(LM_LINEAR_LAYERS) + r")"
PROJECTOR = "multi_modal_projector"  # LLaVA's projector; trained in full (peft modules_to_save)
VISION_PARTS = ("vision_tower", "visual")  # LLaVA's and Qwen2.5-VL's vision encoders (Qwen's merger included)


def is_vision_module(name: str) -> bool:
    return any(part in VISION_PARTS for part in name.split("."))


def is_projector_param(name: str) -> bool:
    return PROJECTOR in name.split(".")


def lora_targets(model, target: str) -> list[str]:
    """Module names the regex selects (what peft will wrap), checked before peft sees them."""
    import torch

    try:
        pattern = re.compile(target)
    except re.error as exc:
        raise InputError(f"--lora_target {target!r}: invalid regex ({exc})") from None
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and pattern.fullmatch(n)]
    if not names:
        raise InputError(f"--lora_target {target!r} matches no linear layer of the model")
    vision = [n for n in names if is_vision_module(n)]
    if vision:
        raise InputError(f"--lora_target {target!r} matches vision modules (e.g. {vision[0]}); the vision tower "
                         "stays frozen: anchor the regex on language_model")
    return names


def freeze(model) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


def unfreeze_projector(model) -> int:
    """Make the projector trainable (pre-training stage, no peft); returns its parameter count."""
    count = 0
    for name, p in model.named_parameters():
        if is_projector_param(name):
            p.requires_grad_(True)
            count += getattr(p, "ds_numel", p.numel())  # ZeRO-3 partitions parameters: numel() is 0 here
    if not count:
        raise InputError(f"the model has no {PROJECTOR}; projector training needs a LLaVA checkpoint")
    return count


def apply_lora(model, *, target: str, r: int, alpha: int, dropout: float, train_projector: bool,
               autocast_adapter_dtype: bool = True):
    """Wrap `model` with peft LoRA on the LM (and the projector as `modules_to_save` when it trains).

    `autocast_adapter_dtype=False` keeps LoRA weights in the model's dtype: DeepSpeed with bf16 holds its own fp32
    master copy and fails on float32 parameters inside a bf16 model.
    """
    from peft import LoraConfig, get_peft_model

    lora_targets(model, target)
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target,
        modules_to_save=[PROJECTOR] if train_projector else None,
        bias="none",
    )
    peft_model = get_peft_model(model, config, autocast_adapter_dtype=autocast_adapter_dtype)
    wrapped = [n for n, _ in peft_model.named_modules() if n.endswith(".lora_A")]
    vision = [n for n in wrapped if is_vision_module(n)]
    if vision:  # guard against a peft change in matching rules
        raise RuntimeError(f"LoRA was applied to vision modules: {vision[:3]}")
    return peft_model


def trainable_summary(model) -> dict[str, Any]:
    """Trainable parameter counts by part, for the log and the run summary."""
    parts = {"lora": 0, "projector": 0, "vision": 0, "other": 0}
    total = 0
    for name, p in model.named_parameters():
        n = getattr(p, "ds_numel", p.numel())  # ZeRO-3 partitions parameters
        total += n
        if not p.requires_grad:
            continue
        if "lora_" in name:
            parts["lora"] += n
        elif is_projector_param(name):
            parts["projector"] += n
        elif is_vision_module(name):
            parts["vision"] += n
        else:
            parts["other"] += n
    trainable = sum(parts.values())
    return {"trainable": trainable, "total": total, **parts}
