"""Where chunked work runs: in this process, in a local process pool, or on a Ray cluster (`--executor ray`).

Work is a list of small, picklable work references (a chunk of a data set, an object to render, a batch of items
to caption) and a function of one reference that returns a small JSON-able result; the results come back in the
references' order, whatever the executor. Ray is imported only when asked for, and runs offline: no usage
statistics, no dashboard, its temp folder under the output (or `--ray_tmpdir`).

With Ray, references flow through Ray Data (`ray.data.from_items(...).map_batches(...)`): a function becomes tasks,
retried when their worker process dies (`max_retries`); a callable class (`actor_class`) becomes an actor pool of
`--num_workers` actors, each built once (a model loaded once per actor), with `--gpus_per_worker` GPUs each
(fractions share a GPU). Every function here must be idempotent per reference (it may run twice when a worker
is killed after finishing), which the callers guarantee by writing each reference's result file atomically.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from vlmkit.io import InputError
from vlmkit.options import Options, opt
from vlmkit.ranges import Range

log = logging.getLogger(__name__)
EXECUTORS = ("local", "ray")
REPO_ROOT = Path(__file__).resolve().parent.parent
# Ray puts unix sockets under its temp folder; their paths must stay under 107 bytes (sun_path), and the session
# folder adds about 60 characters.
MAX_RAY_TMPDIR = 45


@dataclass
class ExecutorOptions(Options):
    """`--executor` and the Ray settings, one declaration for every command that offers them (nest it in the
    command's options; a command without model stages excludes `gpus_per_worker`, render.py its own num_workers)."""

    TITLE: ClassVar[str | None] = "executor (one machine or a Ray cluster)"
    executor: str = opt("local", "local: this machine's processes; ray: Ray Data tasks / actors (local Ray, or a "
                                 "cluster with --ray_address)", choices=EXECUTORS)
    ray_address: str | None = opt(None, "Ray cluster to join: auto (the one `ray start` made on this machine) or "
                                        "HOST:PORT; default: start a private local Ray for this run")
    num_workers: int | None = opt(None, "Ray tasks / actors running at once (default: the cluster's CPUs, 1 actor "
                                        "per GPU)", range=Range(1, optional=True))
    gpus_per_worker: float = opt(0.0, "GPUs per Ray actor; fractions share a GPU (0.5: two actors per GPU)",
                                 range=Range(0))
    ray_tmpdir: str | None = opt(None, "Ray's temp folder for a local Ray (default: a short folder under /tmp, as "
                                       "Ray's socket paths must stay under 107 characters)")

    @property
    def is_ray(self) -> bool:
        return self.executor == "ray"

    def check(self) -> None:
        if not self.is_ray and (self.ray_address or self.gpus_per_worker or self.ray_tmpdir):
            raise InputError("--ray_address / --gpus_per_worker / --ray_tmpdir need --executor ray")
        if self.ray_tmpdir and len(str(Path(self.ray_tmpdir).absolute())) > MAX_RAY_TMPDIR:
            raise InputError(f"--ray_tmpdir {self.ray_tmpdir}: longer than {MAX_RAY_TMPDIR} characters; Ray's "
                             f"socket paths under it would exceed the 107-character limit")


@contextmanager
def ray_session(opts: ExecutorOptions) -> Iterator[Any]:
    """`ray` connected to the cluster `opts` names, or a private local one (shut down afterwards). An already
    initialised Ray (a test's shared instance, a notebook) is used as it is and left running."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray: pip install 'ray[data]'") from None
    if ray.is_initialized():
        yield ray
        return
    env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
                        "RAY_USAGE_STATS_ENABLED": "0"}}
    kwargs: dict[str, Any] = {"include_dashboard": False, "runtime_env": env, "log_to_driver": False,
                              "configure_logging": False}
    tmp = None
    if opts.ray_address:
        kwargs["address"] = opts.ray_address
    else:
        if opts.ray_tmpdir:
            Path(opts.ray_tmpdir).mkdir(parents=True, exist_ok=True)
            kwargs["_temp_dir"] = str(Path(opts.ray_tmpdir).absolute())
        else:
            tmp = tempfile.mkdtemp(prefix="vray", dir="/tmp")
            kwargs["_temp_dir"] = tmp
        kwargs["num_cpus"] = opts.num_workers or os.cpu_count() or 1
        if opts.gpus_per_worker == 0:
            kwargs["num_gpus"] = 0
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:
        raise InputError(f"--ray_address {opts.ray_address}: cannot join the Ray cluster ({exc})") from None
    try:
        yield ray
    finally:
        ray.shutdown()
        if tmp is not None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


def _preserve_order() -> None:
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.execution_options.preserve_order = True
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def map_refs(fn: Callable[[Any], Any], refs: list[Any], opts: ExecutorOptions, *, np: int = 1,
             on_result: Callable[[Any], None] | None = None, initializer: Callable[[], None] | None = None) -> list:
    """`[fn(r) for r in refs]` on the chosen executor; `on_result` sees each result as it arrives (progress).
    `initializer` runs once in each local worker process and before every Ray call (cheap settings only)."""
    results: list[Any] = []
    if not refs:
        return results
    if opts.is_ray:
        with ray_session(opts):
            return _map_ray(fn, refs, opts, on_result, initializer)
    np = max(1, min(np, len(refs)))
    if np == 1:
        if initializer is not None:
            initializer()
        for ref in refs:
            results.append(fn(ref))
            if on_result is not None:
                on_result(results[-1])
        return results
    with multiprocessing.get_context().Pool(np, initializer=initializer) as pool:
        for got in pool.imap(fn, refs):  # refs are small: the pool may queue them all
            results.append(got)
            if on_result is not None:
                on_result(got)
    return results


class _Apply:
    """A Ray Data batch function: run `fn` on each reference of a batch (one reference per batch here)."""

    def __init__(self, fn: Callable[[Any], Any], initializer: Callable[[], None] | None):
        self.fn, self.initializer = fn, initializer

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import pickle

        if self.initializer is not None:
            self.initializer()
        out = [pickle.dumps(self.fn(pickle.loads(r))) for r in batch["ref"]]
        return {"pos": list(batch["pos"]), "result": out}


def _compute(opts: ExecutorOptions, actors: bool):
    from ray.data import ActorPoolStrategy, TaskPoolStrategy

    if actors:
        # one batch in flight per actor: a batch is a lot of work (a model call), so none waits behind a busy actor
        return ActorPoolStrategy(size=opts.num_workers or 1, max_tasks_in_flight_per_actor=1)
    return TaskPoolStrategy(size=opts.num_workers) if opts.num_workers else None


def _iter_ray(ds, refs: list, on_result) -> list:
    import pickle

    results: list[Any] = [None] * len(refs)
    for row in ds.iter_rows():
        got = pickle.loads(row["result"])
        results[int(row["pos"])] = got
        if on_result is not None:
            on_result(got)
    return results


def _dataset(refs: list):
    import pickle

    import ray

    _preserve_order()
    rows = [{"pos": k, "ref": pickle.dumps(r)} for k, r in enumerate(refs)]
    return ray.data.from_items(rows, override_num_blocks=len(rows))


def _map_ray(fn, refs, opts: ExecutorOptions, on_result, initializer) -> list:
    # A function becomes Ray tasks; Ray Data retries a task whose worker died (a system failure) by default.
    apply = _Apply(fn, initializer)
    ds = _dataset(refs).map_batches(lambda b: apply(b), batch_size=1, batch_format="numpy", num_cpus=1,
                                    compute=_compute(opts, actors=False))
    return _iter_ray(ds, refs, on_result)


class _ActorApply:
    """A Ray Data callable class: `factory()` builds the per-actor worker once (loads a model), then each batch's
    references go through it."""

    def __init__(self, factory: Callable[[], Callable[[Any], Any]]):
        self.worker = factory()

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import pickle

        return {"pos": list(batch["pos"]), "result": [pickle.dumps(self.worker(pickle.loads(r)))
                                                       for r in batch["ref"]]}


def map_actors(factory: Callable[[], Callable[[Any], Any]], refs: list[Any], opts: ExecutorOptions, *,
               on_result: Callable[[Any], None] | None = None, num_cpus: float = 1) -> list:
    """`[worker(r) for r in refs]` over an actor pool of `opts.num_workers` actors, each holding one
    `worker = factory()` and `opts.gpus_per_worker` GPUs; results in the references' order. Outside Ray, one
    worker is built here and runs every reference."""
    if not refs:
        return []
    if not opts.is_ray:
        worker = factory()
        out = []
        for ref in refs:
            out.append(worker(ref))
            if on_result is not None:
                on_result(out[-1])
        return out
    with ray_session(opts):
        ds = _dataset(refs).map_batches(_ActorApply, fn_constructor_args=(factory,), batch_size=1,
                                        batch_format="numpy", num_cpus=num_cpus,
                                        num_gpus=opts.gpus_per_worker or None, compute=_compute(opts, actors=True))
        return _iter_ray(ds, refs, on_result)


def ray_node_id() -> str | None:
    """The Ray node this code runs on (None outside Ray): results carry it so runs can show where work ran."""
    if "ray" not in sys.modules:
        return None
    import ray

    try:
        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - outside a worker the context may be unavailable
        return None


class _PoolActor:
    """One actor of an `ActorPool`: its worker, built once."""

    def __init__(self, factory: Callable[[], Callable[[Any], Any]]):
        self.worker = factory()

    def run(self, ref: Any) -> Any:
        return self.worker(ref)


class ActorPool:
    """`opts.num_workers` Ray actors, each holding one `worker = factory()`, kept for many `map` calls: for a stage
    that is called again and again in one run (compare's embeddings, once per model and text set), the model loads
    once per actor for the whole run, where `map_actors` builds a fresh pool per call. A killed actor is restarted
    and its call retried (`max_restarts` / `max_task_retries`), so a lost process loses no result. Needs an
    initialised Ray (`ray_session`); `close()` ends the actors."""

    def __init__(self, factory: Callable[[], Callable[[Any], Any]], opts: ExecutorOptions, *, num_cpus: float = 1):
        import ray

        remote = ray.remote(_PoolActor).options(num_cpus=num_cpus, num_gpus=opts.gpus_per_worker or None,
                                                max_restarts=-1, max_task_retries=-1)
        self.actors = [remote.remote(factory) for _ in range(opts.num_workers or 1)]

    def map(self, refs: list[Any]) -> list[Any]:
        """`[worker(r) for r in refs]` over the actors, in the references' order."""
        from ray.util import ActorPool as RayActorPool

        return list(RayActorPool(self.actors).map(lambda actor, ref: actor.run.remote(ref), refs))

    def close(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
