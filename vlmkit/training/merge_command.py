"""`merge_lora_weights.py`: its options and `run(options)`, the boundary between the entry script and the package.

Cheap checks come first (ranges at construction, the output folder, the adapter's configs and safetensors headers,
the base it names, whether the adapter fits that base), so a malformed or truncated folder is one line before the
base model is loaded, not a traceback after. `vlmkit.training.merge.merge_adapter` does the merge and verifies it.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from vlmkit.options import Options, opt
from vlmkit.ranges import Range

log = logging.getLogger("merge_lora_weights")


@dataclass
class MergeOptions(Options):
    adapter: str = opt(required=True, help="train.py output folder or one of its checkpoint-N folders (an adapter, "
                                           "or trained_weights.safetensors)")
    output_dir: str = opt(required=True, help="where the merged checkpoint goes (must not exist)")
    base_model: str | None = opt(None, "override the base recorded in the adapter (if it moved)")
    dtype: str = opt("auto", "dtype of the saved weights (auto: the base's)",
                     choices=["auto", "float32", "bfloat16", "float16"])
    atol: float = opt(1e-3, "absolute tolerance of the float32 logit check", range=Range(0))
    rtol: float = opt(1e-3, "relative tolerance of the float32 logit check", range=Range(0))
    device: str = opt("cpu", "cpu or cuda (the merge holds the model in float32)")
    overwrite: bool = opt(False, "replace an existing --output_dir")
    verbose: bool = opt(False, flags=("-v",))


def check_inputs(adapter: Path, base_model: str | None) -> None:
    """The adapter (or projector) and its base can load: parsed configs, complete safetensors headers."""
    from vlmkit.generation.export_check import refuse_unmatched_adapter
    from vlmkit.io import InputError
    from vlmkit.models import check_adapter_files, check_model_files, check_safetensors
    from vlmkit.training.checkpoint import PROJECTOR_FILE, TRAINED_FILE, folder_kind, resolve_base
    from vlmkit.training.compat import base_mismatch

    kind = folder_kind(adapter)
    if kind == "adapter":
        check_adapter_files(adapter)
        refuse_unmatched_adapter(resolve_base(adapter, base_model), adapter)  # it would merge into nothing
    elif kind == "weights":
        for name in (TRAINED_FILE, PROJECTOR_FILE):
            if (adapter / name).is_file():
                check_safetensors(adapter / name)
    else:
        return  # a standalone checkpoint: merge_adapter refuses it with its own message
    base = resolve_base(adapter, base_model)
    check_model_files(base, "the base model")
    problem = base_mismatch(adapter, base)
    if problem:
        raise InputError(f"{adapter}: does not fit the base model {base}: {problem}")


def run(options: MergeOptions) -> int:
    """Merge and verify; exit status 1 when the merged logits differ from the adapter's (nothing is written)."""
    from vlmkit.generation.export_check import log_engine_layout
    from vlmkit.models import resolve_device
    from vlmkit.outputs import OutputLock, check_output_dir
    from vlmkit.training.merge import MergeVerificationError, merge_adapter

    output_dir = check_output_dir(options.output_dir, "--output_dir")
    check_inputs(Path(options.adapter), options.base_model)
    device = resolve_device(options.device)
    try:
        with OutputLock(output_dir, "merged checkpoint"):
            result = merge_adapter(options.adapter, output_dir, base_model=options.base_model, dtype=options.dtype,
                                   atol=options.atol, rtol=options.rtol, device=device,
                                   overwrite=options.overwrite)
    except MergeVerificationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    log.info("merged %s (%s) into %s [%s]: max |logit diff| %.3g vs adapter, %.3g after reload", options.adapter,
             result.kind, result.output_dir, result.dtype, result.max_abs_diff, result.reload_max_abs_diff)
    log_engine_layout(result.output_dir)
    return 0
