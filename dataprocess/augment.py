r"""Re-caption a training set with a local image-to-text model (BLIP-2 class captioner or any VLM).

    python -m dataprocess.augment --input data/train.jsonl --output data/train_recaptioned.jsonl \
        --model_path ./models/Qwen2.5-VL-3B-Instruct --batch_size 8
    python -m dataprocess.augment --input data/train.jsonl --output data/train_gpt.jsonl \
        --backend openai --api_base https://api.openai.com/v1 --api_model gpt-4o --concurrency 16

Reads and writes the training JSONL of `vlmkit.samples` (one sample per line: id, images, conversations). Each
single-answer sample gets its answer replaced by the model's caption of the sample's images; the old answer is kept in
`original_caption` and a `provenance` field records model, prompt, decoding settings and time. The prompt is the
sample's own question (its human turn without the `<image>` placeholders) unless --prompt/--prompt_file is given.
Image paths are rewritten relative to the output file's folder, so the output is a training file in its own right.

Generation goes through the same engine as qwen.py/caption.py (true batches, one failure never stops the run). The
output is rewritten atomically after every batch; --resume skips ids already in it. Samples that cannot be
re-captioned (missing image, multi-answer conversation, empty answer from the model) are not written: each is listed
with its reason in <output>.report.json and the exit status is 1, so --resume retries exactly those.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from vlmkit.cli import run_main, setup_logging
from vlmkit.executor import ExecutorOptions
from vlmkit.generation.engines import EngineOptions, api_identity
from vlmkit.generation.hf_backend import HFOptions
from vlmkit.generation.items import CaptionItem
from vlmkit.generation.model_setup import (
    ModelOptions,
    captioner_factory,
    check_model,
    make_hf_captioner,
    model_name,
    ray_engine,
)
from vlmkit.generation.outputs import check_writable_target
from vlmkit.generation.runner import RunStats, Success, now_iso, run_captioning
from vlmkit.generation.sampling import GenerationSettings
from vlmkit.images import max_image_pixels_option, set_max_image_pixels
from vlmkit.io import InputError, atomic_write_jsonl, remove_stale_temps
from vlmkit.multiview import ObjectFolder
from vlmkit.options import Options, as_settings, opt, parse_options
from vlmkit.outputs import OutputLock, check_output_file
from vlmkit.samples import (
    DEFAULT_CAPTION_PROMPT,
    IMAGE_PLACEHOLDER,
    TrainingSample,
    load_training_jsonl,
)

log = logging.getLogger("dataprocess.augment")


@dataclass
class AugmentIO(Options):
    """Which training file is re-captioned into which, with which prompt."""

    TITLE: ClassVar[str | None] = "input and output"
    input: str = opt(None, "training JSONL to re-caption", required=True)
    output: str = opt(None, "re-captioned training JSONL", required=True)
    report: str | None = opt(None, "report JSON (default: <output without .jsonl>.report.json)")
    prompt: str | None = opt(None, "prompt for every sample (default: the sample's own question)")
    prompt_file: str | None = opt(None, "read the prompt from this UTF-8 file")
    resume: bool = opt(False, "continue an existing output, skipping its ids")
    overwrite: bool = opt(False, "replace an existing output")
    no_progress: bool = opt(False)
    max_image_pixels: int = max_image_pixels_option()
    verbose: bool = opt(False, flags=("-v",))

    def check(self) -> None:
        if self.prompt is not None and self.prompt_file is not None:
            raise InputError("--prompt and --prompt_file exclude each other")


@dataclass
class AugmentOptions(Options):
    """`python -m dataprocess.augment`'s settings: its files, then the model groups every generating command shares
    (`vlmkit.generation.model_setup`) and the executor."""

    io: AugmentIO = opt(factory=AugmentIO)
    model: ModelOptions = opt(factory=lambda: ModelOptions(decoding=GenerationSettings(max_new_tokens=64)))
    hf: HFOptions = opt(factory=HFOptions)
    engine: EngineOptions = opt(factory=EngineOptions)
    executor: ExecutorOptions = opt(factory=ExecutorOptions)


def main(argv: list[str] | None = None) -> int:
    return run(parse_options(AugmentOptions, argv, description=__doc__, prog="python -m dataprocess.augment",
                             defaults={"max_new_tokens": 64}))


def sample_question(sample: TrainingSample) -> str:
    """The first human turn without its `<image>` placeholders: the question the new caption answers."""
    human = next((t["value"] for t in sample.conversations if t["from"] == "human"), "")
    text = "\n".join(line for line in human.replace(IMAGE_PLACEHOLDER, "").splitlines() if line.strip()).strip()
    return text or DEFAULT_CAPTION_PROMPT


def _relative_to(path: Path, folder: Path, original: str) -> str:
    if Path(original).is_absolute():
        return original
    return Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()


def recaptioned(sample: TrainingSample, caption: str, input_root: Path, output_root: Path,
                provenance: dict[str, Any]) -> dict[str, Any]:
    """The sample with its answer replaced, the old answer in `original_caption`, paths valid from `output_root`."""
    conversations = [dict(t) for t in sample.conversations]
    answer = next(t for t in conversations if t["from"] == "gpt")
    extra = dict(sample.extra)
    extra.setdefault("original_caption", answer["value"])  # an earlier augmentation's original stays the original
    answer["value"] = caption
    extra["provenance"] = provenance
    images = [_relative_to(p, output_root, orig) for p, orig in zip(sample.resolved_images(input_root),
                                                                   sample.images, strict=True)]
    return {"id": sample.id, "images": images, "conversations": conversations, **extra}


def _read_done(path: Path) -> dict[str, dict[str, Any]]:
    """Records already in an existing output (validated like any training file)."""
    done: dict[str, dict[str, Any]] = {}
    for sample in load_training_jsonl(path):
        done.setdefault(sample.id, sample.to_json())
    return done


def run(o: AugmentOptions) -> int:
    """Re-caption `o.io.input` into `o.io.output`; 1 when some samples could not be re-captioned (listed)."""
    io = o.io
    setup_logging(io.verbose)
    set_max_image_pixels(io.max_image_pixels)
    check_model(o)
    prompt = io.prompt
    if io.prompt_file is not None:
        from vlmkit.prompt import load_prompt_template

        prompt = load_prompt_template(io.prompt_file)
    input_path, output_path = Path(io.input), Path(io.output)
    if input_path.resolve() == output_path.resolve():
        raise InputError(f"{output_path}: --output must differ from --input")
    report_path = Path(io.report) if io.report else output_path.with_name(
        output_path.name.removesuffix(".jsonl") + ".report.json")
    samples = load_training_jsonl(input_path)
    seen: set[str] = set()
    for sample in samples:
        if sample.id in seen:
            raise InputError(f"{input_path}: sample id {sample.id} occurs more than once (ids key the resume)")
        seen.add(sample.id)
    check_output_file(output_path)
    check_output_file(report_path, "--report")
    with OutputLock(output_path, "training file"):
        remove_stale_temps(report_path)
        check_writable_target(output_path, resume=io.resume, overwrite=io.overwrite)
        done = _read_done(output_path) if io.resume and output_path.exists() else {}
        return _recaption(o, samples, done, input_path, output_path, report_path, prompt)


def _recaption(o: AugmentOptions, samples: list[TrainingSample], done: dict[str, dict[str, Any]],
               input_path: Path, output_path: Path, report_path: Path, prompt: str | None) -> int:
    input_root, output_root = input_path.parent, output_path.parent
    stats = RunStats(total=len(samples), already_done=sum(s.id in done for s in samples))
    items: list[CaptionItem] = []
    for sample in samples:
        if sample.id in done:
            continue
        answers = sum(t["from"] == "gpt" for t in sample.conversations)
        if not sample.images or answers != 1:
            stats.attempted += 1
            why = "has no images" if not sample.images else f"has {answers} answers (only caption samples, one answer)"
            stats.failures.append({"id": sample.id, "path": str(input_path), "reason": f"sample {why}"})
            continue
        views = tuple(f"image{i + 1}" for i in range(len(sample.images)))
        files = dict(zip(views, sample.resolved_images(input_root), strict=True))
        obj = ObjectFolder(sample.id, input_root, sample.images[0], files)
        items.append(CaptionItem(obj, views, require_all=True, payload=sample))

    backend = o.engine.backend
    provenance_base = {
        "tool": "dataprocess.augment",
        "model": model_name(o),
        "model_path": str(Path(o.model.model_path or "").expanduser().resolve()) if backend != "openai" else None,
        "adapter_path": str(Path(o.hf.adapter_path).resolve()) if o.hf.adapter_path else None,
        "generation": o.model.decoding.to_json(),
    }
    if backend != "hf":
        provenance_base["backend"] = backend
    if backend == "openai":
        provenance_base.update(api_identity(o.engine))
    loaded: list[Any] = []
    results: dict[str, dict[str, Any]] = dict(done)
    order = {s.id: i for i, s in enumerate(samples)}

    def on_batch(successes: list[Success]) -> None:
        if not successes:
            return  # a batch of failures changes nothing on disk
        created = now_iso()
        served = loaded[0].describe().get("served_model_ids") if loaded else None
        for s in successes:
            provenance = {**provenance_base, "prompt": s.prompt, "created": created}
            if served is not None:
                provenance["served_model_ids"] = served
            results[s.item.id] = recaptioned(s.item.payload, s.caption, input_root, output_root, provenance)
        rows = sorted(results.values(), key=lambda r: order.get(r["id"], -1))
        atomic_write_jsonl(output_path, rows)

    def prompt_for(item: CaptionItem, _views: list[str]) -> str:
        return sample_question(item.payload) if prompt is None else prompt

    def on_loaded(captioner: Any) -> None:
        loaded.append(captioner)
        if backend == "hf":
            provenance_base["model_class"] = captioner.describe().get("model_class")

    log.info("%d samples, %d already re-captioned, %d to do -> %s", len(samples), stats.already_done, len(items),
             output_path)
    factory = captioner_factory(o, functools.partial(make_hf_captioner, o),
                                max_views=max((len(it.views) for it in items), default=1))
    return run_captioning(items, make_captioner=factory, prompt_for=prompt_for, on_batch=on_batch, stats=stats,
                          report_path=report_path, output=output_path, settings=as_settings(o),
                          batch_size=o.engine.chunk(o.model.batch_size), progress=not o.io.no_progress,
                          desc="re-captioning", on_loaded=on_loaded, engine=ray_engine(o.executor))


if __name__ == "__main__":
    run_main(main)
