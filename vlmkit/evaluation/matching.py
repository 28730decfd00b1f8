"""Joining generated captions with ground truth by item id, never by position.

Everything that does not join cleanly is counted and reported: duplicate ids (the first record is kept),
generated items whose id is not in the ground truth, and ground-truth items without a prediction. A missing
prediction is an error naming the ids unless `allow_missing`, in which case the matched subset is evaluated
and the coverage recorded.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmkit.io import InputError
from vlmkit.records import CaptionRecord, duplicate_ids, first_by_id

log = logging.getLogger(__name__)

ID_SAMPLE = 10  # how many ids to list in messages and reports


def _id_list(ids: list[str], limit: int = ID_SAMPLE) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f", ... ({len(ids) - limit} more)" if len(ids) > limit else "")


@dataclass(frozen=True)
class GroundTruth:
    path: Path
    records: list[CaptionRecord]  # first record of each id, file order
    duplicates: dict[str, int]  # id -> number of records with it

    @classmethod
    def from_records(cls, path: str | os.PathLike, records: list[CaptionRecord]) -> GroundTruth:
        dups = duplicate_ids(records)
        if dups:
            log.warning("%s: %d ids occur more than once (first record kept): %s", path, len(dups),
                        _id_list(list(dups)))
        return cls(Path(path), list(first_by_id(records).values()), dups)

    @property
    def by_id(self) -> dict[str, CaptionRecord]:
        return {r.id: r for r in self.records}


@dataclass(frozen=True)
class MatchedPairs:
    """Generated and reference captions of the matched items, in ground-truth order."""

    ids: list[str]
    generated: list[str]
    references: list[str]
    generated_file: Path
    ground_truth_file: Path
    coverage: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def match_by_id(generated: list[CaptionRecord], generated_file: str | os.PathLike, truth: GroundTruth,
                allow_missing: bool = False) -> MatchedPairs:
    generated_file = Path(generated_file)
    dups = duplicate_ids(generated)
    by_id = first_by_id(generated)
    truth_ids = {r.id for r in truth.records}
    unmatched = [rid for rid in by_id if rid not in truth_ids]
    missing = [r.id for r in truth.records if r.id not in by_id]
    matched = [r for r in truth.records if r.id in by_id]

    if dups:
        log.warning("%s: %d ids occur more than once (first record kept, %d records ignored): %s", generated_file,
                    len(dups), sum(dups.values()) - len(dups), _id_list(list(dups)))
    if unmatched:
        log.warning("%s: %d generated items have ids not in the ground truth %s (not scored): %s", generated_file,
                    len(unmatched), truth.path, _id_list(unmatched))
    if missing and not allow_missing:
        raise InputError(f"{generated_file}: no prediction for {len(missing)} of {len(truth.records)} ground-truth "
                         f"ids in {truth.path}: {_id_list(missing, 5)}; pass --allow_missing to score the matched "
                         f"subset")
    if not matched:
        raise InputError(f"{generated_file}: none of its {len(by_id)} ids is in the ground truth {truth.path}")
    if missing:
        log.warning("%s: scoring %d of %d ground-truth items (--allow_missing); missing: %s", generated_file,
                    len(matched), len(truth.records), _id_list(missing))

    coverage = {
        "ground_truth_items": len(truth.records),
        "generated_records": len(generated),
        "matched": len(matched),
        "coverage": len(matched) / len(truth.records),
        "missing_predictions": {"count": len(missing), "ids": missing[:ID_SAMPLE]},
        "unmatched_generated": {"count": len(unmatched), "ids": unmatched[:ID_SAMPLE]},
        "duplicate_generated_ids": {"count": len(dups), "records_ignored": sum(dups.values()) - len(dups),
                                    "ids": list(dups)[:ID_SAMPLE], "policy": "first record kept"},
        "duplicate_ground_truth_ids": {"count": len(truth.duplicates),
                                       "records_ignored": sum(truth.duplicates.values()) - len(truth.duplicates),
                                       "ids": list(truth.duplicates)[:ID_SAMPLE], "policy": "first record kept"},
    }
    return MatchedPairs(
        ids=[r.id for r in matched],
        generated=[by_id[r.id].caption for r in matched],
        references=[r.caption for r in matched],
        generated_file=generated_file,
        ground_truth_file=truth.path,
        coverage=coverage,
    )
