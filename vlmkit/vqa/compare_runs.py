"""compare_vqa.py's command: its options, and the run that compares eval_vqa.py results into one report set.

The comparison itself (`vlmkit.vqa.compare`) imports the HTML report; it is imported only after the options were
built (so a bad flag is one line at once) and the output folder is known to be writable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from vlmkit.cli import setup_logging
from vlmkit.options import Options, opt
from vlmkit.outputs import OutputLock, check_output_dir
from vlmkit.ranges import Range
from vlmkit.vqa.stats import DEFAULT_RESAMPLES

log = logging.getLogger("compare_vqa")


@dataclass
class CompareVqaOptions(Options):
    """The result folders to compare (the first is the baseline) and where the report set goes."""

    results: list[str] = opt(None, "result folders of eval_vqa.py (the first is the baseline)", positional=True,
                             nargs="+")
    output_dir: str = opt("./results/vqa_comparison")
    bootstrap: int = opt(DEFAULT_RESAMPLES, "resamples for the paired CI", range=Range(0, note="0: no confidence "
                                                                                             "interval"))
    seed: int = opt(0, "seed of the bootstrap and the permutation test", range=Range(0, 2**32 - 1))
    verbose: bool = opt(False, flags=("-v",))


def run(options: CompareVqaOptions) -> int:
    setup_logging(options.verbose)
    output_dir = check_output_dir(Path(options.output_dir))
    from vlmkit.vqa.compare import compare, write_comparison

    report = compare(list(options.results or []), resamples=options.bootstrap, seed=options.seed)
    with OutputLock(output_dir / "comparison.json", "comparison"):
        files = write_comparison(report, output_dir)
    for model in report["models"]:
        acc = "n/a" if model["accuracy"] is None else f"{100 * model['accuracy']:.2f}%"
        log.info("%s: %s over %d %ss", model["name"], acc, model["n"], report["unit"])
    for warning in report["warnings"]:
        log.warning("%s", warning)
    log.info("wrote %s", ", ".join(str(p) for p in files.values()))
    return 0
