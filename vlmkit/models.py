"""Local model paths, devices and dtypes.

Weights are never downloaded at run time: every model comes from a folder the user names. A missing folder is an
`InputError` that says which flag to pass — and, for one of the scripts' default folders (./models/...), the
`python download_models.py --model <name>` command that fetches it — never a hub lookup.
"""

from __future__ import annotations

import os
from pathlib import Path

from vlmkit.io import InputError


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
