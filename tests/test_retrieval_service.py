"""retrieval.py serve: the FastAPI app with TestClient, and once through a real uvicorn on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import retrieval  # noqa: E402


@pytest.fixture(scope="module")
def index_dir(retrieval_run: Path, shape_pairs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("service") / "index"
    assert retrieval.main(["index", "--model", str(retrieval_run / "merged"), "--images",
                           str(shape_pairs_dir / "images"), "--output", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def searcher(index_dir: Path):
    from vlmkit.retrieval.search import Searcher

    return Searcher(index_dir)


@pytest.fixture(scope="module")
def client(searcher):
    from fastapi.testclient import TestClient

    from vlmkit.retrieval.service import create_app

    return TestClient(create_app(searcher, max_top_k=20))


def test_health(client, searcher) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "images": 64, **searcher.describe()}


def test_text_search_answers_like_the_searcher(client, searcher) -> None:
    r = client.post("/search/text", json={"query": "a red circle", "top_k": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == "a red circle" and body["top_k"] == 5
    assert body["results"] == searcher.search_text("a red circle", 5)
    assert [x["rank"] for x in body["results"]] == [1, 2, 3, 4, 5]


def test_image_search_finds_the_uploaded_image(client, shape_pairs_dir: Path) -> None:
    image = shape_pairs_dir / "images" / "shape_042.png"
    r = client.post("/search/image", files={"file": ("q.png", image.read_bytes(), "image/png")}, data={"top_k": "3"})
    assert r.status_code == 200
    top = r.json()["results"][0]
    assert top["path"] == str(image) and top["score"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("payload,status,fragment", [
    ({"query": "   "}, 422, "empty query"),
    ({"query": ""}, 422, "empty query"),
    ({"top_k": 3}, 422, "query"),
    ({"query": "a red circle", "top_k": 0}, 422, "top_k"),
    ({"query": "a red circle", "top_k": 21}, 422, "top_k"),
    ({"query": 17}, 422, "query"),
])
def test_bad_text_requests_get_4xx_json(client, payload: dict, status: int, fragment: str) -> None:
    r = client.post("/search/text", json=payload)
    assert r.status_code == status and r.headers["content-type"].startswith("application/json")
    assert fragment in json.dumps(r.json()["detail"])


def test_bad_image_requests_get_4xx_json(client) -> None:
    r = client.post("/search/image", files={"file": ("x.png", b"\x89PNG not really", "image/png")})
    assert r.status_code == 400 and "x.png: unreadable image" in r.json()["detail"]
    r = client.post("/search/image", files={"file": ("e.png", b"", "image/png")})
    assert r.status_code == 400 and "empty image" in r.json()["detail"]
    r = client.post("/search/image", data={"top_k": "3"})
    assert r.status_code == 422
    r = client.post("/search/text", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post_json(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for(url: str, seconds: float, proc: subprocess.Popen | None = None) -> dict:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def test_a_real_uvicorn_server_on_loopback(searcher) -> None:
    import uvicorn

    from vlmkit.retrieval.service import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(searcher), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_for(f"{base}/health", 30)["images"] == 64
        status, body = post_json(f"{base}/search/text", {"query": "a blue bar", "top_k": 2})
        assert status == 200 and body["results"] == searcher.search_text("a blue bar", 2)
        status, body = post_json(f"{base}/search/text", {"query": " "})
        assert status == 422 and "empty query" in json.dumps(body)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert not thread.is_alive()


@pytest.mark.slow
def test_retrieval_py_serve_in_a_subprocess(index_dir: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(REPO / "retrieval.py"), "serve", "--index", str(index_dir),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        health = wait_for(f"http://127.0.0.1:{port}/health", 120, proc)
        assert health["status"] == "ok" and health["count"] == 64
        status, body = post_json(f"http://127.0.0.1:{port}/search/text", {"query": "a white ring", "top_k": 1})
        assert status == 200 and len(body["results"]) == 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)
