"""One training step and epoch, and the per-epoch evaluation; returns plain dicts."""
from __future__ import annotations

import logging
import math
import time
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from dfd.errors import ToolkitError
from train.fit import distributed
from train.model import Device
from train.score.metrics import compute_metrics
from train.score.on_batches import predict

log = logging.getLogger(__name__)


class NonFiniteLossError(ToolkitError, RuntimeError):
    """The training loss became NaN or infinite; the weights of the last good checkpoint are kept."""


def make_scaler(dev: Device) -> torch.amp.GradScaler:
    return torch.amp.GradScaler("cuda", enabled=dev.amp_dtype == torch.float16)


def train_step(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, dev: Device, class_weights: torch.Tensor | None,
               per_item: list | None = None) -> float:
    """Forward, loss, backward, optimizer step; raises NonFiniteLossError before stepping on a NaN loss. With
    `per_item`, each image's own loss (unweighted) is appended to it (--sample-by loss)."""
    x, y = dev.inputs(images), labels.to(dev.device, non_blocking=True)
    with dev.autocast():
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y, weight=class_weights)
    if per_item is not None:
        per_item.append(F.cross_entropy(logits.detach().float(), y, reduction="none").cpu())
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
                    on_step: Callable[[float], None] | None = None,
                    on_losses: Callable[[list, torch.Tensor], None] | None = None) -> dict:
    """Train on n_batches batches, stepping the scheduler after each; returns mean loss and images/s.
    `on_losses(keys, losses)` gets each batch's item keys and their own losses (--sample-by loss)."""
    model.train()
    scaler = make_scaler(dev)
    weights = class_weights.to(dev.device) if class_weights is not None else None
    total, seen, start = 0.0, 0, time.perf_counter()
    bar = tqdm(total=n_batches, desc=desc, leave=False, dynamic_ncols=True, mininterval=1.0)
    for i, (images, labels, *rest) in enumerate(loader):
        if i >= n_batches:
            break
        per_item: list | None = [] if on_losses is not None else None
        loss = train_step(model, images, labels, optimizer, scaler, dev, weights, per_item)
        if on_losses is not None:
            on_losses(rest[0], per_item[0])
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


def evaluate(model: nn.Module, loader: Iterable, device: Device | torch.device | str,
             max_batches: int | None = None, rule: str = "mean") -> dict:
    """Frame- and video-level metrics (see train.score.metrics.compute_metrics) over the loader, across all ranks;
    `rule` aggregates a video's frames (or faces) into its score."""
    frame = distributed.gather_frame(predict(model, loader, device, max_batches))
    return compute_metrics(frame["label"], frame["p_fake"], frame["video_id"], frame["loss"], rule=rule)
