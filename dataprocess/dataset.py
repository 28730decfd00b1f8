"""The input formats that explore and filter read, and writing kept data back in the same format.

Formats (`--input_format auto` picks one from the file, by `vlmkit.training_data`, the one detector every command
shares):

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

Containers (`vlmkit.streams`): `dj` and `training` records may also come from Parquet files, WebDataset tar shards or
HF datasets `save_to_disk` folders (`--input_format parquet|webdataset|hf`, or detected from the path; the schema,
dj or training, is detected from the first record). Their images may be paths or embedded bytes (a binary cell, HF's
Image struct, a WebDataset image member). `open_input` plans chunks without reading the records, and `Input.items`
reads one chunk: nothing here holds the whole set (JSON documents excepted: they are parsed whole).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlmkit.ids import VIEWS
from vlmkit.io import InputError
from vlmkit.multiview import ObjectFolder, find_object_dirs_by_id
from vlmkit.records import parse_caption_records
from vlmkit.samples import load_llava_json, validate_sample
from vlmkit.streams import (
    IMAGE_EXTENSIONS,
    ChunkRef,
    EmbeddedImage,
    PartWriter,
    Source,
    container_of,
    image_value,
    parsed_json,
)
from vlmkit.training_data import detect_format, dj_fields, format_of, wds_record

FORMATS = ("auto", "dj", "training", "llava", "captions", "parquet", "webdataset", "hf")
SCHEMAS = ("dj", "training", "llava", "captions")
TEXT_VIEWS = ("answers", "dj")
STATS_KEY = "__dj__stats__"  # Data-Juicer's Fields.stats


@dataclass
class Item:
    """One sample: its id, the text the operators see, resolved image paths, and the original object."""

    id: str
    text: str
    images: tuple[str | EmbeddedImage, ...]
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


def resolve_image(root: Path, value: Any, label: str) -> str | EmbeddedImage | None:
    """A path resolved against `root`, or embedded bytes (see `vlmkit.streams.image_value`)."""
    got = image_value(value, label)
    return resolve(root, got) if isinstance(got, str) else got


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


class Input:
    """An opened input: its container, its schema, its chunks; `items(ref)` reads one chunk as `Item`s."""

    def __init__(self, path: str | os.PathLike, input_format: str = "auto", *, text_key: str = "text",
                 image_key: str = "images", image_folder: str | None = None, text_view: str = "answers",
                 eoc_token: str = "<|__dj__eoc|>", multiview_dir: str | None = None,
                 views: tuple[str, ...] | list[str] = VIEWS):
        path = Path(path)
        if not path.exists():
            raise InputError(f"{path}: input file not found")
        if input_format not in FORMATS:
            raise InputError(f"unknown input format {input_format!r}; choose from {', '.join(FORMATS)}")
        if text_view not in TEXT_VIEWS:
            raise InputError(f"unknown text view {text_view!r}; choose from {', '.join(TEXT_VIEWS)}")
        container = input_format if input_format in ("parquet", "webdataset", "hf") else container_of(path)
        if container in ("jsonl", "json") and not path.is_file():
            raise InputError(f"{path}: input file not found")
        self.source = Source(path, container)
        self.path, self.text_key, self.image_key = path, text_key, image_key
        self.text_view, self.eoc_token = text_view, eoc_token
        self.multiview_dir, self.views = multiview_dir, tuple(views)
        self.root = Path(image_folder) if image_folder else self.source.root
        if input_format in SCHEMAS:
            fmt = input_format
            jsonl_schema = fmt in ("dj", "training")
            if jsonl_schema and container == "json" or not jsonl_schema and container != "json":
                raise InputError(f"{path}: format '{fmt}' needs a "
                                 f"{'.jsonl' if fmt in ('dj', 'training') else '.json'} file")
        elif container in ("jsonl", "json"):
            fmt = detect_format(path, container)
        else:
            fmt = None
        self.schema = fmt

    def __getstate__(self) -> dict[str, Any]:
        # sent to every worker: a JSON document's parsed cache stays behind (each process parses it once)
        return {k: v for k, v in self.__dict__.items() if k != "_json_cache"}

    def plan(self, chunk_size: int) -> list[ChunkRef]:
        refs = self.source.plan(chunk_size)
        if not refs:
            raise InputError(f"{self.path}: no samples")
        if self.schema is None:  # Parquet / WebDataset / HF: dj or training, from the first record
            raw, _ = self.source.read(ChunkRef(0, refs[0].file, refs[0].start, 1, refs[0].first))[0]
            obj = self._wds_json(raw, "") if self.source.container == "webdataset" else raw
            self.schema = format_of(obj, self.source.container)
        return refs

    @property
    def format(self) -> str:
        return self.schema or "dj"

    @property
    def output_kind(self) -> str:
        """The kept data's container: the input's (JSON documents stay JSON, HF datasets become Parquet)."""
        return {"jsonl": "jsonl", "json": "json", "parquet": "parquet", "hf": "parquet",
                "webdataset": "webdataset"}[self.source.container]

    def part_writer(self, keep_stats: bool = False) -> PartWriter:
        schema = None
        if self.output_kind == "parquet":
            import pyarrow as pa

            schema = self.source.arrow_schema()
            schema = schema.remove_metadata() if schema.metadata else schema
            if STATS_KEY in schema.names:
                schema = schema.remove(schema.get_field_index(STATS_KEY))
            if keep_stats:
                schema = schema.append(pa.field(STATS_KEY, pa.string()))
        return PartWriter(self.output_kind, schema)

    def kept_record(self, item: Item, stats: dict | None) -> Any:
        """The record written for a kept item (stale stats dropped; the new ones added when asked for)."""
        obj = item.raw
        if self.source.container == "webdataset":
            members = dict(obj["members"])
            if "json" in members and (stats is not None):
                record = json.loads(members["json"])
                record = {k: v for k, v in record.items() if k != STATS_KEY}
                members["json"] = json.dumps({**record, STATS_KEY: stats}, ensure_ascii=False).encode("utf-8")
            elif stats is not None:
                members["json"] = json.dumps({STATS_KEY: stats}, ensure_ascii=False).encode("utf-8")
            return {"__key__": obj["__key__"], "members": members}
        if isinstance(obj, dict) and STATS_KEY in obj:
            obj = {key: v for key, v in obj.items() if key != STATS_KEY}
        if stats is not None:
            value = json.dumps(stats, ensure_ascii=False) if self.output_kind == "parquet" else stats
            obj = {**obj, STATS_KEY: value}
        return obj

    def _wds_json(self, raw: dict, where: str) -> Any:
        return wds_record(raw, where, self.text_key)

    def items(self, ref: ChunkRef) -> list[Item]:
        if self.source.container == "json":
            return _json_items_cache(self, None)[ref.start:ref.start + ref.count]
        out = []
        for raw, where in self.source.read(ref):
            if self.source.container == "webdataset":
                obj = self._wds_json(raw, where)
                embedded = tuple(EmbeddedImage(f"{ref.file}: {raw['__key__']}.{ext}", data)
                                 for ext, data in raw["members"].items()
                                 if ext.rpartition(".")[2].lower() in IMAGE_EXTENSIONS)
                fallback = raw["__key__"]
            else:
                obj, embedded, fallback = raw, None, where.rpartition(": ")[2].replace(" ", "")
            out.append(self._item(obj, raw, where, fallback, embedded))
        return out

    def _images(self, values: Any, where: str, field_name: str) -> tuple[str | EmbeddedImage, ...]:
        if values is None:
            return ()
        if not isinstance(values, list):
            raise InputError(f"{where}: '{field_name}' must be a list of image paths")
        out = []
        for k, value in enumerate(values):
            got = resolve_image(self.root, value, f"{where}: image {k}")
            if got is None or got == "" or isinstance(got, str) and not value:
                raise InputError(f"{where}: '{field_name}' must be a list of image paths")
            out.append(got)
        return tuple(out)

    def _item(self, obj: Any, raw: Any, where: str, fallback_id: str,
              embedded: tuple[EmbeddedImage, ...] | None) -> Item:
        if self.schema == "dj":
            sid, text, values = dj_fields(obj, where, self.text_key, self.image_key)
            images = embedded or self._images(values, where, self.image_key)
            return Item(sid or fallback_id, text, images, raw, where)
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected a JSON object")
        # training: validated with image labels standing in for embedded bytes
        cells = obj.get("images")
        images: tuple | None = None
        check = obj
        if embedded:
            images = embedded
            check = {**obj, "images": [str(x) for x in embedded]}
        elif isinstance(cells, list) and any(not isinstance(c, str) for c in cells):
            images = self._images(cells, where, "images")
            check = {**obj, "images": [str(x) for x in images]}
        sample = validate_sample(check, where)
        text = conversation_text(sample.conversations, self.text_view, self.eoc_token)
        if images is None:
            images = tuple(resolve(self.root, x) for x in sample.images)
        return Item(sample.id, text, images, raw, where)

    def dataset(self, chunk_size: int = 10000) -> Dataset:
        """Every item in memory (explore and the --parity check; the filter streams chunks instead)."""
        items = [item for ref in self.plan(chunk_size) for item in self.items(ref)]
        return Dataset(self.path, self.format, items, self.root,
                       self.text_view if self.format in ("training", "llava") else None)


def _json_items_cache(inp: Input, _unused: Any) -> Any:
    """A JSON document's parsed list (before the schema is known) or its items (after); parsed once per Input."""
    cache = inp.__dict__.setdefault("_json_cache", {})
    if "parsed" not in cache:
        cache["parsed"] = parsed_json(inp.path)
    if getattr(inp, "schema", None) is None:
        return cache["parsed"]
    if "items" not in cache:
        cache["items"] = _json_items(inp, cache["parsed"])
    return cache["items"]


def _json_items(inp: Input, parsed: Any) -> list[Item]:
    path, root, fmt = inp.path, inp.root, inp.schema
    items: list[Item] = []
    if fmt == "llava":
        for k, (raw, sample) in enumerate(zip(parsed, load_llava_json(path), strict=True)):
            text = conversation_text(sample.conversations, inp.text_view, inp.eoc_token)
            items.append(Item(sample.id, text, tuple(resolve(root, x) for x in sample.images), raw,
                              f"{path}: item {k}"))
    else:
        objects = find_object_dirs_by_id(inp.multiview_dir) if inp.multiview_dir else None
        for record in parse_caption_records(parsed, path):
            raw = parsed[record.index]
            if objects is None:
                images = tuple(resolve(root, x) for x in record.images)
            else:
                images = multiview_images(objects.get(record.id), Path(inp.multiview_dir), record.images[0],
                                          inp.views)
            items.append(Item(record.id, raw["caption"], images, raw, f"{path}: item {record.index}"))
    return items


def open_input(path: str | os.PathLike, input_format: str = "auto", **kwargs: Any) -> Input:
    return Input(path, input_format, **kwargs)


def load_dataset(path: str | os.PathLike, input_format: str = "auto", **kwargs: Any) -> Dataset:
    """Read any supported input into `Item`s; a malformed record is an `InputError` naming file and item."""
    return Input(path, input_format, **kwargs).dataset()
