"""review.py's options (one field per flag) and `run(options)`: read and check the compare run, the votes file,
the live models and the port, all before serving, then serve the review app with uvicorn until Ctrl-C."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from vlmkit.options import Options, opt
from vlmkit.outputs import check_output_file
from vlmkit.ranges import POSITIVE, Range
from vlmkit.sockets import listen

log = logging.getLogger("review")

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass
class ReviewOptions(Options):
    results: Path = opt(None, "a compare run: the --output_dir of compare.py / compare.sh "
                              "(batch_evaluation_summary.json, compare_<model>.json and _per_sample.jsonl files)",
                        required=True)
    images_dir: Path | None = opt(None, "the multi-view renders (<UUID>_<n>_..._shaded/front.jpg ...); default: the "
                                        "images_dir the run was scored with, if it still exists")
    votes: Path | None = opt(None, "votes JSONL to append to (default: RESULTS/votes.jsonl); existing votes are "
                                   "validated and count for the pair scheduling")
    host: str = opt("127.0.0.1", "address to bind; anything but loopback exposes the results and the voting to the "
                                 "network (there is no login)")
    port: int = opt(7860, "port to bind", range=Range(1, 65535))
    live_model: list[Path] | None = opt(None, "local transformers VLM folder offered in the live caption panel "
                                              "(repeatable); the model loads on first use; live captions are never "
                                              "written into the results", action="append", parse=Path,
                                        metavar="DIR")
    live_device: str = opt("auto", "device of the live model: auto, cpu, cuda, cuda:1 ...")
    live_max_new_tokens: int = opt(128, "length limit of a live caption", range=POSITIVE)
    verbose: bool = opt(False, flags=("-v",))


def run(options: ReviewOptions) -> int:
    """Serve the review app (returns when the server stops)."""
    from vlmkit.review.data import load_run

    compare_run = load_run(options.results, options.images_dir)
    votes = check_output_file(options.votes or compare_run.results_dir / "votes.jsonl", "--votes")
    live = None
    if options.live_model:
        from vlmkit.review.live import LiveCaptioner

        live = LiveCaptioner(options.live_model, device=options.live_device,
                             max_new_tokens=options.live_max_new_tokens)
    from vlmkit.review.app import create_app

    loopback = options.host in LOOPBACK_HOSTS
    app = create_app(compare_run, votes, live=live, loopback_only=loopback)  # validates the existing votes file
    sock = listen(options.host, options.port)
    import uvicorn

    for warning in compare_run.warnings:
        log.warning("%s", warning)
    if not loopback:
        log.warning("listening on %s: anyone who can reach this address can read the results and vote", options.host)
    shown = f"[{options.host}]" if ":" in options.host else options.host
    print(f"review.py: {len(compare_run.items)} items, {len(compare_run.models)} models from "
          f"{compare_run.results_dir}; votes -> {votes}\n"
          f"review.py: open http://{shown}:{options.port}/ (blind A/B: /ab); Ctrl-C stops", file=sys.stderr,
          flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="debug" if options.verbose else "warning",
                                           server_header=False))
    server.run(sockets=[sock])
    return 0
