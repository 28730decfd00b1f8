"""LoRA fine-tuning of an existing Qwen2.5-VL with the same train.py: language model only, vision frozen."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load_file

import merge_lora_weights
import train


def test_qwen2_5_vl_lora_trains_merges_and_reloads(tmp_path, repo_root, tiny_qwen2_5_vl_dir):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlmkit.training.merge import logits_of, probe_inputs

    examples = repo_root / "examples"
    out = tmp_path / "qwen-sft"
    assert train.main(["--arch", "qwen2_5_vl", "--base_model", str(tiny_qwen2_5_vl_dir),
                       "--data", str(examples / "groundTruth.json"), "--image_folder",
                       str(examples / "multiview_images"), "--views", "front,top", "--max_pixels", str(56 * 56),
                       "--output_dir", str(out), "--max_steps", "3", "--save_steps", "2",
                       "--per_device_train_batch_size", "2", "--learning_rate", "1e-2", "--logging_steps", "1",
                       "--gradient_checkpointing"]) == 0

    tensors = load_file(str(out / "checkpoint-2" / "adapter_model.safetensors"))
    lora_modules = {k.split(".lora_")[0] for k in tensors if ".lora_" in k}
    assert lora_modules and all(".language_model.layers." in k for k in lora_modules)
    assert not any(".visual." in k for k in tensors)  # no vision module got LoRA, nothing of the tower is saved
    assert json.loads((out / "adapter_config.json").read_text())["modules_to_save"] is None
    processor = AutoProcessor.from_pretrained(out)
    assert processor.image_processor.size["longest_edge"] == 56 * 56  # the training resolution travels along

    merged_dir = tmp_path / "qwen-sft-merged"
    assert merge_lora_weights.main(["--adapter", str(out), "--output_dir", str(merged_dir)]) == 0
    merged = AutoModelForImageTextToText.from_pretrained(merged_dir)
    base = AutoModelForImageTextToText.from_pretrained(tiny_qwen2_5_vl_dir)
    base_visual, merged_visual = base.model.visual.state_dict(), merged.model.visual.state_dict()
    assert all(torch.equal(merged_visual[k], v) for k, v in base_visual.items())  # vision tower unchanged
    changed = [k for k, v in base.model.language_model.state_dict().items()
               if not torch.equal(merged.model.language_model.state_dict()[k], v)]
    assert any("q_proj" in k for k in changed)

    merged_processor = AutoProcessor.from_pretrained(merged_dir)
    inputs = probe_inputs(merged_processor)
    assert not torch.allclose(logits_of(merged, inputs), logits_of(base, inputs), atol=1e-3)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}]
    text = merged_processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    from vlmkit.training.merge import probe_images

    batch = merged_processor(text=[text], images=probe_images()[:1], return_tensors="pt")
    generated = merged.generate(**batch, max_new_tokens=4, do_sample=False)
    assert generated.shape[1] > batch["input_ids"].shape[1]
