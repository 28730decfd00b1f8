"""Captioning on a Ray actor pool (`--executor ray`): each actor loads the model once and captions whole batches.

The driver cuts the pending items into the batches the local run would make (`--batch_size`, in item order), sends
them through Ray Data (`map_batches` with a callable class, `--num_workers` actors, `--gpus_per_worker` GPUs each)
and takes the results back in batch order: successes go through the same `on_batch` (the caption file is rewritten
after every batch, so a killed driver resumes with `--resume`), failures are the same listed failures. An actor runs
the shared loop (`runner.caption_items`) on its batch, so per-item errors, skipped views, one-at-a-time retries of a
failing batch and empty answers behave exactly as in a local run. A batch whose actor dies is retried on another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vlmkit.executor import ExecutorOptions, map_actors, ray_node_id
from vlmkit.generation.runner import ABORT_AFTER_FAILURES, GenerationAborted, RunStats, Success, caption_items


class _Described:
    """What `on_loaded` sees of a captioner that lives in an actor: its description."""

    def __init__(self, description: dict[str, Any]):
        self.description = description

    def describe(self) -> dict[str, Any]:
        return self.description


class _BatchCaptioner:
    """One actor's worker: the model, loaded once; captions one batch of items per call."""

    def __init__(self, make_captioner: Callable[[], Any], prompt_for: Callable, allow_empty: bool):
        self.captioner = make_captioner()
        self.prompt_for, self.allow_empty = prompt_for, allow_empty

    def __call__(self, batch: list) -> dict[str, Any]:
        stats = RunStats(total=len(batch))
        done: list[Success] = []
        try:
            caption_items(batch, self.captioner, prompt_for=self.prompt_for, batch_size=len(batch),
                          on_batch=done.extend, stats=stats, progress=False, allow_empty=self.allow_empty)
        except GenerationAborted as exc:
            return {"aborted": str(exc)}
        ids = [item.id for item in batch]
        return {"successes": [(ids.index(s.item.id), s.caption, s.views, s.prompt) for s in done],
                "failures": stats.failures, "warnings": stats.warnings, "backend": self.captioner.describe(),
                "node": ray_node_id()}


def caption_on_ray(pending: list, opts: ExecutorOptions, *, make_captioner: Callable[[], Any], prompt_for: Callable,
                   batch_size: int, on_batch: Callable[[list[Success]], None], stats: RunStats, progress: bool = True,
                   desc: str = "captioning", allow_empty: bool = False,
                   on_loaded: Callable[[Any], None] | None = None) -> dict[str, Any] | None:
    """Caption `pending` on the actor pool; updates `stats` and calls `on_batch` as batches come back, in order.
    Returns the backend's description (from an actor) for the report."""
    import time

    from tqdm.auto import tqdm

    batches = [pending[k:k + batch_size] for k in range(0, len(pending), batch_size)]
    backend: dict[str, Any] = {}
    nodes: set[str] = set()
    started = time.perf_counter()
    failed_from_start, succeeded = 0, False
    bar = tqdm(total=len(pending), desc=desc, unit="obj", disable=not progress or not pending, dynamic_ncols=True)
    position = iter(range(len(batches)))

    def on_result(got: dict[str, Any]) -> None:
        nonlocal failed_from_start, succeeded
        batch = batches[next(position)]
        if "aborted" in got:
            raise GenerationAborted(got["aborted"])
        if not backend and on_loaded is not None:
            on_loaded(_Described(got["backend"]))  # the caller reads the backend's description, as from a local one
        backend.update(got["backend"])
        if got.get("node"):
            nodes.add(got["node"])
        stats.attempted += len(batch)
        stats.failures.extend(got["failures"])
        stats.warnings.extend(got["warnings"])
        successes = [Success(batch[k], caption, views, prompt) for k, caption, views, prompt in got["successes"]]
        stats.captioned += len(successes)
        succeeded = succeeded or bool(successes)
        failed_from_start += 0 if succeeded else len(got["failures"])
        on_batch(successes)
        stats.seconds = time.perf_counter() - started
        bar.update(len(batch))
        if not succeeded and failed_from_start >= ABORT_AFTER_FAILURES:
            raise GenerationAborted(f"generation failed for each of the first {failed_from_start} items "
                                    f"({got['failures'][0]['reason']}); check the model and backend")

    try:
        map_actors(lambda: _BatchCaptioner(make_captioner, prompt_for, allow_empty), batches, opts,
                   on_result=on_result)
    finally:
        stats.seconds = time.perf_counter() - started
        bar.close()
    return {**backend, "executor": "ray", "ray_nodes": sorted(nodes), "num_workers": opts.num_workers or 1,
            "gpus_per_worker": opts.gpus_per_worker}
