"""Convert caption / conversation data sets into ONE training JSONL (vlmkit/samples.py), then dedup and split.

    python -m dataprocess.convert --output data/train.jsonl --val_ratio 0.05 --dedup image_text \\
        --llava detail_23k.json complex_reasoning_77k.json --llava_image_folder coco/train2017 \\
        --aichallenger caption_train_annotations_20170902.json --aichallenger_image_folder aic/train_images \\
        --vasevqa examples/groundTruth.json --multiview_dir examples/multiview_images

Inputs (any mix, each flag takes one or more files): see `dataprocess.converters` for each format. Image
paths are written relative to the output file's folder when the images lie inside it, else absolute (always
absolute with --absolute_paths). An image name resolving outside its image folder is an error naming the item
unless --allow_outside_paths. Every image must exist and be an image (header check): a missing or bad one is an
error naming the file and item, unless --skip_missing_images, which drops the sample and lists it. Sample ids
stay unique: a repeated id (LLaVA detail and reasoning sets share COCO ids) gets `-2`, `-3`, ... appended.
Outputs, written together or not at all:

    <output>                  training samples (train split when --val_ratio > 0)
    <val_output>              val split (default <output stem>_val.jsonl)
    <output stem>_dropped.jsonl   samples dropped as duplicates or for missing images, with the reason
    <output stem>_summary.json    counts per source, dedup and split figures
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dataprocess.converters import (
    AIC_MODES,
    Converted,
    Problem,
    from_aichallenger,
    from_captions,
    from_llava,
    from_training,
    from_vasevqa,
)
from dataprocess.outputs import exclusive_outputs
from dataprocess.retrieval_pairs import add_retrieval_args, retrieval_files, retrieval_paths
from dataprocess.split import DEDUP_MODES, dedup, group_split, hash_images, image_keys
from vlmkit.cli import HelpFormatter, add_views_arg, run_main, setup_logging
from vlmkit.images import ImageProblem, add_max_image_pixels_arg, apply_max_image_pixels, read_image_header
from vlmkit.io import InputError, write_all_or_nothing
from vlmkit.samples import DEFAULT_CAPTION_PROMPT, TrainingSample

log = logging.getLogger("dataprocess.convert")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(formatter_class=HelpFormatter, prog="python -m dataprocess.convert",
        description="Convert LLaVA / AI Challenger / captions.json / VaseVQA multi-view data (and training JSONL) "
                    "into one training JSONL, with image-hash dedup and an image-disjoint train/val split.")
    src = p.add_argument_group("inputs (at least one)")
    src.add_argument("--llava", nargs="+", default=[], metavar="JSON", help="LLaVA conversation JSON files")
    src.add_argument("--llava_image_folder", help="folder of the LLaVA images (default: each JSON's folder)")
    src.add_argument("--aichallenger", nargs="+", default=[], metavar="JSON", help="AI Challenger caption JSON files")
    src.add_argument("--aichallenger_image_folder", help="folder of the AI Challenger images (default: JSON's folder)")
    src.add_argument("--aichallenger_mode", choices=AIC_MODES, default="per_caption",
                     help="per_caption: one sample per caption; first / random: one caption per image "
                          "(default: per_caption)")
    src.add_argument("--captions", nargs="+", default=[], metavar="JSON",
                     help='captions.json files ([{"image", "caption"}], images relative to the file)')
    src.add_argument("--vasevqa", nargs="+", default=[], metavar="JSON",
                     help="VaseVQA caption files ([{\"images\": [...], \"caption\"}], e.g. groundTruth.json)")
    src.add_argument("--multiview_dir", help="folder of the VaseVQA object folders (<UUID>_<n>_..._shaded/front.jpg)")
    add_views_arg(src, "views per object with --multiview_dir / --vasevqa, in this order (comma-separated)")
    src.add_argument("--training", nargs="+", default=[], metavar="JSONL", help="training JSONL files to merge")
    p.add_argument("--prompt", default=DEFAULT_CAPTION_PROMPT,
                   help="question of caption samples (captions.json, AI Challenger) "
                        f"(default: {DEFAULT_CAPTION_PROMPT!r})")
    p.add_argument("--vasevqa_prompt", default=None,
                   help="question of VaseVQA samples; {views}/{num_views}/{views_phrase} are filled in (default: "
                        "the caption prompt qwen.py and test.sh ask with, so training matches inference)")
    p.add_argument("--output", required=True, help="training JSONL to write")
    p.add_argument("--val_ratio", type=float, default=0.0, help="fraction of samples for val (default: 0, no split)")
    p.add_argument("--val_output", help="val JSONL (default: <output stem>_val.jsonl)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of --aichallenger_mode random")
    p.add_argument("--dedup", choices=DEDUP_MODES, default="none",
                   help="image: drop samples whose images have the same content as an earlier sample's; "
                        "image_text: only when the conversation is identical too (default: none)")
    p.add_argument("--skip_missing_images", action="store_true",
                   help="drop (and list) samples with a missing or bad image (empty, not an image, more pixels than "
                        "--max_image_pixels) instead of failing")
    p.add_argument("--allow_outside_paths", action="store_true",
                   help="accept image paths that resolve outside their input's image folder (default: an error "
                        "naming the item; such a path, e.g. ../../etc/passwd, is rarely what a data set means)")
    add_max_image_pixels_arg(p)
    p.add_argument("--absolute_paths", action="store_true", help="write absolute image paths")
    p.add_argument("--np", type=int, default=os.cpu_count() or 1, help="threads for image hashing")
    add_retrieval_args(p)
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def read_inputs(args: argparse.Namespace) -> list[Converted]:
    parts: list[Converted] = []
    for f in args.llava:
        parts.append(from_llava(Path(f), args.llava_image_folder))
    for f in args.aichallenger:
        parts.append(from_aichallenger(Path(f), args.aichallenger_image_folder, args.prompt, args.aichallenger_mode,
                                       args.seed))
    for f in args.captions:
        parts.append(from_captions(Path(f), args.prompt))
    for f in args.vasevqa:
        parts.append(from_vasevqa(Path(f), args.multiview_dir, args.views, args.vasevqa_prompt))
    for f in args.training:
        parts.append(from_training(Path(f)))
    return parts


def check_paths(part: Converted, allow_outside: bool) -> None:
    """An image name that resolves outside its input's image folder (`../../etc/passwd`, an absolute path elsewhere)
    is an error naming the item, unless --allow_outside_paths. Lexical (normalised paths, symlinks not followed): a
    link the user put into the image folder is theirs to trust."""
    if part.image_root is None or allow_outside:
        return
    base = os.path.normpath(os.path.abspath(part.image_root))
    for k, sample in enumerate(part.samples):
        for path in sample.images:
            if os.path.commonpath([base, path]) != base:
                raise InputError(f"{part.path}: sample {k} (id {sample.id}): image {path} is outside the image "
                                 f"folder {base}; pass --allow_outside_paths if that is intended")


def image_problems(paths: list[str], threads: int) -> dict[str, ImageProblem]:
    """The bad images among `paths`, from their headers (`vlmkit.images`: missing, empty, not an image, more pixels
    than --max_image_pixels); header reads only, in threads, so checking a large data set stays cheap."""
    from tqdm import tqdm

    unique = sorted(set(paths))
    with ThreadPoolExecutor(max(1, threads)) as pool:
        headers = list(tqdm(pool.map(read_image_header, unique), total=len(unique), desc="check images",
                            unit="image", disable=None))
    return {p: h for p, h in zip(unique, headers, strict=True) if isinstance(h, ImageProblem)}


def check_images(part: Converted, skip: bool, bad: dict[str, ImageProblem]) -> None:
    """Every image must be usable; a bad one is an error, or a dropped (and listed) sample with
    --skip_missing_images."""
    if part.problems and not skip:
        p = part.problems[0]
        raise InputError(f"{p.where}: {p.reason} (pass --skip_missing_images to drop such samples)")
    kept = []
    for k, sample in enumerate(part.samples):
        problem = next((bad[p] for p in sample.images if p in bad), None)
        if problem is None:
            kept.append(sample)
            continue
        where = f"{part.path}: sample {k} (id {sample.id})"
        reason = (f"image not found: {problem.path}" if problem.kind == "missing"
                  else f"bad image: {problem.path}: {problem.reason}")
        if not skip:
            raise InputError(f"{where}: {reason} (pass --skip_missing_images to drop such samples)")
        part.problems.append(Problem(where, sample.id, reason))
    part.samples = kept


def unique_ids(samples: list[TrainingSample]) -> int:
    """Append -2, -3, ... to repeated ids; returns how many were renamed."""
    seen: dict[str, int] = {}
    taken = {s.id for s in samples}
    renamed = 0
    for s in samples:
        if s.id not in seen:
            seen[s.id] = 1
            continue
        n = seen[s.id]
        while True:
            n += 1
            new = f"{s.id}-{n}"
            if new not in taken:
                break
        seen[s.id] = n
        taken.add(new)
        s.id = new
        renamed += 1
    return renamed


def image_ref(path: str, out_dir: Path, absolute_paths: bool) -> str:
    """Relative to the output folder when the image lies inside it (the folder can then be moved as a whole),
    absolute otherwise (a path climbing out with ../ would break when the JSONL alone is moved)."""
    if absolute_paths:
        return path
    rel = os.path.relpath(path, out_dir)
    return path if rel == ".." or rel.startswith(".." + os.sep) else rel


def to_line(sample: TrainingSample, out_dir: Path, absolute_paths: bool) -> str:
    obj = sample.to_json()
    obj["images"] = [image_ref(p, out_dir, absolute_paths) for p in sample.images]
    return json.dumps(obj, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    inputs = [Path(f) for f in args.llava + args.aichallenger + args.captions + args.vasevqa + args.training]
    if not inputs:
        raise InputError("no input given; pass --llava, --aichallenger, --captions, --vasevqa or --training")
    if args.multiview_dir and not args.vasevqa:
        raise InputError("--multiview_dir is only used with --vasevqa")
    if not 0.0 <= args.val_ratio < 1.0:
        raise InputError(f"--val_ratio must be in [0, 1), got {args.val_ratio}")
    output = Path(args.output)
    if output.suffix != ".jsonl":
        raise InputError(f"{output}: the output is a training JSONL; use a .jsonl name")
    stem = output.with_suffix("")
    val_output = Path(args.val_output) if args.val_output else Path(f"{stem}_val.jsonl")
    dropped_path, summary_path = Path(f"{stem}_dropped.jsonl"), Path(f"{stem}_summary.json")
    outs = [output, dropped_path, summary_path] + ([val_output] if args.val_ratio > 0 else []) + retrieval_paths(args)
    apply_max_image_pixels(args)

    with exclusive_outputs(outs, inputs, flag="--output", what="training data"):
        return _convert(args, output, val_output, dropped_path, summary_path)


def _convert(args: argparse.Namespace, output: Path, val_output: Path, dropped_path: Path, summary_path: Path) -> int:
    parts = read_inputs(args)
    for part in parts:
        check_paths(part, args.allow_outside_paths)
    bad = image_problems([p for part in parts for s in part.samples for p in s.images], args.np)
    for part in parts:
        check_images(part, args.skip_missing_images, bad)
    samples = [s for part in parts for s in part.samples]
    if not samples:
        raise InputError("no sample left to write (every input sample was dropped)")
    renamed = unique_ids(samples)

    hashes = None
    if args.dedup != "none":
        hashes = hash_images([p for s in samples for p in s.images], args.np)
    keys = image_keys(samples, hashes)
    kept_idx, dups = dedup(samples, keys, args.dedup)
    kept = [samples[i] for i in kept_idx]
    kept_keys = [keys[i] for i in kept_idx]
    train_idx, val_idx, n_groups = group_split(kept_keys, args.val_ratio, args.seed)
    if args.val_ratio > 0 and not val_idx:
        log.warning("--val_ratio %g of %d samples rounds to 0: the val split is empty", args.val_ratio, len(kept))

    dropped_rows: list[dict[str, Any]] = []
    for part in parts:
        dropped_rows += [{"id": p.id, "where": p.where, "reason": p.reason} for p in part.problems]
    dropped_rows += [{"id": samples[i].id, "reason": f"duplicate of {samples[j].id} ({args.dedup})",
                      "duplicate_of": samples[j].id} for i, j in dups]
    out_dir = output.resolve().parent
    files: dict[Path, str] = {output: "".join(to_line(kept[i], out_dir, args.absolute_paths) for i in train_idx)}
    if args.val_ratio > 0:
        val_dir = val_output.resolve().parent
        files[val_output] = "".join(to_line(kept[i], val_dir, args.absolute_paths) for i in val_idx)
    summary = {
        "inputs": [{"source": p.source, "path": str(p.path), "samples": len(p.samples), "dropped": len(p.problems)}
                   for p in parts],
        "samples_read": len(samples) + sum(len(p.problems) for p in parts),
        "dropped_missing_images": sum(len(p.problems) for p in parts),
        "renamed_duplicate_ids": renamed,
        "dedup": {"mode": args.dedup, "dropped": len(dups),
                  "distinct_images": len(set(hashes.values())) if hashes else None},
        "split": {"val_ratio": args.val_ratio, "seed": args.seed, "image_groups": n_groups,
                  "train": len(train_idx), "val": len(val_idx),
                  "grouped_by": "content hash" if hashes else "image path"},
        "outputs": {k: str(v) for k, v in (("train", output), ("val", val_output if args.val_ratio > 0 else None),
                                           ("dropped", dropped_path), ("summary", summary_path)) if v},
    }
    files.update(retrieval_files(args, kept, train_idx, val_idx, summary,
                                 lambda path, folder: image_ref(path, folder, args.absolute_paths)))
    files[dropped_path] = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in dropped_rows)
    files[summary_path] = json.dumps(summary, ensure_ascii=False, indent=2) + "\n"
    write_all_or_nothing(files)
    log.info("wrote %d train%s samples -> %s (%d dropped: %d missing images, %d duplicates; %d ids renamed)",
             len(train_idx), f" + {len(val_idx)} val" if args.val_ratio > 0 else "", output, len(dropped_rows),
             summary["dropped_missing_images"], len(dups), renamed)
    return 0


if __name__ == "__main__":
    run_main(main)
