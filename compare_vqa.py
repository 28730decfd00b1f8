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
import logging
from pathlib import Path

from vlmkit.cli import HelpFormatter, run_main, setup_logging
from vlmkit.outputs import OutputLock, check_output_dir
from vlmkit.ranges import Range, check_flags
from vlmkit.vqa.stats import DEFAULT_RESAMPLES

log = logging.getLogger("compare_vqa")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("results", nargs="+", help="result folders of eval_vqa.py (the first is the baseline)")
    parser.add_argument("--output_dir", default="./results/vqa_comparison")
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_RESAMPLES, help="resamples for the paired CI")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the permutation test")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    check_flags(args, {"bootstrap": Range(0, note="0: no confidence interval"), "seed": Range(0, 2**32 - 1)})
    output_dir = check_output_dir(Path(args.output_dir))
    from vlmkit.vqa.compare import compare, write_comparison  # after the flag checks: it imports the HTML report

    report = compare(args.results, resamples=args.bootstrap, seed=args.seed)
    with OutputLock(output_dir / "comparison.json", "comparison"):
        files = write_comparison(report, output_dir)
    for model in report["models"]:
        acc = "n/a" if model["accuracy"] is None else f"{100 * model['accuracy']:.2f}%"
        log.info("%s: %s over %d %ss", model["name"], acc, model["n"], report["unit"])
    for warning in report["warnings"]:
        log.warning("%s", warning)
    log.info("wrote %s", ", ".join(str(p) for p in files.values()))
    return 0


if __name__ == "__main__":
    run_main(main)
