"""The training command end to end on real pipeline shards: dev run, resume equivalence, NaN, bad inputs."""
from __future__ import annotations

import subprocess
import sys
import urllib.error
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

import train.fit.engine
import train.model
from pipeline.dataset import Dataset
from train.data.streams import ValStream, make_loader
from train.fit.engine import evaluate
from train.checkpoint import load_checkpoint
from train.model import WeightsError, create_model
from train.run import main
from train.score.on_batches import predict

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ("batch.png", "lr_find.png", "lr_schedule.png", "losses.png")

TINY_RECIPE = """
batch_size = 8
image_size = 64
[augment]
hflip = 0.5
jpeg = 0.3
[[stage]]
epochs = 2
lr = [1e-4, 1e-3]
frozen = false
[[stage]]
epochs = 1
lr = 1e-3
frozen = true
"""


def _args(ds, out, *extra):
    return ["--shards", str(ds["shards"]), "--manifests", str(ds["manifests"]), "--out", str(out),
            "--weights", "none", "--device", "cpu", "--image-size", "64", "--batch-size", "8", "--no-explain", *extra]


def _invoke(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def dev_run(tiny_dataset, tmp_path_factory) -> Path:
    """`python -m train.run --dev-run` at 64 px with two workers, as a user runs it."""
    out = tmp_path_factory.mktemp("dev") / "run"
    proc = subprocess.run([sys.executable, "-m", "train.run", *_args(tiny_dataset, out, "--dev-run", "--workers", "2")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"run folder: {out}" in proc.stdout
    return out


def test_dev_run_writes_every_artifact(dev_run):
    for name in ("config.json", "metrics.csv", "lr.csv", "checkpoints/last.pt", "checkpoints/best.pt", *FIGURES):
        assert (dev_run / name).is_file() and (dev_run / name).stat().st_size > 0, name
    metrics = pd.read_csv(dev_run / "metrics.csv")
    assert metrics[["stage", "epoch"]].values.tolist() == [[1, 1], [2, 1], [3, 1]]
    assert metrics[["train_loss", "val_loss", "log_loss", "video_log_loss"]].notna().all().all()
    lr = pd.read_csv(dev_run / "lr.csv")
    assert list(lr.columns) == ["step", "stage", "lr_0", "lr_1", "lr_2", "beta1", "train_loss"]
    assert len(lr) == 6 and lr["stage"].tolist() == [1, 1, 2, 2, 3, 3]
    assert lr.loc[0, "lr_2"] / lr.loc[0, "lr_0"] == pytest.approx(50, rel=1e-4)  # slice(2e-4, 1e-2) at 1/25 of the peak


def test_checkpoint_loads_as_model_and_predicts(dev_run, tiny_dataset):
    model, config = load_checkpoint(dev_run / "checkpoints" / "best.pt")
    assert config.arch == "resnet18" and config.image_size == (64, 64)
    dataset = Dataset.open(tiny_dataset["shards"], tiny_dataset["manifests"])
    loader = make_loader(ValStream(dataset.urls("val"), (64, 64), 16), 0)
    frame = predict(model, loader, "cpu")
    assert list(frame.columns) == ["key", "video_id", "label", "p_fake", "loss"]
    assert len(frame) == dataset.n_frames("val") and frame["p_fake"].between(0, 1).all()
    metrics = evaluate(model, loader, "cpu")
    assert metrics["frames"] == len(frame) and 0 <= metrics["accuracy"] <= 1


def test_weights_path_accepts_a_checkpoint_and_refuses_other_files(dev_run, tmp_path):
    model = create_model("resnet18", str(dev_run / "checkpoints" / "last.pt"))
    reference, _ = load_checkpoint(dev_run / "checkpoints" / "last.pt")
    assert torch.equal(model.state_dict()["0.0.weight"], reference.state_dict()["0.0.weight"])
    bogus = tmp_path / "notes.pt"
    bogus.write_text("not a checkpoint\n")
    with pytest.raises(WeightsError, match="not a PyTorch checkpoint"):
        create_model("resnet18", str(bogus))
    with pytest.raises(WeightsError, match="does not fit|does not match"):
        create_model("resnet50", str(dev_run / "checkpoints" / "last.pt"))


def test_cli_reports_bad_weights_and_missing_shards(tiny_dataset, tmp_path):
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"\x00" * 100)
    result = CliRunner().invoke(main, [*_args(tiny_dataset, tmp_path / "r"), "--dev-run", "--workers", "0"][:-1]
                                + ["0", "--weights", str(bogus)])
    assert result.exit_code == 1 and "not a PyTorch checkpoint" in result.output
    result = CliRunner().invoke(main, ["--shards", str(tmp_path / "none"), "--out", str(tmp_path / "r2")])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_imagenet_offline_names_the_alternatives(monkeypatch):
    def offline(weights=None):
        raise urllib.error.URLError("no network")
    monkeypatch.setitem(train.model.BACKBONES, "resnet18", (offline, train.model.BACKBONES["resnet18"][1]))
    with pytest.raises(WeightsError, match="--weights none.*--weights PATH"):
        create_model("resnet18", "imagenet")


def _state(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)


@pytest.mark.slow
def test_resume_equals_an_uninterrupted_run(tiny_dataset, tmp_path):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_RECIPE)
    common = ["--recipe", str(recipe), "--workers", "0", "--seed", "7", "--no-lr-find", "--shuffle-buffer", "50"]
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert _invoke(_args(tiny_dataset, whole, *common)).exit_code == 0
    assert _invoke(_args(tiny_dataset, parts, *common, "--stop-after-epochs", "1")).exit_code == 0
    assert len(pd.read_csv(parts / "metrics.csv")) == 1
    # resume mid-stage (scheduler restored), stop at the stage boundary, resume into the frozen stage
    assert _invoke(_args(tiny_dataset, parts, "--resume", "--workers", "0", "--stop-after-epochs", "1")).exit_code == 0
    assert _invoke(_args(tiny_dataset, parts, "--resume", "--workers", "0")).exit_code == 0
    a, b = _state(whole), _state(parts)
    assert a["progress"]["step"] == b["progress"]["step"] > 0
    for key, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][key]), key
    pd.testing.assert_frame_equal(pd.read_csv(whole / "metrics.csv").drop(columns=["images_per_s", "seconds"]),
                                  pd.read_csv(parts / "metrics.csv").drop(columns=["images_per_s", "seconds"]))
    lr_a, lr_b = pd.read_csv(whole / "lr.csv"), pd.read_csv(parts / "lr.csv")
    pd.testing.assert_frame_equal(lr_a, lr_b)


@pytest.mark.slow
def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_RECIPE)
    real_ce = train.fit.engine.F.cross_entropy
    calls = {"train": 0}

    class PoisonedF:
        """Training losses turn NaN after the first epoch (5 steps); evaluation is untouched."""

        def __getattr__(self, name):
            return getattr(torch.nn.functional, name)

        @staticmethod
        def cross_entropy(logits, target, weight=None, reduction="mean"):
            loss = real_ce(logits, target, weight=weight, reduction=reduction)
            if reduction == "mean":
                calls["train"] += 1
                if calls["train"] > 5:
                    return loss * float("nan")
            return loss

    monkeypatch.setattr(train.fit.engine, "F", PoisonedF())
    run = tmp_path / "nan"
    result = CliRunner().invoke(main, _args(tiny_dataset, run, "--recipe", str(recipe), "--workers", "0",
                                            "--no-lr-find", "--shuffle-buffer", "50"))
    assert result.exit_code == 1
    assert "training loss became nan in stage 1, epoch 2" in result.output and "last good checkpoint" in result.output
    state = _state(run)
    assert state["progress"]["epoch"] == 1 and len(pd.read_csv(run / "metrics.csv")) == 1


@pytest.mark.parametrize("content", ["truncated", "foreign", "garbage"])
def test_resume_from_a_bad_last_pt_names_the_file(tmp_path, tiny_dataset, content):
    """Issue 21 item 8: a truncated or foreign checkpoints/last.pt: one line naming the file, no traceback."""
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True)
    if content == "garbage":
        last.write_bytes(bytes(range(256)) * 4)
    else:
        torch.save({"weights": torch.zeros(64, 64)} if content == "foreign" else
                   {"model": {"w": torch.zeros(64, 64)}, "config": {}}, last)
        if content == "truncated":
            last.write_bytes(last.read_bytes()[:-300])
    proc = subprocess.run([sys.executable, "-m", "train.run", *_args(tiny_dataset, tmp_path / "run", "--resume",
                                                                     "--workers", "0")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 1 and str(last) in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 3, proc.stderr


@pytest.mark.slow
def test_resume_follows_moved_shards(tiny_dataset, tmp_path):
    """Issue 21 item 8: --resume with --shards/--manifests at a new location uses them (and says so)."""
    import shutil

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY_RECIPE)
    before = {"shards": tmp_path / "a" / "shards", "manifests": tmp_path / "a" / "manifests"}
    shutil.copytree(tiny_dataset["shards"], before["shards"])
    shutil.copytree(tiny_dataset["manifests"], before["manifests"])
    run = tmp_path / "run"
    common = ["--recipe", str(recipe), "--workers", "0", "--no-lr-find", "--shuffle-buffer", "50"]
    assert _invoke(_args(before, run, *common, "--stop-after-epochs", "1")).exit_code == 0
    shutil.move(tmp_path / "a", tmp_path / "b")
    after = {"shards": tmp_path / "b" / "shards", "manifests": tmp_path / "b" / "manifests"}
    proc = subprocess.run([sys.executable, "-m", "train.run", *_args(after, run, "--resume", "--workers", "0",
                                                                     "--stop-after-epochs", "1")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"--resume: shards {after['shards']} (the run was started with {before['shards']})" in proc.stderr
    saved = _state(run)["config"]  # recorded relative to the run folder (train.paths)
    assert saved["paths"] == "run" and (run / saved["shards"]).resolve() == after["shards"].resolve()
    assert len(pd.read_csv(run / "metrics.csv")) == 2
