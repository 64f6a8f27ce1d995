"""fastai's one-cycle curves, written out as the reference the trainer's torch OneCycleLR schedule is tested
against (test-only: the shipped package only holds what it runs)."""
from __future__ import annotations

import math

from train.fit.schedule import DIV_FACTOR, FINAL_DIV, MOMS, PCT_START


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
