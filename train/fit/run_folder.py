"""The run folder: config.json, metrics.csv, lr.csv, atomic checkpoints, RNG states and TensorBoard."""
from __future__ import annotations

import csv
import io
import json
import logging
import random
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from dfd.errors import ToolkitError
from dfd.files import write_bytes, write_text
from train.paths import RunLayout

log = logging.getLogger(__name__)

METRIC_COLUMNS = ("stage", "epoch", "train_loss", "val_loss", "accuracy", "balanced_accuracy", "roc_auc",
                  "log_loss", "video_log_loss", "video_auc", "images_per_s", "seconds", "val_frames", "val_videos",
                  "eer", "average_precision", "video_accuracy", "video_balanced_accuracy", "video_eer",
                  "video_average_precision")


class RunFolder:
    """Paths and writers of runs/NAME/."""

    def __init__(self, root: str | Path) -> None:
        self.layout = RunLayout(Path(root))
        self.root = self.layout.root
        self.checkpoints = self.layout.checkpoints
        self.last = self.layout.checkpoint("last")
        self.best = self.layout.checkpoint("best")
        self.metrics = self.layout.metrics
        self.lr = self.layout.lr
        self.tensorboard: TensorBoardLog | None = None  # set by fit() with --tensorboard

    def create(self) -> None:
        self.checkpoints.mkdir(parents=True, exist_ok=True)

    def figure(self, name: str) -> Path:
        return self.root / name

    def write_config(self, config: dict) -> None:
        write_text(self.layout.config, json.dumps(config, indent=2, sort_keys=True) + "\n")

    def write_metrics(self, history: Sequence[dict]) -> None:
        """Rewrite metrics.csv from the run's history (kept in the checkpoint, so a resume rewrites it exactly)."""
        lines = [",".join(METRIC_COLUMNS)]
        lines += [",".join(_fmt(row.get(c)) for c in METRIC_COLUMNS) for row in history]
        write_text(self.metrics, "\n".join(lines) + "\n")

    def start_lr_log(self, n_groups: int, keep_steps: int) -> None:
        """Create lr.csv, or keep its first keep_steps rows when resuming."""
        header = ["step", "stage"] + [f"lr_{i}" for i in range(n_groups)] + ["beta1", "train_loss"]
        rows = []
        if keep_steps and self.lr.exists():
            with self.lr.open() as f:
                rows = [r for r in csv.reader(f)][1:keep_steps + 1]
        with self.lr.open("w", newline="") as f:
            csv.writer(f).writerows([header] + rows)

    def log_lr(self, rows: Sequence[Sequence]) -> None:
        with self.lr.open("a", newline="") as f:
            csv.writer(f).writerows([[_fmt(v) for v in row] for row in rows])

    def read_lr(self) -> dict[str, np.ndarray]:
        with self.lr.open() as f:
            rows = list(csv.DictReader(f))
        return {k: np.array([float(r[k]) for r in rows]) for k in (rows[0] if rows else {})}


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def rng_state() -> dict:
    """Torch, NumPy and Python RNG states in a form torch.load(weights_only=True) accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
            "python": [version, list(internal), gauss_next],
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict) -> None:
    """Serialize in memory, then write atomically (dfd.files): a crash or a full disk never leaves a half-written
    checkpoint (the previous one stays; a full disk raises DiskFullError naming the checkpoint).

    Not torch.save(path): its C++ writer reports a full disk as a RuntimeError without the errno.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_bytes(path, buffer.getvalue())


def load_state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


# TensorBoard (optional: pip install '.[tensorboard]') --------------------------------------------------------


class TensorBoardMissing(ToolkitError, RuntimeError):
    """--tensorboard was asked for but the tensorboard package is not installed."""


class TensorBoardLog:
    """runs/NAME/tensorboard/: per-epoch metrics (tags train/*, val/*), per-step learning rates and Adam's beta1
    (lr/group_N, lr/beta1) and the run's figures, written with torch's SummaryWriter (tensorboard's event format)."""

    SCALARS = ("train_loss", "val_loss", "images_per_s", "seconds") + tuple(
        c for c in METRIC_COLUMNS if c not in ("stage", "epoch", "train_loss", "val_loss", "images_per_s", "seconds"))

    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:  # torch raises this when tensorboard itself is missing
            raise TensorBoardMissing(f"--tensorboard needs the tensorboard package ({err}); install it with "
                                     "pip install 'deepfake-toolkit[tensorboard]' (or pip install tensorboard), or "
                                     "drop --tensorboard") from None
        self.folder = Path(folder)
        self.writer = SummaryWriter(log_dir=str(self.folder))

    def epoch(self, row: dict, epoch_index: int) -> None:
        """One metrics row at x = the epoch's number over all stages (1-based)."""
        for name in self.SCALARS:
            value = row.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value):
                tag = f"train/{name}" if name in ("train_loss", "images_per_s", "seconds") else f"val/{name}"
                self.writer.add_scalar(tag, float(value), epoch_index)
        self.writer.flush()

    def lrs(self, rows: Sequence[Sequence]) -> None:
        """lr.csv rows [step, stage, lr_0.., beta1, train_loss] -> lr/group_N, lr/beta1, train/step_loss by step."""
        for step, _stage, *values in rows:
            *lrs, beta1, loss = values
            for i, lr in enumerate(lrs):
                self.writer.add_scalar(f"lr/group_{i}", float(lr), int(step))
            self.writer.add_scalar("lr/beta1", float(beta1), int(step))
            self.writer.add_scalar("train/step_loss", float(loss), int(step))

    def figures(self, root: Path, names: Sequence[str], step: int = 0) -> list[str]:
        """Every PNG of names found in root as an image (figures/NAME); returns those written."""
        import matplotlib.image as mpimg

        written = []
        for name in names:
            path = Path(root) / name
            if path.is_file():
                image = mpimg.imread(path)[..., :3]
                self.writer.add_image(f"figures/{path.stem}", image, step, dataformats="HWC")
                written.append(name)
        self.writer.flush()
        return written

    def close(self) -> None:
        self.writer.close()
