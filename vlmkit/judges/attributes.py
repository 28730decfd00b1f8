"""attribute_f1: structured fact matching of caption against reference on a domain schema (CAPTURE-style).

The judge extracts the schema's slots from the caption and from the reference as JSON (`prompts.ATTRIBUTES`); this
module matches them. A schema is a YAML/JSON file (``configs/judges/vase_attributes.yaml``; users replace it for
their domain) read with the recipe loader's safe rules; each slot has a kind:

- ``category``: normalised text (lower case, unicode dashes and spaces folded, punctuation and leading articles
  dropped) mapped through the slot's synonyms to a canonical value; equal canonical values match.
- ``date_range``: parsed into a year interval (BCE negative): "c. 520–500 BCE", "520-500 BC", "ca. 510 BC" (± the
  schema's ``circa_years``), "the 520s BC", "6th century BC", "late/early/mid 6th century", "first/second half of the
  5th century", "AD 100"; without an era the schema's ``default_era``. Two dates match when the intervals overlap;
  an unparseable date matches only an identical normalised text.
- ``text``: content words (minus the schema's stop words); match when their Jaccard is at least ``threshold``.

A slot is present when its value is a non-empty string other than null/unknown/none/"n/a" (a list is joined).
Counts per slot: TP = both present and matching, FP = caption present and (reference absent or no match), FN =
reference present and (caption absent or no match); so a wrong value costs precision and recall. P = TP/(TP+FP),
R = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN), per slot and overall (micro, summed over slots and items); an item's F1
is null when neither text has any slot.

Written by hand: CAPTURE's own matcher is for scene graphs (objects, attributes, relations) with WordNet synonyms,
not a fixed slot schema with date intervals.
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlmkit.io import InputError, read_text
from vlmkit.safe_yaml import load_yaml

KINDS = ("category", "date_range", "text")
ABSENT = frozenset({"", "null", "none", "unknown", "n/a", "na", "not stated", "not mentioned", "unspecified", "-"})
ARTICLES = ("the ", "a ", "an ")
DEFAULT_SCHEMA = Path(__file__).resolve().parents[2] / "configs" / "judges" / "vase_attributes.yaml"


@dataclass(frozen=True)
class Slot:
    name: str
    kind: str
    description: str = ""
    synonyms: Mapping[str, str] = field(default_factory=dict)  # normalised variant -> canonical
    threshold: float = 0.5


@dataclass(frozen=True)
class Schema:
    name: str
    slots: tuple[Slot, ...]
    path: str = ""
    default_era: str = "BCE"
    circa_years: int = 10
    stop_words: frozenset[str] = frozenset()

    @property
    def slot_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.slots)

    def describe_slots(self) -> str:
        """For the extraction prompt: one line per slot."""
        return "\n".join(f'- "{s.name}": {s.description}' for s in self.slots)


def normalise(text: Any) -> str:
    if isinstance(text, (list, tuple)):
        text = ", ".join(str(t) for t in text)
    text = unicodedata.normalize("NFKC", str(text)).lower()
    text = re.sub(r"[\u2010-\u2015\u2212]", "-", text)
    text = re.sub(r"[^\w\s\-/]", " ", text)
    text = re.sub(r"\s*-\s*", "-", text)
    text = re.sub(r"\s+", " ", text).strip()
    for article in ARTICLES:
        if text.startswith(article):
            text = text[len(article):]
    return text


def present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, (list, tuple)):
        return any(present(v) for v in value)
    return normalise(value) not in ABSENT


def load_schema(path: str | os.PathLike = DEFAULT_SCHEMA) -> Schema:
    """Read and check a schema file; a problem is one InputError naming the file and the slot."""
    data = load_yaml(read_text(path, "judge schema"), path, "judge schema")
    where = str(path)
    if not isinstance(data, dict) or not isinstance(data.get("slots"), dict) or not data["slots"]:
        raise InputError(f"{where}: a judge schema is a mapping with a non-empty 'slots' mapping")
    slots = []
    for name, spec in data["slots"].items():
        if not isinstance(spec, dict):
            raise InputError(f"{where}: slot {name}: expected a mapping (kind, description, ...)")
        kind = spec.get("kind", "category")
        if kind not in KINDS:
            raise InputError(f"{where}: slot {name}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        synonyms: dict[str, str] = {}
        for canonical, variants in (spec.get("synonyms") or {}).items():
            if not isinstance(variants, list):
                raise InputError(f"{where}: slot {name}: synonyms of {canonical!r} must be a list")
            for variant in [canonical, *variants]:
                synonyms[normalise(variant)] = normalise(canonical)
        threshold = spec.get("threshold", 0.5)
        if not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
            raise InputError(f"{where}: slot {name}: threshold must be in (0, 1], got {threshold!r}")
        slots.append(Slot(str(name), kind, str(spec.get("description", "")), synonyms, float(threshold)))
    era = str(data.get("default_era", "BCE")).upper()
    if era not in ("BCE", "CE"):
        raise InputError(f"{where}: default_era must be BCE or CE, got {era!r}")
    return Schema(name=str(data.get("name", Path(path).stem)), slots=tuple(slots), path=where, default_era=era,
                  circa_years=int(data.get("circa_years", 10)),
                  stop_words=frozenset(normalise(w) for w in data.get("stop_words") or []))


# ---- dates ------------------------------------------------------------------------------------------------------
_ORDINAL = r"(\d{1,2})(?:st|nd|rd|th)"
_PARTS = {"early": (0.0, 1 / 3), "mid": (1 / 3, 2 / 3), "middle": (1 / 3, 2 / 3), "late": (2 / 3, 1.0),
          "first half": (0.0, 0.5), "second half": (0.5, 1.0), "first quarter": (0.0, 0.25),
          "second quarter": (0.25, 0.5), "third quarter": (0.5, 0.75), "last quarter": (0.75, 1.0),
          "fourth quarter": (0.75, 1.0)}


def _era_sign(text: str, default_era: str) -> int:
    if re.search(r"\b(bce|bc|b c)\b", text):
        return -1
    if re.search(r"\b(ce|ad|a d)\b", text):
        return 1
    return -1 if default_era == "BCE" else 1


def parse_date_range(value: Any, default_era: str = "BCE", circa_years: int = 10) -> tuple[float, float] | None:
    """(earliest, latest) year, BCE negative; None when the text holds no date this parser knows."""
    text = normalise(value).replace("b c e", "bce").replace("c e", "ce")
    sign = _era_sign(text, default_era)
    century = re.search(_ORDINAL + r"[- ](?:centur|c\b)", text)
    if century:
        n = int(century.group(1))
        start, end = (-(n * 100), -(n * 100 - 99)) if sign < 0 else ((n - 1) * 100 + 1, n * 100)
        part = next((p for p in sorted(_PARTS, key=len, reverse=True) if p in text[:century.start()]), None)
        if part:
            lo, hi = _PARTS[part]
            span = end - start
            start, end = start + lo * span, start + hi * span
        return (float(start), float(end))
    decade = re.search(r"\b(\d{3,4})s\b", text)
    years = [int(y) for y in re.findall(r"\b(\d{1,4})\b", text)]
    if decade:
        y = int(decade.group(1))
        return (float(-(y + 9)), float(-y)) if sign < 0 else (float(y), float(y + 9))
    if not years:
        return None
    if len(years) >= 2:
        a, b = sign * years[0], sign * years[1]
        return (float(min(a, b)), float(max(a, b)))
    y = sign * years[0]
    circa = bool(re.search(r"\b(c|ca|circa|about|around)\b", text))
    pad = circa_years if circa else 0
    return (float(y - pad), float(y + pad))


def _words(text: str, stop: frozenset[str]) -> set[str]:
    return {w for w in re.findall(r"\w+", normalise(text)) if w not in stop}


def slot_match(slot: Slot, candidate: Any, reference: Any, schema: Schema) -> bool:
    if slot.kind == "date_range":
        a = parse_date_range(candidate, schema.default_era, schema.circa_years)
        b = parse_date_range(reference, schema.default_era, schema.circa_years)
        if a is None or b is None:
            return normalise(candidate) == normalise(reference)
        return a[0] <= b[1] and b[0] <= a[1]
    if slot.kind == "text":
        a, b = _words(candidate, schema.stop_words), _words(reference, schema.stop_words)
        return bool(a | b) and len(a & b) / len(a | b) >= slot.threshold
    a, b = normalise(candidate), normalise(reference)
    return slot.synonyms.get(a, a) == slot.synonyms.get(b, b)


@dataclass(frozen=True)
class SlotCounts:
    tp: int = 0
    fp: int = 0
    fn: int = 0


def match_slots(candidate: Mapping[str, Any], reference: Mapping[str, Any], schema: Schema) -> dict[str, SlotCounts]:
    """Per slot TP/FP/FN of one caption's extracted slots against its reference's."""
    out = {}
    for slot in schema.slots:
        c, r = candidate.get(slot.name), reference.get(slot.name)
        has_c, has_r = present(c), present(r)
        hit = has_c and has_r and slot_match(slot, c, r, schema)
        out[slot.name] = SlotCounts(tp=int(hit), fp=int(has_c and not hit), fn=int(has_r and not hit))
    return out


def prf(tp: float, fp: float, fn: float) -> dict[str, float | None]:
    return {"precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None,
            "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else None}


def summarise(per_item: Sequence[dict[str, SlotCounts] | None], schema: Schema) -> dict[str, Any]:
    """P/R/F1 per slot and overall (micro) over the items that could be matched (None = extraction failed)."""
    done = [counts for counts in per_item if counts is not None]
    per_slot = {}
    total = np.zeros(3)
    for slot in schema.slot_names:
        tp, fp, fn = (sum(getattr(c[slot], k) for c in done) for k in ("tp", "fp", "fn"))
        total += (tp, fp, fn)
        per_slot[slot] = {"tp": tp, "fp": fp, "fn": fn, **prf(tp, fp, fn)}
    return {"schema": schema.name, "schema_file": schema.path, "items_matched": len(done),
            "per_slot": per_slot, "overall": {"tp": int(total[0]), "fp": int(total[1]), "fn": int(total[2]),
                                              **prf(*total)}}


def item_columns(per_item: Sequence[dict[str, SlotCounts] | None]) -> np.ndarray:
    """(n, 3) TP/FP/FN summed over slots per item (zeros for a failed extraction: it adds nothing)."""
    return np.array([[sum(getattr(c, k) for c in counts.values()) for k in ("tp", "fp", "fn")] if counts else
                     [0, 0, 0] for counts in per_item], dtype=np.float64).reshape(len(per_item), 3)


def item_f1(columns: np.ndarray) -> np.ndarray:
    tp, fp, fn = columns.T
    denom = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1.0), math.nan)
