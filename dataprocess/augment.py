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

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from vlmkit.cli import HelpFormatter, run_main, setup_logging
from vlmkit.executor import add_executor_args
from vlmkit.generation import cli as gen
from vlmkit.generation import engines
from vlmkit.generation.items import CaptionItem
from vlmkit.generation.outputs import check_writable_target
from vlmkit.generation.runner import RunStats, Success, now_iso, run_captioning
from vlmkit.images import add_max_image_pixels_arg, apply_max_image_pixels
from vlmkit.io import InputError, atomic_write_jsonl, remove_stale_temps
from vlmkit.multiview import ObjectFolder
from vlmkit.outputs import OutputLock, check_output_file
from vlmkit.samples import (
    DEFAULT_CAPTION_PROMPT,
    IMAGE_PLACEHOLDER,
    TrainingSample,
    load_training_jsonl,
)

log = logging.getLogger("dataprocess.augment")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dataprocess.augment", description=__doc__,
                                     formatter_class=HelpFormatter)
    io = parser.add_argument_group("input and output")
    io.add_argument("--input", required=True, help="training JSONL to re-caption")
    io.add_argument("--output", required=True, help="re-captioned training JSONL")
    io.add_argument("--report", default=None, help="report JSON (default: <output without .jsonl>.report.json)")
    io.add_argument("--prompt", default=None, help="prompt for every sample (default: the sample's own question)")
    io.add_argument("--prompt_file", default=None, help="read the prompt from this UTF-8 file")
    io.add_argument("--resume", action="store_true", help="continue an existing output, skipping its ids")
    io.add_argument("--overwrite", action="store_true", help="replace an existing output")
    io.add_argument("--no_progress", action="store_true")
    add_max_image_pixels_arg(io)
    io.add_argument("-v", "--verbose", action="store_true")
    gen.add_model_args(parser, default_model_path=None, default_max_new_tokens=64)
    gen.optional_model_path(parser, "local model folder (weights are never downloaded); not with --backend openai")
    gen.add_hf_args(parser)
    engines.add_engine_args(parser)
    add_executor_args(parser, gpus=True)
    return parser


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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    apply_max_image_pixels(args)
    gen.check_model_args(args)
    settings = gen.generation_settings(args)
    if args.prompt is not None and args.prompt_file is not None:
        raise InputError("--prompt and --prompt_file exclude each other")
    prompt = args.prompt
    if args.prompt_file is not None:
        from vlmkit.prompt import load_prompt_template

        prompt = load_prompt_template(args.prompt_file)
    input_path, output_path = Path(args.input), Path(args.output)
    if input_path.resolve() == output_path.resolve():
        raise InputError(f"{output_path}: --output must differ from --input")
    report_path = Path(args.report) if args.report else output_path.with_name(
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
        check_writable_target(output_path, resume=args.resume, overwrite=args.overwrite)
        done = _read_done(output_path) if args.resume and output_path.exists() else {}
        return _recaption(args, samples, done, input_path, output_path, report_path, settings, prompt)


def _recaption(args: argparse.Namespace, samples: list[TrainingSample], done: dict[str, dict[str, Any]],
               input_path: Path, output_path: Path, report_path: Path, settings: Any, prompt: str | None) -> int:
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

    backend = engines.backend_of(args)
    provenance_base = {
        "tool": "dataprocess.augment",
        "model": gen.model_name(args),
        "model_path": str(Path(args.model_path).expanduser().resolve()) if backend != "openai" else None,
        "adapter_path": str(Path(args.adapter_path).resolve()) if args.adapter_path else None,
        "generation": settings.to_json(),
    }
    if backend != "hf":
        provenance_base["backend"] = backend
    if backend == "openai":
        provenance_base.update(engines.engine_identity(args))
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
    factory = gen.captioner_factory(args, gen.make_hf_captioner,
                                    max_views=max((len(it.views) for it in items), default=1))
    return run_captioning(items, make_captioner=lambda: factory(args), prompt_for=prompt_for,
                          on_batch=on_batch, stats=stats, report_path=report_path, output=output_path,
                          settings={k: v for k, v in sorted(vars(args).items())}, batch_size=engines.engine_chunk(args),
                          progress=not args.no_progress, desc="re-captioning", on_loaded=on_loaded,
                          engine=gen.ray_engine(args))


if __name__ == "__main__":
    run_main(main)
