"""Image-hash dedup and a train/val split in which no image is in both splits.

Dedup is by exact content (SHA-256 of the file bytes): the same picture saved under two names is caught, a
re-encoded, resized or cropped copy is not. Perceptual hashing (near-duplicates) is out of scope: it needs a
full decode of every image and a similarity threshold that depends on the data, and a wrong threshold silently
drops distinct images.

The split groups samples that share an image (same content hash when images were hashed, else the same file
path): every sample connected to another through a shared image lands in the same split. For AI Challenger's
five captions per image, or LLaVA's detail and reasoning conversations about the same COCO picture, all of an
image's samples go to one side. Groups are shuffled with the random seed (--seed) and added to val while they fit into
round(val_ratio * n) samples, so the split is deterministic and never leaks.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor

from dataprocess.images import file_sha256
from vlmkit.io import InputError
from vlmkit.samples import TrainingSample

log = logging.getLogger(__name__)

DEDUP_MODES = ("none", "image", "image_text")


def hash_images(paths: Sequence[str], threads: int = 4) -> dict[str, str]:
    """SHA-256 of each distinct file (threads: reading and hashing release the GIL)."""
    from tqdm import tqdm

    unique = sorted(set(paths))

    def one(path: str) -> str:
        try:
            return file_sha256(path)
        except OSError as exc:
            raise InputError(f"{path}: cannot read image for hashing ({exc.strerror or exc})") from None

    with ThreadPoolExecutor(max(1, threads)) as pool:
        digests = list(tqdm(pool.map(one, unique), total=len(unique), desc="hash images", unit="image",
                            disable=None))
    return dict(zip(unique, digests, strict=True))


def image_keys(samples: Sequence[TrainingSample], hashes: dict[str, str] | None) -> list[tuple[str, ...]]:
    """Per sample, the identity of each of its images: content hash if known, else the (absolute) path."""
    if hashes is None:
        return [tuple(s.images) for s in samples]
    return [tuple(hashes[p] for p in s.images) for s in samples]


def dedup(samples: Sequence[TrainingSample], keys: Sequence[tuple[str, ...]], mode: str
          ) -> tuple[list[int], list[tuple[int, int]]]:
    """Indices kept, and (dropped index, index of the earlier sample it duplicates).

    `image`: a sample whose images (same contents, same order) equal an earlier sample's is dropped (this also
    drops the extra captions of an image that has several: use it to remove duplicated pictures);
    `image_text`: dropped only when the conversation is identical too (exact duplicate samples).
    Samples without images are never dropped as image duplicates.
    """
    texts = [tuple((t["from"], t["value"]) for t in s.conversations) for s in samples] if mode == "image_text" else None
    return dedup_keys(keys, texts, mode)


def dedup_keys(keys: Sequence[tuple[str, ...]], texts: Sequence[Hashable] | None, mode: str
               ) -> tuple[list[int], list[tuple[int, int]]]:
    """`dedup` from each sample's image key and (for image_text) any stand-in of its conversation that is equal
    exactly when the conversations are (convert's streaming pass passes a digest, not the sample)."""
    if mode not in DEDUP_MODES:
        raise InputError(f"unknown dedup mode {mode!r}; choose from {', '.join(DEDUP_MODES)}")
    if mode == "none":
        return list(range(len(keys))), []
    first: dict[Hashable, int] = {}
    kept, dropped = [], []
    for i, key in enumerate(keys):
        if not key:
            kept.append(i)
            continue
        full = key if mode == "image" else (key, texts[i])
        if full in first:
            dropped.append((i, first[full]))
        else:
            first[full] = i
            kept.append(i)
    return kept, dropped


def image_groups(keys: Sequence[tuple[str, ...]]) -> list[list[int]]:
    """Connected components of samples linked by a shared image key (union-find), each sorted, in order of
    their first sample."""
    parent = list(range(len(keys)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    owner: dict[str, int] = {}
    for i, key in enumerate(keys):
        for k in key:
            j = owner.setdefault(k, i)
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = {}
    for i in range(len(keys)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def group_split(keys: Sequence[tuple[str, ...]], val_ratio: float, seed: int = 0) -> tuple[list[int], list[int], int]:
    """(train indices, val indices, number of groups): whole image groups go to val, in seeded random order,
    while they fit into round(val_ratio * n); if none fits, the first group is taken so val is never empty."""
    if not 0.0 <= val_ratio < 1.0:
        raise InputError(f"--val_ratio must be in [0, 1), got {val_ratio}")
    groups = image_groups(keys)
    target = round(val_ratio * len(keys))
    if target == 0:
        return list(range(len(keys))), [], len(groups)
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    val: set[int] = set()
    for g in order:
        if len(val) + len(groups[g]) <= target:
            val.update(groups[g])
        if len(val) == target:
            break
    if not val:
        val.update(groups[order[0]])
    if len(val) == len(keys):
        raise InputError(f"cannot split: all {len(keys)} samples share images with each other (one group)")
    return [i for i in range(len(keys)) if i not in val], sorted(val), len(groups)
