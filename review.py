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

import argparse
import logging
import sys
from pathlib import Path

from vlmkit.cli import HelpFormatter, run_main, setup_logging
from vlmkit.io import InputError
from vlmkit.outputs import check_output_file
from vlmkit.sockets import listen

log = logging.getLogger("review")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--results", type=Path, required=True,
                        help="a compare run: the --output_dir of compare.py / compare.sh "
                             "(batch_evaluation_summary.json, compare_<model>.json and _per_sample.jsonl files)")
    parser.add_argument("--images_dir", type=Path, default=None,
                        help="the multi-view renders (<UUID>_<n>_..._shaded/front.jpg ...); default: the images_dir "
                             "the run was scored with, if it still exists")
    parser.add_argument("--votes", type=Path, default=None,
                        help="votes JSONL to append to (default: RESULTS/votes.jsonl); existing votes are validated "
                             "and count for the pair scheduling")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to bind; anything but loopback exposes the results and the voting to the "
                             "network (there is no login)")
    parser.add_argument("--port", type=int, default=7860, help="port to bind")
    parser.add_argument("--live_model", action="append", type=Path, default=None, metavar="DIR",
                        help="local transformers VLM folder offered in the live caption panel (repeatable); the "
                             "model loads on first use; live captions are never written into the results")
    parser.add_argument("--live_device", default="auto", help="device of the live model: auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--live_max_new_tokens", type=int, default=128, help="length limit of a live caption")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    from vlmkit.review.data import load_run

    run = load_run(args.results, args.images_dir)
    votes = check_output_file(args.votes or run.results_dir / "votes.jsonl", "--votes")
    if args.live_max_new_tokens < 1:
        raise InputError(f"--live_max_new_tokens must be at least 1, got {args.live_max_new_tokens}")
    live = None
    if args.live_model:
        from vlmkit.review.live import LiveCaptioner

        live = LiveCaptioner(args.live_model, device=args.live_device, max_new_tokens=args.live_max_new_tokens)
    from vlmkit.review.app import create_app

    loopback = args.host in LOOPBACK_HOSTS
    app = create_app(run, votes, live=live, loopback_only=loopback)  # validates the existing votes file
    sock = listen(args.host, args.port)
    import uvicorn

    for warning in run.warnings:
        log.warning("%s", warning)
    if not loopback:
        log.warning("listening on %s: anyone who can reach this address can read the results and vote", args.host)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"review.py: {len(run.items)} items, {len(run.models)} models from {run.results_dir}; votes -> {votes}\n"
          f"review.py: open http://{shown}:{args.port}/ (blind A/B: /ab); Ctrl-C stops", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="debug" if args.verbose else "warning",
                                           server_header=False))
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    run_main(main)
