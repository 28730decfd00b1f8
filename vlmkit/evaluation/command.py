"""compare.py's command: its options (one declaration per flag, ranges included) and its one `run(flags) -> int`.

`CompareFlags` is what the user types; `CompareOptions` (pipeline.py) is what the scoring needs: `run` checks the
outputs, takes the output lock, finishes a killed run's commit, builds the pipeline's options and prints the table.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from vlmkit.cli import setup_logging
from vlmkit.embedding_cache import CacheOptions
from vlmkit.evaluation.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED
from vlmkit.evaluation.earlier_run import earlier_run_files, remove_earlier_run_files
from vlmkit.evaluation.encoders import DEFAULT_CLIP_MODEL
from vlmkit.evaluation.metrics import OVERALL_KEY, metric_groups, parse_metric_groups
from vlmkit.evaluation.pipeline import CompareOptions, run_comparison
from vlmkit.evaluation.protocols import DEFAULT_PROTOCOL, MPNET_DEFAULT, PROTOCOLS
from vlmkit.evaluation.report import fmt_metric
from vlmkit.evaluation.tables import markdown_table
from vlmkit.executor import ExecutorOptions, ray_session
from vlmkit.images import max_image_pixels_option, set_max_image_pixels
from vlmkit.io import InputError, recover_commits
from vlmkit.judges.flags import JudgeFlags, judge_options
from vlmkit.options import Options, opt
from vlmkit.outputs import OutputLock, check_output_dir, check_output_file
from vlmkit.ranges import POSITIVE, Range

log = logging.getLogger("compare")
RESAMPLES = Range(0, note="0 = off")


def _groups_help() -> str:
    groups = "; ".join(f"{g}: {', '.join(m)}" for g, m in metric_groups().items())
    return f"comma list of metric groups or 'all' ({groups})"


@dataclass
class CompareFlags(Options):
    generated: list[Path] = opt(factory=list, help="generated caption file(s) [{images, caption, data_by}]; several = "
                                                   "one comparison", parse=Path, nargs="+", required=True)
    ground_truth: Path = opt(Path("./data/groundTruth.json"), "ground-truth captions [{images, caption}]")
    output: Path | None = opt(None, "result JSON path for a single --generated file (VaseVQA-3D style; .txt and "
                                    "_per_sample.jsonl go next to it); no summary/table/HTML")
    output_dir: Path = opt(Path("./results"), "folder for compare_<model>.* files, the comparison table and the HTML "
                                              "report")
    clip_model: str = opt(DEFAULT_CLIP_MODEL, "local CLIP folder; if absent the CLIP metrics are null (with the "
                                              "reason) and the overall score is partial; 'none' disables CLIP")
    protocol: str = opt(DEFAULT_PROTOCOL, "metric definitions: 'vlmkit' (sentence-model semantic similarity, "
                                          "retrieval and FD; \\w+ Jaccard) or 'vasevqa3d' (reproduces VaseVQA-3D's "
                                          "compare.py: CLIP text cosine for clip/semantic/R@k, whitespace Jaccard, FD "
                                          "of raw all-mpnet-base-v2 embeddings with 1e-6*I); see docs/compare.md",
                        choices=sorted(PROTOCOLS))
    sentence_model: str | None = opt(None, "local sentence-transformers folder; default: the packaged "
                                           f"all-MiniLM-L6-v2 (--protocol vlmkit) or {MPNET_DEFAULT} (--protocol "
                                           "vasevqa3d: if that folder is absent, fid_score is null with the reason); "
                                           "a path given here that does not exist is an error")
    images_dir: Path | None = opt(None, "multi-view render folders (<UUID>_<n>_..._shaded/front.jpg ...): enables "
                                        "image-grounded CLIPScore/RefCLIPScore and thumbnails in the HTML report")
    allow_missing: bool = opt(False, "score the matched subset when some ground-truth ids have no prediction "
                                     "(coverage is recorded); default: that is an error")
    metrics: str = opt("all", _groups_help)  # type: ignore[arg-type]  (help built with the parser)
    no_coco: bool = opt(False, "skip the pycocoevalcap metrics (Java)")
    model_name: list[str] | None = opt(None, "name of a model (once per --generated file, in order); default: "
                                             "data_by, else the file name image_<model>.json", action="append")
    bootstrap: int = opt(DEFAULT_RESAMPLES, "paired bootstrap resamples over items for the 95% CIs of every mean "
                                            "metric, corpus BLEU and the overall score, and for the significance "
                                            "test between models; 0 = off", range=RESAMPLES)
    fid_bootstrap: int = opt(0, "bootstrap resamples for the Fréchet distance's CI (and its significance test); it "
                                "recomputes both covariances and their matrix square root for every resample (about "
                                "20-40 ms each for 96 items at dim 384-768 on one core, more for larger sets); "
                                "0 = no CI for fid_score", range=RESAMPLES)
    seed: int = opt(DEFAULT_SEED, "seed of the bootstrap resamples", range=Range(0, 2**32 - 1))
    batch_size: int = opt(32, "encoder batch size", range=POSITIVE)
    device: str = opt("auto", "auto, cpu, cuda, cuda:1, ...")
    gallery_items: int = opt(50, "items shown in the HTML gallery", range=Range(0))
    cache: CacheOptions = opt(factory=CacheOptions)
    max_image_pixels: int | None = max_image_pixels_option()
    judge: JudgeFlags = opt(factory=JudgeFlags)
    # --executor ray: the text/image embeddings on a Ray actor pool
    executor: ExecutorOptions = opt(factory=ExecutorOptions)
    verbose: bool = opt(False, "more logging", flags=("-v",))

    def check(self) -> None:
        try:
            self.groups = parse_metric_groups(self.metrics, self.no_coco)
        except ValueError as exc:
            raise InputError(f"--metrics: {exc}") from None


def pipeline_options(flags: CompareFlags) -> CompareOptions:
    cache = flags.cache
    return CompareOptions(
        generated=list(flags.generated), ground_truth=flags.ground_truth, output_dir=flags.output_dir,
        output=flags.output, clip_model=flags.clip_model, sentence_model=flags.sentence_model or None,
        images_dir=flags.images_dir, allow_missing=flags.allow_missing, batch_size=flags.batch_size,
        device=flags.device, groups=flags.groups, model_names=flags.model_name, gallery_limit=flags.gallery_items,
        protocol=flags.protocol, bootstrap=flags.bootstrap, seed=flags.seed, fid_bootstrap=flags.fid_bootstrap,
        cache=not cache.no_cache, cache_dir=cache.cache_dir, cache_max_gb=cache.cache_max_gb,
        judge=judge_options(flags.judge, flags.device), executor=flags.executor)


def run(flags: CompareFlags) -> int:
    """Score, write the result set, print the table; the exit status."""
    setup_logging(flags.verbose)
    set_max_image_pixels(flags.max_image_pixels)
    options = pipeline_options(flags)
    # Before any model is loaded: the results can be written, and no other run is writing them.
    output = check_output_file(flags.output, "--output") if flags.output else check_output_dir(flags.output_dir)
    with OutputLock(output, "comparison results"):
        recover_commits(output.parent if flags.output else output)  # a killed run's half-published result set
        earlier = earlier_run_files(flags.output_dir) if flags.output is None else set()
        with ray_session(options.executor) if options.executor.is_ray else nullcontext():  # one Ray for all encodes
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
