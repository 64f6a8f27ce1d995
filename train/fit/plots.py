"""The training run's figures: an augmented batch, the LR finder's curve, the LR schedule, the loss curves."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from dfd.files import save_figure


def plot_batch(path: Path, images: torch.Tensor, labels: Sequence[int], names: Sequence[str], n: int = 16) -> None:
    """A grid of augmented training images (uint8 NCHW) with their labels."""
    n = min(n, len(images))
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows * images.shape[2] / images.shape[3] + 0.3),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        ax.imshow(images[i].permute(1, 2, 0).numpy())
        ax.set_title(names[int(labels[i])], fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=80)


def plot_lr_find(path: Path, lrs: Sequence[float], losses: Sequence[float], suggestion: float | None) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    if suggestion is not None:
        ax.axvline(suggestion, color="red", linestyle="--", label=f"valley {suggestion:.2e}")
        ax.legend()
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log)")
    ax.set_ylabel("smoothed loss")
    fig.tight_layout()
    save_figure(fig, path, dpi=80)


def plot_lr_schedule(path: Path, lr_log: dict[str, np.ndarray]) -> None:
    """LR of each layer group and beta1 over the steps: one cycle per stage."""
    fig, (ax_lr, ax_mom) = plt.subplots(1, 2, figsize=(11, 4))
    steps = lr_log.get("step", np.array([]))
    for key in sorted(k for k in lr_log if k.startswith("lr_")):
        ax_lr.plot(steps, lr_log[key], label=f"group {key[3:]}")
    ax_lr.set_yscale("log")
    ax_lr.set_xlabel("step")
    ax_lr.set_ylabel("learning rate")
    ax_lr.legend()
    if "beta1" in lr_log:
        ax_mom.plot(steps, lr_log["beta1"])
    ax_mom.set_xlabel("step")
    ax_mom.set_ylabel("Adam beta1")
    fig.tight_layout()
    save_figure(fig, path, dpi=80)


def plot_losses(path: Path, lr_log: dict[str, np.ndarray], history: Sequence[dict], steps_at_epoch_end: Sequence[int]) -> None:
    """Train loss per batch and val loss per epoch, one panel per stage, as the report's figure 4."""
    stages = sorted({int(s) for s in lr_log.get("stage", [])}) or [1]
    fig, axes = plt.subplots(1, len(stages), figsize=(5 * len(stages), 4), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        mask = lr_log["stage"] == stage if "stage" in lr_log else np.array([], dtype=bool)
        if mask.any():
            ax.plot(lr_log["step"][mask], lr_log["train_loss"][mask], label="train", alpha=0.7)
        points = [(s, row["val_loss"]) for s, row in zip(steps_at_epoch_end, history) if row["stage"] == stage]
        if points:
            ax.plot(*zip(*points), "o-", label="val")
        ax.set_title(f"stage {stage}")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=80)


