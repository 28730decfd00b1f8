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

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

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
from dataprocess.options import cores, views_option
from dataprocess.outputs import exclusive_outputs
from dataprocess.retrieval_pairs import RetrievalPairsOptions, retrieval_files, retrieval_paths
from dataprocess.split import DEDUP_MODES, dedup, group_split, hash_images, image_keys
from vlmkit.cli import run_main, setup_logging
from vlmkit.images import ImageProblem, max_image_pixels_option, read_image_header, set_max_image_pixels
from vlmkit.io import InputError, write_all_or_nothing
from vlmkit.options import Options, opt, parse_options
from vlmkit.ranges import POSITIVE, Range
from vlmkit.samples import DEFAULT_CAPTION_PROMPT, TrainingSample

log = logging.getLogger("dataprocess.convert")


DESCRIPTION = ("Convert LLaVA / AI Challenger / captions.json / VaseVQA multi-view data (and training JSONL) into one "
               "training JSONL, with image-hash dedup and an image-disjoint train/val split.")


@dataclass
class SourceOptions(Options):
    """The input files, by format; each flag takes one or more files."""

    TITLE: ClassVar[str | None] = "inputs (at least one)"
    llava: list[str] = opt(factory=list, help="LLaVA conversation JSON files", nargs="+", metavar="JSON")
    llava_image_folder: str | None = opt(None, "folder of the LLaVA images (default: each JSON's folder)")
    aichallenger: list[str] = opt(factory=list, help="AI Challenger caption JSON files", nargs="+", metavar="JSON")
    aichallenger_image_folder: str | None = opt(None, "folder of the AI Challenger images (default: JSON's folder)")
    aichallenger_mode: str = opt("per_caption", "per_caption: one sample per caption; first / random: one caption per "
                                                "image (default: per_caption)", choices=AIC_MODES)
    captions: list[str] = opt(factory=list, help='captions.json files ([{"image", "caption"}], images relative to the '
                                                 'file)', nargs="+", metavar="JSON")
    vasevqa: list[str] = opt(factory=list, help='VaseVQA caption files ([{"images": [...], "caption"}], e.g. '
                                                'groundTruth.json)', nargs="+", metavar="JSON")
    multiview_dir: str | None = opt(None, "folder of the VaseVQA object folders (<UUID>_<n>_..._shaded/front.jpg)")
    views: tuple[str, ...] = views_option()
    training: list[str] = opt(factory=list, help="training JSONL files to merge", nargs="+", metavar="JSONL")

    @property
    def files(self) -> list[Path]:
        return [Path(f) for f in self.llava + self.aichallenger + self.captions + self.vasevqa + self.training]

    def check(self) -> None:
        if not self.files:
            raise InputError("no input given; pass --llava, --aichallenger, --captions, --vasevqa or --training")
        if self.multiview_dir and not self.vasevqa:
            raise InputError("--multiview_dir is only used with --vasevqa")


@dataclass
class ConvertOptions(Options):
    """`python -m dataprocess.convert`'s settings."""

    sources: SourceOptions = field(default_factory=SourceOptions)
    prompt: str = opt(DEFAULT_CAPTION_PROMPT, "question of caption samples (captions.json, AI Challenger) "
                                              f"(default: {DEFAULT_CAPTION_PROMPT!r})")
    vasevqa_prompt: str | None = opt(None, "question of VaseVQA samples; {views}/{num_views}/{views_phrase} are "
                                           "filled in (default: the caption prompt qwen.py and test.sh ask with, so "
                                           "training matches inference)")
    output: str = opt(None, "training JSONL to write", required=True)
    val_ratio: float = opt(0.0, "fraction of samples for val (default: 0, no split)", range=Range(0, 1, hi_open=True))
    val_output: str | None = opt(None, "val JSONL (default: <output stem>_val.jsonl)")
    seed: int = opt(0, "seed of the split and of --aichallenger_mode random")
    dedup: str = opt("none", "image: drop samples whose images have the same content as an earlier sample's; "
                             "image_text: only when the conversation is identical too (default: none)",
                     choices=DEDUP_MODES)
    skip_missing_images: bool = opt(False, "drop (and list) samples with a missing or bad image (empty, not an image, "
                                           "more pixels than --max_image_pixels) instead of failing")
    allow_outside_paths: bool = opt(False, "accept image paths that resolve outside their input's image folder "
                                           "(default: an error naming the item; such a path, e.g. ../../etc/passwd, "
                                           "is rarely what a data set means)")
    max_image_pixels: int = max_image_pixels_option()
    absolute_paths: bool = opt(False, "write absolute image paths")
    np: int = opt(factory=cores, help="threads for image hashing", range=POSITIVE)
    retrieval: RetrievalPairsOptions = field(default_factory=RetrievalPairsOptions)
    verbose: bool = opt(False, flags=("-v",))


def read_inputs(o: ConvertOptions) -> list[Converted]:
    src = o.sources
    parts: list[Converted] = []
    for f in src.llava:
        parts.append(from_llava(Path(f), src.llava_image_folder))
    for f in src.aichallenger:
        parts.append(from_aichallenger(Path(f), src.aichallenger_image_folder, o.prompt, src.aichallenger_mode,
                                       o.seed))
    for f in src.captions:
        parts.append(from_captions(Path(f), o.prompt))
    for f in src.vasevqa:
        parts.append(from_vasevqa(Path(f), src.multiview_dir, src.views, o.vasevqa_prompt))
    for f in src.training:
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
    return run(parse_options(ConvertOptions, argv, description=DESCRIPTION, prog="python -m dataprocess.convert"))


def run(o: ConvertOptions) -> int:
    """Convert `o`'s inputs into the training (and val, dropped, summary, retrieval pairs) files, all or nothing."""
    setup_logging(o.verbose)
    output = Path(o.output)
    if output.suffix != ".jsonl":
        raise InputError(f"{output}: the output is a training JSONL; use a .jsonl name")
    stem = output.with_suffix("")
    val_output = Path(o.val_output) if o.val_output else Path(f"{stem}_val.jsonl")
    dropped_path, summary_path = Path(f"{stem}_dropped.jsonl"), Path(f"{stem}_summary.json")
    outs = ([output, dropped_path, summary_path] + ([val_output] if o.val_ratio > 0 else [])
            + retrieval_paths(o.retrieval, o.val_ratio))
    set_max_image_pixels(o.max_image_pixels)

    with exclusive_outputs(outs, o.sources.files, flag="--output", what="training data"):
        return _convert(o, output, val_output, dropped_path, summary_path)


def _convert(o: ConvertOptions, output: Path, val_output: Path, dropped_path: Path, summary_path: Path) -> int:
    parts = read_inputs(o)
    for part in parts:
        check_paths(part, o.allow_outside_paths)
    bad = image_problems([p for part in parts for s in part.samples for p in s.images], o.np)
    for part in parts:
        check_images(part, o.skip_missing_images, bad)
    samples = [s for part in parts for s in part.samples]
    if not samples:
        raise InputError("no sample left to write (every input sample was dropped)")
    renamed = unique_ids(samples)

    hashes = None
    if o.dedup != "none":
        hashes = hash_images([p for s in samples for p in s.images], o.np)
    keys = image_keys(samples, hashes)
    kept_idx, dups = dedup(samples, keys, o.dedup)
    kept = [samples[i] for i in kept_idx]
    kept_keys = [keys[i] for i in kept_idx]
    train_idx, val_idx, n_groups = group_split(kept_keys, o.val_ratio, o.seed)
    if o.val_ratio > 0 and not val_idx:
        log.warning("--val_ratio %g of %d samples rounds to 0: the val split is empty", o.val_ratio, len(kept))

    dropped_rows: list[dict[str, Any]] = []
    for part in parts:
        dropped_rows += [{"id": p.id, "where": p.where, "reason": p.reason} for p in part.problems]
    dropped_rows += [{"id": samples[i].id, "reason": f"duplicate of {samples[j].id} ({o.dedup})",
                      "duplicate_of": samples[j].id} for i, j in dups]
    out_dir = output.resolve().parent
    files: dict[Path, str] = {output: "".join(to_line(kept[i], out_dir, o.absolute_paths) for i in train_idx)}
    if o.val_ratio > 0:
        val_dir = val_output.resolve().parent
        files[val_output] = "".join(to_line(kept[i], val_dir, o.absolute_paths) for i in val_idx)
    summary = {
        "inputs": [{"source": p.source, "path": str(p.path), "samples": len(p.samples), "dropped": len(p.problems)}
                   for p in parts],
        "samples_read": len(samples) + sum(len(p.problems) for p in parts),
        "dropped_missing_images": sum(len(p.problems) for p in parts),
        "renamed_duplicate_ids": renamed,
        "dedup": {"mode": o.dedup, "dropped": len(dups),
                  "distinct_images": len(set(hashes.values())) if hashes else None},
        "split": {"val_ratio": o.val_ratio, "seed": o.seed, "image_groups": n_groups,
                  "train": len(train_idx), "val": len(val_idx),
                  "grouped_by": "content hash" if hashes else "image path"},
        "outputs": {k: str(v) for k, v in (("train", output), ("val", val_output if o.val_ratio > 0 else None),
                                           ("dropped", dropped_path), ("summary", summary_path)) if v},
    }
    files.update(retrieval_files(o.retrieval, o.val_ratio, kept, train_idx, val_idx, summary,
                                 lambda path, folder: image_ref(path, folder, o.absolute_paths)))
    files[dropped_path] = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in dropped_rows)
    files[summary_path] = json.dumps(summary, ensure_ascii=False, indent=2) + "\n"
    write_all_or_nothing(files)
    log.info("wrote %d train%s samples -> %s (%d dropped: %d missing images, %d duplicates; %d ids renamed)",
             len(train_idx), f" + {len(val_idx)} val" if o.val_ratio > 0 else "", output, len(dropped_rows),
             summary["dropped_missing_images"], len(dups), renamed)
    return 0


if __name__ == "__main__":
    run_main(main)
