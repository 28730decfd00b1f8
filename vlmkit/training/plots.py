"""Pictures of a run a user looks at rather than reads: the loss curve and the sample-length histogram.

matplotlib's object API with the Agg canvas (no display, no global backend switch, safe inside any process), written
atomically so a viewer that reloads the PNG while training runs never sees half a file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from vlmkit.io import atomic_open


def _save(fig, path: str | os.PathLike) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    with atomic_open(path, "wb") as handle:
        handle.write(buffer.getvalue())
    return Path(path)


def curves(log_history: list[dict[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """(step, value) series of train loss, eval loss and learning rate from a Trainer's `log_history`."""
    series: dict[str, list[tuple[int, float]]] = {"loss": [], "eval_loss": [], "learning_rate": []}
    for entry in log_history:
        for key, points in series.items():
            if key in entry and "step" in entry:
                points.append((int(entry["step"]), float(entry[key])))
    return series


def loss_curve(log_history: list[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path | None:
    """Train loss and eval loss (top) and learning rate (bottom) against the optimizer step; None before any log."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    series = curves(log_history)
    if not series["loss"] and not series["eval_loss"]:
        return None
    fig = Figure(figsize=(7, 5))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    if series["loss"]:
        steps, values = zip(*series["loss"], strict=True)
        top.plot(steps, values, label="train loss", color="tab:blue", linewidth=1.2)
    if series["eval_loss"]:
        steps, values = zip(*series["eval_loss"], strict=True)
        top.plot(steps, values, "o-", label="eval loss", color="tab:orange", linewidth=1.2, markersize=4)
    top.set_ylabel("loss")
    top.grid(alpha=0.3)
    top.legend(loc="upper right")
    if title:
        top.set_title(title, fontsize=10)
    if series["learning_rate"]:
        steps, values = zip(*series["learning_rate"], strict=True)
        bottom.plot(steps, values, color="tab:green", linewidth=1.2)
    bottom.set_ylabel("learning rate")
    bottom.set_xlabel("step")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.grid(alpha=0.3)
    bottom.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    return _save(fig, path)


def length_histogram(lengths: list[int], max_length: int, path: str | os.PathLike, title: str = "") -> Path | None:
    """Tokens per sample (image tokens included) with the --max_length line."""
    from matplotlib.figure import Figure

    if not lengths:
        return None
    fig = Figure(figsize=(7, 3.5))
    ax = fig.subplots()
    ax.hist(lengths, bins=min(50, max(5, len(set(lengths)))), color="tab:blue", alpha=0.8)
    if max_length <= max(lengths) * 1.5:
        ax.axvline(max_length, color="tab:red", linestyle="--", label=f"--max_length {max_length}")
        ax.legend(loc="upper right")
    ax.set_xlabel("tokens per sample (image tokens included)")
    ax.set_ylabel("samples")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    return _save(fig, path)
