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

from vlmkit.cli import run_main, setup_logging
from vlmkit.options import parse_options
from vlmkit.ratings.rating_files import RateCommandOptions, run


def main(argv: list[str] | None = None) -> int:
    options = parse_options(RateCommandOptions, argv, description=__doc__)
    setup_logging(options.verbose)
    return run(options)


if __name__ == "__main__":
    run_main(main)
