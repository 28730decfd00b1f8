"""One reader per training-data format: which format a file holds, and its records as training samples.

train.py (`vlmkit.training.data.load_samples`), dataprocess (explore, filter, convert `--training`) and the
retrieval pairs convert writes all detect and read through here, so a file means the same to every command:

- `training` (JSONL, Parquet, WebDataset, HF): `{"id", "images", "conversations"}` records (vlmkit.samples), as is;
- `dj` (JSONL, Parquet, WebDataset, HF): Data-Juicer records, a text field and an image list; a training sample is a
  caption sample whose answer is the text without Data-Juicer's special tokens;
- `llava` (a JSON list): `{"id", "image", "conversations"}`, every turn kept;
- `captions` (a JSON list): captions.json `{"image", "caption"}` (a caption sample), or groundTruth.json
  `{"images": [...], "caption"}`, joined with its multi-view object folders (`image_folder`).

`format_of` decides from the first record (a JSONL-like record with `conversations` is `training`, any other
`dj`; a JSON record with `conversations` is `llava`, one with `caption` is `captions`), `detect_format` from a file.
Records stream through `vlmkit.streams` chunk by chunk; JSON documents are parsed whole.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vlmkit.ids import item_id
from vlmkit.io import InputError, iter_jsonl
from vlmkit.samples import (
    DEFAULT_CAPTION_PROMPT,
    TrainingSample,
    caption_sample,
    load_captions_json,
    load_llava_json,
    multiview_caption_samples,
    validate_sample,
)
from vlmkit.streams import ChunkRef, Source, container_of, parsed_json

log = logging.getLogger(__name__)
FORMATS = ("training", "dj", "llava", "captions")
DJ_IMAGE_TOKEN = "<__dj__image>"  # Data-Juicer's default special tokens (a recipe may name others)
DJ_EOC_TOKEN = "<|__dj__eoc|>"
READ_CHUNK = 10000


def format_of(first: Any, container: str) -> str | None:
    """The format a data set's first record shows; None: a JSON document that is neither LLaVA nor captions."""
    has = (lambda key: key in first) if isinstance(first, dict) else (lambda key: False)
    if container == "json":
        return "llava" if has("conversations") else "captions" if has("caption") else None
    return "training" if has("conversations") else "dj"


def first_record(source: Source) -> Any:
    """The first record of a data set (the parsed JSON object of a WebDataset sample), None when it is empty."""
    if source.container == "json":
        data = parsed_json(source.path)
        return data[0] if isinstance(data, list) and data else None
    if source.container == "jsonl":  # the first line, without planning the whole file
        return next((obj for _, obj in iter_jsonl(source.path)), None)
    refs = source.plan(READ_CHUNK)
    if not refs:
        return None
    ref = refs[0]
    raw, where = source.read(ChunkRef(0, ref.file, ref.start, 1, ref.first))[0]
    return wds_record(raw, where) if source.container == "webdataset" else raw


def wds_record(raw: dict[str, Any], where: str, text_key: str = "text") -> Any:
    """A WebDataset sample's record: its `.json` member, else `{text_key: <its .txt member>}`."""
    import json

    members = raw["members"]
    if "json" in members:
        try:
            return json.loads(members["json"])
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{where}: {raw['__key__']}.json: malformed JSON ({exc})") from None
    if "txt" in members:
        return {text_key: members["txt"].decode("utf-8", errors="replace")}
    raise InputError(f"{where}: sample has neither a .json nor a .txt member")


def detect_format(path: str | os.PathLike, container: str | None = None) -> str:
    """The format of the data set at `path` (see the table above); an `InputError` when it cannot tell."""
    return _detect(Path(path), container or container_of(path))[0]


def _detect(path: Path, container: str) -> tuple[str, Any]:
    first = first_record(Source(path, container))
    if first is None and container == "jsonl":
        raise InputError(f"{path}: empty file")
    fmt = format_of(first, container)
    if fmt is None:
        raise InputError(f"{path}: cannot tell the format (expected a JSON list of caption or LLaVA records); "
                         f"pass --input_format")
    return fmt, first


def dj_fields(obj: Any, where: str, text_key: str = "text",
              image_key: str = "images") -> tuple[str | None, str, list[Any]]:
    """A Data-Juicer record's id (None: not given), text and image values, checked; `InputError` naming `where`."""
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object")
    text = obj.get(text_key)
    if not isinstance(text, str):
        raise InputError(f"{where}: text field '{text_key}' must be a string, got {type(text).__name__}")
    images = obj.get(image_key) or []
    if not isinstance(images, list):
        raise InputError(f"{where}: '{image_key}' must be a list of image paths")
    return (None if obj.get("id") is None else str(obj["id"])), text, images


def dj_sample(obj: Any, where: str, prompt: str, text_key: str = "text", image_key: str = "images") -> TrainingSample:
    """A Data-Juicer record as a caption sample: its text, without the special tokens, is the answer."""
    sid, text, images = dj_fields(obj, where, text_key, image_key)
    if not all(isinstance(x, str) and x for x in images):
        raise InputError(f"{where}: '{image_key}' must be a list of image paths (embedded images cannot be "
                         f"training samples; convert them to files first)")
    caption = " ".join(text.replace(DJ_IMAGE_TOKEN, " ").replace(DJ_EOC_TOKEN, " ").split())
    if not caption:
        raise InputError(f"{where}: empty text: no answer to train on")
    sid = sid or (item_id(images[0]) if images else "")
    if not sid:
        raise InputError(f"{where}: missing 'id'")
    return caption_sample(sid, images, caption, prompt, source="dj")


def iter_records(path: str | os.PathLike, container: str | None = None,
                 chunk_size: int = READ_CHUNK) -> Iterator[tuple[Any, str]]:
    """Every record of a JSONL / Parquet / WebDataset / HF data set with where it came from, chunk by chunk."""
    source = Source(path, container or container_of(path))
    for ref in source.plan(chunk_size):
        for raw, where in source.read(ref):
            yield (wds_record(raw, where) if source.container == "webdataset" else raw), where


def read_training_data(path: str | os.PathLike, image_folder: str | None = None, prompt: str | None = None,
                       views: tuple[str, ...] | None = None, *, input_format: str = "auto",
                       text_key: str = "text", image_key: str = "images") -> tuple[list[TrainingSample], Path]:
    """The samples of a training-data file of any format, and the folder their image paths are relative to
    (`image_folder` when given, else the data file's folder).

    prompt: the question of caption samples (default: DEFAULT_CAPTION_PROMPT; for multi-view caption files the
    multi-view caption prompt qwen.py and test.sh ask with); views: the views of a multi-view object, in order.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    container = container_of(path)
    fmt = input_format
    if input_format == "auto":
        fmt, first = _detect(path, container)
        if fmt == "dj" and not (isinstance(first, dict) and text_key in first):
            fmt = "training"  # neither conversations nor a text: the training format's own error names the problem
    if fmt not in FORMATS:
        raise InputError(f"unknown training data format {fmt!r}; choose from {', '.join(FORMATS)}")
    root = Path(image_folder) if image_folder else Source(path, container).root
    if fmt == "llava":
        return load_llava_json(path), root
    if fmt == "captions":
        data = parsed_json(path)
        first = data[0] if isinstance(data, list) and data else None
        if isinstance(first, dict) and "images" in first and "image" not in first:
            return load_multiview_captions(path, image_folder, prompt, views)
        return load_captions_json(path, prompt or DEFAULT_CAPTION_PROMPT), root
    if container == "json":
        raise InputError(f"{path}: format '{fmt}' needs a .jsonl file (or Parquet, WebDataset, HF datasets)")
    if fmt == "training":
        return [validate_sample(obj, where) for obj, where in iter_records(path, container)], root
    return [dj_sample(obj, where, prompt or DEFAULT_CAPTION_PROMPT, text_key, image_key)
            for obj, where in iter_records(path, container)], root


def load_multiview_captions(path: Path, image_folder: str | None, prompt: str | None,
                            views: tuple[str, ...] | None = None) -> tuple[list[TrainingSample], Path]:
    """A seed-format caption file joined with its object folders; an object lacking views trains with the rest."""
    if not image_folder:
        raise InputError(f"{path}: a caption file with 'images' needs --image_folder (the multi-view object folders)")
    joined = multiview_caption_samples(path, image_folder, views, prompt, source=path.name)
    if joined.skipped:
        where, _, reason = joined.skipped[0]
        raise InputError(f"{where}: {reason}")
    if joined.missing_views:
        incomplete = [f"{sid} (no {','.join(v)})" for sid, (_, v) in joined.missing_views.items()]
        log.warning("%d objects lack some requested views and train with the views they have: %s", len(incomplete),
                    "; ".join(incomplete[:5]) + (" ..." if len(incomplete) > 5 else ""))
    return joined.samples, Path(image_folder)
