"""Fetching a default model into ./models with the hubs' own clients (imported only here, only when used).

Hugging Face: `huggingface_hub.snapshot_download(repo, local_dir=...)`; ModelScope: `modelscope.snapshot_download`.
Both resume a partial download (the Hugging Face client keeps `<folder>/.cache/huggingface/download/*.incomplete`,
ModelScope its temporary files) and honour `HF_ENDPOINT` / `MODELSCOPE_ENDPOINT` (a mirror, or a test server).

Every request has a connect and a read timeout (`--timeout`, default `DEFAULT_TIMEOUT` s): huggingface_hub's own
client has none (`timeout=None`, and `repo_info` passes None explicitly), so a hub that accepts the connection and
never answers would hang the download forever. `_hf_client_factory` gives huggingface_hub (through its documented
`set_client_factory`) a client whose transport fills in the timeout of any request that has none; ModelScope reads
its timeouts from the environment (`MODELSCOPE_TIMEOUTS`) when it is imported: they are set before that (in a process
that imported modelscope earlier its own defaults, about 15 s per request and 4 retries, stay).

`import vlmkit` switches the Hugging Face hub offline for every other command (models come from local folders);
this is the one place that turns it back on, for the duration of the download only.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from vlmkit.model_registry import ModelEntry

SOURCES = {"hf": "Hugging Face", "modelscope": "ModelScope"}
DEFAULT_TIMEOUT = 60.0
MODELSCOPE_TIMEOUTS = ("MODELSCOPE_API_TIMEOUT", "MODELSCOPE_API_CONNECT_TIMEOUT", "MODELSCOPE_DOWNLOAD_TIMEOUT",
                       "MODELSCOPE_REPO_TREE_PAGE_TIMEOUT_SECONDS", "MODELSCOPE_API_HTTP_CLIENT_TIMEOUT",
                       "MODELSCOPE_API_HTTP_CLIENT_CONNECT_TIMEOUT")


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


@contextmanager
def _hf_timeouts(timeout: float):
    """huggingface_hub's shared HTTP client, with `timeout` for every phase of a request that sets none."""
    import httpx2
    from huggingface_hub.utils import _http

    class TimeoutTransport(httpx2.HTTPTransport):
        def handle_request(self, request):
            limits = dict(request.extensions.get("timeout") or {})
            for phase in ("connect", "read", "write", "pool"):
                if limits.get(phase) is None:
                    limits[phase] = timeout
            request.extensions["timeout"] = limits
            return super().handle_request(request)

    def factory():
        return httpx2.Client(transport=TimeoutTransport(), event_hooks={"request": [_http.hf_request_event_hook]},
                             follow_redirects=True, timeout=httpx2.Timeout(timeout))

    _http.set_client_factory(factory)
    try:
        yield
    finally:
        _http.set_client_factory(_http.default_client_factory)


def endpoint(source: str) -> str:
    if source == "hf":
        return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    return os.environ.get("MODELSCOPE_ENDPOINT") or "https://www.modelscope.cn"


def _advice(source: str, target: Path) -> str:
    other = "modelscope" if source == "hf" else "hf"
    return (f"rerun to resume, try --source {other}, or copy the model folder to {target} by hand "
            f"(then python download_models.py --check)")


def _reason(exc: BaseException, timeout: float | None = None) -> str:
    name = type(exc).__name__
    chain = [exc]
    while chain[-1].__cause__ is not None or chain[-1].__context__ is not None:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
        if len(chain) > 10:
            break
    timed_out = next((e for e in chain if "Timeout" in type(e).__name__ or isinstance(e, TimeoutError)), None)
    if timed_out is not None:
        limit = f" within {timeout:g} s" if timeout else ""
        return (f"no answer{limit} ({type(timed_out).__name__}): the hub accepted the connection or the request "
                "but did not respond; check the network and the endpoint, or raise --timeout")
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
             repo_id: str | None = None, max_workers: int = 8, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Download `entry` into `<models_dir>/<entry.folder>`; raise `DownloadFailed` with one line on any failure."""
    target = entry.path(models_dir)
    repo = repo_id or entry.repo_id(source)
    existed = target.exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        if source == "hf":
            with _hf_online(), _hf_timeouts(timeout):
                from huggingface_hub import snapshot_download

                snapshot_download(repo, revision=revision, local_dir=str(target), endpoint=endpoint("hf"),
                                  cache_dir=str(target / ".cache" / "huggingface" / "hub"), max_workers=max_workers,
                                  etag_timeout=timeout)
        else:
            for variable in MODELSCOPE_TIMEOUTS:  # read when modelscope is imported (a user's own setting wins)
                os.environ.setdefault(variable, str(max(1, round(timeout))))
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
        name = f"{repo}{'@' + revision if revision else ''}"
        raise DownloadFailed(f"{SOURCES[source]} ({endpoint(source)}): {name}: {_reason(exc, timeout)}; "
                             f"{_advice(source, target)}") from None
    return target
