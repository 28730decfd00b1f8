#!/usr/bin/env python3
"""Retrieval benchmarks: training steps/s with and without GradCache, and evaluation time/memory at scale.

    python bench/bench_retrieval.py                       # both parts, the defaults below
    python bench/bench_retrieval.py --part train --steps 30 --batch_size 32
    python bench/bench_retrieval.py --part eval --images 100000 --dim 512 --dtype float16

train: `retrieval.py train` (the real pipeline: sentence-transformers trainer, LoRA, NO_DUPLICATES batches, images
opened per batch) on the tiny word-level CLIP (demo.tiny.word_clip) and 256 synthetic shape images, at
--batch_size pairs per step, once with plain InfoNCE and once with GradCache (--chunk pairs per mini-batch); steps/s
is the HF Trainer's own train_steps_per_second (no model loading, no merge). On the tiny model the figure measures
the pipeline's overhead, not GPU arithmetic: GradCache runs every forward twice, so it is slower per step at the same
batch; its point is memory on real models (batch 128+ at the memory of one chunk).

eval: `evaluate_embeddings` (what retrieval.py eval runs after encoding) on random L2-normalised embeddings:
--images images with --captions_per_image captions each, both directions (text->image and image->text with all of an
image's captions relevant). Reports wall time and peak memory: tracemalloc's peak of Python/numpy allocations during
the evaluation, and the process's peak RSS (ru_maxrss, includes the interpreter and the embedding matrices).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def bench_train(args: argparse.Namespace) -> list[dict]:
    from demo.tiny.word_clip import build_tiny_clip_words, make_shape_pairs
    from vlmkit.retrieval.config import load_config
    from vlmkit.retrieval.train import run

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        model = build_tiny_clip_words(Path(tmp) / "clip_words")
        data = make_shape_pairs(Path(tmp) / "shapes", n=256, val_every=10**9)
        for name, extra in (("InfoNCE", []), (f"GradCache (chunk {args.chunk})",
                                               ["use_gradient_cache=true", f"gradient_cache_chunk_size={args.chunk}"])):
            out = Path(tmp) / name.split()[0]
            overrides = [f"model_name_or_path={model}", f"data_path={data / 'train.jsonl'}", f"output_dir={out}",
                         "eval_strategy=no", f"max_steps={args.steps}", f"batch_size={args.batch_size}",
                         "save_steps=0", "save_total_limit=1", "merge=false", "logging_steps=1000",
                         "learning_rate=1e-3", *extra]
            run(load_config(None, overrides))
            info = json.loads((out / "vlmkit_retrieval.json").read_text())
            rows.append({"run": name, "batch_size": args.batch_size, "steps": info["global_step"],
                         "steps_per_s": info["train_steps_per_second"], "train_s": info["train_runtime"]})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_eval(args: argparse.Namespace) -> dict:
    from vlmkit.retrieval.data import EvalSet
    from vlmkit.retrieval.evaluate import evaluate_embeddings

    rng = np.random.default_rng(0)
    dtype = np.float16 if args.dtype == "float16" else np.float32

    def unit(n: int) -> np.ndarray:
        out = np.empty((n, args.dim), dtype=dtype)
        for start in range(0, n, 10_000):  # generated in blocks: no full float64 temporary
            block = rng.standard_normal((min(10_000, n - start), args.dim), dtype=np.float32)
            out[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
        return out

    n_captions = args.images * args.captions_per_image
    images, texts = unit(args.images), unit(n_captions)
    data = EvalSet([f"{i}.png" for i in range(args.images)], [""] * n_captions,
                   np.repeat(np.arange(args.images), args.captions_per_image))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    started = time.perf_counter()
    ev = evaluate_embeddings(images, texts, data, progress=True)
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    row = {"images": args.images, "captions": n_captions, "dim": args.dim, "dtype": args.dtype,
           "embeddings_MB": round((images.nbytes + texts.nbytes) / 2**20, 1), "eval_s": round(seconds, 1),
           "eval_peak_alloc_MB": round(peak / 2**20, 1),
           "process_peak_rss_MB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
           "rss_before_eval_MB": round(rss_before, 1), "t2i_R@10": ev.t2i.summary()["R@10"]}
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["train", "eval", "both"], default="both")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--chunk", type=int, default=8, help="GradCache mini-batch size")
    p.add_argument("--images", type=int, default=100_000)
    p.add_argument("--captions_per_image", type=int, default=1)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    print(f"# {time.strftime('%Y-%m-%d')} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    if args.part in ("train", "both"):
        bench_train(args)
    if args.part in ("eval", "both"):
        bench_eval(args)


if __name__ == "__main__":
    main()
