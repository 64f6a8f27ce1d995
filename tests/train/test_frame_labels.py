"""Per-frame picture labels reach the picture trainer, the faces and the video level.

The data: a tiny LAV-DF tree made here from a real DFDC clip with a face (2 s at 640x360, H.264): one fake whose
metadata.json record gives the picture a fake period [0.4, 1.2) s (modify_video true, modify_audio false). `dfd
shards` (real ffmpeg) samples 2 frames a second, labelling each from the period (real, fake, fake, real), and the
real faces stage (MTCNN on the CPU) crops their faces. The train/val stream (train.data.streams.ValStream, the
decode every trainer and evaluation shares) must give each frame and face its own label, not the video's."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from helpers.commands import run_module
from helpers.face_clips import SAMPLE, cut
from pipeline.dataset import Dataset, LABELS
from pipeline.sources.periods import overlaps
from train.data.clip_streams import ClipShards, ClipValStream
from train.data.decode import checked_sample
from train.data.streams import ValStream, read_shard
from train.report.evaluation import overall_labels
from train.score import metrics

needs_data = pytest.mark.skipif(not SAMPLE.is_dir(), reason="../shared/data not present")
FAKE = "lavdf-train-000002"
PERIOD = [0.4, 1.2]


@pytest.fixture(scope="module")
def lavdf(tmp_path_factory):
    root = tmp_path_factory.mktemp("framelabels")
    tree = root / "LAV-DF" / "train"
    tree.mkdir(parents=True)
    cut("areal", tree).rename(tree / "000002.mp4")
    (root / "LAV-DF" / "metadata.json").write_text(json.dumps([
        {"file": "train/000002.mp4", "n_fakes": 1, "fake_periods": [PERIOD], "duration": 2.0, "original": None,
         "modify_video": True, "modify_audio": False, "split": "train"}]))
    run_module("dfd", "shards", "--videos", root / "LAV-DF", "--shards", root / "shards", "--manifests",
               root / "manifests", "--workers", "1", "--fps", "2", "--clip-frames", "4")
    run_module("pipeline.faces", "--shards", root / "shards", "--manifests", root / "manifests", "--device", "cpu",
               "--workers", "1", "--face-size", "64")
    return root


def _stream_labels(root, input: str) -> dict[str, int]:
    dataset = Dataset.open(str(root / "shards"), root / "manifests", "frames" if "clips" in input else input, need=())
    clips = input in ("clips", "face-clips")
    urls = (ClipShards(dataset, input) if clips else dataset).urls("train")
    labels = {}
    for _, y, keys, _ in (ClipValStream if clips else ValStream)(urls, (32, 32), 4):
        labels.update(zip(keys, y.tolist()))
    return labels


@needs_data
def test_frames_train_on_their_own_label(lavdf):
    frames = pd.read_parquet(lavdf / "manifests" / "frames.parquet").set_index("key").sort_values("second")
    assert frames["picture_label"].tolist() == ["real", "fake", "fake", "real"]  # every 0.5 s; fake in [0.4, 1.2)
    labels = _stream_labels(lavdf, "frames")
    inside = [PERIOD[0] <= s < PERIOD[1] for s in frames["second"]]
    assert [labels[k] for k in frames.index] == [int(x) for x in inside]  # the video's label would be 1 everywhere


@needs_data
def test_faces_carry_their_frames_label(lavdf):
    frames = pd.read_parquet(lavdf / "manifests" / "frames.parquet").set_index("key")["picture_label"]
    faces = pd.read_parquet(lavdf / "manifests" / "faces.parquet")
    assert len(faces) >= 3 and set(faces["label"]) == {"fake"}
    assert faces["picture_label"].tolist() == frames.loc[faces["key"]].tolist()
    assert set(faces["picture_label"]) == {"real", "fake"}
    dataset = Dataset.open(str(lavdf / "shards"), lavdf / "manifests", "faces", need=())
    members = {s["__key__"]: json.loads(s["json"]) for url in dataset.urls("train") for s in read_shard(url)}
    assert {k: m["picture_label"] for k, m in members.items()} == dict(zip(faces["crop_key"], faces["picture_label"]))
    labels = _stream_labels(lavdf, "faces")
    assert labels == {k: LABELS[m["picture_label"]] for k, m in members.items()}


@needs_data
def test_clips_and_face_tubes_train_on_their_own_label(lavdf):
    clips = pd.read_parquet(lavdf / "manifests" / "clips.parquet")
    clips = clips[clips["status"] == "done"]
    fps = pd.read_parquet(lavdf / "manifests" / "videos.parquet")["fps"].iloc[0]
    want = {k: int(overlaps(t[0], t[-1] + 1 / fps, [PERIOD])) for k, t in zip(clips["key"], clips["times"])}
    assert set(want.values()) == {0, 1}
    assert clips["picture_label"].map(LABELS).tolist() == list(want.values())
    assert _stream_labels(lavdf, "clips") == want
    tubes = pd.read_parquet(lavdf / "manifests" / "face_clips.parquet")
    tubes = tubes[tubes["status"] == "done"]
    assert len(tubes) >= 2
    assert _stream_labels(lavdf, "face-clips") == {k: want[c] for k, c in zip(tubes["key"], tubes["clip_key"])}


@needs_data
def test_older_samples_fall_back_to_the_video_label(lavdf):
    dataset = Dataset.open(str(lavdf / "shards"), lavdf / "manifests", "frames", need=())
    samples = [s for url in dataset.urls("train") for s in read_shard(url)]
    assert sorted(checked_sample(s)[1] for s in samples) == [0, 0, 1, 1]
    for s in samples:  # a shard written before per-frame labels: no picture_label in the json member
        meta = json.loads(s["json"])
        meta.pop("picture_label")
        assert checked_sample({**s, "json": json.dumps(meta).encode()})[1] == LABELS["fake"]


@needs_data
def test_sound_and_fused_keep_the_overall_label(lavdf):
    videos = pd.DataFrame({"video_id": [FAKE, "not-in-the-manifest"], "label": [0, 0]})  # picture labels
    assert overall_labels(lavdf / "manifests", videos).tolist() == [1, 0]


def test_a_video_with_one_fake_frame_is_fake():
    items = pd.DataFrame({"video_id": ["a"] * 4 + ["b"] * 3, "label": [0, 0, 1, 0, 0, 0, 0],
                          "second": [0.0, 0.5, 1.0, 1.5, 0.0, 0.5, 1.0], "p_fake": np.linspace(0.1, 0.7, 7)})
    for rule in ("mean", "median", "frame_max"):
        videos = metrics.video_scores(items, rule)
        assert videos["label"].tolist() == [1, 0], rule
