"""Adapter (+ projector) + base → one standalone checkpoint, verified on a probe input.

The merge itself is peft's `merge_and_unload()` (LoRA, with any `modules_to_save` part trained in full: projector,
vision tower, merger) or a copy of the weights trained in full without LoRA (the pre-trained projector, the last N
LM layers of `--train_lm_layers`, an unfrozen vision tower) into the base.
What we add is the check users of hand-written merges lacked: the merged model must produce the same logits as
the adapter model on a probe input (two synthetic images + a prompt + an answer, through the real processor and
chat template), and the saved folder, reloaded with `AutoModelForImageTextToText`/`AutoProcessor`, must
reproduce them. Anything else fails loudly and leaves no output behind (the result is built in a temporary
folder and renamed into place only after both checks pass).

Comparisons run in float32: the adapter logits vs the merged logits within `atol + rtol·|ref|` (default 1e-3 each;
merging reorders float32 sums, nothing more); the reloaded checkpoint vs the in-memory merged model cast to the
saved dtype within 1e-5 (it must be the same weights).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmkit.io import InputError, atomic_write_json
from vlmkit.training.checkpoint import (
    folder_kind,
    load_weights,
    read_trained,
    read_training_info,
    resolve_base,
)

log = logging.getLogger(__name__)

MERGE_INFO = "vlmkit_merge.json"
RELOAD_ATOL = 1e-5


class MergeVerificationError(Exception):
    """The merged model does not reproduce the adapter model's logits."""


@dataclass
class MergeResult:
    output_dir: Path
    base_model: Path
    kind: str
    max_abs_diff: float
    reload_max_abs_diff: float
    dtype: str


def probe_images():
    """Two deterministic, structured RGB images (gradients differ per image, so image order matters)."""
    import numpy as np
    from PIL import Image

    size = 96
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    first = np.stack([x, y, 1 - x], axis=-1)
    second = np.stack([1 - y, x * y, (x + y) / 2], axis=-1)
    return [Image.fromarray((img * 255).astype("uint8")) for img in (first, second)]


def probe_inputs(processor) -> dict[str, Any]:
    """A two-image captioning exchange, rendered with the processor's own chat template."""
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                     {"type": "text", "text": "Describe this vase."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "An Athenian red-figure amphora."}]},
    ]
    text = processor.apply_chat_template(messages, tokenize=False)
    return dict(processor(text=[text], images=probe_images(), return_tensors="pt"))


def logits_of(model, inputs: dict[str, Any]):
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(**{k: v.to(device) if hasattr(v, "to") else v for k, v in inputs.items()})
    return out.logits.float().cpu()


def _dtype(name: str, base_config) -> Any:
    import torch

    if name == "auto":
        configured = getattr(base_config, "dtype", None) or getattr(base_config, "torch_dtype", None)
        if isinstance(configured, str):
            configured = getattr(torch, configured, None)
        return configured if isinstance(configured, torch.dtype) else torch.float32
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in table:
        raise InputError(f"--dtype {name}: choose auto, {', '.join(table)}")
    return table[name]


def merge_adapter(adapter_dir: str | os.PathLike, output_dir: str | os.PathLike, *,
                  base_model: str | os.PathLike | None = None, dtype: str = "auto", atol: float = 1e-3,
                  rtol: float = 1e-3, device: str = "cpu", overwrite: bool = False) -> MergeResult:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    adapter_dir = Path(adapter_dir)
    output_dir = Path(output_dir)
    kind = folder_kind(adapter_dir)
    if kind == "model":
        raise InputError(f"{adapter_dir}: already a standalone checkpoint; nothing to merge")
    if output_dir.exists() and not overwrite:
        raise InputError(f"{output_dir}: exists; pass --overwrite to replace it")
    if output_dir.resolve() in (adapter_dir.resolve(), *adapter_dir.resolve().parents):
        raise InputError(f"{output_dir}: would overwrite the adapter it is merged from")
    base = resolve_base(adapter_dir, base_model)
    has_processor = any((adapter_dir / f).is_file() for f in ("processor_config.json", "preprocessor_config.json"))
    processor = AutoProcessor.from_pretrained(adapter_dir if has_processor else base)

    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32).to(device).eval()
    save_dtype = _dtype(dtype, model.config)
    inputs = probe_inputs(processor)
    if kind == "adapter":
        from peft import PeftModel

        adapted = PeftModel.from_pretrained(model, adapter_dir).eval()
        reference = logits_of(adapted, inputs)
        merged = adapted.merge_and_unload()
    else:
        trained = read_trained(adapter_dir)
        load_weights(model, trained, adapter_dir)
        log.info("copied %d tensors trained in full into the base", len(trained))
        merged = model
        reference = logits_of(merged, inputs)
    merged_logits = logits_of(merged, inputs)
    diff = (merged_logits - reference).abs().max().item()
    if not torch.allclose(merged_logits, reference, atol=atol, rtol=rtol):
        raise MergeVerificationError(f"{adapter_dir}: merged logits differ from the adapter's by up to {diff:.3g} "
                                     f"(atol {atol}, rtol {rtol}); nothing written")
    log.info("merged logits match the adapter's (max |diff| %.3g)", diff)

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".tmp", dir=output_dir.parent))
    try:
        # Round the weights to the saved dtype first (buffers such as rotary frequencies stay float32, as a
        # reload recomputes them), so `expected` is exactly what the saved checkpoint must reproduce.
        with torch.no_grad():
            for p in merged.parameters():
                p.data = p.data.to(save_dtype).to(torch.float32)
        expected = logits_of(merged, inputs)
        merged.to(save_dtype)
        merged.config.dtype = save_dtype
        merged.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        del merged, model
        reloaded = AutoModelForImageTextToText.from_pretrained(tmp, dtype=torch.float32).to(device).eval()
        reload_inputs = probe_inputs(AutoProcessor.from_pretrained(tmp))
        reload_logits = logits_of(reloaded, reload_inputs)
        del reloaded
        reload_diff = (reload_logits - expected).abs().max().item()
        if reload_logits.shape != expected.shape or reload_diff > RELOAD_ATOL:
            raise MergeVerificationError(f"{output_dir}: the saved checkpoint, reloaded, differs from the merged model "
                                         f"by up to {reload_diff:.3g}; nothing written")
        result = MergeResult(output_dir, base, kind, diff, reload_diff, str(save_dtype).replace("torch.", ""))
        atomic_write_json(tmp / MERGE_INFO, {
            "merged_from": str(adapter_dir.resolve()),
            "base_model": str(base),
            "kind": kind,
            "dtype": result.dtype,
            "probe": "2 synthetic 96x96 images + prompt + answer through the processor's chat template",
            "max_abs_logit_diff": diff,
            "atol": atol,
            "rtol": rtol,
            "reload_max_abs_logit_diff": reload_diff,
            "training": read_training_info(adapter_dir),
        })
        if output_dir.exists():
            old = output_dir.with_name(f".{output_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(output_dir, old)
            os.replace(tmp, output_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result
