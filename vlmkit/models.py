"""Local model paths, devices and dtypes.

Weights are never downloaded at run time: every model comes from a folder the user names. A missing folder is an
`InputError` that says which flag to pass — and, for one of the scripts' default folders (./models/...), the
`python download_models.py --model <name>` command that fetches it — never a hub lookup. A folder whose files cannot
load (a malformed config.json or adapter_config.json, no weights, a truncated safetensors file) is found by
`check_model_files` / `check_adapter_files` in milliseconds, before the load that would fail with a traceback minutes
later.
"""

from __future__ import annotations

import os
from pathlib import Path

from vlmkit.io import InputError, read_json


def require_model_dir(path: str | os.PathLike, what: str, flag: str = "--model_path") -> Path:
    """Return `path` if it is a local model folder (it has a config.json), else raise `InputError`."""
    from vlmkit.hub.registry import download_hint

    p = Path(path).expanduser()
    hint = download_hint(p)
    todo = f"fetch it with `{hint}`, or pass a local folder with {flag}" if hint else f"pass a local folder with {flag}"
    if not p.is_dir():
        raise InputError(f"{p}: {what} not found; weights are never downloaded at run time: {todo}")
    if not (p / "config.json").is_file() and not (p / "modules.json").is_file():
        raise InputError(f"{p}: not a model folder for {what} (no config.json): {todo}")
    return p


# Weight files a transformers checkpoint may hold at its top level (not training_args.bin, optimizer.pt, ...).
WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin", "tf_model*.h5", "flax_model*.msgpack", "*.gguf")
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def _json_object(path: Path, what: str) -> dict:
    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: {what} must be a JSON object, got {type(data).__name__}")
    return data


def safetensors_problem(path: str | os.PathLike) -> str | None:
    """Why a `.safetensors` file cannot load, or None: a malformed header, or a file shorter than its header says
    (an interrupted download or copy). `safe_open` reads only the header and compares the offsets with the file
    size: milliseconds, instead of a crash minutes into loading."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "np"):
            pass
    except (SafetensorError, OSError, ValueError) as exc:
        return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return None


def check_safetensors(path: str | os.PathLike) -> None:
    """`safetensors_problem` as a one-line `InputError`."""
    detail = safetensors_problem(path)
    if detail is not None:
        raise InputError(f"{path}: truncated or corrupt safetensors file ({detail}); download or save it again")


def _check_weights(folder: Path, what: str) -> None:
    weights = sorted({f for pattern in WEIGHT_GLOBS for f in folder.glob(pattern) if f.is_file()})
    for index in (folder / name for name in WEIGHT_INDEXES):
        if not index.is_file():
            continue
        weight_map = _json_object(index, "the weight index").get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise InputError(f"{index}: no 'weight_map' object (a sharded checkpoint's index lists its files)")
        missing = sorted({str(v) for v in weight_map.values() if not (folder / str(v)).is_file()})
        if missing:
            raise InputError(f"{index}: shard {missing[0]} is missing ({len(missing)} of "
                             f"{len(set(map(str, weight_map.values())))} listed shards); the download is incomplete")
    if not weights:
        raise InputError(f"{folder}: {what} has no weight files (model.safetensors, pytorch_model.bin, ...); "
                         "the download or save is incomplete")
    for weight in weights:
        _check_weight_file(weight)


def _check_weight_file(weight: Path) -> None:
    if weight.stat().st_size == 0:
        raise InputError(f"{weight}: empty weight file (0 bytes); download or save it again")
    if weight.suffix == ".safetensors":
        check_safetensors(weight)


def check_model_files(path: str | os.PathLike, what: str) -> Path:
    """Cheap checks of a checkpoint folder, run before the long load: config.json is a JSON object, the weights are
    there (every shard its index lists), no weight file is empty and every safetensors header is complete.

    `require_model_dir` says whether the folder exists at all; this says whether what is in it can load.
    """
    p = Path(path).expanduser()
    config = p / "config.json"
    if config.is_file():
        _json_object(config, "config.json")
    _check_weights(p, what)
    return p


def check_adapter_files(path: str | os.PathLike) -> dict:
    """A PEFT adapter folder that can load: adapter_config.json is a JSON object naming its peft_type, and the
    adapter weights are there with a complete header. Returns the parsed adapter config."""
    p = Path(path).expanduser()
    config_path = p / "adapter_config.json"
    if not config_path.is_file():
        raise InputError(f"{p}: not a PEFT adapter folder (no adapter_config.json)")
    config = _json_object(config_path, "adapter_config.json")
    if not isinstance(config.get("peft_type"), str):
        raise InputError(f"{config_path}: no 'peft_type' string; not a PEFT adapter config")
    weights = [p / name for name in ("adapter_model.safetensors", "adapter_model.bin") if (p / name).is_file()]
    if not weights:
        raise InputError(f"{p}: adapter has no weights (adapter_model.safetensors); the save or copy is incomplete")
    for weight in weights:
        _check_weight_file(weight)
    return config


def resolve_device(device: str = "auto") -> str:
    """`auto` picks cuda when available, else cpu; anything else is passed through."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available on this machine")
    return device


def resolve_dtype(dtype: str = "auto", device: str = "cpu"):
    """`auto` is bfloat16 on a GPU that supports it and float32 on CPU (bf16 matmuls are slow there)."""
    import torch

    table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16 if device.startswith("cuda") else torch.float32
    if dtype not in table:
        raise InputError(f"--dtype {dtype}: choose one of auto, {', '.join(sorted(table))}")
    return table[dtype]
