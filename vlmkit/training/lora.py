"""Which parameters train: LoRA on the language model, or parts trained in full (the training scope).

Default: LoRA on the language model's attention and MLP projections, the LLaVA projector in full, the vision tower
frozen. `target_modules="all-linear"` would also put LoRA on the vision tower (CLIP/SigLIP attention and MLP,
Qwen2.5-VL's vision blocks), so the target is a regex anchored on the language model; peft matches a string target
with `re.fullmatch` against each module's dotted name (`model.language_model.layers.0.self_attn.q_proj` in
transformers' LLaVA and Qwen2.5-VL alike). The projection names cover both layouts decoder LMs use: separate
(`q/k/v/o_proj`, `gate/up/down_proj`: Qwen, Llama, Gemma) and fused (`qkv_proj`, `gate_up_proj`: Phi-3), so each
architecture gets the names it has; a linear layer of the decoder that no target covers is warned about.

Scope flags train parts in full instead: the last N decoder layers (`--train_lm_layers`, no LoRA then), the vision
tower (`--unfreeze_vision`), Qwen2.5-VL's patch merger (`--unfreeze_merger`). With LoRA they are peft
`modules_to_save` (saved in the adapter, replaced by `merge_and_unload`); without LoRA their weights are saved by
name (`trained_weights.safetensors`) and copied into the base by the merge.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from vlmkit.io import InputError

log = logging.getLogger(__name__)

LM_LINEAR_LAYERS = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "gate_proj", "up_proj", "down_proj",
                    "gate_up_proj")
LM_ANCHOR = r".*\blanguage_model\.(?:.*\.)?"
DEFAULT_LORA_TARGET = LM_ANCHOR + "(?:" + "|".join(LM_LINEAR_LAYERS) + ")"
PROJECTOR = "multi_modal_projector"  # LLaVA's projector
VISION_PARTS = ("vision_tower", "visual")  # LLaVA's and Qwen2.5-VL's vision encoders (Qwen's merger included)
MERGER = "merger"  # Qwen2.5-VL's patch merger (model.visual.merger): the vision-to-LM connector
NAME_LIST = re.compile(r"[\w.]+(?:\s*,\s*[\w.]+)*")


def is_vision_module(name: str) -> bool:
    return any(part in VISION_PARTS for part in name.split("."))


def is_projector_param(name: str) -> bool:
    """LLaVA's projector, or Qwen2.5-VL's merger (its vision-to-LM connector): what --projector_lr applies to."""
    parts = name.split(".")
    return PROJECTOR in parts or (MERGER in parts and is_vision_module(name))


def _numel(p) -> int:
    return getattr(p, "ds_numel", p.numel())  # ZeRO-3 partitions parameters: numel() is 0 there


def decoder_layers(model) -> tuple[str, int]:
    """(dotted name, count) of the language model's decoder layer list (`...language_model.layers`)."""
    import torch

    for name, module in model.named_modules():
        if name.split(".")[-2:] == ["language_model", "layers"] and isinstance(module, torch.nn.ModuleList):
            return name, len(module)
    raise InputError(f"{type(model).__name__}: no language_model.layers found (not a LLaVA / Qwen2.5-VL model?)")


def lm_linear_layers(model) -> list[str]:
    """Every linear layer inside the language model's decoder layers."""
    import torch

    prefix = decoder_layers(model)[0] + "."
    return [n for n, m in model.named_modules() if n.startswith(prefix) and isinstance(m, torch.nn.Linear)]


def resolve_lora_target(target: str | None) -> str:
    """The regex peft gets: the default, a comma list of layer names (anchored on the LM), or the user's regex."""
    if not target:
        return DEFAULT_LORA_TARGET
    if NAME_LIST.fullmatch(target.strip()):
        names = [re.escape(n.strip()) for n in target.split(",")]
        return LM_ANCHOR + "(?:" + "|".join(names) + ")"
    return target


def lora_targets(model, target: str | None) -> list[str]:
    """Module names the target selects (what peft will wrap), checked before peft sees them.

    A comma list of names (`q_proj,v_proj`) warns about each name that matches no layer (e.g. `q_proj` on Phi-3,
    whose attention is one fused `qkv_proj`); any target warns about decoder linear layers left without LoRA.
    """
    import torch

    regex = resolve_lora_target(target)
    try:
        pattern = re.compile(regex)
    except re.error as exc:
        raise InputError(f"--lora_target {target!r}: invalid regex ({exc})") from None
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and pattern.fullmatch(n)]
    if not names:
        raise InputError(f"--lora_target {target or regex!r} matches no linear layer of the model")
    vision = [n for n in names if is_vision_module(n)]
    if vision:
        raise InputError(f"--lora_target {target!r} matches vision modules (e.g. {vision[0]}); the vision tower "
                         "stays frozen: anchor the regex on language_model")
    decoder = lm_linear_layers(model)
    leaves = sorted({n.rsplit(".", 1)[-1] for n in decoder})
    if target and NAME_LIST.fullmatch(target.strip()):
        for entry in (e.strip() for e in target.split(",")):
            if not any(n == entry or n.endswith("." + entry) for n in names):
                log.warning("--lora_target: %s matches no linear layer of this language model (its layers: %s)",
                            entry, ", ".join(leaves))
    uncovered = sorted({n.rsplit(".", 1)[-1] for n in set(decoder) - set(names)})
    if uncovered:
        log.warning("LoRA leaves these linear layers of the language model without an adapter: %s",
                    ", ".join(uncovered))
    return names


def freeze(model) -> None:
    for p in model.parameters():
        p.requires_grad_(False)


@dataclass(frozen=True)
class Scope:
    """What trains: LoRA on the LM, and which parts in full."""

    lora: bool
    projector: bool = False
    lm_layers: int = 0
    vision: bool = False
    merger: bool = False


def full_modules(model, scope: Scope) -> list[str]:
    """Dotted names of the modules trained in full (of the plain, not peft-wrapped, model)."""
    found: dict[str, str] = {}
    for name, _ in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if scope.projector and leaf == PROJECTOR:
            found.setdefault("projector", name)
        if scope.vision and leaf in VISION_PARTS and not is_vision_module(name.rsplit(".", 1)[0]):
            found.setdefault("vision", name)
        if scope.merger and leaf == MERGER and is_vision_module(name):
            found.setdefault("merger", name)
    for part, flag in (("projector", "the LLaVA projector"), ("vision", "--unfreeze_vision"),
                       ("merger", "--unfreeze_merger")):
        if getattr(scope, part) and part not in found:
            raise InputError(f"{flag}: {type(model).__name__} has no {part} module"
                             + (" (Qwen2.5-VL's model.visual.merger)" if part == "merger" else ""))
    modules = [found[p] for p in ("projector", "vision", "merger") if p in found]
    if scope.vision and "merger" in found and found["merger"].startswith(found.get("vision", "\0") + "."):
        modules.remove(found["merger"])  # inside the vision tower, which trains anyway
    if scope.lm_layers:
        layers, count = decoder_layers(model)
        if scope.lm_layers > count:
            raise InputError(f"--train_lm_layers {scope.lm_layers}: the language model has {count} layers")
        modules += [f"{layers}.{i}" for i in range(count - scope.lm_layers, count)]
    return modules


def unfreeze(model, modules: list[str]) -> list[str]:
    """Make every parameter of `modules` trainable; returns the parameter names."""
    prefixes = tuple(m + "." for m in modules)
    names = []
    for name, p in model.named_parameters():
        if name.startswith(prefixes):
            p.requires_grad_(True)
            names.append(name)
    return names


def apply_lora(model, *, target: str | None, r: int, alpha: int, dropout: float, modules_to_save: list[str],
               autocast_adapter_dtype: bool = True):
    """Wrap `model` with peft LoRA on the LM; `modules_to_save` (leaf names) train in full inside the adapter.

    `autocast_adapter_dtype=False` keeps LoRA weights in the model's dtype: DeepSpeed with bf16 holds its own fp32
    master copy and fails on float32 parameters inside a bf16 model.
    """
    from peft import LoraConfig, get_peft_model

    targeted = lora_targets(model, target)
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=resolve_lora_target(target),
        modules_to_save=modules_to_save or None,
        bias="none",
    )
    peft_model = get_peft_model(model, config, autocast_adapter_dtype=autocast_adapter_dtype)
    wrapped = [n for n, _ in peft_model.named_modules() if n.endswith(".lora_A")]
    vision = [n for n in wrapped if is_vision_module(n)]
    if vision:  # guard against a peft change in matching rules
        raise RuntimeError(f"LoRA was applied to vision modules: {vision[:3]}")
    leaves = sorted({n.rsplit(".", 1)[-1] for n in targeted})
    log.info("LoRA r=%d on %d linear layers of the language model (%s)", r, len(targeted), ", ".join(leaves))
    return peft_model


def part_of(name: str) -> str:
    """The summary bucket of a trainable parameter name."""
    if "lora_" in name:
        return "lora"
    if is_projector_param(name):
        return "projector"
    if is_vision_module(name):
        return "vision"
    if ".language_model." in f".{name}":
        return "lm"
    return "other"


def trainable_summary(model) -> dict[str, Any]:
    """Trainable parameter counts by part (LoRA, projector, vision incl. merger, full LM layers), for the log and
    the run summary."""
    parts = {"lora": 0, "projector": 0, "vision": 0, "lm": 0, "other": 0}
    total = 0
    for name, p in model.named_parameters():
        n = _numel(p)
        total += n
        if p.requires_grad:
            parts[part_of(name)] += n
    trainable = sum(parts.values())
    return {"trainable": trainable, "total": total, **parts}


def describe(summary: dict[str, Any]) -> str:
    parts = ", ".join(f"{k} {summary[k]:,}" for k in ("lora", "projector", "vision", "lm", "other") if summary[k])
    share = 100.0 * summary["trainable"] / max(summary["total"], 1)
    return f"{summary['trainable']:,} of {summary['total']:,} ({share:.2f}%; {parts or 'none'})"
