"""Readers that turn each source format into training samples (vlmkit/samples.py) with absolute image paths.

- LLaVA conversation JSON (detail_23k, complex_reasoning_77k, ...): every turn kept (vlmkit.samples.load_llava_json);
  image names resolved against the image folder (e.g. COCO train2017).
- AI Challenger captions (`[{"image_id": "x.jpg", "caption": ["...", ...]}]`, five Chinese captions per image):
  `per_caption` (default) makes one sample per caption (id `<image stem>_c<k>`), `first` keeps the first
  caption, `random` one caption chosen with the random seed (id `<image stem>`). The prompt is fixed (`--prompt`), as in
  the Basic-VLM tutorial (docs/references.md).
- captions.json (`[{"image", "caption"}]`): vlmkit.samples.load_captions_json.
- VaseVQA ground truth (`[{"images": ["<UUID>_<n>_<coll>.jpg"], "caption"}]`) + multi-view object folders: one
  sample per object whose images are its views (in `--views` order) and whose answer is the caption.
- Our training JSONL: read as is (to merge, dedup or split existing data), through `vlmkit.training_data`, so any
  training-data file train.py reads (Parquet, HF datasets, Data-Juicer records, ...) merges too.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmkit.ids import item_id
from vlmkit.io import InputError, read_json
from vlmkit.samples import (
    TrainingSample,
    caption_sample,
    load_captions_json,
    load_llava_json,
    multiview_caption_samples,
)
from vlmkit.training_data import read_training_data

AIC_MODES = ("per_caption", "first", "random")


@dataclass
class Problem:
    """An item that cannot be converted as asked (missing image or object folder)."""

    where: str
    id: str
    reason: str


@dataclass
class Converted:
    """One input's samples. `image_root` is the folder its image names are relative to (the image folder or the
    file's folder) for the formats whose paths come from elsewhere (LLaVA, AI Challenger, captions.json); an image
    resolving outside it is refused unless --allow_outside_paths. None: paths need no such check (VaseVQA views
    are found inside --multiview_dir; training JSONL is this toolkit's own output, whose paths may climb out with
    ../ on purpose, see dataprocess.augment)."""

    source: str
    path: Path
    samples: list[TrainingSample]
    problems: list[Problem] = field(default_factory=list)
    image_root: Path | None = None


def absolute(root: Path, name: str) -> str:
    return os.path.normpath(name if os.path.isabs(name) else os.path.join(os.path.abspath(root), name))


def _absolutize(samples: list[TrainingSample], root: Path) -> list[TrainingSample]:
    for s in samples:
        s.images = [absolute(root, x) for x in s.images]
    return samples


def from_llava(path: Path, image_folder: str | None) -> Converted:
    root = Path(image_folder) if image_folder else path.parent
    return Converted("llava", path, _absolutize(load_llava_json(path), root), image_root=root)


def from_captions(path: Path, prompt: str) -> Converted:
    return Converted("captions", path, _absolutize(load_captions_json(path, prompt), path.parent),
                     image_root=path.parent)


def from_training(path: Path) -> Converted:
    """Training data of any format `vlmkit.training_data` reads (training JSONL / Parquet / WebDataset / HF, and the
    formats it detects), as train.py would read it."""
    samples, root = read_training_data(path)
    return Converted("training", path, _absolutize(samples, root))


def _aic_captions(rec: Any, where: str) -> list[str]:
    caps = rec.get("caption")
    if isinstance(caps, str):
        caps = [caps]
    if not isinstance(caps, list) or not caps:
        raise InputError(f"{where}: 'caption' must be a non-empty list of strings")
    out = []
    for k, cap in enumerate(caps):
        if not isinstance(cap, str) or not cap.strip():
            raise InputError(f"{where}: caption {k} is empty or not a string")
        # AI Challenger captions often carry stray newlines and spaces; they are one sentence each.
        out.append(" ".join(cap.split()))
    return out


def from_aichallenger(path: Path, image_folder: str | None, prompt: str, mode: str = "per_caption",
                      seed: int = 0) -> Converted:
    if mode not in AIC_MODES:
        raise InputError(f"unknown AI Challenger mode {mode!r}; choose from {', '.join(AIC_MODES)}")
    data = read_json(path)
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of {{\"image_id\", \"caption\": [...]}} records")
    root = Path(image_folder) if image_folder else path.parent
    samples = []
    for i, rec in enumerate(data):
        where = f"{path}: item {i}"
        if not isinstance(rec, dict) or not isinstance(rec.get("image_id"), str) or not rec["image_id"].strip():
            raise InputError(f"{where}: needs a string 'image_id'")
        image = rec["image_id"].strip()
        where = f"{where} ({image})"
        captions = _aic_captions(rec, where)
        stem = item_id(image)
        image_path = absolute(root, image)
        if mode == "per_caption":
            for k, cap in enumerate(captions):
                samples.append(caption_sample(f"{stem}_c{k}", [image_path], cap, prompt, source="aichallenger",
                                              caption_index=k))
        else:
            k = 0 if mode == "first" else random.Random(f"{seed}:{image}").randrange(len(captions))
            samples.append(caption_sample(stem, [image_path], captions[k], prompt, source="aichallenger",
                                          caption_index=k))
    return Converted("aichallenger", path, samples, image_root=root)


def from_vasevqa(gt_path: Path, multiview_dir: str | None, views: list[str], prompt: str | None) -> Converted:
    """One sample per object; an object missing a requested view is a problem (dropped with
    --skip_missing_images), since a converted data set should say exactly what each sample shows."""
    if not multiview_dir:
        raise InputError(f"{gt_path}: --vasevqa needs --multiview_dir (the folder of object folders)")
    joined = multiview_caption_samples(gt_path, multiview_dir, views, prompt, absolute_paths=True, source="vasevqa")
    out = Converted("vasevqa", gt_path, [])
    out.problems += [Problem(where, rid, reason) for where, rid, reason in joined.skipped]
    for sample in joined.samples:
        if sample.id in joined.missing_views:
            where, missing = joined.missing_views[sample.id]
            out.problems.append(Problem(where, sample.id, f"missing view(s) {', '.join(missing)}"))
        else:
            out.samples.append(sample)
    return out

