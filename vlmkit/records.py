"""Caption files in VaseVQA-3D's format, validated with one-line errors.

Generated captions: `[{"images": [...], "caption": "...", "data_by": "..."}]`;
ground truth: `[{"images": [...], "caption": "..."}]`. Each record's id is the item id of its first
image (see `vlmkit.ids`).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmkit.ids import item_id
from vlmkit.io import InputError, read_json


@dataclass(frozen=True)
class CaptionRecord:
    """One caption of one item, with where it came from (for error messages)."""

    id: str
    images: tuple[str, ...]
    caption: str
    data_by: str | None = None
    index: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"images": list(self.images), "caption": self.caption}
        if self.data_by is not None:
            out["data_by"] = self.data_by
        out.update(self.extra)
        return out


def parse_caption_records(data: Any, source: str | os.PathLike, require_data_by: bool = False) -> list[CaptionRecord]:
    """Validate already-parsed JSON as a list of caption records."""
    if not isinstance(data, list):
        raise InputError(
            f"{source}: expected a JSON list of {{\"images\": [...], \"caption\": ...}} records, "
            f"got {type(data).__name__}"
        )
    records: list[CaptionRecord] = []
    for index, item in enumerate(data):
        where = f"{source}: item {index}"
        if not isinstance(item, dict):
            raise InputError(f"{where}: expected an object, got {type(item).__name__}")
        images = item.get("images")
        if images is None and isinstance(item.get("image"), str):
            images = [item["image"]]
        if not isinstance(images, list) or not images or not all(isinstance(x, str) and x.strip() for x in images):
            raise InputError(f"{where}: 'images' must be a non-empty list of file names")
        rid = item_id(images[0])
        where = f"{source}: item {index} (id {rid})"
        caption = item.get("caption")
        if not isinstance(caption, str):
            raise InputError(f"{where}: 'caption' must be a string, got {type(caption).__name__}")
        if not caption.strip():
            raise InputError(f"{where}: empty caption")
        data_by = item.get("data_by")
        if data_by is not None and not isinstance(data_by, str):
            raise InputError(f"{where}: 'data_by' must be a string")
        if require_data_by and not data_by:
            raise InputError(f"{where}: missing 'data_by'")
        extra = {k: v for k, v in item.items() if k not in ("images", "image", "caption", "data_by")}
        records.append(CaptionRecord(rid, tuple(images), caption.strip(), data_by, index, extra))
    return records


def load_caption_records(path: str | os.PathLike, require_data_by: bool = False) -> list[CaptionRecord]:
    """Read and validate a caption file; any problem raises `InputError` naming file and item."""
    return parse_caption_records(read_json(path), Path(path), require_data_by)


def duplicate_ids(records: list[CaptionRecord]) -> dict[str, int]:
    """Ids that occur more than once, with their counts."""
    counts = Counter(r.id for r in records)
    return {rid: n for rid, n in counts.items() if n > 1}


def first_by_id(records: list[CaptionRecord]) -> dict[str, CaptionRecord]:
    """Map id -> first record with that id (callers report `duplicate_ids` separately)."""
    out: dict[str, CaptionRecord] = {}
    for record in records:
        out.setdefault(record.id, record)
    return out
