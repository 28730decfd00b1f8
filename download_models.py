#!/usr/bin/env python3
r"""Fill ./models with the models the scripts default to, and check, offline, that they are complete and loadable.

    python download_models.py --list                                    # names, local folders, hub ids
    python download_models.py --model Qwen2.5-VL-3B-Instruct            # from Hugging Face into ./models/...
    python download_models.py --model clip-vit-base-patch32 --source modelscope
    python download_models.py --all --local_dir /data/models
    python download_models.py --check [--load]                          # offline: present? complete? loadable?

Downloads use huggingface_hub.snapshot_download or modelscope.snapshot_download (HF_ENDPOINT / MODELSCOPE_ENDPOINT
pick a mirror); an interrupted download resumes when rerun. Every run ends with the check table; exit status 1 when a
model folder is missing, incomplete or not loadable, or a download failed (one line each: hub, model id, what to do);
2 for bad flags. This is the only command that goes online: every other script loads models from local folders.
"""

from __future__ import annotations

import argparse

from vlmkit.cli import HelpFormatter, run_main, setup_logging
from vlmkit.hub import cli as hub
from vlmkit.hub.download import DEFAULT_TIMEOUT, SOURCES
from vlmkit.hub.registry import DEFAULT_MODELS_DIR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    what = parser.add_argument_group("what")
    what.add_argument("--list", action="store_true", help="list the default models and exit")
    what.add_argument("--model", nargs="+", metavar="NAME", help="models to download or check (see --list)")
    what.add_argument("--all", action="store_true", help="every default model")
    what.add_argument("--check", action="store_true",
                      help="do not download: check the folders offline (all default models unless --model)")
    what.add_argument("--load", action="store_true", help="with --check: also build each model on the meta device")
    what.add_argument("--trust_remote_code", action="store_true",
                      help="with --load: run a checkpoint's own modelling code (InternVL) to build it")
    where = parser.add_argument_group("where from, where to")
    where.add_argument("--source", default="hf", choices=sorted(SOURCES), help="hf: Hugging Face; modelscope")
    where.add_argument("--revision", default=None, help="branch, tag or commit (default: the hub's default branch)")
    where.add_argument("--repo_id", default=None, help="another hub id for the one --model (a mirror or fork)")
    where.add_argument("--local_dir", default=DEFAULT_MODELS_DIR, help="the models folder the scripts read")
    where.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="SECONDS",
                       help="connect and read timeout of every request to the hub")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return hub.run(args)


if __name__ == "__main__":
    run_main(main)
