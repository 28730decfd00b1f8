"""The model a training run trains: its base (given, from the pre-training run, or composed), loaded with the
training scope applied (LoRA, parts in full, 4-bit), and the record of it every checkpoint carries."""

from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vlmkit.io import InputError
from vlmkit.training import checkpoint
from vlmkit.training.options import DataArguments, TrainOptions


def check_quantization(options: TrainOptions, cuda: bool, deepspeed_config: dict | None) -> None:
    """QLoRA (`--load_in_4bit`) runs on bitsandbytes' CUDA kernels: refused on CPU, before anything is loaded."""
    if not options.scope.load_in_4bit:
        return
    if not cuda:
        raise InputError("--load_in_4bit (QLoRA) needs a CUDA GPU: bitsandbytes' 4-bit kernels are GPU-only; "
                         "drop it on CPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise InputError("--load_in_4bit: the bitsandbytes package is not installed (pip install bitsandbytes)")
    if deepspeed_config is not None and (deepspeed_config.get("zero_optimization") or {}).get("stage", 0) == 3:
        raise InputError("--load_in_4bit with ZeRO-3: DeepSpeed cannot partition 4-bit weights; use zero2 or none")


def load_processor(base_dir: Path, data: DataArguments):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(base_dir)
    if data.min_pixels or data.max_pixels:
        # Qwen2.5-VL's pixel budget per image (size.shortest_edge/longest_edge are min/max pixels). The processor is
        # saved with every checkpoint, so inference uses the resolution the model was trained at.
        size = processor.image_processor.size
        pixels = {"shortest_edge": data.min_pixels or size.shortest_edge,
                  "longest_edge": data.max_pixels or size.longest_edge}
        processor = AutoProcessor.from_pretrained(base_dir, size=pixels)
    return processor


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


def resolve_base_model(options: TrainOptions, output_dir: Path, training_args) -> Path:
    """The checkpoint to train: given, taken from the pre-training run, or composed into output_dir/base."""
    from vlmkit.models import require_model_dir

    model = options.model
    if model.base_model:
        return require_model_dir(model.base_model, "base model", "--base_model").resolve()
    if model.pretrained_projector:
        return checkpoint.resolve_base(model.pretrained_projector).resolve()
    from vlmkit.training.compose import ensure_composed_base

    base_dir = (output_dir / "base").resolve()
    # The main process composes; the others wait at the barrier and then load the saved base like any checkpoint.
    with training_args.main_process_first(local=False, desc="compose the LLaVA base"):
        if training_args.process_index == 0:
            with whole_model_loading(training_args):
                ensure_composed_base(model.vision_model, model.lm_model, base_dir,
                                     vision_feature_layer=model.vision_feature_layer, seed=options.training.seed)
    return base_dir


def compute_dtype(options: TrainOptions):
    import torch

    training = options.training
    return torch.bfloat16 if training.bf16 else torch.float16 if training.fp16 else torch.float32


def load_for_training(options: TrainOptions, base_dir: Path, deepspeed: bool):
    """(model with the training scope applied, processor, modules trained in full)."""
    import torch
    from transformers import AutoModelForImageTextToText

    from vlmkit.training import lora

    scope, arch = options.scope, options.model.arch
    dtype = compute_dtype(options)
    processor = load_processor(base_dir, options.data)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if scope.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype if dtype != torch.float32 else torch.bfloat16,
            llm_int8_skip_modules=[*lora.VISION_PARTS, lora.PROJECTOR, "lm_head"])  # only the LM is quantised
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0") or 0)}
    model = AutoModelForImageTextToText.from_pretrained(base_dir, **kwargs)
    model_type = model.config.model_type
    if model_type != arch:
        raise InputError(f"{base_dir}: a {model_type} checkpoint, but --arch {arch}")
    model.config.use_cache = False
    projector_run = options.model.pretrained_projector
    if projector_run:
        checkpoint.load_weights(model, checkpoint.read_projector(projector_run), projector_run)

    lora.freeze(model)
    trained = lora.Scope(lora=options.lora, projector=arch == "llava", lm_layers=scope.train_lm_layers,
                         vision=scope.unfreeze_vision, merger=scope.unfreeze_merger)
    full = lora.full_modules(model, trained)
    if options.lora:
        if scope.load_in_4bit:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(
                model, use_gradient_checkpointing=options.training.gradient_checkpointing)
        model = lora.apply_lora(model, target=scope.lora_target, r=scope.lora_r, alpha=scope.lora_alpha,
                                dropout=scope.lora_dropout, modules_to_save=[m.rsplit(".", 1)[-1] for m in full],
                                autocast_adapter_dtype=not deepspeed)
    else:
        lora.unfreeze(model, full)
    if not deepspeed and not scope.load_in_4bit:
        # Without DeepSpeed there is no fp32 master copy: trainable weights stay in float32 and autocast runs
        # the matmuls in bf16/fp16; the frozen base keeps the low-precision dtype (the memory saving).
        for parameter in model.parameters():
            if parameter.requires_grad and parameter.dtype != torch.float32:
                parameter.data = parameter.data.float()
    if options.training.gradient_checkpointing:
        model.enable_input_require_grads()
    return model, processor, full


def training_info(options: TrainOptions, base_dir: Path, deepspeed_path: Path | None,
                  full: list[str] | None) -> dict:
    """What `vlmkit_training.json` records: enough for merge and inference to need only the output folder."""
    from vlmkit.training.lora import PROJECTOR, resolve_lora_target

    model, data, scope = options.model, options.data, options.scope
    eval_data = options.evaluation.eval_data
    info: dict[str, Any] = {
        "arch": model.arch,
        "stage": model.stage,
        "kind": "adapter" if options.lora else "weights",
        "base_model": str(base_dir),
        "projector_module": PROJECTOR if model.arch == "llava" else None,
        "data": str(Path(data.data).resolve()),
        "eval_data": str(Path(eval_data).resolve()) if eval_data else None,
        "prompt": data.prompt,
        "deepspeed": str(deepspeed_path) if deepspeed_path else None,
        "trained_in_full": full,
        "load_in_4bit": scope.load_in_4bit,
    }
    if options.lora:
        info["lora"] = {"target": resolve_lora_target(scope.lora_target), "r": scope.lora_r,
                        "alpha": scope.lora_alpha, "dropout": scope.lora_dropout}
    if model.pretrained_projector:
        info["pretrained_projector"] = str(Path(model.pretrained_projector).resolve())
    return info
