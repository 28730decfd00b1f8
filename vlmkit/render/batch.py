"""render.py's batch: find the models, check the output, render each model's views, publish them, report.

Every model becomes `<output_dir>/<file name>_shaded/<view>.jpg` (VaseVQA-3D's folder name, so the id rule gives
`<UUID>_<n>`). An object's views are rendered into a hidden staging folder and renamed into place in one step, so a
reader (or a killed run) never sees a half-written object folder; hidden leftovers of a killed run are removed by the
next run, which holds `<output_dir>.lock` while it writes. `render_report.json` is rewritten (atomically) after every
model; `views.json` records the camera convention.

Exit status: 0 every model rendered (or already there with --resume), 1 some models failed (listed with reasons in the
report; --resume retries exactly those), 2 bad input or settings, checked before any rendering, 130 interrupted.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vlmkit.io import InputError, atomic_write_json, read_json
from vlmkit.outputs import OutputLock, check_output_dir
from vlmkit.render.mesh import MESH_EXTENSIONS, MeshProblem, load_asset
from vlmkit.render.views import CameraSettings, axis_rotation

log = logging.getLogger(__name__)

REPORT_NAME = "render_report.json"
VIEWS_NAME = "views.json"
FOLDER_SUFFIX = "_shaded"
_STAGING = ".render-staging-"
_RETIRED = ".render-retired-"


@dataclass(frozen=True)
class RenderOptions:
    """What a worker needs to render and write one model (picklable: sent to worker processes)."""

    camera: CameraSettings
    views: tuple[str, ...]
    quality: int = 90
    smooth: bool = True
    platform: str = "osmesa"
    max_image_pixels: int | None = None


def discover_models(source: str | os.PathLike) -> list[Path]:
    """One model file, or every model file under a folder (recursively, sorted); none found is an input error."""
    path = Path(source)
    if path.is_file():
        if path.suffix.lower() not in MESH_EXTENSIONS:
            raise InputError(f"{path}: not a model file (expected {', '.join(MESH_EXTENSIONS)})")
        return [path]
    if not path.is_dir():
        raise InputError(f"{path}: --input not found")
    models = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in MESH_EXTENSIONS
                    and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not models:
        raise InputError(f"{path}: no model files ({', '.join(MESH_EXTENSIONS)}) under --input")
    seen: dict[str, Path] = {}
    for model in models:
        name = folder_name(model)
        if name in seen:
            raise InputError(f"{model}: its views would go to {name}, like those of {seen[name]}; rename one")
        seen[name] = model
    return models


def folder_name(model: Path) -> str:
    return model.name + FOLDER_SUFFIX


def views_complete(folder: Path, views: tuple[str, ...]) -> bool:
    return folder.is_dir() and all((folder / f"{v}.jpg").is_file() and (folder / f"{v}.jpg").stat().st_size > 0
                                   for v in views)


# ---- the worker side ------------------------------------------------------------------------------------------
_renderer = None


def _init_worker(options: RenderOptions) -> None:
    from vlmkit.images import set_max_image_pixels
    from vlmkit.render.engine import configure_platform

    configure_platform(options.platform)
    set_max_image_pixels(options.max_image_pixels)


def _get_renderer(options: RenderOptions):
    global _renderer
    if _renderer is None or _renderer.settings != options.camera or _renderer.smooth != options.smooth:
        from vlmkit.render.engine import ViewRenderer

        if _renderer is not None:
            _renderer.close()
        _renderer = ViewRenderer(options.camera, smooth=options.smooth)
    return _renderer


def close_renderer() -> None:
    global _renderer
    if _renderer is not None:
        _renderer.close()
        _renderer = None


def _publish(staging: Path, target: Path) -> None:
    """Move a finished staging folder onto `target`, replacing an older folder with one rename each way."""
    retired = None
    if target.exists():
        retired = target.with_name(f"{_RETIRED}{target.name}-{os.getpid()}")
        os.rename(target, retired)
    os.rename(staging, target)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def render_model(model: Path, output_dir: Path, options: RenderOptions) -> dict[str, Any]:
    """Render and publish one model; a model that cannot be rendered is a `failed` entry, never an exception."""
    from PIL import Image

    start = time.perf_counter()
    entry: dict[str, Any] = {"source": str(model), "folder": folder_name(model)}
    try:
        asset = load_asset(model, axis_rotation(options.camera.up, options.camera.front))
    except MeshProblem as problem:
        return {**entry, "status": "failed", "reason": str(problem), "seconds": round(time.perf_counter() - start, 3)}
    entry["mesh"] = asset.stats
    loaded = time.perf_counter()
    staging = output_dir / f"{_STAGING}{folder_name(model)}-{os.getpid()}"
    try:
        images = _get_renderer(options).render(asset, options.views)
        rendered = time.perf_counter()
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for view, pixels in images.items():
            Image.fromarray(pixels).save(staging / f"{view}.jpg", "JPEG", quality=options.quality)
        _publish(staging, output_dir / folder_name(model))
    except Exception as exc:  # a GL error, a full disk: this model failed, the run goes on
        shutil.rmtree(staging, ignore_errors=True)
        message = str(exc).splitlines()[0][:200] if str(exc) else ""
        return {**entry, "status": "failed", "reason": f"rendering failed ({type(exc).__name__}: {message})",
                "seconds": round(time.perf_counter() - start, 3)}
    end = time.perf_counter()
    return {**entry, "status": "rendered", "views": list(options.views), "seconds": round(end - start, 3),
            "seconds_load": round(loaded - start, 3), "seconds_render": round(rendered - loaded, 3),
            "seconds_write": round(end - rendered, 3)}


def _render_in_worker(model: Path, output_dir: Path, options: RenderOptions) -> dict[str, Any]:
    if os.environ.get("VLMKIT_RENDER_CRASH_ON") and model.name == os.environ["VLMKIT_RENDER_CRASH_ON"]:
        os.abort()  # tests: a renderer that dies on one model (as a GL driver crash would)
    return render_model(model, output_dir, options)


# ---- the coordinating side ------------------------------------------------------------------------------------

def remove_leftovers(output_dir: Path) -> list[Path]:
    """Staging and retired folders of a killed run (only ever hidden folders this module made)."""
    removed = []
    if output_dir.is_dir():
        for entry in output_dir.iterdir():
            if entry.is_dir() and entry.name.startswith((_STAGING, _RETIRED)):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_after_dead_workers(output_dir: Path) -> list[Path]:
    """What workers that died (a renderer crash, the pool torn down after one) left mid-publish: their staging
    folders are removed, and a retired folder whose object folder is gone (the worker died between its two
    renames) is put back, so the earlier views survive. Only folders whose worker pid is no longer alive."""
    cleaned = []
    if not output_dir.is_dir():
        return cleaned
    for entry in output_dir.iterdir():
        if not entry.is_dir() or not entry.name.startswith((_STAGING, _RETIRED)):
            continue
        stem, _, pid = entry.name.rpartition("-")
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if entry.name.startswith(_RETIRED):
            target = output_dir / stem[len(_RETIRED):]
            if not target.exists():
                os.rename(entry, target)
                cleaned.append(entry)
                continue
        shutil.rmtree(entry, ignore_errors=True)
        cleaned.append(entry)
    return cleaned


def check_existing(output_dir: Path, models: list[Path], description: dict, views: tuple[str, ...], *,
                   resume: bool, overwrite: bool) -> set[Path]:
    """The models to skip (resume); an `InputError` when existing views would be mixed or clobbered."""
    existing = [m for m in models if (output_dir / folder_name(m)).exists()]
    if not existing:
        return set()
    if overwrite:
        return set()
    if not resume:
        raise InputError(f"{output_dir}: {len(existing)} of the object folders exist already (e.g. "
                         f"{folder_name(existing[0])}); pass --resume to skip finished objects or --overwrite to "
                         f"render them again")
    views_file = output_dir / VIEWS_NAME
    if views_file.is_file():
        before = read_json(views_file)
        if isinstance(before, dict):
            keys = [k for k in description if k != "views" and before.get(k) != description[k]]
            if keys:
                raise InputError(f"{views_file}: the existing views were rendered with other settings "
                                 f"({', '.join(keys)}); use another --output_dir, or --overwrite")
    return {m for m in existing if views_complete(output_dir / folder_name(m), views)}


def _failed(model: Path, reason: str) -> dict[str, Any]:
    return {"source": str(model), "folder": folder_name(model), "status": "failed", "reason": reason}


def _results(models: list[Path], output_dir: Path, options: RenderOptions,
             num_workers: int) -> Iterator[dict[str, Any]]:
    """Render in worker processes, never in this one.

    Two reasons: Mesa's llvmpipe loads its own LLVM, which clashes with the LLVM inside triton (imported by
    torch/transformers) and segfaults the process that later loads the other; and a crash in the OpenGL driver on one
    bad asset must be that model's failure, not the run's. When a worker dies, the models it may have been rendering
    are retried one at a time in a fresh process, so the crash is pinned on the model that causes it.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, wait

    pending, suspects = list(models), []
    context = multiprocessing.get_context("spawn")  # not fork: a child must not inherit GL state or threads
    while pending or suspects:
        solo = bool(suspects)
        queue, width = (suspects, 1) if solo else (pending, num_workers)
        pool = ProcessPoolExecutor(max_workers=width, mp_context=context, initializer=_init_worker,
                                   initargs=(options,))
        in_flight: dict[Any, Path] = {}
        try:
            broken = False
            while (queue or in_flight) and not broken:
                while queue and len(in_flight) < width:
                    model = queue[0]
                    try:  # the pool may have broken since the last wait: a worker died after others finished
                        in_flight[pool.submit(_render_in_worker, model, output_dir, options)] = model
                    except BrokenProcessPool:
                        break  # not submitted: it stays queued for the next pool
                    queue.pop(0)
                if not in_flight:
                    broken = True  # nothing could be submitted to this pool: start a fresh one
                    continue
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in done:
                    model = in_flight.pop(future)
                    try:
                        yield future.result()
                    except BrokenProcessPool:
                        broken = True
                        if solo:
                            yield _failed(model, "the renderer process died on this model (a crash in the OpenGL "
                                                 "driver, or out of memory)")
                        else:
                            suspects.append(model)
            if broken:
                suspects.extend(in_flight.values())  # they shared the dead pool: retry them alone
                in_flight.clear()
        finally:
            pool.shutdown(wait=not in_flight, cancel_futures=True)
            for leftover in clean_after_dead_workers(output_dir):  # a dead worker cannot clean up after itself
                log.info("removed %s, left by a renderer process that died", leftover.name)


class _RenderTask:
    """A Ray task: one model, rendered in a fresh child process of the Ray worker (`_results`), so a renderer crash
    is that model's failure (as locally) rather than a dead Ray task that Ray would retry forever."""

    def __init__(self, output_dir: Path, options: RenderOptions):
        self.output_dir, self.options = output_dir, options

    def __call__(self, model: Path) -> dict[str, Any]:
        return next(iter(_results([model], self.output_dir, self.options, 1)))


def run_render(models: list[Path], output_dir: Path, options: RenderOptions, *, num_workers: int = 1,
               resume: bool = False, overwrite: bool = False, settings: dict[str, Any] | None = None,
               progress: bool = True, on_result: Callable[[dict[str, Any]], None] | None = None,
               executor: Any = None) -> int:
    """Render `models` into `output_dir`; returns the exit status (see the module docstring)."""
    from tqdm import tqdm

    check_output_dir(output_dir)
    description = options.camera.describe(options.views)
    with OutputLock(output_dir, "render output"):
        output_dir.mkdir(parents=True, exist_ok=True)
        for leftover in remove_leftovers(output_dir):
            log.info("removed %s, left by a killed run", leftover.name)
        skip = check_existing(output_dir, models, description, options.views, resume=resume, overwrite=overwrite)
        atomic_write_json(output_dir / VIEWS_NAME, description)
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        entries: dict[str, dict[str, Any]] = {
            str(m): {"source": str(m), "folder": folder_name(m), "status": "skipped",
                     "reason": "views exist (--resume)"} for m in models if m in skip}
        todo = [m for m in models if m not in skip]
        log.info("%d models, %d already rendered, %d to render -> %s", len(models), len(skip), len(todo), output_dir)
        t0 = time.perf_counter()
        status = "interrupted"

        def write_report() -> None:
            atomic_write_json(output_dir / REPORT_NAME, build_report(models, entries, status, started,
                                                                     time.perf_counter() - t0, options, settings))

        try:
            bar = tqdm(total=len(todo), unit="model", desc="render", disable=not progress)

            def take(entry: dict[str, Any]) -> None:
                entries[entry["source"]] = entry
                if entry["status"] == "failed":
                    log.warning("%s: %s", entry["source"], entry["reason"])
                if on_result:
                    on_result(entry)
                bar.update(1)
                write_report()

            if executor is not None and executor.is_ray:  # one Ray task per model (output_dir on a shared FS)
                from vlmkit.executor import map_refs

                map_refs(_RenderTask(output_dir.absolute(), options), todo, executor, on_result=take)
            else:
                for entry in _results(todo, output_dir, options, num_workers):
                    take(entry)
            bar.close()
            # a worker killed mid-model (its pool broke on another model's crash) leaves its staging folder; the
            # model itself was retried. We hold the lock: no live writer owns one any more.
            remove_leftovers(output_dir)
            failed = [e for e in entries.values() if e["status"] == "failed"]
            status = "complete" if not failed else "failed"
        finally:
            write_report()
        return 1 if failed else 0


def build_report(models: list[Path], entries: dict[str, dict[str, Any]], status: str, started: str, seconds: float,
                 options: RenderOptions, settings: dict[str, Any] | None) -> dict[str, Any]:
    ordered = [entries[str(m)] for m in models if str(m) in entries]
    rendered = [e for e in ordered if e["status"] == "rendered"]
    views = sum(len(e["views"]) for e in rendered)
    render_seconds = sum(e["seconds"] for e in rendered)
    return {
        "status": status,
        "totals": {"models": len(models), "rendered": len(rendered),
                   "skipped": sum(e["status"] == "skipped" for e in ordered),
                   "failed": sum(e["status"] == "failed" for e in ordered),
                   "not_reached": len(models) - len(ordered), "views_written": views},
        "failures": [{"source": e["source"], "reason": e["reason"]} for e in ordered if e["status"] == "failed"],
        "seconds": round(seconds, 3),
        "seconds_per_object": round(render_seconds / len(rendered), 4) if rendered else None,
        "seconds_per_view": round(render_seconds / views, 4) if views else None,
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "options": {**asdict(options), "camera": asdict(options.camera)},
        "settings": settings or {},
        "models": ordered,
    }
