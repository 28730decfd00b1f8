"""A STAND-IN for an OpenAI-compatible chat server on 127.0.0.1: for tests, benchmarks and demos, not a model.

It answers `POST /v1/chat/completions` (and `GET /v1/models`) the way vLLM's and OpenAI's servers do, with a
deterministic text that names what it received, after a fixed `delay`. It records every request (body and
headers), counts requests in flight, and injects faults per item: the item's key is the first image of its request
(`image_key`, computed the same way from the view file), and `faults[key]` lists what successive attempts get:
an HTTP status such as "429" (with `Retry-After`), "500", "400", "401"; "timeout" (no answer until the client gave
up); "drop" (the connection closed without an answer); "length" (a caption cut off, `finish_reason: length`); "ok".

    python -m demo.openai_standin --port 8000 --delay 0.2     # then qwen.py --backend openai --api_base ...
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import socket
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SERVED_MODEL = "standin/vlm-0"


def image_key(data: bytes) -> str:
    """The key of an item whose first view has these file bytes (what `faults` is keyed by)."""
    return hashlib.sha256(base64.b64encode(data)).hexdigest()[:12]


def request_key(body: dict[str, Any]) -> str:
    for message in body.get("messages", []):
        for part in message.get("content", []) if isinstance(message.get("content"), list) else []:
            if part.get("type") == "image_url":
                url = part["image_url"]["url"]
                return hashlib.sha256(url.split(",", 1)[-1].encode("ascii")).hexdigest()[:12]
    return "no-image"


@dataclass
class StandinState:
    delay: float = 0.0
    retry_after: str = "0.1"
    hang: float = 3.0  # how long a "timeout" fault holds the request (longer than the client's --timeout)
    served_model: str = SERVED_MODEL
    faults: dict[str, list[str]] = field(default_factory=dict)
    answers: dict[str, str] = field(default_factory=dict)  # key -> fixed answer text (e.g. VQA answers)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    attempts: Counter = field(default_factory=Counter)
    successes: Counter = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def action(self, key: str) -> str:
        with self.lock:
            attempt = self.attempts[key]
            self.attempts[key] += 1
        plan = self.faults.get(key, [])
        return plan[attempt] if attempt < len(plan) else "ok"


def caption_for(body: dict[str, Any], key: str, state: StandinState) -> str:
    if key in state.answers:
        return state.answers[key]
    content = body["messages"][-1]["content"]
    n_images = sum(part.get("type") == "image_url" for part in content)
    prompt = next((part["text"] for part in content if part.get("type") == "text"), "")
    return f"stand-in caption of {n_images} views, item {key}, prompt of {len(prompt)} characters"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: StandinState  # set on the subclass made by `start`

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the state, not stderr
        pass

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": self.state.served_model, "object": "model"}]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802
        state = self.state
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        key = request_key(body)
        with state.lock:
            state.requests.append(body)
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        action = state.action(key)
        try:
            if action == "timeout":
                with state.lock:
                    state.in_flight -= 1  # the client gives up on it; its retry is the item's request now
                time.sleep(state.hang)
                self.close_connection = True
                return
            time.sleep(state.delay)
            if action == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            if action.isdigit():  # an HTTP error status
                messages = {"429": "stand-in rate limit", "500": "stand-in internal error",
                            "400": "stand-in bad request", "401": "stand-in: invalid key"}
                headers = {"Retry-After": state.retry_after} if action == "429" else {}
                message = messages.get(action, f"stand-in error {action}")
                self._send(int(action), {"error": {"message": message, "type": "standin"}}, headers)
                return
            with state.lock:
                state.successes[key] += 1
            text = caption_for(body, key, state)
            finish = "stop"
            if action == "length":
                text, finish = text[: max(1, len(text) // 2)], "length"
            self._send(200, {"id": f"chatcmpl-{len(state.requests)}", "object": "chat.completion",
                             "created": int(time.time()), "model": state.served_model,
                             "choices": [{"index": 0, "finish_reason": finish,
                                          "message": {"role": "assistant", "content": text}}],
                             "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            if action != "timeout":
                with state.lock:
                    state.in_flight -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # listen backlog: a burst of new connections at high concurrency is not reset


class Standin:
    """A running stand-in server; use as a context manager (`with Standin(delay=0.2) as server: server.url`)."""

    def __init__(self, port: int = 0, **state: Any):
        self.state = StandinState(**state)
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.server = _Server(("127.0.0.1", port), handler)  # port 0: a free port chosen by the OS
        self.thread = threading.Thread(target=self.server.serve_forever, name="openai-standin", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> Standin:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def per_key(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for body in self.state.requests:
            counts[request_key(body)] += 1
        return dict(counts)


def key_of_file(path: str | Path) -> str:
    return image_key(Path(path).read_bytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args()
    server = Standin(port=args.port, delay=args.delay)
    print(f"stand-in OpenAI-compatible server (not a model) on {server.url}", flush=True)
    server.server.serve_forever()


if __name__ == "__main__":
    main()
