"""`dfd export` and model packages (train.score.package, train.score.card): the Hub layout, the threshold chosen
on the validation split, a package predicting exactly as its checkpoint, loading without unpickling, bad packages."""
from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from helpers.commands import run_module
from train.score import metrics
from train.paths import CONFIG, WEIGHTS, CheckpointError, PackageError, resolve as resolve_checkpoint
from train.score.checkpoints import load_ensemble
from train.score.package import load_package, read_config


@pytest.fixture(scope="module")
def package(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("pkg") / "tiny-detector"
    proc = run_module("train.export", "--checkpoint", tiny_run, "--out", out)
    assert "threshold" in proc.stdout and "EER point" in proc.stdout
    return out


def test_export_writes_the_hub_layout_with_everything_prediction_needs(package, tiny_run):
    assert sorted(p.name for p in package.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((package / CONFIG).read_text())
    saved = json.loads((tiny_run / "config.json").read_text())
    assert config["architecture"] == saved["arch"] == "resnet18" and config["classes"] == ["real", "fake"]
    assert config["input"] == "frames" and config["image_size"] == [64, 64] and config["aggregate"] == "mean"
    assert config["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert config["frames"]["fps"] == saved["frames"]["fps"] and config["frames"]["size"] == [128, 72]
    assert config["training"]["recipe"] == saved["recipe"]
    assert config["source"]["checkpoint"].endswith("best.pt") and len(config["source"]["sha256"]) == 64
    with open(package / WEIGHTS, "rb") as fh:  # safetensors: an 8-byte header length, then a JSON header
        n = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(n))
    assert "0.0.weight" in header and header["__metadata__"] == {"format": "pt"}


def test_threshold_is_the_eer_point_of_the_val_videos(package, tiny_run):
    threshold = read_config(package)["threshold"]
    videos = pd.read_parquet(tiny_run / "video_predictions.parquet")
    want = metrics.choose_threshold(videos["label"], videos["p_fake"])
    assert threshold["value"] == want["value"] and threshold["rule"] == "eer" and threshold["split"] == "val"
    assert threshold["n"] == len(videos) and threshold["source"].endswith("video_predictions.parquet")
    card = (package / "README.md").read_text()
    assert f"P(fake) >= **{want['value']:.4f}** is called fake: chosen at the EER point of {len(videos)} val videos" \
        in card
    for heading in ("## Decision threshold", "## Training data", "## Recipe", "## Validation metrics",
                    "## Benchmark", "## Intended use", "## Limits"):
        assert heading in card
    assert "No benchmark" in card and "| train | videos |" in card and "dev run" in card
    explained = json.loads((tiny_run / "explain.json").read_text())
    assert f"{explained['video']['roc_auc']:.4f}" in card or explained["video"]["roc_auc"] is None


def test_threshold_at_a_target_fpr_and_from_the_val_shards(tiny_run, tmp_path):
    """last.pt was not what explain scored: the val shards are scored at export, as evaluate scores them."""
    out = tmp_path / "strict"
    run_module("train.export", "--checkpoint", tiny_run / "checkpoints" / "last.pt", "--out", out,
               "--threshold-at-fpr", "0.0")
    threshold = read_config(out)["threshold"]
    run_module("train.evaluate", "--checkpoint", tiny_run / "checkpoints" / "last.pt", "--shards",
               read_config(out)["training"]["shards"], "--split", "val", "--out", tmp_path / "eval", "--device", "cpu",
               "--workers", "0")
    videos = pd.read_parquet(tmp_path / "eval" / "video_predictions.parquet")
    want = metrics.choose_threshold(videos["label"], videos["p_fake"], at_fpr=0.0)
    assert threshold["rule"] == "fpr" and threshold["target_fpr"] == 0.0 and threshold["fpr"] == 0.0
    assert threshold["value"] == pytest.approx(want["value"], abs=1e-6)
    assert "scored at export" in threshold["source"]
    assert "a false-positive rate <= 0" in (out / "README.md").read_text()


def test_benchmark_json_beside_the_run_becomes_the_card_table(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "benchmark").mkdir()
    (run / "benchmark" / "benchmark.json").write_text(json.dumps(
        {"tests": {"celeb-df-v2": {"frame_auc": 0.61234, "video_auc": 0.65432}, "dfdc": {"frame_auc": 0.7}}}))
    explained = json.loads((run / "explain.json").read_text())
    explained["checkpoint"] = str(run / "checkpoints" / "best.pt")  # explain scored the copy's best.pt
    (run / "explain.json").write_text(json.dumps(explained))
    run_module("train.export", "--checkpoint", run, "--out", tmp_path / "pkg")
    card = (tmp_path / "pkg" / "README.md").read_text()
    assert "| test set | frame_auc | video_auc |" in card
    assert "| celeb-df-v2 | 0.6123 | 0.6543 |" in card and "| dfdc | 0.7000 | n/a |" in card


def test_package_predicts_exactly_as_its_checkpoint(package, tiny_run, tiny_dataset, tmp_path):
    videos = pd.read_parquet(tiny_dataset["manifests"] / "videos.parquet")
    paths = list(videos[videos["split"] == "val"]["path"])[:4]
    for name, model in (("ckpt", tiny_run / "checkpoints" / "best.pt"), ("pkg", package)):
        run_module("train.predict", "--checkpoint", model, *paths, "--out", tmp_path / f"{name}.csv",
                   "--frames-out", tmp_path / f"{name}-frames.csv", "--device", "cpu", "-q")
    a, b = pd.read_csv(tmp_path / "ckpt-frames.csv"), pd.read_csv(tmp_path / "pkg-frames.csv")
    assert len(a) > 0 and list(a["key"]) == list(b["key"])
    assert np.array_equal(a["p_fake"].to_numpy(), b["p_fake"].to_numpy())
    pkg_model, _, _ = load_package(package)
    ckpt = torch.load(tiny_run / "checkpoints" / "best.pt", weights_only=True)["model"]
    state = pkg_model.state_dict()
    assert state.keys() == ckpt.keys() and all(torch.equal(state[k], ckpt[k]) for k in ckpt)


def test_loading_a_package_never_unpickles(package, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("unpickling while loading a package")
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch.serialization, "load", refuse)
    ensemble = load_ensemble([package], "cpu")
    assert ensemble.paths == [package] and ensemble.thresholds[0] == read_config(package)["threshold"]
    assert resolve_checkpoint(package) == package


def test_check_and_evaluate_take_the_package(package, tiny_run, tiny_dataset, tmp_path):
    videos = pd.read_parquet(tiny_dataset["manifests"] / "videos.parquet")
    path = videos[videos["split"] == "val"]["path"].iloc[0]
    proc = run_module("train.check", path, "--model", package, "--out", tmp_path / "pages", "--device", "cpu")
    threshold = read_config(package)["threshold"]["value"]
    assert f"(threshold {threshold:.3f}); strongest: frames" in proc.stdout
    page = next((tmp_path / "pages").glob("*.html")).read_text()
    assert "the EER point of" in page and str(package) in page
    run_module("train.evaluate", "--checkpoint", package, "--shards", tiny_dataset["shards"], "--manifests",
               tiny_dataset["manifests"], "--out", tmp_path / "eval", "--device", "cpu", "--workers", "0")
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["video"]["videos"] > 0


def test_a_checkpoint_in_its_run_gets_the_run_threshold_and_a_lone_one_gets_half(tiny_run, tiny_dataset, tmp_path):
    videos = pd.read_parquet(tiny_dataset["manifests"] / "videos.parquet")
    path = videos[videos["split"] == "val"]["path"].iloc[0]
    run_videos = pd.read_parquet(tiny_run / "video_predictions.parquet")
    eer = metrics.choose_threshold(run_videos["label"], run_videos["p_fake"])["value"]
    proc = run_module("train.check", path, "--model", tiny_run, "--no-html", "--device", "cpu")
    assert f"(threshold {eer:.3f})" in proc.stdout
    lone = tmp_path / "lone.pt"
    shutil.copy(tiny_run / "checkpoints" / "best.pt", lone)
    proc = run_module("train.check", path, "--model", lone, "--no-html", "--device", "cpu")
    assert "(threshold 0.500)" in proc.stdout


def test_broken_packages_are_one_clear_error(package, tmp_path):
    edited = tmp_path / "edited"
    shutil.copytree(package, edited)
    config = json.loads((edited / CONFIG).read_text())
    config["image_size"] = [224, 224]
    (edited / CONFIG).write_text(json.dumps(config))
    with pytest.raises(PackageError, match="image_size is .* but the training config says"):
        load_package(edited)
    pickled = tmp_path / "pickled"
    shutil.copytree(package, pickled)
    (pickled / WEIGHTS).write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(PackageError, match="not a safetensors file"):
        load_package(pickled)
    (pickled / CONFIG).write_text("{")
    with pytest.raises(PackageError, match="not readable JSON"):
        load_package(pickled)
    proc = run_module("train.check", str(tmp_path / "x.mp4"), "--model", edited, check=False)
    assert proc.returncode == 1 and "image_size is" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "empty-folder").mkdir()
    with pytest.raises(CheckpointError, match="nor a model package"):
        resolve_checkpoint(tmp_path / "empty-folder")


def test_hub_names_are_checked_before_any_download():
    with pytest.raises(PackageError, match="hf://OWNER/NAME"):
        resolve_checkpoint("hf://just-a-name")
