"""compare.py's job from validated options to written files.

Order matters for the guarantees users rely on: every input is read and validated first (cheap, before any model
is loaded), then the models are loaded once, every metric of every model is computed, and only then are all
output files written together (`write_all_or_nothing`). A bad input therefore fails fast with a one-line
error and leaves any earlier results untouched.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlmkit.embedding_cache import DEFAULT_MAX_GB, open_cache
from vlmkit.evaluation import metrics as registry
from vlmkit.evaluation.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, BootstrapSettings
from vlmkit.evaluation.caption_recall import DEFAULT_MAX_CHUNK_ELEMENTS
from vlmkit.evaluation.coco_metrics import CocoScorer, java_unavailable_reason
from vlmkit.evaluation.encoders import (
    ClipEncoder,
    SentenceEncoder,  # noqa: F401  (tests patch pipeline.SentenceEncoder.load)
    TextEncoder,
    load_clip,
    load_sentence,
    on_ray,
)
from vlmkit.evaluation.evaluator import CaptionEvaluator, ModelResult
from vlmkit.evaluation.html_report import html_report
from vlmkit.evaluation.matching import GroundTruth, MatchedPairs, match_by_id
from vlmkit.evaluation.metrics import ALL_GROUPS
from vlmkit.evaluation.protocols import DEFAULT_PROTOCOL, get_protocol
from vlmkit.evaluation.report import model_files, output_names, safe_name
from vlmkit.evaluation.tables import csv_table, markdown_table, summary
from vlmkit.images import image_problem
from vlmkit.io import InputError, write_all_or_nothing
from vlmkit.models import require_model_dir
from vlmkit.multiview import ObjectFolder, find_object_dirs_by_id
from vlmkit.records import CaptionRecord, load_caption_records

log = logging.getLogger(__name__)

SUMMARY_FILE = "batch_evaluation_summary.json"
TABLE_MD = "model_comparison_table.md"
TABLE_CSV = "model_comparison_table.csv"
HTML_FILE = "evaluation_report.html"


@dataclass
class CompareOptions:
    generated: list[Path]
    ground_truth: Path
    output_dir: Path = Path("./results")
    output: Path | None = None  # one model's JSON path (seed compatibility); no summary/table/HTML then
    clip_model: str | None = None
    sentence_model: str | None = None
    images_dir: Path | None = None
    allow_missing: bool = False
    batch_size: int = 32
    device: str = "auto"
    groups: frozenset[str] = frozenset(ALL_GROUPS)
    model_names: list[str] | None = None
    gallery_limit: int = 50
    retrieval_chunk_elements: int = DEFAULT_MAX_CHUNK_ELEMENTS
    protocol: str = DEFAULT_PROTOCOL
    bootstrap: int = DEFAULT_RESAMPLES  # resamples for the CIs and the significance test; 0 = off
    seed: int = DEFAULT_SEED
    fid_bootstrap: int = 0  # resamples for the Fréchet distance's CI (recomputes covariances); 0 = off
    cache: bool = True  # the persistent embedding cache (vlmkit/embedding_cache.py); False = --no_cache
    cache_dir: Path | None = None  # None: vlmkit.embedding_cache.default_cache_dir()
    cache_max_gb: float = DEFAULT_MAX_GB
    judge: Any = None  # vlmkit.judges.stage.JudgeOptions: the judge metrics (off when None)
    executor: Any = None  # vlmkit.executor.ExecutorOptions: --executor ray encodes on a Ray actor pool


@dataclass
class CompareOutcome:
    results: list[ModelResult]
    summary: dict[str, Any] | None
    files: list[Path]
    seconds_loading: float = 0.0
    seconds_scoring: float = 0.0
    seconds_writing: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    model_data: dict[str, dict[str, Any]] = field(default_factory=dict)


def model_name_for(path: Path, records: list[CaptionRecord]) -> str:
    """`data_by` when every record agrees on one, else the file name's `image_<model>.json` part (or stem)."""
    names = {r.data_by for r in records}
    if len(names) == 1 and None not in names and next(iter(names)).strip():
        return next(iter(names)).strip()
    return file_model_name(path)


def file_model_name(path: Path) -> str:
    stem = path.stem
    return stem[len("image_"):] if stem.startswith("image_") and len(stem) > len("image_") else stem


def _resolve_names(paths: list[Path], records: list[list[CaptionRecord]], overrides: list[str] | None) -> list[str]:
    if overrides:
        if len(overrides) != len(paths):
            raise InputError(f"--model_name given {len(overrides)} times for {len(paths)} --generated files")
        names = list(overrides)
    else:
        names = [model_name_for(p, r) for p, r in zip(paths, records, strict=True)]
        if len({safe_name(n) for n in names}) < len(names):  # e.g. two files with the same data_by
            names = [file_model_name(p) for p in paths]
    seen: dict[str, Path] = {}
    for name, path in zip(names, paths, strict=True):
        key = safe_name(name)
        if key in seen:
            raise InputError(f"{path}: model name '{name}' is also the name of {seen[key]}; "
                             f"pass --model_name once per --generated file")
        seen[key] = path
    return names


def _check_objects(objects: dict[str, ObjectFolder], jobs: list[tuple[str, MatchedPairs]], images_dir: Path) -> None:
    checked: set[str] = set()
    for _, matched in jobs:
        for item in matched.ids:
            if item in checked:
                continue
            checked.add(item)
            obj = objects.get(item)
            if obj is None:
                raise InputError(f"{images_dir}: no object folder for id {item} (from {matched.ground_truth_file})")
            if not obj.view_files:
                raise InputError(f"{obj.path}: no view images (front/back/left/right/top/bottom) for id {item}")
            for _, path in obj.views_in_order():
                # decoded (JPEGs at 1/8 scale): a truncated render fails here too, before the encoders load
                problem = image_problem(path)
                if problem is not None:
                    raise InputError(f"{problem}; id {item}")


def validate_inputs(options: CompareOptions) -> tuple[GroundTruth, list[tuple[str, MatchedPairs]]]:
    if not options.generated:
        raise InputError("no --generated caption file given")
    if options.output is not None and len(options.generated) > 1:
        raise InputError("--output names one result file; with several --generated files use --output_dir")
    truth = GroundTruth.from_records(options.ground_truth, load_caption_records(options.ground_truth))
    records = [load_caption_records(p) for p in options.generated]
    names = _resolve_names(list(options.generated), records, options.model_names)
    jobs = [(name, match_by_id(recs, path, truth, options.allow_missing))
            for name, recs, path in zip(names, records, options.generated, strict=True)]
    if options.sentence_model and registry.groups_needing(get_protocol(options.protocol), "sentence", options.groups):
        require_model_dir(options.sentence_model, "sentence-transformers model", "--sentence_model")
    return truth, jobs


def _planned_files(options: CompareOptions, jobs: list[tuple[str, MatchedPairs]]) -> dict[str, Path]:
    if options.output is not None:
        return {jobs[0][0]: Path(options.output)}
    return {name: options.output_dir / output_names(name)["json"] for name, _ in jobs}


def _loud_warning(title: str, reason: str, groups: set[str]) -> None:
    metrics = ", ".join(m for g, keys in registry.metric_groups().items() if g in groups for m in keys)
    log.warning("=" * 78)
    log.warning("%s: %s", title, reason)
    log.warning("%s are null; overall_score may be PARTIAL", metrics)
    log.warning("=" * 78)


JUDGE_GROUP = "judge"  # the optional metric group of vlmkit/evaluation/metrics/judges.py


def _judge_stage(options: CompareOptions, objects: dict[str, ObjectFolder] | None):
    """The judge stage, checked before any model is loaded (judge folder, schema); None without --judge_model."""
    if options.judge is None:
        return None
    from vlmkit.judges.stage import JudgeStage

    out = Path(options.output).parent if options.output is not None else options.output_dir
    cache = options.judge.cache or out / ".judge_cache" / "answers.sqlite"
    return JudgeStage(options.judge, Path(cache), objects)


def run_comparison(options: CompareOptions, sentence_encoder: TextEncoder | None = None,
                   clip_encoder: ClipEncoder | None = None, judge_loader=None) -> CompareOutcome:
    """Validate, load, score, write. Encoders (and the judge model's loader) may be injected (tests, benchmarks);
    else they are loaded here. With judge options, the optional judge group is registered for this run."""
    if options.judge is None:
        return _run_comparison(options, sentence_encoder, clip_encoder)
    with registry.enabled(JUDGE_GROUP):
        return _run_comparison(options, sentence_encoder, clip_encoder, judge_loader)


def _run_comparison(options: CompareOptions, sentence_encoder: TextEncoder | None, clip_encoder: ClipEncoder | None,
                    judge_loader=None) -> CompareOutcome:
    truth, jobs = validate_inputs(options)
    json_paths = _planned_files(options, jobs)
    groups = options.groups | {JUDGE_GROUP} if options.judge is not None else options.groups
    protocol = get_protocol(options.protocol)
    needs_sentence = bool(registry.groups_needing(protocol, "sentence", groups))
    needs_clip = bool(registry.groups_needing(protocol, "clip", groups))

    objects = None
    if options.images_dir is not None:
        objects = find_object_dirs_by_id(options.images_dir)
        clip_expected = clip_encoder is not None or (options.clip_model and Path(options.clip_model).exists())
        if registry.groups_requiring("images", groups, protocol) and clip_expected:
            _check_objects(objects, jobs, options.images_dir)  # before minutes of model loading
    if options.judge is not None and options.judge.pairs and (len(jobs) < 2 or options.output is not None):
        raise InputError("--judge_pairs compares models: pass two or more --generated files, with --output_dir")
    judge = _judge_stage(options, objects)
    if judge is not None and judge_loader is not None:
        judge._load = judge_loader

    start = time.perf_counter()
    coco = coco_reason = cache = None
    wants_coco = bool(registry.groups_requiring("coco", groups, protocol))
    if wants_coco:
        coco_reason = java_unavailable_reason()
        if coco_reason is None:
            coco = CocoScorer()  # Java + METEOR warm up in the background while torch loads
    try:
        device = "cpu"
        if (sentence_encoder is None and needs_sentence) or (clip_encoder is None and needs_clip):
            from vlmkit.models import resolve_device

            device = resolve_device(options.device)
        sentence_reason = clip_reason = None
        if sentence_encoder is None and needs_sentence:
            sentence_encoder, sentence_reason = load_sentence(
                options.sentence_model, protocol.default_sentence_model, device, options.batch_size,
                normalize=protocol.fid_normalised)
            if sentence_reason:
                _loud_warning("SENTENCE-MODEL METRICS UNAVAILABLE", sentence_reason,
                              registry.groups_needing(protocol, "sentence", groups))
        if clip_encoder is None and needs_clip:
            clip_encoder, clip_reason = load_clip(options.clip_model, device, options.batch_size)
            if clip_reason and options.clip_model and options.clip_model.strip().lower() == "none":
                log.info("%s", clip_reason)
            elif clip_reason:
                _loud_warning("CLIP METRICS UNAVAILABLE", clip_reason,
                              registry.groups_needing(protocol, "clip", groups))
        if coco is not None:
            coco_reason = coco.wait_ready()
            if coco_reason:
                log.warning("pycocoevalcap metrics unavailable: %s", coco_reason)
        elif coco_reason and wants_coco:
            log.warning("pycocoevalcap metrics unavailable: %s", coco_reason)
        seconds_loading = time.perf_counter() - start
        ray_encoders = on_ray({"sentence": sentence_encoder, "clip": clip_encoder}, options.executor)
        sentence_encoder, clip_encoder = ray_encoders["sentence"], ray_encoders["clip"]  # embeddings on Ray actors

        bootstrap = BootstrapSettings(options.bootstrap, options.seed, options.fid_bootstrap)
        if (sentence_encoder is not None or clip_encoder is not None) and cache is None:
            cache = open_cache(options.cache_dir, options.cache_max_gb, options.cache)
        evaluator = CaptionEvaluator(
            sentence_encoder=sentence_encoder, sentence_reason=sentence_reason, clip=clip_encoder,
            clip_reason=clip_reason, coco=coco if not coco_reason else None, coco_reason=coco_reason, groups=groups,
            objects=objects, protocol=protocol, bootstrap=bootstrap,
            retrieval_chunk_elements=options.retrieval_chunk_elements, cache=cache,
            resources={JUDGE_GROUP: judge} if judge is not None else None)
        start = time.perf_counter()
        try:
            results = evaluator.evaluate_all(jobs)
        finally:
            if judge is not None:
                judge.cache.close()
        significance = evaluator.significance(results) if options.output is None else None
        seconds_scoring = time.perf_counter() - start
    finally:
        if coco is not None:
            coco.close()
        if cache is not None:
            cache.close()

    start = time.perf_counter()
    settings = {
        "metrics_requested": sorted(groups),
        "images_dir": str(options.images_dir) if options.images_dir else None,
        "allow_missing": options.allow_missing,
        "device": device,
        "batch_size": options.batch_size,
        "protocol": protocol.name,
        "bootstrap": {"resamples": options.bootstrap, "seed": options.seed, "fid_resamples": options.fid_bootstrap},
        "seconds_loading_models": round(seconds_loading, 3),
    }
    if judge is not None:
        settings["judge"] = judge.describe()
    files: dict[Path, str] = {}
    model_data: dict[str, dict[str, Any]] = {}
    for result in results:
        texts, data = model_files(result, json_paths[result.model_name], settings)
        files.update(texts)
        model_data[result.model_name] = data
    table = None
    if options.output is None:
        out = options.output_dir
        table = summary(results, model_data, str(truth.path),
                        {name: str(path) for name, path in json_paths.items()}, significance, bootstrap)
        files[out / SUMMARY_FILE] = json.dumps(table, ensure_ascii=False, indent=2) + "\n"
        files[out / TABLE_MD] = markdown_table(table)
        files[out / TABLE_CSV] = csv_table(table)
        files[out / HTML_FILE] = html_report(table, results, objects, options.gallery_limit)
        if judge is not None and options.judge.pairs:
            from vlmkit.judges.stage import PAIRWISE_VOTES_FILE

            files[out / PAIRWISE_VOTES_FILE] = "".join(json.dumps(v, ensure_ascii=False) + "\n"
                                                       for v in judge.pair_votes)
            table["judge_pairs"] = {"file": PAIRWISE_VOTES_FILE, **judge.pair_problems}
            files[out / SUMMARY_FILE] = json.dumps(table, ensure_ascii=False, indent=2) + "\n"
    write_all_or_nothing({os.fspath(p): text for p, text in files.items()})
    for warning in (table or {}).get("warnings", []):
        log.warning("%s", warning)
    return CompareOutcome(results, table, list(files), seconds_loading, seconds_scoring,
                          time.perf_counter() - start, dict(evaluator.timings), model_data)
