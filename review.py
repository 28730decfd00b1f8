#!/usr/bin/env python3
r"""Review a compare run in the browser and collect blind A/B votes from domain experts.

    python review.py --results ./results                      # then open http://127.0.0.1:7860
    python review.py --results ./results --images_dir ./data/multiview_images --votes ./votes/expert.jsonl
    python review.py --results ./results --live_model ./models/Qwen2.5-VL-3B-Instruct   # + live caption panel

Browse every object of the run (its views, the reference, each model's caption and per-item scores; sort by the
models' disagreement, by one model's score or by id; search; deep links /item/<id>), or vote at /ab: two captions of
one object, model names and order hidden, left / right / tie / both bad. Each vote is appended to --votes in the
shared format of vlmkit.votes (locked, fsynced) before the page moves on. One process; binds 127.0.0.1 by default;
no tunnel, no analytics, nothing fetched from outside. See docs/review.md.
"""

from __future__ import annotations

from vlmkit.cli import run_main, setup_logging
from vlmkit.options import parse_options
from vlmkit.review.server import ReviewOptions, run


def main(argv: list[str] | None = None) -> int:
    options = parse_options(ReviewOptions, argv, description=__doc__)
    setup_logging(options.verbose)
    return run(options)


if __name__ == "__main__":
    run_main(main)
