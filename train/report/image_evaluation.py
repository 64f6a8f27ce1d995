"""Evaluation on labelled face images (`dfd evaluate --images`, an image test set of `dfd benchmark`): every image is
one face crop scored as `dfd predict --images` scores it (train.score.face_images: the package's resize and
normalisation, no detection), and the image-level metrics are those evaluate reports for frames (train.score.metrics).

An unreadable image is a row of predictions.parquet with its error (and a log line naming it), left out of the
metrics and counted in result["image"]["unreadable"]; when no image can be read the evaluation fails in one line.

metrics.json: {"checkpoints", "ensemble", "images", "level": "image", "tta", "input", "log_loss_eps",
               "image": {"images", "unreadable", "real", "fake", METRIC: value ...}, "seconds", "images_per_s"}
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Sequence

from dfd.files import write_parquet, write_text
from train.report.figures import plot_roc
from train.score import metrics
from train.score.checkpoints import load_ensemble
from train.score.face_images import ImagesError, labelled_images, score_paths
from train.score.tables import markdown_table

log = logging.getLogger(__name__)

TABLE_COLUMNS = ("n", "unreadable", "log_loss", "roc_auc", "accuracy", "balanced_accuracy", "eer",
                 "average_precision")


def image_metrics_markdown(result: dict) -> str:
    """The image row of an image evaluation as a GitHub markdown table."""
    level = {**result["image"], "n": result["image"]["images"]}
    return markdown_table(("level", *TABLE_COLUMNS), [["image", *(level.get(c) for c in TABLE_COLUMNS)]])


def default_out(source: Path) -> Path:
    return Path("runs") / f"eval-images-{source.stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def evaluate_images(checkpoints: Sequence[str | Path], source: str | Path, out: str | Path | None = None,
                    tta: str = "none", device: str = "auto", batch_size: int | None = None) -> dict:
    """Score the labelled images of `source` (a folder with real/ and fake/, or a CSV path,label) with the
    checkpoint(s); writes metrics.json, metrics.md, roc.png and predictions.parquet (path, label, p_fake, error) to
    out; returns the metrics dict (result["out"]: the folder)."""
    source = Path(source)
    table = labelled_images(source)
    ensemble = load_ensemble(checkpoints, device)
    start = time.perf_counter()
    scored = score_paths([Path(p) for p in table["path"]], ensemble, batch_size, tta)
    seconds = time.perf_counter() - start
    rows = table.assign(p_fake=scored["p_fake"].to_numpy(), error=scored["error"].to_numpy())
    read = rows[rows["error"].isna()].reset_index(drop=True)
    unreadable = len(rows) - len(read)
    if read.empty:
        raise ImagesError(f"--images {source}: none of its {len(rows)} labelled images could be read")
    if unreadable:
        log.warning("%d of %d images of %s could not be read (named above): left out of the metrics", unreadable,
                    len(rows), source)
    if read["label"].nunique() < 2:
        log.warning("%s holds one class only: ROC-AUC, EER and AP are undefined (n/a)", source)
    level = {"images": len(read), "unreadable": unreadable, "real": int((read["label"] == 0).sum()),
             "fake": int((read["label"] == 1).sum()), **metrics.score(read["label"], read["p_fake"])}
    result = {"checkpoints": ensemble.describe(), "ensemble": len(ensemble.models) > 1, "images": str(source),
              "level": "image", "tta": tta, "input": ensemble.settings, "log_loss_eps": metrics.KAGGLE_EPS,
              "image": level, "seconds": seconds, "images_per_s": len(read) / seconds if seconds else None}
    out = Path(out) if out else default_out(source)
    out.mkdir(parents=True, exist_ok=True)
    name = f"ensemble of {len(ensemble.models)}" if result["ensemble"] else ensemble.config.arch
    write_parquet(rows, out / "predictions.parquet")
    plot_roc(out / "roc.png", [(name, read)], levels=("image",))
    write_text(out / "metrics.json", json.dumps(metrics.json_safe(result), indent=2) + "\n")
    write_text(out / "metrics.md", image_metrics_markdown(result))
    result["out"] = str(out)
    return result
