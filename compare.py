#!/usr/bin/env python3
r"""Score generated captions against ground truth, matched by item id.

    python compare.py --generated ./data/captions/image_qwen2.5.json --ground_truth ./data/groundTruth.json
    python compare.py --generated captions/image_*.json --ground_truth gt.json --images_dir ./data/multiview_images \
                      --output_dir results/

Writes compare_<model>.json / .txt / _per_sample.jsonl for each --generated file and, with --output_dir, the
comparison of this run: batch_evaluation_summary.json, model_comparison_table.md/.csv, evaluation_report.html.
The --output_dir holds one run: the per-model files of an earlier run that this one did not rewrite are removed.
Models are loaded once for all files. Nothing is written unless every input is valid and every metric computed.
"""

from __future__ import annotations

import argparse

from vlmkit.cli import run_main
from vlmkit.evaluation import command
from vlmkit.evaluation.command import CompareFlags
from vlmkit.evaluation.encoders import DEFAULT_CLIP_MODEL  # noqa: F401  (tests read compare.DEFAULT_CLIP_MODEL)
from vlmkit.options import build_parser as options_parser
from vlmkit.options import parse_options


def build_parser() -> argparse.ArgumentParser:
    return options_parser(CompareFlags, __doc__)


def main(argv: list[str] | None = None) -> int:
    return command.run(parse_options(CompareFlags, argv, description=__doc__))


if __name__ == "__main__":
    run_main(main)
