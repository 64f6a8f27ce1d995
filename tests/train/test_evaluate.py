"""train.report.evaluation (and `python -m train.evaluate`): one checkpoint, an ensemble, TTA, aggregation rules,
refusing mismatched inputs."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from train.model import Device
from train.report.evaluation import evaluate, metrics_markdown
from train.score import metrics
from train.score.checkpoints import check_same_inputs, load_ensemble
from train.paths import CheckpointError
from train.score.on_batches import ensemble_p_fake

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tiny_run) -> Path:
    """The tiny --dev-run with --boxes (conftest's session fixture, shared with test_explain and test_predict)."""
    return tiny_run


def _variant(src: Path, dst: Path, seed: int, **recipe) -> Path:
    """The checkpoint with other (random) head weights and, optionally, other recipe settings."""
    data = torch.load(src, map_location="cpu", weights_only=True)
    torch.manual_seed(seed)
    data["model"] = {k: (v + 0.05 * torch.randn_like(v) if k.startswith("1.") and v.is_floating_point() else v)
                     for k, v in data["model"].items()}
    data["config"]["recipe"].update(recipe)
    torch.save(data, dst)
    return dst


def test_one_checkpoint_cli(run_dir, tiny_dataset, tmp_path):
    out = tmp_path / "eval"
    proc = subprocess.run([sys.executable, "-m", "train.evaluate", "--checkpoint", str(run_dir), "--shards",
                           str(tiny_dataset["shards"]), "--manifests", str(tiny_dataset["manifests"]), "--split", "val",
                           "--out", str(out), "--device", "cpu", "--workers", "0"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| level | n | log_loss | roc_auc" in proc.stdout
    result = json.loads((out / "metrics.json").read_text())
    for name in ("metrics.md", "roc.png", "predictions.parquet", "video_predictions.parquet"):
        assert (out / name).is_file(), name
    frames = pd.read_parquet(out / "predictions.parquet")
    expected = metrics.score(frames["label"], frames["p_fake"])
    for key, value in expected.items():
        assert result["frame"][key] == pytest.approx(value, nan_ok=True), key
    # the same checkpoint, the same frames: the very log loss train.explain reported (one clipping everywhere)
    explained = json.loads((run_dir / "explain.json").read_text())
    assert result["frame"]["frames"] == explained["frame"]["frames"]
    assert result["frame"]["log_loss"] == pytest.approx(explained["frame"]["log_loss"], rel=1e-5)
    assert result["video"]["log_loss"] == pytest.approx(explained["video"]["log_loss"], rel=1e-5)
    assert result["video"]["aggregate"] == "mean" and result["tta"] == "none"
    assert "| video |" in (out / "metrics.md").read_text()


def test_ensemble_is_the_mean_of_its_members(run_dir, tiny_dataset, tmp_path):
    best = run_dir / "checkpoints" / "best.pt"
    other = _variant(best, tmp_path / "other.pt", seed=3)
    kw = dict(shards=str(tiny_dataset["shards"]), manifests=tiny_dataset["manifests"], device="cpu", workers=0)
    a = evaluate([best], out=tmp_path / "a", **kw)
    b = evaluate([other], out=tmp_path / "b", **kw)
    both = evaluate([best, other], out=tmp_path / "ab", rule="median", **kw)
    pa, pb, pab = (pd.read_parquet(tmp_path / n / "predictions.parquet").set_index("key")["p_fake"]
                   for n in ("a", "b", "ab"))
    assert np.allclose(pab, (pa.loc[pab.index] + pb.loc[pab.index]) / 2, atol=1e-6)
    assert both["ensemble"] and len(both["checkpoints"]) == 2 and both["video"]["aggregate"] == "median"
    videos = pd.read_parquet(tmp_path / "ab" / "video_predictions.parquet").set_index("video_id")
    frames = pd.read_parquet(tmp_path / "ab" / "predictions.parquet")
    median = frames.groupby("video_id")["p_fake"].median()
    assert np.allclose(videos.loc[median.index, "p_fake"], median)
    assert a["frame"]["frames"] == b["frame"]["frames"] == both["frame"]["frames"]


def test_mismatched_inputs_are_refused_naming_both(run_dir, tiny_dataset, tmp_path):
    best = run_dir / "checkpoints" / "best.pt"
    bigger = _variant(best, tmp_path / "bigger.pt", seed=4, image_size=[96, 96])
    with pytest.raises(CheckpointError, match=r"best\.pt has image_size = \[64, 64\] but .*bigger\.pt has image_size"):
        load_ensemble([best, bigger], device="cpu")
    proc = subprocess.run([sys.executable, "-m", "train.evaluate", "--checkpoint", str(best), "--checkpoint",
                           str(bigger), "--shards", str(tiny_dataset["shards"]), "--device", "cpu"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 1 and "bigger.pt" in proc.stderr and "best.pt" in proc.stderr


def test_check_same_inputs_ignores_settings_an_old_run_lacks():
    a = {"input": "frames", "image_size": [64, 64], "pipeline": {"fps": 1}}
    b = {"input": "frames", "image_size": [64, 64]}
    assert check_same_inputs([("a", a), ("b", b)]) == a
    with pytest.raises(CheckpointError, match="a has input = frames but c has input = faces"):
        check_same_inputs([("a", a), ("c", {**b, "input": "faces"})])


class _Asymmetric(nn.Module):
    """Logits from the left half of the image only: its mirror gives another answer."""

    def forward(self, x):
        left = x[..., : x.shape[-1] // 2].mean(dim=(1, 2, 3))
        return torch.stack([torch.zeros_like(left), 4 * left], dim=1)


def test_hflip_tta_and_ensemble_average_probabilities():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8)
    dev = Device(torch.device("cpu"))
    model = _Asymmetric()
    plain = ensemble_p_fake([model], images, dev)
    flipped = ensemble_p_fake([model], images.flip(-1), dev)
    assert not torch.allclose(plain, flipped)
    assert torch.allclose(ensemble_p_fake([model], images, dev, "hflip"), (plain + flipped) / 2)

    class Const(nn.Module):
        def __init__(self, logit):
            super().__init__()
            self.logit = logit

        def forward(self, x):
            return torch.tensor([[0.0, self.logit]]).repeat(len(x), 1)

    p = ensemble_p_fake([Const(0.0), Const(np.log(3.0))], images, dev)  # P(fake) 0.5 and 0.75
    assert torch.allclose(p, torch.full((3,), 0.625))
    with pytest.raises(ValueError, match="allowed: none, hflip"):
        ensemble_p_fake([model], images, dev, "vflip")


def test_markdown_table_has_both_levels_and_na():
    result = {"frame": {"frames": 4, "log_loss": 0.5, "roc_auc": float("nan")},
              "video": {"videos": 2, "log_loss": 0.25}}
    table = metrics_markdown(result).splitlines()
    assert table[0].startswith("| level | n | log_loss |") and table[1].startswith("|---")
    assert table[2].startswith("| frame | 4 | 0.5000 | n/a |") and table[3].startswith("| video | 2 | 0.2500 |")


def test_predict_takes_an_ensemble_with_tta_and_a_rule(run_dir, tiny_dataset, tmp_path):
    best = run_dir / "checkpoints" / "best.pt"
    other = _variant(best, tmp_path / "other.pt", seed=5)
    frames_csv, sub_csv = tmp_path / "frames.csv", tmp_path / "sub.csv"
    proc = subprocess.run([sys.executable, "-m", "train.predict", "--checkpoint", str(best), "--checkpoint", str(other),
                           "--shards", str(tiny_dataset["shards"]), "--split", "val", "--tta", "hflip",
                           "--aggregate", "median", "--out", str(sub_csv), "--frames-out", str(frames_csv), "-q",
                           "--device", "cpu"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    evaluate([best, other], str(tiny_dataset["shards"]), tiny_dataset["manifests"], out=tmp_path / "e", tta="hflip",
             device="cpu", workers=0)
    want = pd.read_parquet(tmp_path / "e" / "predictions.parquet").set_index("key")["p_fake"]
    got = pd.read_csv(frames_csv).set_index("key")
    assert np.allclose(got.loc[want.index, "p_fake"], want, atol=2e-6)
    sub = pd.read_csv(sub_csv).set_index("filename")["label"]
    median = got.groupby("filename")["p_fake"].median()
    assert np.allclose(sub.loc[median.index], median, atol=2e-6)

    bigger = _variant(best, tmp_path / "bigger.pt", seed=6, image_size=[96, 96])
    proc = subprocess.run([sys.executable, "-m", "train.predict", "--checkpoint", str(best), "--checkpoint", str(bigger),
                           "--shards", str(tiny_dataset["shards"]), "--split", "val", "--out", str(tmp_path / "x.csv")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 1 and "best.pt has image_size" in proc.stderr and "bigger.pt" in proc.stderr
