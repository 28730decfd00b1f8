#!/usr/bin/env python3
"""Costs at real model sizes on this machine: random-weight models with the published configs (demo.tiny.real).

    python -m demo.tiny /tmp/real --size real --dtype bfloat16 --models Qwen2.5-VL-3B-Instruct   # for --part caption
    python -m demo.tiny /tmp/real --size real --models clip-vit-base-patch32,all-mpnet-base-v2,all-MiniLM-L6-v2
    nice -n 10 python bench/bench_real_size.py --part train --models_dir /tmp/real --out /tmp/real/bench.jsonl

Parts (--part, comma list; each figure runs in its own child process so its peak memory is its own):
  probe      matmul probe: this CPU's fp32/bf16 GFLOP/s ceiling (2048^3 matmuls, all threads)
  caption    Qwen2.5-VL-3B (bf16 folder), six 448-px views per object, min_new_tokens = max_new_tokens = 64,
             batch 1 vs 4: s/object, prefill (to the first token) vs decode (s/token)
  train      one LoRA step (the project's scope: LoRA r16 on the LM, LLaVA projector in full, trainable weights fp32,
             bf16 by autocast) of CLIP ViT-L/14-336 + Qwen3-0.6B (LLaVA) and of Qwen2.5-VL-3B, with/without
             gradient checkpointing, fp32/bf16: s/step, peak memory, and the memory model's prediction
  zero3      the LLaVA build's LoRA step under DeepSpeed ZeRO-3 (gloo), 2 processes: peak memory per rank vs 1
  retrieval  CLIP ViT-B/32 (sentence-transformers, LoRA, InfoNCE), batch 64/256, with/without GradCache
  compare    all-mpnet-base-v2 and all-MiniLM-L6-v2 captions/s (sentence-transformers encode) vs the probe

Memory: peak RSS of the step (VmHWM after /proc/self/clear_refs), minus the RSS before the model was built (the
interpreter and libraries), is what the memory model (vlmkit.training.memory_model) predicts; the training children
run with MALLOC_MMAP_THRESHOLD_=1 MiB so that RSS follows the live tensors (--tensor_peak records those exactly).
Each record has the 1-minute load average before and after (the machine is shared). Results: one JSON line per
figure on stdout and appended to --out. Never run by the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GIB = 1024 ** 3
PARTS = ("probe", "caption", "train", "zero3", "retrieval", "compare")
LLAVA = "clip-vit-large-patch14-336+Qwen3-0.6B"
QWEN_VL = "Qwen2.5-VL-3B-Instruct"
MMAP_THRESHOLD = 1 << 20  # MALLOC_MMAP_THRESHOLD_ of the training children (bytes)


# ---------------------------------------------------------------- measurement helpers (run inside the child)

def load() -> float:
    return os.getloadavg()[0]


def rss_gib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / GIB
    raise RuntimeError(field)


def reset_peak() -> None:
    """Reset VmHWM (the peak RSS) to the current RSS (Linux: write 5 to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def matmul_probe(seconds: float = 3.0) -> dict:
    import torch

    out = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
        a @ b
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ b
            n += 1
        out[f"gflops_{str(dtype).split('.')[-1]}"] = round(2 * 2048 ** 3 * n / (time.perf_counter() - t0) / 1e9, 1)
    return out


# ---------------------------------------------------------------- training step

def llava_inputs(model, images: int, text_tokens: int):
    """input_ids: `images` x 576 image tokens then `text_tokens` text ids; labels on the text; 336-px pixels."""
    import torch

    cfg = model.config
    per_image = cfg.image_seq_length
    g = torch.Generator().manual_seed(0)
    text = torch.randint(0, cfg.text_config.vocab_size - 2, (text_tokens,), generator=g)
    ids = torch.cat([torch.full((images * per_image,), cfg.image_token_index), text])[None]
    labels = ids.clone()
    labels[0, : images * per_image] = -100
    size = cfg.vision_config.image_size
    out = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    if images:
        out["pixel_values"] = torch.randn(images, 3, size, size, generator=g)
    return out


def qwen_vl_inputs(model, images: int, text_tokens: int, size: int = 448):
    """Qwen2.5-VL inputs as its processor makes them: `images` views of size^2 px (patches of 14, merged 2x2)."""
    import torch

    cfg = model.config
    grid = size // 14
    per_image = grid * grid // 4
    g = torch.Generator().manual_seed(0)
    text = torch.randint(0, cfg.text_config.vocab_size - 16, (text_tokens,), generator=g)
    block = [cfg.vision_start_token_id] + [cfg.image_token_id] * per_image + [cfg.vision_end_token_id]
    ids = torch.cat([torch.tensor(block * images), text])[None]
    labels = ids.clone()
    labels[0, : len(block) * images] = -100
    pixels = torch.randn(images * grid * grid, 3 * 2 * 14 * 14, generator=g)
    thw = torch.tensor([[1, grid, grid]] * images)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels, "pixel_values": pixels,
            "image_grid_thw": thw}


def prepare_training_model(name: str, dtype: str, checkpointing: bool, deepspeed: bool = False,
                           device: str = "cpu"):
    """The model as train.py prepares it (vlmkit.training.lora: freeze, scope, LoRA; trainable weights fp32)."""
    import torch

    from demo.tiny.real import build_model
    from vlmkit.training import lora

    model = build_model(name, dtype, device=device)
    model.config.use_cache = False
    lora.freeze(model)
    llava = "+" in name
    full = lora.full_modules(model, lora.Scope(lora=True, projector=llava))
    model = lora.apply_lora(model, target=None, r=16, alpha=32, dropout=0.05,
                            modules_to_save=[m.rsplit(".", 1)[-1] for m in full],
                            autocast_adapter_dtype=not deepspeed)
    if not deepspeed:
        for p in model.parameters():
            if p.requires_grad and p.dtype != torch.float32:
                p.data = p.data.float()
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    return model


def import_model_code() -> None:
    """Import what building the models imports, so the baseline RSS includes the libraries, not just the
    interpreter (the memory model predicts tensors only)."""
    import peft  # noqa: F401
    import torch._dynamo  # noqa: F401  (imported lazily otherwise, which fails inside deepspeed.zero.Init)
    import transformers
    import transformers.initialization  # noqa: F401
    import transformers.modeling_utils  # noqa: F401

    from demo.tiny import real  # noqa: F401
    from vlmkit.training import lora  # noqa: F401

    for cls in ("LlavaForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration", "Qwen3ForCausalLM",
                "CLIPVisionModel"):
        getattr(transformers, cls)


def fewer_lm_layers(layers: int) -> None:
    """Build the presets with only `layers` decoder layers in the language model (same widths, vision tower whole):
    a fast stand-in for the full model when checking the memory model's per-layer and fixed terms."""
    from demo.tiny import real
    from vlmkit.model_configs import preset_config

    def cut(name: str):
        config = preset_config(name)
        text = getattr(config, "text_config", config)
        text.num_hidden_layers = layers
        if getattr(text, "layer_types", None):
            text.layer_types = text.layer_types[:layers]
        return config

    real.preset_config = cut


class TensorPeak:
    """Live tensor bytes through a block (the CPU allocator's allocations and frees, via the profiler): what a GPU's
    `max_memory_allocated` measures, without the C allocator's slack that RSS includes. `peak` is above the bytes
    live when the block started; `at(mark)` the live bytes when a `record_function(mark)` began."""

    def __enter__(self):
        import torch.profiler as tp

        self.prof = tp.profile(activities=[tp.ProfilerActivity.CPU], profile_memory=True)
        self.prof.__enter__()
        return self

    def __exit__(self, *exc):
        self.prof.__exit__(*exc)
        events = list(self.prof.profiler.kineto_results.events())
        memory = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
        marks = {e.name(): e.start_ns() for e in events if e.name().startswith("phase:")}
        live, self.peak, self.peak_ns, self.marks = 0, 0, 0, {}
        pending = sorted(marks.items(), key=lambda kv: kv[1])
        for ns, nbytes in memory:
            while pending and pending[0][1] <= ns:
                self.marks[pending.pop(0)[0]] = live
            live += nbytes
            if live > self.peak:
                self.peak, self.peak_ns = live, ns
        self.peak_phase = max((name for name, ns in marks.items() if ns <= self.peak_ns), key=marks.get,
                              default="")


def child_train(spec: dict) -> dict:
    import contextlib

    import torch
    from torch.profiler import record_function

    import_model_code()
    if spec.get("lm_layers"):
        fewer_lm_layers(spec["lm_layers"])
    base = rss_gib()
    t0 = time.perf_counter()
    model = prepare_training_model(spec["model"], spec["weights_dtype"], spec["checkpointing"])
    build_s = time.perf_counter() - t0
    weights = rss_gib() - base
    inputs = (llava_inputs if "+" in spec["model"] else qwen_vl_inputs)(model, spec["images"], spec["text_tokens"])
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    tensors_before = sum(t.untyped_storage().nbytes() for t in {id(t): t for t in [*model.parameters(),
                                                                                  *model.buffers()]}.values())
    tracker = TensorPeak() if spec.get("tensor_peak") else contextlib.nullcontext()
    reset_peak()
    before = rss_gib()
    t0 = time.perf_counter()
    with tracker:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=spec["weights_dtype"] == "bfloat16"), \
                record_function("phase:forward"):
            loss = model(**inputs).loss
        forward_s = time.perf_counter() - t0
        with record_function("phase:backward"):
            loss.backward()
        with record_function("phase:optimizer"):
            opt.step()
            opt.zero_grad(set_to_none=True)
    step_s = time.perf_counter() - t0
    peak = rss_gib("VmHWM")
    extra = {}
    if spec.get("tensor_peak"):  # live tensors: parameters and buffers + the step's peak above them
        extra = {"tensor_peak_gib": round((tensors_before + tracker.peak) / GIB, 3), "peak_phase": tracker.peak_phase,
                 "params_buffers_gib": round(tensors_before / GIB, 3),
                 "live_at_gib": {k: round((tensors_before + v) / GIB, 3) for k, v in tracker.marks.items()}}
    return {**extra, "seq_len": int(inputs["input_ids"].shape[1]), "build_s": round(build_s, 1),
            "step_s": round(step_s, 1),
            "forward_s": round(forward_s, 1), "base_rss_gib": round(base, 2), "weights_rss_gib": round(weights, 2),
            "rss_before_step_gib": round(before, 2), "peak_rss_gib": round(peak, 2),
            "measured_gib": round(peak - base, 2), "loss": round(float(loss), 3),
            "trainable": sum(p.numel() for p in params)}


def child_zero3(spec: dict) -> dict:
    """One LoRA step under DeepSpeed ZeRO-3 (CPU, gloo); rank 0 reports every rank's peak."""
    import deepspeed
    import torch
    import torch.distributed as dist

    import_model_code()
    deepspeed.init_distributed(dist_backend="gloo")
    base = rss_gib()
    world = dist.get_world_size()
    ds_config = {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1,
                 "zero_optimization": {"stage": 3}, "bf16": {"enabled": spec["weights_dtype"] == "bfloat16"},
                 "optimizer": {"type": "AdamW", "params": {"lr": 1e-4, "torch_adam": True}}}
    t0 = time.perf_counter()
    with deepspeed.zero.Init(config_dict_or_path=ds_config):
        model = prepare_training_model(spec["model"], spec["weights_dtype"], spec["checkpointing"], deepspeed=True)
    engine, *_ = deepspeed.initialize(model=model, model_parameters=[p for p in model.parameters()
                                                                     if p.requires_grad], config=ds_config)
    build_s = time.perf_counter() - t0
    inputs = llava_inputs(engine.module.base_model.model, spec["images"], spec["text_tokens"])
    if spec["weights_dtype"] == "bfloat16" and "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].bfloat16()
    reset_peak()
    t0 = time.perf_counter()
    loss = engine(**inputs).loss
    engine.backward(loss)
    engine.step()
    step_s = time.perf_counter() - t0
    peak = torch.tensor([rss_gib("VmHWM"), base])
    peaks = [torch.zeros(2) for _ in range(world)]
    dist.all_gather(peaks, peak)
    out = {"world_size": world, "build_s": round(build_s, 1), "step_s": round(step_s, 1),
           "peak_rss_gib_per_rank": [round(float(p[0]), 2) for p in peaks],
           "measured_gib_per_rank": [round(float(p[0] - p[1]), 2) for p in peaks],
           "seq_len": int(inputs["input_ids"].shape[1])}
    dist.barrier()
    return out if dist.get_rank() == 0 else {}


# ---------------------------------------------------------------- captioning

def caption_inputs(processor, batch: int, views: int, size: int):
    """A batch of objects, each `views` random size^2-px views + a prompt, through the model's chat template."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)

    def obj():
        images = [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(views)]
        content = [{"type": "image", "image": v} for v in images]
        return [{"role": "user", "content": content + [{"type": "text", "text": "Describe this vase."}]}]

    processor.tokenizer.padding_side = "left"
    return processor.apply_chat_template([obj() for _ in range(batch)], tokenize=True, add_generation_prompt=True,
                                         return_dict=True, return_tensors="pt", padding=True)


def timed_generate(model, inputs, new_tokens: int, sync=lambda: None) -> dict:
    """generate() with a fixed output length; prefill = time to the first token, decode = s per later token."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    class Clock(LogitsProcessor):  # called once per generated token, after that token's forward pass
        def __init__(self):
            self.times: list[float] = []

        def __call__(self, input_ids, scores):
            sync()
            self.times.append(time.perf_counter())
            return scores

    clock = Clock()
    sync()
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**inputs, min_new_tokens=new_tokens, max_new_tokens=new_tokens, do_sample=False,
                             logits_processor=LogitsProcessorList([clock]))
    sync()
    total = time.perf_counter() - t0
    batch = inputs["input_ids"].shape[0]
    return {"prompt_tokens": int(inputs["input_ids"].shape[1]), "new_tokens": int(out.shape[1] -
                                                                                   inputs["input_ids"].shape[1]),
            "total_s": round(total, 2), "s_per_object": round(total / batch, 2),
            "prefill_s": round(clock.times[0] - t0, 2),
            "decode_s_per_token": round((clock.times[-1] - clock.times[0]) / max(1, len(clock.times) - 1), 4)}


def child_caption(spec: dict) -> dict:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = Path(spec["models_dir"]) / QWEN_VL
    base = rss_gib()
    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.bfloat16).eval()
    weights = rss_gib() - base
    inputs = caption_inputs(processor, spec["batch"], spec["views"], spec["view_px"])
    reset_peak()
    result = timed_generate(model, inputs, spec["new_tokens"])
    return {**result, "weights_rss_gib": round(weights, 2), "peak_rss_gib": round(rss_gib("VmHWM"), 2),
            "base_rss_gib": round(base, 2)}


# ---------------------------------------------------------------- retrieval

def child_retrieval(spec: dict) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from vlmkit.retrieval.config import RetrievalConfig
    from vlmkit.retrieval.losses import build_loss
    from vlmkit.retrieval.model import add_lora, load_encoder

    base = rss_gib()
    model = load_encoder(Path(spec["models_dir"]) / "clip-vit-base-patch32")
    config = RetrievalConfig()
    add_lora(model, config.lora_r, config.lora_alpha, config.lora_dropout, list(config.lora_target_modules))
    config.use_gradient_cache = spec["gradcache"]
    config.gradient_cache_chunk_size = spec["chunk"]
    loss_fn = build_loss(model, config, distributed=False)
    model.train()
    rng = np.random.default_rng(0)
    n = spec["batch"]
    texts = [f"an athenian red-figure amphora number {i} depicting a warrior" for i in range(n)]
    images = [Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)) for _ in range(n)]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    reset_peak()
    t0 = time.perf_counter()
    features = [model.preprocess(texts), model.preprocess(images)]
    loss = loss_fn(features, None)
    loss.backward()
    opt.step()
    step_s = time.perf_counter() - t0
    return {"step_s": round(step_s, 1), "peak_rss_gib": round(rss_gib("VmHWM"), 2), "base_rss_gib": round(base, 2),
            "measured_gib": round(rss_gib("VmHWM") - base, 2), "loss": round(float(loss), 3)}


# ---------------------------------------------------------------- compare encoders

def child_compare(spec: dict) -> dict:
    from sentence_transformers import SentenceTransformer

    from vlmkit.model_configs import PRESETS, count_params

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_compare import synthetic_pairs  # the synthetic vase captions of the compare benchmark

    probe = matmul_probe(2.0)
    model = SentenceTransformer(str(Path(spec["models_dir"]) / spec["model"]), device="cpu", local_files_only=True)
    truth, files = synthetic_pairs(spec["texts"] // 2)
    texts = [r["caption"] for r in truth] + [r["caption"] for r in files[0]]
    model.encode(texts[:64], batch_size=64)
    t0 = time.perf_counter()
    model.encode(texts, batch_size=64)
    seconds = time.perf_counter() - t0
    tokens = [len(model.tokenizer(t)["input_ids"]) for t in texts]
    cfg = model[0].auto_model.config
    embedding = cfg.vocab_size * cfg.hidden_size
    dense = count_params(spec["model"]) - embedding - PRESETS[spec["model"]].config().max_position_embeddings \
        * cfg.hidden_size
    # forward FLOPs: 2 per dense weight per token + attention (QK^T and AV: 4 * s * h per token per layer)
    flops = sum(2 * dense * s + 4 * cfg.num_hidden_layers * s * s * cfg.hidden_size for s in tokens)
    achieved = flops / seconds / 1e9
    return {"texts": len(texts), "mean_tokens": round(sum(tokens) / len(tokens), 1),
            "captions_per_s": round(len(texts) / seconds, 1), "achieved_gflops": round(achieved, 1),
            "probe_gflops_fp32": probe["gflops_float32"],
            "fraction_of_ceiling": round(achieved / probe["gflops_float32"], 2), "peak_rss_gib": round(
                rss_gib("VmHWM"), 2)}


CHILDREN = {"probe": lambda spec: matmul_probe(), "caption": child_caption, "train": child_train,
            "zero3": child_zero3, "retrieval": child_retrieval, "compare": child_compare}


# ---------------------------------------------------------------- driver

def specs(part: str, args: argparse.Namespace) -> list[dict]:
    if part == "probe":
        return [{}]
    if part == "caption":
        return [{"batch": b, "views": args.caption_views, "view_px": args.caption_px,
                 "new_tokens": args.caption_new_tokens}
                for b in args.caption_batches]
    if part == "train":
        out = []
        for dtype in ("float32", "bfloat16"):
            for ckpt in (False, True):
                out.append({"model": LLAVA, "weights_dtype": dtype, "checkpointing": ckpt,
                            "images": args.llava_images, "text_tokens": args.llava_text_tokens})
        for ckpt in (False, True):  # fp32 would need 15 GB of weights alone: bf16 only here
            out.append({"model": QWEN_VL, "weights_dtype": "bfloat16", "checkpointing": ckpt,
                        "images": args.qwen_images, "text_tokens": args.qwen_text_tokens})
        extra = {"tensor_peak": True} if args.tensor_peak else {}
        if args.lm_layers:
            extra["lm_layers"] = args.lm_layers
        return [{**spec, **extra} for spec in out]
    if part == "zero3":
        # text-only sequences (no image: the CPU cannot afford two full-length ranks); the point is the weights'
        # and optimizer states' partitioning, which does not depend on the sequence
        return [{"model": LLAVA, "weights_dtype": "bfloat16", "checkpointing": True, "images": 0,
                 "text_tokens": args.zero3_text_tokens, "processes": n} for n in (1, 2)]
    if part == "retrieval":
        return [{"batch": b, "gradcache": gc, "chunk": 32} for b in (64, 256) for gc in (False, True)]
    if part == "compare":
        return [{"model": m, "texts": args.compare_texts} for m in ("all-MiniLM-L6-v2", "all-mpnet-base-v2")]
    raise ValueError(part)


def run_child(part: str, spec: dict, args: argparse.Namespace) -> dict:
    spec = {**spec, "models_dir": str(args.models_dir)}
    payload = json.dumps({"part": part, "spec": spec})
    if part == "zero3":  # torchrun sets the rendezvous variables, for 1 process too
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(spec["processes"]),
               "--master_port", "29524", __file__, "--child", payload]
    else:
        cmd = [sys.executable, __file__, "--child", payload]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    if part in ("train", "zero3"):
        # a fixed mmap threshold: every freed tensor of 1 MiB or more goes back to the kernel at once, so peak RSS
        # follows the live tensors (what the memory model predicts) instead of glibc's fragmented heap, which
        # added 0.3-2 GiB to the training peaks (see vlmkit.training.memory_model); the caller's value wins
        env.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
    load_before = load()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    record = {"part": part, **{k: v for k, v in spec.items() if k != "models_dir"},
              "load_before": round(load_before, 2), "load_after": round(load(), 2)}
    if "MALLOC_MMAP_THRESHOLD_" in env:
        record["malloc_mmap_threshold"] = int(env["MALLOC_MMAP_THRESHOLD_"])
    if proc.returncode != 0 or not lines:
        errors = [ln for ln in proc.stderr.splitlines() if "Error" in ln or "error:" in ln]
        record["error"] = (errors or proc.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
        return record
    record.update(json.loads(lines[-1][len("RESULT "):]))
    return record


def report(path: Path) -> str:
    """Markdown tables of a results file; training rows get the memory model's CPU prediction (no CUDA term)."""
    from vlmkit.training.memory_model import GIB as MGIB
    from vlmkit.training.memory_model import Recipe, predict

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = ["| model | LM layers | dtype | checkpointing | seq | s/step | peak RSS | measured (peak - base) | "
           "live tensors | predicted | error (vs measured) | load |", "|" + " --- |" * 12]
    for r in rows:
        if r["part"] != "train" or "error" in r:
            continue
        recipe = Recipe(r["model"], r["seq_len"], bf16=r["weights_dtype"] == "bfloat16",
                        checkpointing=r["checkpointing"], lm_layers=r.get("lm_layers"), images=r["images"])
        pred = predict(recipe, gpu=False)["total"] / MGIB
        err = (pred - r["measured_gib"]) / r["measured_gib"]
        tensors = f"{r['tensor_peak_gib']} GiB" if "tensor_peak_gib" in r else "-"
        out.append(f"| {r['model']} | {r.get('lm_layers') or 'all'} | {r['weights_dtype']} | "
                   f"{'yes' if r['checkpointing'] else 'no'} | {r['seq_len']:,} | {r['step_s']} | "
                   f"{r['peak_rss_gib']} GiB | {r['measured_gib']} GiB | {tensors} | {pred:.2f} GiB | {err:+.0%} | "
                   f"{r['load_before']}-{r['load_after']} |")
    others = [r for r in rows if r["part"] != "train" or "error" in r]
    out += ["", "Other records:", ""] + ["    " + json.dumps(r) for r in others]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", default="probe", help=f"comma list of: {', '.join(PARTS)} (default probe)")
    p.add_argument("--models_dir", type=Path, default=Path("/tmp/real"),
                   help="folders built by python -m demo.tiny DIR --size real (caption, retrieval, compare)")
    p.add_argument("--out", type=Path, default=None, help="append each JSON record to this file")
    p.add_argument("--caption_batches", type=int, nargs="+", default=[1, 4])
    p.add_argument("--caption_views", type=int, default=6, help="views per object (default 6)")
    p.add_argument("--caption_px", type=int, default=448, help="view size in pixels (default 448: 256 tokens)")
    p.add_argument("--caption_new_tokens", type=int, default=64,
                   help="generated tokens per object (min = max: a fixed output length; default 64)")
    p.add_argument("--llava_images", type=int, default=1, help="LLaVA: images (576 tokens each) per sequence")
    p.add_argument("--llava_text_tokens", type=int, default=448, help="LLaVA: text tokens after the images")
    p.add_argument("--qwen_images", type=int, default=1, help="Qwen2.5-VL: 448-px views (256 tokens each)")
    p.add_argument("--qwen_text_tokens", type=int, default=254, help="Qwen2.5-VL: text tokens after the views")
    p.add_argument("--lm_layers", type=int, default=None,
                   help="train: build the LM with only this many decoder layers (same widths; a fast check of the "
                        "memory model's per-layer and fixed terms)")
    p.add_argument("--tensor_peak", action="store_true",
                   help="train: also record the peak of live tensor bytes (profiler; slower) next to peak RSS")
    p.add_argument("--compare_texts", type=int, default=512)
    p.add_argument("--zero3_text_tokens", type=int, default=128, help="zero3: text tokens per rank (no image)")
    p.add_argument("--only", type=int, nargs="*", default=None, help="run only these spec indexes of each part")
    p.add_argument("--report", type=Path, default=None, help="print markdown tables of a results file and exit")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    if args.report:
        print(report(args.report))
        return 0
    if args.child:
        import transformers

        transformers.logging.set_verbosity_error()
        job = json.loads(args.child)
        result = CHILDREN[job["part"]](job["spec"])
        if result:
            print("RESULT " + json.dumps(result), flush=True)
        return 0
    parts = [x.strip() for x in args.part.split(",") if x.strip()]
    bad = [x for x in parts if x not in PARTS]
    if bad:
        print(f"error: --part: unknown {', '.join(bad)} (choose from {', '.join(PARTS)})", file=sys.stderr)
        return 2
    for part in parts:
        for i, spec in enumerate(specs(part, args)):
            if args.only is not None and i not in args.only:
                continue
            record = {"date": time.strftime("%Y-%m-%d %H:%M"), **run_child(part, spec, args)}
            line = json.dumps(record)
            print(line, flush=True)
            if args.out:
                with open(args.out, "a", encoding="utf-8") as f:
                    f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
