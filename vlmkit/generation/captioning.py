"""The captioning command qwen.py, internvl.py and caption.py share: its options and its run.

Flow: discover items (object folders or flat images) → take this process's shard → open the output (refuse to
clobber; `--resume` skips ids already captioned) → load the model only if there is work → caption in batches, writing
the caption file atomically after every batch → write the report, also when interrupted.

Exit status: 0 when every item has a caption; 1 when some items failed (their captions are missing from the output,
the report lists each with its reason, and `--resume` retries exactly those); 2 for bad input or settings (no caption
file written or changed); 130 when interrupted (the output holds every finished batch).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from vlmkit.cli import setup_logging
from vlmkit.executor import ExecutorOptions
from vlmkit.generation.engines import EngineOptions
from vlmkit.generation.hf_backend import HFOptions
from vlmkit.generation.items import LAYOUTS, discover_items
from vlmkit.generation.model_setup import (
    ModelOptions,
    captioner_factory,
    check_model,
    make_hf_captioner,
    model_name,
    ray_engine,
)
from vlmkit.generation.outputs import CaptionFile, caption_record
from vlmkit.generation.runner import Captioner, RunStats, run_captioning
from vlmkit.generation.shards import ShardOptions, merge_shards, report_name, select_shard, shard_output_path
from vlmkit.ids import VIEWS, parse_views
from vlmkit.images import max_image_pixels_option, set_max_image_pixels
from vlmkit.io import InputError, remove_stale_temps
from vlmkit.options import Options, as_settings, opt
from vlmkit.outputs import OutputLock, check_output_file
from vlmkit.prompt import MULTIVIEW_PROMPT, SINGLE_IMAGE_PROMPT, build_prompt, load_prompt_template

log = logging.getLogger(__name__)


@dataclass
class CaptionIO(Options):
    """What to caption and where the caption file goes."""

    TITLE: ClassVar[str | None] = "input and output"
    input_dir: str = opt("./data/multiview_images", "folder of multi-view object folders "
                                                    "(<UUID>_<n>_..._shaded/{front,...}.jpg) or of images")
    single_model: str | None = opt(None, "caption only this one object folder", metavar="DIR")
    input_layout: str = opt("auto", "multiview: one item per sub-folder; flat: one item per image file; auto: detect",
                            choices=LAYOUTS)
    views: tuple[str, ...] = opt(VIEWS, "views to show the model, in this order (comma-separated) "
                                        f"(default: {','.join(VIEWS)})", parse=parse_views)
    output_dir: str = opt("./data/captions")
    output_name: str | None = opt(None, "caption file name (default: image_<model dir name>.json)")
    data_by: str | None = opt(None, "the records' data_by (default: the model dir name)")
    prompt_file: str | None = opt(None, "UTF-8 prompt template; {views}, {num_views}, {views_phrase} are filled in")
    resume: bool = opt(False, "continue an existing output, skipping captioned ids")
    overwrite: bool = opt(False, "replace an existing output")
    no_progress: bool = opt(False, "no progress bar")
    max_image_pixels: int = max_image_pixels_option()
    verbose: bool = opt(False, flags=("-v",))

    def check(self) -> None:
        if self.resume and self.overwrite:
            raise InputError("--resume and --overwrite exclude each other")
        if self.output_name is not None and (not self.output_name.endswith(".json") or "/" in self.output_name):
            raise InputError(f"--output_name {self.output_name}: must be a file name ending in .json")


@dataclass
class CaptionOptions(Options):
    """Everything a captioning command is told; qwen.py and internvl.py subclass it with their own fields."""

    io: CaptionIO = opt(factory=CaptionIO)
    model: ModelOptions = opt(factory=ModelOptions)
    shard: ShardOptions = opt(factory=ShardOptions)
    executor: ExecutorOptions = opt(factory=ExecutorOptions)
    hf: HFOptions = opt(factory=HFOptions)
    engine: EngineOptions = opt(factory=EngineOptions)


MakeCaptioner = Callable[[Any], Captioner]  # the command's factory for its local backend, given its options


def run(options: CaptionOptions, make_captioner: MakeCaptioner = make_hf_captioner) -> int:
    """Caption (or `--merge`) as `options` say; returns the exit status (see the module docstring).
    `make_captioner(options)` builds the command's local backend (qwen.py's resizing, internvl.py's lmdeploy)."""
    io = options.io
    setup_logging(io.verbose)
    name = model_name(options)
    output_name = io.output_name or f"image_{name}.json"
    output_dir = Path(io.output_dir)
    set_max_image_pixels(io.max_image_pixels)
    if options.shard.merge:
        target = check_output_file(output_dir / output_name, "--output_dir/--output_name")
        with OutputLock(target, "caption file"):
            merge_shards(output_dir, output_name, options.shard.num_shards, overwrite=io.overwrite)
        return 0

    check_model(options)
    engine = ray_engine(options.executor)
    items, layout = discover_items(io.input_dir, io.views, io.input_layout, io.single_model)
    template = load_prompt_template(io.prompt_file, SINGLE_IMAGE_PROMPT if layout == "flat" else MULTIVIEW_PROMPT)
    num_shards = options.shard.num_shards or 1
    if num_shards > 1:
        items = select_shard(items, num_shards, options.shard.shard_index)
        out_path = shard_output_path(output_dir, output_name, options.shard.shard_index, num_shards)
    else:
        out_path = output_dir / output_name
    report_path = out_path.parent / report_name(out_path.name)
    check_output_file(out_path, "--output_dir/--output_name")
    check_output_file(report_path, "the report")
    with OutputLock(out_path, "caption file"):
        remove_stale_temps(report_path)
        captions = CaptionFile(out_path, [it.id for it in items], resume=io.resume, overwrite=io.overwrite)
        data_by = io.data_by or name
        pending = [it for it in items if it.id not in captions.done_ids]
        stats = RunStats(total=len(items), already_done=len(items) - len(pending))
        settings = {**as_settings(options), "layout": layout, "prompt_template": template, "data_by": data_by,
                    "output": str(out_path)}
        if options.engine.backend == "openai":
            settings["model_path"] = None  # the script's default folder played no part
        log.info("%d items (%s layout), %d already captioned, %d to do -> %s",
                 len(items), layout, stats.already_done, len(pending), out_path)

        def on_batch(successes: list) -> None:
            """Rewrite the caption file after every batch that captioned something (a failed batch: no change)."""
            for s in successes:
                captions.add(s.item.id, caption_record(s.item.image_name, s.caption, data_by))
            if successes:
                captions.write()

        factory = captioner_factory(options, lambda: make_captioner(options), max_views=len(io.views))
        return run_captioning(pending, make_captioner=factory,
                              prompt_for=lambda item, loaded: build_prompt(template, loaded), on_batch=on_batch,
                              stats=stats, report_path=report_path, output=out_path, settings=settings,
                              batch_size=options.engine.chunk(options.model.batch_size),
                              progress=not io.no_progress, engine=engine)
