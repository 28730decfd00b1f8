"""The input formats that explore and filter read, and writing kept data back in the same format.

Formats (`--input_format auto` picks one from the file):

- `dj`: Data-Juicer JSONL, one object per line with a text field (`text_keys`, default `text`) and a list of
  image paths (`image_key`, default `images`). The text operators see that field exactly as stored, special
  tokens (`<__dj__image>`, `<|__dj__eoc|>`) included, as in Data-Juicer.
- `training`: our training JSONL (vlmkit/samples.py: `conversations` + `images`); `llava`: LLaVA conversation
  JSON. The text operators see a *text view* of the conversation (`--text_view`):
  `answers` (default): the `gpt` turns joined with "\\n" (for a captioning set, the caption the model learns);
  `dj`: the text Data-Juicer's own `llava_to_dj.py` tool builds with its defaults,
  "[[human]]: <q>\\n[[gpt]]: <a>" per round, rounds joined with "\\n", then " " + eoc_special_token.
- `captions`: caption JSON, VaseVQA-3D's `[{"images": [...], "caption": ...}]` (generated captions and VaseVQA
  ground truth) or captions.json `[{"image", "caption"}]`. The text operators see the `caption` string as stored.
  With `--multiview_dir`, a record's images are its object's view files (`<dir>/<UUID>_<n>_..._shaded/front.jpg`,
  ... in `--views` order), so VaseVQA ground truth can be explored and filtered with its renders; a missing
  object folder or view counts as a missing image.

Image paths are resolved like Data-Juicer does: relative to the data file's folder (or `--image_folder`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmkit.ids import VIEWS
from vlmkit.io import InputError, iter_jsonl, read_json
from vlmkit.multiview import ObjectFolder, find_object_dirs_by_id
from vlmkit.records import parse_caption_records
from vlmkit.samples import load_llava_json, validate_sample

FORMATS = ("auto", "dj", "training", "llava", "captions")
TEXT_VIEWS = ("answers", "dj")
STATS_KEY = "__dj__stats__"  # Data-Juicer's Fields.stats


@dataclass
class Item:
    """One sample: its id, the text the operators see, resolved image paths, and the original object."""

    id: str
    text: str
    images: tuple[str, ...]
    raw: Any
    where: str


@dataclass
class Dataset:
    path: Path
    format: str
    items: list[Item]
    image_root: Path
    text_view: str | None = None

    @property
    def is_jsonl(self) -> bool:
        return self.format in ("dj", "training")

    def render(self, items: list[Item], stats: list[dict] | None = None) -> str:
        """The kept data as file text, in the input's format (stats added under `__dj__stats__` if given)."""
        objs = []
        for k, item in enumerate(items):
            obj = item.raw
            if isinstance(obj, dict) and STATS_KEY in obj:
                obj = {key: v for key, v in obj.items() if key != STATS_KEY}  # stale stats are never kept
            if stats is not None:
                obj = {**obj, STATS_KEY: stats[k]}
            objs.append(obj)
        if self.is_jsonl:
            return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs)
        return json.dumps(objs, ensure_ascii=False, indent=2) + "\n"


def detect_format(path: Path, data: Any = None) -> str:
    """`dj` / `training` for .jsonl (by whether the first object has `conversations`); `llava` / `captions`
    for .json (by whether the first record has `conversations` or `caption`; `data` is the parsed file)."""
    if path.suffix == ".jsonl":
        for _, obj in iter_jsonl(path):
            return "training" if isinstance(obj, dict) and "conversations" in obj else "dj"
        raise InputError(f"{path}: empty file")
    if path.suffix == ".json":
        data = read_json(path) if data is None else data
        first = data[0] if isinstance(data, list) and data else None
        if isinstance(first, dict) and "conversations" in first:
            return "llava"
        if isinstance(first, dict) and "caption" in first:
            return "captions"
        raise InputError(f"{path}: cannot tell the format (expected a JSON list of caption or LLaVA records); "
                         f"pass --input_format")
    raise InputError(f"{path}: unsupported file type '{path.suffix}' (expected .jsonl or .json)")


def multiview_images(obj: ObjectFolder | None, multiview_dir: Path, name: str, views) -> tuple[str, ...]:
    """The view files of a record's object; a missing folder or view yields a path that does not exist, so the
    sample is reported with a missing image rather than silently losing a view."""
    if obj is None:
        return (str(multiview_dir / f"(no object folder for {name})"),)
    return tuple(str(obj.view_files.get(v, obj.path / f"{v}.jpg")) for v in views)


def resolve(root: Path, name: str) -> str:
    return name if os.path.isabs(name) else str(root / name)


def dj_conversation_text(conversations: list[dict[str, str]], eoc_token: str) -> str:
    """Text of a conversation as Data-Juicer's llava_to_dj.py writes it with its default arguments
    (no chunk splitting, eoc token added at the end, "\\n" separator, `[[role]]: ` prefixes)."""
    rounds = []
    for i in range(0, len(conversations), 2):
        pair = conversations[i:i + 2]
        rounds.append("\n".join(f"[[{t['from']}]]: {t['value']}" for t in pair))
    return "\n".join(rounds) + f" {eoc_token}"


def conversation_text(conversations: list[dict[str, str]], view: str, eoc_token: str) -> str:
    if view == "answers":
        return "\n".join(t["value"] for t in conversations if t["from"] == "gpt")
    return dj_conversation_text(conversations, eoc_token)


def load_dataset(path: str | os.PathLike, input_format: str = "auto", *, text_key: str = "text",
                 image_key: str = "images", image_folder: str | None = None, text_view: str = "answers",
                 eoc_token: str = "<|__dj__eoc|>", multiview_dir: str | None = None,
                 views: tuple[str, ...] | list[str] = VIEWS) -> Dataset:
    """Read any supported input into `Item`s; a malformed record is an `InputError` naming file and item."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: input file not found")
    if input_format not in FORMATS:
        raise InputError(f"unknown input format {input_format!r}; choose from {', '.join(FORMATS)}")
    if text_view not in TEXT_VIEWS:
        raise InputError(f"unknown text view {text_view!r}; choose from {', '.join(TEXT_VIEWS)}")
    parsed = read_json(path) if path.suffix == ".json" else None
    fmt = detect_format(path, parsed) if input_format == "auto" else input_format
    if fmt in ("dj", "training") and path.suffix == ".json" or fmt in ("llava", "captions") and parsed is None:
        raise InputError(f"{path}: format '{fmt}' needs a {'.jsonl' if fmt in ('dj', 'training') else '.json'} file")
    root = Path(image_folder) if image_folder else path.parent
    items: list[Item] = []
    if fmt == "dj":
        for lineno, obj in iter_jsonl(path):
            where = f"{path}: line {lineno}"
            if not isinstance(obj, dict):
                raise InputError(f"{where}: expected a JSON object")
            text = obj.get(text_key)
            if not isinstance(text, str):
                raise InputError(f"{where}: text field '{text_key}' must be a string, got {type(text).__name__}")
            images = obj.get(image_key) or []
            if not isinstance(images, list) or not all(isinstance(x, str) and x for x in images):
                raise InputError(f"{where}: '{image_key}' must be a list of image paths")
            sid = str(obj["id"]) if obj.get("id") is not None else f"line{lineno}"
            items.append(Item(sid, text, tuple(resolve(root, x) for x in images), obj, where))
    elif fmt == "training":
        for lineno, obj in iter_jsonl(path):
            where = f"{path}: line {lineno}"
            sample = validate_sample(obj, where)
            text = conversation_text(sample.conversations, text_view, eoc_token)
            items.append(Item(sample.id, text, tuple(resolve(root, x) for x in sample.images), obj, where))
    elif fmt == "llava":
        raws = parsed
        for k, (raw, sample) in enumerate(zip(raws, load_llava_json(path), strict=True)):
            text = conversation_text(sample.conversations, text_view, eoc_token)
            items.append(Item(sample.id, text, tuple(resolve(root, x) for x in sample.images), raw,
                              f"{path}: item {k}"))
    elif fmt == "captions":
        raws = parsed
        objects = find_object_dirs_by_id(multiview_dir) if multiview_dir else None
        for record in parse_caption_records(raws, path):
            raw = raws[record.index]
            if objects is None:
                images = tuple(resolve(root, x) for x in record.images)
            else:
                images = multiview_images(objects.get(record.id), Path(multiview_dir), record.images[0], views)
            items.append(Item(record.id, raw["caption"], images, raw, f"{path}: item {record.index}"))
    else:  # pragma: no cover - guarded above
        raise InputError(f"unknown input format {fmt!r}")
    if not items:
        raise InputError(f"{path}: no samples")
    return Dataset(path, fmt, items, root, text_view if fmt in ("training", "llava") else None)
