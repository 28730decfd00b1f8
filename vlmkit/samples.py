"""Training samples: one JSONL line per sample, images + a LLaVA-style conversation.

This is the one format that `dataprocess` writes and `train.py` reads (and `dataprocess.augment` rewrites):

    {"id": "3f2a..._1", "images": ["multiview_images/3f2a..._1_.../front.jpg", ...],
     "conversations": [{"from": "human", "value": "<image>\\n<image>\\nDescribe this vase."},
                       {"from": "gpt", "value": "Athenian black-figure lekythos, ..."}],
     "source": "vasevqa"}

Image paths are relative to the JSONL file's folder (so a data set can be moved) or absolute. Each
`<image>` placeholder in the human turns stands for the next image of `images`, in order; their counts
must match. Extra keys (`source`, `caption`, `original_caption`, `provenance`, ...) are kept as they are.
captions.json (`[{"image", "caption"}]`) and LLaVA conversation JSON are parsed here too, all turns kept; which
format a file holds is decided in one place, `vlmkit.training_data`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmkit.ids import item_id
from vlmkit.io import InputError, iter_jsonl, read_json

IMAGE_PLACEHOLDER = "<image>"
DEFAULT_CAPTION_PROMPT = "Describe this image in one sentence."
ROLES = {"human": "user", "gpt": "assistant", "system": "system"}


@dataclass
class TrainingSample:
    id: str
    images: list[str]
    conversations: list[dict[str, str]]
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "images": list(self.images), "conversations": self.conversations, **self.extra}

    def resolved_images(self, root: str | os.PathLike) -> list[Path]:
        """Image paths made absolute against `root` (the data file's folder)."""
        return [p if p.is_absolute() else Path(root) / p for p in map(Path, self.images)]

    def to_chat_messages(self) -> list[dict[str, Any]]:
        """HF chat-template messages, with `{"type": "image"}` items where the `<image>` placeholders were."""
        messages = []
        for turn in self.conversations:
            content: list[dict[str, str]] = []
            parts = turn["value"].split(IMAGE_PLACEHOLDER)
            for i, part in enumerate(parts):
                if i > 0:
                    content.append({"type": "image"})
                text = part.strip("\n") if len(parts) > 1 else part
                if text:
                    content.append({"type": "text", "text": text})
            messages.append({"role": ROLES[turn["from"]], "content": content})
        return messages


def validate_sample(obj: Any, where: str) -> TrainingSample:
    """Check one parsed sample; raise `InputError` naming `where` (file and line/item)."""
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected an object, got {type(obj).__name__}")
    images = obj.get("images", [])
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list) or not all(isinstance(x, str) and x for x in images):
        raise InputError(f"{where}: 'images' must be a list of paths")
    convs = obj.get("conversations")
    if not isinstance(convs, list) or not convs:
        raise InputError(f"{where}: 'conversations' must be a non-empty list")
    for k, turn in enumerate(convs):
        if not isinstance(turn, dict) or turn.get("from") not in ROLES or not isinstance(turn.get("value"), str):
            raise InputError(f"{where}: conversation turn {k} needs 'from' in {sorted(ROLES)} and a string 'value'")
    if not any(t["from"] == "gpt" and t["value"].strip() for t in convs):
        raise InputError(f"{where}: no non-empty 'gpt' answer to train on")
    placeholders = sum(t["value"].count(IMAGE_PLACEHOLDER) for t in convs)
    if placeholders != len(images):
        raise InputError(f"{where}: {placeholders} '<image>' placeholders for {len(images)} images")
    sid = obj.get("id") or (item_id(images[0]) if images else "")
    if not sid:
        raise InputError(f"{where}: missing 'id'")
    extra = {k: v for k, v in obj.items() if k not in ("id", "images", "conversations")}
    return TrainingSample(str(sid), list(images), convs, extra)


def caption_sample(sid: str, images: list[str], caption: str, prompt: str = DEFAULT_CAPTION_PROMPT,
                   **extra: Any) -> TrainingSample:
    """A one-turn captioning sample: every image first, then the prompt; the caption is the answer."""
    human = "\n".join([IMAGE_PLACEHOLDER] * len(images) + [prompt])
    return TrainingSample(sid, list(images), [{"from": "human", "value": human}, {"from": "gpt", "value": caption}],
                          dict(extra))


def load_training_jsonl(path: str | os.PathLike) -> list[TrainingSample]:
    return [validate_sample(obj, f"{path}: line {lineno}") for lineno, obj in iter_jsonl(path)]


def load_captions_json(path: str | os.PathLike, prompt: str = DEFAULT_CAPTION_PROMPT) -> list[TrainingSample]:
    """captions.json: `[{"image": "a.jpg", "caption": "..."}]` (image relative to the file's folder)."""
    data = read_json(path)
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of {{\"image\", \"caption\"}} records")
    samples = []
    for i, rec in enumerate(data):
        where = f"{path}: item {i}"
        if not isinstance(rec, dict) or not isinstance(rec.get("image"), str) or not rec["image"]:
            raise InputError(f"{where}: needs a string 'image'")
        caption = rec.get("caption")
        if not isinstance(caption, str) or not caption.strip():
            raise InputError(f"{where} ({rec['image']}): empty or missing caption")
        samples.append(caption_sample(item_id(rec["image"]), [rec["image"]], caption.strip(), prompt,
                                      source="captions"))
    return samples


def load_llava_json(path: str | os.PathLike) -> list[TrainingSample]:
    """LLaVA instruction JSON (`[{"id", "image", "conversations": [...]}]`), every turn kept.

    LLaVA keeps images in a separate folder (e.g. COCO train2017): pass it as `image_folder` to
    `load_training_data`, which resolves the image names against it.
    """
    data = read_json(path)
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON list of LLaVA records")
    samples = []
    for i, rec in enumerate(data):
        where = f"{path}: item {i}"
        if not isinstance(rec, dict):
            raise InputError(f"{where}: expected an object")
        image = rec.get("image")
        images = [image] if isinstance(image, str) else list(image or [])
        obj = {"id": rec.get("id") or (item_id(images[0]) if images else f"item{i}"), "images": images,
               "conversations": rec.get("conversations"), "source": "llava"}
        samples.append(validate_sample(obj, f"{where} (id {obj['id']})"))
    return samples


def load_training_data(path: str | os.PathLike, image_folder: str | None = None,
                       prompt: str = DEFAULT_CAPTION_PROMPT) -> tuple[list[TrainingSample], Path]:
    """Any supported training file's samples and their image root: `vlmkit.training_data.read_training_data`."""
    from vlmkit.training_data import read_training_data

    return read_training_data(path, image_folder, prompt)


@dataclass
class MultiviewSamples:
    """Caption records joined with their multi-view object folders.

    `missing_views` maps a sample id to (where, the requested views its folder lacks); the sample has the others.
    `skipped` lists (where, id, reason) for records that could not become a sample at all. Each caller applies
    its own policy: conversion drops incomplete objects unless told otherwise, training uses the views there are.
    """

    samples: list[TrainingSample]
    missing_views: dict[str, tuple[str, list[str]]]
    skipped: list[tuple[str, str, str]]


def multiview_caption_samples(path: str | os.PathLike, multiview_dir: str | os.PathLike,
                              views: tuple[str, ...] | list[str] | None = None, prompt_template: str | None = None,
                              absolute_paths: bool = False, **extra: Any) -> MultiviewSamples:
    """One captioning sample per record of a seed-format caption file (e.g. groundTruth.json).

    Each sample's images are its object's views in `views` order, relative to `multiview_dir` (or absolute), and
    its prompt is `prompt_template` (default: the caption prompt qwen.py/test.sh use) filled with those views, so a
    model is trained with the prompt it will be asked with. Duplicate ids are an `InputError`.
    """
    from vlmkit.ids import VIEWS
    from vlmkit.multiview import find_object_dirs_by_id
    from vlmkit.prompt import MULTIVIEW_PROMPT, build_prompt
    from vlmkit.records import duplicate_ids, load_caption_records

    views = list(views or VIEWS)
    unknown = [v for v in views if v not in VIEWS]
    if unknown or not views:
        raise InputError(f"unknown view(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(VIEWS)}")
    records = load_caption_records(path)
    dups = duplicate_ids(records)
    if dups:
        rid, n = next(iter(dups.items()))
        raise InputError(f"{path}: id {rid} has {n} records ({len(dups)} duplicated ids); one caption per object")
    objects = find_object_dirs_by_id(multiview_dir)
    root = Path(multiview_dir)
    out = MultiviewSamples([], {}, [])
    for rec in records:
        where = f"{path}: item {rec.index} (id {rec.id})"
        obj = objects.get(rec.id)
        if obj is None:
            out.skipped.append((where, rec.id, f"no object folder for this id in {multiview_dir}"))
            continue
        present = [(v, p) for v, p in obj.views_in_order(views) if p.is_file()]
        if not present:
            out.skipped.append((where, rec.id, f"{obj.path}: none of the views {', '.join(views)}"))
            continue
        missing = [v for v in views if v not in {name for name, _ in present}]
        if missing:
            out.missing_views[rec.id] = (where, missing)
        files = [os.path.abspath(p) if absolute_paths else str(p.relative_to(root)) for _, p in present]
        prompt = build_prompt(prompt_template or MULTIVIEW_PROMPT, [v for v, _ in present])
        out.samples.append(caption_sample(rec.id, files, rec.caption, prompt, views=[v for v, _ in present],
                                          **extra))
    return out
