"""Retrieval pairs: `{"query": text, "positive": image[, "negatives": [images]]}` per JSONL line.

Image paths are relative to `image_root` (default: the JSONL file's own folder) or absolute. Reading checks every
line (an object, a non-empty query, image paths as strings) and `preflight_images` opens every distinct image once
(vlmkit.images: missing, empty, truncated, non-image and oversized files are bad images) BEFORE any model is
loaded: the first bad one stops the run with one line naming file, line and image, or, with `skip_bad_samples`,
its pairs are dropped, counted and listed.

For evaluation the pairs are grouped by image (`EvalSet`): the pool is the set of distinct positive images (by
resolved path), every caption is one text->image query whose only relevant image is its own, and every image is one
image->text query whose relevant captions are all of its captions. Hard negatives are used in training only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlmkit.images import image_problem
from vlmkit.io import InputError, iter_jsonl


@dataclass
class Pair:
    query: str
    positive: str  # absolute, normalised path
    negatives: list[str] = field(default_factory=list)
    line: int = 0


@dataclass(frozen=True)
class BadSample:
    file: str
    line: int
    image: str
    reason: str

    def describe(self) -> str:
        return f"{self.file}: line {self.line}: {self.image}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "image": self.image, "reason": self.reason}


def resolve_image(name: str, root: Path) -> str:
    return os.path.normpath(name if os.path.isabs(name) else os.path.join(root, name))


def default_root(data_path: str | os.PathLike, image_root: str | os.PathLike | None) -> Path:
    return Path(image_root).expanduser().absolute() if image_root else Path(data_path).expanduser().absolute().parent


def load_pairs(data_path: str | os.PathLike, image_root: str | os.PathLike | None = None) -> list[Pair]:
    """Every line of a pairs JSONL, validated; image paths resolved against the image root."""
    root = default_root(data_path, image_root)
    if image_root and not root.is_dir():
        raise InputError(f"{image_root}: image_root is not a folder")
    pairs: list[Pair] = []
    for lineno, obj in iter_jsonl(data_path):
        where = f"{data_path}: line {lineno}"
        if not isinstance(obj, dict):
            raise InputError(f"{where}: expected an object {{\"query\": ..., \"positive\": ...}}, got "
                             f"{type(obj).__name__}")
        query = obj.get("query")
        if not isinstance(query, str):
            raise InputError(f"{where}: 'query' must be a string (the text that should find the image)")
        if not query.strip():
            raise InputError(f"{where}: empty query")
        positive = obj.get("positive")
        if isinstance(positive, list) and len(positive) == 1:
            positive = positive[0]
        if not isinstance(positive, str) or not positive.strip():
            raise InputError(f"{where}: 'positive' must be an image path (relative to the image root)")
        negatives = obj.get("negatives", [])
        if isinstance(negatives, str):
            negatives = [negatives]
        if not isinstance(negatives, list) or not all(isinstance(n, str) and n.strip() for n in negatives):
            raise InputError(f"{where}: 'negatives' must be a list of image paths")
        pairs.append(Pair(" ".join(query.split()), resolve_image(positive, root),
                          [resolve_image(n, root) for n in negatives], lineno))
    if not pairs:
        raise InputError(f"{data_path}: no pairs (the file is empty)")
    return pairs


def preflight_images(pairs: list[Pair], data_path: str | os.PathLike, skip_bad: bool = False,
                     progress: bool = True) -> tuple[list[Pair], list[BadSample]]:
    """Open every distinct image once; a bad one is an `InputError`, or with `skip_bad` its pairs are dropped."""
    from tqdm.auto import tqdm

    problems: dict[str, str | None] = {}
    distinct = list(dict.fromkeys(p for pair in pairs for p in [pair.positive, *pair.negatives]))
    for path in tqdm(distinct, desc="checking images", unit="img", disable=not progress or len(distinct) < 500,
                     leave=False):
        problem = image_problem(path)
        problems[path] = problem.reason if problem else None
    kept, bad = [], []
    for pair in pairs:
        broken = next((p for p in [pair.positive, *pair.negatives] if problems[p]), None)
        if broken is None:
            kept.append(pair)
            continue
        sample = BadSample(str(data_path), pair.line, broken, problems[broken] or "")
        if not skip_bad:
            n_bad = sum(1 for pr in pairs if any(problems[p] for p in [pr.positive, *pr.negatives]))
            more = f"; {n_bad - 1} more pairs have bad images" if n_bad > 1 else ""
            raise InputError(f"{sample.describe()}{more} (--skip_bad_samples skips and lists such pairs)")
        bad.append(sample)
    if not kept:
        raise InputError(f"{data_path}: no pair left ({len(bad)} skipped for bad images)")
    return kept, bad


def load_checked(data_path: str | os.PathLike, image_root: str | os.PathLike | None, skip_bad: bool,
                 ) -> tuple[list[Pair], list[BadSample]]:
    return preflight_images(load_pairs(data_path, image_root), data_path, skip_bad)


@dataclass
class EvalSet:
    """Distinct images, the captions, and which image each caption describes."""

    images: list[str]
    captions: list[str]
    caption_image: np.ndarray  # (n_captions,) index into images

    @classmethod
    def from_pairs(cls, pairs: list[Pair]) -> EvalSet:
        index: dict[str, int] = {}
        for pair in pairs:
            index.setdefault(pair.positive, len(index))
        return cls(list(index), [p.query for p in pairs],
                   np.fromiter((index[p.positive] for p in pairs), dtype=np.int64, count=len(pairs)))

    def image_captions(self) -> list[np.ndarray]:
        """For each image, the indices of its captions (its relevant texts in image->text retrieval)."""
        order = np.argsort(self.caption_image, kind="stable")
        bounds = np.searchsorted(self.caption_image[order], np.arange(len(self.images) + 1))
        return [order[bounds[i]:bounds[i + 1]] for i in range(len(self.images))]
