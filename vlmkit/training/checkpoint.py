"""What a training output folder holds, and loading it back.

Every folder train.py writes — each `checkpoint-N` and the final output_dir — is self-describing:

- fine-tuning (LoRA): a peft adapter (`adapter_config.json` + `adapter_model.safetensors`), whose
  `modules_to_save` carries the full projector weights, so `PeftModel.from_pretrained(base, folder)` restores
  the trained model, projector included;
- training without LoRA (projector pre-training, `--train_lm_layers`): `trained_weights.safetensors`, every
  parameter trained in full under the base model's names (older outputs: `projector.safetensors`, still read);
- both: the processor (tokenizer, chat template, image processor) and `vlmkit_training.json`, which names the
  base checkpoint (absolute path), arch and stage. Nothing is ever inferred from folder names.

A `checkpoint-N` counts only when complete. The HF Trainer writes it in place, file by file, so a kill leaves a
folder that looks like a checkpoint; `vlmkit_training.json` is written last, after every rank has finished, and
lists each file with its size. `checkpoint_problem` checks that list (and, for checkpoints written before the list
existed, that `trainer_state.json` parses and every safetensors file is as long as its header says).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from vlmkit.io import InputError, atomic_write_json, read_json
from vlmkit.models import require_model_dir

log = logging.getLogger(__name__)

TRAINING_INFO = "vlmkit_training.json"
TRAINED_FILE = "trained_weights.safetensors"
PROJECTOR_FILE = "projector.safetensors"  # pre-training outputs of earlier versions (projector only)
ADAPTER_CONFIG = "adapter_config.json"
FORMAT = "vlmkit-training/1"


def file_manifest(folder: Path) -> dict[str, int]:
    """Relative path -> size of every file under `folder` (the completion record of a checkpoint)."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != TRAINING_INFO}


def write_training_info(folder: str | os.PathLike, info: dict[str, Any], *, complete: bool = False,
                        **extra: Any) -> None:
    """`vlmkit_training.json`; `complete=True` (checkpoints) adds the file list that marks the folder complete."""
    folder = Path(folder)
    record = {"format": FORMAT, **info, **extra}
    if complete:
        record["files"] = file_manifest(folder)
    atomic_write_json(folder / TRAINING_INFO, record)


def read_training_info(folder: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(folder) / TRAINING_INFO
    return read_json(path) if path.is_file() else None


def _safetensors_problem(path: Path) -> str | None:
    """A safetensors file is 8 bytes of header length, the JSON header, then the data its offsets cover."""
    import json
    import struct

    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            (n,) = struct.unpack("<Q", handle.read(8))
            if n > size:
                return f"{path.name}: truncated header"
            header = json.loads(handle.read(n))
    except (struct.error, ValueError, UnicodeDecodeError):
        return f"{path.name}: unreadable header"
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    return None if size == 8 + n + end else f"{path.name}: {size} bytes, its header says {8 + n + end}"


def manifest_problem(folder: Path, files: dict[str, int]) -> str | None:
    """The first file of a saved manifest ({relative path: size}, see `file_manifest`) missing or of another size."""
    for rel, size in files.items():
        path = folder / rel
        if not path.is_file():
            return f"{rel} missing"
        if path.stat().st_size != size:
            return f"{rel}: {path.stat().st_size} bytes, {size} when saved"
    return None


def checkpoint_problem(folder: str | os.PathLike) -> str | None:
    """Why `folder` is not a complete checkpoint, or None."""
    folder = Path(folder)
    try:
        info = read_training_info(folder)
    except InputError:
        return f"unreadable {TRAINING_INFO}"
    if info is None:
        return f"no {TRAINING_INFO} (written last: the save did not finish)"
    files = info.get("files")
    if files is not None:
        return manifest_problem(folder, files)
    state = folder / "trainer_state.json"  # written before files were listed: validate what can be
    try:
        read_json(state)
    except InputError:
        return "trainer_state.json missing or unreadable"
    for path in sorted(folder.glob("*.safetensors")):
        problem = _safetensors_problem(path)
        if problem:
            return problem
    return None


def folder_kind(folder: str | os.PathLike) -> str:
    """`adapter` (peft LoRA), `weights` (parts trained in full, no LoRA) or `model` (standalone checkpoint)."""
    folder = Path(folder)
    if (folder / ADAPTER_CONFIG).is_file():
        return "adapter"
    if (folder / TRAINED_FILE).is_file() or (folder / PROJECTOR_FILE).is_file():
        return "weights"
    if (folder / "config.json").is_file():
        return "model"
    raise InputError(f"{folder}: neither a LoRA adapter ({ADAPTER_CONFIG}), trained weights ({TRAINED_FILE}) nor "
                     "a model checkpoint (config.json)")


def resolve_base(folder: str | os.PathLike, base_model: str | os.PathLike | None = None) -> Path:
    """The base checkpoint an adapter/projector folder was trained on: `base_model` if given, else the path
    recorded in `vlmkit_training.json`, else peft's `base_model_name_or_path`."""
    folder = Path(folder)
    if base_model:
        return require_model_dir(base_model, "base model", "--base_model")
    info = read_training_info(folder) or {}
    recorded = info.get("base_model")
    if not recorded and (folder / ADAPTER_CONFIG).is_file():
        recorded = read_json(folder / ADAPTER_CONFIG).get("base_model_name_or_path")
    if not recorded:
        raise InputError(f"{folder}: no base model recorded; pass --base_model")
    path = Path(recorded)
    if not (path / "config.json").is_file():
        raise InputError(f"{folder}: recorded base model {path} not found (moved?); pass --base_model")
    return path


def save_trained(state_dict: dict[str, Any], names: set[str], folder: str | os.PathLike) -> None:
    """The parameters `names` (trained in full) of `state_dict` -> `trained_weights.safetensors`."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items() if k in names}
    if not tensors:
        raise RuntimeError("no trained weights in the state dict to save")
    Path(folder).mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(Path(folder) / TRAINED_FILE), metadata={"format": "pt"})


def read_trained(folder: str | os.PathLike) -> dict[str, Any]:
    """The weights trained in full of a no-LoRA output (`trained_weights.safetensors`, or a legacy projector)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in (TRAINED_FILE, PROJECTOR_FILE):
        if (folder / name).is_file():
            return load_file(str(folder / name))
    raise InputError(f"{folder}: no {TRAINED_FILE}")


def read_projector(folder: str | os.PathLike) -> dict[str, Any]:
    """Projector tensors from a no-LoRA output, or from a LoRA adapter's `modules_to_save`."""
    from safetensors.torch import load_file

    from vlmkit.training.lora import is_projector_param

    folder = Path(folder)
    if folder_kind(folder) == "weights":
        tensors = {k: v for k, v in read_trained(folder).items() if is_projector_param(k)}
        if tensors:
            return tensors
    adapter = folder / "adapter_model.safetensors"
    if adapter.is_file():
        prefix = "base_model.model."
        tensors = {k[len(prefix):] if k.startswith(prefix) else k: v
                   for k, v in load_file(str(adapter)).items() if is_projector_param(k) and "lora_" not in k}
        if tensors:
            return {k.replace(".modules_to_save.default.", "."): v for k, v in tensors.items()}
    raise InputError(f"{folder}: holds no projector weights")


def load_weights(model, tensors: dict[str, Any], source: str | os.PathLike) -> None:
    """Copy weights trained in full into `model` (a plain HF model); every tensor must find its parameter."""
    from contextlib import nullcontext

    import torch

    params = dict(model.named_parameters())
    missing = [k for k in tensors if k not in params]
    if missing:
        raise InputError(f"{source}: trained weights {missing[:2]} do not fit this model (another base?)")
    targets = [params[k] for k in tensors]
    gathered = nullcontext()
    if any(hasattr(p, "ds_id") for p in targets):  # ZeRO-3 partitioned: gather, write, re-partition
        import deepspeed

        gathered = deepspeed.zero.GatheredParameters(targets, modifier_rank=0)
    with gathered, torch.no_grad():
        for key, value in tensors.items():
            if params[key].shape != value.shape:
                raise InputError(f"{source}: trained weight {key} has shape {tuple(value.shape)}, the model "
                                 f"{tuple(params[key].shape)}")
            params[key].copy_(value.to(params[key].dtype))


def load_trained_model(folder: str | os.PathLike, base_model: str | os.PathLike | None = None, dtype=None,
                       device: str | None = None):
    """(model, processor) for any folder train.py or merge_lora_weights.py wrote, or a plain checkpoint.

    Adapters load through `PeftModel.from_pretrained` (unmerged); trained weights are copied into their base.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = Path(folder)
    kind = folder_kind(folder)
    kwargs: dict[str, Any] = {"dtype": dtype if dtype is not None else "auto"}
    if kind == "model":
        model = AutoModelForImageTextToText.from_pretrained(folder, **kwargs)
        processor_dir = folder
    else:
        base = resolve_base(folder, base_model)
        model = AutoModelForImageTextToText.from_pretrained(base, **kwargs)
        if kind == "adapter":
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, folder)
        else:
            load_weights(model, read_trained(folder), folder)
        has_processor = (folder / "preprocessor_config.json").is_file() or (folder / "processor_config.json").is_file()
        processor_dir = folder if has_processor else base
    if device:
        model.to(device)
    return model.eval(), AutoProcessor.from_pretrained(processor_dir)


def checkpoints_in(output_dir: str | os.PathLike) -> list[Path]:
    """`checkpoint-N` folders, by step (complete or not: see `checkpoint_problem`)."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    found = [p for p in out.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


# ------------------------------------------------------------------------------------------------ resuming
def checkpoint_step(folder: Path) -> int:
    return int(folder.name.split("-")[-1])


def resolve_resume(resume_from: str | None, overwrite: bool, output_dir: Path) -> Path | None:
    """The checkpoint to resume from; `last` is the newest complete one (an interrupted save is passed over). Without
    either flag, an output folder holding checkpoints is refused (a later step of the old run would pose as ours)."""
    existing = checkpoints_in(output_dir)
    if resume_from in (None, ""):
        if existing and not overwrite:
            raise InputError(f"{output_dir}: holds {existing[-1].name}; pass --resume_from_checkpoint last to "
                             "continue, or --overwrite_output_dir to start afresh")
        return None
    if resume_from == "last":
        if not existing:
            raise InputError(f"{output_dir}: no checkpoint-N to resume from")
        passed = []
        for folder in reversed(existing):
            problem = checkpoint_problem(folder)
            if problem is None:
                for bad, why in passed:
                    log.warning("%s is incomplete (%s): resuming from %s, the newest complete checkpoint",
                                bad.name, why, folder.name)
                return folder
            passed.append((folder, problem))
        raise InputError(f"{output_dir}: no complete checkpoint to resume from ({passed[0][0].name}: "
                         f"{passed[0][1]}); pass --overwrite_output_dir to start afresh")
    path = Path(resume_from)
    if not path.is_dir():
        raise InputError(f"--resume_from_checkpoint {path}: folder not found")
    problem = checkpoint_problem(path)
    if problem:
        raise InputError(f"{path}: incomplete checkpoint ({problem}); --resume_from_checkpoint last picks the "
                         "newest complete one")
    return path


def check_resume_matches(resume: Path, info: dict) -> None:
    """The checkpoint was trained like this run (arch, stage, base, what is trained): else resuming mixes runs."""
    saved = read_training_info(resume)
    if saved is None:
        raise InputError(f"{resume}: no {TRAINING_INFO}; not a checkpoint of train.py")
    legacy = {"projector": "weights"}
    for key in ("arch", "stage", "base_model", "kind", "trained_in_full"):
        if key not in saved and key != "arch":
            continue
        value = legacy.get(saved.get(key), saved.get(key)) if key == "kind" else saved.get(key)
        if value != info.get(key):
            raise InputError(f"{resume}: was trained with {key}={value}, this run has {info.get(key)}")


def clear_stale_checkpoints(output_dir: Path, resume: Path | None, overwrite: bool) -> None:
    """Rank 0, before training: --overwrite_output_dir removes the old run's checkpoints; a resume removes the
    incomplete ones after its checkpoint (else a later step of the old run would pose as ours)."""
    import shutil

    for folder in checkpoints_in(output_dir):
        if resume is None and overwrite:
            log.info("--overwrite_output_dir: removing %s", folder)
            shutil.rmtree(folder)
        elif resume is not None and checkpoint_step(folder) > checkpoint_step(resume) and checkpoint_problem(folder):
            log.info("removing the incomplete %s", folder)
            shutil.rmtree(folder)
