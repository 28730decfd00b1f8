"""`train_summary.json`: what a run did, over the whole run (resumes included), from the Trainer's log history."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vlmkit.training.prepare import Prepared

SUMMARY = "train_summary.json"


def whole_run_loss(log_history: list[dict[str, Any]]) -> float | None:
    """Mean training loss per step over the whole run, from the logged window means (each the mean of the steps
    since the previous log). `LogAtSaveCallback` logs at every checkpoint and at the end, so the windows cover every
    step, also across a resume, where the Trainer's own `train_loss` covers the resumed steps only."""
    points = sorted({int(e["step"]): float(e["loss"]) for e in log_history if "loss" in e}.items())
    total, previous = 0.0, 0
    for step, loss in points:
        total += loss * (step - previous)
        previous = step
    return total / previous if previous else None


def run_summary(log_history: list[dict[str, Any]], *, prepared: Prepared, global_step: int, session_loss: float,
                trainable: dict[str, Any], full: list[str], resume: Path | None, world_size: int,
                seconds: float) -> dict[str, Any]:
    return {
        "samples": len(prepared.samples),
        "skipped_samples": len(prepared.train.skipped),
        "eval_samples": len(prepared.eval_samples),
        "global_step": global_step,
        "train_loss": whole_run_loss(log_history),
        "train_loss_this_session": session_loss,
        "logged_losses": [[int(e["step"]), float(e["loss"])] for e in log_history if "loss" in e],
        "eval_losses": [[int(e["step"]), float(e["eval_loss"])] for e in log_history if "eval_loss" in e],
        "trainable_parameters": trainable,
        "trained_in_full": full,
        "resumed_from": str(resume) if resume else None,
        "max_length": prepared.train.max_length,
        "world_size": world_size,
        "seconds": seconds,
    }
