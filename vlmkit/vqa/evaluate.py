"""What eval_vqa.py does (`VqaOptions`, `run`): answer a question set with a model (one chunk of it), merge chunks,
score.

Model run: validate the question set, the images, the model and the adapter (nothing loaded yet) -> take this
process's chunk -> open its chunk file (refuse to clobber; `--resume` continues) -> load the model only if there is
work -> answer in batches through the transformers backend (`HFCaptioner`: batched, left-padded, adapter applied),
rewriting the chunk file after every batch -> write the chunk report. With one chunk the run merges and scores
itself; with K chunks, `--merge` does it once all are done.

Exit status: 0 all questions answered and scored; 1 some questions failed (unreadable image, generation error:
listed with the reason in the chunk report and results.json; `--resume` retries them); 2 bad input or settings;
130 interrupted (finished batches are kept).
"""

from __future__ import annotations

import dataclasses
import logging
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from vlmkit.cli import setup_logging
from vlmkit.executor import ExecutorOptions
from vlmkit.generation.engines import EngineOptions, api_identity
from vlmkit.generation.hf_backend import HFOptions
from vlmkit.generation.items import CaptionItem, LoadedItem
from vlmkit.generation.model_setup import (
    ModelOptions,
    captioner_factory,
    check_model,
    make_hf_captioner,
    model_name,
    ray_engine,
)
from vlmkit.generation.runner import RunStats, run_captioning
from vlmkit.generation.sampling import GenerationSettings
from vlmkit.images import ImageProblem, max_image_pixels_option, set_max_image_pixels
from vlmkit.io import InputError, atomic_write_json, read_json
from vlmkit.multiview import ObjectFolder
from vlmkit.options import Options, opt
from vlmkit.outputs import OutputLock, check_output_dir
from vlmkit.ranges import Range
from vlmkit.vqa import results as res
from vlmkit.vqa.chunks import ChunkFiles, chunk_range, find_chunks, read_answers, validate_chunk_args, write_answers
from vlmkit.vqa.signature import differing_keys, model_identity, predictions_identity, run_signature
from vlmkit.vqa.stats import DEFAULT_RESAMPLES
from vlmkit.vqa.tasks import TASKS, Question, TaskData, check_images_exist, decode_base64_image, load_task

log = logging.getLogger(__name__)

VIEW = "image"
META_FORMAT = "vlmkit-vqa-chunk/1"
NOT_COMPARED = ("model.name",)  # a chunk resumed or merged under another --name is still the same run


@dataclass
class QuestionSet(Options):
    """Which benchmark file, its images and its prompts."""

    TITLE: ClassVar[str | None] = "question set"
    task: str | None = opt(None, "benchmark format (not needed with --merge)", choices=TASKS)
    annotations: str | None = opt(None, "textvqa: TextVQA_0.5.1_val.json")
    tsv: str | None = opt(None, "mmbench: the TSV with base64 images (e.g. mmbench_dev_en.tsv)")
    questions: str | None = opt(None, "vqa: JSONL of {question_id, image, question, answers}")
    image_dir: str | None = opt(None, "textvqa: the images (<image_id>.jpg, e.g. train_images/); vqa/mmbench: where "
                                      "relative image paths start (default: the question file's folder)")
    ocr: bool = opt(False, "textvqa: add LLaVA's 'Reference OCR token:' line")
    ocr_file: str | None = opt(None, "textvqa --ocr: TextVQA_Rosetta_OCR_v0.2_val.json")
    limit: int | None = opt(None, "only the first N questions (mmbench: N questions with all their rotations)")
    prompt_file: str | None = opt(None, "UTF-8 prompt template: textvqa {question} {ocr}; vqa {question}; mmbench "
                                        "{hint} {question} {options} (default: LLaVA's prompts, see docs/vqa.md)")
    max_image_pixels: int = max_image_pixels_option()

    def load(self) -> TaskData:
        if self.task is None:
            raise InputError("--task is required (textvqa, mmbench or vqa)")
        return load_task(self.task, annotations=self.annotations, tsv=self.tsv, questions=self.questions,
                         image_dir=self.image_dir, ocr=self.ocr, ocr_file=self.ocr_file, limit=self.limit,
                         prompt_file=self.prompt_file)


@dataclass
class VqaOutput(Options):
    TITLE: ClassVar[str | None] = "output"
    output_dir: str | None = opt(None, "results/<task>/<name>: chunks/, answers.jsonl, predictions_scored.jsonl, "
                                       "results.json", required=True)
    name: str | None = opt(None, "the model's name in results and comparisons (default: the adapter's or model's "
                                 "folder name; --score_only: the predictions file stem)")
    resume: bool = opt(False, "continue this chunk's answers (and refresh the results)")
    overwrite: bool = opt(False, "replace this chunk's answers / the results")
    no_progress: bool = opt(False, "no progress bar")
    verbose: bool = opt(False, flags=("-v",))

    def check(self) -> None:
        if not self.output_dir:
            raise InputError("--output_dir is required")
        if self.resume and self.overwrite:
            raise InputError("--resume and --overwrite exclude each other")


@dataclass
class VqaModel(ModelOptions):
    """The model group with eval_vqa.py's help and its short answers (32 new tokens)."""

    model_path: str | None = opt(None, "local model folder (weights are never downloaded); the BASE model with "
                                       "--adapter_path; not with --backend openai")
    decoding: GenerationSettings = opt(factory=lambda: GenerationSettings(max_new_tokens=32))


@dataclass
class Chunks(Options):
    """One process per GPU, the merge of their chunks, and scoring without a model."""

    TITLE: ClassVar[str | None] = "chunks (one process per GPU) and scoring"
    num_chunks: int = opt(1, "split the questions into K chunks")
    chunk_idx: int = opt(0, "which chunk this process answers (0-based)")
    merge: bool = opt(False, "no model: join the chunks of --output_dir and score them (--num_chunks picks a run if "
                             "several are there)")
    score_only: bool = opt(False, "no model: score --predictions")
    predictions: str | None = opt(None, "--score_only: JSONL of {question_id, answer} lines")
    allow_missing: bool = opt(False, "--score_only: questions without a prediction are listed (exit 1) instead of "
                                     "an error")
    dry_run: bool = opt(False, "check the question set, images, model, adapter and outputs, then stop (no model "
                               "loaded)")
    bootstrap: int = opt(DEFAULT_RESAMPLES, "bootstrap resamples for the 95% CI (0 = none)", range=Range(0))

    def check(self) -> None:
        validate_chunk_args(self.num_chunks, self.chunk_idx)


@dataclass
class VqaOptions(Options):
    """Everything eval_vqa.py is told."""

    data: QuestionSet = opt(factory=QuestionSet)
    output: VqaOutput = opt(factory=VqaOutput)
    model: VqaModel = opt(factory=VqaModel)
    hf: HFOptions = opt(factory=HFOptions)
    engine: EngineOptions = opt(factory=EngineOptions)
    chunks: Chunks = opt(factory=Chunks)
    executor: ExecutorOptions = opt(factory=ExecutorOptions)


def _check_results_writable(output_dir: Path, replace: bool) -> None:
    check_output_dir(output_dir)
    if (output_dir / res.RESULTS).exists() and not replace:
        raise InputError(f"{output_dir / res.RESULTS}: results already exist; pass --overwrite to replace them")


def run(options: VqaOptions) -> int:
    """eval_vqa.py: answer this chunk, `--merge` the chunks, or `--score_only` (see the module docstring)."""
    out, chunks = options.output, options.chunks
    setup_logging(out.verbose)
    set_max_image_pixels(options.data.max_image_pixels)
    output_dir = Path(out.output_dir or "")
    if chunks.merge:
        return merge(output_dir, num_chunks=chunks.num_chunks if chunks.num_chunks != 1 else None,
                     replace=out.overwrite or out.resume, bootstrap=chunks.bootstrap)
    if chunks.score_only:
        return score_only(options, output_dir)
    return answer_chunk(options, output_dir)


def score_only(options: VqaOptions, output_dir: Path) -> int:
    chunks, out = options.chunks, options.output
    if not chunks.predictions:
        raise InputError("--score_only needs --predictions answers.jsonl")
    data = options.data.load()
    predictions = read_answers(Path(chunks.predictions))
    known = data.by_id()
    # With --limit, a prediction for a question beyond the limit is expected; one for a question that is nowhere in
    # the file is not, so unknown ids are judged against the whole file.
    every = known if not options.data.limit else dataclasses.replace(options.data, limit=None).load().by_id()
    unknown = [p["question_id"] for qid, p in predictions.items() if qid not in every]
    if unknown:
        raise InputError(f"{chunks.predictions}: question {unknown[0]}: not in {data.source} ({len(unknown)} such "
                         f"predictions; the wrong file?)")
    beyond = sum(qid not in known for qid in predictions)
    if beyond:
        log.info("%d predictions are for questions beyond --limit %d: not scored", beyond, options.data.limit)
    missing = [q.qid for q in data.questions if q.qid not in predictions]
    if missing and not chunks.allow_missing:
        raise InputError(f"{chunks.predictions}: question {known[missing[0]].question_id}: no prediction "
                         f"({len(missing)} of {len(known)} missing; --allow_missing scores the rest and lists them)")
    _check_results_writable(output_dir, out.overwrite)
    name = out.name or Path(chunks.predictions).stem
    signature = run_signature(data, model={"name": name}, predictions=predictions_identity(Path(chunks.predictions)))
    answers = {qid: p["answer"] for qid, p in predictions.items() if qid in known}
    with OutputLock(output_dir / res.RESULTS, "results"):
        scored = res.score(data, answers, failures={}, missing=missing, name=name, signature=signature,
                           bootstrap=chunks.bootstrap)
        res.write_results(output_dir, scored)
    return 1 if missing else 0


def _item(q: Question, source: Path) -> CaptionItem:
    if q.image_b64 is None:
        return CaptionItem(ObjectFolder(q.qid, q.image_path, q.image_path.name, {VIEW: q.image_path}), (VIEW,),
                           require_all=True, payload=q)
    label = f"{source}: question {q.question_id}"

    def load_inline(item: CaptionItem) -> LoadedItem:
        try:
            return LoadedItem(item, [VIEW], [decode_base64_image(q.image_b64, label)], [source], [])
        except ImageProblem as problem:
            return LoadedItem(item, [], [], [], [str(problem)])

    return CaptionItem(ObjectFolder(q.qid, source, source.name, {}), (VIEW,), require_all=True, payload=q,
                       loader=load_inline)


def answer_chunk(options: VqaOptions, output_dir: Path) -> int:
    out, chunks, model = options.output, options.chunks, options.model
    data = options.data.load()
    start, stop = chunk_range(len(data.questions), chunks.num_chunks, chunks.chunk_idx)
    mine = data.questions[start:stop]
    check_images_exist(data)
    backend = options.engine.backend
    if not model.model_path and backend != "openai":
        raise InputError("--model_path is required to answer questions (or pass --merge / --score_only, or "
                         "--backend openai)")
    check_model(options)
    engine = ray_engine(options.executor)  # --executor ray: an actor pool answers this chunk (one model per actor)
    if options.hf.adapter_path:
        from vlmkit.vqa.adapter_check import check_adapter_matches_base

        check_adapter_matches_base(model.model_path, options.hf.adapter_path)
    single = chunks.num_chunks == 1
    if single:
        _check_results_writable(output_dir, out.overwrite or out.resume)
    check_output_dir(output_dir)
    files = ChunkFiles(output_dir, chunks.chunk_idx, chunks.num_chunks)
    if chunks.dry_run:
        _refuse_clobbering(files, out.resume, out.overwrite)
        log.info("dry run: %d questions, chunk %d of %d = questions %d..%d; inputs and outputs are fine",
                 len(data.questions), chunks.chunk_idx, chunks.num_chunks, start, stop - 1)
        return 0
    name = out.name or model_name(options)
    if backend == "openai":
        identity = {"name": name, **api_identity(options.engine)}
    else:
        identity = model_identity(name, model.model_path, options.hf.adapter_path)
        if backend != "hf":
            identity["backend"] = backend  # hf runs keep the signature earlier versions wrote (resume stays valid)
    signature = run_signature(data, model=identity, decoding=model.decoding.to_json())
    with OutputLock(files.answers, "answer chunk"):
        done = _open_chunk(files, signature, {q.qid for q in mine}, resume=out.resume, overwrite=out.overwrite)
        files.report.unlink(missing_ok=True)  # a report present means: this run of the chunk finished
        write_answers(files.answers, [done[q.qid] for q in mine if q.qid in done])
        atomic_write_json(files.meta, {"format": META_FORMAT, "signature": signature, "load": data.options,
                                       "chunk": {"index": chunks.chunk_idx, "num_chunks": chunks.num_chunks,
                                                 "start": start, "stop": stop}})
        pending = [_item(q, data.source) for q in mine if q.qid not in done]
        stats = RunStats(total=len(mine), already_done=len(mine) - len(pending))
        log.info("chunk %d of %d: questions %d..%d of %d, %d already answered, %d to do -> %s", chunks.chunk_idx,
                 chunks.num_chunks, start, stop - 1, len(data.questions), stats.already_done, len(pending),
                 files.answers)

        def on_batch(successes: list) -> None:
            for s in successes:
                done[s.item.id] = {"question_id": s.item.payload.question_id, "answer": s.caption}
            if successes:
                write_answers(files.answers, [done[q.qid] for q in mine if q.qid in done])

        factory = captioner_factory(options, lambda: make_hf_captioner(options, what="the model"), max_views=1)
        status = run_captioning(pending, make_captioner=factory,
                                prompt_for=lambda item, views: item.payload.prompt, on_batch=on_batch, stats=stats,
                                report_path=files.report, output=files.answers,
                                settings={"signature": signature, "batch_size": model.batch_size},
                                batch_size=options.engine.chunk(model.batch_size), progress=not out.no_progress,
                                desc="answering", allow_empty=True, engine=engine)
    if single:
        return max(status, merge(output_dir, num_chunks=1, replace=True, bootstrap=chunks.bootstrap))
    log.info("chunk %d of %d done; when every chunk is, run: python eval_vqa.py --merge --output_dir %s",
             chunks.chunk_idx, chunks.num_chunks, output_dir)
    return status


def _refuse_clobbering(files: ChunkFiles, resume: bool, overwrite: bool) -> None:
    if files.answers.exists() and not (resume or overwrite):
        raise InputError(f"{files.answers}: chunk already exists; pass --resume to continue it or --overwrite to "
                         f"replace it")


def _open_chunk(files: ChunkFiles, signature: dict[str, Any], mine: set[str], *, resume: bool,
                overwrite: bool) -> dict[str, dict[str, Any]]:
    """The answers already in this chunk's file (resume), after checking they belong to this very run."""
    if not files.answers.exists():
        return {}
    _refuse_clobbering(files, resume, overwrite)
    if overwrite:
        log.warning("%s exists and will be replaced (--overwrite)", files.answers)
        return {}
    if files.meta.is_file():
        before = read_json(files.meta).get("signature", {})
        changed = differing_keys(before, signature, ignore=NOT_COMPARED)
        if changed:
            raise InputError(f"{files.answers}: made by a different run ({', '.join(changed)} differ); --resume "
                             f"continues only the same run, --overwrite replaces it")
    done = read_answers(files.answers)
    stray = sorted(set(done) - mine)
    if stray:
        raise InputError(f"{files.answers}: question {stray[0]} does not belong to this chunk; --overwrite replaces it")
    log.info("resuming %s: %d answers already there", files.answers, len(done))
    return done


def merge(output_dir: Path, *, num_chunks: int | None, replace: bool, bootstrap: int) -> int:
    """Join the chunks of one run, check that they cover every question exactly once, score, write results."""
    _check_results_writable(output_dir, replace)
    num_chunks, chunks = find_chunks(output_dir, num_chunks)
    metas = {}
    for i, files in chunks.items():
        if not files.meta.is_file():
            raise InputError(f"{files.answers}: no {files.meta.name} (not written by eval_vqa.py?)")
        metas[i] = read_json(files.meta)
    signature = metas[0]["signature"]
    for i, meta in metas.items():
        changed = differing_keys(signature, meta.get("signature", {}), ignore=NOT_COMPARED)
        if changed:
            raise InputError(f"{chunks[i].answers}: from a different run than chunk 0 ({', '.join(changed)} differ)")
    data = load_task(**metas[0]["load"])
    if data.sha256 != signature["dataset"]["sha256"]:
        raise InputError(f"{data.source}: changed since the chunks were answered (sha256 differs); rerun them")
    answers: dict[str, str] = {}
    failures: dict[str, str] = {}
    served: set[str] = set()  # model ids an API server reported answering (--backend openai)
    with ExitStack() as stack:
        for files in chunks.values():  # a chunk still being written cannot be merged
            stack.enter_context(OutputLock(files.answers, "answer chunk"))
        stack.enter_context(OutputLock(output_dir / res.RESULTS, "results"))
        for i, files in chunks.items():
            start, stop = chunk_range(len(data.questions), num_chunks, i)
            assigned = {q.qid for q in data.questions[start:stop]}
            report = read_json(files.report) if files.report.is_file() else None
            if report is None or not str(report.get("status", "")).startswith("complete"):
                state = "no report: still running or killed" if report is None else report.get("status")
                raise InputError(f"{files.answers}: chunk {i} of {num_chunks} did not finish ({state}); rerun it "
                                 f"with --resume")
            got = read_answers(files.answers)
            stray = [qid for qid in got if qid not in assigned]  # chunks are disjoint: this also catches duplicates
            if stray:
                raise InputError(f"{files.answers}: question {stray[0]} does not belong to chunk {i} of {num_chunks} "
                                 f"({len(stray)} such; files of two runs mixed?)")
            answers.update((qid, row["answer"]) for qid, row in got.items())
            served.update((report.get("settings", {}).get("backend") or {}).get("served_model_ids") or [])
            for failure in report.get("failures", []):
                if failure["id"] not in got:
                    failures[failure["id"]] = failure["reason"]
            lost = [qid for qid in sorted(assigned) if qid not in got and qid not in failures]
            if lost:
                raise InputError(f"{files.answers}: {len(lost)} questions of chunk {i} neither answered nor failed "
                                 f"(e.g. {lost[0]}); rerun it with --resume")
        scored = res.score(data, answers, failures=failures, name=signature["model"]["name"], signature=signature,
                           bootstrap=bootstrap)
        lines = [{"question_id": q.question_id, "answer": answers[q.qid]} for q in data.questions if q.qid in answers]
        scored.results["chunks"] = num_chunks
        if served:
            scored.results["signature"]["model"]["served_model_ids"] = sorted(served)
        res.write_results(output_dir, scored, lines)
    if failures:
        log.error("%d questions failed (listed in %s); rerun the chunks with --resume to retry them", len(failures),
                  output_dir / res.RESULTS)
        return 1
    return 0
