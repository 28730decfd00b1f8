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

from vlmkit.cli import run_main, setup_logging
from vlmkit.hub.fetch_and_check import DownloadOptions, run
from vlmkit.options import parse_options


def main(argv: list[str] | None = None) -> int:
    options = parse_options(DownloadOptions, argv, description=__doc__)
    setup_logging(options.verbose)
    return run(options)


if __name__ == "__main__":
    run_main(main)
