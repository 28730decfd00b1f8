"""Retrieval pairs from the converted samples: `dataprocess.convert ... --retrieval_output pairs.jsonl`.

Every converted sample (VaseVQA multi-view objects, captions.json, AI Challenger, LLaVA, training JSONL) becomes
`{"query": <its caption>, "positive": <image>}` lines for `retrieval.py train/eval` (vlmkit/retrieval/data.py):

- the query is the sample's caption (the `caption` key when the sample carries one, else its first non-empty
  assistant answer; for LLaVA conversations that is the first answer, which may be a reply to a question rather
  than a description);
- `--retrieval_views per_view` (default): one pair per image, so a multi-view object gives one pair per view,
  all with the object's caption; `per_object`: one pair per sample, with its first image (the first of --views);
- samples without images are left out (counted in the summary).

The split is convert's own image-disjoint split: pairs of the training samples go to `--retrieval_output`, those of
the val samples to `<retrieval stem>_val.jsonl`, so no image is in both, and the files are committed together
with convert's other outputs. Image paths follow convert's rule (relative to the pairs file's folder when the
images lie inside it, else absolute).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from vlmkit.io import InputError
from vlmkit.options import Options, opt
from vlmkit.samples import TrainingSample

RETRIEVAL_VIEWS = ("per_view", "per_object")


@dataclass
class RetrievalPairsOptions(Options):
    """convert's `--retrieval_output` / `--retrieval_views` (nested in `dataprocess.convert.ConvertOptions`)."""

    TITLE: ClassVar[str | None] = "retrieval pairs (for retrieval.py)"
    retrieval_output: str | None = opt(None, "also write text-image retrieval pairs {\"query\", \"positive\"} (val "
                                             "pairs: <stem>_val.jsonl, same image-disjoint split)", metavar="JSONL")
    retrieval_views: str = opt("per_view", "per_view: one pair per image (each view of an object); per_object: one "
                                           "pair per sample with its first image", choices=RETRIEVAL_VIEWS)


def retrieval_paths(options: RetrievalPairsOptions, val_ratio: float) -> list[Path]:
    """The pairs files this run will write (for convert's output checks)."""
    if not options.retrieval_output:
        return []
    out = Path(options.retrieval_output)
    if out.suffix != ".jsonl":
        raise InputError(f"{out}: --retrieval_output is a JSONL file; use a .jsonl name")
    return [out] + ([val_path(out)] if val_ratio > 0 else [])


def val_path(out: Path) -> Path:
    return Path(f"{out.with_suffix('')}_val.jsonl")


def caption_of(sample: TrainingSample) -> str | None:
    caption = sample.extra.get("caption")
    if isinstance(caption, str) and caption.strip():
        return " ".join(caption.split())
    for turn in sample.conversations:
        if turn["from"] == "gpt" and turn["value"].strip():
            return " ".join(turn["value"].replace("<image>", " ").split())
    return None


def pairs_of(sample: TrainingSample, views: str) -> list[dict[str, Any]]:
    caption = caption_of(sample)
    if not caption or not sample.images:
        return []
    images = sample.images if views == "per_view" else sample.images[:1]
    return [{"query": caption, "positive": image, "id": sample.id} for image in images]


def pairs_text(samples: Sequence[TrainingSample], indices: Sequence[int], views: str, out: Path,
               image_ref: Callable[[str, Path], str]) -> tuple[str, int]:
    folder = out.resolve().parent
    lines, no_pair = [], 0
    for i in indices:
        rows = pairs_of(samples[i], views)
        no_pair += not rows
        for row in rows:
            row["positive"] = image_ref(row["positive"], folder)
            lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    return "".join(lines), no_pair


def retrieval_files(options: RetrievalPairsOptions, val_ratio: float, samples: Sequence[TrainingSample],
                    train_idx: Sequence[int], val_idx: Sequence[int], summary: dict[str, Any],
                    image_ref: Callable[[str, Path], str]) -> dict[Path, str]:
    """The pairs files (train, and val when convert splits) for convert's all-or-nothing commit; adds a
    `retrieval` entry to the summary."""
    if not options.retrieval_output:
        return {}
    out = Path(options.retrieval_output)
    files: dict[Path, str] = {}
    text, skipped = pairs_text(samples, train_idx, options.retrieval_views, out, image_ref)
    files[out] = text
    counts = {"train": text.count("\n")}
    if val_ratio > 0:
        val_text, val_skipped = pairs_text(samples, val_idx, options.retrieval_views, val_path(out), image_ref)
        files[val_path(out)] = val_text
        counts["val"] = val_text.count("\n")
        skipped += val_skipped
    summary["retrieval"] = {"views": options.retrieval_views, "pairs": counts, "samples_without_pairs": skipped,
                            "outputs": {k: str(v) for k, v in zip(("train", "val"), files, strict=False)}}
    return files
