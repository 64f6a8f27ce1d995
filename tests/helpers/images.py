"""Synthetic pictures for the augmentation tests; image helpers only tests use (denormalize, a Grad-CAM grid)."""
from __future__ import annotations


def picture(size: tuple[int, int], seed: int = 0):
    """A frame-like test image for the augmentation tests: smooth colour gradients, edges, texture and a few flat
    grey areas (S = 0); uint8 HxWx3."""
    import cv2
    import numpy as np

    h, w = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.stack([255 * x / w, 255 * y / h, 128 + 100 * np.sin(x / 9 + y / 13)], axis=-1)
    image += rng.normal(0, 6, image.shape)
    image = cv2.GaussianBlur(image, (0, 0), 1.2)
    cv2.rectangle(image, (w // 5, h // 4), (w // 2, h // 2), (40, 200, 90), -1)
    cv2.circle(image, (2 * w // 3, h // 2), min(h, w) // 6, (128, 128, 128), -1)  # grey: hue/sat edge cases
    return np.clip(image, 0, 255).astype(np.uint8)


def denormalize(tensor_chw, mean=None, std=None):
    """Undo mean/std normalisation of a (3, H, W) tensor into a uint8 H x W x 3 image (ImageNet's by default): the
    Grad-CAM tests' inverse of train.model.normalize, kept out of the shipped code."""
    import numpy as np
    import torch

    from train.model import IMAGENET_MEAN, IMAGENET_STD

    mean = IMAGENET_MEAN if mean is None else mean
    std = IMAGENET_STD if std is None else std
    arr = (tensor_chw.detach().cpu().numpy() if isinstance(tensor_chw, torch.Tensor)
           else np.asarray(tensor_chw)).astype(np.float64)
    if arr.ndim != 3 or arr.shape[0] != len(mean) or len(mean) != len(std):
        raise ValueError(f"expected a ({len(mean)}, H, W) tensor, got shape {arr.shape}")
    arr = arr * np.asarray(std, dtype=np.float64)[:, None, None] + np.asarray(mean, dtype=np.float64)[:, None, None]
    arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr.transpose(1, 2, 0))


def plot_gradcam_grid(images_uint8, heatmaps, titles, path, ncols: int = 4, alpha: float = 0.5,
                      cell_inches: float = 3.0) -> str:
    """Save a grid PNG of Grad-CAM overlays with one title per image; returns the path."""
    import os

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from dfd.files import save_figure
    from train.report.gradcam import overlay

    images = list(images_uint8)
    maps = list(heatmaps)
    titles = list(titles)
    if not images:
        raise ValueError("plot_gradcam_grid needs at least one image")
    if not len(images) == len(maps) == len(titles):
        raise ValueError(f"got {len(images)} images, {len(maps)} heatmaps and {len(titles)} titles")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    ncols = min(ncols, len(images))
    nrows = -(-len(images) // ncols)
    fig = Figure(figsize=(cell_inches * ncols, cell_inches * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, heat, title in zip(axes.flat, images, maps, titles):
        ax.imshow(overlay(image, heat, alpha=alpha))
        ax.set_title(str(title), fontsize=9)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    return os.fspath(path)
