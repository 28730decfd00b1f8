"""Streaming filter at scale: samples/s and peak RSS (all processes) for 1 M and 10 M synthetic samples, with the
local and the Ray executor.

    nice python bench/bench_scale.py --samples 1000000 --executor local --np 2
    nice python bench/bench_scale.py --samples 10000000 --executor ray --num_workers 2

Generates (once, cached under --work) a Data-Juicer JSONL of N captions (3-40 words, some repeated phrases), each
with one of 8 small JPEGs, then runs `python -m dataprocess.filter` in a subprocess with a recipe of all five
operators (words_num, word_repetition, character_repetition, text_length, image_shape), and samples the RSS of the
subprocess and every descendant (pool workers; Ray's raylet, GCS, workers) every 0.5 s. Peak RSS is the largest
sum seen (Ray's shared object store pages count once per process mapping them: an upper bound). Reports JSON:
samples/s (samples / wall time of the filter subprocess, start-up and the commit included), peak RSS, load average.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECIPE = """process:
  - words_num_filter: {min_num: 6, max_num: 60}
  - word_repetition_filter: {rep_len: 3, max_ratio: 0.3}
  - character_repetition_filter: {rep_len: 10, max_ratio: 0.15}
  - text_length_filter: {min_len: 20, max_len: 300}
  - image_shape_filter: {min_width: 224, min_height: 224}
"""
WORDS = ("amphora krater kylix lekythos hydria red black figure painted vase scene warrior horse chariot goddess "
         "meander palmette handle neck shoulder foot body rim satyr maenad owl athena").split()


def make_data(path: Path, n: int) -> None:
    from PIL import Image

    images = []
    for k in range(8):
        img = path.parent / f"img{k}.jpg"
        Image.new("RGB", (150 + 40 * k, 300 - 10 * k), (k * 30, 90, 160)).save(img, quality=70)
        images.append(img.name)
    rng = random.Random(0)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as out:
        for i in range(n):
            words = [rng.choice(WORDS) for _ in range(rng.randint(3, 40))]
            if i % 7 == 0:
                words += words[:6] * 2
            out.write(json.dumps({"id": f"s{i}", "text": " ".join(words), "images": [images[i % 8]]}) + "\n")
    os.replace(tmp, path)


def tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run(args: argparse.Namespace) -> dict:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"data_{args.samples}.jsonl"
    if not data.is_file():
        t0 = time.perf_counter()
        make_data(data, args.samples)
        print(f"generated {data} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    recipe = work / "recipe.yaml"
    recipe.write_text(RECIPE)
    out = work / f"out_{args.executor}_{args.samples}"
    cmd = [sys.executable, "-m", "dataprocess.filter", "--recipe", str(recipe), "--dataset_path", str(data),
           "--export_path", str(out / "kept.jsonl"), "--no_progress", "--chunk_size", str(args.chunk_size),
           "--executor", args.executor]
    cmd += ["--np", str(args.np)] if args.executor == "local" else ["--num_workers", str(args.num_workers)]
    if out.exists():
        import shutil

        shutil.rmtree(out)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(REPO)}
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = [0]

    progress = out.with_name(out.name + ".progress.jsonl")
    work = out / ".kept.jsonl.work"

    def sample() -> None:
        last = 0.0
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss(proc.pid))
            now = time.perf_counter()
            if now - last > 30:  # a progress line, so a run stopped early still reports its rate and memory
                last = now
                done = len(list(work.glob("chunk-*.json"))) if work.is_dir() else 0
                with open(progress, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"elapsed_s": round(now - start, 1), "chunks_done": done,
                                             "samples_done": done * args.chunk_size,
                                             "peak_rss_mib": round(peak[0] / 2**20, 1),
                                             "load": [round(x, 2) for x in os.getloadavg()]}) + "\n")
            time.sleep(0.5)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"filter failed ({proc.returncode}): {err[-2000:]}")
    summary = json.loads((out / "kept_summary.json").read_text())
    result = {"samples": args.samples, "executor": args.executor,
              "workers": args.np if args.executor == "local" else args.num_workers, "chunk_size": args.chunk_size,
              "wall_seconds": round(seconds, 1), "samples_per_second": round(args.samples / seconds, 1),
              "filter_seconds": summary["seconds"], "kept": summary["kept"],
              "peak_rss_mib": round(peak[0] / 2**20, 1), "load_before": [round(x, 2) for x in load_before],
              "load_after": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if not args.keep_outputs:
        import shutil

        shutil.rmtree(out)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=1_000_000)
    p.add_argument("--executor", choices=("local", "ray"), default="local")
    p.add_argument("--np", type=int, default=2)
    p.add_argument("--num_workers", type=int, default=2)
    p.add_argument("--chunk_size", type=int, default=20000)
    p.add_argument("--work", default="/tmp/vlmkit_bench_scale")
    p.add_argument("--keep_outputs", action="store_true")
    p.add_argument("--out", help="append the result as one JSON line to this file")
    args = p.parse_args()
    result = run(args)
    print(json.dumps(result))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
