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

Unlike Data-Juicer, a missing or unreadable image drops only its own sample; it is counted and listed in the
summary and the dropped manifest (reason "<kind> image: ...": missing, empty, not a file, unreadable, truncated, or
too large for --max_image_pixels, the decompression-bomb guard of `vlmkit.images`). Images are read only by
image operators, and only for samples that reach them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataprocess.dataset import FORMATS, STATS_KEY, TEXT_VIEWS, Dataset, load_dataset
from dataprocess.ops import FilterOp, ImageProblem, Sample
from dataprocess.outputs import exclusive_outputs
from dataprocess.recipe import Recipe, load_recipe
from vlmkit.cli import HelpFormatter, add_views_arg, run_main, setup_logging
from vlmkit.images import add_max_image_pixels_arg, apply_max_image_pixels, max_image_pixels, set_max_image_pixels
from vlmkit.io import InputError, write_all_or_nothing

log = logging.getLogger("dataprocess.filter")

# A drop: (position of the op in recipe.ops, reason, image path or None, image problem kind or None)
Drop = tuple[int, str, str | None, str | None]


def evaluate(ops: list[FilterOp], chunk: list[tuple[str, tuple[str, ...]]]) -> list[tuple[dict, Drop | None]]:
    """Run every sample of a chunk through the operators in order; stop at the first one that drops it."""
    image_cache: dict[str, Any] = {}
    out: list[tuple[dict, Drop | None]] = []
    for text, images in chunk:
        sample = Sample(text, images)
        stats: dict[str, Any] = {}
        drop: Drop | None = None
        for pos, op in enumerate(ops):
            try:
                op.compute(sample, stats, image_cache)
            except ImageProblem as problem:
                drop = (pos, f"{problem.kind} image: {problem.path} ({problem.detail})", problem.path, problem.kind)
                break
            if not op.keep(stats):
                drop = (pos, op.reason(stats), None, None)
                break
        out.append((stats, drop))
    return out


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


def output_paths(export_path: Path) -> dict[str, Path]:
    stem = export_path.with_suffix("")
    return {"kept": export_path, "stats": Path(f"{stem}_stats.jsonl"), "dropped": Path(f"{stem}_dropped.jsonl"),
            "summary": Path(f"{stem}_summary.json")}


def summarize(dataset: Dataset, recipe: Recipe, result: FilterResult, paths: dict[str, Path]) -> dict[str, Any]:
    per_op = []
    for pos, op in enumerate(recipe.ops):
        reached = sum(1 for d in result.drops if d is None or d[0] >= pos)
        dropped = [d for d in result.drops if d is not None and d[0] == pos]
        entry = {**op.describe(), "seen": reached, "dropped": len(dropped)}
        if op.uses_images:
            entry["dropped_bad_image"] = sum(1 for d in dropped if d[2] is not None)
        per_op.append(entry)
    bad = [(item, d) for item, d in zip(dataset.items, result.drops, strict=True) if d is not None and d[2]]
    kept = len(result.kept_indices)
    return {
        "input": str(dataset.path), "format": dataset.format, "text_view": dataset.text_view,
        "image_root": str(dataset.image_root), "outputs": {k: str(v) for k, v in paths.items()},
        "total": len(dataset.items), "kept": kept, "dropped": len(dataset.items) - kept,
        "ops": per_op,
        "bad_images": {
            "samples_dropped": len(bad),
            "missing": sum(1 for _, d in bad if d[3] == "missing"),
            "unreadable": sum(1 for _, d in bad if d[3] != "missing"),  # every other kind (see by_kind)
            "by_kind": dict(Counter(d[3] for _, d in bad).most_common()),
            "items": [{"id": item.id, "where": item.where, "path": d[2], "kind": d[3], "reason": d[1]}
                      for item, d in bad],
        },
        "recipe": recipe.describe(), "np": result.np, "seconds": round(result.seconds, 3),
        "samples_per_second": round(len(dataset.items) / result.seconds, 1) if result.seconds > 0 else None,
    }


def render_outputs(dataset: Dataset, recipe: Recipe, result: FilterResult, summary: dict[str, Any],
                   paths: dict[str, Path]) -> dict[Path, str]:
    kept = result.kept_indices
    kept_items = [dataset.items[k] for k in kept]
    kept_stats = [result.stats[k] for k in kept] if recipe.keep_stats_in_res_ds else None
    stats_lines, dropped_lines = [], []
    for item, stats, drop in zip(dataset.items, result.stats, result.drops, strict=True):
        stats_lines.append(json.dumps({"id": item.id, "kept": drop is None, STATS_KEY: stats}, ensure_ascii=False))
        if drop is not None:
            op = recipe.ops[drop[0]]
            row = {"id": item.id, "where": item.where, "op": op.name, "op_index": op.index, "reason": drop[1],
                   "stats": stats}
            if drop[2] is not None:
                row.update({"image": drop[2], "image_problem": drop[3]})
            dropped_lines.append(json.dumps(row, ensure_ascii=False))
    return {
        paths["kept"]: dataset.render(kept_items, kept_stats),
        paths["stats"]: "".join(line + "\n" for line in stats_lines),
        paths["dropped"]: "".join(line + "\n" for line in dropped_lines),
        paths["summary"]: json.dumps(summary, ensure_ascii=False, indent=2) + "\n",
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(formatter_class=HelpFormatter, prog="python -m dataprocess.filter",
        description="Filter a data set with a Data-Juicer recipe (words_num_filter, word_repetition_filter, "
                    "character_repetition_filter, text_length_filter, image_shape_filter; Data-Juicer 1.6.1 "
                    "semantics). Writes the kept data, per-sample stats, a dropped manifest and a summary.")
    p.add_argument("--recipe", required=True, help="Data-Juicer YAML recipe (process: list of operators)")
    p.add_argument("--dataset_path", help="input file; overrides the recipe's dataset_path")
    p.add_argument("--export_path", help="kept-data file (same format as the input); overrides the recipe's")
    p.add_argument("--input_format", choices=FORMATS, default="auto",
                   help="dj: Data-Juicer JSONL; training: our training JSONL; llava: LLaVA JSON; "
                        "captions: caption JSON (default: detect)")
    p.add_argument("--image_folder", help="folder relative image paths are resolved against "
                                          "(default: the input file's folder, as in Data-Juicer)")
    p.add_argument("--multiview_dir", help="caption input only: use each record's object views from this folder of "
                                           "VaseVQA object folders as its images")
    add_views_arg(p, "views per object with --multiview_dir / --vasevqa, in this order (comma-separated)")
    p.add_argument("--text_view", choices=TEXT_VIEWS, default="answers",
                   help="text the operators see for conversation inputs: answers = the gpt turns joined with "
                        "newlines; dj = Data-Juicer's llava_to_dj layout (default: answers)")
    p.add_argument("--np", type=int, help="worker processes (default: the recipe's np, else the number of cores)")
    p.add_argument("--chunk_size", type=int, help="samples per work unit (default: automatic)")
    p.add_argument("--skip_unsupported_ops", action="store_true",
                   help="skip recipe operators this tool does not implement (listed in the summary) instead of "
                        "failing")
    p.add_argument("--parity", action="store_true",
                   help="also run the real py-data-juicer operators (if installed) and compare stats and decisions")
    p.add_argument("--parity_samples", type=int, help="compare only the first N samples in --parity mode")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    add_max_image_pixels_arg(p)
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    recipe = load_recipe(args.recipe, skip_unsupported=args.skip_unsupported_ops)
    dataset_path = args.dataset_path or recipe.dataset_path
    export_path = args.export_path or recipe.export_path
    if not dataset_path:
        raise InputError(f"{args.recipe}: no dataset_path in the recipe; pass --dataset_path")
    if not export_path:
        raise InputError(f"{args.recipe}: no export_path in the recipe; pass --export_path")
    if args.np is not None and args.np < 1:
        raise InputError(f"--np must be at least 1, got {args.np}")
    if args.chunk_size is not None and args.chunk_size < 1:
        raise InputError(f"--chunk_size must be at least 1, got {args.chunk_size}")
    apply_max_image_pixels(args)
    paths = output_paths(Path(export_path))
    with exclusive_outputs(list(paths.values()), [Path(dataset_path), Path(args.recipe)], flag="--export_path",
                           what="filter output"):
        return _filter(args, recipe, dataset_path, export_path, paths)


def _filter(args: argparse.Namespace, recipe: Recipe, dataset_path: str, export_path: str,
            paths: dict[str, Path]) -> int:
    dataset = load_dataset(dataset_path, args.input_format, text_key=recipe.text_key, image_key=recipe.image_key,
                           image_folder=args.image_folder, text_view=args.text_view,
                           eoc_token=recipe.eoc_special_token, multiview_dir=args.multiview_dir, views=args.views)
    want_suffix = ".jsonl" if dataset.is_jsonl else ".json"
    if paths["kept"].suffix != want_suffix:
        raise InputError(f"{export_path}: the kept data keeps the input's format ({dataset.format}), so the export "
                         f"path must end in {want_suffix}")
    np = args.np or recipe.np or os.cpu_count() or 1
    log.info("%s: %d samples (%s format), %d operators, up to %d processes", dataset.path, len(dataset.items),
             dataset.format, len(recipe.ops), np)
    result = run_filter(dataset, recipe, np=np, chunk_size=args.chunk_size, progress=not args.no_progress)
    summary = summarize(dataset, recipe, result, paths)
    if args.parity:
        from dataprocess.parity import run_parity

        summary["parity"] = run_parity(dataset, recipe, result.stats, result.drops, args.parity_samples)
    write_all_or_nothing(render_outputs(dataset, recipe, result, summary, paths))

    for entry in summary["ops"]:
        log.info("  %-30s seen %7d  dropped %7d", entry["op"], entry["seen"], entry["dropped"])
    bad = summary["bad_images"]
    if bad["samples_dropped"]:
        log.warning("%d samples dropped for a bad image (%d missing, %d unreadable); see %s", bad["samples_dropped"],
                    bad["missing"], bad["unreadable"], paths["dropped"])
    log.info("kept %d of %d samples in %.2f s (%.0f samples/s) -> %s", summary["kept"], summary["total"],
             result.seconds, summary["samples_per_second"] or 0, paths["kept"])
    if args.parity and summary["parity"]["status"] == "mismatch":
        log.error("parity check found %d mismatches with Data-Juicer; see %s", summary["parity"]["mismatches"],
                  paths["summary"])
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
