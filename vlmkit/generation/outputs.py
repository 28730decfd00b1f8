"""The caption file in VaseVQA-3D's shape, rewritten atomically after every batch.

`[{"images": ["<UUID>_<n>_<collection>.jpg"], "caption": "...", "data_by": "<model>"}]` — exactly what compare.sh
reads. The file on disk is always complete, valid JSON (temp file + rename), so an interrupted run loses at most the
batch in flight, and `--resume` continues from it. An existing file is never replaced silently: without `--resume`
or `--overwrite` the run refuses to start.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from vlmkit.io import InputError, atomic_write_json, read_json
from vlmkit.records import parse_caption_records

log = logging.getLogger(__name__)


def check_writable_target(path: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to clobber an existing output unless the user said what to do with it."""
    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    if path.exists() and not (resume or overwrite):
        raise InputError(f"{path}: output already exists; pass --resume to continue it or --overwrite to replace it")


class CaptionFile:
    """Caption records by id, written in the items' order (records of ids not in this run keep theirs, first)."""

    def __init__(self, path: str | Path, order: list[str], *, resume: bool = False, overwrite: bool = False):
        self.path = Path(path)
        check_writable_target(self.path, resume=resume, overwrite=overwrite)
        self._rank = {iid: i for i, iid in enumerate(order)}
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.exists() and resume:
            data = read_json(self.path)
            for record, raw in zip(parse_caption_records(data, self.path), data, strict=True):
                if record.id in self.records:
                    log.warning("%s: duplicate id %s (item %d) ignored", self.path, record.id, record.index)
                    continue
                self.records[record.id] = raw
            log.info("resuming %s: %d captions already there", self.path, len(self.records))
        elif self.path.exists():
            log.warning("%s exists and will be replaced (--overwrite)", self.path)

    @property
    def done_ids(self) -> set[str]:
        return set(self.records)

    def add(self, iid: str, record: dict[str, Any]) -> None:
        self.records[iid] = record

    def ordered(self) -> list[dict[str, Any]]:
        def key(entry: tuple[int, str]) -> tuple[int, int]:
            position, iid = entry
            return (1, self._rank[iid]) if iid in self._rank else (0, position)

        entries = sorted(enumerate(self.records), key=key)
        return [self.records[iid] for _, iid in entries]

    def write(self) -> None:
        atomic_write_json(self.path, self.ordered())


def caption_record(image_name: str, caption: str, data_by: str) -> dict[str, Any]:
    return {"images": [image_name], "caption": caption, "data_by": data_by}
