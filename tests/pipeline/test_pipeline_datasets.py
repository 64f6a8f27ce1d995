"""Dataset layouts: the real FaceForensics++ and DFDC sample clips in ../shared/data (read-only), a labels.csv
folder and an unlabelled folder, each through `python -m pipeline.run` into tmp folders."""
from __future__ import annotations

import collections
import json
import math

import pytest

from helpers.clips import make_clip
from helpers.commands import pipeline_argv, run_module
from helpers.manifests import check_manifest_agrees, read_manifest
from helpers.paths import SHARED_DATA

FFPP = SHARED_DATA / "ffpp_sample"
DFDC = SHARED_DATA / "dfdc_sample"
need_ffpp = pytest.mark.skipif(not FFPP.is_dir(), reason="../shared/data/ffpp_sample is not here")
need_dfdc = pytest.mark.skipif(not DFDC.is_dir(), reason="../shared/data/dfdc_sample is not here")


@pytest.fixture(scope="module")
def ffpp(tmp_path_factory):
    out = tmp_path_factory.mktemp("ffpp")
    proc = run_module("pipeline.run", *pipeline_argv(FFPP, out, "--size", "320x180"))
    return out, proc


@pytest.fixture(scope="module")
def dfdc(tmp_path_factory):
    out = tmp_path_factory.mktemp("dfdc")
    proc = run_module("pipeline.run", *pipeline_argv(DFDC, out, "--size", "320x180"))
    return out, proc


@need_ffpp
def test_ffpp_ids_labels_originals_groups(ffpp):
    out, proc = ffpp
    assert "layout ffpp" in proc.stderr
    videos = {v["video_id"]: v for v in read_manifest(out / "manifests")["videos"]}
    assert set(videos) == {"ffpp-youtube-c23-004", "ffpp-youtube-c23-519", "ffpp-NeuralTextures-c23-004_982",
                           "ffpp-Deepfakes-c23-519_515"}
    assert all(v["status"] == "done" for v in videos.values())
    real4, real519 = videos["ffpp-youtube-c23-004"], videos["ffpp-youtube-c23-519"]
    nt, df = videos["ffpp-NeuralTextures-c23-004_982"], videos["ffpp-Deepfakes-c23-519_515"]
    assert (real4["label"], real519["label"], nt["label"], df["label"]) == ("real", "real", "fake", "fake")
    assert real4["original"] is None and real519["original"] is None
    # 004_982 is target 004 with source 982's face: it goes with 004 (not with 982)
    assert nt["original"] == "ffpp-youtube-c23-004" and df["original"] == "ffpp-youtube-c23-519"
    assert nt["group"] == real4["group"] and df["group"] == real519["group"] and real4["group"] != real519["group"]
    assert nt["split"] == real4["split"] and df["split"] == real519["split"]
    assert nt["source"] == "ffpp/NeuralTextures" and df["source"] == "ffpp/Deepfakes"
    assert real4["source"] == "ffpp/youtube"
    assert all(v["path"].startswith(str(FFPP)) for v in videos.values())


@need_ffpp
def test_ffpp_counts_and_sizes(ffpp):
    out, _ = ffpp
    check_manifest_agrees(out / "shards", out / "manifests")
    m = read_manifest(out / "manifests")
    for v in m["videos"]:
        # 25 fps, 12 to 30 s: one frame per started second
        assert v["fps"] == pytest.approx(25) and 12 <= v["duration"] <= 31
        last_frame_starts = v["duration"] - 1 / v["fps"]
        assert v["n_frames"] == math.floor(last_frame_starts + 1e-6) + 1, v
        box = (320, 180)
        scale = min(box[0] / v["width"], box[1] / v["height"], 1)
        assert abs(v["frame_width"] - v["width"] * scale) <= 2 and abs(v["frame_height"] - v["height"] * scale) <= 2
        assert v["frame_width"] % 2 == 0 and v["frame_height"] % 2 == 0
    n_frames = {v["video_id"]: v["n_frames"] for v in m["videos"]}
    assert n_frames == {"ffpp-youtube-c23-004": 13, "ffpp-NeuralTextures-c23-004_982": 13,
                        "ffpp-youtube-c23-519": 31, "ffpp-Deepfakes-c23-519_515": 31}
    d = m["dataset"]
    assert sum(n for s in d["videos"].values() for n in s.values()) == 4
    assert d["failed"] == 0 and d["config"]["layout"] == "ffpp"


@need_dfdc
def test_dfdc_sample(dfdc):
    out, proc = dfdc
    assert "layout dfdc" in proc.stderr
    check_manifest_agrees(out / "shards", out / "manifests")
    m = read_manifest(out / "manifests")
    meta = json.loads((DFDC / "dfdc_train_part_0" / "metadata.json").read_text())
    videos = {v["video_id"]: v for v in m["videos"]}
    assert set(videos) == {name[:-4] for name in meta} and len(videos) == 4
    for name, entry in meta.items():
        v = videos[name[:-4]]
        assert v["status"] == "done", v["error"]
        assert v["label"] == entry["label"].lower()
        assert v["original"] == (entry["original"][:-4] if entry["original"] else None)
        assert v["group"] == (v["original"] or v["video_id"])
        assert v["source"] == "dfdc"
        assert (v["width"], v["height"]) == (1920, 1080) and v["fps"] == pytest.approx(29.97, abs=0.01)
        assert v["duration"] == pytest.approx(10.02, abs=0.05)
        assert v["n_frames"] == 10 and (v["frame_width"], v["frame_height"]) == (320, 180)
    per_video = collections.Counter(f["video_id"] for f in m["frames"])
    assert set(per_video.values()) == {10}
    seconds = sorted(f["second"] for f in m["frames"] if f["video_id"] == "lynaeydofd")
    # non-reference frames skipped (the default): each second keeps frame 30k of the 29.97 fps clip, or where that
    # is a B-frame nothing refers to, the next one (33 ms later), never two
    late = [round((s - k * 1.001) * 29.97, 3) for k, s in enumerate(seconds)]
    assert set(late) <= {0, 1} and 0 in late and 1 in late, late
    assert m["dataset"]["config"]["skip_frames"] == "noref"
    assert m["dataset"]["frames"]["train"]["real"] == 10  # lynaeydofd is its own group; 0.3 of groups in val
    assert "summary: 4 done, 0 failed, 0 skipped" in proc.stderr


def test_labels_csv_layout(tmp_path):
    videos = tmp_path / "videos"
    make_clip(videos / "a" / "one.mp4", size=(96, 64), seconds=1.0)
    make_clip(videos / "a" / "one_fake.mp4", size=(96, 64), seconds=1.0, box=True)
    make_clip(videos / "b" / "two.mp4", size=(96, 64), seconds=2.0, source="mandelbrot")
    (videos / "labels.csv").write_text("path,label,original\na/one.mp4,REAL,\na/one_fake.mp4,fake,a/one.mp4\n"
                                       "b/two.mp4,0,\n")
    out = tmp_path / "out"
    proc = run_module("pipeline.run", *pipeline_argv(videos, out))
    assert "layout csv" in proc.stderr
    check_manifest_agrees(out / "shards", out / "manifests")
    v = {r["video_id"]: r for r in read_manifest(out / "manifests")["videos"]}
    assert set(v) == {"a-one", "a-one_fake", "b-two"}
    assert (v["a-one"]["label"], v["a-one_fake"]["label"], v["b-two"]["label"]) == ("real", "fake", "real")
    assert v["a-one_fake"]["original"] == "a-one" and v["a-one_fake"]["group"] == "a-one"
    assert v["a-one_fake"]["split"] == v["a-one"]["split"]
    assert {r["source"] for r in v.values()} == {"csv"}
    assert v["b-two"]["n_frames"] == 2


def test_unlabelled_folder(tmp_path):
    videos = tmp_path / "test_videos"
    make_clip(videos / "aaa.mp4", size=(96, 64), seconds=1.0)
    make_clip(videos / "sub" / "bbb.mp4", size=(64, 96), seconds=2.0)
    out = tmp_path / "out"
    proc = run_module("pipeline.run", *pipeline_argv(videos, out))
    assert "layout unlabelled" in proc.stderr
    check_manifest_agrees(out / "shards", out / "manifests")
    m = read_manifest(out / "manifests")
    assert {(v["video_id"], v["split"], v["label"], v["status"]) for v in m["videos"]} == {
        ("aaa", "test", None, "done"), ("sub-bbb", "test", None, "done")}
    assert {f["shard"] for f in m["frames"]} == {"test-unlabelled-000000.tar"}
    assert m["dataset"]["videos"] == {"test": {"unlabelled": 2}}
    assert m["dataset"]["frames"] == {"test": {"unlabelled": 3}}
    assert m["dataset"]["class_weights"] == {"real": 0.0, "fake": 0.0}
