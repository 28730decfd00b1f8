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
import logging
from pathlib import Path

from vlmkit.cli import HelpFormatter, run_main, setup_logging
from vlmkit.embedding_cache import add_cache_args
from vlmkit.evaluation.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED
from vlmkit.evaluation.earlier_run import earlier_run_files, remove_earlier_run_files
from vlmkit.evaluation.encoders import DEFAULT_CLIP_MODEL
from vlmkit.evaluation.metrics import OVERALL_KEY, metric_groups, parse_metric_groups
from vlmkit.evaluation.pipeline import CompareOptions, run_comparison
from vlmkit.evaluation.protocols import DEFAULT_PROTOCOL, MPNET_DEFAULT, PROTOCOLS
from vlmkit.evaluation.report import fmt_metric
from vlmkit.evaluation.tables import markdown_table
from vlmkit.images import add_max_image_pixels_arg, apply_max_image_pixels
from vlmkit.io import InputError, recover_commits
from vlmkit.judges.flags import JudgeFlags, judge_options
from vlmkit.options import add_options, options_from
from vlmkit.outputs import OutputLock, check_output_dir, check_output_file

log = logging.getLogger("compare")


def build_parser() -> argparse.ArgumentParser:
    groups = "; ".join(f"{g}: {', '.join(m)}" for g, m in metric_groups().items())
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--generated", nargs="+", required=True, type=Path,
                        help="generated caption file(s) [{images, caption, data_by}]; several = one comparison")
    parser.add_argument("--ground_truth", type=Path, default=Path("./data/groundTruth.json"),
                        help="ground-truth captions [{images, caption}]")
    parser.add_argument("--output", type=Path, default=None,
                        help="result JSON path for a single --generated file (VaseVQA-3D style; .txt and "
                             "_per_sample.jsonl go next to it); no summary/table/HTML")
    parser.add_argument("--output_dir", type=Path, default=Path("./results"),
                        help="folder for compare_<model>.* files, the comparison table and the HTML report")
    parser.add_argument("--clip_model", default=DEFAULT_CLIP_MODEL,
                        help="local CLIP folder; if absent the CLIP metrics are null (with the reason) and the "
                             "overall score is partial; 'none' disables CLIP")
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default=DEFAULT_PROTOCOL,
                        help="metric definitions: 'vlmkit' (sentence-model semantic similarity, retrieval and FD; "
                             "\\w+ Jaccard) or 'vasevqa3d' (reproduces VaseVQA-3D's compare.py: CLIP text cosine "
                             "for clip/semantic/R@k, whitespace Jaccard, FD of raw all-mpnet-base-v2 embeddings "
                             "with 1e-6*I); see docs/compare.md")
    parser.add_argument("--sentence_model", default=None,
                        help="local sentence-transformers folder; default: the packaged all-MiniLM-L6-v2 "
                             f"(--protocol vlmkit) or {MPNET_DEFAULT} (--protocol vasevqa3d: if that folder is "
                             "absent, fid_score is null with the reason); a path given here that does not exist is "
                             "an error")
    parser.add_argument("--images_dir", type=Path, default=None,
                        help="multi-view render folders (<UUID>_<n>_..._shaded/front.jpg ...): enables "
                             "image-grounded CLIPScore/RefCLIPScore and thumbnails in the HTML report")
    parser.add_argument("--allow_missing", action="store_true",
                        help="score the matched subset when some ground-truth ids have no prediction "
                             "(coverage is recorded); default: that is an error")
    parser.add_argument("--metrics", default="all",
                        help=f"comma list of metric groups or 'all' ({groups})")
    parser.add_argument("--no_coco", action="store_true", help="skip the pycocoevalcap metrics (Java)")
    parser.add_argument("--model_name", action="append", default=None,
                        help="name of a model (once per --generated file, in order); default: data_by, else the "
                             "file name image_<model>.json")
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_RESAMPLES,
                        help="paired bootstrap resamples over items for the 95%% CIs of every mean metric, corpus "
                             "BLEU and the overall score, and for the significance test between models; 0 = off")
    parser.add_argument("--fid_bootstrap", type=int, default=0,
                        help="bootstrap resamples for the Fréchet distance's CI (and its significance test); it "
                             "recomputes both covariances and their matrix square root for every resample (about "
                             "20-40 ms each for 96 items at dim 384-768 on one core, more for larger sets); "
                             "0 = no CI for fid_score")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the bootstrap resamples")
    parser.add_argument("--batch_size", type=int, default=32, help="encoder batch size")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    parser.add_argument("--gallery_items", type=int, default=50, help="items shown in the HTML gallery")
    add_cache_args(parser)
    add_max_image_pixels_arg(parser)
    add_options(parser.add_argument_group(JudgeFlags.TITLE), JudgeFlags, root=parser)
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        groups = parse_metric_groups(args.metrics, args.no_coco)
    except ValueError as exc:
        raise InputError(f"--metrics: {exc}") from None
    if args.batch_size < 1:
        raise InputError(f"--batch_size must be at least 1, got {args.batch_size}")
    for flag in ("bootstrap", "fid_bootstrap"):
        if getattr(args, flag) < 0:
            raise InputError(f"--{flag} must be 0 (off) or a number of resamples, got {getattr(args, flag)}")
    if args.cache_max_gb <= 0:
        raise InputError(f"--cache_max_gb must be positive, got {args.cache_max_gb}")
    apply_max_image_pixels(args)
    args.judge = judge_options(options_from(JudgeFlags, vars(args)), args.device)
    # Before any model is loaded: the results can be written, and no other run is writing them.
    output = check_output_file(args.output, "--output") if args.output else check_output_dir(args.output_dir)
    with OutputLock(output, "comparison results"):
        recover_commits(output.parent if args.output else output)  # a killed run's half-published result set
        return _compare(args, groups)


def _compare(args: argparse.Namespace, groups: frozenset[str]) -> int:
    options = CompareOptions(
        generated=list(args.generated), ground_truth=args.ground_truth, output_dir=args.output_dir,
        output=args.output, clip_model=args.clip_model, sentence_model=args.sentence_model or None,
        images_dir=args.images_dir, allow_missing=args.allow_missing, batch_size=args.batch_size,
        device=args.device, groups=groups, model_names=args.model_name, gallery_limit=args.gallery_items,
        protocol=args.protocol, bootstrap=args.bootstrap, seed=args.seed, fid_bootstrap=args.fid_bootstrap,
        cache=not args.no_cache, cache_dir=args.cache_dir, cache_max_gb=args.cache_max_gb, judge=args.judge)
    earlier = earlier_run_files(args.output_dir) if args.output is None else set()
    outcome = run_comparison(options)
    remove_earlier_run_files(earlier, outcome.files)  # the folder holds this run only (docs/compare.md)
    pairs = sum(len(r.matched) for r in outcome.results)
    log.info("scored %d pairs of %d model(s) in %.1f s (models loaded in %.1f s)", pairs, len(outcome.results),
             outcome.seconds_scoring, outcome.seconds_loading)
    for path in outcome.files:
        log.info("wrote %s", path)
    if outcome.summary is not None:
        print(markdown_table(outcome.summary), end="")
    else:
        for result in outcome.results:
            overall = fmt_metric(OVERALL_KEY, result.metrics[OVERALL_KEY],
                                 result.confidence_intervals.get(OVERALL_KEY))
            print(f"{result.model_name}: {OVERALL_KEY} {overall}{' (partial)' if result.overall.partial else ''}")
    return 0


if __name__ == "__main__":
    run_main(main)
