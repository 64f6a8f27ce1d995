"""Models on batches: per-frame predictions of one model, P(fake) of an ensemble with test-time augmentation, and
a Scorer for arrays of frames (prediction from files)."""
from __future__ import annotations

import time
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from train.data.decode import to_chw
from train.model import Device, resolve_device

@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, device: Device | torch.device | str,
            max_batches: int | None = None) -> pd.DataFrame:
    """Per-frame predictions: key, video_id, label, p_fake, loss (cross-entropy of the true class)."""
    dev = device if isinstance(device, Device) else Device(resolve_device(device))
    model.eval()
    rows = {"key": [], "video_id": [], "label": [], "p_fake": [], "loss": []}
    for i, (images, labels, keys, videos) in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            break
        with dev.autocast():
            logits = model(dev.inputs(images)).float()
        labels = labels.to(dev.device)
        rows["p_fake"] += logits.softmax(dim=1)[:, 1].tolist()
        rows["loss"] += F.cross_entropy(logits, labels, reduction="none").tolist()
        rows["label"] += labels.tolist()
        rows["key"] += list(keys)
        rows["video_id"] += list(videos)
    return pd.DataFrame(rows)


TTA_MODES = ("none", "hflip")


@torch.no_grad()
def ensemble_p_fake(models: Sequence[nn.Module], images: torch.Tensor, dev: Device, tta: str = "none") -> torch.Tensor:
    """P(fake) of a uint8 NCHW batch: the mean of the softmax probabilities over the models and, with tta="hflip",
    over the batch and its horizontal mirror (so 2 x len(models) passes are averaged with equal weight)."""
    if tta not in TTA_MODES:
        raise ValueError(f"unknown --tta {tta!r}; allowed: {', '.join(TTA_MODES)}")
    x = dev.inputs(images)
    views = [x, x.flip(-1)] if tta == "hflip" else [x]
    total = torch.zeros(len(images), device=dev.device)
    for model in models:
        for view in views:
            with dev.autocast():
                total += model(view).float().softmax(dim=1)[:, 1]
    return total / (len(models) * len(views))


class Scorer:
    """One model or an ensemble in eval mode on a device: uint8 NHWC frames (or a clip model's NTHWC clips) ->
    P(fake) per frame (clip) (the mean over the models, and over each frame and its mirror with tta="hflip";
    ensemble_p_fake)."""

    def __init__(self, models: nn.Module | Sequence[nn.Module], dev: Device, batch_size: int,
                 tta: str = "none") -> None:
        models = [models] if isinstance(models, nn.Module) else list(models)
        self.models, self.dev, self.batch_size, self.tta = [dev.prepare(m).eval() for m in models], dev, batch_size, tta
        self.seconds = 0.0

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out = []
        for i in range(0, len(images), self.batch_size):
            part = images[i:i + self.batch_size]
            batch = (torch.from_numpy(np.ascontiguousarray(part.transpose(0, 1, 4, 2, 3))) if part.ndim == 5
                     else torch.stack([to_chw(image) for image in part]))
            out.append(ensemble_p_fake(self.models, batch, self.dev, self.tta).cpu().numpy())
        self.seconds += time.perf_counter() - start
        return np.concatenate(out).astype(np.float64)


def predict_loader(models: Sequence[nn.Module], loader: Iterable, dev: Device, tta: str = "none") -> pd.DataFrame:
    """Per-frame rows (key, video_id, label, p_fake) over every batch of a loader, decoded once for all models."""
    rows: dict[str, list] = {"key": [], "video_id": [], "label": [], "p_fake": []}
    for images, labels, keys, videos in loader:
        rows["p_fake"] += ensemble_p_fake(models, images, dev, tta).cpu().tolist()
        rows["label"] += labels.tolist()
        rows["key"] += list(keys)
        rows["video_id"] += list(videos)
    return pd.DataFrame(rows)
