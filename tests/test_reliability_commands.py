"""The reliability contract for the commands added after the first bad-input matrix, where one `error:` line per
case is not enough to show it: the search service's limits (bounded memory under an oversized body, 503 when
saturated, strict request types), download timeouts against a hub that never answers, the METEOR scorer when
its Java process dies or a caption is 100,000 characters long, no staging folder after renderer crashes, retrieval
resume past an incomplete checkpoint, and readers that never see a torn result set.

Stand-ins, named as such: `StandInSearcher` (answers from a fixed list, no model: the service's own code is under
test) and `tests.hub_servers.SilentServer` (a hub that accepts connections and never answers).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import compare
import download_models
from tests.fixtures.caption_data import write_json
from tests.hub_servers import SilentServer
from tests.test_reliability import COMPARE_FILES, KILL_AT_STEP, run_cli
from vlmkit.io import read_json

REPO = Path(__file__).resolve().parent.parent

# ---- the search service --------------------------------------------------------------------------------------------
# A server process with a stand-in searcher (no model): its memory is the service's, not a model's. A search for
# "hold" waits until the file named by argv[2] exists, so a test can keep one request in flight.
SERVER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from vlmkit.retrieval.service import bind, make_server

    class StandInSearcher:
        size = 3
        def describe(self):
            return {"model": "stand-in", "index_type": "flat"}
        def search_text(self, query, k):
            if query == "hold":
                while not Path(sys.argv[2]).exists():
                    time.sleep(0.02)
            return [{"rank": r + 1, "id": r, "path": f"/img/{r}.png", "score": 1.0 - r / 10} for r in range(k)]
        def search_image(self, image, k):
            return self.search_text("image", k)

    sock = bind("127.0.0.1", int(sys.argv[1]))
    make_server(StandInSearcher(), max_top_k=3, max_concurrency=int(sys.argv[3]), log_level="warning",
                default_top_k=2, max_text_bytes=4096, max_upload_bytes=100_000).run(sockets=[sock])
""")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _request(port: int, head: bytes, body_chunks, timeout: float = 30) -> tuple[int, bytes]:
    """Send a raw HTTP request (the body as an iterable of chunks, sent until the server stops reading) and
    return (status, response bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: what we want to see
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                part = sock.recv(65536)
                if not part:
                    break
                data += part
        except ConnectionResetError:
            pass
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0, data


@pytest.fixture()
def service(tmp_path: Path):
    port, release = _free_port(), tmp_path / "release"

    def start(concurrency: int = 8) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), str(release), str(concurrency)], cwd=REPO,
                                stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if _request(port, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", [], 5)[0] == 200:
                    time.sleep(0.5)  # the probe's connection closed on the server's side too
                    return proc
            except OSError:
                pass
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read())
            time.sleep(0.1)
        raise AssertionError("the stand-in server did not start")

    procs: list[subprocess.Popen] = []
    yield port, release, lambda concurrency=8: procs.append(start(concurrency)) or procs[-1]
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


def test_an_oversized_body_is_refused_while_the_server_memory_stays_bounded(service) -> None:
    port, _, start = service
    proc = start()
    small = json.dumps({"query": "a red circle"}).encode()
    status, _ = _request(port, b"POST /search/text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               b"Content-Length: %d\r\n\r\n" % len(small), [small])
    assert status == 200
    before = _rss_kb(proc.pid)
    mb = b"x" * (1 << 20)
    # 1) a Content-Length of 55 MB: refused from the header, before the body is read
    status, _ = _request(port, b"POST /search/text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               b"Content-Length: 57671680\r\n\r\n", (mb for _ in range(55)))
    assert status == 413
    # 2) no Content-Length (chunked), 50 MB offered: cut at the limit while reading
    chunked = (b"%x\r\n%s\r\n" % (len(mb), mb) for _ in range(50))
    status, _ = _request(port, b"POST /search/text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               b"Transfer-Encoding: chunked\r\n\r\n", chunked)
    assert status == 413
    # 3) an upload over --max_upload_bytes, multipart, 30 MB: never spooled whole
    boundary = b"vlmkitboundary"
    head = (b"--" + boundary + b"\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n")
    status, _ = _request(port, b"POST /search/image HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
                               b"boundary=" + boundary + b"\r\nTransfer-Encoding: chunked\r\n\r\n",
                         [b"%x\r\n%s\r\n" % (len(head), head)] + [b"%x\r\n%s\r\n" % (len(mb), mb) for _ in range(30)])
    assert status == 413
    assert _rss_kb(proc.pid) - before < 20_000  # kB: far below the 135 MB offered; the old server grew by GBs
    status, _ = _request(port, b"POST /search/text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               b"Content-Length: %d\r\n\r\n" % len(small), [small])
    assert status == 200  # still serving


def test_a_saturated_server_answers_503_at_once(service) -> None:
    port, release, start = service
    start(concurrency=1)
    body = json.dumps({"query": "hold"}).encode()
    request = (b"POST /search/text HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
               b"Connection: close\r\n\r\n" % len(body))
    held: dict[str, int] = {}
    thread = threading.Thread(target=lambda: held.update(status=_request(port, request, [body])[0]))
    thread.start()
    time.sleep(1.0)  # let the held request reach the searcher (only ordering, no timing, is asserted)
    status, data = _request(port, request, [body])
    assert status == 503
    release.touch()
    thread.join(timeout=30)
    assert held["status"] == 200


def test_request_types_are_strict_and_top_k_has_a_checked_default() -> None:
    from fastapi.testclient import TestClient

    from vlmkit.io import InputError
    from vlmkit.retrieval.service import create_app

    class StandInSearcher:
        size = 3

        def describe(self):
            return {}

        def search_text(self, query, k):
            from vlmkit.retrieval.search import check_text

            check_text(query, "query")
            return [{"rank": r + 1} for r in range(k)]

    client = TestClient(create_app(StandInSearcher(), max_top_k=5, default_top_k=2))
    assert len(client.post("/search/text", json={"query": "a vase"}).json()["results"]) == 2
    for payload in ({"query": "a vase", "top_k": True}, {"query": "a vase", "top_k": "3"},
                    {"query": "a vase", "top_k": 2.0}, {"query": 5}, {"query": "a vase", "topk": 3}):
        assert client.post("/search/text", json=payload).status_code == 422, payload
    r = client.post("/search/text", content=b'{"query": "red \\udce9 circle"}',
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not UTF-8 text" in r.json()["detail"]
    with pytest.raises(InputError, match="--default_top_k 10: must be in 1..--max_top_k 5"):
        create_app(StandInSearcher(), max_top_k=5)


# ---- downloads -----------------------------------------------------------------------------------------------------
def test_a_hub_that_never_answers_ends_with_the_timeout_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture) -> None:
    with SilentServer() as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        started = time.monotonic()
        code = download_models.main(["--model", "Qwen2.5-3B-Instruct", "--local_dir", str(tmp_path), "--timeout",
                                     "1"])
        seconds = time.monotonic() - started
    assert code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"error: Hugging Face ({url}): Qwen/Qwen2.5-3B-Instruct: no answer within 1 s")
    assert "raise --timeout" in errors[0] and "rerun to resume" in errors[0]
    assert seconds < 120  # it ended (the old client waited forever); not a performance bound
    assert not (tmp_path / "Qwen2.5-3B-Instruct").exists()


# ---- METEOR (Java) -------------------------------------------------------------------------------------------------
def _kill_java_on_call(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """pycocoevalcap's Meteor.compute_score, with its Java process killed just before call number `call` (1 is the
    warm-up): the pipe breaks mid-call, as when Java dies on a caption."""
    from pycocoevalcap.meteor.meteor import Meteor

    original, calls = Meteor.compute_score, []

    def dying(self, gts, res):
        calls.append(1)
        if len(calls) == call:
            self.meteor_p.kill()
            self.meteor_p.wait()
        return original(self, gts, res)

    monkeypatch.setattr(Meteor, "compute_score", dying)


@pytest.mark.slow
def test_compare_with_a_100000_character_caption_and_a_killed_java_finishes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    ids = ["0000000a-aaaa-4bbb-8ccc-dddddddddddd_1", "0000000b-aaaa-4bbb-8ccc-dddddddddddd_2"]
    truth = ["a red figure amphora with two warriors", "a black figure lekythos with a woman"]
    write_json(tmp_path / "gt.json", [{"images": [f"{i}_ac001001.jpg"], "caption": c}
                                      for i, c in zip(ids, truth, strict=True)])
    long = ("a red figure amphora " * 5000).strip()  # 104,999 characters
    write_json(tmp_path / "image_long.json", [{"images": [f"{ids[0]}_ac001001.jpg"], "caption": long},
                                              {"images": [f"{ids[1]}_ac001001.jpg"], "caption": truth[1]}])
    write_json(tmp_path / "image_dead.json", [{"images": [f"{i}_ac001001.jpg"], "caption": c}
                                              for i, c in zip(ids, ["a red amphora", "a lekythos"], strict=True)])
    _kill_java_on_call(monkeypatch, 3)  # 1: warm-up, 2: image_long, 3: image_dead
    code, err = run_cli(compare.main, ["--generated", tmp_path / "image_long.json", tmp_path / "image_dead.json",
                                       "--ground_truth", tmp_path / "gt.json", "--output_dir", tmp_path / "out",
                                       "--clip_model", "none", "--metrics", "coco"], capsys)
    assert code == 0, err[-3000:]
    long_result = read_json(tmp_path / "out" / "compare_long.json")
    dead_result = read_json(tmp_path / "out" / "compare_dead.json")
    text_long = json.dumps(long_result)
    assert "1 generated and 0 reference captions longer than 5000 characters were truncated" in text_long
    assert isinstance(_metric(long_result, "meteor"), float)
    assert _metric(dead_result, "meteor") is None
    assert "METEOR's Java process failed (BrokenPipeError" in dead_result["unavailable"]["meteor"]
    assert isinstance(_metric(dead_result, "cider"), float)  # the rest of the COCO metrics are still there


def _metric(result: dict, name: str):
    assert name in result, sorted(result)  # compare_<model>.json: metric -> value (null: see "unavailable")
    return result[name]


@pytest.mark.slow
def test_a_dead_meteor_is_null_with_its_reason_and_close_never_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    from vlmkit.evaluation.coco_metrics import CocoScorer

    _kill_java_on_call(monkeypatch, 2)
    scorer = CocoScorer()
    result = scorer.submit(["a red vase", "a blue jug"], ["a red vase with a warrior", "a black jug"]).result(600)
    assert result.reason is None and "meteor" not in result.corpus
    assert "BrokenPipeError" in result.reasons["meteor"] or "ValueError" in result.reasons["meteor"]
    assert set(result.corpus) == {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider"}
    again = scorer.submit(["a red vase"], ["a red vase"]).result(600)  # a fresh Java process for the next model
    assert again.corpus["meteor"] == pytest.approx(1.0, abs=0.01)
    closer = threading.Thread(target=scorer.close)
    closer.start()
    closer.join(timeout=120)
    assert not closer.is_alive()


# ---- render: no staging folder survives a crashed worker -----------------------------------------------------------
@pytest.mark.slow
def test_renderer_crashes_leave_no_staging_folder_run_after_run(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_bad_inputs import _textured_glb
    from vlmkit.render.engine import platform_problem

    if platform_problem("osmesa"):
        pytest.skip(f"render needs OSMesa: {platform_problem('osmesa')}")
    import render

    inputs = tmp_path / "in"
    for name in ("a_1.glb", "crash_2.glb", "c_3.glb", "d_4.glb"):
        _textured_glb(inputs / name)
    monkeypatch.setenv("VLMKIT_RENDER_CRASH_ON", "crash_2.glb")
    for attempt in range(5):  # the leftover was a race: repeat the crash run
        out = tmp_path / f"out{attempt}"
        assert render.main(["--input", str(inputs), "--output_dir", str(out), "--num_workers", "2", "--views",
                            "front", "--size", "32", "--no_progress"]) == 1
        names = sorted(p.name for p in out.iterdir())
        assert names == ["a_1.glb_shaded", "c_3.glb_shaded", "d_4.glb_shaded", "render_report.json",
                         "views.json"], (attempt, names)


# ---- retrieval train: resume past an incomplete checkpoint ---------------------------------------------------------
def test_resume_last_skips_an_incomplete_checkpoint(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from vlmkit.io import InputError
    from vlmkit.retrieval.model import TRAINING_INFO
    from vlmkit.retrieval.prepare import checkpoint_problem, resolve_resume
    from vlmkit.training.checkpoint import file_manifest

    out = tmp_path / "run"
    for step, complete in ((2, True), (4, False)):
        folder = out / "checkpoints" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"x" * 100)
        (folder / "optimizer.pt").write_bytes(b"y" * 50)
        write_json(folder / TRAINING_INFO, {"global_step": step, "files": file_manifest(folder)})
        if not complete:  # killed while the optimizer state was being written
            (folder / "optimizer.pt").write_bytes(b"y" * 10)
    assert checkpoint_problem(out / "checkpoints" / "checkpoint-4") == "optimizer.pt: 10 bytes, 50 when saved"
    assert resolve_resume(out, "last", False) == out / "checkpoints" / "checkpoint-2"
    assert "checkpoint-4 is incomplete" in caplog.text
    with pytest.raises(InputError, match="checkpoint-4: incomplete checkpoint .optimizer.pt: 10 bytes"):
        resolve_resume(out, str(out / "checkpoints" / "checkpoint-4"), False)
    (out / "checkpoints" / "checkpoint-2" / TRAINING_INFO).unlink()  # a save that never finished
    with pytest.raises(InputError, match="no complete checkpoint to resume from"):
        resolve_resume(out, "last", False)


def test_checkpoints_written_by_training_are_complete(retrieval_run: Path) -> None:
    from vlmkit.retrieval.model import TRAINING_INFO
    from vlmkit.retrieval.prepare import checkpoint_problem, checkpoints_in

    found = checkpoints_in(retrieval_run)
    assert found and all(checkpoint_problem(c) is None for c in found)
    assert all("optimizer.pt" in read_json(c / TRAINING_INFO)["files"] for c in found)


# ---- a reader never sees a torn result set -------------------------------------------------------------------------
def test_a_reader_between_a_killed_commit_and_the_next_run_sees_one_complete_set(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    truth = tmp_path / "gt.json"
    ids = ["0000000a-aaaa-4bbb-8ccc-dddddddddddd_1", "0000000b-aaaa-4bbb-8ccc-dddddddddddd_2"]

    def records(captions: list[str], by: str | None = None) -> list[dict]:
        return [{"images": [f"{i}_ac001001.jpg"], "caption": c, **({"data_by": by} if by else {})}
                for i, c in zip(ids, captions, strict=True)]

    write_json(truth, records(["a red figure amphora with warriors", "a black figure lekythos"]))
    write_json(tmp_path / "old" / "image_good.json", records(["a red amphora", "a lekythos"], "good"))
    write_json(tmp_path / "new" / "image_good.json", records(["a red figure amphora", "a black figure jug"], "good"))
    out = tmp_path / "results"
    common = ["--ground_truth", truth, "--output_dir", out, "--no_coco", "--clip_model", "none", "--metrics",
              "lexical"]
    assert run_cli(compare.main, ["--generated", tmp_path / "old" / "image_good.json", *common], capsys)[0] == 0
    old = {n: (out / n).read_bytes() for n in COMPARE_FILES}
    step = len(COMPARE_FILES) + 3  # every file staged, the manifest written, two files published: a torn folder
    proc = subprocess.run([sys.executable, "-c", KILL_AT_STEP, str(step), "compare", "--generated",
                           str(tmp_path / "new" / "image_good.json"), *map(str, common)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr[-2000:]
    assert list(out.glob(".vlmkit-commit-*"))  # the torn state exists on disk ...
    summary = [n for n in COMPARE_FILES if n.endswith(".json")][-1]
    read_json(out / summary)  # ... and any reader of the toolkit completes it before reading
    new = {n: (out / n).read_bytes() for n in COMPARE_FILES}
    assert all(new[n] != old[n] for n in COMPARE_FILES) and not list(out.glob(".vlmkit-commit-*"))


def test_a_reader_waits_for_a_live_commit_that_is_publishing(tmp_path: Path, monkeypatch) -> None:
    from vlmkit import io

    a, b = tmp_path / "a.json", tmp_path / "b.json"
    io.write_all_or_nothing({a: '{"v": 1}\n', b: '{"v": 1}\n'})
    published = threading.Event()
    results: list = []

    def slow_step(name: str) -> None:
        if name == "published a.json":
            published.set()
            time.sleep(0.5)  # a reader arrives now: a.json is new, b.json still old

    monkeypatch.setattr(io, "_commit_step", slow_step)
    writer = threading.Thread(target=io.write_all_or_nothing, args=({a: '{"v": 2}\n', b: '{"v": 2}\n'},))
    writer.start()
    published.wait(10)
    results.append(read_json(b))
    writer.join(10)
    assert results == [{"v": 2}]



def test_the_parent_removes_what_dead_workers_staged_and_restores_a_retired_folder(tmp_path: Path) -> None:
    """The crash loop above hits the race only sometimes (0 of 5 runs here without the fix, 1 in 3 full suite
    runs under load); this pins the clean-up itself with folders named as workers name them."""
    from vlmkit.render.batch import clean_after_dead_workers

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # a pid that has exited
    live = str(os.getpid())
    out = tmp_path / "views"
    for name in (f".render-staging-a_1.glb_shaded-{dead}", f".render-staging-b_2.glb_shaded-{live}",
                 f".render-retired-c_3.glb_shaded-{dead}", f".render-retired-d_4.glb_shaded-{dead}", "d_4.glb_shaded"):
        (out / name).mkdir(parents=True)
        (out / name / "front.jpg").write_bytes(name.encode())
    cleaned = clean_after_dead_workers(out)
    assert len(cleaned) == 3
    assert sorted(p.name for p in out.iterdir()) == [f".render-staging-b_2.glb_shaded-{live}", "c_3.glb_shaded",
                                                     "d_4.glb_shaded"]
    assert (out / "c_3.glb_shaded" / "front.jpg").read_bytes() == f".render-retired-c_3.glb_shaded-{dead}".encode()
    assert (out / "d_4.glb_shaded" / "front.jpg").read_bytes() == b"d_4.glb_shaded"


# ---- train.sh --tiny with an eval file of one's own ---------------------------------------------------------------
@pytest.mark.slow
def test_train_sh_tiny_reads_a_users_eval_data_relative_to_its_own_folder(tmp_path: Path) -> None:
    import os

    from tests.fixtures.caption_data import make_image, write_jsonl
    from vlmkit.samples import caption_sample

    data = tmp_path / "mine"
    make_image(data / "img" / "vase.jpg", (40, 40))
    write_jsonl(data / "eval.jsonl", [caption_sample("vase_1", ["img/vase.jpg"], "a red vase").to_json()])
    env = {**os.environ, "PYTHON": sys.executable, "TINY_DIR": str(tmp_path / "tiny"), "ARCH": "qwen2_5_vl"}
    proc = subprocess.run(["sh", str(REPO / "train.sh"), "--tiny", "--eval_data", str(data / "eval.jsonl"),
                           "--preflight_only"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = read_json(tmp_path / "tiny" / "output" / "preflight.json")
    assert report["eval"]["samples"] == 1 and report["eval"]["kept"] == 1
    assert report["eval"]["data"].endswith("mine/eval.jsonl")
