"""GPU benchmark: captioning throughput (objects/s) of the transformers backend vs the in-process vLLM backend.

    python bench/gpu/bench_engines.py                         # on a GPU machine: ~6-9 minutes, one JSON line
    python bench/gpu/bench_engines.py --vllm_python .venv-vllm/bin/python   # vLLM in its own environment
    python bench/gpu/bench_engines.py --preset tiny --engines hf --levels 1,2 --device cpu   # smoke test, CPU

The model is a RANDOM-weight Qwen2.5-VL-3B built from its published config (the values below, from
https://huggingface.co/Qwen/Qwen2.5-VL-3B-Instruct/blob/main/config.json): speed does not depend on the weights'
values, and no weights are downloaded. The tokenizer is vlmkit's locally trained one (its special-token ids replace
the published ones; the vocabulary size stays 151936, so the LM head costs what the real one costs). Every answer is
exactly --new_tokens long (min_new_tokens = max_new_tokens; vLLM: min_tokens, no detokenising of random ids).

Each engine runs in its own process (vLLM takes most of the GPU memory): hf at batch sizes --levels through
qwen.py's HFCaptioner and runner, vllm with --levels items per engine call through VLLMCaptioner (continuous
batching inside a call). Objects are copies of examples/multiview_images (six 256-px views). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

# Qwen/Qwen2.5-VL-3B-Instruct config.json (published values; token ids come from the local tokenizer instead).
QWEN2_5_VL_3B_TEXT = {
    "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
    "num_attention_heads": 16, "num_key_value_heads": 2, "max_position_embeddings": 128000, "rms_norm_eps": 1e-6,
    "hidden_act": "silu", "tie_word_embeddings": True, "sliding_window": 32768, "max_window_layers": 70,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
}
QWEN2_5_VL_3B_VISION = {
    "depth": 32, "hidden_act": "silu", "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
    "in_chans": 3, "out_hidden_size": 2048, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
    "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2,
}
TINY_TEXT = {"vocab_size": None, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
             "tie_word_embeddings": True,
             "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]}}
TINY_VISION = {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 32,
               "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 56,
               "fullatt_block_indexes": [0]}
# qwen.py's per-view bounds: a 256-px view is 9x9 = 81 visual tokens, six views ~490.
MIN_PIXELS, MAX_PIXELS = 56 * 56, 512 * 28 * 28


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("3b", "tiny"), default="3b")
    parser.add_argument("--model_path", default=None, help="reuse a model this script built (skips the build)")
    parser.add_argument("--engines", default="hf,vllm")
    parser.add_argument("--levels", default="1,8,64", help="hf batch sizes / vllm items per engine call")
    parser.add_argument("--objects", type=int, default=64, help="objects per level (at least the level)")
    parser.add_argument("--new_tokens", type=int, default=64, help="fixed answer length")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--vllm_python", default=sys.executable, help="interpreter of the vLLM environment")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def build_model(out: Path, preset: str, device: str) -> Path:
    import torch
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
        Qwen2VLVideoProcessor,
    )

    from demo.tiny.tokenizer import QWEN_VL_CHAT_TEMPLATE, build_tokenizer

    tokenizer = build_tokenizer(chat_template=QWEN_VL_CHAT_TEMPLATE)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>",
                                                           "<|vision_end|>")}
    text = dict(QWEN2_5_VL_3B_TEXT if preset == "3b" else TINY_TEXT)
    text["vocab_size"] = text["vocab_size"] or len(tokenizer)
    text.update(bos_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id)
    config = Qwen2_5_VLConfig(text_config=text, vision_config=QWEN2_5_VL_3B_VISION if preset == "3b" else TINY_VISION,
                              image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                              vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
                              tie_word_embeddings=True)
    torch.manual_seed(0)
    with torch.device(device if device != "auto" else "cuda"):
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16 if preset == "3b" else torch.float32)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(out))
    # vLLM's own environment may carry a transformers < 5 that reads rope_theta/rope_scaling, not rope_parameters.
    saved = json.loads((out / "config.json").read_text())
    rope = text["rope_parameters"]
    for section in (saved, saved.get("text_config", {})):
        section.setdefault("rope_theta", rope["rope_theta"])
        section.setdefault("rope_scaling", {"type": "mrope", "rope_type": "default",
                                            "mrope_section": rope["mrope_section"]})
    (out / "config.json").write_text(json.dumps(saved, indent=2))
    Qwen2_5_VLProcessor(image_processor=Qwen2VLImageProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS),
                        tokenizer=tokenizer, video_processor=Qwen2VLVideoProcessor(),
                        chat_template=QWEN_VL_CHAT_TEMPLATE).save_pretrained(str(out))
    del model
    return out


def worker(args: argparse.Namespace) -> dict:
    """One engine, every level; returns {level: objects/s}."""
    from bench_openai import make_objects

    from vlmkit.generation.items import discover_items
    from vlmkit.generation.runner import caption_items
    from vlmkit.generation.sampling import GenerationSettings
    from vlmkit.ids import VIEWS
    from vlmkit.prompt import MULTIVIEW_PROMPT, build_prompt

    settings = GenerationSettings(max_new_tokens=args.new_tokens)
    t0 = time.perf_counter()
    if args.worker == "hf":
        from qwen_vl_utils import fetch_image

        from vlmkit.generation.hf_backend import HFCaptioner

        class FixedLength(GenerationSettings):
            def hf_kwargs(self):
                return {**super().hf_kwargs(), "min_new_tokens": self.max_new_tokens}

        captioner = HFCaptioner(args.model_path, settings=FixedLength(max_new_tokens=args.new_tokens),
                                device=args.device,
                                processor_kwargs={"size": {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}},
                                image_transform=lambda im: fetch_image({"image": im, "min_pixels": MIN_PIXELS,
                                                                        "max_pixels": MAX_PIXELS}))
    else:
        from vlmkit.generation.vllm_backend import VLLMCaptioner

        captioner = VLLMCaptioner(args.model_path, settings=settings, tp=1, max_images=len(VIEWS),
                                  min_new_tokens=args.new_tokens, max_model_len=8192,
                                  extra_sampling={"detokenize": False, "ignore_eos": True})
    load_seconds = time.perf_counter() - t0
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for level in [int(x) for x in args.levels.split(",")]:
            n = max(level, args.objects if level > 1 else min(args.objects, 8))
            items, _ = discover_items(make_objects(Path(tmp) / f"level{level}", n), tuple(VIEWS))
            prompt = lambda item, views: build_prompt(MULTIVIEW_PROMPT, views)  # noqa: E731
            caption_items(items[:level], captioner, prompt_for=prompt, batch_size=level, on_batch=lambda s: None,
                          progress=False, allow_empty=True)  # warm-up (CUDA graphs, allocator)
            started = time.perf_counter()
            stats = caption_items(items, captioner, prompt_for=prompt, batch_size=level, on_batch=lambda s: None,
                                  progress=False, allow_empty=True)
            seconds = time.perf_counter() - started
            if stats.failures:
                raise RuntimeError(f"{args.worker} level {level}: {stats.failures[0]}")
            results[str(level)] = {"objects": n, "objects_per_s": round(n / seconds, 3)}
            print(f"{args.worker} {level}: {n / seconds:.3f} objects/s", file=sys.stderr, flush=True)
    return {"engine": args.worker, "load_seconds": round(load_seconds, 1), "levels": results}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)), flush=True)
        return {}
    started = time.perf_counter()
    tmp = tempfile.TemporaryDirectory()
    model = Path(args.model_path) if args.model_path else build_model(Path(tmp.name) / f"qwen2_5_vl_{args.preset}",
                                                                      args.preset, args.device)
    build_seconds = time.perf_counter() - started
    out: dict = {"bench": "engines_hf_vs_vllm", "model": f"random Qwen2.5-VL ({args.preset} config)",
                 "new_tokens": args.new_tokens, "build_seconds": round(build_seconds, 1), "engines": {}}
    for engine in args.engines.split(","):
        python = args.vllm_python if engine == "vllm" else sys.executable
        cmd = [python, __file__, "--worker", engine, "--model_path", str(model), "--levels", args.levels,
               "--objects", str(args.objects), "--new_tokens", str(args.new_tokens), "--device", args.device]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        out["engines"][engine] = json.loads(lines[-1]) if done.returncode == 0 and lines else \
            {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    try:
        import torch

        out["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        out["gpu"] = None
    out["seconds"] = round(time.perf_counter() - started, 1)
    out["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    tmp.cleanup()
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
