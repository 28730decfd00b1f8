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
    """Name -> shape of every tensor of these safetensors files, from their JSON headers (8 bytes of length, then
    the header: read directly, since safetensors' numpy reader refuses bfloat16 files and its torch one would
    import torch for a check that needs none)."""
    import json
    import struct

    shapes: dict[str, tuple[int, ...]] = {}
    for path in files:
        with path.open("rb") as handle:
            (n,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(n))
        for key, entry in header.items():
            if key != "__metadata__":
                shapes[key] = tuple(entry["shape"])
    return shapes


def model_weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = read_json(index).get("weight_map") or {}
        return [folder / name for name in sorted(set(weight_map.values()))]
    return sorted(folder.glob("*.safetensors"))


def _implied_shapes(adapter_shapes: dict[str, tuple[int, ...]]) -> list[tuple[str, str, int | None, tuple]]:
    """(base weight name, what, axis, expected) for the adapter's tensors: LoRA A fixes the input size (axis 1),
    LoRA B the output size (axis 0); a tensor trained in full its whole shape (axis None)."""
    out = []
    for key, shape in adapter_shapes.items():
        name = key.removeprefix(PEFT_PREFIX)
        for part, axis in ((".lora_A.weight", 1), (".lora_B.weight", 0)):
            if name.endswith(part) and len(shape) == 2:
                out.append((name.removesuffix(part) + ".weight", part[1:7], axis, (shape[axis],)))
                break
        else:
            if "lora_" not in name:
                out.append((name, "weight", None, shape))
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
        implied = _implied_shapes(tensor_shapes(files))
    except Exception:  # noqa: BLE001 - unreadable headers are reported by the file checks that run first
        return None
    for name, what, axis, expected in implied:
        have = base_shapes.get(name)
        if have is None:
            continue  # another naming (converted on load): only the model type above can tell
        if axis is None:
            if have != expected:
                return (f"{name}: {list(expected)} in the output, {list(have)} in the base (another architecture or "
                        "size)")
        elif len(have) != 2 or have[axis] != expected[0]:
            side = "input" if what == "lora_A" else "output"
            return (f"{name}: the LoRA {side} size is {expected[0]}, the base's weight is {list(have)} (another "
                    "architecture or size)")
    return None
