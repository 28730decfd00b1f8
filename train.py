"""Train a captioning VLM: a LLaVA-style model (frozen CLIP/SigLIP + MLP projector + Qwen LM with LoRA) or a LoRA
fine-tune of Qwen2.5-VL, with the HF Trainer, optionally on DeepSpeed ZeRO-2/3.

    # LLaVA: compose from a vision model and an LM, pre-train the projector, then LoRA fine-tune
    python train.py --vision_model models/siglip --lm_model models/Qwen2.5-1.5B-Instruct --stage pretrain \\
        --data data/train.jsonl --output_dir outputs/pretrain --learning_rate 1e-3
    python train.py --pretrained_projector outputs/pretrain --stage finetune \\
        --data data/train.jsonl --output_dir outputs/finetune --projector_lr 2e-5
    # Qwen2.5-VL: LoRA on its language model
    python train.py --arch qwen2_5_vl --base_model models/Qwen2.5-VL-3B-Instruct --data data/train.jsonl \\
        --output_dir outputs/qwen-sft
    # several GPUs: deepspeed --num_gpus 8 train.py ... --deepspeed zero3   (see train.sh)

Every checkpoint-N and the output folder hold the adapter (+ projector) and `vlmkit_training.json`; pass either
to merge_lora_weights.py or to test.sh.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from vlmkit.cli import HelpFormatter, add_views_arg, run_main, setup_logging
from vlmkit.io import InputError, atomic_write_json
from vlmkit.samples import DEFAULT_CAPTION_PROMPT

log = logging.getLogger("train")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    g = p.add_argument_group("model")
    g.add_argument("--arch", choices=["llava", "qwen2_5_vl"], default="llava",
                   help="llava: vision tower + projector + LM; qwen2_5_vl: LoRA on an existing Qwen2.5-VL")
    g.add_argument("--stage", choices=["pretrain", "finetune"], default="finetune",
                   help="pretrain: projector only (LM frozen, no LoRA); finetune: LoRA on the LM + projector")
    g.add_argument("--vision_model", help="LLaVA: local CLIP/SigLIP folder to compose from (with --lm_model)")
    g.add_argument("--lm_model", help="LLaVA: local Qwen2.5/Qwen3 causal LM folder to compose from")
    g.add_argument("--base_model", help="an existing checkpoint to train (a composed/merged LLaVA, or Qwen2.5-VL)")
    g.add_argument("--pretrained_projector",
                   help="finetune: a pre-training output folder; its projector initialises this run's, and its base "
                        "is used unless --base_model is given")
    g.add_argument("--vision_feature_layer", type=int, default=-2,
                   help="when composing: which vision layer feeds the projector (LLaVA uses the penultimate)")
    g = p.add_argument_group("data")
    g.add_argument("--data", required=True,
                   help="training JSONL (dataprocess), captions.json, LLaVA JSON, or a caption file with 'images' "
                        "(e.g. groundTruth.json) plus --image_folder of multi-view object folders")
    g.add_argument("--image_folder", help="folder the data's image paths are relative to (default: the data's folder)")
    g.add_argument("--prompt", default=None,
                   help="instruction for caption-only data (default: for multi-view objects the caption prompt of "
                        "qwen.py/test.sh with the views filled in; else '" + DEFAULT_CAPTION_PROMPT + "'); "
                        "use the prompt you will caption with")
    add_views_arg(g, "multi-view caption files: which views, in this order (comma-separated)")
    g.add_argument("--max_length", type=int, default=None, help="truncate longer samples (never inside image tokens)")
    g.add_argument("--min_pixels", type=int, default=None, help="Qwen2.5-VL image processor: min pixels per image")
    g.add_argument("--max_pixels", type=int, default=None, help="Qwen2.5-VL image processor: max pixels per image")
    g.add_argument("--skip_bad_samples", action="store_true",
                   help="skip samples with a missing/corrupt image (counted, listed in skipped_samples.json) "
                        "instead of stopping before training")
    g = p.add_argument_group("LoRA")
    g.add_argument("--lora_r", type=int, default=16)
    g.add_argument("--lora_alpha", type=int, default=32)
    g.add_argument("--lora_dropout", type=float, default=0.05)
    g.add_argument("--lora_target", default=None,
                   help="regex (re.fullmatch on module names) of the linear layers that get LoRA; default: the "
                        "language model's attention and MLP projections")
    g = p.add_argument_group("training (HF Trainer names)")
    g.add_argument("--output_dir", required=True)
    g.add_argument("--overwrite_output_dir", action="store_true",
                   help="start afresh although output_dir holds checkpoints")
    g.add_argument("--resume_from_checkpoint", default=None,
                   help="a checkpoint-N folder, or 'last' for the newest one in output_dir")
    g.add_argument("--num_train_epochs", type=float, default=1.0)
    g.add_argument("--max_steps", type=int, default=-1, help="overrides --num_train_epochs when > 0")
    g.add_argument("--per_device_train_batch_size", type=int, default=1)
    g.add_argument("--gradient_accumulation_steps", type=int, default=1)
    g.add_argument("--learning_rate", type=float, default=2e-4)
    g.add_argument("--projector_lr", type=float, default=None,
                   help="learning rate of the projector (default: --learning_rate)")
    g.add_argument("--weight_decay", type=float, default=0.0)
    g.add_argument("--warmup_ratio", type=float, default=0.03)
    g.add_argument("--lr_scheduler_type", default="cosine")
    g.add_argument("--max_grad_norm", type=float, default=1.0)
    g.add_argument("--logging_steps", type=int, default=10)
    g.add_argument("--save_steps", type=int, default=500)
    g.add_argument("--save_total_limit", type=int, default=None)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision")
    g.add_argument("--fp16", action="store_true", help="float16 mixed precision (GPU only)")
    g.add_argument("--gradient_checkpointing", action="store_true", help="recompute activations: less memory")
    g.add_argument("--deepspeed", default=None,
                   help="zero2 | zero3 | zero3_offload (configs/deepspeed/) or a path to a DeepSpeed JSON config")
    g.add_argument("--dataloader_num_workers", type=int, default=0)
    g.add_argument("--report_to", default="none", help="none, tensorboard, wandb, ...")
    g.add_argument("--local_rank", type=int, default=-1, help=argparse.SUPPRESS)  # set by the deepspeed launcher
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def check_args(args: argparse.Namespace) -> None:
    """Option combinations that make no sense, rejected before anything heavy is imported."""
    composing = bool(args.vision_model or args.lm_model)
    if composing and not (args.vision_model and args.lm_model):
        raise InputError("composing a LLaVA model needs both --vision_model and --lm_model")
    if args.arch == "qwen2_5_vl":
        if composing or args.pretrained_projector:
            raise InputError("--arch qwen2_5_vl fine-tunes an existing Qwen2.5-VL: pass --base_model only")
        if args.stage == "pretrain":
            raise InputError("--stage pretrain trains a LLaVA projector; Qwen2.5-VL's is trained (use finetune)")
        if args.projector_lr is not None:
            raise InputError("--projector_lr: Qwen2.5-VL's merger belongs to its frozen vision tower; nothing to set")
        if not args.base_model:
            raise InputError("--arch qwen2_5_vl needs --base_model (a local Qwen2.5-VL folder)")
    else:
        if composing and args.base_model:
            raise InputError("pass either --vision_model + --lm_model (compose) or --base_model, not both")
        if args.pretrained_projector and args.stage == "pretrain":
            raise InputError("--pretrained_projector initialises a finetune run; drop it for --stage pretrain")
        if args.pretrained_projector and composing:
            raise InputError("--pretrained_projector brings its own base; drop --vision_model/--lm_model")
        if not (composing or args.base_model or args.pretrained_projector):
            raise InputError("--arch llava needs --vision_model + --lm_model, --base_model or --pretrained_projector")
    if (args.min_pixels or args.max_pixels) and args.arch != "qwen2_5_vl":
        raise InputError("--min_pixels/--max_pixels set Qwen2.5-VL's dynamic resolution; LLaVA uses the vision "
                         "model's fixed input size")
    if args.max_length is not None and args.max_length < 16:
        raise InputError(f"--max_length {args.max_length}: too small")
    for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "lora_r"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be >= 1")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    check_args(args)
    started = time.time()

    # Data first: a bad file or image stops the run before any model is loaded.
    from vlmkit.training.data import load_samples, preflight_images

    samples, root = load_samples(args.data, args.image_folder, args.prompt, args.views)
    samples, skipped = preflight_images(samples, root, args.data, skip_bad=args.skip_bad_samples)
    if skipped:
        log.warning("skipping %d of %d samples with bad images (listed in %s/skipped_samples.json), e.g. %s",
                    len(skipped), len(samples) + len(skipped), args.output_dir, skipped[0].line())

    import torch

    from vlmkit.training import checkpoint as ckpt
    from vlmkit.training.trainer import check_combination, load_deepspeed_config, resolve_deepspeed_config

    cuda = torch.cuda.is_available()
    ds_path = resolve_deepspeed_config(args.deepspeed)
    ds_config = load_deepspeed_config(ds_path) if ds_path else None
    check_combination(deepspeed=ds_config, deepspeed_path=ds_path, cuda=cuda, bf16=args.bf16, fp16=args.fp16,
                      projector_lr=args.projector_lr, bf16_supported=cuda and torch.cuda.is_bf16_supported())
    output_dir = Path(args.output_dir)
    resume = resolve_resume(args, output_dir)
    pretrained_info = None
    if args.pretrained_projector:
        pretrained_info = ckpt.read_training_info(args.pretrained_projector)
        if not pretrained_info or pretrained_info.get("arch") != "llava":
            raise InputError(f"{args.pretrained_projector}: not a LLaVA training output of train.py "
                             f"(no {ckpt.TRAINING_INFO})")

    if ds_path is not None and "RANK" not in os.environ:
        # Started without a launcher (python train.py --deepspeed ...): one process. Without these DeepSpeed would
        # look for MPI to discover its peers.
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))

    from transformers import TrainingArguments

    training_args = TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=args.num_train_epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.per_device_train_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        lr_scheduler_type=args.lr_scheduler_type,
        max_grad_norm=args.max_grad_norm,
        logging_steps=args.logging_steps,
        save_strategy="steps",
        save_steps=args.save_steps,
        save_total_limit=args.save_total_limit,
        seed=args.seed,
        bf16=args.bf16,
        fp16=args.fp16,
        activation_checkpointing=args.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if args.gradient_checkpointing else None,
        deepspeed=str(ds_path) if ds_path else None,
        # Without CUDA the Trainer must be told to use the CPU: otherwise, with 2+ processes, it sets up for
        # GPUs and ZeRO-3 saves an empty adapter.
        use_cpu=not cuda,
        dataloader_num_workers=args.dataloader_num_workers,
        remove_unused_columns=False,
        label_names=["labels"],
        report_to=args.report_to,
        logging_first_step=True,
        disable_tqdm=False,
    )
    _ = training_args.device  # sets up torch.distributed / DeepSpeed now, before any model is built
    if ds_config is not None and not cuda:
        # The Trainer's CPU set-up starts torch.distributed (gloo) but not DeepSpeed's communication layer, which
        # ZeRO-3's partitioned loading (zero.Init inside from_pretrained) needs to see every process.
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo")
    if not training_args.should_log:
        logging.getLogger().setLevel(logging.WARNING)

    if resume is None and args.overwrite_output_dir and training_args.process_index == 0:
        import shutil

        for stale in ckpt.checkpoints_in(output_dir):  # else a later step of the old run would pose as this run's
            log.info("--overwrite_output_dir: removing %s", stale)
            shutil.rmtree(stale)
    try:
        return run_training(args, samples, root, skipped, training_args, ds_path, resume, pretrained_info, started)
    finally:
        if ds_path is not None:
            # The HF DeepSpeed config is process-global: clear it so that models loaded later in this process
            # (a merge, a test) are not built partitioned for ZeRO-3.
            from transformers.integrations.deepspeed import unset_hf_deepspeed_config

            unset_hf_deepspeed_config()


def run_training(args, samples, root, skipped, training_args, ds_path, resume, pretrained_info, started) -> int:
    from vlmkit.training import checkpoint as ckpt

    output_dir = Path(args.output_dir)
    base_dir = resolve_base_model(args, output_dir, training_args, pretrained_info)
    model, processor = load_for_training(args, base_dir, training_args, ds_path is not None, pretrained_info)

    from vlmkit.training.data import SupervisedDataset, VLMCollator
    from vlmkit.training.lora import trainable_summary
    from vlmkit.training.trainer import LossHistoryCallback, TrainingInfoCallback, VLMTrainer

    info = training_info(args, base_dir, ds_path)
    if resume:
        check_resume_matches(resume, info)
    losses = LossHistoryCallback()
    trainer = VLMTrainer(
        model=model,
        args=training_args,
        train_dataset=SupervisedDataset(samples, root, processor, args.max_length),
        data_collator=VLMCollator(processor.tokenizer.pad_token_id),
        processing_class=processor,
        callbacks=[TrainingInfoCallback(info), losses],
        projector_lr=args.projector_lr,
        projector_only=args.stage == "pretrain",
    )
    summary = trainable_summary(model)
    log.info("%d samples; trainable parameters: %s of %s (LoRA %s, projector %s)", len(samples),
             f"{summary['trainable']:,}", f"{summary['total']:,}", f"{summary['lora']:,}", f"{summary['projector']:,}")
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        trainer.save_state()
        ckpt.write_training_info(output_dir, info, global_step=trainer.state.global_step)
        if skipped:
            atomic_write_json(output_dir / "skipped_samples.json",
                              [{"id": s.sample_id, "image": s.image, "reason": s.reason} for s in skipped])
        atomic_write_json(output_dir / "train_summary.json", {
            "samples": len(samples),
            "skipped_samples": len(skipped),
            "global_step": trainer.state.global_step,
            "train_loss": result.training_loss,
            "logged_losses": losses.losses,
            "trainable_parameters": summary,
            "world_size": training_args.world_size,
            "seconds": round(time.time() - started, 1),
        })
        log.info("done: %d steps, loss %.4f; adapter%s in %s", trainer.state.global_step, result.training_loss,
                 "" if args.stage == "finetune" else " (projector)", output_dir)
    return 0


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def resolve_resume(args: argparse.Namespace, output_dir: Path) -> Path | None:
    from vlmkit.training.checkpoint import checkpoints_in

    existing = checkpoints_in(output_dir)
    if args.resume_from_checkpoint in (None, ""):
        if existing and not args.overwrite_output_dir:
            raise InputError(f"{output_dir}: holds {existing[-1].name}; pass --resume_from_checkpoint last to "
                             "continue, or --overwrite_output_dir to start afresh")
        return None
    if args.resume_from_checkpoint == "last":
        if not existing:
            raise InputError(f"{output_dir}: no checkpoint-N to resume from")
        return existing[-1]
    path = Path(args.resume_from_checkpoint)
    if not path.is_dir():
        raise InputError(f"--resume_from_checkpoint {path}: folder not found")
    return path


def check_resume_matches(resume: Path, info: dict) -> None:
    from vlmkit.training.checkpoint import read_training_info

    saved = read_training_info(resume)
    if saved is None:
        raise InputError(f"{resume}: no vlmkit_training.json; not a checkpoint of train.py")
    for key in ("arch", "stage", "base_model"):
        if saved.get(key) != info.get(key):
            raise InputError(f"{resume}: was trained with {key}={saved.get(key)}, this run has {info.get(key)}")


def resolve_base_model(args, output_dir: Path, training_args, pretrained_info) -> Path:
    """The checkpoint to train: given, taken from the pre-training run, or composed into output_dir/base."""
    from vlmkit.models import require_model_dir

    if args.base_model:
        return require_model_dir(args.base_model, "base model", "--base_model").resolve()
    if pretrained_info is not None:
        from vlmkit.training.checkpoint import resolve_base

        return resolve_base(args.pretrained_projector).resolve()
    from vlmkit.training.compose import ensure_composed_base

    base_dir = (output_dir / "base").resolve()
    # The main process composes (with ZeRO-3's partitioned loading switched off: it builds one whole model);
    # the others wait at the barrier and then load the saved base like any checkpoint.
    with training_args.main_process_first(local=False, desc="compose the LLaVA base"):
        if training_args.process_index == 0:
            with zero3_init_disabled():
                ensure_composed_base(args.vision_model, args.lm_model, base_dir,
                                     vision_feature_layer=args.vision_feature_layer, seed=args.seed)
    return base_dir


class zero3_init_disabled:
    """Temporarily hide the HF DeepSpeed config so `from_pretrained` loads whole (unpartitioned) weights."""

    def __enter__(self):
        from transformers.integrations import deepspeed as hf_ds

        self.saved = hf_ds._hf_deepspeed_config_weak_ref() if hf_ds._hf_deepspeed_config_weak_ref else None
        if self.saved is not None:
            hf_ds.unset_hf_deepspeed_config()
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            from transformers.integrations.deepspeed import set_hf_deepspeed_config

            set_hf_deepspeed_config(self.saved)
        return False


def load_for_training(args, base_dir: Path, training_args, deepspeed: bool, pretrained_info):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlmkit.training import lora
    from vlmkit.training.checkpoint import load_projector, read_projector

    dtype = torch.bfloat16 if args.bf16 else torch.float16 if args.fp16 else torch.float32
    processor = AutoProcessor.from_pretrained(base_dir)
    if args.min_pixels or args.max_pixels:
        # Qwen2.5-VL's pixel budget per image (size.shortest_edge/longest_edge are min/max pixels). The processor is
        # saved with every checkpoint, so inference uses the resolution the model was trained at.
        size = processor.image_processor.size
        pixels = {"shortest_edge": args.min_pixels or size.shortest_edge,
                  "longest_edge": args.max_pixels or size.longest_edge}
        processor = AutoProcessor.from_pretrained(base_dir, size=pixels)
    model = AutoModelForImageTextToText.from_pretrained(base_dir, dtype=dtype)
    model_type = model.config.model_type
    expected = {"llava": "llava", "qwen2_5_vl": "qwen2_5_vl"}[args.arch]
    if model_type != expected:
        raise InputError(f"{base_dir}: a {model_type} checkpoint, but --arch {args.arch}")
    model.config.use_cache = False
    if pretrained_info is not None:
        load_projector(model, read_projector(args.pretrained_projector), args.pretrained_projector)

    lora.freeze(model)
    if args.stage == "pretrain":
        lora.unfreeze_projector(model)
    else:
        model = lora.apply_lora(
            model, target=args.lora_target or lora.DEFAULT_LORA_TARGET, r=args.lora_r, alpha=args.lora_alpha,
            dropout=args.lora_dropout, train_projector=args.arch == "llava",
            autocast_adapter_dtype=not deepspeed)
    if not deepspeed:
        # Without DeepSpeed there is no fp32 master copy: trainable weights stay in float32 and autocast runs
        # the matmuls in bf16/fp16; the frozen base keeps the low-precision dtype (the memory saving).
        for p in model.parameters():
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()
    if args.gradient_checkpointing:
        model.enable_input_require_grads()
    return model, processor


def training_info(args, base_dir: Path, ds_path: Path | None) -> dict:
    from vlmkit.training.lora import DEFAULT_LORA_TARGET, PROJECTOR

    info = {
        "arch": args.arch,
        "stage": args.stage,
        "kind": "projector" if args.stage == "pretrain" else "adapter",
        "base_model": str(base_dir),
        "projector_module": PROJECTOR if args.arch == "llava" else None,
        "data": str(Path(args.data).resolve()),
        "prompt": args.prompt,
        "deepspeed": str(ds_path) if ds_path else None,
    }
    if args.stage == "finetune":
        info["lora"] = {"target": args.lora_target or DEFAULT_LORA_TARGET, "r": args.lora_r,
                        "alpha": args.lora_alpha, "dropout": args.lora_dropout}
    if args.pretrained_projector:
        info["pretrained_projector"] = str(Path(args.pretrained_projector).resolve())
    return info


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_main(main)
