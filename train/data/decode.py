"""Samples -> pixels: a frame's JPEG decoded at the model's size (in the DCT domain where it can), checked against its
crc32, as uint8 HxWx3 arrays and 3xHxW tensors. Normalisation is the model's (train.model.normalize)."""
from __future__ import annotations

import json
import logging
import zlib
from typing import Iterator

import cv2
import numpy as np
import simplejpeg
import torch

from pipeline.dataset import LABELS, ShardError, own_label

log = logging.getLogger(__name__)


def decode_resized(jpeg: bytes, size: tuple[int, int]) -> np.ndarray:
    """JPEG bytes -> uint8 HxWx3 RGB of exactly size=(h, w), decoding at the smallest DCT scale that covers it."""
    h, w = size
    image = simplejpeg.decode_jpeg(jpeg, colorspace="RGB", min_height=h, min_width=w)
    if image.shape[:2] != (h, w):
        shrinking = image.shape[0] >= h and image.shape[1] >= w
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return image


def to_chw(image: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> uint8 3xHxW tensor (a copy, contiguous)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))



def untouched_fake(sample: dict) -> bool:
    """A face labelled fake (its own picture label: pipeline.dataset.own_label) that the faces stage compared with
    its original and found unchanged (`manipulated` False; None, unknown, is kept)."""
    try:
        meta = json.loads(sample["json"])
    except (KeyError, ValueError):
        return False  # decode_sample names the bad sample
    return own_label(meta) == "fake" and meta.get("manipulated") is False



class CorruptSample(ShardError):
    """A frame whose JPEG does not match its recorded crc32 or does not decode: skipped with a warning."""


def checked_sample(sample: dict) -> tuple[bytes, int, str, str]:
    """Raw sample -> (its JPEG bytes, label 0/1, key, video id), not decoded: the label is the frame's (or face's)
    own picture label (pipeline.dataset.own_label: its video's label in older shards); a JPEG that differs from the
    crc32 in its json member (shards written since checksums exist) raises CorruptSample; a missing member or a bad
    label raises ShardError (the shard is unusable)."""
    key = sample["__key__"]
    try:
        meta = json.loads(sample["json"])
        jpeg = sample["jpg"]
    except (KeyError, ValueError) as err:
        raise ShardError(f"bad sample {key} in shard {sample.get('__url__')}: {err!r}") from None
    crc = meta.get("crc32")
    if crc is not None and zlib.crc32(jpeg) != crc:
        raise CorruptSample(f"sample {key} in shard {sample.get('__url__')}: JPEG bytes differ from its crc32")
    label = own_label(meta)
    if label not in LABELS:
        raise ShardError(f"sample {key} in shard {sample.get('__url__')} has label {label!r}; "
                         f"training needs one of {sorted(LABELS)}")
    return jpeg, LABELS[label], key, meta.get("video_id", key.rsplit("_", 1)[0])


def checked(samples: Iterator[dict]) -> Iterator[tuple[bytes, int, str, str]]:
    """checked_sample over a stream (the device path's loader workers: the JPEGs are decoded on the device); a frame
    whose bytes differ from its crc32 is skipped with a warning, as `decoded` does."""
    skipped = 0
    for sample in samples:
        try:
            yield checked_sample(sample)
        except CorruptSample as err:
            skipped += 1
            log.warning("skipped corrupt frame (%d so far in this worker): %s", skipped, err)


def decode_sample(sample: dict, size: tuple[int, int]) -> tuple[np.ndarray, int, str, str]:
    """Raw sample -> (uint8 HxWx3 at size, label 0/1, key, video id): checked_sample's checks, then a JPEG that
    fails to decode raises CorruptSample too."""
    jpeg, label, key, video = checked_sample(sample)
    try:
        image = decode_resized(jpeg, size)
    except (ValueError, RuntimeError, OSError) as err:
        raise CorruptSample(f"sample {key} in shard {sample.get('__url__')}: JPEG does not decode: {err}") from None
    return image, label, key, video


def decoded(samples: Iterator[dict], size: tuple[int, int]) -> Iterator[tuple[np.ndarray, int, str, str]]:
    """decode_sample over a stream; a corrupt frame is skipped with a warning naming its shard and key and the
    number skipped so far in this worker (policy: a run goes on without it; `pipeline.verify --deep` finds all)."""
    skipped = 0
    for sample in samples:
        try:
            yield decode_sample(sample, size)
        except CorruptSample as err:
            skipped += 1
            log.warning("skipped corrupt frame (%d so far in this worker): %s", skipped, err)


