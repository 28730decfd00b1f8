"""One training run, from `TrainOptions` to a trained adapter: the orchestration `train.py` hands off to.

The order is the contract: everything that can be wrong with the input is found before anything expensive happens.

1. options, output folder (a file, not writable: one line), `--report_to` packages, DeepSpeed/precision/4-bit
   combinations, the checkpoint to resume (the newest *complete* one for `last`);
2. data: every file read, every sample opened and tokenised (`preflight`), lengths judged against `--max_length`
   (default: the language model's context), bad samples rejected in one line or dropped and listed;
3. only then torch.distributed / DeepSpeed, composing the LLaVA base, loading the model, training with evaluation,
   the loss curve, eval captions, complete-marked checkpoints, and a summary over the whole run (resumes included).

Under a launcher every rank runs steps 1-2 identically before any collective operation, so a bad input stops every
rank with exit status 2 and only rank 0 prints the line (`run`).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmkit.cli import EXIT_INPUT_ERROR
from vlmkit.distributed import close_process_group
from vlmkit.images import set_max_image_pixels
from vlmkit.io import InputError, atomic_write_json
from vlmkit.outputs import OutputLock, check_output_dir
from vlmkit.samples import TrainingSample
from vlmkit.training import checkpoint as ckpt
from vlmkit.training.options import TrainOptions, check_options
from vlmkit.training.preflight import PreflightResult

log = logging.getLogger("train")

SUMMARY = "train_summary.json"
PREFLIGHT_REPORT = "preflight.json"
LENGTH_HISTOGRAM = "length_histogram.png"


def process_rank() -> int:
    """This process's global rank under torchrun/deepspeed (0 without a launcher)."""
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


def run(options: TrainOptions) -> int:
    """Train; a bad input is an `InputError` on rank 0 and a quiet exit status 2 on the other ranks."""
    try:
        code = _run(options)
        close_process_group()
        return code
    except InputError:
        if process_rank() != 0:
            return EXIT_INPUT_ERROR  # rank 0 prints the same line; N copies of it would only be noise
        raise


@dataclass
class Prepared:
    """The data after the preflight, and what it was measured with."""

    samples: list[TrainingSample]
    root: Path
    train: PreflightResult
    eval_samples: list[TrainingSample] = field(default_factory=list)
    eval_root: Path | None = None
    eval: PreflightResult | None = None

    @property
    def skipped(self) -> list[dict[str, Any]]:
        rows = [{**s.to_json(), "split": "train"} for s in self.train.skipped]
        if self.eval is not None:
            rows += [{**s.to_json(), "split": "eval"} for s in self.eval.skipped]
        return rows


def _run(o: TrainOptions) -> int:
    started = time.time()
    check_options(o)
    if o.max_image_pixels < 0:
        raise InputError(f"--max_image_pixels {o.max_image_pixels}: must be >= 0 (0 = no limit)")
    set_max_image_pixels(o.max_image_pixels)
    output_dir = check_output_dir(o.output_dir)
    data = load_data(o)  # the data files, read before torch is imported: a bad file is refused in about a second

    import torch

    from vlmkit.training.trainer import check_combination, load_deepspeed_config, resolve_deepspeed_config

    cuda = torch.cuda.is_available()
    ds_path = resolve_deepspeed_config(o.deepspeed)
    ds_config = load_deepspeed_config(ds_path) if ds_path else None
    check_combination(deepspeed=ds_config, deepspeed_path=ds_path, cuda=cuda, bf16=o.bf16, fp16=o.fp16,
                      projector_lr=o.projector_lr, bf16_supported=cuda and torch.cuda.is_bf16_supported())
    check_quantization(o, cuda, ds_config)
    resume = resolve_resume(o, output_dir)
    pretrained_info = None
    if o.pretrained_projector:
        pretrained_info = ckpt.read_training_info(o.pretrained_projector)
        if not pretrained_info or pretrained_info.get("arch") != "llava":
            raise InputError(f"{o.pretrained_projector}: not a LLaVA training output of train.py "
                             f"(no {ckpt.TRAINING_INFO})")

    with OutputLock(output_dir, "training output") if process_rank() == 0 else nullcontext(), \
            _undo_on_input_error(output_dir):
        prepared = prepare_data(o, output_dir, data)
        if o.preflight_only:
            log.info("preflight only: data, images, lengths and settings are fine; nothing trained")
            return 0
        return train(o, prepared, output_dir, ds_path, ds_config, cuda, resume, pretrained_info, started)


PREFLIGHT_CACHE = "preflight"


@contextmanager
def _undo_on_input_error(output_dir: Path):
    """An input error found after the preflight wrote its report, histogram and caches (a bad eval file, a
    --lora_target that matches nothing) leaves the output folder as it was: exit 2 writes nothing. What existed
    before the run (an earlier run's report, caches) stays."""
    cache = output_dir / PREFLIGHT_CACHE
    before = {p for p in (output_dir / PREFLIGHT_REPORT, output_dir / LENGTH_HISTOGRAM) if p.exists()}
    before |= set(cache.rglob("*")) if cache.is_dir() else set()
    existed = output_dir.exists(), cache.exists()
    try:
        yield
    except InputError:
        if process_rank() == 0:
            for path in (output_dir / PREFLIGHT_REPORT, output_dir / LENGTH_HISTOGRAM,
                         *(cache.rglob("*") if cache.is_dir() else ())):
                if path not in before and path.is_file():
                    path.unlink(missing_ok=True)
            for folder, was in ((cache, existed[1]), (output_dir, existed[0])):
                if not was and folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        raise


# ------------------------------------------------------------------------------------------------ checks
def check_quantization(o: TrainOptions, cuda: bool, ds_config: dict | None) -> None:
    """QLoRA (`--load_in_4bit`) runs on bitsandbytes' CUDA kernels: refused on CPU, before anything is loaded."""
    if not o.load_in_4bit:
        return
    if not cuda:
        raise InputError("--load_in_4bit (QLoRA) needs a CUDA GPU: bitsandbytes' 4-bit kernels are GPU-only; "
                         "drop it on CPU")
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        raise InputError("--load_in_4bit: the bitsandbytes package is not installed (pip install bitsandbytes)")
    if ds_config is not None and (ds_config.get("zero_optimization") or {}).get("stage", 0) == 3:
        raise InputError("--load_in_4bit with ZeRO-3: DeepSpeed cannot partition 4-bit weights; use zero2 or none")


def resolve_resume(o: TrainOptions, output_dir: Path) -> Path | None:
    """The checkpoint to resume from; `last` is the newest complete one (an interrupted save is passed over)."""
    existing = ckpt.checkpoints_in(output_dir)
    if o.resume_from_checkpoint in (None, ""):
        if existing and not o.overwrite_output_dir:
            raise InputError(f"{output_dir}: holds {existing[-1].name}; pass --resume_from_checkpoint last to "
                             "continue, or --overwrite_output_dir to start afresh")
        return None
    if o.resume_from_checkpoint == "last":
        if not existing:
            raise InputError(f"{output_dir}: no checkpoint-N to resume from")
        passed = []
        for folder in reversed(existing):
            problem = ckpt.checkpoint_problem(folder)
            if problem is None:
                for bad, why in passed:
                    log.warning("%s is incomplete (%s): resuming from %s, the newest complete checkpoint",
                                bad.name, why, folder.name)
                return folder
            passed.append((folder, problem))
        raise InputError(f"{output_dir}: no complete checkpoint to resume from ({passed[0][0].name}: "
                         f"{passed[0][1]}); pass --overwrite_output_dir to start afresh")
    path = Path(o.resume_from_checkpoint)
    if not path.is_dir():
        raise InputError(f"--resume_from_checkpoint {path}: folder not found")
    problem = ckpt.checkpoint_problem(path)
    if problem:
        raise InputError(f"{path}: incomplete checkpoint ({problem}); --resume_from_checkpoint last picks the "
                         "newest complete one")
    return path


def _step(folder: Path) -> int:
    return int(folder.name.split("-")[-1])


# -------------------------------------------------------------------------------------------------- data
def base_for_preflight(o: TrainOptions, output_dir: Path) -> tuple[Path | None, Any]:
    """(base folder or None when it is still to be composed, its config) without loading weights."""
    from transformers import AutoConfig

    from vlmkit.models import check_model_files, require_model_dir

    # check_model_files: a malformed config, missing or truncated weights are one line now, not a traceback
    # minutes later when the weights load.
    if o.base_model:
        base = check_model_files(require_model_dir(o.base_model, "base model", "--base_model"), "base model")
    elif o.pretrained_projector:
        base = check_model_files(ckpt.resolve_base(o.pretrained_projector), "base model")
    else:
        from vlmkit.training.compose import compose_info

        base = output_dir / "base"
        if compose_info(base) is None:
            lm = check_model_files(require_model_dir(o.lm_model, "language model", "--lm_model"), "language model")
            if o.vision_model:
                check_model_files(require_model_dir(o.vision_model, "vision model", "--vision_model"),
                                  "vision model")
            return None, AutoConfig.from_pretrained(lm)
    try:
        return base, AutoConfig.from_pretrained(base)
    except (OSError, ValueError) as exc:
        raise InputError(f"{base}: unreadable model config ({str(exc).splitlines()[0][:200]})") from None


def load_processor(base_dir: Path, o: TrainOptions):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(base_dir)
    if o.min_pixels or o.max_pixels:
        # Qwen2.5-VL's pixel budget per image (size.shortest_edge/longest_edge are min/max pixels). The processor is
        # saved with every checkpoint, so inference uses the resolution the model was trained at.
        size = processor.image_processor.size
        pixels = {"shortest_edge": o.min_pixels or size.shortest_edge,
                  "longest_edge": o.max_pixels or size.longest_edge}
        processor = AutoProcessor.from_pretrained(base_dir, size=pixels)
    return processor


def load_data(o: TrainOptions) -> tuple[list[TrainingSample], Path, list[TrainingSample], Path | None]:
    """The train and eval files read and checked (formats, fields, image paths); no model or processor needed."""
    from vlmkit.training.data import load_samples

    samples, root = load_samples(o.data, o.image_folder, o.prompt, o.views)
    if o.max_samples and len(samples) > o.max_samples:
        log.info("--max_samples %d: training on the first %d of %d samples", o.max_samples, o.max_samples,
                 len(samples))
        samples = samples[:o.max_samples]
    eval_samples, eval_root = ([], None)
    if o.eval_data:
        eval_samples, eval_root = load_samples(o.eval_data, o.eval_image_folder or o.image_folder, o.prompt, o.views)
    return samples, root, eval_samples, eval_root


def prepare_data(o: TrainOptions, output_dir: Path, data: tuple | None = None) -> Prepared:
    """Build the processor (no weights) and preflight every train and eval sample of `load_data`."""
    from vlmkit.training import preflight as pf

    samples, root, eval_samples, eval_root = data or load_data(o)

    base, config = base_for_preflight(o, output_dir)
    if base is None:
        from vlmkit.training.compose import build_llava_processor

        processor, _ = build_llava_processor(o.vision_model, o.lm_model)
    else:
        processor = load_processor(base, o)
    context = pf.lm_context_length(config)
    if o.max_length:
        max_length, source = o.max_length, "given"
    elif context:
        max_length, source = context, "the language model's context"
    else:
        max_length, source = pf.DEFAULT_MAX_LENGTH, "default: the model's config states no context length"
    cache = output_dir / PREFLIGHT_CACHE
    workers = o.preflight_workers or pf.default_workers()
    common = {"max_length": max_length, "max_length_source": source, "skip_bad": o.skip_bad_samples,
              "cache_dir": cache, "workers": workers}
    train_result = pf.preflight(samples, root, processor, data_path=o.data, name="train", **common)
    eval_result = None
    if o.eval_data:
        eval_result = pf.preflight(eval_samples, eval_root, processor, data_path=o.eval_data, name="eval", **common)
    prepared = Prepared(train_result.kept, root, train_result, eval_result.kept if eval_result else [],
                        eval_root, eval_result)
    for what, result in (("train", train_result), ("eval", eval_result)):
        if result is not None:
            log.info("preflight (%s%s): %s", what, ", cached" if result.cached else "", result.describe())
            if result.skipped:
                log.warning("skipping %d of %d %s samples (listed in %s/skipped_samples.json), e.g. %s",
                            len(result.skipped), len(result.kept) + len(result.skipped), what, output_dir,
                            result.skipped[0].line())
    if process_rank() == 0:
        write_preflight_report(output_dir, prepared)
    return prepared


def write_preflight_report(output_dir: Path, prepared: Prepared) -> None:
    from vlmkit.training.plots import length_histogram

    report = {"train": prepared.train.summary()}
    if prepared.eval is not None:
        report["eval"] = prepared.eval.summary()
    atomic_write_json(output_dir / PREFLIGHT_REPORT, report)
    try:
        length_histogram(prepared.train.lengths, prepared.train.max_length, output_dir / LENGTH_HISTOGRAM,
                         f"{Path(prepared.train.data).name}: {len(prepared.samples)} samples")
    except (OSError, ValueError, RuntimeError) as exc:
        log.warning("length histogram not drawn: %s", exc)


# ------------------------------------------------------------------------------------------------- model
@contextmanager
def whole_model_loading(training_args):
    """Load whole (unpartitioned) weights while ZeRO-3 is configured.

    With the HF DeepSpeed config set, `from_pretrained` builds ZeRO-3-partitioned models (zero.Init); composing the
    base needs the whole weights in one process, so the config is cleared and then set back (public transformers
    API: the Trainer's own `TrainingArguments.hf_deepspeed_config`)."""
    from transformers.integrations.deepspeed import (
        is_deepspeed_zero3_enabled,
        set_hf_deepspeed_config,
        unset_hf_deepspeed_config,
    )

    active = is_deepspeed_zero3_enabled()
    if active:
        unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if active:
            set_hf_deepspeed_config(training_args.hf_deepspeed_config)


def resolve_base_model(o: TrainOptions, output_dir: Path, training_args) -> Path:
    """The checkpoint to train: given, taken from the pre-training run, or composed into output_dir/base."""
    from vlmkit.models import require_model_dir

    if o.base_model:
        return require_model_dir(o.base_model, "base model", "--base_model").resolve()
    if o.pretrained_projector:
        return ckpt.resolve_base(o.pretrained_projector).resolve()
    from vlmkit.training.compose import ensure_composed_base

    base_dir = (output_dir / "base").resolve()
    # The main process composes; the others wait at the barrier and then load the saved base like any checkpoint.
    with training_args.main_process_first(local=False, desc="compose the LLaVA base"):
        if training_args.process_index == 0:
            with whole_model_loading(training_args):
                ensure_composed_base(o.vision_model, o.lm_model, base_dir,
                                     vision_feature_layer=o.vision_feature_layer, seed=o.seed)
    return base_dir


def compute_dtype(o: TrainOptions):
    import torch

    return torch.bfloat16 if o.bf16 else torch.float16 if o.fp16 else torch.float32


def load_for_training(o: TrainOptions, base_dir: Path, deepspeed: bool):
    """(model with the training scope applied, processor, modules trained in full)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from vlmkit.training import lora

    dtype = compute_dtype(o)
    processor = load_processor(base_dir, o)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if o.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype if dtype != torch.float32 else torch.bfloat16,
            llm_int8_skip_modules=[*lora.VISION_PARTS, lora.PROJECTOR, "lm_head"])  # only the LM is quantised
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0") or 0)}
    model = AutoModelForImageTextToText.from_pretrained(base_dir, **kwargs)
    model_type = model.config.model_type
    if model_type != o.arch:
        raise InputError(f"{base_dir}: a {model_type} checkpoint, but --arch {o.arch}")
    model.config.use_cache = False
    if o.pretrained_projector:
        ckpt.load_weights(model, ckpt.read_projector(o.pretrained_projector), o.pretrained_projector)

    lora.freeze(model)
    scope = lora.Scope(lora=o.lora, projector=o.arch == "llava", lm_layers=o.train_lm_layers,
                       vision=o.unfreeze_vision, merger=o.unfreeze_merger)
    full = lora.full_modules(model, scope)
    if o.lora:
        if o.load_in_4bit:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=o.gradient_checkpointing)
        model = lora.apply_lora(model, target=o.lora_target, r=o.lora_r, alpha=o.lora_alpha, dropout=o.lora_dropout,
                                modules_to_save=[m.rsplit(".", 1)[-1] for m in full],
                                autocast_adapter_dtype=not deepspeed)
    else:
        lora.unfreeze(model, full)
    if not deepspeed and not o.load_in_4bit:
        # Without DeepSpeed there is no fp32 master copy: trainable weights stay in float32 and autocast runs
        # the matmuls in bf16/fp16; the frozen base keeps the low-precision dtype (the memory saving).
        for p in model.parameters():
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()
    if o.gradient_checkpointing:
        model.enable_input_require_grads()
    return model, processor, full


def training_info(o: TrainOptions, base_dir: Path, ds_path: Path | None, full: list[str] | None) -> dict:
    from vlmkit.training.lora import PROJECTOR, resolve_lora_target

    info: dict[str, Any] = {
        "arch": o.arch,
        "stage": o.stage,
        "kind": "adapter" if o.lora else "weights",
        "base_model": str(base_dir),
        "projector_module": PROJECTOR if o.arch == "llava" else None,
        "data": str(Path(o.data).resolve()),
        "eval_data": str(Path(o.eval_data).resolve()) if o.eval_data else None,
        "prompt": o.prompt,
        "deepspeed": str(ds_path) if ds_path else None,
        "trained_in_full": full,
        "load_in_4bit": o.load_in_4bit,
    }
    if o.lora:
        info["lora"] = {"target": resolve_lora_target(o.lora_target), "r": o.lora_r, "alpha": o.lora_alpha,
                        "dropout": o.lora_dropout}
    if o.pretrained_projector:
        info["pretrained_projector"] = str(Path(o.pretrained_projector).resolve())
    return info


def check_resume_matches(resume: Path, info: dict) -> None:
    saved = ckpt.read_training_info(resume)
    if saved is None:
        raise InputError(f"{resume}: no {ckpt.TRAINING_INFO}; not a checkpoint of train.py")
    legacy = {"projector": "weights"}
    for key in ("arch", "stage", "base_model", "kind", "trained_in_full"):
        if key not in saved and key != "arch":
            continue
        value = legacy.get(saved.get(key), saved.get(key)) if key == "kind" else saved.get(key)
        if value != info.get(key):
            raise InputError(f"{resume}: was trained with {key}={value}, this run has {info.get(key)}")


# ------------------------------------------------------------------------------------------------- train
def training_arguments(o: TrainOptions, output_dir: Path, ds_path: Path | None, cuda: bool):
    from transformers import TrainingArguments

    eval_strategy = o.eval_strategy or ("steps" if o.eval_data else "no")
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=o.num_train_epochs,
        max_steps=o.max_steps,
        per_device_train_batch_size=o.per_device_train_batch_size,
        per_device_eval_batch_size=o.per_device_train_batch_size,
        gradient_accumulation_steps=o.gradient_accumulation_steps,
        learning_rate=o.learning_rate,
        weight_decay=o.weight_decay,
        warmup_steps=o.warmup_ratio,  # transformers 5: a float < 1 is a ratio of the total steps
        lr_scheduler_type=o.lr_scheduler_type,
        max_grad_norm=o.max_grad_norm,
        logging_steps=o.logging_steps,
        save_strategy="steps",
        save_steps=o.save_steps,
        save_total_limit=o.save_total_limit,
        eval_strategy=eval_strategy,
        eval_steps=(o.eval_steps or o.save_steps) if eval_strategy == "steps" else None,
        prediction_loss_only=True,  # eval_loss only: no logits of the whole eval set kept in memory
        train_sampling_strategy="group_by_length" if o.group_by_length else "random",
        seed=o.seed,
        bf16=o.bf16,
        fp16=o.fp16,
        activation_checkpointing=o.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if o.gradient_checkpointing else None,
        deepspeed=str(ds_path) if ds_path else None,
        # Without CUDA the Trainer must be told to use the CPU: otherwise, with 2+ processes, it sets up for
        # GPUs and ZeRO-3 saves an empty adapter.
        use_cpu=not cuda,
        dataloader_num_workers=o.dataloader_num_workers,
        remove_unused_columns=False,
        label_names=["labels"],
        report_to=o.report_backends or "none",
        logging_first_step=True,
        disable_tqdm=False,
    )


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


def train(o: TrainOptions, prepared: Prepared, output_dir: Path, ds_path: Path | None, ds_config: dict | None,
          cuda: bool, resume: Path | None, pretrained_info: dict | None, started: float) -> int:
    if ds_path is not None and "RANK" not in os.environ:
        # Started without a launcher (python train.py --deepspeed ...): one process. Without these DeepSpeed would
        # look for MPI to discover its peers.
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    training_args = training_arguments(o, output_dir, ds_path, cuda)
    _ = training_args.device  # sets up torch.distributed / DeepSpeed now, before any model is built
    if ds_config is not None and not cuda:
        # The Trainer's CPU set-up starts torch.distributed (gloo) but not DeepSpeed's communication layer, which
        # ZeRO-3's partitioned loading (zero.Init inside from_pretrained) needs to see every process.
        import deepspeed

        deepspeed.init_distributed(dist_backend="gloo")
    if not training_args.should_log:
        logging.getLogger().setLevel(logging.WARNING)
    if training_args.process_index == 0:
        for folder in ckpt.checkpoints_in(output_dir):
            if resume is None and o.overwrite_output_dir:  # else a later step of the old run would pose as ours
                log.info("--overwrite_output_dir: removing %s", folder)
                shutil.rmtree(folder)
            elif resume is not None and _step(folder) > _step(resume) and ckpt.checkpoint_problem(folder):
                log.info("removing the incomplete %s", folder)
                shutil.rmtree(folder)
    try:
        return _train(o, prepared, output_dir, training_args, ds_path, resume, started)
    finally:
        if ds_path is not None:
            # The HF DeepSpeed config is process-global: clear it so that models loaded later in this process
            # (a merge, a test) are not built partitioned for ZeRO-3.
            from transformers.integrations.deepspeed import unset_hf_deepspeed_config

            unset_hf_deepspeed_config()


def _train(o: TrainOptions, prepared: Prepared, output_dir: Path, training_args, ds_path: Path | None,
           resume: Path | None, started: float) -> int:
    from vlmkit.training import callbacks as cb
    from vlmkit.training.data import SupervisedDataset, VLMCollator
    from vlmkit.training.lora import describe, trainable_summary
    from vlmkit.training.trainer import VLMTrainer

    base_dir = resolve_base_model(o, output_dir, training_args)
    model, processor, full = load_for_training(o, base_dir, ds_path is not None)
    info = training_info(o, base_dir, ds_path, full)
    elapsed_before = 0.0
    if resume:
        check_resume_matches(resume, info)
        elapsed_before = float((ckpt.read_training_info(resume) or {}).get("elapsed_seconds") or 0.0)
    max_length = prepared.train.max_length
    callbacks = [cb.CheckpointInfoCallback(info, elapsed_before), cb.LogAtSaveCallback(),
                 cb.LossCurveCallback(output_dir, f"{output_dir.name}: {o.arch} {o.stage}")]
    if o.eval_generate and prepared.eval_samples:
        callbacks.append(cb.EvalCaptionsCallback(
            prepared.eval_samples[:o.eval_generate], prepared.eval_root, processor, output_dir,
            autocast_dtype=compute_dtype(o) if (o.bf16 or o.fp16) else None))
    trainer = VLMTrainer(
        model=model,
        args=training_args,
        train_dataset=SupervisedDataset(prepared.samples, prepared.root, processor, max_length),
        eval_dataset=(SupervisedDataset(prepared.eval_samples, prepared.eval_root, processor, max_length)
                      if prepared.eval_samples else None),
        data_collator=VLMCollator(processor.tokenizer.pad_token_id),
        processing_class=processor,
        callbacks=callbacks,
        projector_lr=o.projector_lr,
        weights_only=not o.lora,
        lengths=prepared.train.lengths if o.group_by_length else None,
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
        ckpt.write_training_info(output_dir, info, global_step=trainer.state.global_step)
        if prepared.skipped:
            atomic_write_json(output_dir / "skipped_samples.json", prepared.skipped)
        atomic_write_json(output_dir / SUMMARY, run_summary(
            trainer.state.log_history, prepared=prepared, global_step=trainer.state.global_step,
            session_loss=result.training_loss, trainable=summary, full=full, resume=resume,
            world_size=training_args.world_size, seconds=round(elapsed_before + time.time() - started, 1)))
        log.info("done: %d steps, loss %.4f; %s in %s", trainer.state.global_step, result.training_loss,
                 "adapter" if o.lora else "trained weights", output_dir)
    return 0


def whole_run_loss(log_history: list[dict[str, Any]]) -> float | None:
    """Mean training loss per step over the whole run, from the logged window means (each the mean of the steps
    since the previous log). `LogAtSaveCallback` logs at every checkpoint and at the end, so the windows cover every
    step, also across a resume, where the Trainer's own `train_loss` covers the resumed steps only."""
    points = sorted({int(e["step"]): float(e["loss"]) for e in log_history if "loss" in e}.items())
    total, previous = 0.0, 0
    for step, loss in points:
        total += loss * (step - previous)
        previous = step
    return total / previous if previous else None


def run_summary(log_history: list[dict[str, Any]], *, prepared: Prepared, global_step: int, session_loss: float,
                trainable: dict[str, Any], full: list[str], resume: Path | None, world_size: int,
                seconds: float) -> dict[str, Any]:
    return {
        "samples": len(prepared.samples),
        "skipped_samples": len(prepared.train.skipped),
        "eval_samples": len(prepared.eval_samples),
        "global_step": global_step,
        "train_loss": whole_run_loss(log_history),
        "train_loss_this_session": session_loss,
        "logged_losses": [[int(e["step"]), float(e["loss"])] for e in log_history if "loss" in e],
        "eval_losses": [[int(e["step"]), float(e["eval_loss"])] for e in log_history if "eval_loss" in e],
        "trainable_parameters": trainable,
        "trained_in_full": full,
        "resumed_from": str(resume) if resume else None,
        "max_length": prepared.train.max_length,
        "world_size": world_size,
        "seconds": seconds,
    }
