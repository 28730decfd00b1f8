"""Captions from an OpenAI-compatible chat API (OpenAI, a vLLM / lmdeploy / SGLang server, any gateway).

Each item is ONE `chat.completions` request through the official `openai` client: a user message holding every view
as a base64 `image_url` part (data URL, the view file's own bytes, in the views' order) followed by the prompt text.
Throughput comes from concurrency, not batching: `prepare` (run by the runner's prefetch thread) encodes a chunk and
submits its requests to a pool of exactly `--concurrency` worker threads, and `generate` waits for them; since the
next chunk is submitted while the current one finishes, the pool stays full and never holds more than
`--concurrency` requests in flight.

Retries are our own loop with the client's `max_retries=0`. The client's built-in retries also retry 408 and 409
(and obey a non-standard `x-should-retry` header), while here a 4xx other than 429 must fail its item at once; and an
item's report line has to say how many attempts it took and what the server said last. The loop retries 429, 5xx,
timeouts and dropped connections with exponential back-off (0.5 s doubling, at most 8 s, minus up to 25 % random
jitter) or, when the server sends one, `Retry-After` / `retry-after-ms` (seconds or an HTTP date, capped at 120 s).
After `--max_retries` retries the item is a failure with the server's status and message; `--resume` retries it.

The API key is read from the environment variable named by `--api_key_env` only (never a flag or a file), handed to
the client and nothing else: it is redacted from every error message this module produces and never logged.
"""

from __future__ import annotations

import base64
import email.utils
import io
import logging
import math
import os
import random
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from vlmkit.generation.runner import CaptionRequest
from vlmkit.generation.sampling import GenerationSettings
from vlmkit.io import InputError
from vlmkit.options import Options, opt
from vlmkit.ranges import NON_NEGATIVE, POSITIVE, Range

log = logging.getLogger(__name__)

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
# vLLM's and lmdeploy's servers accept any key when started without one; their docs use this placeholder.
NO_KEY = "EMPTY"
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 120.0
MIME = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
        ".gif": "image/gif", ".bmp": "image/bmp"}


@dataclass(frozen=True)
class ApiOptions(Options):
    """Where to send requests and how hard to try: the `--api_*`, `--concurrency`, `--timeout`, `--max_retries` flags.

    Every command that offers `--backend openai` nests this group; the endpoint itself is checked (`check_endpoint`)
    only when that backend is chosen, the numbers always (declared ranges)."""

    TITLE: ClassVar[str | None] = "API backend (--backend openai)"
    api_base: str | None = opt(None, "endpoint, e.g. http://127.0.0.1:8000/v1 (vLLM's server) or "
                                     "https://api.openai.com/v1")
    api_model: str | None = opt(None, "model name as the server knows it, e.g. gpt-4o or the served model of "
                                      "`vllm serve`")
    api_key_env: str | None = opt(None, f"NAME of the environment variable holding the key (default {DEFAULT_KEY_ENV}, "
                                        "which may be unset for a local server); the key is never a flag, never "
                                        "logged or written", metavar="VAR")
    concurrency: int = opt(8, "requests in flight", range=POSITIVE)
    timeout: float = opt(120.0, "seconds per request before it is retried", range=Range(0, lo_open=True))
    max_retries: int = opt(3, "retries per item on 429, 5xx, timeouts and dropped connections (back-off with jitter, "
                              "Retry-After honoured); other 4xx fail the item at once", range=NON_NEGATIVE)

    @property
    def key_env(self) -> str:
        """The environment variable the key is read from (`--api_key_env`, else OPENAI_API_KEY)."""
        return self.api_key_env or DEFAULT_KEY_ENV

    def check_endpoint(self) -> None:
        """What `--backend openai` needs: an http(s) endpoint without credentials, a model name, a variable name."""
        parts = urlsplit(self.api_base or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"--api_base {self.api_base!r}: need an http(s) URL such as http://127.0.0.1:8000/v1")
        if parts.username or parts.password:
            raise InputError("--api_base: credentials in the URL are not allowed; put the key in the environment "
                             "variable named by --api_key_env")
        if not self.api_model:
            raise InputError("--api_model is required with --backend openai (the model name the server serves)")
        if not self.key_env.replace("_", "").isalnum():
            raise InputError(f"--api_key_env {self.api_key_env!r}: must be the NAME of an environment variable")

    @property
    def host(self) -> str:
        """The endpoint's host[:port]: what reports record (never a path, query or credentials)."""
        parts = urlsplit(self.api_base)
        return parts.hostname + (f":{parts.port}" if parts.port else "")


def read_api_key(env_name: str, *, explicit: bool) -> str:
    """The key from `env_name`; a local server without auth needs none, so an unset DEFAULT variable is allowed."""
    key = os.environ.get(env_name, "")
    if key:
        return key
    if explicit:
        raise InputError(f"--api_key_env {env_name}: that environment variable is not set or empty")
    log.info("%s is not set: sending no API key (fine for a local server started without one)", env_name)
    return NO_KEY


class Caption(str):
    """A caption plus the server's `finish_reason` (`length`: cut off at `--max_new_tokens`)."""

    finish_reason: str | None = None

    @classmethod
    def of(cls, text: str, finish_reason: str | None) -> Caption:
        out = cls(text)
        out.finish_reason = finish_reason
        return out


class ApiRequestFailed(RuntimeError):
    """An item whose request failed for good (a 4xx, or still failing after the last retry)."""


def image_part(image: Any, path: Path | None) -> dict[str, Any]:
    """A base64 data-URL `image_url` part: the view file's own bytes when it is an image file, else a PNG of the
    (already opened) image, e.g. a benchmark's inline base64 cell."""
    if path is not None and Path(path).suffix.lower() in MIME and Path(path).is_file():
        data, mime = Path(path).read_bytes(), MIME[Path(path).suffix.lower()]
    else:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data, mime = buffer.getvalue(), "image/png"
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"}}


def build_messages(request: CaptionRequest) -> list[dict[str, Any]]:
    """One user turn: every view as an `image_url` part in the views' order, then the prompt (as the HF backend)."""
    paths = list(request.paths) + [None] * (len(request.images) - len(request.paths))
    content = [image_part(image, path) for image, path in zip(request.images, paths, strict=True)]
    content.append({"type": "text", "text": request.prompt})
    return [{"role": "user", "content": content}]


def decoding_fields(settings: GenerationSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """The decoding flags as chat.completions fields, and as `extra_body` fields OpenAI's API lacks but vLLM-style
    servers accept (top_k, repetition_penalty; sent only when they change anything)."""
    if settings.num_beams != 1:
        raise InputError(f"--num_beams {settings.num_beams}: beam search is not part of the chat completions API; "
                         f"use --num_beams 1 with --backend openai")
    fields: dict[str, Any] = {"max_tokens": settings.max_new_tokens, "temperature": settings.temperature,
                              "seed": settings.seed}
    extra: dict[str, Any] = {}
    if settings.do_sample:
        fields["top_p"] = settings.top_p
        extra["top_k"] = settings.top_k
    if settings.repetition_penalty != 1.0:
        extra["repetition_penalty"] = settings.repetition_penalty
    return fields, extra


def parse_retry_after(headers: Any) -> float | None:
    """Seconds the server asked us to wait: `retry-after-ms`, `Retry-After` in seconds or as an HTTP date."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            parsed = email.utils.parsedate_tz(value) if name == "retry-after" else None
            if parsed is None:
                continue
            seconds = email.utils.mktime_tz(parsed) - time.time()
        if math.isfinite(seconds):
            return min(max(seconds, 0.0), MAX_RETRY_AFTER)
    return None


def backoff_delay(retry: int, retry_after: float | None) -> float:
    """The wait before retry number `retry` (1-based): the server's Retry-After, else exponential with jitter."""
    if retry_after is not None:
        return retry_after
    return min(INITIAL_RETRY_DELAY * 2 ** (retry - 1), MAX_RETRY_DELAY) * (1 - 0.25 * random.random())


def _server_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else error
        if message:
            return str(message)
    if isinstance(body, str) and body.strip():
        return body.strip()
    response = getattr(exc, "response", None)
    text = getattr(response, "text", "") if response is not None else ""
    return (text or str(exc)).strip()[:300]


class OpenAICaptioner:
    """The Captioner protocol over an OpenAI-compatible endpoint, `concurrency` requests in flight."""

    def __init__(self, options: ApiOptions, *, settings: GenerationSettings):
        options.check_endpoint()
        try:
            import openai
        except ImportError as exc:  # it is in requirements.txt; a broken environment is still one clear line
            raise InputError(f"--backend openai needs the openai package (pip install -r requirements.txt): {exc}") \
                from None
        self._openai = openai
        self.options = options
        self.settings = settings
        self.fields, self.extra_body = decoding_fields(settings)
        self._key = read_api_key(options.key_env, explicit=options.api_key_env is not None)
        import httpx2  # the client's own HTTP library: one pooled connection per worker (its default keeps 100)

        http = openai.DefaultHttpxClient(limits=httpx2.Limits(max_connections=options.concurrency,
                                                              max_keepalive_connections=options.concurrency))
        self.client = openai.OpenAI(api_key=self._key, base_url=options.api_base, timeout=options.timeout,
                                    max_retries=0, http_client=http)
        self._pool = ThreadPoolExecutor(max_workers=options.concurrency, thread_name_prefix="api")
        self._lock = threading.Lock()
        self.served_models: set[str] = set()
        self.counts = {"requests": 0, "retries": 0, "succeeded": 0, "failed": 0, "truncated": 0}

    # -- the Captioner protocol --------------------------------------------------------------------------------
    def prepare(self, requests: list[CaptionRequest]) -> list[Future]:
        """Encode a chunk and start its requests (runs in the runner's prefetch thread while a chunk finishes)."""
        return [self._pool.submit(self._complete, build_messages(r)) for r in requests]

    def generate(self, futures: list[Future]) -> list[str | Exception]:
        """One caption or one per-item error per request, in order."""
        return [f.result() for f in futures]

    def caption(self, requests: list[CaptionRequest]) -> list[str | Exception]:
        return self.generate(self.prepare(requests))

    def close(self) -> None:
        """Drop queued requests (after an interruption or abort); requests in flight end within --timeout."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def describe(self) -> dict[str, Any]:
        with self._lock:
            served, counts = sorted(self.served_models), dict(self.counts)
        return {
            "backend": "openai",
            "endpoint_host": self.options.host,
            "api_model": self.options.api_model,
            "served_model_ids": served,  # what the server says answered (the responses' `model` field)
            "api_key_env": self.options.key_env,
            "api_key_set": self._key != NO_KEY,
            "concurrency": self.options.concurrency,
            "timeout": self.options.timeout,
            "max_retries": self.options.max_retries,
            "request_fields": {**self.fields, "extra_body": self.extra_body},
            "requests": counts,
            "client": f"openai {self._openai.__version__}",
            "generation": self.settings.to_json(),
        }

    # -- one item ----------------------------------------------------------------------------------------------
    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key and self._key != NO_KEY else text

    def _count(self, name: str) -> None:
        with self._lock:
            self.counts[name] += 1

    def _complete(self, messages: list[dict[str, Any]]) -> Caption | Exception:
        openai = self._openai
        attempt = 0
        while True:
            attempt += 1
            self._count("requests")
            retry_after = None
            try:
                response = self.client.chat.completions.create(
                    model=self.options.api_model, messages=messages, extra_body=self.extra_body or None,
                    **self.fields)
            except openai.APIStatusError as exc:
                status = exc.status_code
                retryable = status == 429 or status >= 500
                reason = f"HTTP {status}: {_server_message(exc)}"
                retry_after = parse_retry_after(exc.response.headers)
            except openai.APITimeoutError:
                retryable, reason = True, f"no answer within --timeout {self.options.timeout:g} s"
            except openai.APIConnectionError as exc:
                retryable, reason = True, f"connection failed ({type(exc.__cause__ or exc).__name__}: " \
                                          f"{exc.__cause__ or exc})"
            except openai.OpenAIError as exc:  # an answer the client cannot parse: retrying would not help
                retryable, reason = False, f"{type(exc).__name__}: {exc}"
            else:
                return self._caption_of(response)
            if not retryable or attempt > self.options.max_retries:
                self._count("failed")
                tries = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                return ApiRequestFailed(self._redact(f"{reason} (gave up after {tries})" if retryable
                                                     else f"{reason} (not retried)"))
            delay = backoff_delay(attempt, retry_after)
            self._count("retries")
            log.warning("request failed (%s); retry %d of %d in %.2f s", self._redact(reason)[:200], attempt,
                        self.options.max_retries, delay)
            time.sleep(delay)

    def _caption_of(self, response: Any) -> Caption | Exception:
        if getattr(response, "model", None):
            with self._lock:
                self.served_models.add(str(response.model))
        choices = getattr(response, "choices", None) or []
        if not choices:
            self._count("failed")
            return ApiRequestFailed("the server's answer has no choices")
        choice = choices[0]
        self._count("succeeded")
        if choice.finish_reason == "length":
            self._count("truncated")
        return Caption.of((choice.message.content or "").strip(), choice.finish_reason)

