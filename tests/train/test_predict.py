"""train.score.videos and `python -m train.predict`: the pipeline's exact frames, real DFDC clips and generated
ones, a broken file, shards, CSV format."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.clips import make_clip
from helpers.commands import run_pipeline
from helpers.paths import SHARED_DATA
from pipeline.ffmpeg.extract import extract
from train.data.streams import read_shard
from train.checkpoint import load_checkpoint
from train.score.videos import FAILED_SCORE, PredictError, find_videos, frame_settings, video_scores

ROOT = Path(__file__).resolve().parents[2]
DFDC = SHARED_DATA / "dfdc_sample" / "dfdc_train_part_0"
DFDC_CLIPS = sorted(p.name for p in DFDC.glob("*.mp4")) if DFDC.is_dir() else []


def run_module(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    import os
    proc = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=900,
                          env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
    if check and proc.returncode != 0:
        raise AssertionError(f"{args[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def run_dir(tiny_run) -> Path:
    """The tiny --dev-run with --boxes (conftest's session fixture, shared with tests/train/test_explain.py)."""
    return tiny_run


@pytest.fixture(scope="module")
def checkpoint(run_dir) -> Path:
    return run_dir / "checkpoints" / "best.pt"


def read_submission(path: Path) -> pd.DataFrame:
    text = path.read_text()
    assert text.splitlines()[0] == "filename,label", "Kaggle DFDC submission header"
    sub = pd.read_csv(path)
    assert list(sub.columns) == ["filename", "label"]
    assert sub["filename"].is_unique and sub["label"].between(0, 1).all()
    return sub


def test_frame_settings_are_the_shards_own(checkpoint, tiny_dataset, tmp_path):
    _, config = load_checkpoint(checkpoint)
    settings, _ = frame_settings(checkpoint, config)
    dataset = json.loads((tiny_dataset["manifests"] / "dataset.json").read_text())["config"]
    assert (settings.fps, list(settings.size), settings.quality) == (dataset["fps"], dataset["size"],
                                                                     dataset["quality"])
    # train.run stores them in the checkpoint's config: the checkpoint alone is enough
    moved = dataclasses.replace(config, manifests=str(tmp_path / "gone"))
    lone = tmp_path / "ckpts" / "x" / "best.pt"
    lone.parent.mkdir(parents=True)
    shutil.copy(checkpoint, lone)
    stored, source = frame_settings(lone, moved)
    assert source.endswith("(its config)") and stored == settings
    # an older checkpoint without them: the run folder's pipeline.json (written by train.explain), else an error
    bare = dataclasses.replace(moved, frames={})
    assert frame_settings(checkpoint, bare)[1].endswith("pipeline.json")
    with pytest.raises(PredictError, match="--manifests"):
        frame_settings(lone, bare)


def test_extract_with_those_settings_gives_the_shard_jpegs(checkpoint, tiny_dataset):
    """What predict feeds the model is byte for byte what the training shards hold."""
    _, config = load_checkpoint(checkpoint)
    s, _ = frame_settings(checkpoint, config)
    videos = pd.read_parquet(tiny_dataset["manifests"] / "videos.parquet")
    video = videos[videos["split"] == "val"].iloc[0]
    shard_jpegs = {x["__key__"]: x["jpg"] for x in read_shard(str(tiny_dataset["shards"] / video["shard"]))
                   if x["__key__"].startswith(video["video_id"] + "_")}
    _, frames = extract(video["path"], s.fps, s.size, s.quality, skip_frames=s.skip_frames)
    assert {f"{video['video_id']}_{f.index:04d}": f.jpeg for f in frames} == shard_jpegs


def test_predict_matches_validation_on_the_val_videos(checkpoint, run_dir, tiny_dataset, tmp_path):
    """Scoring the val videos from their files gives the P(fake) explain computed from the shards."""
    videos = pd.read_parquet(tiny_dataset["manifests"] / "videos.parquet")
    paths = list(videos[videos["split"] == "val"]["path"])
    frames_csv, out = tmp_path / "frames.csv", tmp_path / "sub.csv"
    run_module("train.predict", "--checkpoint", str(checkpoint), *paths, "--out", str(out),
               "--frames-out", str(frames_csv), "--device", "cpu", "-q")
    got = pd.read_csv(frames_csv).set_index("key")
    want = pd.read_parquet(run_dir / "predictions.parquet").set_index("key")
    assert set(got.index) == set(want.index)
    assert np.allclose(got.loc[want.index, "p_fake"], want["p_fake"], atol=2e-6)
    sub = read_submission(out).set_index("filename")
    video_means = want.groupby("video_id")["p_fake"].mean()
    for name, label in sub["label"].items():
        assert label == pytest.approx(video_means[Path(name).stem], abs=2e-6)


@pytest.mark.skipif(len(DFDC_CLIPS) < 4, reason="../shared/data/dfdc_sample not present")
def test_real_and_generated_clips_with_a_broken_one(checkpoint, tmp_path):
    """Real 1080p DFDC clips plus generated ones; a truncated and an empty file get error rows, the rest go on."""
    folder = tmp_path / "new"
    make_clip(folder / "gen_a.mp4", (320, 180), seconds=3.0, source="testsrc2")
    make_clip(folder / "sub" / "gen_b.mov", (180, 320), seconds=2.0, source="mandelbrot", audio=True)
    (folder / "broken.mp4").write_bytes((DFDC / DFDC_CLIPS[0]).read_bytes()[:200_000])
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.txt").write_text("not a video")
    out, frames_csv = tmp_path / "submission.csv", tmp_path / "frames.csv"
    proc = run_module("train.predict", "--checkpoint", str(checkpoint), str(DFDC), str(folder), "--out", str(out),
                      "--frames-out", str(frames_csv), "--device", "cpu", "--workers", "2", check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "2 failed" in proc.stdout
    sub = read_submission(out).set_index("filename")
    assert sorted(sub.index) == sorted(DFDC_CLIPS + ["gen_a.mp4", "gen_b.mov", "broken.mp4", "empty.mp4"])
    assert sub.loc["broken.mp4", "label"] == FAILED_SCORE and sub.loc["empty.mp4", "label"] == FAILED_SCORE
    frames = pd.read_csv(frames_csv)
    errors = frames[frames["error"].notna()].set_index("filename")["error"]
    assert sorted(errors.index) == ["broken.mp4", "empty.mp4"]
    assert "0 bytes" in errors["empty.mp4"] and errors["broken.mp4"].strip()
    ok = frames[frames["error"].isna()]
    counts = ok.groupby("filename").size()
    for name in DFDC_CLIPS:  # 10.02 s at 1 fps: seconds 0..9
        assert counts[name] == 10 and list(ok[ok["filename"] == name]["index"]) == list(range(10))
    assert counts["gen_a.mp4"] == 3 and counts["gen_b.mov"] == 2
    assert ok["p_fake"].between(0, 1).all()
    means = ok.groupby("filename")["p_fake"].mean()
    assert np.allclose(sub.loc[means.index, "label"], means, atol=2e-6)


def test_sharded_test_split(checkpoint, tmp_path):
    """--shards --split test: unlabelled videos the pipeline sharded as the test split."""
    videos = tmp_path / "unlabelled"
    for i, source in enumerate(("testsrc2", "smptehdbars", "cellauto")):
        make_clip(videos / f"clip{i}.mp4", (160, 90), seconds=2.0, source=source)
    run_pipeline(videos, tmp_path, "--size", "128x72", "--layout", "unlabelled")
    out, frames_csv = tmp_path / "sub.csv", tmp_path / "frames.csv"
    run_module("train.predict", "--checkpoint", str(checkpoint), "--shards", str(tmp_path / "shards"),
               "--manifests", str(tmp_path / "manifests"), "--split", "test", "--out", str(out),
               "--frames-out", str(frames_csv), "--device", "cpu", "-q")
    sub = read_submission(out)
    assert sorted(sub["filename"]) == ["clip0.mp4", "clip1.mp4", "clip2.mp4"]
    frames = pd.read_csv(frames_csv)
    manifest = pd.read_parquet(tmp_path / "manifests" / "frames.parquet")
    assert sorted(frames["key"]) == sorted(manifest["key"]) and frames["label"].isna().all()
    proc = run_module("train.predict", "--checkpoint", str(checkpoint), "--shards", str(tmp_path / "shards"),
                      "--split", "val", check=False)
    assert proc.returncode == 1 and "no shards of split 'val'" in proc.stderr


def test_sharded_val_split_matches_explain(checkpoint, run_dir, tiny_dataset, tmp_path):
    frames_csv = tmp_path / "frames.csv"
    run_module("train.predict", "--checkpoint", str(checkpoint), "--shards", str(tiny_dataset["shards"]),
               "--split", "val", "--out", str(tmp_path / "sub.csv"), "--frames-out", str(frames_csv), "-q")
    got = pd.read_csv(frames_csv).set_index("key")
    want = pd.read_parquet(run_dir / "predictions.parquet").set_index("key")
    assert set(got.index) == set(want.index)
    assert np.allclose(got.loc[want.index, "p_fake"], want["p_fake"], atol=2e-6)
    assert (got.loc[want.index, "label"] == want["label"]).all()
    assert set(read_submission(tmp_path / "sub.csv")["filename"]) == {f"{v}.mp4" for v in want["video_id"]}


def test_cli_usage(checkpoint):
    help_text = run_module("train.predict", "--help").stdout
    assert "Exit status" in help_text and "1 when any video failed" in help_text
    proc = run_module("train.predict", "--checkpoint", str(checkpoint), check=False)
    assert proc.returncode == 2 and "either videos" in proc.stderr


def test_find_videos_and_scores(tmp_path):
    (tmp_path / "d" / "e").mkdir(parents=True)
    for name in ("d/a.mp4", "d/e/b.MOV", "d/readme.txt", "c.bin"):
        (tmp_path / name).write_bytes(b"x")
    found = find_videos([tmp_path / "d", tmp_path / "c.bin", tmp_path / "d" / "a.mp4"])
    assert [p.name for p in found] == ["a.mp4", "b.MOV", "c.bin"]
    frames = pd.DataFrame({"filename": ["x.mp4", "x.mp4", "bad.mp4", "y.mp4"], "p_fake": [0.2, 0.4, None, 1.0],
                           "error": [None, None, "boom", None]})
    sub = video_scores(frames)
    assert list(sub["filename"]) == ["x.mp4", "bad.mp4", "y.mp4"]
    assert np.allclose(sub["label"], [0.3, FAILED_SCORE, 1.0])
    assert np.allclose(video_scores(frames, clip=0.01)["label"], [0.3, FAILED_SCORE, 0.99])


def test_video_names_unique_whatever_the_file_names(tmp_path):
    from train.score.videos import video_names
    a, b, c = (tmp_path / "Deepfakes" / "000_001.mp4", tmp_path / "FaceSwap" / "000_001.mp4",
               tmp_path / "Deepfakes" / "002_003.mp4")
    assert video_names([a, c], [tmp_path]) == ["000_001.mp4", "002_003.mp4"]  # unique: bare names, as Kaggle wants
    assert video_names([a, b, c], [tmp_path]) == ["Deepfakes/000_001.mp4", "FaceSwap/000_001.mp4",
                                                  "Deepfakes/002_003.mp4"]
    assert video_names([a, b], [a, b]) == [str(a), str(b)]  # files given one by one: the paths as given


@pytest.mark.slow
def test_repeated_file_names_give_one_row_per_video(checkpoint, tmp_path):
    """FaceForensics++: the same TTT_SSS.mp4 under every method's folder; every video keeps its own row."""
    root = tmp_path / "ffpp"
    for method, source in (("Deepfakes", "testsrc2"), ("FaceSwap", "mandelbrot"), ("NeuralTextures", "rgbtestsrc")):
        make_clip(root / method / "c23" / "videos" / "000_001.mp4", (160, 90), seconds=2.0, source=source)
    make_clip(root / "Deepfakes" / "c23" / "videos" / "002_003.mp4", (160, 90), seconds=2.0)
    out, frames_csv = tmp_path / "submission.csv", tmp_path / "frames.csv"
    proc = run_module("train.predict", "--checkpoint", str(checkpoint), str(root), "--out", str(out),
                      "--frames-out", str(frames_csv), "--device", "cpu", "--workers", "0")
    assert "4 of 4 videos scored" in proc.stdout and "share a file name" in proc.stderr
    sub = read_submission(out)
    assert sorted(sub["filename"]) == ["Deepfakes/c23/videos/000_001.mp4", "Deepfakes/c23/videos/002_003.mp4",
                                       "FaceSwap/c23/videos/000_001.mp4", "NeuralTextures/c23/videos/000_001.mp4"]
    frames = pd.read_csv(frames_csv)
    assert frames.groupby("filename").size().to_dict() == {name: 2 for name in sub["filename"]}
    assert frames["key"].is_unique
    assert len(set(sub["label"].round(6))) > 1  # not one video's score copied over the others


def test_sharded_names_stay_unique(tmp_path):
    from train.score.videos import shard_samples
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "dataset.json").write_text(json.dumps({"shards": [
        {"name": "test-unlabelled-000000.tar", "split": "test", "label": "unlabelled"}]}))
    pd.DataFrame({"video_id": ["ffpp-Deepfakes-c23-000_001", "ffpp-FaceSwap-c23-000_001"],
                  "path": ["/d/Deepfakes/c23/videos/000_001.mp4", "/d/FaceSwap/c23/videos/000_001.mp4"]}
                 ).to_parquet(manifests / "videos.parquet")
    _, names = shard_samples("pipe:cat {name}", manifests, "test")
    assert sorted(names.values()) == ["ffpp-Deepfakes-c23-000_001.mp4", "ffpp-FaceSwap-c23-000_001.mp4"]
