"""What a training output folder holds, and loading it back.

Every folder train.py writes — each `checkpoint-N` and the final output_dir — is self-describing:

- fine-tuning (LoRA): a peft adapter (`adapter_config.json` + `adapter_model.safetensors`), whose
  `modules_to_save` carries the full projector weights, so `PeftModel.from_pretrained(base, folder)` restores
  the trained model, projector included;
- projector pre-training (no LoRA): `projector.safetensors`, the projector's weights under the base model's
  parameter names;
- both: the processor (tokenizer, chat template, image processor) and `vlmkit_training.json`, which names the
  base checkpoint (absolute path), arch and stage. Nothing is ever inferred from folder names.
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
PROJECTOR_FILE = "projector.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
FORMAT = "vlmkit-training/1"


def write_training_info(folder: str | os.PathLike, info: dict[str, Any], **extra: Any) -> None:
    atomic_write_json(Path(folder) / TRAINING_INFO, {"format": FORMAT, **info, **extra})


def read_training_info(folder: str | os.PathLike) -> dict[str, Any] | None:
    path = Path(folder) / TRAINING_INFO
    return read_json(path) if path.is_file() else None


def folder_kind(folder: str | os.PathLike) -> str:
    """`adapter` (peft LoRA), `projector` (pre-training output) or `model` (standalone checkpoint)."""
    folder = Path(folder)
    if (folder / ADAPTER_CONFIG).is_file():
        return "adapter"
    if (folder / PROJECTOR_FILE).is_file():
        return "projector"
    if (folder / "config.json").is_file():
        return "model"
    raise InputError(f"{folder}: neither a LoRA adapter ({ADAPTER_CONFIG}), a projector ({PROJECTOR_FILE}) nor a "
                     "model checkpoint (config.json)")


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


def save_projector(state_dict: dict[str, Any], folder: str | os.PathLike) -> None:
    from safetensors.torch import save_file

    from vlmkit.training.lora import is_projector_param

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items() if is_projector_param(k)}
    if not tensors:
        raise RuntimeError("no projector weights in the state dict to save")
    Path(folder).mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(Path(folder) / PROJECTOR_FILE), metadata={"format": "pt"})


def read_projector(folder: str | os.PathLike) -> dict[str, Any]:
    """Projector tensors from a pre-training folder, or from a LoRA adapter's `modules_to_save`."""
    from safetensors.torch import load_file

    from vlmkit.training.lora import is_projector_param

    folder = Path(folder)
    if (folder / PROJECTOR_FILE).is_file():
        return load_file(str(folder / PROJECTOR_FILE))
    adapter = folder / "adapter_model.safetensors"
    if adapter.is_file():
        prefix = "base_model.model."
        return {k[len(prefix):] if k.startswith(prefix) else k: v
                for k, v in load_file(str(adapter)).items() if is_projector_param(k) and "lora_" not in k}
    raise InputError(f"{folder}: no {PROJECTOR_FILE} or adapter_model.safetensors with projector weights")


def load_projector(model, tensors: dict[str, Any], source: str | os.PathLike) -> None:
    """Copy projector weights into `model` (a plain HF model); every tensor must find its parameter."""
    from contextlib import nullcontext

    import torch

    params = dict(model.named_parameters())
    missing = [k for k in tensors if k not in params]
    if missing:
        raise InputError(f"{source}: projector weights {missing[:2]} do not fit this model (another base?)")
    targets = [params[k] for k in tensors]
    gathered = nullcontext()
    if any(hasattr(p, "ds_id") for p in targets):  # ZeRO-3 partitioned: gather, write, re-partition
        import deepspeed

        gathered = deepspeed.zero.GatheredParameters(targets, modifier_rank=0)
    with gathered, torch.no_grad():
        for key, value in tensors.items():
            if params[key].shape != value.shape:
                raise InputError(f"{source}: projector weight {key} has shape {tuple(value.shape)}, the model "
                                 f"{tuple(params[key].shape)}")
            params[key].copy_(value.to(params[key].dtype))


def load_trained_model(folder: str | os.PathLike, base_model: str | os.PathLike | None = None, dtype=None,
                       device: str | None = None):
    """(model, processor) for any folder train.py or merge_lora_weights.py wrote, or a plain checkpoint.

    Adapters load through `PeftModel.from_pretrained` (unmerged); projector folders load into their base.
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
            load_projector(model, read_projector(folder), folder)
        has_processor = (folder / "preprocessor_config.json").is_file() or (folder / "processor_config.json").is_file()
        processor_dir = folder if has_processor else base
    if device:
        model.to(device)
    return model.eval(), AutoProcessor.from_pretrained(processor_dir)


def checkpoints_in(output_dir: str | os.PathLike) -> list[Path]:
    """`checkpoint-N` folders, by step."""
    out = Path(output_dir)
    if not out.is_dir():
        return []
    found = [p for p in out.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))
