"""The training-curves PNG: training loss per logged step, and validation recall/MRR per evaluation.

Drawn with matplotlib's Agg backend (no display needed) and written atomically, after every evaluation and at
the end, so an interrupted run still shows how far it got.
"""

from __future__ import annotations

import os
from typing import Any

from vlmkit.io import atomic_open


def plot_training(losses: list[tuple[int, float]], evaluations: list[dict[str, Any]], path: str | os.PathLike,
                  title: str = "") -> None:
    """`losses`: (step, loss); `evaluations`: metrics.jsonl rows ({"step", "epoch", "t2i": {...}, "i2t": {...}})."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_rec) = plt.subplots(1, 2, figsize=(11, 4))
    if losses:
        steps, values = zip(*losses, strict=True)
        ax_loss.plot(steps, values, marker="." if len(steps) < 50 else None, color="tab:red")
    else:
        ax_loss.text(0.5, 0.5, "no training loss logged yet", ha="center", va="center", transform=ax_loss.transAxes)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_title("training loss")
    ax_loss.grid(alpha=0.3)
    if evaluations:
        x = [row["epoch"] for row in evaluations]
        colours = {"R@1": "tab:blue", "R@5": "tab:orange", "R@10": "tab:green", "MRR": "tab:purple"}
        for metric, colour in colours.items():
            for direction, style in (("t2i", "-"), ("i2t", "--")):
                ys = [100 * row[direction][metric] for row in evaluations]
                ax_rec.plot(x, ys, style, marker="o", color=colour, label=f"{direction} {metric}")
        ax_rec.set_ylim(0, 100)
        ax_rec.legend(fontsize=7, ncol=2)
    else:
        ax_rec.text(0.5, 0.5, "no validation (val_data_path not set)", ha="center", va="center",
                    transform=ax_rec.transAxes)
    ax_rec.set_xlabel("epoch (0 = zero-shot)")
    ax_rec.set_ylabel("validation, %")
    ax_rec.set_title("validation (solid: text->image, dashed: image->text)", fontsize=10)
    ax_rec.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_open(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=110)
    plt.close(fig)
