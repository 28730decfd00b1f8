"""`retrieval.py train`: fine-tune a CLIP/SigLIP dual encoder on (text, image) pairs with sentence-transformers.

Order of work, so that a bad input costs nothing: config (keys, values) -> model folder (CLIP/SigLIP, from its
JSON) -> output folder (writable; a finished or started run there needs --resume_from_checkpoint or
--overwrite_output_dir) -> every image of the train and val data opened -> only then the model is loaded.

Training is `SentenceTransformerTrainer` (the HF Trainer): LoRA via `add_adapter`, the loss from
`vlmkit.retrieval.losses`, batches without duplicate texts or images (`BatchSamplers.NO_DUPLICATES`: a second
caption of the same image in a batch would be a false negative), checkpoints in `output_dir/checkpoints/`
(every `save_steps`, else every epoch; optimizer, scheduler and RNG state included, so `--resume_from_checkpoint
last` continues exactly), validation through `vlmkit.retrieval.evaluate` before training (zero-shot, epoch 0) and
per epoch (or every `eval_steps`). Several processes (torchrun / accelerate launch, see retrieval.sh): DDP, with
the negatives gathered across processes.

Output folder: the LoRA adapter (sentence-transformers layout, plus `vlmkit_retrieval.json` naming the base),
`merged/` (a standard HF CLIP/SigLIP folder; for a full fine-tune the only model copy), `metrics.jsonl` (one row per
validation), `training_curves.png`, `skipped_samples.json` (with skip_bad_samples), `checkpoints/`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from vlmkit.io import atomic_write_json, atomic_write_text
from vlmkit.outputs import OutputLock
from vlmkit.retrieval.config import RetrievalConfig
from vlmkit.retrieval.data import EvalSet, Pair
from vlmkit.retrieval.model import TRAINING_INFO
from vlmkit.retrieval.prepare import (  # noqa: F401  (prepare & co. are re-exported: tests, bench)
    CHECKPOINTS,
    FORMAT,
    SKIPPED_FILE,
    Prepared,
    check_resume_matches,
    checkpoints_in,
    prepare,
    resolve_resume,
    training_info,
    world,
)

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "training_curves.png"
# files a finished run leaves in output_dir (removed by --overwrite_output_dir, never anything else)
OWN_FILES = ("adapter_config.json", "adapter_model.safetensors", "modules.json", "sentence_bert_config.json",
             "config_sentence_transformers.json", "README.md", "processor_config.json", "preprocessor_config.json",
             "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
             METRICS_FILE, PLOT_FILE, SKIPPED_FILE, TRAINING_INFO)
OWN_DIRS = (CHECKPOINTS, "merged")


def clear_previous_run(output_dir: Path) -> None:
    """--overwrite_output_dir: remove what an earlier run wrote (and nothing else)."""
    for name in OWN_DIRS:
        if (output_dir / name).is_dir():
            shutil.rmtree(output_dir / name)
    for name in OWN_FILES:
        (output_dir / name).unlink(missing_ok=True)


def run(config: RetrievalConfig, resume: str | None = None, overwrite: bool = False,
        prep: Prepared | None = None) -> int:
    """Train; `prep` is `prepare(config, resume, overwrite)` when the caller has checked the inputs already."""
    started = time.time()
    if config.torch_distributed_debug != "no":
        os.environ["TORCH_DISTRIBUTED_DEBUG"] = config.torch_distributed_debug
    prep = prep or prepare(config, resume, overwrite)
    rank, world_size = world()
    if rank == 0:
        with OutputLock(prep.output_dir, "retrieval training output"):
            if overwrite:
                clear_previous_run(prep.output_dir)
            return _train(prep, started, rank, world_size)
    return _train(prep, started, rank, world_size)


# ------------------------------------------------------------------------------------------------ the run
def _make_collator(model: Any, image_columns: list[str]):
    """sentence-transformers' collator, with images opened by vlmkit.images (one policy for every loader)."""
    from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator

    from vlmkit.images import open_rgb

    @dataclass
    class ImagePathCollator(SentenceTransformerDataCollator):
        def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
            features = [{k: open_rgb(v) if k in image_columns else v for k, v in row.items()} for row in features]
            return super().__call__(features)

    return ImagePathCollator(preprocess_fn=model.preprocess)


def _dataset(pairs: list[Pair], negatives: int):
    """Columns query, positive, negative_1..k: image columns hold PATHS (cheap duplicate checks in the sampler);
    the collator opens them."""
    from datasets import Dataset

    columns: dict[str, list[str]] = {"query": [p.query for p in pairs], "positive": [p.positive for p in pairs]}
    for j in range(negatives):
        columns[f"negative_{j + 1}"] = [p.negatives[j] for p in pairs]
    return Dataset.from_dict(columns)


def _training_args(prep: Prepared, cuda: bool, world_size: int):
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    c = prep.config
    has_val = bool(prep.val) and c.eval_strategy != "no"
    return SentenceTransformerTrainingArguments(
        output_dir=str(prep.output_dir / CHECKPOINTS),
        num_train_epochs=c.epochs,
        max_steps=c.max_steps,
        per_device_train_batch_size=c.batch_size,
        per_device_eval_batch_size=c.eval_batch_size,
        gradient_accumulation_steps=c.gradient_accumulation_steps,
        learning_rate=c.learning_rate,
        weight_decay=c.weight_decay,
        max_grad_norm=c.max_grad_norm,
        lr_scheduler_type=c.scheduler_type,
        warmup_steps=c.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        logging_steps=c.logging_steps,
        logging_first_step=True,
        save_strategy="steps" if c.save_steps > 0 else "epoch",
        save_steps=c.save_steps if c.save_steps > 0 else 500,
        save_total_limit=c.save_total_limit,
        eval_strategy=c.eval_strategy if has_val else "no",
        eval_steps=c.eval_steps,
        # fresh run: the zero-shot row (epoch 0); resumed run: the row of the checkpoint's step, whose evaluation
        # (at the epoch end) may have come after the checkpoint was written
        eval_on_start=has_val,
        seed=c.seed,
        bf16=c.bf16,
        fp16=c.fp16,
        report_to=c.report_to,
        dataloader_num_workers=c.dataloader_num_workers,
        # gathering negatives across processes needs the same batch size everywhere
        dataloader_drop_last=world_size > 1,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        use_cpu=not cuda,
        ddp_backend="gloo" if world_size > 1 and not cuda else None,
        ddp_find_unused_parameters=False,
        disable_tqdm=False,
    )


def _load_model(prep: Prepared, device: str):
    from vlmkit.retrieval.losses import uses_logit_parameters
    from vlmkit.retrieval.model import add_lora, load_encoder

    c = prep.config
    model = load_encoder(prep.info.path, device, "model_name_or_path", prep.info)
    if c.use_lora:
        add_lora(model, c.lora_r, c.lora_alpha, c.lora_dropout, c.lora_target_modules)
    hf = model[0].model
    if not uses_logit_parameters(c):
        for name in ("logit_scale", "logit_bias"):
            if getattr(hf, name, None) is not None:
                getattr(hf, name).requires_grad_(False)
    return model


def _train(prep: Prepared, started: float, rank: int, world_size: int) -> int:
    import torch
    from sentence_transformers import SentenceTransformerTrainer

    from vlmkit.retrieval.evaluate import make_evaluator
    from vlmkit.retrieval.losses import build_loss
    from vlmkit.retrieval.model import trainable_summary

    c = prep.config
    cuda = torch.cuda.is_available()
    args = _training_args(prep, cuda, world_size)
    _ = args.device  # sets up torch.distributed now (torchrun / accelerate launch), before the model is built
    if not args.should_log:
        logging.getLogger().setLevel(logging.WARNING)
    model = _load_model(prep, "cuda" if cuda else "cpu")
    info = training_info(c, prep.info)
    evaluator = make_evaluator(EvalSet.from_pairs(prep.val), c.eval_batch_size) if prep.val else None
    curves = CurvesCallback(prep.output_dir, run_title(prep))
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=_dataset(prep.train, prep.negatives),
        loss=build_loss(model, c, distributed=world_size > 1), evaluator=evaluator,
        data_collator=_make_collator(model, ["positive"] + [f"negative_{j + 1}" for j in range(prep.negatives)]),
        callbacks=[InfoCallback(info), curves],
    )
    summary = trainable_summary(model)
    log.info("%s %s: %d training pairs (%d hard negatives each), %d validation pairs; trainable parameters %s of "
             "%s; %d process(es)", prep.info.label, c.model_name_or_path, len(prep.train), prep.negatives,
             len(prep.val), f"{summary['trainable']:,}", f"{summary['total']:,}", world_size)
    result = trainer.train(resume_from_checkpoint=str(prep.resume) if prep.resume else None)
    code = 0
    if trainer.is_world_process_zero():
        code = finish(prep, trainer, model, result, info, summary, started, world_size)
    if world_size > 1 and torch.distributed.is_initialized():
        torch.distributed.barrier()
    return code


def run_title(prep: Prepared) -> str:
    c = prep.config
    how = f"LoRA r{c.lora_r}" if c.use_lora else "full fine-tune"
    return f"{prep.info.label} {Path(c.model_name_or_path).name}: {c.loss_type}, {how}, batch {c.batch_size}"


def finish(prep: Prepared, trainer: Any, model: Any, result: Any, info: dict[str, Any], summary: dict[str, int],
           started: float, world_size: int) -> int:
    """Main process: final adapter (or full model), merged/, metrics, plot, and the run's info file (last).
    Returns 1 when the merge fails its check (the adapter is kept, merged/ is not written)."""
    from vlmkit.retrieval.model import MergeError, merge_adapter

    c, out = prep.config, prep.output_dir
    staging = out / f".final-staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    model.save(str(staging))
    merged_diff, merge_error = None, None
    if c.use_lora:
        for item in staging.iterdir():  # the adapter goes to output_dir itself
            os.replace(item, out / item.name)
        staging.rmdir()
        if c.merge:
            atomic_write_json(out / TRAINING_INFO, info)  # the base, for loading the adapter folder
            try:
                merged_diff = merge_adapter(out, out / "merged", device=str(model.device))
                log.info("merged adapter -> %s (embeddings match within %.1e)", out / "merged", merged_diff)
            except MergeError as exc:
                merge_error = str(exc)
                log.error("%s", exc)
    else:
        if (out / "merged").exists():
            shutil.rmtree(out / "merged")
        os.replace(staging, out / "merged")
    if prep.skipped:
        atomic_write_json(out / SKIPPED_FILE, [s.to_json() for s in prep.skipped])
    history = trainer.state.log_history
    rows = metrics_rows(history)
    write_metrics(out, history, rows, run_title(prep))
    atomic_write_json(out / TRAINING_INFO, {
        **info, "complete": True, "global_step": trainer.state.global_step, "train_loss": result.training_loss,
        "train_pairs": len(prep.train), "val_pairs": len(prep.val), "hard_negatives": prep.negatives,
        "skipped_pairs": len(prep.skipped), "trainable_parameters": summary, "world_size": world_size,
        "merged": str(out / "merged") if (out / "merged").is_dir() else None, "merge_max_abs_diff": merged_diff,
        "merge_error": merge_error,
        "final_validation": rows[-1] if rows else None, "seconds": round(time.time() - started, 1),
        "train_runtime": result.metrics.get("train_runtime"),
        "train_steps_per_second": result.metrics.get("train_steps_per_second")})
    best = rows[-1] if rows else None
    log.info("done: %d steps, loss %.4f%s; outputs in %s", trainer.state.global_step, result.training_loss,
             f"; val t2i R@1 {100 * best['t2i']['R@1']:.1f}%, MRR {best['t2i']['MRR']:.3f}" if best else "", out)
    return 1 if merge_error else 0


# ---------------------------------------------------------------------------------------- logs and curves
def metrics_rows(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """metrics.jsonl rows from the trainer's log history: one per validation (the last one per step wins, so a
    resumed run does not repeat rows), with the mean training loss logged since the previous validation."""
    rows: dict[int, dict[str, Any]] = {}
    losses: list[tuple[int, float]] = [(h["step"], h["loss"]) for h in history if "loss" in h]
    for entry in history:
        if "eval_t2i_MRR" not in entry:
            continue
        step = int(entry["step"])
        row: dict[str, Any] = {"epoch": round(float(entry.get("epoch", 0.0)), 4), "step": step}
        for direction in ("t2i", "i2t"):
            row[direction] = {k[len(f"eval_{direction}_"):]: float(v) for k, v in entry.items()
                              if k.startswith(f"eval_{direction}_")}
        rows[step] = row
    ordered = [rows[s] for s in sorted(rows)]
    previous = -1
    for row in ordered:
        window = [loss for s, loss in losses if previous < s <= row["step"]]
        row["train_loss"] = sum(window) / len(window) if window else None
        row["zero_shot"] = row["step"] == 0
        previous = row["step"]
    return ordered


def write_metrics(out: Path, history: list[dict[str, Any]], rows: list[dict[str, Any]], title: str) -> None:
    from vlmkit.retrieval.plot import plot_training

    atomic_write_text(out / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in rows))
    losses = [(int(h["step"]), float(h["loss"])) for h in history if "loss" in h]
    plot_training(losses, rows, out / PLOT_FILE, title)


class InfoCallback(TrainerCallback):
    """`vlmkit_retrieval.json` in every checkpoint: its base model and config (resume checks, eval --model)."""

    def __init__(self, info: dict[str, Any]):
        self.info = info

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():  # written last, with every file's size: marks the checkpoint complete
                from vlmkit.training.checkpoint import file_manifest

                files = {k: v for k, v in file_manifest(folder).items() if k != TRAINING_INFO}
                atomic_write_json(folder / TRAINING_INFO, {**self.info, "global_step": state.global_step,
                                                           "files": files})
        return control


class CurvesCallback(TrainerCallback):
    """metrics.jsonl and the PNG, rewritten from the log history after every validation."""

    def __init__(self, output_dir: Path, title: str):
        self.output_dir = output_dir
        self.title = title

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if state.is_world_process_zero:
            write_metrics(self.output_dir, state.log_history, metrics_rows(state.log_history), self.title)
        return control
