"""The LLaVA chain on tiny models: compose → LoRA + projector training → checkpoints → resume → merge → reload.

train.py and merge_lora_weights.py run in-process through their `main(argv)` (the same code the scripts run).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import merge_lora_weights
import train
from vlmkit.io import InputError
from vlmkit.training.data import SupervisedDataset, VLMCollator, load_samples

VIEWS = "front,back"


def data_args(examples: Path) -> list[str]:
    return ["--data", str(examples / "groundTruth.json"), "--image_folder", str(examples / "multiview_images"),
            "--views", VIEWS]


def dataset_loss(model, processor, examples: Path) -> float:
    """Mean supervised loss of `model` over the whole tiny training set (one batch, no dropout)."""
    samples, root = load_samples(examples / "groundTruth.json", str(examples / "multiview_images"),
                                 views=tuple(VIEWS.split(",")))
    dataset = SupervisedDataset(samples, root, processor)
    batch = VLMCollator(processor.tokenizer.pad_token_id)([dataset[i] for i in range(len(dataset))])
    model.eval()
    with torch.no_grad():
        return model(**batch).loss.item()


@pytest.fixture(scope="module")
def examples(repo_root) -> Path:
    return repo_root / "examples"


@pytest.fixture(scope="module")
def run_a(tmp_path_factory, examples, tiny_siglip_dir, tiny_qwen3_lm_dir) -> Path:
    """Compose SigLIP + Qwen3 and train 6 steps (batch 2, 2 epochs), saving every 3 steps."""
    out = tmp_path_factory.mktemp("llava") / "run_a"
    code = train.main(["--vision_model", str(tiny_siglip_dir), "--lm_model", str(tiny_qwen3_lm_dir),
                       *data_args(examples), "--output_dir", str(out), "--max_steps", "6", "--save_steps", "3",
                       "--per_device_train_batch_size", "2", "--learning_rate", "5e-3", "--projector_lr", "2e-2",
                       "--logging_steps", "1", "--seed", "0"])
    assert code == 0
    return out


def adapter_tensors(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "adapter_model.safetensors"))


def test_training_lowers_the_loss_on_the_training_set(run_a, examples):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(run_a)
    before = dataset_loss(AutoModelForImageTextToText.from_pretrained(run_a / "base"), processor, examples)
    trained = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(run_a / "base"), run_a)
    after = dataset_loss(trained, processor, examples)
    assert after < before - 0.3, (before, after)
    summary = json.loads((run_a / "train_summary.json").read_text())
    assert summary["global_step"] == 6 and summary["samples"] == 6 and summary["skipped_samples"] == 0
    assert summary["trainable_parameters"]["vision"] == 0 and summary["trainable_parameters"]["projector"] > 0


def test_every_checkpoint_holds_adapter_projector_and_metadata(run_a):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    base_projector = AutoModelForImageTextToText.from_pretrained(run_a / "base").state_dict()
    for step in (3, 6):
        folder = run_a / f"checkpoint-{step}"
        tensors = adapter_tensors(folder)
        projector = {k: v for k, v in tensors.items() if "multi_modal_projector" in k}
        assert len(projector) == 4  # linear_1/linear_2 weight + bias
        assert any("lora_B" in k for k in tensors)
        assert not any("vision_tower" in k for k in tensors)
        key = "base_model.model.model.multi_modal_projector.linear_1.weight"
        assert not torch.equal(projector[key], base_projector["model.multi_modal_projector.linear_1.weight"])
        info = json.loads((folder / "vlmkit_training.json").read_text())
        assert info["global_step"] == step and info["base_model"] == str((run_a / "base").resolve())
        assert info["stage"] == "finetune" and info["kind"] == "adapter"
        assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == info[
            "base_model"]
        # The inference contract: PeftModel.from_pretrained(base, folder) restores the trained projector.
        model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(info["base_model"]), folder)
        restored = model.base_model.model.model.multi_modal_projector.modules_to_save["default"].linear_1.weight
        assert torch.equal(restored, projector[key])
        assert (folder / "processor_config.json").is_file() and (folder / "chat_template.jinja").is_file()


def test_lora_is_on_the_language_model_only(run_a):
    config = json.loads((run_a / "adapter_config.json").read_text())
    lora_modules = {k.split(".lora_")[0] for k in adapter_tensors(run_a) if ".lora_" in k}
    assert lora_modules and all(".language_model.layers." in k for k in lora_modules)
    assert config["modules_to_save"] == ["multi_modal_projector"]


def test_resume_from_an_intermediate_checkpoint_reproduces_the_run(run_a, examples, tmp_path):
    out = tmp_path / "run_b"
    assert train.main(["--base_model", str(run_a / "base"), *data_args(examples), "--output_dir", str(out),
                       "--max_steps", "6", "--save_steps", "3", "--per_device_train_batch_size", "2",
                       "--learning_rate", "5e-3", "--projector_lr", "2e-2", "--logging_steps", "1", "--seed", "0",
                       "--resume_from_checkpoint", str(run_a / "checkpoint-3")]) == 0
    resumed, straight = adapter_tensors(out), adapter_tensors(run_a)
    assert resumed.keys() == straight.keys()
    for key in straight:
        assert torch.allclose(resumed[key], straight[key], atol=1e-6), key
    # The summary covers the whole run: steps 1-3 from the checkpoint's history, 4-6 trained now, the same
    # losses as the uninterrupted run, and a whole-run loss equal to it (not the mean of the resumed steps).
    resumed_summary = json.loads((out / "train_summary.json").read_text())
    straight_summary = json.loads((run_a / "train_summary.json").read_text())
    assert [step for step, _ in resumed_summary["logged_losses"]] == [1, 2, 3, 4, 5, 6]
    for (step, loss), (_, expected) in zip(resumed_summary["logged_losses"], straight_summary["logged_losses"],
                                           strict=True):
        assert loss == pytest.approx(expected, abs=1e-5), step
    assert resumed_summary["train_loss"] == pytest.approx(straight_summary["train_loss"], abs=1e-5)
    assert straight_summary["train_loss"] == pytest.approx(straight_summary["train_loss_this_session"], abs=1e-5)
    mean_of_resumed_steps = sum(loss for _, loss in resumed_summary["logged_losses"][3:]) / 3
    assert resumed_summary["train_loss_this_session"] == pytest.approx(mean_of_resumed_steps, abs=1e-5)
    assert resumed_summary["resumed_from"] == str(run_a / "checkpoint-3")


def test_resume_last_passes_over_a_truncated_checkpoint(run_a, examples, tmp_path, caplog):
    """A kill while checkpoint-6 was written: `last` resumes from checkpoint-3, says so, and ends where the
    uninterrupted run did."""
    import shutil

    out = tmp_path / "run_c"
    out.mkdir()
    for step in (3, 6):
        shutil.copytree(run_a / f"checkpoint-{step}", out / f"checkpoint-{step}")
    weights = out / "checkpoint-6" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # the save was cut short
    from vlmkit.training.checkpoint import checkpoint_problem

    assert checkpoint_problem(out / "checkpoint-3") is None
    assert "adapter_model.safetensors" in checkpoint_problem(out / "checkpoint-6")
    argv = ["--base_model", str(run_a / "base"), *data_args(examples), "--output_dir", str(out),
            "--max_steps", "6", "--save_steps", "3", "--per_device_train_batch_size", "2", "--learning_rate", "5e-3",
            "--projector_lr", "2e-2", "--logging_steps", "1", "--seed", "0"]
    with pytest.raises(InputError, match="incomplete checkpoint"):
        train.main([*argv, "--resume_from_checkpoint", str(out / "checkpoint-6")])
    caplog.set_level("INFO")
    assert train.main([*argv, "--resume_from_checkpoint", "last"]) == 0
    assert "checkpoint-6 is incomplete (adapter_model.safetensors" in caplog.text
    assert "resuming from checkpoint-3, the newest complete checkpoint" in caplog.text
    assert checkpoint_problem(out / "checkpoint-6") is None  # rewritten, complete this time
    resumed, straight = adapter_tensors(out), adapter_tensors(run_a)
    for key in straight:
        assert torch.allclose(resumed[key], straight[key], atol=1e-6), key
    assert json.loads((out / "train_summary.json").read_text())["resumed_from"] == str(out / "checkpoint-3")

    # Without the completion marker (a save killed before its last file) a checkpoint is incomplete as well.
    (out / "checkpoint-6" / "vlmkit_training.json").unlink()
    assert checkpoint_problem(out / "checkpoint-6").startswith("no vlmkit_training.json")


def test_merged_intermediate_checkpoint_is_a_standalone_model(run_a, tmp_path, tiny_siglip_dir, examples):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor, SiglipVisionModel

    from vlmkit.training.merge import logits_of, probe_inputs

    merged_dir = tmp_path / "merged"
    assert merge_lora_weights.main(["--adapter", str(run_a / "checkpoint-3"), "--output_dir", str(merged_dir)]) == 0
    info = json.loads((merged_dir / "vlmkit_merge.json").read_text())
    assert info["max_abs_logit_diff"] <= 1e-3 and info["reload_max_abs_logit_diff"] == 0.0

    merged = AutoModelForImageTextToText.from_pretrained(merged_dir)
    processor = AutoProcessor.from_pretrained(merged_dir)
    inputs = probe_inputs(processor)
    base = AutoModelForImageTextToText.from_pretrained(run_a / "base")
    base_logits = logits_of(base, inputs)
    adapter_logits = logits_of(PeftModel.from_pretrained(base, run_a / "checkpoint-3"), inputs)
    merged_logits = logits_of(merged, inputs)
    assert (adapter_logits - base_logits).abs().max() > 1e-2  # the adapter changes the model: the check is real
    assert torch.allclose(merged_logits, adapter_logits, atol=1e-4)
    # The one loader for inference: adapter folders (unmerged) and merged folders give the same model.
    from vlmkit.training.checkpoint import load_trained_model

    for folder in (run_a / "checkpoint-3", merged_dir):
        loaded, loaded_processor = load_trained_model(folder)
        assert torch.allclose(logits_of(loaded, probe_inputs(loaded_processor)), adapter_logits, atol=1e-4)

    # The vision tower left training untouched: equal to the SigLIP it was composed from.
    source = SiglipVisionModel.from_pretrained(tiny_siglip_dir).state_dict()
    tower = merged.model.vision_tower.state_dict()
    assert source.keys() == tower.keys() and all(torch.equal(tower[k], source[k]) for k in source)

    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "image"},
                                             {"type": "text", "text": "Describe this image in one sentence."}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    view = examples / "multiview_images"
    folder = sorted(view.iterdir())[0]
    from PIL import Image

    images = [Image.open(folder / f"{v}.jpg").convert("RGB") for v in VIEWS.split(",")]
    batch = processor(text=[text], images=images, return_tensors="pt")
    out = merged.generate(**batch, max_new_tokens=6, do_sample=False)
    assert out.shape[1] > batch["input_ids"].shape[1]
    assert isinstance(processor.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True), str)


def test_projector_pretraining_then_finetuning(tmp_path, examples_copy, tiny_clip_dir, tiny_qwen2_lm_dir):
    from transformers import AutoModelForImageTextToText

    from vlmkit.training.checkpoint import read_projector

    # A corrupt view with --skip_bad_samples: that object is skipped, counted and listed, never silently dropped.
    bad = sorted((examples_copy / "multiview_images").iterdir())[0] / "front.jpg"
    bad.write_bytes(b"broken")
    pre = tmp_path / "pretrain"
    assert train.main(["--stage", "pretrain", "--vision_model", str(tiny_clip_dir), "--lm_model",
                       str(tiny_qwen2_lm_dir), *data_args(examples_copy), "--output_dir", str(pre),
                       "--max_steps", "2", "--save_steps", "1", "--learning_rate", "1e-2", "--logging_steps", "1",
                       "--skip_bad_samples"]) == 0
    assert json.loads((pre / "skipped_samples.json").read_text())[0]["image"] == str(bad)
    assert json.loads((pre / "train_summary.json").read_text())["skipped_samples"] == 1
    assert (pre / "checkpoint-1" / "trained_weights.safetensors").is_file()
    assert not (pre / "checkpoint-1" / "adapter_config.json").exists()
    base = AutoModelForImageTextToText.from_pretrained(pre / "base").state_dict()
    projector = read_projector(pre)
    assert set(projector) == {k for k in base if "multi_modal_projector" in k}
    assert not torch.equal(projector["model.multi_modal_projector.linear_2.weight"],
                           base["model.multi_modal_projector.linear_2.weight"])

    fine = tmp_path / "finetune"
    assert train.main(["--pretrained_projector", str(pre), *data_args(examples_copy), "--output_dir", str(fine),
                       "--max_steps", "1", "--learning_rate", "1e-9", "--projector_lr", "1e-9",
                       "--skip_bad_samples"]) == 0
    info = json.loads((fine / "vlmkit_training.json").read_text())
    assert info["base_model"] == str((pre / "base").resolve())
    started_from = read_projector(fine)  # lr 1e-9: still the pre-trained projector
    for key, value in projector.items():
        assert torch.allclose(started_from[key], value, atol=1e-6)

    from vlmkit.training.checkpoint import load_trained_model

    loaded, _ = load_trained_model(pre / "checkpoint-1")
    assert torch.equal(loaded.model.multi_modal_projector.linear_2.weight,
                       read_projector(pre / "checkpoint-1")["model.multi_modal_projector.linear_2.weight"])

    merged = tmp_path / "pretrain-merged"
    assert merge_lora_weights.main(["--adapter", str(pre), "--output_dir", str(merged)]) == 0
    model = AutoModelForImageTextToText.from_pretrained(merged)
    assert torch.equal(model.model.multi_modal_projector.linear_2.weight,
                       projector["model.multi_modal_projector.linear_2.weight"])


@pytest.mark.parametrize(("extra", "message"), [
    (["--arch", "qwen2_5_vl", "--stage", "pretrain", "--base_model", "x"], "--stage pretrain trains a LLaVA"),
    (["--deepspeed", "zero3_offload", "--base_model", "BASE"], "offloads"),
    (["--fp16", "--base_model", "BASE"], "--fp16 needs a CUDA GPU"),
    (["--deepspeed", "zero4", "--base_model", "BASE"], "config not found"),
    (["--deepspeed", "OPTIMIZER_CONFIG", "--projector_lr", "1e-3", "--base_model", "BASE"], "--projector_lr would"),
    (["--vision_model", "v", "--lm_model", "l", "--base_model", "BASE"], "not both"),
    (["--vision_model", "v"], "needs both --vision_model and --lm_model"),
    (["--min_pixels", "784", "--base_model", "BASE"], "--min_pixels/--max_pixels"),
    (["--lora_target", r".*\.q_proj", "--base_model", "BASE"], "matches vision modules"),
    (["--arch", "qwen2_5_vl", "--base_model", "BASE"], "a llava checkpoint, but --arch qwen2_5_vl"),
    (["--base_model", "BASE", "--output_dir", "RUN_A"], "pass --resume_from_checkpoint last"),
    (["--base_model", "BASE", "--stage", "pretrain", "--resume_from_checkpoint", "RUN_A/checkpoint-3"],
     "was trained with stage=finetune"),
])
def test_invalid_combinations_are_rejected(run_a, examples, tmp_path, extra, message):
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps({"optimizer": {"type": "AdamW", "params": {"lr": 1e-4}},
                              "zero_optimization": {"stage": 3}}))
    replace = {"BASE": str(run_a / "base"), "OPTIMIZER_CONFIG": str(ds)}
    extra = [replace.get(x, x.replace("RUN_A", str(run_a))) for x in extra]
    argv = [*data_args(examples), "--output_dir", str(tmp_path / "out"), "--max_steps", "1", *extra]
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        train.main(argv)
    assert not (tmp_path / "out" / "checkpoint-1").exists()


def test_the_projector_gets_its_own_learning_rate(run_a, tmp_path):
    from transformers import AutoModelForImageTextToText, TrainingArguments

    from vlmkit.training import lora
    from vlmkit.training.trainer import VLMTrainer

    model = AutoModelForImageTextToText.from_pretrained(run_a / "base")
    lora.freeze(model)
    model = lora.apply_lora(model, target=None, r=4, alpha=8, dropout=0.0,
                            modules_to_save=["multi_modal_projector"])
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-4, weight_decay=0.1, use_cpu=True,
                             report_to="none")
    optimizer = VLMTrainer(model=model, args=args, projector_lr=3e-3).create_optimizer()
    names = {id(p): n for n, p in model.named_parameters()}
    by_lr: dict[float, set[str]] = {}
    for group in optimizer.param_groups:
        by_lr.setdefault(group["lr"], set()).update(names[id(p)] for p in group["params"])
    assert set(by_lr) == {1e-4, 3e-3}
    assert by_lr[3e-3] and all("multi_modal_projector" in n for n in by_lr[3e-3])
    assert by_lr[1e-4] and all("lora_" in n for n in by_lr[1e-4])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert by_lr[3e-3] | by_lr[1e-4] == trainable


def test_overwrite_output_dir_removes_the_old_runs_checkpoints(run_a, examples, tmp_path):
    out = tmp_path / "again"
    (out / "checkpoint-99").mkdir(parents=True)
    argv = ["--base_model", str(run_a / "base"), *data_args(examples), "--output_dir", str(out), "--max_steps", "1",
            "--save_steps", "1"]
    with pytest.raises(InputError, match="holds checkpoint-99"):
        train.main(argv)
    assert train.main([*argv, "--overwrite_output_dir"]) == 0
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]
