"""Any LM composes with its own chat format, and trains on exactly the prompt tokens it will see at inference.

Five tiny LMs with the tokenizer behaviours of their released families: Qwen2/Qwen3 (ChatML, no BOS), Llama 3 and
Gemma (the template writes BOS, the tokenizer would add a second one), Phi-3 (no BOS in the template, the tokenizer
adds it; fused qkv_proj/gate_up_proj).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

import merge_lora_weights
import train
from vlmkit.samples import caption_sample
from vlmkit.training.data import IGNORE_INDEX, encode_sample

FAMILIES = ["qwen2", "qwen3", "llama", "gemma", "phi3"]
# what the LM's own template writes before an answer, and the token that ends it
MARKERS = {"qwen2": ("<|im_start|>assistant\n", "<|im_end|>"), "qwen3": ("<|im_start|>assistant\n", "<|im_end|>"),
           "llama": ("<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
           "gemma": ("<start_of_turn>model\n", "<end_of_turn>"), "phi3": ("<|assistant|>\n", "<|end|>")}
CAPTION = "Athenian red-figure kylix, c. 490 BCE."
PROMPT = "Describe these views of an ancient Greek vase."


@pytest.fixture(scope="module")
def composed(tmp_path_factory, tiny_siglip_dir, tiny_qwen2_lm_dir, tiny_qwen3_lm_dir, tiny_chat_lm_dirs):
    from vlmkit.training.compose import compose_llava

    lms = {"qwen2": tiny_qwen2_lm_dir, "qwen3": tiny_qwen3_lm_dir, **tiny_chat_lm_dirs}
    out = tmp_path_factory.mktemp("composed_lms")
    return {family: compose_llava(tiny_siglip_dir, lms[family], out / family) for family in FAMILIES}


def images() -> list[Image.Image]:
    return [Image.new("RGB", (40, 30), (200, 50, 0)), Image.new("RGB", (30, 40), (0, 90, 200))]


@pytest.mark.parametrize("family", FAMILIES)
def test_training_and_generation_tokenise_the_prompt_identically(composed, family):
    from transformers import AutoProcessor

    from vlmkit.generation.hf_backend import HFCaptioner
    from vlmkit.generation.runner import CaptionRequest
    from vlmkit.generation.sampling import GenerationSettings

    processor = AutoProcessor.from_pretrained(composed[family])
    tokenizer = processor.tokenizer
    encoded = encode_sample(processor, caption_sample("v", ["a.jpg", "b.jpg"], CAPTION, PROMPT), images())
    ids, labels = encoded["input_ids"][0].tolist(), encoded["labels"][0].tolist()
    answer_start = next(i for i, label in enumerate(labels) if label != IGNORE_INDEX)
    training_prompt = ids[:answer_start]

    captioner = HFCaptioner(composed[family], settings=GenerationSettings(max_new_tokens=2), device="cpu")
    batch = captioner.prepare([CaptionRequest(PROMPT, images(), [Path("a.jpg"), Path("b.jpg")], ["front", "back"])])
    assert batch["input_ids"][0].tolist() == training_prompt

    text = processor.decode(training_prompt)
    before, end = MARKERS[family]
    assert text.endswith(before)  # the LM's own chat format, not a generic one
    if family in ("llama", "gemma", "phi3"):  # BOS included, exactly once (Llama/Gemma templates write it too)
        assert training_prompt[0] == tokenizer.bos_token_id and training_prompt.count(tokenizer.bos_token_id) == 1
    else:
        assert tokenizer.bos_token is None
    supervised = processor.decode([t for t in labels if t != IGNORE_INDEX])
    assert supervised.startswith(CAPTION + end)
    eos = json.loads((composed[family] / "generation_config.json").read_text())["eos_token_id"]
    assert tokenizer.convert_tokens_to_ids(end) in (eos if isinstance(eos, list) else [eos])


def lora_count(model, leaves: set[str], r: int) -> int:
    """LoRA parameters of rank r on the LM's decoder linear layers named `leaves`: r * (in + out) each."""
    return sum(r * (m.in_features + m.out_features) for n, m in model.named_modules()
               if isinstance(m, torch.nn.Linear) and ".language_model.layers." in n and n.rsplit(".", 1)[-1] in leaves)


@pytest.mark.parametrize(("family", "leaves"), [
    ("phi3", {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}),
    ("llama", {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}),
])
def test_lora_targets_each_architectures_own_projections(composed, family, leaves, caplog):
    from transformers import AutoModelForImageTextToText

    from vlmkit.training import lora

    model = AutoModelForImageTextToText.from_pretrained(composed[family])
    expected = lora_count(model, leaves, 4)
    lora.freeze(model)
    with caplog.at_level(logging.WARNING):
        wrapped = lora.apply_lora(model, target=None, r=4, alpha=8, dropout=0.0, modules_to_save=[])
    targeted = {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in wrapped.named_modules() if n.endswith(".lora_A")}
    assert targeted == leaves
    assert lora.trainable_summary(wrapped)["lora"] == expected
    assert "without an adapter" not in caplog.text  # every decoder linear layer is covered


def test_a_lora_target_name_that_matches_nothing_is_warned_about(composed, caplog):
    from transformers import AutoModelForImageTextToText

    from vlmkit.io import InputError
    from vlmkit.training import lora

    model = AutoModelForImageTextToText.from_pretrained(composed["phi3"])
    with caplog.at_level(logging.WARNING):
        names = lora.lora_targets(model, "q_proj,v_proj,o_proj")
    assert {n.rsplit(".", 1)[-1] for n in names} == {"o_proj"}
    assert "--lora_target: q_proj matches no linear layer of this language model" in caplog.text
    assert "--lora_target: v_proj matches no" in caplog.text
    assert "without an adapter: down_proj, gate_up_proj, qkv_proj" in caplog.text
    with pytest.raises(InputError, match="matches no linear layer"):
        lora.lora_targets(model, "q_proj,v_proj")


def test_a_gemma_llava_trains_and_merges(tmp_path, repo_root, tiny_siglip_dir, tiny_chat_lm_dirs):
    """MGM-2B's language model is Gemma-2B: compose, train with its own template, merge."""
    examples = repo_root / "examples"
    out = tmp_path / "gemma"
    assert train.main(["--vision_model", str(tiny_siglip_dir), "--lm_model", str(tiny_chat_lm_dirs["gemma"]),
                       "--data", str(examples / "groundTruth.json"), "--image_folder",
                       str(examples / "multiview_images"), "--views", "front", "--output_dir", str(out),
                       "--max_steps", "2", "--per_device_train_batch_size", "2", "--learning_rate", "1e-2"]) == 0
    assert json.loads((out / "base" / "vlmkit_compose.json").read_text())["chat_template"] == "lm"
    assert "<start_of_turn>model" in (out / "chat_template.jinja").read_text()
    assert merge_lora_weights.main(["--adapter", str(out), "--output_dir", str(tmp_path / "merged")]) == 0
