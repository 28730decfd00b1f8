"""Predict the memory of a training recipe (weights + LoRA + optimizer states + activations), before renting a GPU.

    python -m vlmkit.training.memory_model --model clip-vit-large-patch14-336+Qwen3-0.6B --seq_len 4480 --bf16
    python -m vlmkit.training.memory_model --table          # what fits on 24/40/80 GB, the recipes of docs/training.md

Why a module of the package, not of bench/: it answers a user's planning question ("does this recipe fit my GPU?")
from the same scope train.py applies (vlmkit.training.lora: LoRA r on the LM's projections, LLaVA projector in full,
vision frozen; trainable weights in fp32, bf16 by autocast; DeepSpeed keeps them in bf16 with an fp32 master copy),
and bench/bench_real_size.py checks it against measured peaks. Models are the real-size presets (vlmkit.model_configs)
or "VISION+LM" compositions; nothing is loaded: every count comes from the meta device.

The terms, in bytes:
- weights: every parameter in the weights dtype; the LLaVA projector once more in fp32 (peft's trainable copy).
  ZeRO-3 partitions them over the processes, but up to `stage3_max_live_parameters` (1e9 in
  configs/deepspeed/zero3.json) stay gathered on every rank: only the parameters beyond 1B are divided, so a model
  under 1B parameters saves nothing on weights (measured: 2 ranks peak at about the 1-process memory).
- LoRA weights (fp32), their gradients (fp32) and AdamW's two moments (fp32): 16 bytes per trainable parameter.
  ZeRO-1/2 divide the moments (and 2: the gradients), ZeRO-3 all of them, by the number of processes.
- activations: what autograd saves, measured exactly by running a 1- and 2-layer copy of the language model
  (uninitialised weights, 128 tokens) under `torch.autograd.graph.saved_tensors_hooks` (per token per decoder
  layer, and per token outside the layers), in the activation dtype (bf16 with autocast). Without checkpointing the
  frozen vision tower saves nothing (it runs without gradients); the projector's few tensors (~8 MiB per CLIP-L
  image in fp32) are not counted. Gradient checkpointing keeps each layer's input and recomputes one layer at a
  time in the backward pass.
- vision under checkpointing: train.py then calls `enable_input_require_grads()`, which in transformers 5 hooks the
  input embeddings of every sub-model, the vision tower's patch embedding included. The frozen vision tower then
  runs with autograd, its own checkpointed blocks keep each block's input (patches x width per block and image),
  and the backward pass runs through it. Measured on CPU (bench_real_size --lm_layers 2, live tensors): CLIP-L/336
  keeps 24 x 577 x 1024 x 4 B = 54 MiB per fp32 image, as this term says.
- loss: cross-entropy's fp32 log-softmax (seq x vocab) stays alive to the backward pass; the logits themselves and
  their fp32 upcast do not (nothing saves them, and the trainer drops the model's output before backward). The
  backward pass adds two fp32 seq x vocab gradients (of the log-softmax's output and input) at its peak. With a
  150k-256k vocabulary this is often the largest single term. (The first version also kept the logits and the
  upcast: measured on CPU, live tensors at the end of the forward pass are 4 B x seq x vocab above the
  activations, not 8 (fp32) or 10 (bf16).)
- GPU only: the CUDA context and allocator reserve (a flat 1.0 GiB, stated, not measured here).

What this predicts is live tensor bytes, a GPU's `max_memory_allocated` plus that flat reserve. A CPU process's peak
RSS can be far above it: with glibc's default (dynamic) mmap threshold, freed tensors under 32 MiB go back to the
heap, which fragments and is not returned, and gradient checkpointing's recompute-and-free pattern fragments it most
(measured at 8 of Qwen3-0.6B's 28 layers: +0.64 GiB over the live tensors, +0.06 GiB with
MALLOC_MMAP_THRESHOLD_=1048576, which bench/bench_real_size.py therefore sets for its training figures).
"""

from __future__ import annotations

import argparse
import functools
from dataclasses import asdict, dataclass
from typing import Any

GIB = 1024 ** 3
CUDA_OVERHEAD = 1.0 * GIB  # CUDA context + caching allocator slack (typical; not measured on this machine)
MAX_LIVE_PARAMETERS = 1e9  # configs/deepspeed/zero3.json stage3_max_live_parameters


@dataclass(frozen=True)
class Recipe:
    model: str  # a vlmkit.model_configs preset (Qwen2.5-VL, a causal LM) or "VISION+LM"
    seq_len: int  # tokens per sequence, image tokens included
    bf16: bool = True  # weights in bf16 and autocast; False: everything fp32
    checkpointing: bool = False
    zero_stage: int = 0  # 0 (plain DDP or one process), 1, 2, 3
    world_size: int = 1
    micro_batch: int = 1
    lora_r: int = 16
    lm_layers: int | None = None  # the LM's decoder layers if fewer than the preset's (bench_real_size --lm_layers)
    images: int = 0  # images (views) per sequence: their vision-tower inputs are kept under checkpointing


def _lm_config(model: str):
    from vlmkit.model_configs import preset_config

    config = preset_config(model)
    return getattr(config, "text_config", config)


def _text_lm_config(model: str):
    """A causal-LM config with the model's language-model dimensions (Qwen2.5-VL's text model as Qwen2: the same
    layers; only its 3-D rotary positions differ, which save the same tensors)."""
    from transformers import Qwen2Config

    cfg = _lm_config(model)
    if cfg.model_type.endswith("_text") and "qwen2" in cfg.model_type:
        keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "rms_norm_eps", "tie_word_embeddings", "hidden_act")
        return Qwen2Config(**{k: getattr(cfg, k) for k in keys})
    return cfg


@functools.lru_cache(maxsize=64)
def _param_counts(model: str, lora_r: int) -> dict[str, int]:
    """total, LoRA, projector, largest decoder layer: the model + train.py's LoRA scope on the meta device."""
    import torch

    from vlmkit.io import InputError
    from vlmkit.model_configs import build_meta
    from vlmkit.training import lora

    with torch.device("meta"):
        net = build_meta(model)
        total = sum(p.numel() for p in net.parameters())
        try:
            layers_name, _ = lora.decoder_layers(net)  # a VLM: its language model's layers
        except InputError:
            layers_name = "model.layers"  # a plain causal LM (what train.py's LoRA targets inside a VLM)
        layer_list = net.get_submodule(layers_name)
        layer_params = sum(p.numel() for p in layer_list[0].parameters())
        projector = sum(p.numel() for n, p in net.named_parameters() if lora.PROJECTOR in n.split("."))
        lora_params = 0
        for name, m in layer_list.named_modules():
            if name.rsplit(".", 1)[-1] in lora.LM_LINEAR_LAYERS and isinstance(m, torch.nn.Linear):
                lora_params += lora_r * (m.in_features + m.out_features)
    return {"total": total, "lora": lora_params, "projector": projector, "layer": layer_params}


@functools.lru_cache(maxsize=64)
def saved_bytes_per_token(model: str, bf16: bool, lora_r: int = 16, tokens: int = 128) -> dict[str, float]:
    """Bytes autograd saves per token per decoder layer (and outside the layers), with train.py's LoRA scope.

    Measured, not estimated: a 1-layer and a 2-layer copy of the language model (real dimensions, vocabulary cut
    to 8 rows since the seq x vocab tensors are `loss_bytes`' business, uninitialised weights: values do not
    change sizes) run `tokens` tokens under `torch.autograd.graph.saved_tensors_hooks`, with autocast as training
    uses it; saved weights are skipped and a tensor saved by several ops (a norm output feeding q, k and v) is
    counted once. The difference of the two runs is one layer's bytes. One unpadded sequence: causal SDPA, no mask.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from transformers.initialization import no_init_weights

    from vlmkit.training.lora import LM_LINEAR_LAYERS

    base = _text_lm_config(model)
    dtype = torch.bfloat16 if bf16 else torch.float32
    totals = []
    for layers in (1, 2):
        cfg = base.__class__.from_dict({**base.to_dict(), "num_hidden_layers": layers, "layer_types": None,
                                        "vocab_size": 8})
        cfg.use_cache = False
        with no_init_weights():
            lm = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
        for p in lm.parameters():
            p.requires_grad_(False)
        targets = [n for n, m in lm.named_modules()
                   if n.rsplit(".", 1)[-1] in LM_LINEAR_LAYERS and isinstance(m, torch.nn.Linear)]
        peft = get_peft_model(lm, LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.05,
                                             target_modules=targets))
        peft.train()
        for p in peft.parameters():
            if p.requires_grad:
                p.data = p.data.float()
        # the LM's input requires grad, as in LLaVA (the trained projector feeds it)
        embeds = torch.zeros(1, tokens, cfg.hidden_size, dtype=dtype, requires_grad=True)
        seen: dict[int, int] = {}
        keep: list[Any] = []
        weights = {id(p) for p in peft.parameters()}

        def pack(t, seen=seen, keep=keep, weights=weights):
            keep.append(t)
            owner = t._base if t._base is not None else t
            if id(owner) not in weights and id(t) not in weights:  # weights are saved for the inputs' grads
                seen[id(owner)] = max(seen.get(id(owner), 0), owner.untyped_storage().nbytes())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
                torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = peft.base_model.model.model(inputs_embeds=embeds).last_hidden_state
        del out, keep
        totals.append(sum(seen.values()))
    act_bytes = 2 if bf16 else 4
    per_layer = (totals[1] - totals[0]) / tokens
    # outside the layers: the final norm's saved tensors (~ one layer's norm) and the LM head's input
    other = (totals[0] / tokens) - per_layer + base.hidden_size * act_bytes
    return {"per_layer": per_layer, "other": other, "checkpoint_input": base.hidden_size * act_bytes,
            "layers": base.num_hidden_layers, "vocab": base.vocab_size}


def loss_bytes(vocab: int, seq_len: int, bf16: bool) -> dict[str, float]:
    """The seq x vocab tensors: the fp32 log-softmax kept for the backward pass (in bf16 and fp32 alike: the logits
    and their fp32 upcast are freed once the loss is computed); at the backward peak two fp32 gradients of that size
    exist at once. `bf16` is kept for the callers: the dtype does not change these terms."""
    n = float(vocab) * seq_len
    return {"kept": n * 4, "backward_transient": 2 * n * 4}


# Vision patches per image as the recipes feed them: CLIP/SigLIP at their own size (CLS included), Qwen2.5-VL's
# 448-px views (32 x 32 patches of 14 px before the 2x2 merge into 256 tokens).
QWEN_VL_PATCHES_448 = 1024


@functools.lru_cache(maxsize=64)
def vision_checkpoint_bytes_per_image(model: str, bf16: bool) -> float:
    """Bytes the vision tower's checkpointed blocks keep per image when it runs with autograd (see the module text):
    one block input (patches x width) per block, in the activation dtype (bf16 under autocast with bf16 weights)."""
    from vlmkit.model_configs import preset_config

    config = preset_config(model)
    vision = getattr(config, "vision_config", None)
    if vision is None:
        return 0.0
    if hasattr(vision, "depth"):  # Qwen2.5-VL's vision transformer
        blocks, width, patches = vision.depth, vision.hidden_size, QWEN_VL_PATCHES_448
    else:
        blocks, width = vision.num_hidden_layers, vision.hidden_size
        patches = (vision.image_size // vision.patch_size) ** 2 + 1
    return float(blocks * width * patches * (2 if bf16 else 4))


def predict(recipe: Recipe, gpu: bool = True) -> dict[str, float]:
    """Predicted peak memory per process, in bytes, by term (`total` the sum); `gpu=False` leaves out the CUDA
    overhead (for comparison with CPU peaks)."""
    r = recipe
    counts = dict(_param_counts(r.model, r.lora_r))
    act = saved_bytes_per_token(r.model, r.bf16, r.lora_r)
    layers = act["layers"]
    if r.lm_layers is not None:  # a cut-down copy: the same layers, fewer of them
        counts["total"] -= (layers - r.lm_layers) * counts["layer"]
        counts["lora"] = counts["lora"] * r.lm_layers // layers
        layers = r.lm_layers
    wbytes = 2 if r.bf16 else 4
    n = max(1, r.world_size)
    deepspeed = r.zero_stage > 0
    weights = counts["total"] * wbytes
    if r.zero_stage == 3 and n > 1:
        # configs/deepspeed/zero3.json lets up to stage3_max_live_parameters (1e9) parameters stay gathered on every
        # rank; only the rest stays partitioned (measured on CPU: 2 ranks of a 0.9B model peak like 1 process)
        live = min(counts["total"], MAX_LIVE_PARAMETERS)
        weights = (live + (counts["total"] - live) / n) * wbytes
    trainable = counts["lora"] + counts["projector"]
    # peft's trainable projector copy (fp32 without DeepSpeed; the model dtype under DeepSpeed)
    projector_copy = counts["projector"] * (wbytes if deepspeed else 4)
    # LoRA in fp32 (autocast_adapter_dtype) without DeepSpeed; DeepSpeed keeps bf16 weights + an fp32 master copy
    lora_weights = counts["lora"] * (wbytes if deepspeed else 4)
    master = trainable * 4 if deepspeed and r.bf16 else 0
    grads = trainable * (wbytes if deepspeed else 4)
    adam = trainable * 8
    if r.zero_stage >= 1:
        adam /= n
        master /= n
    if r.zero_stage >= 2:
        grads /= n
    if r.zero_stage == 3:
        lora_weights /= n
        projector_copy /= n
    tokens = r.seq_len * r.micro_batch
    if r.checkpointing:
        activations = tokens * (layers * act["checkpoint_input"] + act["per_layer"] + act["other"])
        activations += r.images * r.micro_batch * vision_checkpoint_bytes_per_image(r.model, r.bf16)
    else:
        activations = tokens * (layers * act["per_layer"] + act["other"])
    loss = loss_bytes(act["vocab"], tokens, r.bf16)
    terms = {"weights": weights, "lora_weights": lora_weights, "projector_copy": projector_copy,
             "gradients": grads, "optimizer": adam + master, "activations": activations,
             "logits_and_loss": loss["kept"] + loss["backward_transient"],
             "cuda_overhead": CUDA_OVERHEAD if gpu else 0.0}
    terms["total"] = sum(terms.values())
    return terms


# Recipes of docs/training.md's "which recipe fits my GPU": (label, recipe)
LLAVA_QWEN3 = "clip-vit-large-patch14-336+Qwen3-0.6B"
LLAVA_QWEN25 = "clip-vit-large-patch14-336+Qwen2.5-0.5B-Instruct"
MGM_GEMMA = "clip-vit-large-patch14-336+gemma-2b"
QWEN_VL = "Qwen2.5-VL-3B-Instruct"
SIX_CLIP = 6 * 576  # six 336-px views through CLIP ViT-L/14 (CLS dropped)
SIX_QWEN = 6 * 258  # six 448-px views through Qwen2.5-VL (256 tokens + start/end)
TEXT = 256  # prompt + caption tokens of the seed's captions (well under this)


def table_recipes() -> list[tuple[str, Recipe]]:
    out = []
    for label, model, views, seq in (
            ("LLaVA CLIP-L/336 + Qwen3-0.6B, 6 views", LLAVA_QWEN3, 6, SIX_CLIP + TEXT),
            ("LLaVA CLIP-L/336 + Qwen2.5-0.5B, 6 views", LLAVA_QWEN25, 6, SIX_CLIP + TEXT),
            ("MGM-style CLIP-L/336 + Gemma-2B, 1 view", MGM_GEMMA, 1, 576 + TEXT),
            ("MGM-style CLIP-L/336 + Gemma-2B, 6 views", MGM_GEMMA, 6, SIX_CLIP + TEXT),
            ("Qwen2.5-VL-3B, 6 views at 448 px", QWEN_VL, 6, SIX_QWEN + TEXT)):
        for bf16, ckpt in ((False, False), (True, False), (True, True)):
            out.append((label, Recipe(model, seq, bf16=bf16, checkpointing=ckpt, images=views)))
        out.append((label, Recipe(model, seq, bf16=True, checkpointing=True, zero_stage=3, world_size=2,
                                  images=views)))
    return out


def recipe_label(r: Recipe) -> str:
    parts = ["bf16" if r.bf16 else "fp32", "checkpointing" if r.checkpointing else "no checkpointing"]
    if r.zero_stage:
        parts.append(f"ZeRO-{r.zero_stage} x{r.world_size}")
    if r.micro_batch > 1:
        parts.append(f"batch {r.micro_batch}")
    return ", ".join(parts)


def fits_table(gpus: tuple[int, ...] = (24, 40, 80)) -> str:
    """Markdown: each recipe's predicted peak and whether it fits a GPU of that size (a "24 GB" card has 24 GiB;
    5 % is kept free for fragmentation)."""
    head = "| model | seq | recipe | predicted peak | " + " | ".join(f"{g} GB" for g in gpus) + " |"
    lines = [head, "|" + " --- |" * (4 + len(gpus))]
    for label, r in table_recipes():
        total = predict(r)["total"]
        marks = ["fits" if total <= g * GIB * 0.95 else "no" for g in gpus]
        lines.append(f"| {label} | {r.seq_len:,} | {recipe_label(r)} | {total / GIB:.1f} GiB | "
                     + " | ".join(marks) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m vlmkit.training.memory_model", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="a vlmkit.model_configs preset or VISION+LM (e.g. " + LLAVA_QWEN3 + ")")
    p.add_argument("--seq_len", type=int, help="tokens per sequence, image tokens included")
    p.add_argument("--bf16", action="store_true", help="bf16 weights + autocast (default: fp32)")
    p.add_argument("--gradient_checkpointing", action="store_true")
    p.add_argument("--zero_stage", type=int, default=0, choices=(0, 1, 2, 3))
    p.add_argument("--world_size", type=int, default=1)
    p.add_argument("--micro_batch", type=int, default=1)
    p.add_argument("--lora_r", type=int, default=16)
    p.add_argument("--images", type=int, default=0,
                   help="images (views) per sequence, for the vision tower's checkpointed inputs (default 0)")
    p.add_argument("--table", action="store_true", help="print the what-fits table of docs/training.md")
    args = p.parse_args(argv)
    import transformers

    transformers.logging.set_verbosity_error()
    if args.table:
        print(fits_table())
        return 0
    from vlmkit.io import InputError
    from vlmkit.model_configs import PRESETS

    if not args.model or not args.seq_len:
        raise InputError("--model and --seq_len: required (or --table)")
    unknown = [m for m in args.model.split("+") if m not in PRESETS]
    if unknown:
        raise InputError(f"--model {args.model}: unknown preset {', '.join(unknown)}; choose from {', '.join(PRESETS)}")
    r = Recipe(args.model, args.seq_len, args.bf16, args.gradient_checkpointing, args.zero_stage, args.world_size,
               args.micro_batch, args.lora_r, images=args.images)
    terms = predict(r)
    print(f"{args.model}, seq {args.seq_len:,}, {recipe_label(r)}: {terms['total'] / GIB:.2f} GiB per GPU")
    for key, value in terms.items():
        if key != "total":
            print(f"  {key:16s} {value / GIB:8.2f} GiB")
    print(json_line(r, terms))
    return 0


def json_line(r: Recipe, terms: dict[str, float]) -> str:
    import json

    return json.dumps({**asdict(r), **{k: round(v / GIB, 3) for k, v in terms.items()}})


if __name__ == "__main__":
    from vlmkit.cli import run_main

    run_main(main)
