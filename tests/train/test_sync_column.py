"""Issue 27 item 1: lip sync as a third column of `dfd evaluate --sync` and `dfd benchmark --sync`. A DFDC-shaped
folder made from a real clip (its own sound; the sound 0.5 s late; another clip's speech; no sound) goes through the
pipeline; each video's lip sync is measured from the file videos.parquet names, exactly as `dfd check --sync`
measures it, and its video-level metrics are those of the sync column; a file gone since is named, not measured."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest

from helpers.commands import pipeline_argv, run_module
from helpers.models import untrained_checkpoint
from helpers.sound import dfdc_clips
from pipeline.ffmpeg.locate import find_ffmpeg
from train.audio.sync_of_files import SyncSpan, sync_detector, sync_verdict
from train.score import metrics


def _ffmpeg(*args) -> None:
    subprocess.run([find_ffmpeg(), "-v", "error", "-y", *map(str, args)], check=True)


@pytest.fixture(scope="module")
def synced(tmp_path_factory):
    clips = dfdc_clips()
    if len(clips) < 3:
        pytest.skip("no real DFDC sample here")
    root = tmp_path_factory.mktemp("sync-column")
    part = root / "videos" / "dfdc_train_part_0"
    part.mkdir(parents=True)
    real = part / "real.mp4"
    _ffmpeg("-t", "4", "-i", clips[2], "-vf", "scale=640:360", "-c:v", "libx264", "-preset", "ultrafast", "-c:a",
            "aac", real)
    def remux(name, sound, *af):
        _ffmpeg("-i", real, "-i", sound, "-map", "0:v", "-map", "1:a", "-c:v", "copy", *af, "-c:a", "aac",
                "-t", "4", part / name)
    remux("late.mp4", real, "-af", "adelay=500:all=1")
    remux("other.mp4", clips[0])
    remux("gone.mp4", clips[1])
    _ffmpeg("-i", real, "-c:v", "copy", "-an", part / "mute.mp4")
    meta = {"real.mp4": {"label": "REAL", "split": "train", "original": None},
            **{n: {"label": "FAKE", "split": "train", "original": "real.mp4"}
               for n in ("late.mp4", "other.mp4", "gone.mp4", "mute.mp4")}}
    (part / "metadata.json").write_text(json.dumps(meta))
    run_module("pipeline.run", *pipeline_argv(root / "videos", root, "--size", "64x48"))
    (part / "gone.mp4").unlink()
    split = pd.read_parquet(root / "manifests" / "videos.parquet")["split"].iloc[0]
    return root, split, real


def test_evaluate_reports_lip_sync_beside_the_picture(synced, tmp_path):
    root, split, real = synced
    model = untrained_checkpoint(tmp_path / "frames.pt", input="frames")
    out = tmp_path / "eval"
    proc = run_module("train.evaluate", "--checkpoint", model, "--shards", root / "shards", "--split", split, "--sync",
                      "--out", out, "--device", "cpu", "--workers", "0")
    assert "lip sync video" in proc.stdout and "lip sync of 3 videos (2 not measured, named above)" in proc.stdout
    assert "gone: not measured: video file not found" in proc.stderr
    result = json.loads((out / "metrics.json").read_text())
    videos = pd.read_parquet(out / "video_predictions.parquet").set_index("video_id")
    notes = videos["sync_note"].dropna().to_dict()
    assert notes.keys() == {"gone", "mute"} and notes["mute"] == "no sound track"
    assert videos["sync"].notna().sum() == 3 == result["sync"]["videos"] and result["sync"]["not_measured"] == 2
    scored = videos.dropna(subset=["sync"])
    for key, value in metrics.score(scored["label"], scored["sync"]).items():
        assert result["sync"][key] == pytest.approx(value, nan_ok=True), key
    assert result["sync"]["threshold"] == 0.5 and "sigmoid" in result["sync"]["rule"]
    own = sync_verdict(real, sync_detector("cpu"), SyncSpan())  # what dfd check --sync says of the same file
    assert videos.loc["real", "sync"] == pytest.approx(own.p_fake) and videos.loc["real", "sync_offset_s"] == \
        pytest.approx(own.offset_s)
    # the sound 0.5 s late is found about 0.5 s later than the original's own lag, and called further apart
    assert abs(videos.loc["late", "sync_offset_s"] - own.offset_s - 0.5) <= 0.1
    assert videos.loc["late", "sync"] > videos.loc["real", "sync"] < videos.loc["other", "sync"]
    assert np.isclose(result["video"]["roc_auc"], metrics.roc_auc(videos["label"], videos["p_fake"]), equal_nan=True)
    assert "| lip sync video | 3 |" in (out / "metrics.md").read_text()


def test_benchmark_gets_the_sync_column(synced, tmp_path):
    root, split, _ = synced
    model = untrained_checkpoint(tmp_path / "frames.pt", input="frames")
    out = tmp_path / "bench"
    proc = run_module("train.benchmark", "--checkpoint", f"untrained={model}", "--test",
                      f"av@{split}={root / 'shards'}", "--sync", "--out", out, "--device", "cpu", "--workers", "0")
    cell = json.loads((out / "benchmark.json").read_text())["detectors"][0]["tests"]["av"]
    evaluated = json.loads((out / "cells" / "untrained" / "av" / "metrics.json").read_text())["sync"]
    assert cell["sync_videos"] == 3 and cell["sync_not_measured"] == 2
    assert cell["sync_video_auc"] == pytest.approx(evaluated["roc_auc"])
    assert cell["sync_video_balanced_accuracy"] == pytest.approx(evaluated["balanced_accuracy"])
    assert "| untrained | av | lip sync video | 3 |" in proc.stdout


def test_files_not_measured_say_why_without_a_detector(tmp_path):
    """The cheap path CI walks: a manifest's relative path read from the dataset's folder (not the working folder),
    a file without sound, a file gone; neither needs the face detector."""
    from helpers.sound import av_clip
    from train.audio.sync_of_split import split_syncs

    (tmp_path / "data" / "manifests").mkdir(parents=True)
    av_clip(tmp_path / "data" / "mute.mp4", None, 1.0)
    pd.DataFrame({"video_id": ["mute", "gone", "none"], "path": ["mute.mp4", str(tmp_path / "gone.mp4"), None]}
                 ).to_parquet(tmp_path / "data" / "manifests" / "videos.parquet")
    got = split_syncs(tmp_path / "data" / "manifests", ["mute", "gone", "none"], "cpu").set_index("video_id")
    assert got["sync"].isna().all()
    assert got.loc["mute", "sync_note"] == "no sound track"
    gone = tmp_path / "gone.mp4"
    assert got.loc["gone", "sync_note"] == f"video file not found: {gone} (lip sync needs the video file)"
    assert got.loc["none", "sync_note"] == "videos.parquet records no path: lip sync needs the video file"
