"""One training epoch, evaluation and per-frame predictions; returns plain dicts and DataFrames."""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from train.augment import normalize
from train import distributed
from train.metrics import compute_metrics

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the weights of the last good checkpoint are kept."""


@dataclass(frozen=True)
class Device:
    """Where and how to compute: the torch device, autocast dtype (None = fp32) and memory format."""

    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False

    @classmethod
    def resolve(cls, name: str = "auto", amp: bool = True, channels_last: bool = True) -> "Device":
        """auto -> cuda when available; AMP and channels_last only on CUDA (bf16 where supported, else fp16)."""
        if name == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for but CUDA is not available; use --device cpu or auto")
        device = torch.device("cuda" if name == "auto" and torch.cuda.is_available() else name if name != "auto" else "cpu")
        if device.type != "cuda":
            return cls(device)
        device = torch.device("cuda", torch.cuda.current_device())  # torchrun: this process's GPU (LOCAL_RANK)
        torch.backends.cudnn.benchmark = True  # one input size per run: cuDNN times its kernels once, keeps the fastest
        dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if amp else None
        return cls(device, dtype, channels_last)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def inputs(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 NCHW batch -> normalised float on the device, channels_last on CUDA."""
        x = normalize(images.to(self.device, non_blocking=True))
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def prepare(self, model: nn.Module) -> nn.Module:
        model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model


def make_scaler(dev: Device) -> torch.amp.GradScaler:
    return torch.amp.GradScaler("cuda", enabled=dev.amp_dtype == torch.float16)


def train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, dev: Device, class_weights: torch.Tensor | None) -> float:
    """Forward, loss, backward, optimizer step; raises NonFiniteLossError before stepping on a NaN loss."""
    x, y = dev.inputs(images), labels.to(dev.device, non_blocking=True)
    with dev.autocast():
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y, weight=class_weights)
    value = loss.item()
    if not math.isfinite(value):
        raise NonFiniteLossError(f"training loss became {value}")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return value


def train_one_epoch(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler | None, dev: Device, n_batches: int,
                    class_weights: torch.Tensor | None = None, desc: str = "train",
                    on_step: Callable[[float], None] | None = None) -> dict:
    """Train on n_batches batches, stepping the scheduler after each; returns mean loss and images/s."""
    model.train()
    scaler = make_scaler(dev)
    weights = class_weights.to(dev.device) if class_weights is not None else None
    total, seen, start = 0.0, 0, time.perf_counter()
    bar = tqdm(total=n_batches, desc=desc, leave=False, dynamic_ncols=True, mininterval=1.0)
    for i, (images, labels, *_rest) in enumerate(loader):
        if i >= n_batches:
            break
        loss = train_step(model, images, labels, optimizer, scaler, dev, weights)
        if on_step is not None:
            on_step(loss)  # before scheduler.step(): the optimizer still holds this step's LR and beta1
        if scheduler is not None:
            scheduler.step()
        total, seen = total + loss * len(labels), seen + len(labels)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{seen / (time.perf_counter() - start):.0f}")
    bar.close()
    seconds = time.perf_counter() - start
    return {"train_loss": total / max(seen, 1), "images_per_s": seen / seconds if seconds else 0.0,
            "seconds": seconds, "train_images": seen}


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, device: Device | torch.device | str,
            max_batches: int | None = None) -> pd.DataFrame:
    """Per-frame predictions: key, video_id, label, p_fake, loss (cross-entropy of the true class)."""
    dev = device if isinstance(device, Device) else Device(torch.device(device))
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


def evaluate(model: nn.Module, loader: Iterable, device: Device | torch.device | str,
             max_batches: int | None = None, rule: str = "mean") -> dict:
    """Frame- and video-level metrics (see train.metrics.compute_metrics) over the loader, across all ranks;
    `rule` aggregates a video's frames (or faces) into its score."""
    frame = distributed.gather_frame(predict(model, loader, device, max_batches))
    return compute_metrics(frame["label"], frame["p_fake"], frame["video_id"], frame["loss"], rule=rule)
