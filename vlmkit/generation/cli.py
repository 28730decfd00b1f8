"""The command line shared by qwen.py, internvl.py and caption.py, and the run they all perform.

Flow: discover items (object folders or flat images) → take this process's shard → open the output (refuse to
clobber; `--resume` skips ids already captioned) → load the model only if there is work → caption in batches, writing
the caption file atomically after every batch → write the report, also when interrupted.

Exit status: 0 when every item has a caption; 1 when some items failed (their captions are missing from the output,
the report lists each with its reason, and `--resume` retries exactly those); 2 for bad input or settings (no caption
file written or changed); 130 when interrupted (the output holds every finished batch).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlmkit.cli import add_views_arg, setup_logging
from vlmkit.executor import add_executor_args, executor_options
from vlmkit.generation import engines
from vlmkit.generation.hf_backend import require_adapter_dir, require_base_model_dir
from vlmkit.generation.items import LAYOUTS, discover_items
from vlmkit.generation.outputs import CaptionFile, caption_record
from vlmkit.generation.runner import Captioner, RunStats, run_captioning
from vlmkit.generation.sampling import GenerationSettings
from vlmkit.generation.shards import (
    merge_shards,
    report_name,
    select_shard,
    shard_output_path,
    validate_shard_args,
)
from vlmkit.images import add_max_image_pixels_arg, apply_max_image_pixels
from vlmkit.io import InputError, remove_stale_temps
from vlmkit.outputs import OutputLock, check_output_file
from vlmkit.prompt import MULTIVIEW_PROMPT, SINGLE_IMAGE_PROMPT, build_prompt, load_prompt_template

log = logging.getLogger(__name__)

NEED_MODEL = "--model_path is required (a local model folder), or use --backend openai with --api_base"


def add_common_args(parser: argparse.ArgumentParser, *, default_model_path: str | None,
                    default_batch_size: int = 8, default_max_new_tokens: int = 256) -> None:
    io = parser.add_argument_group("input and output")
    io.add_argument("--input_dir", default="./data/multiview_images",
                    help="folder of multi-view object folders (<UUID>_<n>_..._shaded/{front,...}.jpg) or of images")
    io.add_argument("--single_model", default=None, metavar="DIR", help="caption only this one object folder")
    io.add_argument("--input_layout", default="auto", choices=LAYOUTS,
                    help="multiview: one item per sub-folder; flat: one item per image file; auto: detect")
    add_views_arg(io, "views to show the model, in this order (comma-separated)")
    io.add_argument("--output_dir", default="./data/captions")
    io.add_argument("--output_name", default=None, help="caption file name (default: image_<model dir name>.json)")
    io.add_argument("--data_by", default=None, help="the records' data_by (default: the model dir name)")
    io.add_argument("--prompt_file", default=None,
                    help="UTF-8 prompt template; {views}, {num_views}, {views_phrase} are filled in")
    io.add_argument("--resume", action="store_true", help="continue an existing output, skipping captioned ids")
    io.add_argument("--overwrite", action="store_true", help="replace an existing output")
    io.add_argument("--no_progress", action="store_true", help="no progress bar")
    add_max_image_pixels_arg(io)
    io.add_argument("-v", "--verbose", action="store_true")

    add_model_args(parser, default_model_path=default_model_path, default_batch_size=default_batch_size,
                   default_max_new_tokens=default_max_new_tokens)

    shard = parser.add_argument_group("sharding (one process per GPU or machine)")
    shard.add_argument("--num_shards", type=int, default=None, help="split the objects into this many shards")
    shard.add_argument("--shard_index", type=int, default=0, help="which shard this process captions (0-based)")
    shard.add_argument("--merge", action="store_true",
                       help="do not generate: merge the shard files of --output_dir/shards into the final file")
    add_executor_args(parser, gpus=True)


def add_model_args(parser: argparse.ArgumentParser, *, default_model_path: str | None, default_batch_size: int = 8,
                   default_max_new_tokens: int = 256) -> None:
    """--model_path, --batch_size and the decoding flags (see `GenerationSettings`)."""
    model = parser.add_argument_group("model and decoding")
    if default_model_path is None:
        model.add_argument("--model_path", required=True, help="local model folder (weights are never downloaded)")
    else:
        model.add_argument("--model_path", default=default_model_path,
                           help="local model folder (weights are never downloaded)")
    model.add_argument("--batch_size", type=int, default=default_batch_size,
                       help="items per generate call (--backend openai/vllm: items per write, raised to keep the "
                            "engine busy)")
    model.add_argument("--max_new_tokens", type=int, default=default_max_new_tokens)
    model.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (reproducible)")
    model.add_argument("--top_p", type=float, default=1.0)
    model.add_argument("--top_k", type=int, default=50)
    model.add_argument("--repetition_penalty", type=float, default=1.0)
    model.add_argument("--num_beams", type=int, default=1)
    model.add_argument("--seed", type=int, default=0)


def add_hf_args(parser: argparse.ArgumentParser) -> None:
    hf = parser.add_argument_group("transformers backend")
    hf.add_argument("--adapter_path", default=None, help="optional PEFT/LoRA adapter folder, applied to --model_path")
    hf.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    hf.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU), bfloat16, float16, float32")
    hf.add_argument("--device_map", default=None, help="e.g. auto: spread one large model over the visible GPUs")
    hf.add_argument("--attn_implementation", default=None, help="e.g. sdpa, flash_attention_2")


def optional_model_path(parser: argparse.ArgumentParser, help: str | None = None) -> None:
    """Relax a required --model_path (checked by `check_model_args`: `--backend openai` needs none)."""
    for action in parser._actions:  # argparse has no public way to relax a flag another helper added
        if action.dest == "model_path":
            action.required = False
            action.help = help or action.help


def captioner_factory(args: argparse.Namespace, local: Callable[[argparse.Namespace], Captioner], *,
                      max_views: int | None = None) -> Callable[[argparse.Namespace], Captioner]:
    """The script's own factory, or the engine's for `--backend openai|vllm` (see `vlmkit.generation.engines`);
    `max_views`: images per prompt at most (vLLM's limit_mm_per_prompt; default: the --views given)."""
    if engines.backend_of(args) not in engines.ENGINES:
        return local
    views = max_views or len(getattr(args, "views", None) or ()) or 6
    return lambda a: engines.make_engine_captioner(a, generation_settings(a), max_views=views)


def make_hf_captioner(args: argparse.Namespace, **kwargs: Any) -> Captioner:
    """The transformers backend from the parsed flags (`add_model_args` + `add_hf_args`); kwargs go to HFCaptioner."""
    from vlmkit.generation.hf_backend import HFCaptioner

    return HFCaptioner(args.model_path, settings=generation_settings(args), adapter_path=args.adapter_path,
                       device=args.device, dtype=args.dtype, device_map=args.device_map,
                       attn_implementation=args.attn_implementation, **kwargs)


def generation_settings(args: argparse.Namespace) -> GenerationSettings:
    return GenerationSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                              top_k=args.top_k, repetition_penalty=args.repetition_penalty,
                              num_beams=args.num_beams, seed=args.seed)


def check_model_args(args: argparse.Namespace) -> None:
    """Decoding flags, the model folder and the adapter folder, checked in milliseconds before any work."""
    settings = generation_settings(args)
    engines.check_engine_args(args, settings)
    if engines.backend_of(args) == "openai":
        return  # no local model
    if not args.model_path:
        raise InputError(NEED_MODEL)
    require_base_model_dir(args.model_path, "model folder")
    if getattr(args, "adapter_path", None):
        require_adapter_dir(args.adapter_path)


def model_name(args: argparse.Namespace) -> str:
    """The model's folder name (the adapter's when one is given; the API model's name): default output name and
    data_by."""
    remote = engines.engine_model_name(args)
    if remote:
        return remote
    if engines.backend_of(args) == "openai":
        engines.api_options(args)  # no usable --api_model: its own one-line error
    if not (getattr(args, "adapter_path", None) or args.model_path):
        raise InputError(NEED_MODEL)
    path = Path(getattr(args, "adapter_path", None) or args.model_path).expanduser()
    return path.name or path.resolve().name


def _settings(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    out = {k: (str(v) if isinstance(v, Path) else v) for k, v in sorted(vars(args).items())}
    out.update(extra)
    return out


def run(args: argparse.Namespace, make_captioner: Callable[[argparse.Namespace], Captioner]) -> int:
    """Everything after argument parsing; returns the exit status (see the module docstring)."""
    setup_logging(args.verbose)
    name = model_name(args)
    output_name = args.output_name or f"image_{name}.json"
    if not output_name.endswith(".json") or "/" in output_name:
        raise InputError(f"--output_name {output_name}: must be a file name ending in .json")
    output_dir = Path(args.output_dir)
    apply_max_image_pixels(args)
    if args.merge:
        target = check_output_file(output_dir / output_name, "--output_dir/--output_name")
        with OutputLock(target, "caption file"):
            merge_shards(output_dir, output_name, args.num_shards, overwrite=args.overwrite)
        return 0

    check_model_args(args)
    engine = ray_engine(args)
    if args.batch_size < 1:
        raise InputError(f"--batch_size {args.batch_size}: must be at least 1")
    views = args.views
    items, layout = discover_items(args.input_dir, views, args.input_layout, args.single_model)
    template = load_prompt_template(args.prompt_file, SINGLE_IMAGE_PROMPT if layout == "flat" else MULTIVIEW_PROMPT)
    num_shards = args.num_shards or 1
    validate_shard_args(num_shards, args.shard_index)
    if num_shards > 1:
        items = select_shard(items, num_shards, args.shard_index)
        out_path = shard_output_path(output_dir, output_name, args.shard_index, num_shards)
    else:
        out_path = output_dir / output_name
    report_path = out_path.parent / report_name(out_path.name)
    check_output_file(out_path, "--output_dir/--output_name")
    check_output_file(report_path, "the report")
    with OutputLock(out_path, "caption file"):
        remove_stale_temps(report_path)
        captions = CaptionFile(out_path, [it.id for it in items], resume=args.resume, overwrite=args.overwrite)
        data_by = args.data_by or name
        pending = [it for it in items if it.id not in captions.done_ids]
        stats = RunStats(total=len(items), already_done=len(items) - len(pending))
        settings = _settings(args, layout=layout, prompt_template=template, data_by=data_by, output=str(out_path))
        if engines.backend_of(args) == "openai":
            settings["model_path"] = None  # the script's default folder played no part
        log.info("%d items (%s layout), %d already captioned, %d to do -> %s",
                 len(items), layout, stats.already_done, len(pending), out_path)

        def on_batch(successes: list) -> None:
            """Rewrite the caption file after every batch that captioned something (a failed batch: no change)."""
            for s in successes:
                captions.add(s.item.id, caption_record(s.item.image_name, s.caption, data_by))
            if successes:
                captions.write()

        factory = captioner_factory(args, make_captioner)
        return run_captioning(pending, make_captioner=lambda: factory(args),
                              prompt_for=lambda item, loaded: build_prompt(template, loaded), on_batch=on_batch,
                              stats=stats, report_path=report_path, output=out_path, settings=settings,
                              batch_size=engines.engine_chunk(args), progress=not args.no_progress, engine=engine)


def ray_engine(args: argparse.Namespace) -> Callable[..., Any] | None:
    """`--executor ray`: the actor-pool loop of `vlmkit.generation.ray_executor` (Ray imported only then)."""
    opts = executor_options(args)
    if not opts.is_ray:
        return None
    import functools

    from vlmkit.generation.ray_executor import caption_on_ray

    return functools.partial(caption_on_ray, opts=opts)
