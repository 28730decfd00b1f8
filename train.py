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
    # check data, lengths and settings only:  python train.py ... --preflight_only
    # several GPUs or nodes: see train.sh (torchrun / deepspeed, NNODES, HOSTFILE)

Every sample is opened and tokenised before any model is loaded (over-long or broken samples: one line, exit 2, or
--skip_bad_samples). Every complete checkpoint-N and the output folder hold the adapter (or trained weights) and
vlmkit_training.json; pass either to merge_lora_weights.py or to test.sh. loss_curve.png and train_summary.json
show the run.
"""

from __future__ import annotations

import argparse
import os

from vlmkit.cli import HelpFormatter, add_views_arg, run_main, setup_logging
from vlmkit.images import add_max_image_pixels_arg
from vlmkit.samples import DEFAULT_CAPTION_PROMPT
from vlmkit.training.options import TrainOptions


def build_parser() -> argparse.ArgumentParser:
    """The flags; their defaults are `TrainOptions`' (set at the end), one source for train.py and the package."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    a = p.add_argument_group("model").add_argument
    a("--arch", choices=["llava", "qwen2_5_vl"],
      help="llava: vision tower + projector + LM; qwen2_5_vl: LoRA on an existing Qwen2.5-VL")
    a("--stage", choices=["pretrain", "finetune"],
      help="pretrain: projector only (LM frozen, no LoRA); finetune: LoRA on the LM + projector")
    a("--vision_model", help="LLaVA: local CLIP/SigLIP folder to compose from (with --lm_model)")
    a("--lm_model", help="LLaVA: local causal LM folder (Qwen2.5/3, Llama, Gemma, Phi-3: its own chat template)")
    a("--base_model", help="an existing checkpoint to train (a composed/merged LLaVA, or Qwen2.5-VL)")
    a("--pretrained_projector", help="finetune: a pre-training output folder; its projector initialises this run's, "
                                     "and its base is used unless --base_model is given")
    a("--vision_feature_layer", type=int, help="composing: the vision layer that feeds the projector")
    g = p.add_argument_group("data")
    a = g.add_argument
    a("--data", required=True, help="training JSONL (dataprocess), captions.json, LLaVA JSON, or a caption file with "
                                    "'images' (e.g. groundTruth.json) plus --image_folder of multi-view objects")
    a("--image_folder", help="folder the data's image paths are relative to (default: the data's folder)")
    a("--prompt", help="instruction for caption-only data (default: for multi-view objects the caption prompt of "
                       f"qwen.py/test.sh; else '{DEFAULT_CAPTION_PROMPT}'); use the prompt you will caption with")
    add_views_arg(g, "multi-view caption files: which views, in this order (comma-separated)")
    a("--max_length", type=int, help="longest sample in tokens, image tokens included (default: the LM's context); "
                                     "longer samples stop the run before training, or are dropped with "
                                     "--skip_bad_samples")
    a("--skip_bad_samples", action="store_true", help="drop samples with a bad image or over --max_length (listed "
                                                      "in skipped_samples.json) instead of stopping")
    a("--max_samples", type=int, help="train on the first N samples only")
    a("--min_pixels", type=int, help="Qwen2.5-VL image processor: min pixels per image")
    a("--max_pixels", type=int, help="Qwen2.5-VL image processor: max pixels per image")
    add_max_image_pixels_arg(g)
    a("--preflight_workers", type=int, help="processes that tokenise the data before training (0: CPUs per rank)")
    a("--preflight_only", action="store_true", help="check settings, data and lengths, then exit (train.sh runs it "
                                                    "once before starting several processes)")
    a = p.add_argument_group("evaluation").add_argument
    a("--eval_data", help="held-out data (same formats; e.g. dataprocess.convert's val split): eval_loss")
    a("--eval_image_folder", help="folder the eval data's image paths are relative to (default: --image_folder)")
    a("--eval_strategy", choices=["no", "steps", "epoch"], help="when to evaluate (default: steps with --eval_data)")
    a("--eval_steps", type=int, help="evaluate every N steps (default: --save_steps)")
    a("--eval_generate", type=int, help="at each evaluation, caption the first N eval samples into "
                                        "eval_captions/step-N.json")
    a = p.add_argument_group("training scope").add_argument
    a("--lora_r", type=int, help="LoRA rank")
    a("--lora_alpha", type=int, help="LoRA scale (alpha / r multiplies the update)")
    a("--lora_dropout", type=float, help="dropout on the LoRA input")
    a("--lora_target", help="layers that get LoRA: names (q_proj,v_proj) or a regex (re.fullmatch on module names); "
                            "default: the LM's attention and MLP projections, fused ones (Phi-3) included")
    a("--train_lm_layers", type=int, metavar="N", help="train the last N decoder layers in full instead of LoRA")
    a("--unfreeze_vision", action="store_true", help="train the vision tower in full too")
    a("--unfreeze_merger", action="store_true", help="Qwen2.5-VL: train its patch merger in full too")
    a("--load_in_4bit", action="store_true", help="QLoRA: 4-bit base LM through bitsandbytes (CUDA GPUs only)")
    a = p.add_argument_group("training (HF Trainer names)").add_argument
    a("--output_dir", required=True, help="checkpoints, the final adapter, plots and reports")
    a("--overwrite_output_dir", action="store_true", help="start afresh although output_dir holds checkpoints")
    a("--resume_from_checkpoint", help="a checkpoint-N folder, or 'last' for the newest complete one in output_dir")
    a("--num_train_epochs", type=float, help="passes over the data")
    a("--max_steps", type=int, help="overrides --num_train_epochs when > 0")
    a("--per_device_train_batch_size", type=int, help="samples per step and process")
    a("--gradient_accumulation_steps", type=int, help="steps summed per optimizer step")
    a("--learning_rate", type=float, help="peak rate (LoRA / layers in full)")
    a("--projector_lr", type=float, help="learning rate of the projector / merger (default: --learning_rate)")
    a("--weight_decay", type=float, help="AdamW weight decay")
    a("--warmup_ratio", type=float, help="share of the steps spent warming up")
    a("--lr_scheduler_type", help="cosine, linear, constant, ...")
    a("--max_grad_norm", type=float, help="gradient clipping")
    a("--logging_steps", type=int, help="log the loss every N steps")
    a("--save_steps", type=int, help="write checkpoint-N every N steps")
    a("--save_total_limit", type=int, help="keep the newest N checkpoints")
    a("--seed", type=int, help="random seed (data order, dropout, projector init)")
    a("--bf16", action="store_true", help="bfloat16 mixed precision")
    a("--fp16", action="store_true", help="float16 mixed precision (GPU only)")
    a("--gradient_checkpointing", action="store_true", help="recompute activations: less memory")
    a("--deepspeed", help="zero2 | zero3 | zero3_offload (configs/deepspeed/) or a path to a DeepSpeed JSON config")
    a("--dataloader_num_workers", type=int, help="processes loading images")
    a("--group_by_length", action="store_true", help="batch samples of similar length (less padding)")
    a("--report_to", help="none, tensorboard, wandb (comma-separated; wandb offline: WANDB_MODE=offline)")
    a("--local_rank", type=int, help=argparse.SUPPRESS)  # set by the deepspeed launcher
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(**TrainOptions.defaults())
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    from vlmkit.training.run import run

    return run(TrainOptions.from_args(args))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_main(main)
