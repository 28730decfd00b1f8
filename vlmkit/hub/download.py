"""Fetching a default model into ./models with the hubs' own clients (imported only here, only when used).

Hugging Face: `huggingface_hub.snapshot_download(repo, local_dir=...)`; ModelScope: `modelscope.snapshot_download`.
Both resume a partial download (the Hugging Face client keeps `<folder>/.cache/huggingface/download/*.incomplete`,
ModelScope its temporary files) and honour `HF_ENDPOINT` / `MODELSCOPE_ENDPOINT` (a mirror, or a test server).

`import vlmkit` switches the Hugging Face hub offline for every other command (models come from local folders);
this is the one place that turns it back on, for the duration of the download only.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from vlmkit.hub.registry import ModelEntry

SOURCES = {"hf": "Hugging Face", "modelscope": "ModelScope"}


class DownloadFailed(Exception):
    """One line: the hub, the model id, what went wrong and what to do."""


@contextmanager
def _hf_online():
    import huggingface_hub.constants as constants

    saved_env, saved = os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "0"
    constants.HF_HUB_OFFLINE = False  # read once at import; the client checks this attribute before each request
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


def endpoint(source: str) -> str:
    if source == "hf":
        return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    return os.environ.get("MODELSCOPE_ENDPOINT") or "https://www.modelscope.cn"


def _advice(source: str, target: Path) -> str:
    other = "modelscope" if source == "hf" else "hf"
    return (f"rerun to resume, try --source {other}, or copy the model folder to {target} by hand "
            f"(then python download_models.py --check)")


def _reason(exc: BaseException) -> str:
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if "RepositoryNotFound" in name or status == 404 or "404" in text[:200]:
        return "model id not found (HTTP 404)"
    if "RevisionNotFound" in name:
        return "revision not found"
    if "Gated" in name or status in (401, 403):
        return f"access denied (HTTP {status or 401}): a gated or private model needs a token (HF_TOKEN)"
    if any(k in name for k in ("Connect", "Timeout", "LocalEntryNotFound", "Network")) or "connect" in text.lower():
        return f"cannot reach the hub ({name})"
    return f"{name}: {text[:160]}"


def _remove_if_empty(folder: Path) -> None:
    """A download that failed before writing anything leaves no empty model folder behind (partial files stay)."""
    leftovers = [p for p in folder.rglob("*") if p.is_file()]
    if not leftovers:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def download(entry: ModelEntry, source: str, models_dir: str | os.PathLike, *, revision: str | None = None,
             repo_id: str | None = None, max_workers: int = 8) -> Path:
    """Download `entry` into `<models_dir>/<entry.folder>`; raise `DownloadFailed` with one line on any failure."""
    target = entry.path(models_dir)
    repo = repo_id or entry.repo_id(source)
    existed = target.exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        if source == "hf":
            with _hf_online():
                from huggingface_hub import snapshot_download

                snapshot_download(repo, revision=revision, local_dir=str(target), endpoint=endpoint("hf"),
                                  cache_dir=str(target / ".cache" / "huggingface" / "hub"), max_workers=max_workers)
        else:
            from modelscope import snapshot_download as ms_snapshot_download

            kwargs = {"revision": revision} if revision else {}
            ms_snapshot_download(repo, local_dir=str(target), cache_dir=str(target / ".cache" / "modelscope"),
                                 max_workers=max_workers, endpoint=os.environ.get("MODELSCOPE_ENDPOINT") or None,
                                 **kwargs)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # each client raises its own zoo (httpx, requests, hub errors, OSError)
        if not existed:
            _remove_if_empty(target)
        raise DownloadFailed(f"{SOURCES[source]} ({endpoint(source)}): {repo}"
                             f"{'@' + revision if revision else ''}: {_reason(exc)}; {_advice(source, target)}") \
            from None
    return target
