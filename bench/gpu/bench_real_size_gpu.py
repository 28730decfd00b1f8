#!/usr/bin/env python3
"""The real-size captioning and training figures of bench/bench_real_size.py on one CUDA GPU, in ~10 minutes.

    python bench/gpu/bench_real_size_gpu.py [--out result.json] [--skip caption]

Prints ONE JSON line: the GPU, then per figure s/object or s/step and peak memory (torch.cuda.max_memory_allocated
and max_memory_reserved), and for training the memory model's prediction (vlmkit.training.memory_model, with its
CUDA overhead term) for the same recipe, so docs/benchmarks.md's pending GPU rows can be filled and the model checked.

- caption: Qwen2.5-VL-3B-Instruct (random weights, published config, bf16; the folder is built first with
  `demo.tiny.real_folders.build_real`), six 448-px views, min_new_tokens = max_new_tokens = 64, batch 1 and 4.
- train: one LoRA step (train.py's scope) of CLIP ViT-L/14-336 + Qwen3-0.6B (LLaVA) with six views (3,456 image
  tokens) + 256 text tokens, fp32/bf16 x with/without gradient checkpointing; Qwen2.5-VL-3B with six 448-px views
  (1,548 tokens) + 256 text tokens, bf16 with/without checkpointing, and fp32 with checkpointing.
Each figure runs once after one warm-up step (first-call CUDA kernels excluded from s/step, included in the peak).
Nothing is downloaded. A figure that fails (e.g. out of memory) is recorded with its error, not dropped.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_real_size import (  # noqa: E402
    LLAVA,
    QWEN_VL,
    caption_inputs,
    llava_inputs,
    prepare_training_model,
    qwen_vl_inputs,
    timed_generate,
)

GIB = 1024 ** 3


def gib(n: float) -> float:
    return round(n / GIB, 2)


def caption(models_dir: Path, batches: list[int]) -> list[dict]:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = models_dir / QWEN_VL
    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.bfloat16, device_map="cuda").eval()
    out = []
    for batch in batches:
        inputs = caption_inputs(processor, batch, 6, 448).to("cuda")
        timed_generate(model, caption_inputs(processor, 1, 1, 448).to("cuda"), 2, torch.cuda.synchronize)  # warm
        torch.cuda.reset_peak_memory_stats()
        result = timed_generate(model, inputs, 64, torch.cuda.synchronize)
        out.append({"part": "caption", "batch": batch, **result,
                    "peak_allocated_gib": gib(torch.cuda.max_memory_allocated()),
                    "peak_reserved_gib": gib(torch.cuda.max_memory_reserved())})
    del model
    torch.cuda.empty_cache()
    return out


def train_step(name: str, dtype: str, ckpt: bool, images: int, text: int) -> dict:
    import torch

    from vlmkit.training.memory_model import Recipe, predict

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = prepare_training_model(name, dtype, ckpt, device="cuda")
    inputs = (llava_inputs if "+" in name else qwen_vl_inputs)(model, images, text)
    inputs = {k: v.cuda() for k, v in inputs.items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for _ in range(2):  # warm-up + measured
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
            loss = model(**inputs).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    seq = int(inputs["input_ids"].shape[1])
    predicted = predict(Recipe(name, seq, bf16=dtype == "bfloat16", checkpointing=ckpt, images=images))["total"]
    record = {"part": "train", "model": name, "dtype": dtype, "checkpointing": ckpt, "seq_len": seq,
              "s_per_step": round(times[-1], 3), "first_step_s": round(times[0], 2),
              "peak_allocated_gib": gib(torch.cuda.max_memory_allocated()),
              "peak_reserved_gib": gib(torch.cuda.max_memory_reserved()), "predicted_gib": gib(predicted)}
    del model, opt, loss
    return record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="also write the JSON line here")
    p.add_argument("--skip", default="", help="comma list of parts to skip: caption, train")
    p.add_argument("--text_tokens", type=int, default=256)
    args = p.parse_args(argv)
    import warnings

    import torch
    import transformers

    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    if not torch.cuda.is_available():
        print("error: no CUDA GPU (this script is the GPU half of bench/bench_real_size.py)", file=sys.stderr)
        return 2
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    t_start = time.perf_counter()
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "gpu": torch.cuda.get_device_name(0),
                    "gpu_memory_gib": gib(torch.cuda.get_device_properties(0).total_memory),
                    "torch": torch.__version__, "transformers": transformers.__version__, "figures": []}

    def attempt(fn, *a, **label):
        try:
            out = fn(*a)
            result["figures"].extend(out if isinstance(out, list) else [out])
        except Exception as exc:  # an out-of-memory recipe is a result too
            result["figures"].append({**label, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
            torch.cuda.empty_cache()

    if "caption" not in skip:
        from demo.tiny.real_folders import build_real

        with tempfile.TemporaryDirectory() as tmp:
            build_real(QWEN_VL, Path(tmp) / QWEN_VL, dtype="bfloat16")
            attempt(caption, Path(tmp), [1, 4], part="caption")
    if "train" not in skip:
        recipes = [(LLAVA, d, c, 6) for d in ("float32", "bfloat16") for c in (False, True)]
        recipes += [(QWEN_VL, "bfloat16", False, 6), (QWEN_VL, "bfloat16", True, 6), (QWEN_VL, "float32", True, 6)]
        for name, dtype, ckpt, images in recipes:
            attempt(train_step, name, dtype, ckpt, images, args.text_tokens, part="train", model=name, dtype=dtype,
                    checkpointing=ckpt)
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    line = json.dumps(result)
    print(line)
    if args.out:
        args.out.write_text(line + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
