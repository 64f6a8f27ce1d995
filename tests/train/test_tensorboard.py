"""--tensorboard: per-epoch metrics, learning rates and figures in runs/NAME/tensorboard/, a clear error without it."""
from __future__ import annotations

import builtins
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from train.fit.run_folder import TensorBoardLog, TensorBoardMissing  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _events(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_log_writes_scalars_lrs_and_figures(tmp_path):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    fig.savefig(tmp_path / "losses.png")
    plt.close(fig)
    log = TensorBoardLog(tmp_path / "tensorboard")
    log.epoch({"stage": 1, "epoch": 1, "train_loss": 0.7, "val_loss": 0.6, "log_loss": 0.65, "video_auc": float("nan"),
               "images_per_s": 12.5}, 1)
    log.epoch({"stage": 1, "epoch": 2, "train_loss": 0.5, "val_loss": 0.55, "log_loss": 0.5}, 2)
    log.lrs([[0, 1, 1e-4, 1e-3, 1e-2, 0.95, 0.8], [1, 1, 2e-4, 2e-3, 2e-2, 0.9, 0.7]])
    assert log.figures(tmp_path, ["losses.png", "missing.png"]) == ["losses.png"]
    log.close()
    acc = _events(tmp_path / "tensorboard")
    tags = acc.Tags()
    assert {"train/train_loss", "val/val_loss", "val/log_loss", "train/images_per_s", "lr/group_0", "lr/group_2",
            "lr/beta1", "train/step_loss"} <= set(tags["scalars"])
    assert "val/video_auc" not in tags["scalars"]  # NaN is left out
    assert [(e.step, round(e.value, 4)) for e in acc.Scalars("val/log_loss")] == [(1, 0.65), (2, 0.5)]
    assert [round(e.value, 6) for e in acc.Scalars("lr/group_2")] == [0.01, 0.02]
    assert tags["images"] == ["figures/losses"]


def test_missing_tensorboard_is_a_clear_error(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard") or name == "tensorboard":
            raise ImportError("No module named 'tensorboard'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(TensorBoardMissing, match=r"pip install 'deepfake-toolkit\[tensorboard\]'"):
        TensorBoardLog(tmp_path / "tb")


@pytest.mark.slow
def test_dev_run_with_tensorboard(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "train.run", "--shards", str(tiny_dataset["shards"]),
                           "--manifests", str(tiny_dataset["manifests"]), "--out", str(out), "--weights", "none",
                           "--device", "cpu", "--image-size", "64", "--batch-size", "8", "--workers", "0",
                           "--dev-run", "--no-explain", "--tensorboard"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    acc = _events(out / "tensorboard")
    scalars = set(acc.Tags()["scalars"])
    assert {"train/train_loss", "val/log_loss", "val/video_log_loss", "lr/group_0", "lr/beta1"} <= scalars
    epochs = len((out / "metrics.csv").read_text().splitlines()) - 1
    assert len(acc.Scalars("val/log_loss")) == epochs
    assert {"figures/losses", "figures/lr_schedule", "figures/lr_find", "figures/batch"} <= set(acc.Tags()["images"])
