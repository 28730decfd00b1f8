"""Trainer callbacks: what makes a run watchable (loss curve, captions of eval samples) and trustworthy (complete
checkpoints, a loss history that covers every step).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from vlmkit.io import atomic_write_json
from vlmkit.samples import TrainingSample
from vlmkit.training.checkpoint import write_training_info

log = logging.getLogger(__name__)

EVAL_CAPTIONS = "eval_captions"
LOSS_CURVE = "loss_curve.png"


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class CheckpointInfoCallback(TrainerCallback):
    """Marks each `checkpoint-N` complete: once every rank has written its part, `vlmkit_training.json` (with the
    list of files and their sizes, the run's elapsed time) goes in last. A folder without it is an interrupted save.
    """

    def __init__(self, info: dict[str, Any], elapsed_before: float = 0.0):
        self.info = info
        self.elapsed_before = elapsed_before
        self.started = time.time()

    def elapsed(self) -> float:
        return round(self.elapsed_before + time.time() - self.started, 1)

    def on_save(self, args, state, control, **kwargs):
        _barrier()  # DeepSpeed: every rank writes its own shards of the checkpoint
        if state.is_world_process_zero:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                write_training_info(folder, self.info, complete=True, global_step=state.global_step,
                                    elapsed_seconds=self.elapsed())
        _barrier()  # nobody reads or rotates checkpoints before the marker is there
        return control


class LogAtSaveCallback(TrainerCallback):
    """Logs the training loss at every checkpoint and at the last step, so the log history a checkpoint carries
    covers every step before it, and the run summary's loss is over the whole run, resumes included."""

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save or state.global_step >= state.max_steps:
            control.should_log = True
        return control


class LossCurveCallback(TrainerCallback):
    """Redraws `loss_curve.png` (train loss, eval loss, learning rate vs step) at every eval, save and the end."""

    def __init__(self, output_dir: Path, title: str = ""):
        self.path = Path(output_dir) / LOSS_CURVE
        self.title = title

    def _draw(self, state) -> None:
        if not state.is_world_process_zero:
            return
        from vlmkit.training.plots import loss_curve

        try:
            loss_curve(state.log_history, self.path, self.title)
        except (OSError, ValueError, RuntimeError) as exc:  # a plot must never stop a training run
            log.warning("loss curve not drawn: %s", exc)

    def on_evaluate(self, args, state, control, **kwargs):
        self._draw(state)
        return control

    def on_save(self, args, state, control, **kwargs):
        self._draw(state)
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self._draw(state)
        return control


def caption_samples(model, processor, samples: list[TrainingSample], root: Path, *, max_new_tokens: int = 64,
                    autocast_dtype=None) -> list[dict[str, Any]]:
    """Greedy captions of `samples` by `model` as it is now (adapter applied), prompts built as at inference."""
    import torch

    from vlmkit.generation.hf_backend import add_special_tokens_for
    from vlmkit.training.data import open_image

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    records = []
    try:
        for sample in samples:
            messages = sample.to_chat_messages()
            k = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
            prompt = messages[:k]
            n_images = sum(1 for m in prompt for item in m["content"] if item.get("type") == "image")
            images = [open_image(p, sample.id) for p in sample.resolved_images(root)][:n_images]
            text = processor.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            inputs = processor(text=[text], images=images or None, return_tensors="pt",
                               add_special_tokens=add_special_tokens_for(processor.tokenizer, [text])).to(device)
            with torch.no_grad(), torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                                                 enabled=autocast_dtype is not None):
                output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True)
            new = output[0, inputs["input_ids"].shape[1]:]
            reference = " ".join(i["text"] for i in messages[k]["content"] if i.get("type") == "text")
            records.append({"id": sample.id, "caption": processor.decode(new, skip_special_tokens=True).strip(),
                            "reference": reference})
    finally:
        if was_training:
            model.train()
    return records


class EvalCaptionsCallback(TrainerCallback):
    """At every evaluation, captions the first N eval samples with the current adapter and writes them to
    `<output_dir>/eval_captions/step-N.json`, beside `checkpoint-N`: progress visible as text."""

    def __init__(self, samples: list[TrainingSample], root: Path, processor, output_dir: Path,
                 autocast_dtype=None, max_new_tokens: int = 64):
        self.samples = samples
        self.root = Path(root)
        self.processor = processor
        self.folder = Path(output_dir) / EVAL_CAPTIONS
        self.autocast_dtype = autocast_dtype
        self.max_new_tokens = max_new_tokens

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        import torch.distributed as dist
        from transformers.integrations import is_deepspeed_zero3_enabled

        # ZeRO-3 holds a slice of every weight on each rank: all ranks generate together (synced_gpus).
        together = is_deepspeed_zero3_enabled() and dist.is_initialized() and dist.get_world_size() > 1
        if model is None or not (state.is_world_process_zero or together):
            return control
        records = caption_samples(model, self.processor, self.samples, self.root,
                                  max_new_tokens=self.max_new_tokens, autocast_dtype=self.autocast_dtype)
        if state.is_world_process_zero:
            path = self.folder / f"step-{state.global_step}.json"
            atomic_write_json(path, {"step": state.global_step, "captions": records})
            if records:
                log.info("step %d, eval caption of %s: %r (reference: %r) -> %s", state.global_step,
                         records[0]["id"], records[0]["caption"][:120], records[0]["reference"][:80], path)
        return control
