"""Synthetic fakes in the train stream: decoded real faces turned, with a given share, into self-blended fakes
(train.augment.sbi) before the recipe's augmentations; --real-only streams the real videos alone."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from pipeline.dataset import LABELS, Dataset, DatasetError
from train.augment.sbi import landmarks_in_crop, self_blend
from train.config import TrainConfig
from train.data.decode import decoded

SYNTHETIC_SUFFIX = "_sbi"  # a synthetic fake's key: the real face's key + this


@dataclass(frozen=True)
class Synthetic:
    """What the stream needs to make synthetic fakes: the kind (sbi), the share of real faces it turns, whether
    the fake videos are left out, and the faces stage's crop margin (landmarks are stored in frame pixels)."""

    kind: str
    share: float
    real_only: bool
    margin: float

    @classmethod
    def of(cls, config: TrainConfig, dataset: Dataset) -> "Synthetic | None":
        if config.synthetic_fakes is None:
            return None
        if dataset.face_crop is None:
            raise DatasetError(f"--synthetic-fakes: {dataset.manifests}/dataset.json has no faces-stage margin "
                               "(faces.settings.margin); rerun the faces stage")
        return cls(config.synthetic_fakes, float(config.synthetic_share), config.real_only, dataset.face_crop.margin)

    def items(self, samples: Iterator[dict], size: tuple[int, int], seed: int) -> Iterator[tuple]:
        """decoded(samples) with `share` of the real faces replaced by self-blended fakes (label fake, key + _sbi).

        The json member of each sample (its face row: box and landmarks) is noted as it goes into the decoder,
        which yields each sample before it reads the next (a corrupt one is skipped: its note is dropped)."""
        rng = np.random.default_rng(seed)
        notes: dict[str, bytes] = {}

        def noted(stream: Iterator[dict]) -> Iterator[dict]:
            for sample in stream:
                notes.clear()
                notes[sample["__key__"]] = sample.get("json", b"{}")
                yield sample

        for image, label, key, video in decoded(noted(samples), size):
            if label == LABELS["real"] and rng.random() < self.share:
                points = landmarks_in_crop(json.loads(notes[key]), self.margin)
                image, label, key = self_blend(image, points, rng).image, LABELS["fake"], key + SYNTHETIC_SUFFIX
            yield image, label, key, video
