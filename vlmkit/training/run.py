"""One training run, from `TrainOptions` to a trained adapter: the orchestration `train.py` hands off to.

The order is the contract: everything that can be wrong with the input is found before anything expensive happens.

1. options, output folder (a file, not writable: one line), `--report_to` packages, DeepSpeed/precision/4-bit
   combinations, the checkpoint to resume (the newest *complete* one for `last`);
2. data: every file read, every sample opened and tokenised (`prepare`), lengths judged against `--max_length`
   (default: the language model's context), bad samples rejected in one line or dropped and listed;
3. only then torch.distributed / DeepSpeed (`VLMTrainingArguments.finalize`), composing the LLaVA base, loading the
   model (`model`), training with evaluation, the loss curve, eval captions, complete-marked checkpoints, and a
   summary over the whole run, resumes included (`summary`).

Under a launcher every rank runs steps 1-2 identically before any collective operation, so a bad input stops every
rank with exit status 2 and only rank 0 prints the line (`run`).
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from vlmkit.cli import EXIT_INPUT_ERROR
from vlmkit.distributed import close_process_group
from vlmkit.images import set_max_image_pixels
from vlmkit.io import InputError, atomic_write_json
from vlmkit.outputs import OutputLock, check_output_dir
from vlmkit.training import checkpoint
from vlmkit.training import model as model_setup
from vlmkit.training.options import TrainOptions
from vlmkit.training.prepare import Prepared, load_data, prepare_data, process_rank, undo_on_input_error
from vlmkit.training.summary import SUMMARY, run_summary

log = logging.getLogger("train")


@dataclass
class RunSetup:
    """What the checks before training settled: where, on what hardware, from which checkpoint."""

    output_dir: Path
    cuda: bool
    deepspeed_path: Path | None
    deepspeed_config: dict | None
    resume: Path | None
    started: float


def run(options: TrainOptions) -> int:
    """Train; a bad input is an `InputError` on rank 0 and a quiet exit status 2 on the other ranks."""
    try:
        code = checked_run(options)
        close_process_group()
        return code
    except InputError:
        if process_rank() != 0:
            return EXIT_INPUT_ERROR  # rank 0 prints the same line; N copies of it would only be noise
        raise


def checked_run(options: TrainOptions) -> int:
    """Steps 1 and 2 of the module's contract, then `train`."""
    started = time.time()
    options.check()
    set_max_image_pixels(options.data.max_image_pixels)
    output_dir = check_output_dir(options.training.output_dir)
    files = load_data(options)  # the data files, read before any processor or weights: a bad file costs nothing

    import torch

    from vlmkit.training.trainer import check_combination, load_deepspeed_config, resolve_deepspeed_config

    training = options.training
    cuda = torch.cuda.is_available()
    deepspeed_path = resolve_deepspeed_config(training.deepspeed)
    deepspeed_config = load_deepspeed_config(deepspeed_path) if deepspeed_path else None
    check_combination(deepspeed=deepspeed_config, deepspeed_path=deepspeed_path, cuda=cuda, bf16=training.bf16,
                      fp16=training.fp16, projector_lr=training.projector_lr,
                      bf16_supported=cuda and torch.cuda.is_bf16_supported())
    model_setup.check_quantization(options, cuda, deepspeed_config)
    resume = checkpoint.resolve_resume(training.resume_from_checkpoint, training.overwrite_output_dir, output_dir)
    check_pretrained_projector(options.model.pretrained_projector)
    setup = RunSetup(output_dir, cuda, deepspeed_path, deepspeed_config, resume, started)

    with OutputLock(output_dir, "training output") if process_rank() == 0 else nullcontext(), \
            undo_on_input_error(output_dir):
        prepared = prepare_data(options, output_dir, files)
        if options.data.preflight_only:
            log.info("preflight only: data, images, lengths and settings are fine; nothing trained")
            return 0
        return train(options, prepared, setup)


def check_pretrained_projector(folder: str | None) -> None:
    if folder:
        info = checkpoint.read_training_info(folder)
        if not info or info.get("arch") != "llava":
            raise InputError(f"{folder}: not a LLaVA training output of train.py (no {checkpoint.TRAINING_INFO})")


def one_line(exc: InputError) -> str:
    """The message of an InputError raised in a DataLoader worker, without the traceback torch wraps around it."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    if len(lines) <= 1:
        return last
    for prefix in ("vlmkit.io.InputError: ", "InputError: "):
        if last.startswith(prefix):
            return last[len(prefix):]
    return last


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train(options: TrainOptions, prepared: Prepared, setup: RunSetup) -> int:
    """Step 3: distributed set-up, then `train_model`; the process-global DeepSpeed config is cleared after."""
    if setup.deepspeed_path is not None and "RANK" not in os.environ:
        # Started without a launcher (python train.py --deepspeed ...): one process. Without these DeepSpeed would
        # look for MPI to discover its peers.
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    options.training.output_dir = str(setup.output_dir)
    try:
        training_args = options.training.finalize(setup.cuda)  # sets up torch.distributed / DeepSpeed now
        if setup.deepspeed_config is not None and not setup.cuda:
            # The Trainer's CPU set-up starts torch.distributed (gloo) but not DeepSpeed's communication layer,
            # which ZeRO-3's partitioned loading (zero.Init inside from_pretrained) needs to see every process.
            import deepspeed

            deepspeed.init_distributed(dist_backend="gloo")
        if not training_args.should_log:
            logging.getLogger().setLevel(logging.WARNING)
        if training_args.process_index == 0:
            checkpoint.clear_stale_checkpoints(setup.output_dir, setup.resume, training_args.overwrite_output_dir)
        return train_model(options, prepared, setup, training_args)
    finally:
        if setup.deepspeed_path is not None:
            # The HF DeepSpeed config is process-global: clear it so that models loaded later in this process
            # (a merge, a test) are not built partitioned for ZeRO-3.
            from transformers.integrations.deepspeed import unset_hf_deepspeed_config

            unset_hf_deepspeed_config()


def train_model(options: TrainOptions, prepared: Prepared, setup: RunSetup, training_args) -> int:
    """Load, train, save: the adapter (or trained weights), its record, the skipped samples and the summary."""
    from vlmkit.training import callbacks as cb
    from vlmkit.training.data import SupervisedDataset, VLMCollator
    from vlmkit.training.lora import describe, trainable_summary
    from vlmkit.training.trainer import VLMTrainer

    output_dir, resume, training = setup.output_dir, setup.resume, options.training
    base_dir = model_setup.resolve_base_model(options, output_dir, training_args)
    model, processor, full = model_setup.load_for_training(options, base_dir, setup.deepspeed_path is not None)
    info = model_setup.training_info(options, base_dir, setup.deepspeed_path, full)
    elapsed_before = 0.0
    if resume:
        checkpoint.check_resume_matches(resume, info)
        elapsed_before = float((checkpoint.read_training_info(resume) or {}).get("elapsed_seconds") or 0.0)
    max_length = prepared.train.max_length
    callbacks = [cb.CheckpointInfoCallback(info, elapsed_before), cb.LogAtSaveCallback(),
                 cb.LossCurveCallback(output_dir, f"{output_dir.name}: {options.model.arch} {options.model.stage}")]
    eval_generate = options.evaluation.eval_generate
    if eval_generate and prepared.eval_samples:
        callbacks.append(cb.EvalCaptionsCallback(
            prepared.eval_samples[:eval_generate], prepared.eval_root, processor, output_dir,
            autocast_dtype=model_setup.compute_dtype(options) if (training.bf16 or training.fp16) else None))
    trainer = VLMTrainer(
        model=model,
        args=training_args,
        train_dataset=SupervisedDataset(prepared.samples, prepared.root, processor, max_length),
        eval_dataset=(SupervisedDataset(prepared.eval_samples, prepared.eval_root, processor, max_length)
                      if prepared.eval_samples else None),
        data_collator=VLMCollator(processor.tokenizer.pad_token_id),
        processing_class=processor,
        callbacks=callbacks,
        projector_lr=training.projector_lr,
        weights_only=not options.lora,
        lengths=prepared.train.lengths if training.group_by_length else None,
    )
    summary = trainable_summary(model)
    log.info("%d samples; trainable parameters: %s%s", len(prepared.samples), describe(summary),
             f"; trained in full: {', '.join(full)}" if full else "")
    try:
        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except InputError as exc:  # raised in a DataLoader worker, it arrives wrapped in the worker's traceback
        raise InputError(one_line(exc)) from None
    trainer.save_model(str(output_dir))
    if trainer.is_world_process_zero():
        trainer.save_state()
        checkpoint.write_training_info(output_dir, info, global_step=trainer.state.global_step)
        if prepared.skipped:
            atomic_write_json(output_dir / "skipped_samples.json", prepared.skipped)
        atomic_write_json(output_dir / SUMMARY, run_summary(
            trainer.state.log_history, prepared=prepared, global_step=trainer.state.global_step,
            session_loss=result.training_loss, trainable=summary, full=full, resume=resume,
            world_size=training_args.world_size, seconds=round(elapsed_before + time.time() - setup.started, 1)))
        log.info("done: %d steps, loss %.4f; %s in %s", trainer.state.global_step, result.training_loss,
                 "adapter" if options.lora else "trained weights", output_dir)
    return 0
