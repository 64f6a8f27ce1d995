"""Issue 26 item 2: face tubes. The faces stage on a dataset with clips cuts each clip's faces, one steady box per
tube taken from the clip's sampled frame, into face-clip shards and face_clips.parquet. One real DFDC clip cut to
2 s at 480x270 (a face) and a lavfi clip (no face), clips of 4 frames: MTCNN runs on 4 sampled frames only."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers.commands import pipeline_argv, run_module
from helpers.paths import SHARED_DATA
from pipeline.dataset import Dataset, DatasetError
from pipeline.ffmpeg.locate import find_ffmpeg
from pipeline.spec import FaceCrop
from pipeline.stages.faces import FaceDetector
from pipeline.stages.faces.crop import crop_face
from pipeline.stages.faces.track import iou
from pipeline.stages.faces.tubes import sampled_frame, scaled_box

CLIP = SHARED_DATA / "dfdc_sample/dfdc_train_part_0/lynaeydofd.mp4"
T = 4
needs_data = pytest.mark.skipif(not CLIP.is_file(), reason="../shared/data not present")


def _videos(root: Path) -> Path:
    folder = root / "dfdc_train_part_0"
    folder.mkdir(parents=True)
    ff = [find_ffmpeg(), "-v", "error", "-y"]
    subprocess.run([*ff, "-i", str(CLIP), "-t", "2", "-vf", "scale=480:270", "-an", "-c:v", "libx264", "-preset",
                    "ultrafast", str(folder / "aface.mp4")], check=True)
    subprocess.run([*ff, "-f", "lavfi", "-i", "testsrc2=size=480x270:rate=30", "-t", "2", "-c:v", "libx264",
                    "-preset", "ultrafast", str(folder / "bnoface.mp4")], check=True)
    meta = {f"{v}.mp4": {"label": "REAL", "split": "train", "original": None} for v in ("aface", "bnoface")}
    (folder / "metadata.json").write_text(json.dumps(meta))
    return root


def _faces(out: Path) -> str:
    return run_module("pipeline.faces", "--shards", out / "shards", "--manifests", out / "manifests", "--device",
                      "cpu", "--workers", "1").stderr


@pytest.fixture(scope="module")
def tubes(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tubes")
    run_module("pipeline.run", *pipeline_argv(_videos(out / "videos"), out, "--clip-frames", str(T),
                                              "--val-fraction", "0"))
    _faces(out)
    return out


def _table(out: Path) -> list[dict]:
    return pq.read_table(out / "manifests" / "face_clips.parquet").to_pylist()


@needs_data
def test_tube_is_steady_and_follows_the_sampled_frames_face(tubes):
    dataset = Dataset.open(tubes / "shards", tubes / "manifests", need=())
    done = dataset.face_clips()
    assert len(done) == 2 and set(done["video_id"]) == {"aface"}  # one face, one tube per clip
    faces = {(r["key"], r["face"]): r for r in pq.read_table(tubes / "manifests" / "faces.parquet").to_pylist()}
    crops = dataset.face_clip_frames(done["key"])
    clips = dataset.clip_frames(done["clip_key"])
    detector = FaceDetector(FaceCrop(min_size=20), "cpu")
    for _, tube in done.iterrows():
        face = faces[(tube["frame_key"], tube["face"])]  # the sampled frame's face, same track
        box = (tube["x0"], tube["y0"], tube["x1"], tube["y1"])
        assert box == (face["x0"], face["y0"], face["x1"], face["y1"]) and tube["track"] == face["track"]
        frames, tube_crops = clips[tube["clip_key"]], crops[tube["key"]]
        assert tube_crops.shape == (T, 320, 320, 3) and len(tube["times"]) == T
        for frame, got in zip(frames, tube_crops):  # every frame cut with the one box: no jitter
            want = crop_face(frame, box, FaceCrop().margin, 320).astype(int)
            assert np.abs(got.astype(int) - want).mean() < 3
        assert np.abs(tube_crops[0].astype(int) - tube_crops[-1].astype(int)).mean() > 0.1  # the frames differ
        found = detector.detect([tube_crops[-1]])[0]  # the face is still in the tube's last crop, near its middle
        assert found and max(iou(f.box, (80, 80, 240, 240)) for f in found) > 0.3


@needs_data
def test_clip_without_a_face_gives_no_tube_and_says_why(tubes):
    rows = [r for r in _table(tubes) if r["video_id"] == "bnoface"]
    assert [r["clip"] for r in rows] == [0, 1]
    for r in rows:
        assert r["status"] == "no_face" and r["key"] is None and r["shard"] is None
        assert r["warning"] == f"no face in frame {r['frame_key']}"
    section = json.loads((tubes / "manifests" / "dataset.json").read_text())["face_clips"]
    assert section["tubes"] == 2 and section["status"] == {"done": 2, "no_face": 2}
    assert [s["name"] for s in section["shards"]] == ["face_clips/train-real-000000.tar"]
    assert (tubes / "shards" / section["shards"][0]["name"]).stat().st_size == section["shards"][0]["size"]


@needs_data
def test_resume_keeps_and_redoes_face_clips(tubes, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(tubes, out)
    before = _table(out)
    assert "0 frames" in _faces(out) and _table(out) == before  # finished: nothing done again
    fragment = out / "manifests" / "faces_parts" / "train-real-000000.face_clips.parquet"
    fragment.unlink()  # a shard killed before its face clips were written is not finished
    log = _faces(out)
    assert "1 shards done" in log and "0 frames detected (4 from cache)" in log  # detections reused
    assert fragment.is_file() and _table(out) == before
    (out / "shards" / "face_clips" / "train-real-000000.tar").unlink()  # a lost face-clip shard is made again
    assert "1 shards done" in _faces(out) and _table(out) == before
    run_module("pipeline.run", *pipeline_argv(out / "videos", out, "--clip-frames", str(T), "--val-fraction", "0"))
    assert json.loads((out / "manifests" / "dataset.json").read_text())["face_clips"]["tubes"] == 2  # kept


def test_sampled_frame_and_scaled_box():
    assert sampled_frame([0.0, 1.001, 2.002], 1.001) == 1
    assert sampled_frame([0.0, 1.0], 0.5) is None and sampled_frame([], 0.0) is None
    assert sampled_frame([0.0, 1.0], None) is None
    frame, clip = {"width": 640, "height": 360}, {"width": 320, "height": 180}
    assert scaled_box({"x0": 100, "y0": 50, "x1": 200, "y1": 150}, frame, clip) == (50, 25, 100, 75)


@needs_data
def test_face_clips_stream_as_clips_for_training(tubes, tmp_path):
    """`dfd train --input face-clips` reads the tubes as it reads clips: batches (N, T, 3, H, W) of face crops."""
    from train.data.clip_streams import ClipShards, ClipValStream

    dataset = Dataset.open(tubes / "shards", tubes / "manifests", need=())
    shards = ClipShards(dataset, "face-clips")
    assert shards.n_clips("train") == 2 and shards.frames == T
    assert [u.rsplit("/", 2)[-2:] for u in shards.urls("train")] == [["face_clips", "train-real-000000.tar"]]
    (frames, labels, keys, videos), = ClipValStream(shards.urls("train"), (64, 64), 8)
    assert frames.shape == (2, T, 3, 64, 64) and labels.tolist() == [0, 0] and videos == ["aface", "aface"]
    assert sorted(keys) == sorted(dataset.face_clips()["key"])
    shutil.copytree(tubes / "manifests", tmp_path / "manifests")
    data = json.loads((tmp_path / "manifests" / "dataset.json").read_text())
    del data["face_clips"]  # clips, but the faces stage not run
    (tmp_path / "manifests" / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="no face clips: run `dfd faces`"):
        ClipShards(Dataset.open(tubes / "shards", tmp_path / "manifests", need=()), "face-clips")


@needs_data
def test_verify_checks_face_clip_shards(tubes, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(tubes, out, ignore=shutil.ignore_patterns("videos"))
    argv = ("--shards", out / "shards", "--manifests", out / "manifests")
    assert run_module("pipeline.verify", *argv).returncode == 0
    shard = out / "shards" / "face_clips" / "train-real-000000.tar"
    data = bytearray(shard.read_bytes())
    data[600] ^= 0xFF  # a byte of the first crop changed after sealing
    shard.write_bytes(bytes(data))
    proc = run_module("pipeline.verify", *argv, check=False)
    assert proc.returncode == 1
    assert "face_clips/train-real-000000.tar: sha256 differs from the one dataset.json's face_clips section" in (
        proc.stdout + proc.stderr)


@needs_data
def test_verify_deep_decodes_every_tube_crop(tubes, tmp_path):
    """--deep reads each tube's crops where face_clips.parquet puts them: a crop whose JPEG start was overwritten
    (shard checksums not checked, so only the deep check can see it) is named by shard, tube key and frame."""
    out = tmp_path / "copy"
    shutil.copytree(tubes, out, ignore=shutil.ignore_patterns("videos"))
    argv = ("--shards", out / "shards", "--manifests", out / "manifests", "--deep", "--no-check-shards")
    assert run_module("pipeline.verify", *argv).returncode == 0
    shard = out / "shards" / "face_clips" / "train-real-000000.tar"
    data = bytearray(shard.read_bytes())
    assert data[512:514] == b"\xff\xd8"  # the first member's JPEG starts after its 512-byte tar header
    data[512:514] = b"\x00\x00"
    shard.write_bytes(bytes(data))
    proc = run_module("pipeline.verify", *argv, check=False)
    first = next(r for r in _table(tubes) if r["status"] == "done")
    assert proc.returncode == 1
    assert f"face_clips/train-real-000000.tar {first['key']} frame 0: JPEG does not decode" in proc.stdout + proc.stderr
