"""The training memory model (vlmkit.training.memory_model): its terms follow the recipe exactly.

Parameter terms are checked against independent arithmetic on the published counts; the saved-activation
measurement runs a 1- and 2-layer Qwen2.5-0.5B-sized LM on 128 tokens (a few seconds) and is pinned.
"""

from __future__ import annotations

import pytest

from vlmkit.training.memory_model import (
    CUDA_OVERHEAD,
    Recipe,
    loss_bytes,
    predict,
    saved_bytes_per_token,
    vision_checkpoint_bytes_per_image,
)

QWEN = "Qwen2.5-0.5B-Instruct"
LLAVA = "clip-vit-large-patch14-336+Qwen3-0.6B"
TOTAL = 494_032_768


def test_weight_and_optimizer_terms():
    fp32 = predict(Recipe(QWEN, 256, bf16=False), gpu=False)
    bf16 = predict(Recipe(QWEN, 256, bf16=True), gpu=True)
    assert fp32["weights"] == TOTAL * 4
    assert bf16["weights"] == TOTAL * 2
    # LoRA r16 on q,k,v,o,gate,up,down of 24 layers: r * (in + out) each
    h, kv, inter = 896, 128, 4864
    lora = 24 * 16 * ((h + h) + 2 * (h + kv) + (h + h) + 2 * (h + inter) + (inter + h))
    assert fp32["lora_weights"] == lora * 4 and fp32["gradients"] == lora * 4 and fp32["optimizer"] == lora * 8
    assert fp32["cuda_overhead"] == 0 and bf16["cuda_overhead"] == CUDA_OVERHEAD
    assert fp32["total"] == pytest.approx(sum(v for k, v in fp32.items() if k != "total"))


def test_zero3_partitions_weights_and_states():
    one = predict(Recipe(QWEN, 256, zero_stage=3, world_size=1), gpu=False)
    two = predict(Recipe(QWEN, 256, zero_stage=3, world_size=2), gpu=False)
    # up to 1e9 parameters stay gathered on every rank: all of a 0.5B model, so no saving on its weights
    assert two["weights"] == one["weights"] == TOTAL * 2
    big = predict(Recipe("gemma-2b", 256, zero_stage=3, world_size=2), gpu=False)
    assert big["weights"] == pytest.approx((1e9 + (2_506_172_416 - 1e9) / 2) * 2)
    assert two["optimizer"] == pytest.approx(one["optimizer"] / 2)
    assert two["activations"] == one["activations"]  # activations are not partitioned


def test_loss_term():
    # the fp32 log-softmax is kept (logits and their upcast are freed), two fp32 gradients at the backward peak
    for bf16 in (True, False):
        kept = loss_bytes(151_936, 100, bf16=bf16)
        assert kept["kept"] == 151_936 * 100 * 4
        assert kept["backward_transient"] == 151_936 * 100 * 8


def test_vision_tower_inputs_under_checkpointing():
    # CLIP ViT-L/14-336: 24 blocks x 577 patches (CLS included) x 1024 wide; Qwen2.5-VL-3B: 32 blocks x 1024 patches
    # of a 448-px view x 1280 wide; 4 bytes in fp32, 2 under bf16 autocast
    assert vision_checkpoint_bytes_per_image(LLAVA, False) == 24 * 577 * 1024 * 4
    assert vision_checkpoint_bytes_per_image(LLAVA, True) == 24 * 577 * 1024 * 2
    assert vision_checkpoint_bytes_per_image("Qwen2.5-VL-3B-Instruct", True) == 32 * 1024 * 1280 * 2
    assert vision_checkpoint_bytes_per_image(QWEN, True) == 0  # a text-only LM
    one = predict(Recipe(LLAVA, 640, bf16=False, checkpointing=True, images=1), gpu=False)
    six = predict(Recipe(LLAVA, 640, bf16=False, checkpointing=True, images=6), gpu=False)
    assert six["activations"] - one["activations"] == 5 * 24 * 577 * 1024 * 4
    # without checkpointing the frozen tower runs without autograd: images cost nothing there
    assert predict(Recipe(LLAVA, 640, images=6), gpu=False)["activations"] == \
        predict(Recipe(LLAVA, 640, images=0), gpu=False)["activations"]


def test_fewer_lm_layers():
    # a cut-down copy (bench_real_size --lm_layers): parameters, LoRA and activations shrink by whole layers
    full = predict(Recipe(QWEN, 256, bf16=False), gpu=False)
    cut = predict(Recipe(QWEN, 256, bf16=False, lm_layers=4), gpu=False)
    h, kv, inter = 896, 128, 4864
    layer = (h * h + h) + 2 * (h * kv + kv) + h * h + 3 * h * inter + 2 * h  # q, k, v (biased), o, MLP, 2 norms
    assert full["weights"] - cut["weights"] == 20 * layer * 4
    assert cut["lora_weights"] == full["lora_weights"] * 4 / 24
    act = saved_bytes_per_token(QWEN, False)
    assert full["activations"] - cut["activations"] == pytest.approx(256 * 20 * act["per_layer"])


def test_saved_activations_pinned_and_checkpointing():
    act = saved_bytes_per_token(QWEN, False)
    assert act["layers"] == 24 and act["checkpoint_input"] == 896 * 4
    assert act["per_layer"] == pytest.approx(PINNED_QWEN_FP32_PER_LAYER, rel=1e-6)
    full = predict(Recipe(QWEN, 512, bf16=False), gpu=False)
    ckpt = predict(Recipe(QWEN, 512, bf16=False, checkpointing=True), gpu=False)
    assert full["activations"] - ckpt["activations"] == pytest.approx(512 * 23 * act["per_layer"]
                                                                      - 512 * 24 * 896 * 4)


PINNED_QWEN_FP32_PER_LAYER = 156_160.0  # bytes per token per layer, measured 2026-12-04 (torch 2.14.1)
