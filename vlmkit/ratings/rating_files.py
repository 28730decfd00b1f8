"""rate.py's options (one field per flag) and its job from options to files: read and validate every input first,
compute, then write ratings.json, ratings.md and ratings.html together (nothing is written when any input is bad)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from vlmkit.evaluation.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED
from vlmkit.io import InputError, write_all_or_nothing
from vlmkit.options import Options, opt
from vlmkit.outputs import OutputLock, check_output_dir
from vlmkit.ranges import Range
from vlmkit.ratings.analysis import DEFAULT_ANCHOR, DEFAULT_LC_RESAMPLES, RateOptions, compute_ratings
from vlmkit.ratings.compare_run import caption_lengths, read_caption_files, read_compare_run
from vlmkit.ratings.report import ratings_html, ratings_markdown
from vlmkit.votes import read_votes

log = logging.getLogger("rate")  # the command's summary lines, named as the command

RESAMPLES = Range(0, note="0 = no CIs")


@dataclass
class RateCommandOptions(Options):
    votes: list[Path] = opt(None, "votes file(s), JSONL in the shared votes format (vlmkit/votes.py)", nargs="+",
                            parse=Path, required=True)
    output_dir: Path = opt(None, "folder for ratings.json, ratings.md and ratings.html", required=True)
    compare_dir: Path | None = opt(None, "a compare.py results folder: captions for the length analyses, and the "
                                         "agreement of each of its metrics with the human votes (needs --source "
                                         "human if the votes files hold judge votes too)")
    captions: list[Path] = opt(None, "generated caption files [{images, caption, data_by}] for the length analyses "
                                     "(model names as compare.py gives them)", nargs="+", parse=Path, factory=list)
    source: list[str] | None = opt(None, "rate only votes of this source ('human', 'judge:<name>'); repeatable; "
                                         "default: all", action="append", parse=str)
    baseline: str | None = opt(None, "the model the Elo scale is anchored to (default: the first model name in sort "
                                     "order)")
    anchor: float = opt(DEFAULT_ANCHOR, "the baseline's rating")
    bootstrap: int = opt(DEFAULT_RESAMPLES, "bootstrap resamples over items for the 95% CIs",
                         range=RESAMPLES)
    lc_bootstrap: int = opt(DEFAULT_LC_RESAMPLES, "resamples for the length-controlled fit (one fit per vote, "
                                                  "slower)", range=RESAMPLES)
    seed: int = opt(DEFAULT_SEED, "seed of the bootstrap resamples")
    verbose: bool = opt(False, flags=("-v",))


def run(options: RateCommandOptions) -> int:
    """rate.py: check the files, rate under the output's lock, log the table."""
    for path in [*options.votes, *options.captions]:
        if not path.is_file():
            raise InputError(f"{path}: no such file")
    output = check_output_dir(options.output_dir)
    rate = RateOptions(baseline=options.baseline, anchor=options.anchor, resamples=options.bootstrap,
                       lc_resamples=options.lc_bootstrap, seed=options.seed, sources=tuple(options.source or ()))
    with OutputLock(output, "ratings"):
        data = run_rating(RateRun(votes=list(options.votes), output_dir=output, options=rate,
                                  compare_dir=options.compare_dir, captions=list(options.captions)))
    for name, m in data["models"].items():
        ci = f" [{m['ci'][0]:.0f}, {m['ci'][1]:.0f}]" if m["ci"] else ""
        log.info("%-24s %6.0f%s  (%d-%d-%d)", name, m["rating"], ci, m["wins"], m["losses"], m["ties"])
    for row in (data.get("agreement") or {}).get("rows", [])[:5]:
        log.info("agreement %-22s tau %s  pairwise accuracy %s", row["metric"], row["kendall_tau"],
                 row["pairwise_accuracy"])
    log.info("wrote %s/ratings.{json,md,html} (%d votes, %d both_bad excluded)", output, data["n_votes"],
             data["both_bad"]["excluded"])
    return 0


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
