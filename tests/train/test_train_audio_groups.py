"""Issue 27 item 4: the sound detector validated on voices it never heard (folds by speaker), its windows labelled
from a dataset's sound periods, and --skip-start (a silent first second must not be the tell)."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from click.testing import CliRunner

from helpers.commands import run_module
from helpers.sound import av_clip
from train.audio.classifier import load
from train.audio.features import AudioFeatures, windows
from train.audio.grouping import assign_folds

RATE = 16000


def test_folds_keep_a_speaker_on_one_side():
    videos = pd.DataFrame({"video_id": [f"v{i}" for i in range(12)], "split": ["train"] * 9 + ["val"] * 3,
                           "speaker": ["a", "a", "b", "b", "c", "c", None, None, "d", "d", "e", "e"],
                           "group": ["g1"] * 6 + ["g2", "g2"] + ["g3"] * 4,
                           "original": [None, "v0", None, "v2", None, "v4", None, "v6", None, "v8", None, "v10"]})
    folds = assign_folds(videos, "speaker", folds=3, seed=0)
    by_speaker = videos.assign(fold=folds, key=videos["speaker"].fillna(videos["group"])).groupby("key")["fold"]
    assert by_speaker.nunique().max() == 1 and set(folds) == {0, 1, 2}  # 6 keys (g2 for the unnamed) in 3 folds
    assert (assign_folds(videos, "speaker", folds=3, seed=0) == folds).all()  # fixed by (seed, key)
    originals = assign_folds(videos, "original", folds=6, seed=1)
    assert all(originals[i] == originals[i + 1] for i in range(0, 12, 2))  # a fake with its original
    assert list(assign_folds(videos, "split")) == [-1] * 9 + [0] * 3


def test_skip_start_leaves_out_the_first_windows():
    x = 0.1 * np.random.default_rng(0).standard_normal(RATE * 5).astype(np.float32)
    assert [s for s, _ in windows(x, RATE, AudioFeatures())] == [0.0, 1.0, 2.0, 3.0]
    assert [s for s, _ in windows(x, RATE, AudioFeatures(skip_start_s=1.0))] == [1.0, 2.0, 3.0]
    assert [s for s, _ in windows(x[: RATE * 2], RATE, AudioFeatures(skip_start_s=1.0))] == [1.0]  # what is left
    assert windows(x[:RATE], RATE, AudioFeatures(skip_start_s=1.5)) == []  # nothing after the skip


@pytest.fixture(scope="module")
def av1m(tmp_path_factory):
    """An AV-Deepfake1M tree of three speakers, each with a real video and one whose sound is fake from 2.5 s (4 s
    lavfi clips: a real sine voice, a fake of noise), sharded by the real `dfd shards`."""
    root = tmp_path_factory.mktemp("av1m")
    real = av_clip(root / "real.mp4", ["-f", "lavfi", "-i", "sine=f=300:d=4"], video_seconds=4)
    fake = av_clip(root / "fake.mp4", ["-f", "lavfi", "-i", "anoisesrc=d=4:a=0.2"], video_seconds=4)
    records = []
    for who in ("id00001", "id00002", "id00003"):
        for n, clip, kind in ((1, real, "real"), (2, fake, "audio_modified")):
            file = f"{who}/clip/{n:05d}.mp4"
            (root / "data" / "train" / file).parent.mkdir(parents=True, exist_ok=True)
            (root / "data" / "train" / file).write_bytes(clip.read_bytes())
            segments = [[2.5, 4.0]] if kind != "real" else []
            records.append({"file": file, "original": None, "split": "train", "modify_type": kind,
                            "audio_model": "", "fake_segments": segments, "visual_fake_segments": [],
                            "audio_fake_segments": segments, "video_frames": 100, "audio_frames": 64000})
    (root / "data" / "train_metadata.json").write_text(json.dumps(records))
    run_module("dfd", "shards", "--videos", root / "data", "--shards", root / "shards", "--manifests",
               root / "manifests", "--workers", "1", "--size", "64x36")
    return root


def _cli(main, *args, code: int = 0):
    """A command run in this process (CliRunner: the imports are paid once for the module)."""
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def _train(av1m, out, *args):
    from train.run import main

    _cli(main, "--input", "audio", "--shards", av1m / "shards", "--manifests", av1m / "manifests",
         "--out", out, "--dev-run", "--no-explain", *args)
    return json.loads((out / "metrics.json").read_text()), pd.read_csv(out / "val_windows.csv")


@pytest.fixture(scope="module")
def speaker_run(av1m):
    return av1m / "run", *_train(av1m, av1m / "run", "--group-by", "speaker")


def test_sound_detector_on_unseen_speakers_with_window_labels(speaker_run):
    _, metrics, val = speaker_run
    assert {k: metrics["grouping"][k] for k in ("by", "folds", "groups", "with_speaker", "videos")} == {
        "by": "speaker", "folds": 3, "groups": 3, "with_speaker": 6, "videos": 6}
    assert val["video_id"].str.split("-").str[1].nunique() == 1  # fold 0 is one speaker's videos
    assert metrics["model"] in {c["model"] for c in metrics["comparison"]} and len(metrics["comparison"]) == 6
    # 2 s windows every second: the fake's overlap its sound's fake period from 1.0 on; the real's are all real
    labels = {(r.video_id.endswith("00002"), r.start): r.label for r in val.itertuples()}
    assert labels == {(False, 0.0): 0, (False, 1.0): 0, (False, 2.0): 0, (True, 0.0): 0, (True, 1.0): 1,
                      (True, 2.0): 1}


def test_skip_start_run_keeps_it_in_the_checkpoint(av1m, tmp_path):
    metrics, val = _train(av1m, tmp_path / "run", "--group-by", "video", "--skip-start", "1")
    assert val["start"].min() >= 1.0 and metrics["spec"]["skip_start_s"] == 1.0
    assert load(tmp_path / "run").spec.skip_start_s == 1.0 and metrics["grouping"]["by"] == "video"


def test_evaluate_and_export_an_audio_run(av1m, speaker_run, tmp_path):
    """`dfd evaluate --checkpoint AUDIO_RUN` scores the sound alone; `dfd export` packages it (no pickle) with a
    threshold from its validation windows, and the package scores the same."""
    from train.evaluate import main as evaluate
    from train.export import main as export

    run = speaker_run[0]
    data = ["--shards", av1m / "shards", "--manifests", av1m / "manifests", "--split", "train"]
    proc = _cli(evaluate, "--checkpoint", run, *data, "--out", tmp_path / "eval")
    assert "sound window" in proc.output and "train: 18 windows of sound, 6 videos" in proc.output
    result = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert result["input"] == "audio" and result["window"]["windows"] == 18 and result["video"]["videos"] == 6
    windows = pd.read_parquet(tmp_path / "eval" / "sound_windows.parquet")
    assert windows["label"].sum() == 6  # the fakes' windows from 1.0 s (overlapping 2.5-4.0 s), 2 per fake video
    package = tmp_path / "pkg"
    assert "(sound detector); threshold" in _cli(export, "--checkpoint", run, "--out", package).output
    config = json.loads((package / "config.json").read_text())
    assert config["kind"] == "audio" and config["grouping"]["by"] == "speaker" and "threshold" in config
    assert (package / "README.md").read_text().count("validation") >= 1
    assert load(package).threshold == pytest.approx(config["threshold"]["value"]) and load(run).threshold == 0.5
    x = np.random.default_rng(0).standard_normal((3, len(load(run).spec.names)))
    assert np.allclose(load(package).predict(x), load(run).predict(x), atol=1e-6)
    _cli(evaluate, "--checkpoint", package, *data, "--out", tmp_path / "eval2")
    assert json.loads((tmp_path / "eval2" / "metrics.json").read_text())["window"] == result["window"]
    both = _cli(evaluate, "--checkpoint", run, "--checkpoint", package, *data, code=2)
    assert "is a sound detector" in both.output


def test_a_sound_is_called_at_its_own_threshold():
    """A verdict's sound is called fake at its model's threshold (an exported package's), not always at 0.5."""
    from pathlib import Path

    from train.score.verdict import Sound, Verdict, as_json, line

    def verdict(threshold):
        s = Sound("noisy-or", "a", 2.0, 1.0, 0.6, [0.0], [0.6], None, 0.6, threshold=threshold)
        return Verdict(Path("v.mp4"), "frames", {"value": 0.9}, "mean", [], [], [], sound=s)

    assert verdict(0.5).label == "FAKE" and verdict(0.7).label == "REAL"
    assert "threshold 0.700" in line(verdict(0.7), "v.mp4") and as_json(verdict(0.7), "v")["sound"]["threshold"] == 0.7
