"""fastai's LR range test: exponential sweep, smoothed loss, early stop past 4x the best, weights restored."""
from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

from train.fit.engine import NonFiniteLossError, make_scaler, train_step
from train.model import Device
from train.fit.schedule import SmoothedLoss, finder_lr, suggest_lr

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LRFindResult:
    lrs: tuple[float, ...]
    losses: tuple[float, ...]   # smoothed (beta 0.98, debiased)
    suggestion: float | None

    def to_dict(self) -> dict:
        return {"lrs": list(self.lrs), "losses": list(self.losses), "suggestion": self.suggestion}


def lr_find(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer, dev: Device,
            num_steps: int = 100, start: float = 1e-7, end: float = 10.0, beta: float = 0.98,
            stop_factor: float = 4.0, class_weights: torch.Tensor | None = None) -> LRFindResult:
    """Run the range test on `loader` with a throwaway optimizer; the model's state is restored afterwards."""
    saved = copy.deepcopy(model.state_dict())
    model.train()
    scaler = make_scaler(dev)
    weights = class_weights.to(dev.device) if class_weights is not None else None
    lrs, losses, best, smoother = [], [], math.inf, SmoothedLoss(beta)
    try:
        for step, (images, labels, *_rest) in enumerate(loader):
            if step >= num_steps:
                break
            lr = finder_lr(step, num_steps, start, end)
            for group in optimizer.param_groups:
                group["lr"] = lr
            try:
                loss = train_step(model, images, labels, optimizer, scaler, dev, weights)
            except NonFiniteLossError:
                break
            smoothed = smoother.add(loss)
            lrs.append(lr)
            losses.append(smoothed)
            if smoothed > stop_factor * best:
                break
            best = min(best, smoothed)
    finally:
        model.load_state_dict(saved)
    suggestion = suggest_lr(lrs, losses) if losses else None
    log.info("LR finder: %d steps, suggestion (valley) %s", len(lrs), f"{suggestion:.2e}" if suggestion else "none")
    return LRFindResult(tuple(lrs), tuple(losses), suggestion)
