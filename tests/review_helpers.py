"""Shared by the review-app tests: one compare run of the examples per session, a free port, a review.py server."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
_RUNS: dict[str, Path] = {}

# What a hostile caption would try: a script, an event handler, markup that would restyle the page.
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold?</b> & "quotes"'


def compare_run(base: Path) -> Path:
    """compare.py on the bundled examples (captions, ground truth, renders) into `base`/results, once per session."""
    if "examples" not in _RUNS:
        out = base / "results"
        captions = sorted(str(p) for p in (EXAMPLES / "captions").glob("image_*.json"))
        command = [sys.executable, str(REPO / "compare.py"), "--generated", *captions,
                   "--ground_truth", str(EXAMPLES / "groundTruth.json"),
                   "--images_dir", str(EXAMPLES / "multiview_images"), "--output_dir", str(out), "--bootstrap", "50"]
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        _RUNS["examples"] = out
    return _RUNS["examples"]


def per_sample(results: Path) -> dict[str, dict[str, dict]]:
    """model -> item id -> its per-sample record, read straight from compare.py's files (independent of the app)."""
    summary = json.loads((results / "batch_evaluation_summary.json").read_text())
    out: dict[str, dict[str, dict]] = {}
    for row in summary["models"]:
        lines = (results / f"compare_{row['model_name']}_per_sample.jsonl").read_text().splitlines()
        out[row["model_name"]] = {r["id"]: r for r in map(json.loads, lines)}
    return out


def hostile_copy(results: Path, dest: Path) -> tuple[Path, str, str]:
    """A copy of the run where one model's captions are HOSTILE + " #<n>": (folder, first item id, model)."""
    shutil.copytree(results, dest)
    summary = json.loads((dest / "batch_evaluation_summary.json").read_text())
    model = summary["models"][1]["model_name"]
    path = dest / f"compare_{model}_per_sample.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for n, row in enumerate(rows):
        row["generated"] = f"{HOSTILE} #{n}"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dest, rows[0]["id"], model


def digest(folder: Path) -> str:
    """One hash over every file's name and bytes: a folder left exactly as it was."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(str(p.relative_to(folder)).encode() + p.read_bytes() for p in files)).hexdigest()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def review_server(results: Path, votes: Path, *extra: str):
    """review.py in a subprocess on a free loopback port; always stopped (and reaped) on exit."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(REPO / "review.py"), "--results", str(results), "--votes", str(votes),
                             "--port", str(port), *extra], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"review.py exited with {proc.returncode}: {proc.stderr.read()}")
            try:
                with urllib.request.urlopen(f"{base}/api/meta", timeout=5):
                    break
            except OSError:
                if time.time() > deadline:
                    raise AssertionError("review.py did not answer within 90 s") from None
                time.sleep(0.2)
        proc.base_url = base  # type: ignore[attr-defined]
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=20)
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
