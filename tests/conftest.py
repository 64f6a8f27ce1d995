"""Shared fixtures: real H.264 clips made with ffmpeg's lavfi sources, and tiny real shards made by the pipeline."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from pipeline.ffmpeg import find_ffmpeg  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SOURCES = ["testsrc2", "mandelbrot", "smptehdbars", "rgbtestsrc", "testsrc", "yuvtestsrc", "pal100bars", "cellauto"]


def make_clip(path: Path, size=(160, 90), seconds: float = 2.0, rate="25", audio: bool = False,
              source: str = "testsrc2", box: bool = False, extra: list[str] | None = None) -> Path:
    """An H.264 clip from a lavfi source; `box` draws a filled rectangle (a crude 'manipulation')."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    src = f"{source}=size={w}x{h}:rate={rate}" if source != "cellauto" else f"cellauto=size={w}x{h}:rate={rate}"
    vf = ["format=yuv420p"]
    if box:
        vf.insert(0, f"drawbox=x={w // 4}:y={h // 4}:w={w // 3}:h={h // 3}:color=red@0.8:t=fill")
    cmd = [find_ffmpeg(), "-y", "-v", "error", "-f", "lavfi", "-i", src]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440"]
    cmd += ["-t", str(seconds), "-vf", ",".join(vf), "-c:v", "libx264", "-preset", "ultrafast"]
    cmd += ["-c:a", "aac", "-shortest"] if audio else ["-an"]
    cmd += (extra or []) + [str(path)]
    subprocess.run(cmd, check=True)
    return path


def make_dfdc_tree(root: Path, n_real: int = 8, fakes_per_real: int = 2, seconds: float = 2.0,
                   size=(160, 90), part: str = "dfdc_train_part_0") -> Path:
    """A DFDC-shaped part folder: reals from varied sources, fakes of each with a box drawn in."""
    folder = root / part
    meta = {}
    for i in range(n_real):
        real = f"real{part[-1]}{i:03d}"
        make_clip(folder / f"{real}.mp4", size, seconds, source=SOURCES[i % len(SOURCES)])
        meta[f"{real}.mp4"] = {"label": "REAL", "split": "train", "original": None}
        for j in range(fakes_per_real):
            fake = f"fake{part[-1]}{i:03d}x{j}"
            make_clip(folder / f"{fake}.mp4", size, seconds, source=SOURCES[i % len(SOURCES)], box=True)
            meta[f"{fake}.mp4"] = {"label": "FAKE", "split": "train", "original": f"{real}.mp4"}
    (folder / "metadata.json").write_text(json.dumps(meta))
    return root


def run_pipeline(videos: Path, out: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["python", "-m", "pipeline.run", "--videos", str(videos), "--shards", str(out / "shards"),
           "--manifests", str(out / "manifests"), "--workers", "2", *args]
    import sys
    cmd[0] = sys.executable
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if check and proc.returncode != 0:
        raise AssertionError(f"pipeline failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


SLOW_FIXTURES = {"tiny_run", "dev_run"}  # a test that needs a trained run is an end-to-end test


def pytest_collection_modifyitems(config, items):
    """`slow` for every test that uses a trained run (`make test-fast` skips them)."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return find_ffmpeg()


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> dict:
    """8 reals + 16 fakes, 3 s each at 160x90, through the real pipeline at 128x72: shards and manifests."""
    root = tmp_path_factory.mktemp("tiny")
    videos = make_dfdc_tree(root / "videos", n_real=8, fakes_per_real=2, seconds=3.0)
    run_pipeline(videos, root, "--size", "128x72", "--shard-size", "40KB")
    return {"videos": videos, "shards": root / "shards", "manifests": root / "manifests", "root": root}


# tests/conftest.py draws each fake's "manipulation" at x = w/4 .. w/4 + w/3, y = h/4 .. h/4 + h/3
TINY_BOX = [0.25, 0.25, 0.25 + 1 / 3, 0.25 + 1 / 3]


def write_tiny_boxes(tiny_dataset: dict, path: Path) -> Path:
    """boxes.json in the demo generator's format (file name -> boxes per second) for the fixture's fakes."""
    import pandas as pd

    videos = pd.read_parquet(tiny_dataset["manifests"] / "videos.parquet")
    fakes = videos[videos["label"] == "fake"]
    boxes = {Path(p).name: [TINY_BOX] * 3 for p in fakes["path"]}
    path.write_text(json.dumps(boxes))
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_dataset) -> Path:
    """A --dev-run of the real trainer at 64 px with --boxes (train.run calls run_explain), once a session; used by
    tests/test_explain.py and tests/test_predict.py."""
    run = tmp_path_factory.mktemp("tiny-run") / "run"
    run.parent.mkdir(exist_ok=True)
    boxes = write_tiny_boxes(tiny_dataset, run.parent / "boxes.json")
    run_module("train.run", "--shards", tiny_dataset["shards"], "--manifests", tiny_dataset["manifests"],
               "--out", run, "--dev-run", "--weights", "none", "--image-size", "64", "--batch-size", "8",
               "--workers", "0", "--device", "cpu", "--boxes", boxes)
    return run


@pytest.fixture(scope="session")
def tiny_shards(tiny_dataset) -> Path:
    """The shards folder of `tiny_dataset` (its manifests are in the sibling `manifests` folder)."""
    return tiny_dataset["shards"]


# ---------------------------------------------------------------------------------------------------------------
# Helpers for the pipeline's own tests (tests/test_pipeline_*.py). They only read what the pipeline wrote.

REPO = Path(__file__).resolve().parents[1]


def imageio_ffmpeg_exe() -> str:
    """The static ffmpeg binary shipped in the imageio-ffmpeg wheel (a newer ffmpeg than Debian's)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_module(module: str, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` from the repository root; `env` entries are added to (None: removed from) os.environ."""
    import sys

    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def pipeline_argv(videos: Path, out: Path, *args: str) -> list[str]:
    """The arguments `run_pipeline` passes to pipeline.run (outputs in OUT/shards and OUT/manifests)."""
    return ["--videos", str(videos), "--shards", str(out / "shards"), "--manifests", str(out / "manifests"),
            "--workers", "2", *args]


def logging_ffmpeg(folder: Path, real: str | None = None, delay: float = 0.0) -> tuple[Path, Path]:
    """An executable that logs each call's arguments (one line) and then runs the real ffmpeg: (wrapper, log)."""
    folder.mkdir(parents=True, exist_ok=True)
    log, wrapper = folder / "ffmpeg-calls.log", folder / "ffmpeg-logged"
    sleep = f"sleep {delay}\n" if delay else ""
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n{sleep}exec "{real or find_ffmpeg()}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, log


def decode_calls(log: Path) -> list[str]:
    """The logged ffmpeg calls that opened an input (`-i`), i.e. decodes, not `-version`."""
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if " -i " in f" {line} "]


def read_manifest(manifests: Path) -> dict:
    """videos.parquet and frames.parquet as lists of dicts, and dataset.json."""
    import pyarrow.parquet as pq

    manifests = Path(manifests)
    return {"videos": pq.read_table(manifests / "videos.parquet").to_pylist(),
            "frames": pq.read_table(manifests / "frames.parquet").to_pylist(),
            "dataset": json.loads((manifests / "dataset.json").read_text())}


def check_manifest_agrees(shards: Path, manifests: Path) -> dict:
    """Assert that the manifest and the shards describe each other exactly (docs/manifest.md).

    Returns {key: (sha1 of the JPEG, the json member)} for comparing datasets made in different ways.
    """
    import collections
    import hashlib
    import io
    import tarfile

    from PIL import Image

    shards, m = Path(shards), read_manifest(manifests)
    videos, frames, dataset = m["videos"], m["frames"], m["dataset"]
    by_video = {v["video_id"]: v for v in videos}
    assert len(by_video) == len(videos), "a video id appears twice in videos.parquet"
    keys = [f["key"] for f in frames]
    assert len(set(keys)) == len(keys), "a frame key appears twice in frames.parquet"

    # every listed shard is on disk and nothing else is
    listed = {s["name"] for s in dataset["shards"]}
    on_disk = {p.name for p in shards.glob("*.tar")}
    assert listed == on_disk == {f["shard"] for f in frames}
    assert not list(shards.glob(".*.tmp")), "temporary shard files left behind"

    out = {}
    members_seen = collections.defaultdict(set)
    for shard in sorted(listed):
        with tarfile.open(shards / shard) as tar:
            members = tar.getmembers()
        members_seen[shard] = {mem.name for mem in members}
        by_offset = {mem.offset: (i, mem) for i, mem in enumerate(members)}
        with open(shards / shard, "rb") as fh:
            for f in (f for f in frames if f["shard"] == shard):
                i, mem = by_offset[f["offset"]]
                assert mem.name == f"{f['key']}.jpg" and mem.size == f["bytes"], (shard, f)
                nxt = members[i + 1]
                assert nxt.name == f"{f['key']}.json", (shard, f)
                fh.seek(mem.offset_data)
                jpeg = fh.read(mem.size)
                fh.seek(nxt.offset_data)
                sample = json.loads(fh.read(nxt.size))
                with Image.open(io.BytesIO(jpeg)) as im:
                    im.load()
                    assert im.format == "JPEG" and im.size == (f["width"], f["height"]), (f, im.size)
                video = by_video[f["video_id"]]
                expect = {"key": f["key"], "video_id": f["video_id"], "index": f["index"], "label": video["label"],
                          "split": video["split"], "source": video["source"], "original": video["original"],
                          "group": video["group"], "width": f["width"], "height": f["height"]}
                assert {k: sample.get(k) for k in expect} == expect, (sample, expect)
                assert abs(sample["second"] - f["second"]) < 1e-6
                out[f["key"]] = (hashlib.sha1(jpeg).hexdigest(), sample)
    expected_members = collections.defaultdict(set)
    for f in frames:
        expected_members[f["shard"]] |= {f"{f['key']}.jpg", f"{f['key']}.json"}
    assert dict(members_seen) == dict(expected_members), "tar members and frames.parquet differ"

    # frames agree with their videos
    per_video = collections.Counter(f["video_id"] for f in frames)
    for f in frames:
        v = by_video[f["video_id"]]
        assert v["status"] == "done"
        assert (f["split"], f["label"]) == (v["split"], v["label"])
        assert f["key"] == f"{f['video_id']}_{f['index']:04d}" and "." not in f["key"]
        assert (f["width"], f["height"]) == (v["frame_width"], v["frame_height"])
        assert f["shard"].startswith(f"{v['split']}-{v['label'] or 'unlabelled'}-")
    for v in videos:
        if v["status"] == "done":
            assert v["n_frames"] == per_video[v["video_id"]] > 0, v
            assert v["error"] is None
        else:
            assert v["status"] == "failed" and v["error"] and "\n" not in v["error"], v
            assert per_video[v["video_id"]] == 0

    # dataset.json counts
    n_frames = collections.Counter((f["split"], f["label"] or "unlabelled") for f in frames)
    n_videos = collections.Counter((v["split"], v["label"] or "unlabelled") for v in videos if v["status"] == "done")
    flat = lambda nested: {(s, lab): n for s, d in nested.items() for lab, n in d.items()}  # noqa: E731
    assert flat(dataset["frames"]) == dict(n_frames)
    assert flat(dataset["videos"]) == dict(n_videos)
    assert dataset["failed"] == sum(v["status"] != "done" for v in videos)
    for s in dataset["shards"]:
        rows = [f for f in frames if f["shard"] == s["name"]]
        assert s["frames"] == len(rows) and s["videos"] == len({f["video_id"] for f in rows})
        assert s["bytes"] == sum(f["bytes"] for f in rows)
    real, fake = n_frames[("train", "real")], n_frames[("train", "fake")]
    if real and fake:
        assert dataset["class_weights"]["real"] == pytest.approx((real + fake) / (2 * real))
        assert dataset["class_weights"]["fake"] == pytest.approx((real + fake) / (2 * fake))
    return out


def picture(size: tuple[int, int], seed: int = 0):
    """A frame-like test image for the augmentation tests: smooth colour gradients, edges, texture and a few flat
    grey areas (S = 0); uint8 HxWx3."""
    import cv2
    import numpy as np

    h, w = size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    image = np.stack([255 * x / w, 255 * y / h, 128 + 100 * np.sin(x / 9 + y / 13)], axis=-1)
    image += rng.normal(0, 6, image.shape)
    image = cv2.GaussianBlur(image, (0, 0), 1.2)
    cv2.rectangle(image, (w // 5, h // 4), (w // 2, h // 2), (40, 200, 90), -1)
    cv2.circle(image, (2 * w // 3, h // 2), min(h, w) // 6, (128, 128, 128), -1)  # grey: hue/sat edge cases
    return np.clip(image, 0, 255).astype(np.uint8)
