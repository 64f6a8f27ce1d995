"""train.report (explain, pointing, figures, page) and `python -m train.explain` on a real tiny run: predictions,
video metrics, figures, pointing game, report."""
from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from helpers.clips import TINY_BOX, write_tiny_boxes

from train.report.explanation import video_predictions
from train.report.figures import fastai_title
from train.report.pointing import ExplainError, box_at, box_area, load_boxes
from train.score.metrics import KAGGLE_EPS
from train.score.metrics import log_loss as clipped_log_loss  # Kaggle's clipped log loss (the old alias's name)

ROOT = Path(__file__).resolve().parents[2]
FIGURES = ("batch.png", "lr_find.png", "lr_schedule.png", "losses.png", "top_losses.png", "best.png",
           "gradcam_worst.png", "gradcam_best.png", "pointing.png")


def run_module(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env={**__import__("os").environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    if check and proc.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def run_dir(tiny_run) -> Path:
    return tiny_run


@pytest.fixture(scope="module")
def explained(run_dir) -> dict:
    return json.loads((run_dir / "explain.json").read_text())


@pytest.fixture(scope="module")
def val_frames(tiny_dataset) -> pd.DataFrame:
    frames = pd.read_parquet(tiny_dataset["manifests"] / "frames.parquet")
    return frames[frames["split"] == "val"].set_index("key")


# Predictions and metrics --------------------------------------------------------------------------------------


def test_predictions_cover_every_val_frame(run_dir, val_frames):
    pred = pd.read_parquet(run_dir / "predictions.parquet")
    assert list(pred.columns) == ["key", "video_id", "second", "label", "p_fake", "loss"]
    assert len(pred) == len(val_frames) and set(pred["key"]) == set(val_frames.index)
    assert pred["key"].is_unique
    truth = val_frames.loc[pred["key"]]
    assert (pred["video_id"].to_numpy() == truth["video_id"].to_numpy()).all()
    assert np.allclose(pred["second"].to_numpy(), truth["second"].to_numpy())
    assert (pred["label"].to_numpy() == (truth["label"] == "fake").astype(int).to_numpy()).all()
    assert pred["p_fake"].between(0, 1).all()
    p_true = np.where(pred["label"] == 1, pred["p_fake"], 1 - pred["p_fake"])
    # p_fake is float32: near 1 its steps are 6e-8, so 1 - p_fake below ~1e-4 is too coarse for -log; below that the
    # loss (cross-entropy from logits) stays exact while p_true does not
    ok = p_true > 1e-4
    assert ok.sum() > 0
    assert np.allclose(pred["loss"][ok], -np.log(p_true[ok]), rtol=1e-3, atol=1e-4)


def test_video_scores_are_frame_means(run_dir, tiny_dataset):
    pred = pd.read_parquet(run_dir / "predictions.parquet")
    videos = pd.read_parquet(run_dir / "video_predictions.parquet")
    manifest = pd.read_parquet(tiny_dataset["manifests"] / "videos.parquet")
    val = manifest[manifest["split"] == "val"]
    assert sorted(videos["video_id"]) == sorted(val["video_id"])
    means = pred.groupby("video_id")["p_fake"].mean()
    counts = pred.groupby("video_id").size()
    for row in videos.itertuples():
        assert row.p_fake == pytest.approx(means[row.video_id], abs=1e-12)
        assert row.frames == counts[row.video_id]
        assert row.label_name == val.set_index("video_id").loc[row.video_id, "label"]
        assert row.label == int(row.label_name == "fake")


def test_metrics_match_sklearn(run_dir, explained):
    videos = pd.read_parquet(run_dir / "video_predictions.parquet")
    pred = pd.read_parquet(run_dir / "predictions.parquet")
    y, p = videos["label"].to_numpy(), videos["p_fake"].to_numpy()
    v = explained["video"]
    assert v["videos"] == len(videos)
    assert v["log_loss"] == pytest.approx(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1]), rel=1e-9)
    assert v["log_loss_clipped"] == pytest.approx(log_loss(y, np.clip(p, 0.01, 0.99), labels=[0, 1]), rel=1e-9)
    assert v["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert v["accuracy"] == pytest.approx(np.mean((p >= 0.5) == y))
    f = explained["frame"]
    assert f["frames"] == len(pred)
    assert f["loss"] == pytest.approx(pred["loss"].mean())
    assert f["log_loss"] == pytest.approx(log_loss(pred["label"], np.clip(pred["p_fake"], 1e-15, 1 - 1e-15),
                                                   labels=[0, 1]), rel=1e-9)
    assert explained["log_loss_eps"] == KAGGLE_EPS


def test_top_losses_are_the_worst_and_best_frames(run_dir, explained):
    pred = pd.read_parquet(run_dir / "predictions.parquet")
    k = explained["k"]
    assert k == 4  # --dev-run shrinks the default 9
    worst = explained["top"]["worst"]
    assert len(worst) == k
    assert sorted(pred.set_index("key").loc[worst, "loss"], reverse=True) == \
        sorted(pred["loss"], reverse=True)[:k]
    right = pred[(pred["p_fake"] >= 0.5).astype(int) == pred["label"]]
    best = explained["top"].get("best", [])
    assert len(best) == min(k, len(right))
    assert set(pred.set_index("key").loc[best, "loss"]) <= set(sorted(right["loss"])[:k])


def test_figures_are_pngs(run_dir):
    import matplotlib.image as mpimg
    for name in FIGURES:
        path = run_dir / name
        assert path.is_file(), name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        image = mpimg.imread(path)
        assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50, name
        assert image.std() > 0.01, f"{name} is blank"


def test_pointing_game_runs_from_train_run_boxes(explained, val_frames):
    p = explained["pointing"]
    assert p is not None, "train.run --boxes did not reach run_explain"
    n_fakes = int((val_frames["label"] == "fake").sum())
    assert p["frames"] == n_fakes and p["target_class"] == "fake"
    assert 0 <= p["hits"] <= n_fakes and p["pointing_game"] == pytest.approx(p["hits"] / n_fakes)
    assert p["random_point"] == pytest.approx(box_area(TINY_BOX), abs=1e-9)


def test_report_embeds_every_figure_and_the_metrics(run_dir, explained):
    page = (run_dir / "report.html").read_text()
    for name in FIGURES:
        match = re.search(rf'<img alt="{re.escape(name)}" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
        assert match, f"{name} not embedded"
        assert base64.b64decode(match.group(1)) == (run_dir / name).read_bytes()
    assert not re.search(r'(src|href)="(https?:|//)', page), "the report must not need the network"
    assert f"{explained['video']['log_loss']:.4f}" in page
    assert f"{explained['frame']['accuracy']:.4f}" in page
    assert f"{explained['pointing']['pointing_game']:.3f}" in page
    epochs = pd.read_csv(run_dir / "metrics.csv")
    assert page.count("<tr>") >= len(epochs) + 3
    for value in epochs["val_loss"]:
        assert f"{value:.4f}" in page
    assert '"recipe"' in page and '"weights": "none"' in page  # the config


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    import matplotlib.image as mpimg
    shot = tmp_path / "report.png"
    proc = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
                           (run_dir / "report.html").resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file(), proc.stderr[-2000:]
    image = mpimg.imread(shot)
    assert image.shape[:2] == (2000, 1280)
    assert image[..., :3].std() > 0.05  # text, tables and figures, not a blank page


def test_explain_cli_with_last_checkpoint_and_k(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    for name in ("explain.json", "report.html", "top_losses.png", "pointing.png"):
        (run / name).unlink()
    proc = run_module("train.explain", "--run", str(run), "--checkpoint", "last", "--k", "3")
    assert "video log loss" in proc.stdout and "report:" in proc.stdout
    explained = json.loads((run / "explain.json").read_text())
    assert explained["checkpoint_name"] == "last.pt" and len(explained["top"]["worst"]) == 3
    assert explained["pointing"] is None and not (run / "pointing.png").exists()  # no --boxes, none in config
    assert (run / "top_losses.png").is_file() and (run / "report.html").is_file()
    assert "Not computed" in (run / "report.html").read_text()


def test_explain_cli_refuses_a_missing_checkpoint(run_dir):
    proc = run_module("train.explain", "--run", str(run_dir), "--checkpoint", str(run_dir / "nope.pt"), check=False)
    assert proc.returncode == 1 and "no checkpoint at" in proc.stderr


# Pure helpers -------------------------------------------------------------------------------------------------


def test_clipped_log_loss_is_kaggles():
    y = np.array([1, 0, 1, 0])
    p = np.array([1.0, 0.0, 0.0, 0.3])  # one certain and wrong: clipped at 1e-15, so finite
    expected = -np.mean([math.log(1 - 1e-15), math.log(1 - 1e-15), math.log(1e-15), math.log(0.7)])
    assert clipped_log_loss(y, p) == pytest.approx(expected, rel=1e-12)
    assert clipped_log_loss(y, p, eps=0.01) == pytest.approx(-np.mean(np.log([0.99, 0.99, 0.01, 0.7])))


def test_video_predictions_mean_and_loss():
    frames = pd.DataFrame({"video_id": ["a", "a", "b"], "label": [1, 1, 0], "p_fake": [0.2, 0.6, 0.1]})
    videos = video_predictions(frames).set_index("video_id")
    assert videos.loc["a", "p_fake"] == pytest.approx(0.4) and videos.loc["a", "frames"] == 2
    assert videos.loc["a", "loss"] == pytest.approx(-math.log(0.4))
    assert videos.loc["b", "loss"] == pytest.approx(-math.log(0.9)) and videos.loc["b", "label_name"] == "real"


def test_load_boxes_formats(tmp_path):
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"abc.mp4": [[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]], "def": [0.1, 0.2, 0.3, 0.4]}))
    boxes = load_boxes(path)
    assert box_at(boxes, "abc", 0.0) == [0, 0, 0.5, 0.5]
    assert box_at(boxes, "abc", 1.0) == [0.5, 0.5, 1, 1]
    assert box_at(boxes, "abc", 7.0) == [0.5, 0.5, 1, 1]  # past the end: the last box
    assert box_at(boxes, "def", 3.0) == [0.1, 0.2, 0.3, 0.4]  # one box for the whole video
    assert box_at(boxes, "zzz", 0.0) is None
    path.write_text(json.dumps({"abc.mp4": [0, 1]}))
    with pytest.raises(ExplainError, match="abc.mp4"):
        load_boxes(path)


def test_fastai_title():
    row = pd.Series({"p_fake": 0.9, "label": 0, "loss": 2.302585}).to_frame().T.itertuples().__next__()
    assert fastai_title(row) == "fake/real / 2.30 / 0.10"


# A model that learned points at the manipulation ------------------------------------------------------------


def make_patch_dataset(root: Path, n_real: int = 16, seconds: int = 2, size=(192, 108), seed: int = 0) -> Path:
    """A demo-shaped DFDC part: each real has two fakes with a translucent red patch (the 'manipulated region') at a
    random place, and boxes.json in demodata.synthetic's format (file name -> one normalised box per second)."""
    import random
    from helpers.clips import SOURCES
    from pipeline.ffmpeg.locate import find_ffmpeg

    w, h = size
    part = root / "dfdc_train_part_0"
    part.mkdir(parents=True)
    rng = random.Random(seed)
    meta, boxes = {}, {}

    def clip(name: str, source: str, box=None) -> None:
        vf = "format=yuv420p" if box is None else \
            f"drawbox=x={box[0]}:y={box[1]}:w={box[2]}:h={box[3]}:color=red@0.7:t=fill,format=yuv420p"
        subprocess.run([find_ffmpeg(), "-y", "-v", "error", "-f", "lavfi", "-i", f"{source}=size={w}x{h}:rate=25",
                        "-t", str(seconds), "-vf", vf, "-c:v", "libx264", "-preset", "ultrafast", "-an",
                        str(part / name)], check=True)

    for i in range(n_real):
        source = SOURCES[i % len(SOURCES)]
        clip(f"real{i:03d}.mp4", source)
        meta[f"real{i:03d}.mp4"] = {"label": "REAL", "split": "train", "original": None}
        for j in range(2):
            bw, bh = w // 3, h // 2  # at least one Grad-CAM cell (layer4 is 3x5 at 96x160) inside every box
            x, y = rng.randrange(0, w - bw) // 2 * 2, rng.randrange(0, h - bh) // 2 * 2
            clip(f"fake{i:03d}x{j}.mp4", source, (x, y, bw, bh))
            meta[f"fake{i:03d}x{j}.mp4"] = {"label": "FAKE", "split": "train", "original": f"real{i:03d}.mp4"}
            boxes[f"fake{i:03d}x{j}.mp4"] = [[x / w, y / h, (x + bw) / w, (y + bh) / h]] * seconds
    (part / "metadata.json").write_text(json.dumps(meta))
    (root / "boxes.json").write_text(json.dumps(boxes, indent=1))
    return root


PATCH_RECIPE = """
batch_size = 8
image_size = "160x96"
[augment]
blur = 0.0
median_blur = 0.0
hflip = 0.5
hsv = 0.0
crop_pad = 0.0
rotate = 0.0
zoom = 0.0
brightness = 0.0
contrast = 0.0
jpeg = 0.0
[[stage]]
epochs = 10
lr = [1e-3, 3e-3]
frozen = false
"""


@pytest.mark.slow
def test_trained_model_points_inside_the_box_far_more_than_chance(tmp_path):
    """Train the real trainer (random init, 96x160, ~100 steps) on a demo-shaped set, explain with --boxes."""
    from helpers.commands import run_pipeline
    videos = make_patch_dataset(tmp_path / "videos")
    run_pipeline(videos, tmp_path, "--size", "192x108", "--val-fraction", "0.4")
    recipe = tmp_path / "patch.toml"
    recipe.write_text(PATCH_RECIPE)
    run = tmp_path / "run"
    run_module("train.run", "--shards", str(tmp_path / "shards"), "--manifests", str(tmp_path / "manifests"),
               "--out", str(run), "--recipe", str(recipe), "--weights", "none", "--workers", "0", "--device", "cpu",
               "--no-lr-find", "--shuffle-buffer", "200", "--boxes", str(videos / "boxes.json"))
    explained = json.loads((run / "explain.json").read_text())
    p = explained["pointing"]
    print(f"pointing game {p['pointing_game']:.3f} ({p['hits']}/{p['frames']}), random point "
          f"{p['random_point']:.3f}, video AUC {explained['video']['roc_auc']}")
    assert p["frames"] >= 12
    assert p["random_point"] == pytest.approx(1 / 6, rel=0.1)  # (w/3 x h/2) boxes
    assert explained["video"]["roc_auc"] > 0.8, "the model did not learn; the pointing game would mean nothing"
    assert p["pointing_game"] >= 2.5 * p["random_point"]


def test_explain_skips_a_corrupt_val_jpeg(run_dir, tiny_dataset, tmp_path):
    """Issue 21 item 12: a val frame whose JPEG is broken inside its shard is skipped with a warning naming it;
    explain finishes on the others (pipeline.verify --deep finds it)."""
    shards, manifests = tmp_path / "shards", tmp_path / "manifests"
    shutil.copytree(tiny_dataset["shards"], shards)
    shutil.copytree(tiny_dataset["manifests"], manifests)
    frames = pd.read_parquet(manifests / "frames.parquet")
    victim = frames[frames["split"] == "val"].sort_values("key").iloc[0]
    with open(shards / victim["shard"], "r+b") as fh:
        fh.seek(int(victim["offset"]) + 512)
        fh.write(b"\0" * 64)  # no JPEG start marker any more (and a crc32 mismatch)
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    proc = run_module("train.explain", "--run", str(run), "--shards", str(shards), "--manifests", str(manifests),
                      "--k", "2", check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "skipped corrupt frame" in proc.stderr and victim["key"] in proc.stderr
    pred = pd.read_parquet(run / "predictions.parquet")
    assert victim["key"] not in set(pred["key"]) and len(pred) == int((frames["split"] == "val").sum()) - 1
