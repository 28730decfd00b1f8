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

from vlmkit.cli import run_main, setup_logging
from vlmkit.options import parse_options
from vlmkit.training.merge_command import MergeOptions


def main(argv: list[str] | None = None) -> int:
    options = parse_options(MergeOptions, argv, description=__doc__.split("\n\n")[0], prog="merge_lora_weights.py")
    setup_logging(options.verbose)
    from vlmkit.training.merge_command import run

    return run(options)


if __name__ == "__main__":
    run_main(main)
