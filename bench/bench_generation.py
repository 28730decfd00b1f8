"""Benchmark: multi-view caption throughput (objects/s) of qwen.py's pipeline at several batch sizes.

    python bench/bench_generation.py                       # tiny random Qwen2.5-VL on CPU (the README's CPU figure)
    python bench/bench_generation.py --model_path ./models/Qwen2.5-VL-3B-Instruct --device cuda \
        --num_objects 64 --batch_sizes 1,8,16 --max_new_tokens 64            # the real model on a GPU

It runs exactly what qwen.py runs (qwen.make_captioner: qwen_vl_utils resizing, the processor's chat template, left
padding, batched generate, the shared runner) on `--num_objects` objects taken round-robin from --input_dir
(default: examples/multiview_images, 6 vases x 6 views), with the default English prompt. The model is loaded once;
each batch size gets one warm-up batch, then --repeats timed runs (interleaved across batch sizes) of which the best
counts (other processes on a shared machine only ever slow a run down). Results: stdout, bench/out/generation.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import qwen  # noqa: E402
from vlmkit.generation.items import discover_items  # noqa: E402
from vlmkit.generation.runner import caption_items  # noqa: E402
from vlmkit.ids import VIEWS  # noqa: E402
from vlmkit.options import parse_options  # noqa: E402
from vlmkit.prompt import MULTIVIEW_PROMPT, build_prompt  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_path", default=None, help="Qwen2.5-VL folder (default: build a tiny random one)")
    parser.add_argument("--input_dir", default=str(REPO / "examples" / "multiview_images"))
    parser.add_argument("--num_objects", type=int, default=48)
    parser.add_argument("--batch_sizes", default="1,8")
    parser.add_argument("--max_new_tokens", type=int, default=32, help="about one caption's length")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per batch size; the fastest counts")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--min_pixels", type=int, default=None, help="default: 784 for the tiny model, else qwen.py's")
    parser.add_argument("--max_pixels", type=int, default=None, help="default: 3136 for the tiny model, else qwen.py's")
    parser.add_argument("--output", default=str(REPO / "bench" / "out" / "generation.json"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    tiny = args.model_path is None
    tmp = tempfile.TemporaryDirectory()
    model_path = args.model_path
    if tiny:
        from demo.tiny.qwen2_5_vl import MAX_PIXELS, MIN_PIXELS, build_tiny_qwen2_5_vl

        model_path = str(build_tiny_qwen2_5_vl(Path(tmp.name) / "Qwen2.5-VL-tiny"))
        args.min_pixels = args.min_pixels or MIN_PIXELS
        args.max_pixels = args.max_pixels or MAX_PIXELS
    qwen_argv = ["--model_path", model_path, "--device", args.device, "--dtype", args.dtype,
                 "--max_new_tokens", str(args.max_new_tokens)]
    if args.min_pixels:
        qwen_argv += ["--min_pixels", str(args.min_pixels)]
    if args.max_pixels:
        qwen_argv += ["--max_pixels", str(args.max_pixels)]
    qwen_options = parse_options(qwen.QwenOptions, qwen_argv, description=None)

    base_items, _ = discover_items(args.input_dir, VIEWS, "multiview")
    items = [base_items[i % len(base_items)] for i in range(args.num_objects)]
    t0 = time.perf_counter()
    captioner = qwen.make_captioner(qwen_options)
    load_seconds = time.perf_counter() - t0

    def prompt_for(_item, views):
        return build_prompt(MULTIVIEW_PROMPT, views)

    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    runs: dict[int, list] = {b: [] for b in batch_sizes}
    for batch_size in batch_sizes:  # warm-up
        caption_items(items[:batch_size], captioner, prompt_for=prompt_for, batch_size=batch_size,
                      on_batch=lambda _s: None, progress=False)
    for _ in range(args.repeats):  # interleaved, so every batch size sees the same machine load
        for batch_size in batch_sizes:
            runs[batch_size].append(caption_items(items, captioner, prompt_for=prompt_for, batch_size=batch_size,
                                                  on_batch=lambda _s: None, progress=False))
    results = []
    for batch_size in batch_sizes:
        best = min(runs[batch_size], key=lambda s: s.seconds)
        rate = best.attempted / best.seconds
        results.append({"batch_size": batch_size, "objects": best.attempted, "captioned": best.captioned,
                        "seconds": round(best.seconds, 3), "objects_per_second": round(rate, 3),
                        "all_runs_seconds": [round(s.seconds, 3) for s in runs[batch_size]]})
        print(f"batch_size={batch_size:3d}: {rate:8.2f} objects/s ({best.attempted} objects in {best.seconds:.2f} s, "
              f"best of {args.repeats})")
    base = results[0]["objects_per_second"]
    for row in results:
        row["speedup_vs_first"] = round(row["objects_per_second"] / base, 2)
    print("speed-up vs batch_size={}: {}".format(results[0]["batch_size"],
                                                  ", ".join(f"{r['batch_size']}: {r['speedup_vs_first']}x"
                                                            for r in results)))
    report = {
        "model": "tiny random Qwen2.5-VL (tests/fixtures)" if tiny else model_path,
        "device": captioner.describe()["device"],
        "dtype": captioner.describe()["dtype"],
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "views_per_object": len(VIEWS),
        "max_new_tokens": args.max_new_tokens,
        "min_pixels": qwen_options.resolution.min_pixels,
        "max_pixels": qwen_options.resolution.max_pixels,
        "model_load_seconds": round(load_seconds, 2),
        "results": results,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    tmp.cleanup()
    return report


if __name__ == "__main__":
    main()
