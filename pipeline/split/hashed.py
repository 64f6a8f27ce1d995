"""Pure functions: group-aware deterministic train/val split, and class weights."""
from __future__ import annotations

import hashlib


def group_unit(group: str, seed: int) -> float:
    """A number in [0, 1) fixed by (seed, group): adding videos never moves the old ones."""
    digest = hashlib.sha256(f"{seed}\x00{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_split(label: str | None, group: str, seed: int, val_fraction: float) -> str:
    """'test' for unlabelled videos, else 'val' for a val_fraction share of the groups, else 'train'."""
    if label is None:
        return "test"
    return "val" if group_unit(group, seed) < val_fraction else "train"


TOLERANCE = 0.05


def fraction_warning(labels_and_splits, requested: float) -> str | None:
    """A warning when the achieved share of labelled train+val videos in val is off the requested one by more than
    TOLERANCE (few groups: the hash split is only right on average), else None."""
    splits = [split for label, split in labels_and_splits if label is not None and split in ("train", "val")]
    if not splits:
        return None
    achieved = splits.count("val") / len(splits)
    if abs(achieved - requested) <= TOLERANCE:
        return None
    return (f"the split put {achieved:.2f} of the {len(splits)} labelled videos in val for a requested "
            f"{requested:.2f} (the hash split by group is exact only on average, and this dataset has few groups): "
            "try another --seed, or change it later with `python -m pipeline.resplit --seed N`")


def part_of(group: str, n_parts: int) -> int:
    """Which of n_parts machines (1-based) preprocesses this group: whole groups, so the split stays grouped."""
    digest = hashlib.sha256(f"part\x00{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n_parts + 1


def class_weights(n_real: int, n_fake: int) -> dict[str, float]:
    """n / (2 * n_class): the weights that make both classes count equally in the loss."""
    n = n_real + n_fake
    return {"real": n / (2 * n_real) if n_real else 0.0, "fake": n / (2 * n_fake) if n_fake else 0.0}
