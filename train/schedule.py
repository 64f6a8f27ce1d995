"""Pure schedule math: discriminative LRs, fastai's one-cycle curves, the LR-finder sweep and its suggestion."""
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


def cos_anneal(start: float, end: float, pct: float) -> float:
    """Cosine from start (pct=0) to end (pct=1), fastai's SchedCos."""
    return start + (1 + math.cos(math.pi * (1 - pct))) * (end - start) / 2


def fastai_one_cycle(pos: float, lr_max: float, pct_start: float = PCT_START,
                     div: float = DIV_FACTOR, div_final: float = FINAL_DIV) -> tuple[float, float]:
    """fastai's one-cycle (combined_cos) at training progress pos in [0, 1) -> (lr, beta1).

    1. phase 1 (pos < pct_start): cosine from lr_max/div up to lr_max; beta1 from 0.95 down to 0.85.
    2. phase 2: cosine from lr_max down to lr_max/div_final; beta1 back up to 0.95.
    """
    if pos < pct_start:
        pct = pos / pct_start
        return cos_anneal(lr_max / div, lr_max, pct), cos_anneal(MOMS[0], MOMS[1], pct)
    pct = (pos - pct_start) / (1 - pct_start)
    return cos_anneal(lr_max, lr_max / div_final, pct), cos_anneal(MOMS[1], MOMS[2], pct)


def finder_lr(step: int, num_steps: int, start: float = 1e-7, end: float = 10.0) -> float:
    """The LR finder's exponential sweep (fastai SchedExp at pos = step / num_steps)."""
    return start * (end / start) ** (step / num_steps)


def smooth_losses(losses: Sequence[float], beta: float = 0.98) -> list[float]:
    """Exponential moving average with bias correction, as fastai's AvgSmoothLoss."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, 1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**i))
    return out


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
