"""Does a train.py output (LoRA adapter or weights trained in full) fit a base model? Checked from JSON and
safetensors headers only, in milliseconds, before either is loaded: a `--base_model` of another architecture would
otherwise fail deep inside peft or transformers (`ValueError: not enough values to unpack`).

Two checks: the base's `config.json` `model_type` against the architecture the output was trained on (train.py
records `arch`, which is the model type, in `vlmkit_training.json`), and the shape of every adapter tensor whose
module exists under the same name in the base's weights (LoRA A's input and B's output size; a tensor trained in
full: its whole shape). A checkpoint whose names differ (an older naming, converted on load by transformers) is
only checked by its model type.
"""

from __future__ import annotations

import os
from pathlib import Path

from vlmkit.io import read_json

PEFT_PREFIX = "base_model.model."


def tensor_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor of these safetensors files (headers only)."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        with safe_open(str(path), "np") as handle:
            for key in handle.keys():
                shapes[key] = tuple(handle.get_slice(key).get_shape())
    return shapes


def model_weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = read_json(index).get("weight_map") or {}
        return [folder / name for name in sorted(set(weight_map.values()))]
    return sorted(folder.glob("*.safetensors"))


def _module_shapes(adapter_shapes: dict[str, tuple[int, ...]]) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Base weight name -> (what, the shape the adapter implies) for the adapter's tensors."""
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    for key, shape in adapter_shapes.items():
        name = key.removeprefix(PEFT_PREFIX)
        for part, axis in ((".lora_A.weight", 1), (".lora_B.weight", 0)):
            if name.endswith(part) and len(shape) == 2:
                out[name.removesuffix(part) + ".weight"] = (part.strip(".").split(".")[0], (axis, shape[axis]))
                break
        else:
            if "lora_" not in name:
                out[name] = ("weight", shape)
    return out


def base_mismatch(output: str | os.PathLike, base: str | os.PathLike) -> str | None:
    """Why the train.py output `output` cannot belong to the base model folder `base`, or None."""
    output, base = Path(output), Path(base)
    info_path = output / "vlmkit_training.json"
    info = read_json(info_path) if info_path.is_file() else {}
    base_config = read_json(base / "config.json")
    model_type = base_config.get("model_type") if isinstance(base_config, dict) else None
    arch = info.get("arch") if isinstance(info, dict) else None
    if arch and model_type and arch != model_type:
        return f"it was trained on a {arch} model, the base is a {model_type} checkpoint (another architecture)"
    files = [p for p in (output / "adapter_model.safetensors", output / "trained_weights.safetensors",
                         output / "projector.safetensors") if p.is_file()]
    if not files:
        return None
    try:
        base_shapes = tensor_shapes(model_weight_files(base))
        implied = _module_shapes(tensor_shapes(files))
    except Exception:  # noqa: BLE001 - unreadable headers are reported by the file checks that run first
        return None
    for name, (what, shape) in implied.items():
        have = base_shapes.get(name)
        if have is None:
            continue
        if what == "weight":
            if have != shape:
                return f"{name}: {list(shape)} in the output, {list(have)} in the base (another architecture or size)"
        else:
            axis, size = shape
            if len(have) != 2 or have[axis] != size:
                side = "output" if what == "lora_B" else "input"
                return (f"{name}: the LoRA {side} size is {size}, the base's weight is {list(have)} (another "
                        "architecture or size)")
    return None
