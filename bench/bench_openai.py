"""Benchmark: captions/s of `qwen.py --backend openai` at several --concurrency values against a STAND-IN server.

    python bench/bench_openai.py                                   # concurrency 1, 8, 32; 200 ms per answer
    python bench/bench_openai.py --concurrency 1,8,32,64 --delay 0.5 --views front

The stand-in (demo.openai_standin, not a model) runs in its own process on 127.0.0.1 and answers every
request after a fixed `--delay`, so the ideal speed-up at concurrency c is c: what is lost measures the client side
(image loading and checks, base64, the openai client, the runner's writes). Each concurrency level captions
`--seconds` x c / delay objects (copies of examples/multiview_images, six 256-px views each) with qwen.py's own
code path, once as warm-up and then --repeats times; the fastest run counts. Prints one JSON line; also written to
bench/out/openai.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import qwen  # noqa: E402
from vlmkit.io import read_json  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--delay", type=float, default=0.2, help="the stand-in's seconds per answer")
    parser.add_argument("--seconds", type=float, default=3.0, help="ideal duration of each run")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--views", default="front,back,left,right,top,bottom")
    parser.add_argument("--output", default=str(REPO / "bench" / "out" / "openai.json"))
    return parser.parse_args(argv)


def make_objects(root: Path, n: int) -> Path:
    """`n` object folders named like renders, each a copy of one example vase's views."""
    examples = sorted(p for p in (REPO / "examples" / "multiview_images").iterdir() if p.is_dir())
    out = root / f"objects_{n}"
    for i in range(n):
        shutil.copytree(examples[i % len(examples)], out / f"00000000-0000-4000-8000-{i:012d}_1_ac001001"
                                                         f"_textured_4k.glb_shaded")
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_standin(delay: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "demo.openai_standin", "--port", str(port), "--delay",
                             str(delay)], cwd=REPO, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/models", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the stand-in server did not start")


def one_run(url: str, objects: Path, out: Path, concurrency: int, views: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    code = qwen.main(["--backend", "openai", "--api_base", url, "--api_model", "standin", "--input_dir", str(objects),
                      "--output_dir", str(out), "--concurrency", str(concurrency), "--views", views,
                      "--no_progress"])
    seconds = time.perf_counter() - started
    report = read_json(out / "standin_caption_generation_report.json")
    if code != 0 or report["totals"]["captioned"] != report["totals"]["items"]:
        raise RuntimeError(f"run failed: {report['status']}, {report['failures'][:1]}")
    return report["totals"]["captioned"] / seconds


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import logging

    logging.disable(logging.WARNING)  # the per-run INFO lines would drown the figures
    levels = [int(c) for c in args.concurrency.split(",")]
    proc, url = start_standin(args.delay)
    tmp = tempfile.TemporaryDirectory()
    results: dict[str, dict] = {}
    try:
        for c in levels:
            n = max(c, round(args.seconds * c / args.delay))
            objects = make_objects(Path(tmp.name), n)
            one_run(url, objects, Path(tmp.name) / "out", c, args.views)  # warm-up: connections, caches
            best = max(one_run(url, objects, Path(tmp.name) / "out", c, args.views) for _ in range(args.repeats))
            results[str(c)] = {"objects": n, "captions_per_s": round(best, 2), "ideal": round(c / args.delay, 2)}
            print(f"concurrency {c:3d}: {best:7.2f} captions/s (ideal {c / args.delay:.1f}) over {n} objects",
                  file=sys.stderr, flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        tmp.cleanup()
    base = results[str(levels[0])]["captions_per_s"]
    for c in levels:
        results[str(c)]["speedup_vs_first"] = round(results[str(c)]["captions_per_s"] / base, 2)
    summary = {"bench": "openai_backend_vs_standin", "delay_s": args.delay, "views": args.views.split(","),
               "results": results, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
               "load_average": [round(x, 2) for x in os.getloadavg()],
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
