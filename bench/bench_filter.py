"""Filter throughput on 10,000 generated samples with dataprocess/recipes/blip2_caption_filter.yaml.

    python bench/bench_filter.py [--samples 10000] [--np 2] [--repeats 3]

Generates Data-Juicer JSONL captions (3-70 words, some repeated phrases) with one small JPEG each (distinct
files, 150-400 px sides), then runs dataprocess/recipes/blip2_caption_filter.yaml (words_num, word_repetition,
image_shape, character_repetition, text_length). Reports the best of `--repeats` runs of
(a) the filter itself (`run_filter`: stats + decisions, image headers read) and
(b) the whole CLI (`python -m dataprocess.filter` minus interpreter start: read input, filter, write 4 outputs).
Other processes may share the CPU: run it a few times and quote the best and the spread. The CPU time used
(this process + its workers) is reported too: it does not depend on how busy the machine is, and
`np / cpu seconds per sample` is the throughput the same work reaches on `np` otherwise idle cores.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dataprocess.dataset import load_dataset  # noqa: E402
from dataprocess.filter import main as filter_main  # noqa: E402
from dataprocess.filter import run_filter  # noqa: E402
from dataprocess.recipe import load_recipe  # noqa: E402

RECIPE = REPO / "dataprocess" / "recipes" / "blip2_caption_filter.yaml"
VOCAB = ("a an the red black white painted vase amphora lekythos krater handle neck body foot figure figures warrior "
         "horse chariot scene meander band lid lip shoulder decoration glaze terracotta ancient greek attic with of "
         "on and in at two three small large tall round").split()


def make_dataset(folder: Path, n: int, seed: int = 0) -> Path:
    from PIL import Image

    rnd = random.Random(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        name = f"images/{i:05d}.jpg"
        Image.new("RGB", (rnd.randint(150, 400), rnd.randint(150, 400)), (i % 256, 90, 160)).save(folder / name)
        words = [rnd.choice(VOCAB) for _ in range(rnd.randint(3, 70))]
        if rnd.random() < 0.1:  # some degenerate, repetitive captions
            words = (words[:3] * 30)[: len(words)]
        text = " ".join(words).capitalize() + "."
        rows.append(json.dumps({"id": f"s{i}", "text": text, "images": [name]}))
    path = folder / "data.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--np", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        data = make_dataset(tmp, args.samples)
        print(f"generated {args.samples} samples + images in {time.perf_counter() - t0:.1f} s")
        recipe = load_recipe(RECIPE)
        dataset = load_dataset(data)
        core, cli, cpu = [], [], []
        for _ in range(args.repeats):
            before = os.times()
            result = run_filter(dataset, recipe, np=args.np, progress=False)
            after = os.times()
            cpu.append(sum(after[i] - before[i] for i in range(4)) / args.samples)
            core.append(args.samples / result.seconds)
            t = time.perf_counter()
            filter_main(["--recipe", str(RECIPE), "--dataset_path", str(data), "--export_path",
                         str(tmp / "out" / "kept.jsonl"), "--np", str(args.np), "--no_progress"])
            cli.append(args.samples / (time.perf_counter() - t))
        kept = len(result.kept_indices)
        print(f"kept {kept} of {args.samples}; np={args.np}, cpu_count={os.cpu_count()}")
        print(f"filter (run_filter):     best {max(core):,.0f} samples/s  (runs: "
              f"{', '.join(f'{x:,.0f}' for x in core)}; median {statistics.median(core):,.0f})")
        print(f"filter CPU time: {min(cpu) * 1e6:.0f} us/sample (all processes) -> "
              f"{args.np / min(cpu):,.0f} samples/s on {args.np} idle cores")
        print(f"whole CLI (read+filter+write): best {max(cli):,.0f} samples/s  (runs: "
              f"{', '.join(f'{x:,.0f}' for x in cli)}; median {statistics.median(cli):,.0f})")


if __name__ == "__main__":
    main()
