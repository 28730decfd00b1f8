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

import hashlib
import json
import logging
import os
from array import array
from collections.abc import Iterator
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
    from_vasevqa,
    training_chunks,
)
from dataprocess.options import cores, views_option
from dataprocess.outputs import exclusive_outputs
from dataprocess.retrieval_pairs import RetrievalPairsOptions, pairs_of, retrieval_paths
from dataprocess.retrieval_pairs import val_path as retrieval_val_path
from dataprocess.split import DEDUP_MODES, dedup_keys, group_split, hash_images
from vlmkit.cli import run_main, setup_logging
from vlmkit.images import ImageProblem, max_image_pixels_option, read_image_header, set_max_image_pixels
from vlmkit.io import InputError, StagedCommit
from vlmkit.options import Options, opt, parse_options
from vlmkit.ranges import POSITIVE, Range
from vlmkit.samples import DEFAULT_CAPTION_PROMPT, TrainingSample
from vlmkit.training_data import READ_CHUNK

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
    chunk_size: int = opt(READ_CHUNK, f"samples read at a time from a streamed training-data input; memory holds one "
                                      f"chunk plus a compact per-sample index (default: {READ_CHUNK})",
                          range=POSITIVE)
    retrieval: RetrievalPairsOptions = field(default_factory=RetrievalPairsOptions)
    verbose: bool = opt(False, flags=("-v",))


def read_inputs(o: ConvertOptions) -> Iterator[Converted]:
    """The inputs one part at a time: a whole JSON-array file (LLaVA, AI Challenger, captions.json, VaseVQA are
    parsed whole), or a chunk of at most --chunk_size samples of a streamed training-data file."""
    src = o.sources
    for f in src.llava:
        yield from_llava(Path(f), src.llava_image_folder)
    for f in src.aichallenger:
        yield from_aichallenger(Path(f), src.aichallenger_image_folder, o.prompt, src.aichallenger_mode, o.seed)
    for f in src.captions:
        yield from_captions(Path(f), o.prompt)
    for f in src.vasevqa:
        yield from_vasevqa(Path(f), src.multiview_dir, src.views, o.vasevqa_prompt)
    for f in src.training:
        yield from training_chunks(Path(f), o.chunk_size)


def check_paths(part: Converted, allow_outside: bool) -> None:
    """An image name that resolves outside its input's image folder (`../../etc/passwd`, an absolute path elsewhere)
    is an error naming the item, unless --allow_outside_paths. Lexical (normalised paths, symlinks not followed): a
    link the user put into the image folder is theirs to trust."""
    if part.image_root is None or allow_outside:
        return
    base = os.path.normpath(os.path.abspath(part.image_root))
    for k, sample in enumerate(part.samples, part.offset):
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
    for k, sample in enumerate(part.samples, part.offset):
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
    ids = [s.id for s in samples]
    renamed = rename_repeated(ids)
    for s, new in zip(samples, ids, strict=True):
        s.id = new
    return renamed


def rename_repeated(ids: list[str]) -> int:
    """`unique_ids` on a list of ids, in place (convert's index holds ids, not samples)."""
    seen: dict[str, int] = {}
    taken = set(ids)
    renamed = 0
    for i, sid in enumerate(ids):
        if sid not in seen:
            seen[sid] = 1
            continue
        n = seen[sid]
        while True:
            n += 1
            new = f"{sid}-{n}"
            if new not in taken:
                break
        seen[sid] = n
        taken.add(new)
        ids[i] = new
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


@dataclass
class Index:
    """Pass 1's compact record of every sample left after the image checks, in input order: what renaming, dedup and
    the split need, not the samples (pass 2 re-reads them). Per sample: its id, the number of its (interned) image
    path tuple, and with image_text dedup a 16-byte digest of its conversation."""

    ids: list[str] = field(default_factory=list)
    image_sets: dict[tuple[str, ...], int] = field(default_factory=dict)
    key_ids: array = field(default_factory=lambda: array("Q"))
    texts: list[bytes] = field(default_factory=list)
    parts: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    bad: dict[str, ImageProblem] = field(default_factory=dict)
    peak: int = 0

    def add(self, sample: TrainingSample, with_text: bool) -> None:
        self.ids.append(sample.id)
        self.key_ids.append(self.image_sets.setdefault(tuple(sample.images), len(self.image_sets)))
        if with_text:
            turns = [[t["from"], t["value"]] for t in sample.conversations]
            self.texts.append(hashlib.sha256(json.dumps(turns, ensure_ascii=False).encode("utf-8")).digest()[:16])


def _checked_parts(o: ConvertOptions, index: Index, first_pass: bool) -> Iterator[Converted]:
    """One part at a time (so at most one part's samples are held), its paths and image headers checked."""
    for part in read_inputs(o):
        index.peak = max(index.peak, len(part.samples))
        check_paths(part, o.allow_outside_paths)
        if first_pass:
            index.bad.update(image_problems([p for s in part.samples for p in s.images], o.np))
        check_images(part, o.skip_missing_images, index.bad)
        yield part


def _first_pass(o: ConvertOptions) -> Index:
    index = Index()
    for part in _checked_parts(o, index, first_pass=True):
        if part.offset:  # a later chunk of the file before
            index.parts[-1]["samples"] += len(part.samples)
            index.parts[-1]["dropped"] += len(part.problems)
        else:
            index.parts.append({"source": part.source, "path": str(part.path), "samples": len(part.samples),
                                "dropped": len(part.problems)})
        index.problems += part.problems
        for s in part.samples:
            index.add(s, o.dedup == "image_text")
    return index


SIDES = (None, "train", "val")


def _convert(o: ConvertOptions, output: Path, val_output: Path, dropped_path: Path, summary_path: Path) -> int:
    """Two passes over the sources: pass 1 keeps a compact index (ids, image paths, conversation digests) and decides
    renaming, dedup and the split; pass 2 re-reads the sources and streams each kept sample into the staged outputs,
    published together at the end (all or nothing)."""
    index = _first_pass(o)
    if not index.ids:
        raise InputError("no sample left to write (every input sample was dropped)")
    ids = index.ids
    renamed = rename_repeated(ids)

    hashes = None
    table = list(index.image_sets)  # each distinct image tuple once; samples share these tuples
    if o.dedup != "none":
        hashes = hash_images([p for key in table for p in key], o.np)
        table = [tuple(hashes[p] for p in key) for key in table]
    keys = [table[k] for k in index.key_ids]
    kept_idx, dups = dedup_keys(keys, index.texts, o.dedup)
    train_idx, val_idx, n_groups = group_split([keys[i] for i in kept_idx], o.val_ratio, o.seed)
    if o.val_ratio > 0 and not val_idx:
        log.warning("--val_ratio %g of %d samples rounds to 0: the val split is empty", o.val_ratio, len(kept_idx))
    del keys, table
    index.texts.clear()
    side = bytearray(len(ids))  # per sample: 0 dropped, 1 train, 2 val
    for k in train_idx:
        side[kept_idx[k]] = 1
    for k in val_idx:
        side[kept_idx[k]] = 2
    n_train, n_val = len(train_idx), len(val_idx)
    del kept_idx, train_idx, val_idx

    dropped_rows = [{"id": p.id, "where": p.where, "reason": p.reason} for p in index.problems]
    dropped_rows += [{"id": ids[i], "reason": f"duplicate of {ids[j]} ({o.dedup})", "duplicate_of": ids[j]}
                     for i, j in dups]
    n_missing = len(index.problems)
    summary: dict[str, Any] = {
        "inputs": index.parts,
        "samples_read": len(ids) + n_missing,
        "dropped_missing_images": n_missing,
        "renamed_duplicate_ids": renamed,
        "dedup": {"mode": o.dedup, "dropped": len(dups),
                  "distinct_images": len(set(hashes.values())) if hashes else None},
        "split": {"val_ratio": o.val_ratio, "seed": o.seed, "image_groups": n_groups,
                  "train": n_train, "val": n_val,
                  "grouped_by": "content hash" if hashes else "image path"},
        "outputs": {k: str(v) for k, v in (("train", output), ("val", val_output if o.val_ratio > 0 else None),
                                           ("dropped", dropped_path), ("summary", summary_path)) if v},
    }
    targets = {"train": output, **({"val": val_output} if o.val_ratio > 0 else {})}
    pairs = ({"train": Path(o.retrieval.retrieval_output)} if o.retrieval.retrieval_output else {})
    if pairs and o.val_ratio > 0:
        pairs["val"] = retrieval_val_path(pairs["train"])
    with StagedCommit([*targets.values(), *pairs.values(), dropped_path, summary_path]) as commit:
        pair_counts, no_pairs = _second_pass(o, index, ids, side, targets, pairs, commit)
        if pairs:
            summary["retrieval"] = {"views": o.retrieval.retrieval_views,
                                    "pairs": {k: pair_counts[k] for k in pairs}, "samples_without_pairs": no_pairs,
                                    "outputs": {k: str(v) for k, v in pairs.items()}}
        # the most samples held at once (one part: a JSON-array file, or one chunk of a streamed file)
        summary["streaming"] = {"chunk_size": o.chunk_size, "peak_samples_in_memory": index.peak}
        for target, text in ((dropped_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in dropped_rows)),
                             (summary_path, json.dumps(summary, ensure_ascii=False, indent=2) + "\n")):
            commit.path(target).write_text(text, encoding="utf-8")
            commit.staged(target)
        commit.commit()
    log.info("wrote %d train%s samples -> %s (%d dropped: %d missing images, %d duplicates; %d ids renamed)",
             n_train, f" + {n_val} val" if o.val_ratio > 0 else "", output, len(dropped_rows), n_missing, len(dups),
             renamed)
    return 0


def _second_pass(o: ConvertOptions, index: Index, ids: list[str], side: bytearray, targets: dict[str, Path],
                 pairs: dict[str, Path], commit: StagedCommit) -> tuple[dict[str, int], int]:
    """Re-read the sources and write each kept sample to its split's staged file (and its retrieval pairs)."""
    handles = {k: open(commit.path(t), "w", encoding="utf-8") for k, t in targets.items()}
    pair_handles = {k: open(commit.path(t), "w", encoding="utf-8") for k, t in pairs.items()}
    dirs = {k: t.resolve().parent for k, t in targets.items()}
    pair_dirs = {k: t.resolve().parent for k, t in pairs.items()}
    counts, no_pairs, g = dict.fromkeys(pairs, 0), 0, 0
    try:
        for part in _checked_parts(o, index, first_pass=False):
            for s in part.samples:
                s.id, where = ids[g], SIDES[side[g]]
                g += 1
                if where is None:
                    continue
                handles[where].write(to_line(s, dirs[where], o.absolute_paths))
                if pairs:
                    rows = pairs_of(s, o.retrieval.retrieval_views)
                    no_pairs += not rows
                    for row in rows:
                        row["positive"] = image_ref(row["positive"], pair_dirs[where], o.absolute_paths)
                        pair_handles[where].write(json.dumps(row, ensure_ascii=False) + "\n")
                    counts[where] += len(rows)
    finally:
        for h in (*handles.values(), *pair_handles.values()):
            h.close()
    if g != len(ids):
        raise InputError(f"an input changed while it was converted ({g} samples on the second read, {len(ids)} before)")
    for t in (*targets.values(), *pairs.values()):
        commit.staged(t)
    return counts, no_pairs


if __name__ == "__main__":
    run_main(main)
