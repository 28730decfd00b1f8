r"""Compare eval_vqa.py results of several models on one benchmark: accuracy +- 95% CI, the paired difference to the
first (baseline) model with a paired permutation test, accuracy per question type / category, answer diversity,
most frequent answers, and the questions where the models disagree.

    python compare_vqa.py results/textvqa/base results/textvqa/lora results/textvqa/merged \
        --output_dir results/textvqa/comparison

Arguments are result folders (or their results.json); the first is the baseline. Output: comparison.md,
comparison.json and a self-contained comparison.html in --output_dir (replaced as one set).
"""

from __future__ import annotations

import argparse

from vlmkit.cli import run_main
from vlmkit.options import build_parser as options_parser
from vlmkit.options import parse_options
from vlmkit.vqa.compare_runs import CompareVqaOptions, run


def build_parser() -> argparse.ArgumentParser:
    return options_parser(CompareVqaOptions, __doc__)


def main(argv: list[str] | None = None) -> int:
    return run(parse_options(CompareVqaOptions, argv, description=__doc__))


if __name__ == "__main__":
    run_main(main)
