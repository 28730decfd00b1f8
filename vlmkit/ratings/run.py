"""rate.py's job from options to files: read and validate every input first, compute, then write ratings.json,
ratings.md and ratings.html together (nothing is written when any input is bad)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from vlmkit.io import InputError, write_all_or_nothing
from vlmkit.ratings.analysis import RateOptions, compute_ratings
from vlmkit.ratings.compare_run import caption_lengths, read_caption_files, read_compare_run
from vlmkit.ratings.report import ratings_html, ratings_markdown
from vlmkit.votes import read_votes

log = logging.getLogger(__name__)

OUTPUT_FILES = ("ratings.json", "ratings.md", "ratings.html")


@dataclass
class RateRun:
    votes: list[Path]
    output_dir: Path
    options: RateOptions = field(default_factory=RateOptions)
    compare_dir: Path | None = None
    captions: list[Path] = field(default_factory=list)


def run_rating(run: RateRun) -> dict:
    """Compute and write; returns ratings.json's content."""
    votes = read_votes(run.votes)
    if not votes:
        raise InputError(f"{', '.join(map(str, run.votes))}: no votes")
    compare = read_compare_run(run.compare_dir) if run.compare_dir else None
    captions = compare.captions() if compare else {}
    if run.captions:
        captions.update(read_caption_files(run.captions))
    lengths = caption_lengths(captions) if captions else None
    ratings = compute_ratings(votes, run.options, lengths)
    data = ratings.data
    data["votes_files"] = [str(p) for p in run.votes]
    if compare is not None:
        from vlmkit.ratings.agreement import metric_agreement

        data["agreement"] = metric_agreement(ratings, compare, run.options.level,
                                             [v for v in votes if v.source != "human"])
    texts = {"ratings.json": json.dumps(data, ensure_ascii=False, indent=2) + "\n",
             "ratings.md": ratings_markdown(data), "ratings.html": ratings_html(data)}
    write_all_or_nothing({os.fspath(run.output_dir / name): text for name, text in texts.items()})
    return data
