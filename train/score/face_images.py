"""Face images scored as they are (`dfd predict --images DIR`; `dfd evaluate --images` and `dfd benchmark` on labelled
image folders): each image is one face crop, no detection; resized as the model's crops are (stretched, or the long
side to the size and zero-padded centred for a package whose FaceCrop says isotropic_pad) and normalised as the
model's package says (train.zoo.runtime for a zoo package).

The one owner of reading an image folder. Labelled images, as DF40 and WildDeepfake ship faces, come as either
    a folder with real/ and fake/ subfolders (images anywhere below each; other images of the folder are not
    labelled and are left out, counted in a log line), or
    a CSV with columns path,label (label 0/1 or real/fake; a relative path is relative to the CSV's folder).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from dfd.errors import ToolkitError
from pipeline.stages.faces.crop import isotropic_pad
from train.paths import CheckpointError
from train.score.checkpoints import Ensemble, load_ensemble
from train.score.on_batches import Scorer

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
CHUNK = 256  # images decoded and held at a time
LABELS = {"real": 0, "fake": 1}  # the subfolder (or CSV label) -> label (pipeline.dataset: 1 is fake)


class ImagesError(ToolkitError, RuntimeError):
    """Face images that cannot be scored (not a folder, no images, no labelled images, a bad labels CSV); the
    message names the folder or file."""


def _images_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def find_images(folder: Path) -> list[Path]:
    """The image files under `folder` (recursively, sorted); ImagesError when it is not a folder or holds none."""
    if not folder.is_dir():
        raise ImagesError(f"--images {folder}: not a folder")
    paths = _images_under(folder)
    if not paths:
        raise ImagesError(f"--images {folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
    return paths


def is_labelled_images(source: str | Path) -> bool:
    """Whether `source` names labelled images: a .csv file, or a folder with a real/ or fake/ subfolder."""
    path = Path(source)
    if path.suffix.lower() == ".csv":
        return path.is_file()
    return path.is_dir() and any((path / name).is_dir() for name in LABELS)


def _label(value) -> int | None:
    text = str(value).strip().lower()
    return LABELS.get(text, {"0": 0, "1": 1, "0.0": 0, "1.0": 1}.get(text))


def _from_csv(source: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(source, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise ImagesError(f"--images {source}: not a readable CSV ({str(err).splitlines()[0]})") from None
    if not {"path", "label"} <= set(table.columns):
        raise ImagesError(f"--images {source}: needs the columns path,label (has {', '.join(table.columns)})")
    labels = table["label"].map(_label)
    bad = table.loc[labels.isna(), "label"]
    if len(bad):
        raise ImagesError(f"--images {source}: label {bad.iloc[0]!r} on line {bad.index[0] + 2} is not 0, 1, "
                           "real or fake")
    paths = [str(p if Path(p).is_absolute() else source.parent / p) for p in table["path"]]
    return pd.DataFrame({"path": paths, "label": labels.astype(int)})


def labelled_images(source: str | Path) -> pd.DataFrame:
    """(path, label) of every labelled image of a folder (real/, fake/) or a CSV (path,label), sorted by path;
    ImagesError in one line when there is none."""
    source = Path(source)
    if source.suffix.lower() == ".csv" and source.is_file():
        table = _from_csv(source)
    elif source.is_dir():
        rows = [(str(p), label) for name, label in LABELS.items() if (source / name).is_dir()
                for p in _images_under(source / name)]
        table = pd.DataFrame(rows, columns=["path", "label"])
        left = len(_images_under(source)) - len(table)
        if left:
            log.info("%s: %d images outside real/ and fake/ are not labelled and left out", source, left)
    else:
        raise ImagesError(f"--images {source}: neither a folder nor a .csv file")
    if table.empty:
        raise ImagesError(f"--images {source}: no labelled images (a real/ and a fake/ subfolder of "
                           f"{', '.join(IMAGE_SUFFIXES)} files, or a CSV path,label)")
    return table.sort_values("path", kind="stable").reset_index(drop=True)


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


def score_paths(paths: Sequence[Path], ensemble: Ensemble, batch_size: int | None = None,
                tta: str = "none") -> pd.DataFrame:
    """Rows (path, p_fake, error) of the images in order; an unreadable one has p_fake None, its error, a log line."""
    config = ensemble.config
    resize = config.faces.resize if config.faces else "stretch"
    scorer = Scorer(ensemble.models, ensemble.dev, batch_size or config.batch_size, tta)
    rows = []
    for start in tqdm(range(0, len(paths), CHUNK), desc="images", unit="chunk", disable=len(paths) <= CHUNK):
        loaded = [(Path(p), *load_face(Path(p), ensemble.image_size, resize)) for p in paths[start:start + CHUNK]]
        good = [(p, image) for p, image, _ in loaded if image is not None]
        scores = dict(zip([p for p, _ in good], scorer(np.stack([i for _, i in good])))) if good else {}
        for p, _, error in loaded:
            if error:
                log.error("%s: %s", p, error)
            rows.append({"path": str(p), "p_fake": float(scores[p]) if p in scores else None, "error": error})
    return pd.DataFrame(rows, columns=["path", "p_fake", "error"])


def score_images(folder: Path, checkpoints: Sequence[str], device: str,
                 batch_size: int | None) -> tuple[pd.DataFrame, int]:
    """Rows (path, p_fake, error) for every image under `folder`, and how many could not be read."""
    paths = find_images(Path(folder))
    try:
        ensemble = load_ensemble(checkpoints, device)
    except CheckpointError as err:
        raise ImagesError(str(err)) from None
    table = score_paths(paths, ensemble, batch_size)
    return table, int(table["error"].notna().sum())
