"""Filter a caption / conversation data set with a Data-Juicer recipe.

    python -m dataprocess.filter --recipe dataprocess/recipes/blip2_caption_filter.yaml \\
        --dataset_path data/train.jsonl --export_path data/filtered/train.jsonl

Operators run in recipe order on each sample, exactly like Data-Juicer 1.6.1's executor: a sample dropped by
one operator never reaches the next, and the stats of every operator it reached are recorded (the supported
operators and their semantics are in `dataprocess.ops`). Outputs, written together or not at all:

    <export_path>                kept samples, in the input's format and order
    <stem>_stats.jsonl           one line per input sample: id, kept, __dj__stats__ (Data-Juicer's stats keys)
    <stem>_dropped.jsonl         one line per dropped sample: id, where, op, op_index, reason, stats
    <stem>_summary.json          counts per operator, bad images, timing, recipe, parity report

The data set streams in chunks of `--chunk_size` samples (JSONL, JSON, Parquet, WebDataset, HF datasets: see
`vlmkit.streams`), over `--np` local processes or Ray Data tasks (`--executor ray`); each chunk writes its parts into
a hidden work folder (`dataprocess.workdir`, what `--resume` continues), and the parts are streamed into the final
files (one, or `--output_shards N`) at the end, so memory does not grow with the number of samples. An
`image_deduplicator` at the end of the recipe adds a group-by on its hash (`dataprocess.dedup_run`).

Unlike Data-Juicer, a missing or unreadable image drops only its own sample; it is counted and listed in the
summary and the dropped manifest (reason "<kind> image: ...": missing, empty, not a file, unreadable, truncated, or
too large for --max_image_pixels, the decompression-bomb guard of `vlmkit.images`). Images are read only by
image operators, and only for samples that reach them.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataprocess.dataset import Dataset, Input
from dataprocess.filter_run import Drop, FilterJob, all_files, commit_outputs, evaluate, output_paths, summarize
from dataprocess.ops import OPERATORS, FilterOp
from dataprocess.options import InputOptions
from dataprocess.outputs import exclusive_outputs
from dataprocess.recipe import Recipe, load_recipe
from dataprocess.workdir import WorkDir, work_dir_for
from vlmkit.cli import run_main, setup_logging
from vlmkit.executor import ExecutorOptions, map_refs
from vlmkit.images import max_image_pixels, max_image_pixels_option, set_max_image_pixels
from vlmkit.io import InputError
from vlmkit.options import Options, opt, parse_options
from vlmkit.ranges import Range
from vlmkit.streams import OUTPUT_SUFFIXES, SHARDABLE, ChunkRef

log = logging.getLogger("dataprocess.filter")
DEFAULT_CHUNK = 1000
SOME = Range(1, optional=True)  # unset: the default the help names

_WORKER_OPS: list[FilterOp] | None = None


def _init_worker(ops: list[FilterOp], max_pixels: int | None) -> None:
    global _WORKER_OPS
    _WORKER_OPS = ops
    set_max_image_pixels(max_pixels)  # the parent's --max_image_pixels, also under a spawn start method


def _evaluate_in_worker(chunk):
    return evaluate(_WORKER_OPS, chunk)


@dataclass
class FilterResult:
    stats: list[dict[str, Any]]
    drops: list[Drop | None]
    seconds: float
    np: int

    @property
    def kept_indices(self) -> list[int]:
        return [k for k, d in enumerate(self.drops) if d is None]


def run_filter(dataset: Dataset, recipe: Recipe, np: int = 1, chunk_size: int | None = None,
               progress: bool = True) -> FilterResult:
    """Evaluate the recipe on every item; `np` worker processes work on chunks, results keep input order."""
    from tqdm import tqdm

    work = [(item.text, item.images) for item in dataset.items]
    n = len(work)
    np = max(1, min(np, n))
    if chunk_size is None:
        chunk_size = min(1000, max(50, math.ceil(n / (np * 8))))
    chunks = [work[i:i + chunk_size] for i in range(0, n, chunk_size)]
    start = time.perf_counter()
    results: list[tuple[dict, Drop | None]] = []
    if np == 1 or len(chunks) == 1:
        np = 1
        with tqdm(total=n, desc="filter", unit="sample", disable=not progress or None) as bar:
            for chunk in chunks:
                results.extend(evaluate(recipe.ops, chunk))
                bar.update(len(chunk))
    else:
        # the pool is forked before the progress bar starts its monitor thread
        with multiprocessing.get_context().Pool(np, initializer=_init_worker,
                                               initargs=(recipe.ops, max_image_pixels())) as pool, \
                tqdm(total=n, desc="filter", unit="sample", disable=not progress or None) as bar:
            for part in pool.imap(_evaluate_in_worker, chunks):
                results.extend(part)
                bar.update(len(part))
    seconds = time.perf_counter() - start
    return FilterResult([r[0] for r in results], [r[1] for r in results], seconds, np)


DESCRIPTION = (f"Filter a data set with a Data-Juicer recipe ({', '.join(OPERATORS)}; Data-Juicer 1.6.1 semantics), "
               "streaming in chunks, locally or on Ray. Writes the kept data, per-sample stats, a dropped manifest "
               "and a summary.")


@dataclass
class FilterOptions(Options):
    """`python -m dataprocess.filter`'s settings (flags in declaration order)."""

    recipe: str = opt(None, "Data-Juicer YAML recipe (process: list of operators)", required=True)
    dataset_path: str | None = opt(None, "input file; overrides the recipe's dataset_path")
    export_path: str | None = opt(None, "kept-data file (same format as the input); overrides the recipe's")
    reader: InputOptions = field(default_factory=InputOptions)
    np: int | None = opt(None, "worker processes (default: the recipe's np, else the number of cores)",
                         range=SOME)
    chunk_size: int | None = opt(None, f"samples per work unit (default: {DEFAULT_CHUNK}); memory use is about np x "
                                       f"chunk_size samples, whatever the data set's size", range=SOME)
    output_shards: int | None = opt(None, "write the kept data as N part files <stem>-0000k-of-0000N (JSONL, Parquet "
                                          "or WebDataset output; default: one file)", range=SOME)
    resume: bool = opt(False, "continue a killed run of the same input and recipe: its finished chunks are kept")
    skip_unsupported_ops: bool = opt(False, "skip recipe operators this tool does not implement (listed in the "
                                            "summary) instead of failing")
    parity: bool = opt(False, "also run the real py-data-juicer operators (if installed) and compare stats and "
                              "decisions")
    parity_samples: int | None = opt(None, "compare only the first N samples in --parity mode")
    no_progress: bool = opt(False, "no progress bar")
    max_image_pixels: int = max_image_pixels_option()
    executor: ExecutorOptions = field(default_factory=ExecutorOptions)
    verbose: bool = opt(False, flags=("-v",))


def main(argv: list[str] | None = None) -> int:
    return run(parse_options(FilterOptions, argv, description=DESCRIPTION, exclude=("gpus_per_worker",),
                             prog="python -m dataprocess.filter"))


def run(o: FilterOptions) -> int:
    """Filter `o`'s data set; 0, or 1 when the --parity check found mismatches."""
    setup_logging(o.verbose)
    recipe = load_recipe(o.recipe, skip_unsupported=o.skip_unsupported_ops)
    dataset_path = o.dataset_path or recipe.dataset_path
    export_path = o.export_path or recipe.export_path
    if not dataset_path:
        raise InputError(f"{o.recipe}: no dataset_path in the recipe; pass --dataset_path")
    if not export_path:
        raise InputError(f"{o.recipe}: no export_path in the recipe; pass --export_path")
    set_max_image_pixels(o.max_image_pixels)
    shards = o.output_shards or 1
    paths = output_paths(Path(export_path), shards)
    with exclusive_outputs(all_files(paths), [Path(dataset_path), Path(o.recipe)], flag="--export_path",
                           what="filter output"):
        work = WorkDir(work_dir_for(Path(export_path)))
        try:
            return _filter(o, recipe, dataset_path, export_path, paths, work, shards)
        except InputError:
            work.remove()  # a bad input leaves nothing behind; the input must change before a rerun anyway
            raise


def _filter(o: FilterOptions, recipe: Recipe, dataset_path: str, export_path: str,
            paths: dict[str, Any], work: WorkDir, shards: int) -> int:
    from tqdm import tqdm

    opts = o.executor
    inp = o.reader.open(dataset_path, text_key=recipe.text_key, image_key=recipe.image_key,
                       eoc_token=recipe.eoc_special_token)
    want_suffix = {v: k for k, v in OUTPUT_SUFFIXES.items()}[inp.output_kind]
    if Path(export_path).suffix != want_suffix:
        raise InputError(f"{export_path}: the kept data keeps the input's format ({inp.source.container}), so the "
                         f"export path must end in {want_suffix}")
    if shards > 1 and inp.output_kind not in SHARDABLE:
        raise InputError(f"--output_shards {shards}: a {want_suffix} output is one document; shards need a "
                         f"JSONL, Parquet or WebDataset output")
    chunk_size = o.chunk_size or DEFAULT_CHUNK
    refs = inp.plan(chunk_size)
    total = sum(r.count for r in refs)
    np = o.np or recipe.np or os.cpu_count() or 1
    plan = {"input": inp.source.signature(), "format": inp.format, "recipe": recipe.describe(),
            "chunk_size": chunk_size, "chunks": len(refs), **o.reader.plan_settings(),
            "keep_stats": recipe.keep_stats_in_res_ds, "max_image_pixels": max_image_pixels()}
    done = work.open(plan, o.resume)
    log.info("%s: %d samples in %d chunks (%s, %s format), %d operators, %s executor%s", inp.path, total, len(refs),
             inp.source.container, inp.format, len(recipe.ops), opts.executor,
             f", up to {np} processes" if not opts.is_ray else "")
    job = FilterJob(inp, recipe.ops, work, recipe.keep_stats_in_res_ds, max_image_pixels())
    todo = [r for r in refs if r.index not in done]
    start = time.perf_counter()
    bars: list = []  # made at the first result: a local pool forks before the bar's monitor thread starts

    def progress(chunk: dict[str, Any]) -> None:
        if not bars:
            bars.append(tqdm(total=total, initial=sum(r.count for r in refs if r.index in done), desc="filter",
                             unit="sample", disable=o.no_progress or None))
        bars[0].update(chunk["total"])

    try:
        map_refs(job, todo, opts, np=np, on_result=progress, initializer=job.setup)
    finally:
        for bar in bars:
            bar.close()
    seconds = time.perf_counter() - start
    chunks = [work.done(r.index) for r in refs]
    missing = [r.index for r, c in zip(refs, chunks, strict=True) if c is None]
    if missing:  # pragma: no cover - every executor returns only after each chunk committed
        raise RuntimeError(f"chunks {missing[:5]} have no result")
    if getattr(recipe.ops[-1], "is_deduplicator", False):
        from dataprocess.dedup_run import apply_duplicates, find_duplicates  # noqa: I001

        dups = find_duplicates(work, chunks, opts)
        chunks = [apply_duplicates(job, c, dups.get(c["index"], {})) for c in chunks]
        seconds = time.perf_counter() - start
    summary = summarize(inp, recipe, chunks, paths, seconds, 1 if opts.is_ray else np, opts.executor)
    summary["resumed_chunks"] = len(done)
    summary["nodes"] = sorted({c["node"] for c in chunks if c.get("node")})
    if o.parity:
        from dataprocess.parity import run_parity

        dataset = inp.dataset() if o.parity_samples is None else _first_items(inp, refs, o.parity_samples)
        results = evaluate(recipe.ops, [(item.text, item.images) for item in dataset.items])
        summary["parity"] = run_parity(dataset, recipe, [r[0] for r in results], [r[1] for r in results],
                                       o.parity_samples)
    commit_outputs(inp, job, chunks, summary, paths, work)

    for entry in summary["ops"]:
        log.info("  %-30s seen %7d  dropped %7d", entry["op"], entry["seen"], entry["dropped"])
    bad = summary["bad_images"]
    if bad["samples_dropped"]:
        log.warning("%d samples dropped for a bad image (%d missing, %d unreadable); see %s", bad["samples_dropped"],
                    bad["missing"], bad["unreadable"], paths["dropped"])
    log.info("kept %d of %d samples in %.2f s (%.0f samples/s) -> %s", summary["kept"], summary["total"],
             seconds, summary["samples_per_second"] or 0, export_path)
    if o.parity and summary["parity"]["status"] == "mismatch":
        log.error("parity check found %d mismatches with Data-Juicer; see %s", summary["parity"]["mismatches"],
                  paths["summary"])
        return 1
    return 0


def _first_items(inp: Input, refs: list[ChunkRef], limit: int) -> Dataset:
    items = []
    for ref in refs:
        if len(items) >= limit:
            break
        items.extend(inp.items(ref))
    return Dataset(inp.path, inp.format, items[:limit], inp.root)


if __name__ == "__main__":
    run_main(main)
