"""The captioning loop shared by every entry point: batches, progress bar, failures with reasons, the report.

A missing or unreadable view is skipped with a warning; an item with no usable image, a model error or an empty
answer is a recorded failure (id, path, reason) and the run goes on. Nothing is dropped silently: every item ends up
either captioned, failed (listed in the report) or already done (resume). If a whole batch raises (e.g. CUDA out of
memory), its items are retried one at a time so one bad item does not fail its neighbours.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from tqdm.auto import tqdm

from vlmkit.generation.items import CaptionItem, LoadedItem, load_item
from vlmkit.io import InputError, atomic_write_json

log = logging.getLogger(__name__)


@dataclass
class CaptionRequest:
    """One prompt for the model: the images (PIL, in order), their files, their view labels, the prompt text."""

    prompt: str
    images: list
    paths: list[Path]
    views: list[str]


class Captioner(Protocol):
    """A backend: captions a batch of requests, returning one string per request, in order.

    An entry may instead be an Exception: that request failed on its own (e.g. an API request that failed for good)
    and its item is a listed failure, while the others stand. A returned string with a `finish_reason` attribute of
    "length" was cut off at the token limit: it is kept, and counted and listed in the report. A backend may have a
    `close()` (the runner calls it when the run ends, also on interruption). A backend may also split `caption`
    into `prepare(requests) -> inputs` (CPU work: resizing, tokenising) and `generate(inputs) -> captions`;
    the runner then prepares the next batch while the current one generates.
    """

    def caption(self, requests: list[CaptionRequest]) -> list[str]: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class Success:
    item: CaptionItem
    caption: str
    views: list[str]
    prompt: str


@dataclass
class RunStats:
    """Counts and reasons for one run; `seconds` is the time spent loading images and generating."""

    total: int = 0
    already_done: int = 0
    attempted: int = 0
    captioned: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    truncated: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def fail(self, item: CaptionItem, reason: str) -> None:
        log.warning("failed %s: %s", item.id, reason)
        self.failures.append({"id": item.id, "path": str(item.obj.path), "reason": reason})


class GenerationAborted(InputError):
    """The model failed on every one of the first items: a setup problem, not bad items."""


# After this many generation errors in a row at the start of a run (and no success), stop instead of failing every
# item one by one: a wrong model folder or backend is not a per-item problem.
ABORT_AFTER_FAILURES = 8


PromptFor = Callable[[CaptionItem, list[str]], str]


def _chunks(seq: list, size: int) -> list[list]:
    return [seq[start:start + size] for start in range(0, len(seq), size)]


def _generate(captioner: Captioner, requests: list[CaptionRequest], prepared: Any = None,
              prepare_error: Exception | None = None) -> list[str | Exception]:
    """Captions for a batch; if the batch raises, retry each request alone and keep per-request errors."""
    try:
        if prepare_error is not None:
            raise prepare_error
        texts = captioner.generate(prepared) if prepared is not None else captioner.caption(requests)
        if len(texts) != len(requests):
            raise RuntimeError(f"backend returned {len(texts)} captions for {len(requests)} requests")
        return list(texts)
    except Exception as exc:  # noqa: BLE001 - any backend error becomes a per-item reason below
        if len(requests) == 1:
            return [exc]
        log.warning("batch of %d failed (%s: %s); retrying one at a time", len(requests), type(exc).__name__, exc)
    out: list[str | Exception] = []
    for request in requests:
        try:
            out.append(captioner.caption([request])[0])
        except Exception as exc:  # noqa: BLE001
            out.append(exc)
    return out


@dataclass
class _ReadyBatch:
    """A batch with its images loaded and, for backends that can, its model inputs already built."""

    size: int
    failures: list[tuple[CaptionItem, str]]
    warnings: list[tuple[CaptionItem, str]]
    loaded: list[LoadedItem]
    requests: list[CaptionRequest]
    prepared: Any = None
    prepare_error: Exception | None = None


# Threads that open a batch's images: PIL decodes without the GIL, so large chunks (the API and vLLM backends hand
# dozens to hundreds of six-view objects) load in parallel instead of starving the requests waiting for them.
LOAD_THREADS = 4


def _load_batch(batch: list[CaptionItem], captioner: Captioner, prompt_for: PromptFor) -> _ReadyBatch:
    ready = _ReadyBatch(len(batch), [], [], [], [])
    if len(batch) > 1:
        with ThreadPoolExecutor(max_workers=min(LOAD_THREADS, len(batch)), thread_name_prefix="load") as loaders:
            loaded = list(loaders.map(load_item, batch))
    else:
        loaded = [load_item(item) for item in batch]
    for item, got in zip(batch, loaded, strict=True):
        if not got.images or (got.problems and item.require_all):
            prefix = "no usable image: " if not got.images else "missing or unreadable image: "
            ready.failures.append((item, prefix + "; ".join(got.problems or ["no views requested"])))
            continue
        ready.warnings.extend((item, problem) for problem in got.problems)
        ready.loaded.append(got)
    ready.requests = [CaptionRequest(prompt_for(g.item, g.views), g.images, g.paths, g.views) for g in ready.loaded]
    prepare = getattr(captioner, "prepare", None)
    if ready.requests and prepare is not None:
        try:
            ready.prepared = prepare(ready.requests)
        except Exception as exc:  # noqa: BLE001 - reported per item by _generate's one-at-a-time retry
            ready.prepare_error = exc
    return ready


def caption_items(
    items: list[CaptionItem],
    captioner: Captioner,
    *,
    prompt_for: PromptFor,
    batch_size: int,
    on_batch: Callable[[list[Success]], None],
    stats: RunStats | None = None,
    progress: bool = True,
    desc: str = "captioning",
    allow_empty: bool = False,
) -> RunStats:
    """Caption `items` in batches, calling `on_batch` with the new successes after every batch.

    While the model generates batch k, a worker thread loads the images of batch k+1 and, if the backend has a
    `prepare` step (tokenising, resizing, normalising), builds its inputs: CPU preprocessing overlaps generation
    instead of adding to it. `stats` (if given) is updated in place, so a caller can report after an interruption.
    An empty answer is a failure unless `allow_empty` (a benchmark scores it as a wrong answer instead).
    """
    stats = stats or RunStats()  # batch_size >= 1: declared (and checked) once, in ModelOptions
    failed_from_start = 0  # generation errors before the first success
    succeeded = False
    started = time.perf_counter()
    batches = _chunks(items, batch_size)
    bar = tqdm(total=len(items), desc=desc, unit="obj", disable=not progress or not items, dynamic_ncols=True)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")
    try:
        upcoming = pool.submit(_load_batch, batches[0], captioner, prompt_for) if batches else None
        for index in range(len(batches)):
            ready = upcoming.result()
            if index + 1 < len(batches):
                upcoming = pool.submit(_load_batch, batches[index + 1], captioner, prompt_for)
            for item, reason in ready.failures:
                stats.fail(item, reason)
            for item, problem in ready.warnings:
                log.warning("%s: skipping view (%s)", item.id, problem)
                stats.warnings.append({"id": item.id, "problem": problem})
            stats.attempted += ready.size
            successes: list[Success] = []
            if ready.requests:
                results = _generate(captioner, ready.requests, ready.prepared, ready.prepare_error)
                for got, request, result in zip(ready.loaded, ready.requests, results, strict=True):
                    if isinstance(result, Exception):
                        stats.fail(got.item, f"generation failed: {type(result).__name__}: {result}")
                    elif not result.strip() and not allow_empty:
                        stats.fail(got.item, "the model returned an empty caption")
                    else:
                        if getattr(result, "finish_reason", None) == "length":
                            stats.truncated.append({"id": got.item.id, "path": str(got.item.obj.path),
                                                    "reason": "cut off at the token limit (finish_reason: length)"})
                        successes.append(Success(got.item, result.strip(), got.views, request.prompt))
                errors = [r for r in results if isinstance(r, Exception)]
                succeeded = succeeded or len(errors) < len(results)
                failed_from_start += 0 if succeeded else len(errors)
                if not succeeded and failed_from_start >= ABORT_AFTER_FAILURES:
                    raise GenerationAborted(f"generation failed for each of the first {failed_from_start} items "
                                            f"({type(errors[0]).__name__}: {errors[0]}); check the model and backend")
            stats.captioned += len(successes)
            on_batch(successes)
            stats.seconds = time.perf_counter() - started
            bar.update(ready.size)
            bar.set_postfix(failed=len(stats.failures))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        stats.seconds = time.perf_counter() - started
        bar.close()
    return stats


def run_captioning(pending: list[CaptionItem], *, make_captioner: Callable[[], Captioner],
                   prompt_for: Callable[[CaptionItem, list[str]], str], on_batch: Callable[[list[Success]], None],
                   stats: RunStats, report_path: Path, output: Path, settings: dict[str, Any], batch_size: int,
                   progress: bool = True, desc: str = "captioning",
                   on_loaded: Callable[[Captioner], None] | None = None, allow_empty: bool = False,
                   engine: Callable[..., dict[str, Any] | None] | None = None) -> int:
    """The caption-run skeleton every captioning CLI shares (qwen.py, internvl.py, caption.py, dataprocess.augment).

    Loads the model only when there is work (and times it), captions `pending` in batches, and writes the report in
    `finally`, so an interrupted, aborted or crashed run still leaves one that says so; only a model that cannot load
    (an `InputError` from `make_captioner`: bad input, nothing attempted) leaves an earlier report as it was.
    Returns the exit status: 0 when every item has a caption, 1 when some failed (listed in the report).
    `InputError` propagates (exit 2 via `run_main`), as does KeyboardInterrupt (130).
    `engine` (e.g. `ray_executor.caption_on_ray`) replaces the in-process loop: it builds the captioner where it
    runs and returns the backend's description.
    """
    started_at, load_seconds, status = now_iso(), None, "interrupted"
    write_report = True
    captioner = None
    try:
        if pending and engine is not None:
            settings["backend"] = engine(pending, make_captioner=make_captioner, prompt_for=prompt_for,
                                         batch_size=batch_size, on_batch=on_batch, stats=stats, progress=progress,
                                         desc=desc, allow_empty=allow_empty, on_loaded=on_loaded)
        elif pending:
            t0 = time.perf_counter()
            try:
                captioner = make_captioner()
            except InputError:
                write_report = False  # a model folder that cannot load is bad input: nothing written or changed
                raise
            load_seconds = time.perf_counter() - t0
            settings["backend"] = captioner.describe()
            if on_loaded is not None:
                on_loaded(captioner)
            caption_items(pending, captioner, prompt_for=prompt_for, batch_size=batch_size, on_batch=on_batch,
                          stats=stats, progress=progress, desc=desc, allow_empty=allow_empty)
        status = "complete" if not stats.failures else "complete_with_failures"
    except InputError as exc:
        status = f"aborted: {exc}"
        raise
    except Exception as exc:
        status = f"crashed: {type(exc).__name__}: {exc}"
        raise
    finally:
        if captioner is not None:
            settings["backend"] = captioner.describe()  # again: what a server reported during the run (model ids)
            close = getattr(captioner, "close", None)
            if close is not None:
                close()
        if write_report:
            atomic_write_json(report_path, build_report(stats, status=status, output=output, settings=settings,
                                                        started_at=started_at, model_load_seconds=load_seconds))
    log.info("%s: %d captioned now, %d already done, %d failed; report %s",
             output, stats.captioned, stats.already_done, len(stats.failures), report_path)
    if stats.truncated:
        log.warning("%d captions were cut off at the token limit (listed under truncated in %s)",
                    len(stats.truncated), report_path)
    if stats.failures:
        log.error("%d items failed (reasons in %s); rerun with --resume to retry them", len(stats.failures),
                  report_path)
        return 1
    return 0


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def build_report(stats: RunStats, *, status: str, output: str | Path, settings: dict[str, Any],
                 started_at: str, model_load_seconds: float | None = None) -> dict[str, Any]:
    """The run report: totals, failures with reasons, skipped views, timing and the settings used."""
    seconds = round(stats.seconds, 3)
    return {
        "status": status,
        "output": str(output),
        "totals": {
            "items": stats.total,
            "already_done": stats.already_done,
            "attempted": stats.attempted,
            "captioned": stats.captioned,
            "failed": len(stats.failures),
            "skipped_views": len(stats.warnings),
        },
        "failures": stats.failures,
        "skipped_views": stats.warnings,
        "truncated": {"count": len(stats.truncated), "items": stats.truncated},
        "seconds": seconds,
        "model_load_seconds": None if model_load_seconds is None else round(model_load_seconds, 3),
        "seconds_per_item": round(stats.seconds / stats.attempted, 4) if stats.attempted else None,
        "items_per_second": round(stats.attempted / stats.seconds, 4) if stats.attempted and stats.seconds else None,
        "started": started_at,
        "finished": now_iso(),
        "settings": settings,
    }
