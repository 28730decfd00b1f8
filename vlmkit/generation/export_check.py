"""Is a checkpoint ready for a serving engine, and does an adapter touch its base at all? Checked from files only.

Two traps of serving fine-tunes with engines. vLLM rejects LoRA adapters that carry `modules_to_save`
(LLaMA-Factory #9545), and vlmkit's LLaVA LoRA keeps its projector there: such an adapter must be merged
(merge_lora_weights.py), and the merged folder must hold plain weights under an architecture vLLM implements, with no
peft leftovers (`modules_to_save`, `original_module`, `lora_A/B`, `base_model.model.` prefixes) and no custom model
code (`auto_map` is accepted only for an architecture vLLM implements itself, such as InternVL's original format).
And an adapter whose target modules match no module of the base is served as the base model without a word
(vLLM #55193): `unmatched_adapter_problem` matches the adapter's `target_modules` against the base's module names
with peft's own matcher (`check_target_module_exists`), the base built on the `meta` device from its config (no
weights, no memory), so the refusal comes before any engine or merge starts.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vlmkit.io import InputError, read_json

log = logging.getLogger(__name__)

# The vision-language architectures of vLLM's model registry (vllm/model_executor/models/registry.py,
# _MULTIMODAL_MODELS, v0.11) that vlmkit's model families and their neighbours use. A name missing here may still be
# implemented by a newer vLLM: it is a warning, never a refusal.
VLLM_ARCHITECTURES = frozenset({
    "Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration", "Qwen3VLForConditionalGeneration",
    "Qwen3VLMoeForConditionalGeneration", "LlavaForConditionalGeneration", "LlavaNextForConditionalGeneration",
    "LlavaOnevisionForConditionalGeneration", "InternVLChatModel", "InternVLForConditionalGeneration",
    "Idefics3ForConditionalGeneration", "SmolVLMForConditionalGeneration", "Gemma3ForConditionalGeneration",
    "MllamaForConditionalGeneration", "PaliGemmaForConditionalGeneration", "Blip2ForConditionalGeneration",
    "Phi3VForCausalLM", "MiniCPMV", "Mistral3ForConditionalGeneration", "PixtralForConditionalGeneration",
    "Glm4vForConditionalGeneration", "Llama4ForConditionalGeneration", "AyaVisionForConditionalGeneration",
})
# Weight names that only peft wrappers produce: a "merged" folder holding them was not merged.
PEFT_LEFTOVERS = ("modules_to_save", "original_module", ".lora_A", ".lora_B", "lora_embedding_", "base_model.model.")


def weight_names(model_dir: Path) -> list[str]:
    """Tensor names of every `.safetensors` file of a folder, read from the headers only."""
    from safetensors import safe_open

    names: list[str] = []
    for path in sorted(model_dir.glob("*.safetensors")):
        try:
            with safe_open(str(path), "pt") as handle:
                names.extend(handle.keys())
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file is a problem of that folder
            raise InputError(f"{path}: cannot read the weights ({type(exc).__name__}: {exc})") from None
    return names


def engine_layout_problems(model_dir: str | Path) -> tuple[list[str], list[str]]:
    """(problems, warnings) for loading `model_dir` in vLLM's own model classes, without custom code."""
    model_dir = Path(model_dir)
    config = read_json(model_dir / "config.json")
    problems: list[str] = []
    warnings: list[str] = []
    architectures = config.get("architectures") or []
    if not architectures:
        problems.append("config.json names no architectures (vLLM picks its model class from them)")
    for name in architectures:
        if name not in VLLM_ARCHITECTURES:
            warnings.append(f"architecture {name} is not among the vision-language models of vLLM 0.11's registry")
    if config.get("auto_map"):
        if architectures and all(name in VLLM_ARCHITECTURES for name in architectures):
            # e.g. InternVL's original format: vLLM's own model class, only config/tokenizer code from the folder
            warnings.append(f"config.json has auto_map: vLLM runs its own {architectures[0]} but reads the config "
                            f"with trust_remote_code")
        else:
            problems.append(f"config.json has auto_map ({', '.join(sorted(config['auto_map']))}): the model needs "
                            f"custom code (trust_remote_code) instead of vLLM's own classes")
    names = weight_names(model_dir)
    if not names:
        problems.append("no .safetensors weights (vLLM loads safetensors; merge_lora_weights.py writes them)")
    leftovers = [n for n in names if any(p in n for p in PEFT_LEFTOVERS)]
    if leftovers:
        problems.append(f"{len(leftovers)} weights are peft leftovers, not merged weights (e.g. {leftovers[0]}); "
                        f"merge the adapter with merge_lora_weights.py")
    return problems, warnings


def check_engine_layout(model_dir: str | Path) -> None:
    """Refuse a folder vLLM cannot load as-is (one line naming the first problem); log the warnings."""
    problems, warnings = engine_layout_problems(model_dir)
    for warning in warnings:
        log.warning("%s: %s", model_dir, warning)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InputError(f"{model_dir}: not loadable by vLLM as it is: {problems[0]}{more}")


def log_engine_layout(model_dir: str | Path) -> bool:
    """After a merge: say whether the folder is ready for vLLM (the merge itself stands either way)."""
    problems, warnings = engine_layout_problems(model_dir)
    for line in problems + warnings:
        log.warning("%s: for vLLM: %s", model_dir, line)
    if not problems:
        log.info("%s: layout loadable by vLLM's own model classes (%s, no peft leftovers, no custom code)",
                 model_dir, ", ".join(read_json(Path(model_dir) / "config.json").get("architectures") or []))
    return not problems


def base_module_names(base_dir: Path) -> list[str]:
    """Module names of the base model, built on the meta device from its config (no weights read)."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    try:
        config = AutoConfig.from_pretrained(str(base_dir))
        with torch.device("meta"):
            model = AutoModelForImageTextToText.from_config(config)
    except (ValueError, OSError, KeyError) as exc:
        raise InputError(f"{base_dir}: not an image-text-to-text checkpoint transformers can build "
                         f"({(str(exc).splitlines() or [''])[0][:200]})") from None
    return [name for name, _ in model.named_modules() if name]


def unmatched_adapter_problem(base_dir: str | Path, adapter_dir: str | Path) -> str | None:
    """None when the adapter's target modules match at least one module of the base; else why not."""
    from peft import PeftConfig
    from peft.tuners.tuners_utils import check_target_module_exists

    adapter_dir, base_dir = Path(adapter_dir), Path(base_dir)
    try:
        config = PeftConfig.from_pretrained(str(adapter_dir))
    except Exception as exc:  # noqa: BLE001 - peft raises ValueError/TypeError/KeyError for foreign configs
        raise InputError(f"{adapter_dir / 'adapter_config.json'}: not a peft config ({type(exc).__name__}: "
                         f"{(str(exc).splitlines() or [''])[0][:200]})") from None
    targets = getattr(config, "target_modules", None)
    if targets is None or targets == "all-linear":
        return None  # peft resolves these against the model itself; nothing to match by name
    names = base_module_names(base_dir)
    if any(bool(check_target_module_exists(config, name)) for name in names):
        return None
    shown = targets if isinstance(targets, str) else ", ".join(sorted(targets))
    return (f"target_modules ({shown}) match none of the {len(names)} modules of {base_dir}: an engine would "
            f"serve the base model unchanged")


def refuse_unmatched_adapter(base_dir: str | Path, adapter_dir: str | Path) -> None:
    problem = unmatched_adapter_problem(base_dir, adapter_dir)
    if problem:
        raise InputError(f"{adapter_dir}: {problem}")
