"""Watching a run: eval_loss at the eval steps (equal to an independent computation), the loss curve, captions of
eval samples at each evaluation, and TensorBoard logging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import train

VIEWS = "front"


@pytest.fixture(scope="module")
def run(tmp_path_factory, repo_root, tiny_siglip_dir, tiny_qwen3_lm_dir) -> Path:
    examples = repo_root / "examples"
    out = tmp_path_factory.mktemp("eval") / "run"
    # Train and eval data differ (the last 4 objects vs all 6), so eval on the wrong set cannot pass for the right one.
    train_file = out.parent / "train_part.json"
    train_file.write_text(json.dumps(json.loads((examples / "groundTruth.json").read_text())[2:]))
    assert train.main(["--vision_model", str(tiny_siglip_dir), "--lm_model", str(tiny_qwen3_lm_dir),
                       "--data", str(train_file), "--eval_data", str(examples / "groundTruth.json"),
                       "--image_folder", str(examples / "multiview_images"), "--views", VIEWS,
                       "--output_dir", str(out), "--max_steps", "4", "--save_steps", "2", "--eval_steps", "2",
                       "--eval_generate", "2", "--logging_steps", "1", "--per_device_train_batch_size", "2",
                       "--learning_rate", "5e-3", "--projector_lr", "2e-2", "--report_to", "tensorboard"]) == 0
    return out


def eval_losses(state_file: Path) -> dict[int, float]:
    return {e["step"]: e["eval_loss"] for e in json.loads(state_file.read_text())["log_history"] if "eval_loss" in e}


def test_eval_loss_is_logged_at_the_eval_steps_and_is_the_mean_eval_loss(run, repo_root):
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from vlmkit.training.data import SupervisedDataset, VLMCollator, load_samples

    losses = eval_losses(run / "trainer_state.json")
    assert sorted(losses) == [2, 4]
    assert eval_losses(run / "checkpoint-2" / "trainer_state.json") == {2: losses[2]}
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["eval_losses"] == [[2, losses[2]], [4, losses[4]]] and summary["eval_samples"] == 6

    # Independent: the final adapter's mean loss over the eval samples (eval batch size = train batch size, 2).
    examples = repo_root / "examples"
    samples, root = load_samples(examples / "groundTruth.json", str(examples / "multiview_images"),
                                 views=(VIEWS,))
    processor = AutoProcessor.from_pretrained(run)
    model = PeftModel.from_pretrained(AutoModelForImageTextToText.from_pretrained(run / "base"), run).eval()
    dataset = SupervisedDataset(samples, root, processor)
    collate = VLMCollator(processor.tokenizer.pad_token_id)
    with torch.no_grad():
        batch_losses = [model(**collate([dataset[i], dataset[i + 1]])).loss.item() for i in range(0, 6, 2)]
    assert losses[4] == pytest.approx(sum(batch_losses) / 3, abs=1e-4)


def test_the_loss_curve_and_eval_captions_are_written(run, repo_root):
    from PIL import Image

    from vlmkit.training.plots import curves

    with Image.open(run / "loss_curve.png") as image:
        assert image.format == "PNG" and image.size[0] > 400
    series = curves(json.loads((run / "trainer_state.json").read_text())["log_history"])
    assert [s for s, _ in series["loss"]] == [1, 2, 3, 4] and [s for s, _ in series["eval_loss"]] == [2, 4]
    assert len(series["learning_rate"]) == 4

    truth = json.loads((repo_root / "examples" / "groundTruth.json").read_text())
    for step in (2, 4):
        written = json.loads((run / "eval_captions" / f"step-{step}.json").read_text())
        assert written["step"] == step and len(written["captions"]) == 2
        assert [c["reference"] for c in written["captions"]] == [t["caption"] for t in truth[:2]]
        assert all(isinstance(c["caption"], str) for c in written["captions"])


def test_tensorboard_gets_train_and_eval_scalars(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted((run / "runs").rglob("events.out.tfevents.*"))
    assert events
    accumulator = EventAccumulator(str(events[0].parent))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    assert {"train/loss", "eval/loss", "train/learning_rate"} <= tags
    assert [e.step for e in accumulator.Scalars("eval/loss")] == [2, 4]
