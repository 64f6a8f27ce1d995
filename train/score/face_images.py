"""Face images scored as they are (`dfd predict --images DIR`): each image is one face crop, no detection; resized
as the model's crops are (stretched, or the long side to the size and zero-padded centred for a package whose
FaceCrop says isotropic_pad) and normalised as the model's package says (train.zoo.runtime for a zoo package)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pandas as pd

from pipeline.stages.faces.crop import isotropic_pad
from train.paths import CheckpointError
from train.score.checkpoints import load_ensemble
from train.score.on_batches import Scorer
from train.score.videos import PredictError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CHUNK = 256  # images decoded and held at a time


def find_images(folder: Path) -> list[Path]:
    """The image files under `folder` (recursively, sorted); PredictError when it is not a folder or holds none."""
    if not folder.is_dir():
        raise PredictError(f"--images {folder}: not a folder")
    paths = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise PredictError(f"--images {folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def load_face(path: Path, size: tuple[int, int], resize: str) -> tuple[np.ndarray | None, str | None]:
    """One image as the model's input (RGB uint8 HxWx3 of `size`), or None and why it cannot be read."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return None, "not a readable image"
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    h, w = size
    if resize == "isotropic_pad" and h == w:
        return isotropic_pad(image, h), None
    if image.shape[:2] != (h, w):
        shrinking = image.shape[0] >= h and image.shape[1] >= w
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return image, None


def score_images(folder: Path, checkpoints: Sequence[str], device: str,
                 batch_size: int | None) -> tuple[pd.DataFrame, int]:
    """Rows (path, p_fake, error) for every image under `folder`, and how many could not be read."""
    paths = find_images(Path(folder))
    try:
        ensemble = load_ensemble(checkpoints, device)
    except CheckpointError as err:
        raise PredictError(str(err)) from None
    config = ensemble.config
    resize = config.faces.resize if config.faces else "stretch"
    scorer = Scorer(ensemble.models, ensemble.dev, batch_size or config.batch_size)
    rows = []
    for start in range(0, len(paths), CHUNK):
        loaded = [(p, *load_face(p, ensemble.image_size, resize)) for p in paths[start:start + CHUNK]]
        good = [(p, image) for p, image, _ in loaded if image is not None]
        scores = dict(zip([p for p, _ in good], scorer(np.stack([i for _, i in good])))) if good else {}
        for p, _, error in loaded:
            if error:
                log.error("%s: %s", p, error)
            rows.append({"path": str(p), "p_fake": float(scores[p]) if p in scores else None, "error": error})
    table = pd.DataFrame(rows, columns=["path", "p_fake", "error"])
    return table, int(table["error"].notna().sum())
