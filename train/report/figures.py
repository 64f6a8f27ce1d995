"""The explanations' figures: frame (or face) grids titled as fastai's top losses, optionally with the source
frame and its face box beside each crop; Grad-CAM versions of them; the pointing game; ROC curves."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.patches import Rectangle

from dfd.files import save_figure
from pipeline.dataset import CLASS_NAMES
from train.data.decode import to_chw
from train.model import normalize
from train.report.gradcam import grad_cam, heatmap_peak, overlay
from train.score import metrics

log = logging.getLogger(__name__)


def fastai_title(row) -> str:
    """fastai's plot_top_losses title: prediction/actual / loss / probability of the actual class."""
    predicted = CLASS_NAMES[int(row.p_fake >= 0.5)]
    actual = CLASS_NAMES[int(row.label)]
    p_actual = row.p_fake if int(row.label) == 1 else 1 - row.p_fake
    return f"{predicted}/{actual} / {row.loss:.2f} / {p_actual:.2f}"



def plot_frames(path: Path, images: list[np.ndarray], titles: list[str], suptitle: str, ncols: int = 3,
                sources: Sequence[np.ndarray | None] | None = None, boxes: Sequence | None = None) -> None:
    """A grid of images with their titles; with `sources`, each image (a face crop) is followed by the frame it
    came from with its face box (`boxes`, frame pixels) drawn in."""
    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    per = 2 if sources is not None else 1
    h, w = images[0].shape[:2]
    if sources is None:
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.6 * nrows * h / w + 0.6), squeeze=False)
    else:
        fig, axes = plt.subplots(nrows, 2 * ncols, figsize=(2.6 * 2 * ncols, 2.7 * nrows + 0.6), squeeze=False,
                                 gridspec_kw={"width_ratios": [1, 1.6] * ncols})
    for ax in axes.flat:
        ax.axis("off")
    for i, (image, title) in enumerate(zip(images, titles)):
        row, col = divmod(i, ncols)
        axes[row][per * col].imshow(image)
        axes[row][per * col].set_title(title, fontsize=9 if sources is None else 8)
        if sources is not None and sources[i] is not None:
            _source_panel(axes[row][per * col + 1], sources[i], boxes[i])
    fig.suptitle(suptitle)
    fig.tight_layout()
    save_figure(fig, path, dpi=90 if sources is None else 80)


def _source_panel(ax, frame: np.ndarray, box: Sequence[float]) -> None:
    ax.imshow(frame)
    x0, y0, x1, y1 = box
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="lime", linewidth=1.5))
    ax.set_title("source frame", fontsize=8)


def top_loss_figures(run_dir: Path, model, pred: pd.DataFrame, k: int,
                     images_of: Callable[[Sequence[str]], dict], sources_of: Callable | None = None) -> dict:
    """top_losses.png / best.png and gradcam_worst.png / gradcam_best.png (Grad-CAM of the predicted class): the k
    worst and the k most confidently right. `images_of(keys)` gives the model-size images; with `sources_of`
    (faces: frame key -> the whole frame), each crop is shown beside its source frame and face box."""
    worst = pred.sort_values("loss", ascending=False, kind="stable").head(k)
    right = pred[(pred["p_fake"] >= 0.5).astype(int) == pred["label"]]
    best = right.sort_values("loss", ascending=True, kind="stable").head(k)
    images = images_of(list(worst["key"]) + list(best["key"]))
    frames = sources_of(list(worst["frame_key"]) + list(best["frame_key"])) if sources_of else None
    written = {}
    for name, cam_name, rows, heading in (("top_losses.png", "gradcam_worst.png", worst, "worst"),
                                          ("best.png", "gradcam_best.png", best, "best")):
        if rows.empty:
            log.warning("no items for %s (no correctly classified val item?)", name)
            continue
        pics = [images[key] for key in rows["key"]]
        titles = [fastai_title(row) for row in rows.itertuples()]
        panel = {} if frames is None else {"sources": [frames.get(key) for key in rows["frame_key"]],
                                            "boxes": [(r.x0, r.y0, r.x1, r.y1) for r in rows.itertuples()]}
        plot_frames(run_dir / name, pics, titles, "Prediction/Actual/Loss/Probability", **panel)
        batch = normalize(torch.stack([to_chw(p) for p in pics]).to(next(model.parameters()).device))
        cams = grad_cam(model, batch).cpu().numpy()  # the predicted class of each item
        plot_frames(run_dir / cam_name, [overlay(p, c) for p, c in zip(pics, cams)], titles,
                    f"Grad-CAM of the predicted class ({heading})", **panel)
        written[heading] = list(rows["key"])
    return written


def plot_pointing(path: Path, shown: list, result: dict, what: str = "val fakes") -> None:
    """Grad-CAM (class fake) over val fakes, the known manipulated box in white, the heatmap peak as a cross."""
    ncols = min(4, len(shown))
    nrows = -(-len(shown) // ncols)
    h, w = shown[0][1].shape[:2]
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.2 * nrows * h / w + 0.7), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (key, image, cam, box) in zip(axes.flat, shown):
        ax.imshow(overlay(image, cam))
        x0, y0, x1, y1 = box
        ax.add_patch(Rectangle((x0 * w - 0.5, y0 * h - 0.5), (x1 - x0) * w, (y1 - y0) * h, fill=False,
                               edgecolor="white", linewidth=1.5))
        py, px = heatmap_peak(cam)
        inside = x0 <= (px + 0.5) / w <= x1 and y0 <= (py + 0.5) / h <= y1
        ax.plot([px], [py], marker="x", color="lime" if inside else "red", markersize=10, mew=2.5)
        ax.set_title(f"{key} {'hit' if inside else 'miss'}", fontsize=8)
    fig.suptitle(f"pointing game {result['pointing_game']:.1%} of {result['frames']} {what} "
                 f"(random point {result['random_point']:.1%})")
    fig.tight_layout()
    save_figure(fig, path, dpi=90)



def plot_roc(path: Path, curves: Sequence[tuple[str, pd.DataFrame, ...]],
             levels: Sequence[str] = ("frame", "video")) -> None:
    """ROC curves, a panel per level (frame and video by default), one line per (name, a table per level: label,
    p_fake), AUC in the legend."""
    fig, axes = plt.subplots(1, len(levels), figsize=(5 * len(levels), 4.6), squeeze=False)
    for i, (ax, level) in enumerate(zip(axes[0], levels)):
        for name, *tables in curves:
            table = tables[i]
            fpr, tpr = metrics.roc(table["label"], table["p_fake"])
            if len(fpr):
                ax.plot(fpr, tpr, label=f"{name} (AUC {metrics.roc_auc(table['label'], table['p_fake']):.3f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false positive rate (reals called fake)")
        ax.set_ylabel("true positive rate (fakes caught)")
        ax.set_title(f"{level} level")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=90)
