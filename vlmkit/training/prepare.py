"""The data of a training run, before any weights load: every file read, every sample opened and tokenised.

`load_data` reads the train and eval files (formats, fields, image paths) without a model or processor, so a bad
file is refused before anything is built (the only cost before it: importing transformers for the command line).
`prepare_data` then builds the processor (no weights), preflights every sample against `--max_length` (default: the
language model's context) and writes `preflight.json` and `length_histogram.png`. `undo_on_input_error` keeps exit 2
from leaving those behind.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmkit.io import InputError, atomic_write_json
from vlmkit.samples import TrainingSample
from vlmkit.training import checkpoint
from vlmkit.training.options import TrainOptions
from vlmkit.training.preflight import PreflightResult

log = logging.getLogger("train")

PREFLIGHT_REPORT = "preflight.json"
LENGTH_HISTOGRAM = "length_histogram.png"
PREFLIGHT_CACHE = "preflight"


def process_rank() -> int:
    """This process's global rank under torchrun/deepspeed (0 without a launcher): rank 0 writes the reports."""
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


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


@dataclass
class DataFiles:
    """The train and eval files as read: samples and the folder their image paths are relative to."""

    samples: list[TrainingSample]
    root: Path
    eval_samples: list[TrainingSample]
    eval_root: Path | None


def load_data(options: TrainOptions) -> DataFiles:
    """The train and eval files read and checked (formats, fields, image paths); no model or processor needed."""
    from vlmkit.training.data import load_samples

    data, evaluation = options.data, options.evaluation
    samples, root = load_samples(data.data, data.image_folder, data.prompt, data.views)
    if data.max_samples and len(samples) > data.max_samples:
        log.info("--max_samples %d: training on the first %d of %d samples", data.max_samples, data.max_samples,
                 len(samples))
        samples = samples[:data.max_samples]
    eval_samples, eval_root = ([], None)
    if evaluation.eval_data:
        eval_samples, eval_root = load_samples(evaluation.eval_data, evaluation.eval_image_folder or data.image_folder,
                                               data.prompt, data.views)
    return DataFiles(samples, root, eval_samples, eval_root)


def base_for_preflight(options: TrainOptions, output_dir: Path) -> tuple[Path | None, Any]:
    """(base folder or None when it is still to be composed, its config) without loading weights."""
    from transformers import AutoConfig

    from vlmkit.models import check_model_files, require_model_dir

    model = options.model
    # check_model_files: a malformed config, missing or truncated weights are one line now, not a traceback
    # minutes later when the weights load.
    if model.base_model:
        base = check_model_files(require_model_dir(model.base_model, "base model", "--base_model"), "base model")
    elif model.pretrained_projector:
        base = check_model_files(checkpoint.resolve_base(model.pretrained_projector), "base model")
    else:
        from vlmkit.training.compose import compose_info

        base = output_dir / "base"
        if compose_info(base) is None:
            lm = check_model_files(require_model_dir(model.lm_model, "language model", "--lm_model"),
                                   "language model")
            if model.vision_model:
                check_model_files(require_model_dir(model.vision_model, "vision model", "--vision_model"),
                                  "vision model")
            return None, AutoConfig.from_pretrained(lm)
    try:
        return base, AutoConfig.from_pretrained(base)
    except (OSError, ValueError) as exc:
        raise InputError(f"{base}: unreadable model config ({str(exc).splitlines()[0][:200]})") from None


def prepare_data(options: TrainOptions, output_dir: Path, files: DataFiles | None = None) -> Prepared:
    """Build the processor (no weights) and preflight every train and eval sample of `load_data`."""
    from vlmkit.training import preflight as pf
    from vlmkit.training.model import load_processor

    files = files or load_data(options)
    data = options.data
    base, config = base_for_preflight(options, output_dir)
    if base is None:
        from vlmkit.training.compose import build_llava_processor

        processor, _ = build_llava_processor(options.model.vision_model, options.model.lm_model)
    else:
        processor = load_processor(base, data)
    context = pf.lm_context_length(config)
    if data.max_length:
        max_length, source = data.max_length, "given"
    elif context:
        max_length, source = context, "the language model's context"
    else:
        max_length, source = pf.DEFAULT_MAX_LENGTH, "default: the model's config states no context length"
    common = {"max_length": max_length, "max_length_source": source, "skip_bad": data.skip_bad_samples,
              "cache_dir": output_dir / PREFLIGHT_CACHE, "workers": data.preflight_workers or pf.default_workers()}
    train_result = pf.preflight(files.samples, files.root, processor, data_path=data.data, name="train", **common)
    eval_result = None
    if options.evaluation.eval_data:
        eval_result = pf.preflight(files.eval_samples, files.eval_root, processor,
                                   data_path=options.evaluation.eval_data, name="eval", **common)
    prepared = Prepared(train_result.kept, files.root, train_result, eval_result.kept if eval_result else [],
                        files.eval_root, eval_result)
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


@contextmanager
def undo_on_input_error(output_dir: Path):
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
