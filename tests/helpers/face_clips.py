"""A small dataset with face tubes for scoring face-clip models: real DFDC clips (one real, cut twice, and two
fakes) cut to 2 s at 640x360 and a lavfi clip without a face, sharded with clips of 4 frames and run through the
faces stage (64 px crops); val holds a real, a fake and the faceless video (a DFDC labels.csv split file)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

from helpers.commands import pipeline_argv, run_module
from helpers.paths import SHARED_DATA
from pipeline.ffmpeg.locate import find_ffmpeg

SAMPLE = SHARED_DATA / "dfdc_sample" / "dfdc_train_part_0"
T = 4
# name -> (source file in SAMPLE or None for lavfi, start second, label)
VIDEOS = {"areal": ("lynaeydofd.mp4", 0, "REAL"), "breal": ("lynaeydofd.mp4", 4, "REAL"),
          "cfake": ("abqwwspghj.mp4", 0, "FAKE"), "dfake": ("widuwuoiur.mp4", 0, "FAKE"),
          "enoface": (None, 0, "REAL")}
VAL = ("breal", "dfake", "enoface")


def cut(name: str, folder: Path) -> Path:
    """One of VIDEOS as a 2 s H.264 file at 480x270 (the lavfi one: testsrc2, no face)."""
    source, start, _ = VIDEOS[name]
    ff = [find_ffmpeg(), "-v", "error", "-y"]
    into = ["-t", "2", "-vf", "scale=640:360", "-an", "-c:v", "libx264", "-preset", "ultrafast",
            str(folder / f"{name}.mp4")]
    src = ["-ss", str(start), "-i", str(SAMPLE / source)] if source else ["-f", "lavfi", "-i",
                                                                           "testsrc2=size=640x360:rate=30"]
    subprocess.run([*ff, *src, *into], check=True)
    return folder / f"{name}.mp4"


def make_face_clip_dataset(root: Path) -> dict:
    """VIDEOS under ROOT/videos, sharded with clips of T frames (val: VAL, by a split file) and faced: shards, manifests."""
    folder = root / "videos" / "dfdc_train_part_0"
    folder.mkdir(parents=True)
    for name in VIDEOS:
        cut(name, folder)
    meta = {f"{v}.mp4": {"label": label, "split": "train", "original": None} for v, (_, _, label) in VIDEOS.items()}
    (folder / "metadata.json").write_text(json.dumps(meta))
    labels = root / "val.csv"
    labels.write_text("filename,label\n" + "".join(f"{v}.mp4,{int(VIDEOS[v][2] == 'FAKE')}\n" for v in VAL))
    run_module("pipeline.run", *pipeline_argv(root / "videos", root, "--clip-frames", str(T), "--val-fraction", "0",
                                              "--split-file", f"val={labels}"))
    run_module("pipeline.faces", "--shards", root / "shards", "--manifests", root / "manifests", "--device", "cpu",
               "--workers", "1", "--face-size", "64")
    return {"shards": root / "shards", "manifests": root / "manifests", "root": root, "videos": root / "videos"}


def train_face_clips(data: dict, out: Path) -> Path:
    """A dev run of `dfd train --input face-clips --recipe demo_clips` (temporal:test_resnet at 32x32)."""
    run_module("train.run", "--shards", data["shards"], "--manifests", data["manifests"], "--out", out, "--recipe",
               "demo_clips", "--dev-run", "--weights", "none", "--image-size", "32", "--batch-size", "4",
               "--workers", "0", "--device", "cpu", "--no-explain", "--input", "face-clips", "--arch",
               "temporal:test_resnet")
    return out
