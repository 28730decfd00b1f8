"""Local model paths, devices and dtypes.

Weights are never downloaded at run time: every model comes from a folder the user names. A missing folder is an
`InputError` that says which flag to pass — and, for one of the scripts' default folders (./models/...), the
`python download_models.py --model <name>` command that fetches it — never a hub lookup. A folder whose files cannot
load (a malformed config.json or adapter_config.json, no weights, a truncated safetensors file) is found by
`check_model_files` / `check_adapter_files` in milliseconds, before the load that would fail with a traceback minutes
later.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from vlmkit.io import InputError, read_json


def require_model_dir(path: str | os.PathLike, what: str, flag: str = "--model_path") -> Path:
    """Return `path` if it is a local model folder (it has a config.json), else raise `InputError`."""
    from vlmkit.model_registry import download_hint

    p = Path(path).expanduser()
    hint = download_hint(p)
    todo = f"fetch it with `{hint}`, or pass a local folder with {flag}" if hint else f"pass a local folder with {flag}"
    if not p.is_dir():
        raise InputError(f"{p}: {what} not found; weights are never downloaded at run time: {todo}")
    if not (p / "config.json").is_file() and not (p / "modules.json").is_file():
        raise InputError(f"{p}: not a model folder for {what} (no config.json): {todo}")
    return p


@dataclass(frozen=True)
class WeightFormat:
    """How one library saves a checkpoint's weights: single files matching `glob`, or shards an `index` lists."""

    name: str
    glob: str
    index: str | None


# Every weight format a model folder may hold at its top level (not training_args.bin, optimizer.pt, ...).
WEIGHT_FORMATS = (
    WeightFormat("safetensors", "*.safetensors", "model.safetensors.index.json"),
    WeightFormat("PyTorch", "pytorch_model*.bin", "pytorch_model.bin.index.json"),
    WeightFormat("TensorFlow", "tf_model*.h5", "tf_model.h5.index.json"),
    WeightFormat("Flax", "flax_model*.msgpack", "flax_model.msgpack.index.json"),
    WeightFormat("GGUF", "*.gguf", None),
)


@dataclass(frozen=True)
class FileProblem:
    """One thing wrong in a model folder, worded for both of its readers: `message` is a loader's one-line
    `InputError` (the file by its path), `short` a cell of `download_models.py --check`'s table (the file by its
    name in the folder)."""

    message: str
    short: str
    missing_shard: bool = False  # a shard its index lists is not there (a table shows the first few)


@dataclass
class ModelFiles:
    """What `model_file_problems` found: every problem (in the order a loader would meet them) and the weights'
    size in bytes."""

    path: Path
    problems: list[FileProblem] = field(default_factory=list)
    weights_bytes: int = 0


def _json_object_problem(path: Path, what: str) -> FileProblem | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        try:
            read_json(path)
            message = f"{path}: {what} cannot be read ({type(exc).__name__})"
        except InputError as error:  # read_json's wording: the line and column of a syntax error
            message = str(error)
        return FileProblem(message, f"{path.name} does not parse ({type(exc).__name__})")
    if not isinstance(data, dict):
        return FileProblem(f"{path}: {what} must be a JSON object, got {type(data).__name__}",
                           f"{path.name} is not a JSON object")
    return None


def _json_object(path: Path, what: str) -> dict:
    problem = _json_object_problem(path, what)
    if problem is not None:
        raise InputError(problem.message)
    return read_json(path)


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
        raise InputError(_truncated(Path(path), detail).message)


def _truncated(path: Path, detail: str) -> FileProblem:
    return FileProblem(f"{path}: truncated or corrupt safetensors file ({detail}); download or save it again",
                       f"{path.name} is damaged or truncated ({detail[:120]})")


def weight_file_problem(weight: Path) -> FileProblem | None:
    """An empty weight file, or a safetensors file whose header does not match its length."""
    if weight.stat().st_size == 0:
        return FileProblem(f"{weight}: empty weight file (0 bytes); download or save it again",
                           f"{weight.name} is empty")
    if weight.suffix == ".safetensors":
        detail = safetensors_problem(weight)
        if detail is not None:
            return _truncated(weight, detail)
    return None


def _index_shards(index: Path, result: ModelFiles) -> list[Path]:
    """The shards `index` lists (their problems, when missing, go to `result`)."""
    problem = _json_object_problem(index, "the weight index")
    weight_map = None if problem else read_json(index).get("weight_map")
    if problem or not isinstance(weight_map, dict) or not weight_map:
        result.problems.append(problem or FileProblem(
            f"{index}: no 'weight_map' object (a sharded checkpoint's index lists its files)",
            f"{index.name} has no weight_map"))
        return []
    folder = index.parent
    shards = sorted({str(v) for v in weight_map.values()})
    missing = [s for s in shards if not (folder / s).is_file()]
    for name in missing:
        result.problems.append(FileProblem(
            f"{index}: shard {name} is missing ({len(missing)} of {len(shards)} listed shards); the download is "
            "incomplete", f"{name} missing", missing_shard=True))
    return [folder / s for s in shards if s not in missing]


def model_file_problems(path: str | os.PathLike, what: str = "model folder", *,
                        config_required: bool = False) -> ModelFiles:
    """Every problem of a checkpoint folder that files alone show, in milliseconds: config.json (missing when
    `config_required`, or not a JSON object), the weights in any `WEIGHT_FORMATS` (every shard an index lists is
    there; no weight file is empty; every safetensors header is complete). The one checker of both the loaders
    (`check_model_files`: the first problem stops the command) and `download_models.py --check` (a table of all)."""
    folder = Path(path).expanduser()
    result = ModelFiles(folder)
    config = folder / "config.json"
    if config.is_file():
        problem = _json_object_problem(config, "config.json")
        if problem is not None:
            result.problems.append(problem)
    elif config_required:
        result.problems.append(FileProblem(f"{folder}: config.json missing", "config.json missing"))
    weights: set[Path] = set()
    for fmt in WEIGHT_FORMATS:
        weights.update(f for f in folder.glob(fmt.glob) if f.is_file())
        if fmt.index and (folder / fmt.index).is_file():
            weights.update(_index_shards(folder / fmt.index, result))
    if not weights and not any(fmt.index and (folder / fmt.index).is_file() for fmt in WEIGHT_FORMATS):
        result.problems.append(FileProblem(
            f"{folder}: {what} has no weight files (model.safetensors, pytorch_model.bin, ...); the download or "
            "save is incomplete",
            "no weights (model.safetensors, pytorch_model.bin, tf_model.h5, flax_model.msgpack, *.gguf or a sharded "
            "index)"))
    for weight in sorted(weights):
        problem = weight_file_problem(weight)
        if problem is not None:
            result.problems.append(problem)
    result.weights_bytes = sum(w.stat().st_size for w in weights)
    return result


def check_model_files(path: str | os.PathLike, what: str) -> Path:
    """`model_file_problems` before the long load: the first problem as a one-line `InputError`, the number of
    the others (a download with three missing shards says so at once, not one rerun at a time).

    `require_model_dir` says whether the folder exists at all; this says whether what is in it can load.
    """
    found = model_file_problems(path, what)
    if found.problems:
        first, *rest = found.problems
        more = f" (and {len(rest)} more: {'; '.join(p.short for p in rest[:3])}{'; ...' if len(rest) > 3 else ''})"
        raise InputError(first.message + (more if rest else ""))
    return found.path


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
        problem = weight_file_problem(weight)
        if problem is not None:
            raise InputError(problem.message)
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
