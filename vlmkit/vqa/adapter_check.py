"""Does a LoRA adapter fit a base model? Checked before the weights are loaded.

peft finds out only after the base model is in memory (minutes for a 7B model, per GPU process), and a LoRA whose
matrices happen to fit is applied silently. Here the base is instantiated from its config on the `meta` device (no
weights, no memory), and every tensor of `adapter_model.safetensors` (read from the file header only) must name a
module of the base with matching shapes: lora_A is (r, in_features), lora_B (out_features, r), a saved module
(`modules_to_save`) has the base parameter's shape. An adapter whose peft config names another base class (e.g.
an InternVL adapter on a Qwen2.5-VL) is refused too.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vlmkit.io import InputError, read_json

log = logging.getLogger(__name__)

PREFIX = "base_model.model."


def _base_shapes(model_path: Path) -> tuple[dict[str, tuple[int, ...]], str]:
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    try:
        config = AutoConfig.from_pretrained(str(model_path))
        with torch.device("meta"):
            model = AutoModelForImageTextToText.from_config(config)
    except (ValueError, OSError) as exc:
        raise InputError(f"{model_path}: not an image-text-to-text checkpoint transformers can load "
                         f"({str(exc).splitlines()[0]})") from None
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters(remove_duplicate=False)}
    return shapes, type(model).__name__


def _adapter_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    try:
        with safe_open(str(weights), "pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file is the user's input problem
        raise InputError(f"{weights}: cannot read the adapter weights ({type(exc).__name__}: {exc})") from None


def _problem(key: str, shape: tuple[int, ...], base: dict[str, tuple[int, ...]], fan_in_fan_out: bool) -> str | None:
    """None when the tensor fits; "missing" when the base has no such module; else the mismatch."""
    name = key.removeprefix(PREFIX)
    for part in (".lora_A.", ".lora_B."):
        if part in name:
            module = name.split(part)[0]
            weight = base.get(module + ".weight")
            if weight is None:
                return "missing"
            out_features, in_features = (weight[1], weight[0]) if fan_in_fan_out else (weight[0], weight[1])
            if part == ".lora_A." and shape[1] != in_features:
                return f"{key} has {shape[1]} input features, the base's {module} {in_features}"
            if part == ".lora_B." and shape[0] != out_features:
                return f"{key} has {shape[0]} output features, the base's {module} {out_features}"
            return None
    if ".lora_" in name:  # lora_embedding_A/B, magnitude vectors, ...: the module must exist
        return None if any(k.startswith(name.split(".lora_")[0] + ".") for k in base) else "missing"
    if name not in base:
        return "missing"
    return None if base[name] == shape else f"{key} has shape {list(shape)}, the base's {name} {list(base[name])}"


def check_adapter_matches_base(model_path: str | Path, adapter_path: str | Path) -> None:
    model_path, adapter_path = Path(model_path), Path(adapter_path)
    config = read_json(adapter_path / "adapter_config.json")
    weights = adapter_path / "adapter_model.safetensors"
    if not weights.is_file():
        log.warning("%s: no adapter_model.safetensors; the adapter is checked against the base only when loaded",
                    adapter_path)
        return
    base, base_class = _base_shapes(model_path)
    trained_on = config.get("base_model_name_or_path")
    recorded_class = (config.get("auto_mapping") or {}).get("base_model_class")
    if recorded_class and recorded_class != base_class:
        raise InputError(f"{adapter_path}: adapter for a {recorded_class} (trained on {trained_on}), but "
                         f"{model_path} is a {base_class}; pass the base it was trained on with --model_path")
    tensors = _adapter_shapes(weights)
    problems = {key: _problem(key, shape, base, bool(config.get("fan_in_fan_out"))) for key, shape in tensors.items()}
    missing = [k for k, p in problems.items() if p == "missing"]
    mismatched = [p for p in problems.values() if p not in (None, "missing")]
    if mismatched or len(missing) == len(tensors):
        detail = mismatched[0] if mismatched else f"none of its {len(tensors)} tensors names a module of the base " \
                                                  f"(e.g. {missing[0].removeprefix(PREFIX)})"
        raise InputError(f"{adapter_path}: does not fit the base model {model_path}: {detail}; it was trained on "
                         f"{trained_on}")
    if missing:
        log.warning("%s: %d of %d adapter tensors name no module of %s (e.g. %s); peft will ignore them",
                    adapter_path, len(missing), len(tensors), model_path, missing[0])
