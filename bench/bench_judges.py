#!/usr/bin/env python3
"""What a judge costs: seconds per 1,000 captions for each judge metric, through the judge stage compare.py runs
(prompt rendering, batched greedy generation or the FLEUR digit passes, parsing, the sqlite cache), fresh cache.

    python bench/bench_judges.py                       # the tiny random Qwen2.5-VL (built here), 48 captions
    python bench/bench_judges.py --judge_model DIR --captions 200 --device cuda   # a real local judge

The tiny model answers with random tokens until --max_new_tokens, so its generation length is the worst case.
Then the cached re-run (every answer from sqlite, judge not loaded) is timed too.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vlmkit.evaluation.matching import GroundTruth, match_by_id  # noqa: E402
from vlmkit.judges.stage import JudgeOptions, JudgeStage  # noqa: E402
from vlmkit.multiview import find_object_dirs_by_id  # noqa: E402
from vlmkit.records import load_caption_records  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


def jobs(n_captions: int):
    """The examples' 6 objects x their 3 models' captions, repeated with a suffix until n_captions are distinct."""
    truth_path = EXAMPLES / "groundTruth.json"
    truth = GroundTruth.from_records(truth_path, load_caption_records(truth_path))
    files = sorted((EXAMPLES / "captions").glob("image_*.json"))
    out = []
    for r in range(max(1, round(n_captions / (len(files) * len(truth.records))))):
        for path in files:
            matched = match_by_id(load_caption_records(path), path, truth, False)
            matched.generated[:] = [f"{c} (variant {r})" for c in matched.generated]
            out.append((f"{path.stem}-{r}", matched))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--judge_model", type=Path, default=None, help="default: build the tiny random Qwen2.5-VL")
    parser.add_argument("--captions", type=int, default=48)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        judge = args.judge_model
        if judge is None:
            from demo.tiny import BUILDERS

            judge = BUILDERS["qwen2_5_vl"](Path(tmp) / "judge")
        work = jobs(args.captions)
        n = sum(len(m) for _, m in work)
        objects = find_object_dirs_by_id(EXAMPLES / "multiview_images")
        print(f"judge {judge.name}: {n} captions, batch {args.batch_size}, max_new_tokens {args.max_new_tokens}, "
              f"{args.device}; {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
        for metric in ("clair", "fleur", "attribute_f1"):
            cache = Path(tmp) / f"{metric}.sqlite"
            options = JudgeOptions(model=judge, metrics=(metric,), batch_size=args.batch_size,
                                   max_new_tokens=args.max_new_tokens, device=args.device)
            stage = JudgeStage(options, cache, objects)
            _ = stage.model  # load outside the timing
            start = time.perf_counter()
            stage.judge_all(work)
            seconds = time.perf_counter() - start
            again = JudgeStage(options, cache, objects)
            start = time.perf_counter()
            again.judge_all(work)
            cached = time.perf_counter() - start
            print(f"  {metric:13s} {1000 * seconds / n:8.1f} s per 1,000 captions (new), "
                  f"{1000 * cached / n:6.2f} s cached (judge loaded: {again.loaded})")


if __name__ == "__main__":
    main()
