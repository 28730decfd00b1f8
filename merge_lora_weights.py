"""Merge a train.py output (LoRA adapter with its projector/vision/merger, or weights trained in full: a pre-trained
projector, the last LM layers of --train_lm_layers) into its base model.

    python merge_lora_weights.py --adapter outputs/finetune --output_dir outputs/finetune-merged
    python merge_lora_weights.py --adapter outputs/finetune/checkpoint-500 --output_dir outputs/ckpt500-merged

The result is a standalone safetensors checkpoint (with processor, tokenizer and chat template) that
`AutoModelForImageTextToText` and `AutoProcessor` load, e.g. for test.sh or qwen.py-style captioning. The base is
read from the adapter's own metadata (never from folder names); pass --base_model if it has moved. The merge is
verified: merged logits must equal the adapter's on a probe input, and the saved folder must reproduce them;
otherwise the script exits non-zero and writes nothing. An adapter whose target modules match nothing in the base is
refused before anything loads, and the result is checked for a layout vLLM loads (vlmkit.generation.export_check).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from vlmkit.cli import HelpFormatter, run_main, setup_logging

log = logging.getLogger("merge_lora_weights")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--adapter", required=True, help="train.py output folder or one of its checkpoint-N folders "
                                                    "(an adapter, or trained_weights.safetensors)")
    p.add_argument("--output_dir", required=True, help="where the merged checkpoint goes (must not exist)")
    p.add_argument("--base_model", default=None, help="override the base recorded in the adapter (if it moved)")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="dtype of the saved weights (auto: the base's)")
    p.add_argument("--atol", type=float, default=1e-3, help="absolute tolerance of the float32 logit check")
    p.add_argument("--rtol", type=float, default=1e-3, help="relative tolerance of the float32 logit check")
    p.add_argument("--device", default="cpu", help="cpu or cuda (the merge holds the model in float32)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output_dir")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def check_inputs(adapter: Path, base_model: str | None) -> None:
    """The adapter (or projector) and its base can load: parsed configs, complete safetensors headers. Cheap, so a
    malformed or truncated folder is one line before the base model is loaded, not a traceback after."""
    from vlmkit.generation.export_check import refuse_unmatched_adapter
    from vlmkit.models import check_adapter_files, check_model_files, check_safetensors
    from vlmkit.training.checkpoint import PROJECTOR_FILE, TRAINED_FILE, folder_kind, resolve_base

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
    from vlmkit.io import InputError
    from vlmkit.training.compat import base_mismatch

    problem = base_mismatch(adapter, base)
    if problem:
        raise InputError(f"{adapter}: does not fit the base model {base}: {problem}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    from vlmkit.models import resolve_device
    from vlmkit.outputs import OutputLock, check_output_dir
    from vlmkit.ranges import Range, check_flags
    from vlmkit.training.merge import MergeVerificationError, merge_adapter

    check_flags(args, {"atol": Range(0), "rtol": Range(0)})
    output_dir = check_output_dir(args.output_dir, "--output_dir")
    check_inputs(Path(args.adapter), args.base_model)
    device = resolve_device(args.device)
    try:
        with OutputLock(output_dir, "merged checkpoint"):
            result = merge_adapter(args.adapter, output_dir, base_model=args.base_model, dtype=args.dtype,
                                   atol=args.atol, rtol=args.rtol, device=device, overwrite=args.overwrite)
    except MergeVerificationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    log.info("merged %s (%s) into %s [%s]: max |logit diff| %.3g vs adapter, %.3g after reload", args.adapter,
             result.kind, result.output_dir, result.dtype, result.max_abs_diff, result.reload_max_abs_diff)
    from vlmkit.generation.export_check import log_engine_layout

    log_engine_layout(result.output_dir)
    return 0


if __name__ == "__main__":
    run_main(main)
