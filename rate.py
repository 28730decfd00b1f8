#!/usr/bin/env python3
r"""Rate models from pairwise votes (expert votes of review.py, pairwise judge verdicts of compare.py --judge_pairs).

    python rate.py --votes results/votes.jsonl --output_dir results/ratings
    python rate.py --votes results/votes.jsonl --compare_dir results --source human --baseline qwen2.5 \
                   --output_dir results/ratings

Fits Bradley-Terry by maximum likelihood (ties = half a win each side; both_bad excluded and counted), 95 % CIs by a
bootstrap over items, shows the ratings on the Elo scale (400*log10 odds, the --baseline model at --anchor), the
win-rate matrix, each source's swap consistency and position bias, and, with the captions (--compare_dir or
--captions), the length bias and a length-controlled fit. With --compare_dir, also which automatic metric of that
compare run agrees best with the human votes (Kendall tau of the rankings and pairwise accuracy per vote, with CIs).
Writes ratings.json, ratings.md and ratings.html (a plot with error bars). See docs/judges.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vlmkit.cli import HelpFormatter, run_main, setup_logging
from vlmkit.evaluation.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED
from vlmkit.io import InputError
from vlmkit.outputs import OutputLock, check_output_dir
from vlmkit.ratings.analysis import DEFAULT_ANCHOR, DEFAULT_LC_RESAMPLES, RateOptions
from vlmkit.ratings.run import RateRun, run_rating

log = logging.getLogger("rate")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--votes", nargs="+", required=True, type=Path,
                        help="votes file(s), JSONL in the shared votes format (vlmkit/votes.py)")
    parser.add_argument("--output_dir", type=Path, required=True,
                        help="folder for ratings.json, ratings.md and ratings.html")
    parser.add_argument("--compare_dir", type=Path, default=None,
                        help="a compare.py results folder: captions for the length analyses, and the agreement "
                             "of each of its metrics with the human votes (needs --source human if the votes "
                             "files hold judge votes too)")
    parser.add_argument("--captions", nargs="+", type=Path, default=[],
                        help="generated caption files [{images, caption, data_by}] for the length analyses "
                             "(model names as compare.py gives them)")
    parser.add_argument("--source", action="append", default=None,
                        help="rate only votes of this source ('human', 'judge:<name>'); repeatable; default: all")
    parser.add_argument("--baseline", default=None,
                        help="the model the Elo scale is anchored to (default: the first model name in sort order)")
    parser.add_argument("--anchor", type=float, default=DEFAULT_ANCHOR, help="the baseline's rating")
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_RESAMPLES,
                        help="bootstrap resamples over items for the 95%% CIs; 0 = no CIs")
    parser.add_argument("--lc_bootstrap", type=int, default=DEFAULT_LC_RESAMPLES,
                        help="resamples for the length-controlled fit (one fit per vote, slower); 0 = no CIs")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the bootstrap resamples")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    for flag in ("bootstrap", "lc_bootstrap"):
        if getattr(args, flag) < 0:
            raise InputError(f"--{flag} must be 0 (off) or a number of resamples, got {getattr(args, flag)}")
    for path in [*args.votes, *args.captions]:
        if not path.is_file():
            raise InputError(f"{path}: no such file")
    output = check_output_dir(args.output_dir)
    options = RateOptions(baseline=args.baseline, anchor=args.anchor, resamples=args.bootstrap,
                          lc_resamples=args.lc_bootstrap, seed=args.seed, sources=tuple(args.source or ()))
    with OutputLock(output, "ratings"):
        data = run_rating(RateRun(votes=list(args.votes), output_dir=output, options=options,
                                  compare_dir=args.compare_dir, captions=list(args.captions)))
    for name, m in data["models"].items():
        ci = f" [{m['ci'][0]:.0f}, {m['ci'][1]:.0f}]" if m["ci"] else ""
        log.info("%-24s %6.0f%s  (%d-%d-%d)", name, m["rating"], ci, m["wins"], m["losses"], m["ties"])
    for row in (data.get("agreement") or {}).get("rows", [])[:5]:
        log.info("agreement %-22s tau %s  pairwise accuracy %s", row["metric"], row["kendall_tau"],
                 row["pairwise_accuracy"])
    log.info("wrote %s/ratings.{json,md,html} (%d votes, %d both_bad excluded)", output, data["n_votes"],
             data["both_bad"]["excluded"])
    return 0


if __name__ == "__main__":
    run_main(main)
