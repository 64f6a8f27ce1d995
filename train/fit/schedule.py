"""Pure schedule math: discriminative LRs, fastai's one-cycle settings (torch's OneCycleLR runs them), the LR-finder
sweep, its loss smoothing and its suggestion. (fastai's own one-cycle curves, a test reference, are in tests/.)"""
from __future__ import annotations

import math
from typing import Sequence

# fastai's fit_one_cycle defaults, expressed as torch OneCycleLR arguments.
PCT_START = 0.25
DIV_FACTOR = 25.0            # start at lr / 25
FINAL_DIV = 1e5              # end at lr / 1e5 ...
FINAL_DIV_FACTOR = FINAL_DIV / DIV_FACTOR   # ... which OneCycleLR expresses relative to the start: 4000
MOMS = (0.95, 0.85, 0.95)    # Adam beta1: high -> low -> high


def spread_lr(lr: float | Sequence[float], n_groups: int = 3) -> list[float]:
    """fastai's lr_range: a number -> the same LR for every group; (lo, hi) -> geometric spread lo..hi.

    1. slice(lo, hi) over n groups gives lo * (hi / lo) ** (i / (n - 1)) for i = 0..n-1 (fastai's even_mults).
    2. slice(2e-4, 1e-2) over 3 groups -> 2e-4, 1.414e-3, 1e-2.
    """
    if isinstance(lr, (int, float)):
        return [float(lr)] * n_groups
    lo, hi = float(lr[0]), float(lr[1])
    if n_groups == 1:
        return [hi]
    step = (hi / lo) ** (1.0 / (n_groups - 1))
    return [lo * step**i for i in range(n_groups)]


def finder_lr(step: int, num_steps: int, start: float = 1e-7, end: float = 10.0) -> float:
    """The LR finder's exponential sweep (fastai SchedExp at pos = step / num_steps)."""
    return start * (end / start) ** (step / num_steps)


class SmoothedLoss:
    """Exponential moving average with bias correction, as fastai's AvgSmoothLoss: `add(loss)` -> smoothed loss."""

    def __init__(self, beta: float = 0.98) -> None:
        self.beta, self.avg, self.n = beta, 0.0, 0

    def add(self, loss: float) -> float:
        self.n += 1
        self.avg = self.beta * self.avg + (1 - self.beta) * loss
        return self.avg / (1 - self.beta**self.n)


def valley(lrs: Sequence[float], losses: Sequence[float]) -> int:
    """fastai's `valley` suggestion: index into lrs inside the longest descending run of the loss curve.

    1. lds[i] = length of the longest decreasing subsequence ending at i.
    2. take the longest such valley [start, end]; suggest the point 1/3 + 1/6 of the way down it.
    """
    n = len(losses)
    if n == 0:
        raise ValueError("valley needs at least one loss")
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return max(0, max_start + int(sections) + int(sections / 2))


def suggest_lr(lrs: Sequence[float], losses: Sequence[float], skip_start: int | None = None,
               skip_end: int = 5) -> float:
    """The valley LR after trimming the ends as fastai does (first 10% and last 5 points, when there are enough)."""
    if skip_start is None:
        skip_start = len(lrs) // 10
    if len(lrs) - skip_start - skip_end < 3:
        skip_start, skip_end = 0, 0
    lrs = list(lrs)[skip_start:len(lrs) - skip_end]
    losses = list(losses)[skip_start:len(losses) - skip_end]
    finite = [(lr, loss) for lr, loss in zip(lrs, losses) if math.isfinite(loss)]
    if not finite:
        raise ValueError("no finite loss to suggest a learning rate from")
    f_lrs, f_losses = zip(*finite)
    return float(f_lrs[valley(f_lrs, f_losses)])
