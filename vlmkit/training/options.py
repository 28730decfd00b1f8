"""Every setting of a training run, declared once: four dataclasses of this project's settings and one that extends
`transformers.TrainingArguments`, bundled as `TrainOptions`.

`train.py` builds its command line from them with `vlmkit.config_files.ConfigParser` (HfArgumentParser), so
`--help` lists TrainingArguments' own flags and a recipe file (`--config configs/train/NAME.yaml`) can set any of
them. The Trainer flags this project sets differently from HF (learning rate 2e-4, warm-up 3 %, cosine schedule,
one epoch, batch size 1, logging every 10 steps, ...) are field overrides here, not a second declaration elsewhere.
Ranges are field metadata, checked when a section is built; `TrainOptions.check` rejects combinations that cannot
work before anything heavy is loaded. HF's own `__post_init__` (device and DeepSpeed set-up) waits for
`VLMTrainingArguments.finalize`, which `vlmkit.training.run` calls after the preflight: a bad sample is found
before torch.distributed starts.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from transformers import TrainingArguments

from vlmkit.ids import VIEWS, parse_views
from vlmkit.images import max_image_pixels_option
from vlmkit.io import InputError
from vlmkit.options import check_ranges
from vlmkit.ranges import NON_NEGATIVE, POSITIVE, Range
from vlmkit.samples import DEFAULT_CAPTION_PROMPT

REPORT_BACKENDS = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}
EVAL_STRATEGIES = ("no", "steps", "epoch")


def arg(default: Any = None, help: str = "", **meta: Any) -> Any:
    """A field with its help and (optionally) `range`, `choices`, `parse`, `aliases`, `metavar`."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **meta})
    return field(default=default, metadata={"help": help, **meta})


class _Checked:
    def __post_init__(self) -> None:
        check_ranges(self)


@dataclass
class ModelArguments(_Checked):
    _argument_group_name: ClassVar[str] = "model"

    arch: str = arg("llava", "llava: vision tower + projector + LM; qwen2_5_vl: LoRA on an existing Qwen2.5-VL",
                    choices=["llava", "qwen2_5_vl"])
    stage: str = arg("finetune", "pretrain: projector only (LM frozen, no LoRA); finetune: LoRA on the LM + projector",
                     choices=["pretrain", "finetune"])
    vision_model: str | None = arg(None, "LLaVA: local CLIP/SigLIP folder to compose from (with --lm_model)")
    lm_model: str | None = arg(None, "LLaVA: local causal LM folder (Qwen2.5/3, Llama, Gemma, Phi-3: its own chat "
                                     "template)")
    base_model: str | None = arg(None, "an existing checkpoint to train (a composed/merged LLaVA, or Qwen2.5-VL)")
    pretrained_projector: str | None = arg(None, "finetune: a pre-training output folder; its projector initialises "
                                                 "this run's, and its base is used unless --base_model is given")
    vision_feature_layer: int = arg(-2, "composing: the vision layer that feeds the projector")

    @property
    def composing(self) -> bool:
        return bool(self.vision_model or self.lm_model)


@dataclass
class DataArguments(_Checked):
    _argument_group_name: ClassVar[str] = "data"

    data: str | None = arg(None, "training JSONL (dataprocess), captions.json, LLaVA JSON, or a caption file with "
                                 "'images' (e.g. groundTruth.json) plus --image_folder of multi-view objects")
    image_folder: str | None = arg(None, "folder the data's image paths are relative to (default: the data's folder)")
    prompt: str | None = arg(None, "instruction for caption-only data (default: for multi-view objects the caption "
                                   f"prompt of qwen.py/test.sh; else '{DEFAULT_CAPTION_PROMPT}'); use the prompt you "
                                   "will caption with")
    views: tuple[str, ...] = arg(VIEWS, "multi-view caption files: which views, in this order (comma-separated)",
                                 parse=parse_views)
    max_length: int | None = arg(None, "longest sample in tokens, image tokens included (default: the LM's context); "
                                       "longer samples stop the run before training, or are dropped with "
                                       "--skip_bad_samples", range=Range(16, optional=True))
    skip_bad_samples: bool = arg(False, "drop samples with a bad image or over --max_length (listed in "
                                        "skipped_samples.json) instead of stopping")
    max_samples: int | None = arg(None, "train on the first N samples only", range=Range(1, optional=True))
    min_pixels: int | None = arg(None, "Qwen2.5-VL image processor: min pixels per image")
    max_pixels: int | None = arg(None, "Qwen2.5-VL image processor: max pixels per image")
    max_image_pixels: int = max_image_pixels_option()
    preflight_workers: int = arg(0, "processes that tokenise the data before training (0: CPUs per rank)",
                                 range=NON_NEGATIVE)
    preflight_only: bool = arg(False, "check settings, data and lengths, then exit (train.sh runs it once before "
                                      "starting several processes)")

    def __post_init__(self) -> None:
        if isinstance(self.views, str):  # a programmatic run may spell them as on the command line
            self.views = parse_views(self.views)
        super().__post_init__()


@dataclass
class EvalArguments(_Checked):
    _argument_group_name: ClassVar[str] = "evaluation"

    eval_data: str | None = arg(None, "held-out data (same formats; e.g. dataprocess.convert's val split): eval_loss")
    eval_image_folder: str | None = arg(None, "folder the eval data's image paths are relative to (default: "
                                              "--image_folder)")
    eval_generate: int = arg(0, "at each evaluation, caption the first N eval samples into eval_captions/step-N.json",
                             range=NON_NEGATIVE)


@dataclass
class ScopeArguments(_Checked):
    _argument_group_name: ClassVar[str] = "training scope"

    lora_r: int = arg(16, "LoRA rank", range=POSITIVE)
    lora_alpha: int = arg(32, "LoRA scale (alpha / r multiplies the update)")
    lora_dropout: float = arg(0.05, "dropout on the LoRA input", range=Range(0, 1, hi_open=True))
    lora_target: str | None = arg(None, "layers that get LoRA: names (q_proj,v_proj) or a regex (re.fullmatch on "
                                        "module names); default: the LM's attention and MLP projections, fused ones "
                                        "(Phi-3) included")
    train_lm_layers: int = arg(0, "train the last N decoder layers in full instead of LoRA", metavar="N",
                               range=NON_NEGATIVE)
    unfreeze_vision: bool = arg(False, "train the vision tower in full too")
    unfreeze_merger: bool = arg(False, "Qwen2.5-VL: train its patch merger in full too")
    load_in_4bit: bool = arg(False, "QLoRA: 4-bit base LM through bitsandbytes (CUDA GPUs only)")


@dataclass
class VLMTrainingArguments(TrainingArguments):
    """HF's TrainingArguments with this project's defaults and the few settings HF does not have."""

    _argument_group_name: ClassVar[str] = "training (HF TrainingArguments; this project's defaults)"

    output_dir: str | None = arg(None, "checkpoints, the final adapter, plots and reports")
    overwrite_output_dir: bool = arg(False, "start afresh although output_dir holds checkpoints")
    resume_from_checkpoint: str | None = arg(None, "a checkpoint-N folder, or 'last' for the newest complete one in "
                                                   "output_dir")
    num_train_epochs: float = arg(1.0, "passes over the data")
    per_device_train_batch_size: int = arg(1, "samples per step and process", range=POSITIVE)
    per_device_eval_batch_size: int | None = arg(None, "eval samples per step and process (default: "
                                                       "--per_device_train_batch_size)", range=Range(1, optional=True))
    gradient_accumulation_steps: int = arg(1, "steps summed per optimizer step", range=POSITIVE)
    learning_rate: float = arg(2e-4, "peak rate (LoRA / layers in full)")
    projector_lr: float | None = arg(None, "learning rate of the projector / merger (default: --learning_rate)")
    warmup_ratio: float = arg(0.03, "share of the steps spent warming up (used when --warmup_steps is 0)",
                              range=Range(0, 1, hi_open=True))
    lr_scheduler_type: str = arg("cosine", "cosine, linear, constant, ...")
    logging_steps: int = arg(10, "log the loss every N steps", range=POSITIVE)
    save_steps: int = arg(500, "write checkpoint-N every N steps", range=POSITIVE)
    eval_strategy: str | None = arg(None, "when to evaluate (default: steps with --eval_data)",
                                    choices=list(EVAL_STRATEGIES))
    eval_steps: int | None = arg(None, "evaluate every N steps (default: --save_steps)", range=Range(1, optional=True))
    prediction_loss_only: bool = arg(True, "evaluate eval_loss only (no logits of the whole eval set kept)")
    gradient_checkpointing: bool = arg(False, "recompute activations: less memory")
    group_by_length: bool = arg(False, "batch samples of similar length (less padding)")
    dataloader_num_workers: int = arg(0, "processes loading images", range=Range(0))
    remove_unused_columns: bool = arg(False, "drop dataset columns the model's forward does not name (off: the "
                                             "collator needs them)")
    label_names: list[str] = arg(["labels"], "the batch keys holding the labels")
    logging_first_step: bool = arg(True, "log the loss of the first step")
    disable_tqdm: bool = arg(False, "no progress bars")
    report_to: str = arg("none", "none, tensorboard, wandb (comma-separated; wandb offline: WANDB_MODE=offline)")
    deepspeed: str | None = arg(None, "zero2 | zero3 | zero3_offload (configs/deepspeed/) or a path to a DeepSpeed "
                                      "JSON config")
    verbose: bool = arg(False, "debug logging", aliases=["-v"])

    def __post_init__(self) -> None:
        # HF's __post_init__ sets up the devices (torch.distributed) and DeepSpeed: deferred to `finalize`, which runs
        # after the preflight, so that a bad input is found first and on every rank alike.
        check_ranges(self)

    @property
    def report_backends(self) -> list[str]:
        return [b.strip() for b in self.report_to.split(",") if b.strip() and b.strip() != "none"]

    def finalize(self, cuda: bool) -> VLMTrainingArguments:
        """What TrainingArguments cannot say by itself, then HF's own set-up: the DeepSpeed name as its config file,
        the CPU when there is no GPU, the project's spellings (warm-up ratio, group by length, comma-separated
        report_to) in HF's terms."""
        from vlmkit.training.trainer import resolve_deepspeed_config

        ds_path = resolve_deepspeed_config(self.deepspeed)
        self.deepspeed = str(ds_path) if ds_path else None
        # Without CUDA the Trainer must be told to use the CPU: otherwise, with 2+ processes, it sets up for GPUs and
        # ZeRO-3 saves an empty adapter.
        self.use_cpu = self.use_cpu or not cuda
        if not self.warmup_steps:
            self.warmup_steps = self.warmup_ratio  # transformers 5: a float < 1 is a ratio of the total steps
        if self.per_device_eval_batch_size is None:
            self.per_device_eval_batch_size = self.per_device_train_batch_size
        if self.eval_strategy == "steps" and not self.eval_steps:
            self.eval_steps = self.save_steps
        if self.group_by_length:
            self.train_sampling_strategy = "group_by_length"
        self.activation_checkpointing = self.activation_checkpointing or self.gradient_checkpointing
        if self.activation_checkpointing and self.activation_checkpointing_kwargs is None:
            self.activation_checkpointing_kwargs = {"use_reentrant": False}
        self.report_to = self.report_backends or "none"  # type: ignore[assignment]
        super().__post_init__()
        return self


SECTIONS = {"model": ModelArguments, "data": DataArguments, "evaluation": EvalArguments, "scope": ScopeArguments,
            "training": VLMTrainingArguments}
REQUIRED = ("data", "output_dir")


@dataclass
class TrainOptions:
    """One run's settings, by section: `options.model.arch`, `options.training.learning_rate`."""

    model: ModelArguments = field(default_factory=ModelArguments)
    data: DataArguments = field(default_factory=DataArguments)
    evaluation: EvalArguments = field(default_factory=EvalArguments)
    scope: ScopeArguments = field(default_factory=ScopeArguments)
    training: VLMTrainingArguments = field(default_factory=VLMTrainingArguments)

    def __post_init__(self) -> None:
        if self.training.eval_strategy is None:  # the one place the default evaluation strategy is chosen
            self.training.eval_strategy = "steps" if self.evaluation.eval_data else "no"

    @classmethod
    def of(cls, **values: Any) -> TrainOptions:
        """Built from flat settings (train.py's flag names): `TrainOptions.of(base_model=..., data=..., ...)`."""
        sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
        owner = {f.name: name for name, section in SECTIONS.items() for f in fields(section) if f.init}
        for key, value in values.items():
            if key not in owner:
                raise TypeError(f"TrainOptions has no setting {key!r}")
            sections[owner[key]][key] = value
        return cls(**{name: SECTIONS[name](**kwargs) for name, kwargs in sections.items()})

    @property
    def lora(self) -> bool:
        """LoRA on the LM: fine-tuning, unless the last N LM layers are trained in full instead."""
        return self.model.stage == "finetune" and not self.scope.train_lm_layers

    def check(self) -> None:
        """Option combinations that make no sense, rejected before anything heavy is imported."""
        model, data, scope, training = self.model, self.data, self.scope, self.training
        if not data.data or not training.output_dir:
            raise InputError("--data and --output_dir are required")
        if model.composing and not (model.vision_model and model.lm_model):
            raise InputError("composing a LLaVA model needs both --vision_model and --lm_model")
        if model.arch == "qwen2_5_vl":
            if model.composing or model.pretrained_projector:
                raise InputError("--arch qwen2_5_vl fine-tunes an existing Qwen2.5-VL: pass --base_model only")
            if model.stage == "pretrain":
                raise InputError("--stage pretrain trains a LLaVA projector; Qwen2.5-VL's is trained (use finetune)")
            if training.projector_lr is not None and not (scope.unfreeze_merger or scope.unfreeze_vision):
                raise InputError("--projector_lr applies to Qwen2.5-VL's merger, which stays frozen without "
                                 "--unfreeze_merger")
            if not model.base_model:
                raise InputError("--arch qwen2_5_vl needs --base_model (a local Qwen2.5-VL folder)")
        else:
            if model.composing and model.base_model:
                raise InputError("pass either --vision_model + --lm_model (compose) or --base_model, not both")
            if model.pretrained_projector and model.stage == "pretrain":
                raise InputError("--pretrained_projector initialises a finetune run; drop it for --stage pretrain")
            if model.pretrained_projector and model.composing:
                raise InputError("--pretrained_projector brings its own base; drop --vision_model/--lm_model")
            if not (model.composing or model.base_model or model.pretrained_projector):
                raise InputError("--arch llava needs --vision_model + --lm_model, --base_model or "
                                 "--pretrained_projector")
            if scope.unfreeze_merger:
                raise InputError("--unfreeze_merger: Qwen2.5-VL's patch merger; LLaVA's projector trains anyway")
        if (data.min_pixels or data.max_pixels) and model.arch != "qwen2_5_vl":
            raise InputError("--min_pixels/--max_pixels set Qwen2.5-VL's dynamic resolution; LLaVA uses the vision "
                             "model's fixed input size")
        if scope.train_lm_layers:
            if model.stage == "pretrain":
                raise InputError("--train_lm_layers: --stage pretrain keeps the language model frozen")
            if scope.lora_target:
                raise InputError("--train_lm_layers trains the last layers in full instead of LoRA; drop --lora_target")
            if scope.load_in_4bit:
                raise InputError("--train_lm_layers cannot train 4-bit layers; drop --load_in_4bit")
        if training.eval_strategy != "no" and not self.evaluation.eval_data:
            raise InputError(f"--eval_strategy {training.eval_strategy} needs --eval_data")
        if self.evaluation.eval_generate and not self.evaluation.eval_data:
            raise InputError("--eval_generate needs --eval_data (it captions eval samples)")
        check_report_to(training.report_to)


def check_report_to(value: str, flag: str = "--report_to") -> None:
    """`--report_to` backends must be installed: checked before any model is loaded, not when the Trainer starts.
    `flag` names the setting in the message (retrieval configs: `<file>: report_to`)."""
    backends = [b.strip() for b in value.split(",") if b.strip()]
    for backend in backends:
        if backend == "none":
            continue
        if backend not in REPORT_BACKENDS:
            raise InputError(f"{flag} {backend}: choose none, {', '.join(REPORT_BACKENDS)} (comma-separated)")
        if not any(importlib.util.find_spec(m) is not None for m in REPORT_BACKENDS[backend]):
            hint = ("pip install wandb; without network set WANDB_MODE=offline and upload later with `wandb sync`"
                    if backend == "wandb" else "pip install tensorboard")
            raise InputError(f"{flag} {backend}: the {backend} package is not installed ({hint})")
    if "none" in backends and len(backends) > 1:
        raise InputError(f"{flag} {value}: 'none' excludes the others")
