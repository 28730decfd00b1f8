"""Train a captioning VLM: a LLaVA-style model (frozen CLIP/SigLIP + MLP projector + a causal LM with LoRA) or a LoRA
fine-tune of Qwen2.5-VL, with the HF Trainer, optionally on DeepSpeed ZeRO-2/3.

    # LLaVA: compose from a vision model and an LM, pre-train the projector, then LoRA fine-tune with evaluation
    python train.py --vision_model models/siglip --lm_model models/Qwen2.5-1.5B-Instruct --stage pretrain \\
        --data data/train.jsonl --output_dir outputs/pretrain --learning_rate 1e-3
    python train.py --pretrained_projector outputs/pretrain --data data/train.jsonl --eval_data data/val.jsonl \\
        --eval_generate 4 --output_dir outputs/finetune --projector_lr 2e-5
    # Qwen2.5-VL: LoRA on its language model (+ its merger in full)
    python train.py --arch qwen2_5_vl --base_model models/Qwen2.5-VL-3B-Instruct --data data/train.jsonl \\
        --unfreeze_merger --output_dir outputs/qwen-sft
    # a named recipe (configs/train/*.yaml), flags override it
    python train.py --config configs/train/qwen2_5_vl_lora.yaml --data data/train.jsonl --output_dir outputs/q
    # check data, lengths and settings only:  python train.py ... --preflight_only
    # several GPUs or nodes: see train.sh (torchrun / deepspeed, NNODES, HOSTFILE)

Every sample is opened and tokenised before any model is loaded (over-long or broken samples: one line, exit 2, or
--skip_bad_samples). Every complete checkpoint-N and the output folder hold the adapter (or trained weights) and
vlmkit_training.json; pass either to merge_lora_weights.py or to test.sh. loss_curve.png and train_summary.json
show the run.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from vlmkit.cli import run_main, setup_logging

if TYPE_CHECKING:  # the parser imports transformers (torch): only when a command line is parsed
    from vlmkit.config_files import ConfigParser
    from vlmkit.training.options import TrainOptions


def build_parser() -> ConfigParser:
    """HfArgumentParser over `vlmkit.training.options`' dataclasses (TrainingArguments' flags included) and
    `--config FILE` (a recipe: configs/train/NAME.yaml); one declaration per setting, in the package."""
    from vlmkit.config_files import ConfigParser
    from vlmkit.training.options import REQUIRED, SECTIONS

    return ConfigParser(list(SECTIONS.values()), required=REQUIRED, prog="train.py",
                        description=__doc__.split("\n\n")[0])


def parse(argv: list[str] | None = None) -> TrainOptions:
    """The command line (and its --config file) as `TrainOptions`; usage errors exit 2 as argparse does."""
    from vlmkit.training.options import SECTIONS, TrainOptions

    return TrainOptions(**dict(zip(SECTIONS, build_parser().parse(argv), strict=True)))


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    setup_logging(options.training.verbose)
    from vlmkit.training.run import run

    return run(options)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_main(main)
