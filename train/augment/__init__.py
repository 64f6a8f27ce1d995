"""The report's ten augmentations in three implementations, and the one place that picks among them.

- `reference`: the albumentations pipeline, each augmentation with its probability (the CPU default);
- `fused`: the same draws with one warp for the geometry and LUTs for the colours, into the batch buffer;
- `device`: the loader workers only decode and draw; the batch is augmented on the training device.
`params` holds the magnitudes all three draw from.
"""
from __future__ import annotations

from train.config import AUGMENT_IMPLS, Augment

DEVICE_AUGMENT_MIN_SIDE = 448  # full-frame sizes: both sides at least this (measured: 720x1280 yes, 224 no)
DEVICE_AUGMENT_MAX_WORKERS = 8  # beyond this many loader cores per GPU the CPU keeps up (H100: fused 635 img/s at 16)


def _writers() -> dict:
    from train.augment.device import DeferredAugment
    from train.augment.fused import FusedAugment
    from train.augment.reference import ReferenceAugment

    return {"albumentations": ReferenceAugment, "fused": FusedAugment, "device": DeferredAugment}


def resolve_impl(impl: str, device_type: str, image_size: tuple[int, int], workers: int) -> str:
    """`auto` -> where the ten augmentations cost least, from what an H100 measured (docs/performance.md): on CUDA at
    full-frame sizes (both sides >= DEVICE_AUGMENT_MIN_SIDE) "device" with up to DEVICE_AUGMENT_MAX_WORKERS loader
    workers (the CPU cannot keep up: 427 against 374 images/s with 8) and "fused" with more (635 against 382 with
    16); elsewhere "albumentations" (the CPU; 224 px crops, where the choices tie). Any other choice as it is."""
    if impl not in AUGMENT_IMPLS:
        raise ValueError(f"augment_impl must be one of {AUGMENT_IMPLS}, got {impl!r}")
    if impl != "auto":
        return impl
    if device_type != "cuda" or min(image_size) < DEVICE_AUGMENT_MIN_SIDE:
        return "albumentations"
    return "device" if workers <= DEVICE_AUGMENT_MAX_WORKERS else "fused"


def is_deferred(impl: str) -> bool:
    """Whether the implementation leaves the pixels to the device (its batches carry draws: wrap the loader in
    train.augment.device.DeviceAugmented)."""
    resolved = [name for name in AUGMENT_IMPLS if name != "auto"]
    if impl not in resolved:
        raise ValueError(f"augment_impl must be one of {tuple(resolved)} (auto is resolved first), got {impl!r}")
    return impl == "device"


def for_impl(impl: str, size: tuple[int, int], probs: Augment, seed: int):
    """The batch writer of an implementation: `writer(image, slot)` puts one augmented (or, deferred, drawn) image
    into its slot of a uint8 NHWC batch; `.deferred` and `.contiguous` tell train.data.batches what to yield."""
    is_deferred(impl)
    return _writers()[impl](size, probs, seed)
