"""Training scope: each flag changes exactly the parameter set it names (names and count), and the result merges.

The expected sets are computed here from the base model's own parameter names; the trained set is what train.py's
loading code leaves trainable; after one training step and merge_lora_weights.py, every weight outside the trained
set (and outside the LoRA-merged projections) is bit-identical to the base.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import merge_lora_weights
import train
from vlmkit.io import InputError
from vlmkit.training.model import load_for_training
from vlmkit.training.options import TrainOptions

LORA_LEAVES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="module")
def llava_base(tmp_path_factory, tiny_siglip_dir, tiny_qwen2_lm_dir) -> Path:
    from vlmkit.training.compose import compose_llava

    return compose_llava(tiny_siglip_dir, tiny_qwen2_lm_dir, tmp_path_factory.mktemp("scope") / "base")


def base_names(model) -> dict[str, int]:
    return {n: p.numel() for n, p in model.named_parameters()}


def trained(model) -> tuple[set[str], set[str]]:
    """(base names of parameters trained in full, names of the LM linear layers that got LoRA)."""
    full, lora = set(), set()
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        name = name.removeprefix("base_model.model.").replace(".modules_to_save.default", "")
        if ".lora_" in name:
            lora.add(name.split(".lora_")[0] + ".weight")
        else:
            full.add(name)
    return full, lora


def prefixed(names: dict[str, int], *prefixes: str) -> set[str]:
    return {n for n in names if n.startswith(prefixes)}


CASES = {
    # flags -> (arch, prefixes of the parameters trained in full, LoRA?)
    "train_lm_layers": (["--train_lm_layers", "1"], "llava",
                        ("model.multi_modal_projector.", "model.language_model.layers.1."), False),
    "unfreeze_vision": (["--unfreeze_vision"], "llava", ("model.multi_modal_projector.", "model.vision_tower."), True),
    "unfreeze_merger": (["--unfreeze_merger"], "qwen2_5_vl", ("model.visual.merger.",), True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_scope_flag_trains_exactly_what_it_names_and_merges(case, llava_base, tiny_qwen2_5_vl_dir, tmp_path,
                                                                 repo_root):
    from transformers import AutoModelForImageTextToText

    flags, arch, prefixes, lora = CASES[case]
    base = llava_base if arch == "llava" else tiny_qwen2_5_vl_dir
    names = base_names(AutoModelForImageTextToText.from_pretrained(base))
    expected_full = prefixed(names, *prefixes)
    expected_lora = {n for n in names if ".language_model.layers." in n and n.endswith(".weight")
                     and n.split(".")[-2] in LORA_LEAVES} if lora else set()

    options = TrainOptions.of(arch=arch, base_model=str(base), data="x", output_dir="y",
                              train_lm_layers=1 if case == "train_lm_layers" else 0,
                              unfreeze_vision=case == "unfreeze_vision", unfreeze_merger=case == "unfreeze_merger")
    model, _, full_modules = load_for_training(options, base, deepspeed=False)
    full, lora_weights = trained(model)
    assert full == expected_full and lora_weights == expected_lora
    assert sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and ".lora_" not in n) == sum(
        names[n] for n in expected_full)

    examples = repo_root / "examples"
    out = tmp_path / "run"
    assert train.main(["--arch", arch, "--base_model", str(base), "--data", str(examples / "groundTruth.json"),
                       "--image_folder", str(examples / "multiview_images"), "--views", "front",
                       "--output_dir", str(out), "--max_steps", "1", "--learning_rate", "1e-2", "--warmup_ratio", "0",
                       *flags,
                       *(["--max_pixels", str(56 * 56)] if arch == "qwen2_5_vl" else [])]) == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["trained_in_full"] == full_modules
    info = json.loads((out / "vlmkit_training.json").read_text())
    assert info["kind"] == ("adapter" if lora else "weights")
    if not lora:
        from safetensors.torch import load_file

        assert set(load_file(str(out / "trained_weights.safetensors"))) == expected_full
        assert not (out / "adapter_config.json").exists()

    merged_dir = tmp_path / "merged"
    assert merge_lora_weights.main(["--adapter", str(out), "--output_dir", str(merged_dir)]) == 0
    before = AutoModelForImageTextToText.from_pretrained(base).state_dict()
    after = AutoModelForImageTextToText.from_pretrained(merged_dir).state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed <= expected_full | expected_lora  # nothing outside the scope moved
    # Every weight trained in full was copied into the merged model, except where no gradient reaches: the
    # projector reads the vision tower's penultimate layer (vision_feature_layer -2), so its last layer and
    # post-layernorm stay as they were.
    unreachable = prefixed(names, "model.vision_tower.encoder.layers.1.", "model.vision_tower.post_layernorm.",
                           "model.vision_tower.head.")
    assert changed & expected_full == expected_full - unreachable
    if lora:
        assert changed & expected_lora == expected_lora


def test_max_samples_and_group_by_length(llava_base, repo_root, tmp_path):
    from vlmkit.training.trainer import VLMTrainer

    examples = repo_root / "examples"
    out = tmp_path / "run"
    assert train.main(["--base_model", str(llava_base), "--data", str(examples / "groundTruth.json"),
                       "--image_folder", str(examples / "multiview_images"), "--views", "front,back",
                       "--output_dir", str(out), "--max_steps", "1", "--max_samples", "4", "--group_by_length",
                       "--per_device_train_batch_size", "2"]) == 0
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["samples"] == 4
    preflight = json.loads((out / "preflight.json").read_text())["train"]
    assert preflight["samples"] == 4

    from transformers import TrainingArguments
    from transformers.trainer_pt_utils import LengthGroupedSampler

    args = TrainingArguments(output_dir=str(tmp_path / "t"), use_cpu=True, report_to="none",
                             per_device_train_batch_size=2, train_sampling_strategy="group_by_length")
    lengths = [40, 10, 30, 20, 50, 60]
    trainer = VLMTrainer(model=torch.nn.Linear(2, 2), args=args, train_dataset=list(range(6)), lengths=lengths)
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, LengthGroupedSampler) and sampler.lengths == lengths


@pytest.mark.parametrize(("flags", "message"), [
    (["--load_in_4bit"], "--load_in_4bit \\(QLoRA\\) needs a CUDA GPU"),
    (["--unfreeze_merger"], "--unfreeze_merger: Qwen2.5-VL's patch merger"),
    (["--train_lm_layers", "1", "--lora_target", "q_proj"], "drop --lora_target"),
    (["--train_lm_layers", "1", "--stage", "pretrain"], "keeps the language model frozen"),
    (["--train_lm_layers", "9"], "--train_lm_layers 9: the language model has 2 layers"),
])
def test_scope_flags_that_cannot_work_are_refused(llava_base, repo_root, tmp_path, monkeypatch, flags, message):
    import vlmkit.training.model as model_module

    if "9" not in flags:  # refused before any model is loaded
        monkeypatch.setattr(model_module, "load_for_training", lambda *a, **k: pytest.fail("model loaded"))
    examples = repo_root / "examples"
    with pytest.raises(InputError, match=message):
        train.main(["--base_model", str(llava_base), "--data", str(examples / "groundTruth.json"),
                    "--image_folder", str(examples / "multiview_images"), "--views", "front",
                    "--output_dir", str(tmp_path / "out"), "--max_steps", "1", *flags])
    assert not list((tmp_path / "out").glob("checkpoint-*"))
