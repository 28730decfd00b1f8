#!/usr/bin/env python3
"""Speed of rate.py: 10,000 synthetic votes over 8 models, 1,000 bootstrap resamples over 1,000 items (the issue's
target: <= 10 s), end to end through `run_rating` (read + validate the JSONL, fit, bootstrap, write the three files).

    python bench/bench_rate.py                     # 10,000 votes, 8 models, B=1000, 3 repeats
    python bench/bench_rate.py --votes 100000 --repeats 1 --captions   # + length-controlled fit (B=200)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from vlmkit.ratings.analysis import RateOptions  # noqa: E402
from vlmkit.ratings.rating_files import RateRun, run_rating  # noqa: E402
from vlmkit.votes import append_votes, make_vote  # noqa: E402


def synthetic_votes(n: int, k: int, items: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    strength = np.linspace(-1.0, 1.0, k)
    models = [f"model_{i}" for i in range(k)]
    out = []
    for v in range(n):
        i, j = rng.choice(k, 2, replace=False)
        u = rng.random()
        winner = ("tie" if u < 0.1 else "both_bad" if u < 0.13 else
                  "left" if rng.random() < 1 / (1 + np.exp(strength[j] - strength[i])) else "right")
        shown = [models[i], models[j]] if rng.random() < 0.5 else [models[j], models[i]]
        out.append(make_vote(item_id=f"item_{v % items}", left=models[i], right=models[j], winner=winner,
                             voter=f"expert_{v % 5}", shown_order=shown, time="2026-12-04T10:00:00+00:00"))
    return out


def captions_file(folder: Path, k: int, items: int) -> list[Path]:
    rng = np.random.default_rng(1)
    paths = []
    for i in range(k):
        records = [{"images": [f"item_{n}_1_shaded.glb"], "caption": " ".join(["word"] * int(rng.integers(5, 80))),
                    "data_by": f"model_{i}"} for n in range(items)]
        path = folder / f"image_model_{i}.json"
        path.write_text(json.dumps(records))
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--votes", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--bootstrap", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--captions", action="store_true", help="also the length analyses (captions given)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        votes = folder / "votes.jsonl"
        append_votes(votes, synthetic_votes(args.votes, args.models, args.items))
        captions = captions_file(folder, args.models, args.items) if args.captions else []
        times = []
        for r in range(args.repeats):
            start = time.perf_counter()
            data = run_rating(RateRun(votes=[votes], output_dir=folder / f"out{r}", captions=captions,
                                      options=RateOptions(resamples=args.bootstrap)))
            times.append(time.perf_counter() - start)
    load = os.getloadavg()
    print(f"rate.py: {args.votes} votes, {args.models} models, {args.items} items, B={args.bootstrap}"
          f"{' + length control (B=200)' if args.captions else ''}: median {statistics.median(times):.2f} s "
          f"(runs {', '.join(f'{t:.2f}' for t in times)}); fit+bootstrap {data['fit']['seconds']:.2f} s; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load[0]:.2f}")


if __name__ == "__main__":
    main()
