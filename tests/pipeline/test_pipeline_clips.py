"""Issue 26 item 1: clips of T consecutive frames at the video's own rate, kept in the frames' decode pass
(`pipeline.run --clip-frames T`): truly consecutive frames, the frames and the sound unchanged, bad input as a clear
row (short, gap, corrupt), verify, --part + merge, resplit and resume after kill -9 keeping them consistent."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers.clips import make_clip, make_dfdc_tree
from helpers.commands import pipeline_argv, run_module
from helpers.ffmpeg_calls import logging_ffmpeg
from helpers.manifests import check_clips_agree, check_manifest_agrees
from helpers.paths import REPO
from pipeline.config import ConfigError, PipelineConfig
from pipeline.core import manifest
from pipeline.dataset import Dataset
from pipeline.ffmpeg.extract import extract
from pipeline.ffmpeg.locate import find_ffmpeg
from pipeline.merge import MergeError, merge
from pipeline.spec import Clips

T = 8
RATE = 25
SIZE = (64, 48)
ARGS = ("--size", "64x48", "--clip-frames", str(T))


def _counter(path, seconds: float = 4.0):
    """A lossless H.264 clip whose frame N has luma 16 + 2N: each frame tells its own number."""
    subprocess.run([find_ffmpeg(), "-y", "-v", "error", "-f", "lavfi", "-i",
                    f"color=c=black:s=64x48:r={RATE}:d={seconds},geq=lum='16+2*N':cb=128:cr=128",
                    "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def _every_frame_luma(path) -> np.ndarray:
    """The mean luma of every frame, decoded by ffmpeg on its own (the reference the clips are checked against)."""
    raw = subprocess.run([find_ffmpeg(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray",
                          "pipe:1"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, SIZE[0] * SIZE[1]).mean(axis=1)


def _corrupt_mjpeg(path):
    """An MJPEG AVI whose sixth frame's JPEG header is zeroed: the decoder logs errors and conceals it."""
    subprocess.run([find_ffmpeg(), "-y", "-v", "error", "-f", "lavfi", "-i", f"testsrc=size=64x48:rate={RATE}:d=2",
                    "-c:v", "mjpeg", "-q:v", "3", str(path)], check=True)
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i:i + 3] == b"\xff\xd8\xff"]
    data[starts[5]:starts[5] + 200] = bytes(200)
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A DFDC-shaped part (3 reals, a fake of each, with sound) plus a frame counter, a clip shorter than one
    clip, a variable-rate file with a 0.5 s gap and an MJPEG file with a corrupt frame (all real)."""
    root = make_dfdc_tree(tmp_path_factory.mktemp("clips") / "videos", n_real=3, fakes_per_real=1, seconds=2.0,
                          size=SIZE)
    part = root / "dfdc_train_part_0"
    for name in ("real0000", "fake0000x0"):  # with sound, so the sound's output runs beside the clips'
        make_clip(part / f"{name}.mp4", SIZE, 2.0, audio=True, box=name.startswith("fake"))
    _counter(part / "counter.mp4")
    make_clip(part / "short.mp4", SIZE, 0.2)
    make_clip(part / "vfr.mp4", SIZE, 2.0, source="testsrc",
              extra=["-vf", "setpts='if(gte(N,4),PTS+0.5/TB,PTS)',format=yuv420p", "-fps_mode", "vfr"])
    _corrupt_mjpeg(part / "corrupt.avi")
    meta = json.loads((part / "metadata.json").read_text())
    for name in ("counter.mp4", "short.mp4", "vfr.mp4", "corrupt.avi"):
        meta[name] = {"label": "REAL", "split": "train", "original": None}
    (part / "metadata.json").write_text(json.dumps(meta))
    return root


@pytest.fixture(scope="module")
def run(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("clips-run")
    run_module("pipeline.run", *pipeline_argv(videos, out, *ARGS, "--shard-size", "40KB"))
    return out


def _clips(out) -> dict[str, dict]:
    return {r["key"]: r for r in pq.read_table(out / "manifests" / "clips.parquet").to_pylist()}


def test_clip_frames_are_consecutive_frames_at_the_video_rate(run, videos):
    """Each clip of the counter is frames n..n+T-1 of an independent full decode, n the frame each sampled second
    starts with, at 1/25 s steps; the clips' arrays differ frame to frame as the video does."""
    reference = _every_frame_luma(videos / "dfdc_train_part_0" / "counter.mp4")
    ds = Dataset.open(run / "shards", run / "manifests", need=())
    table = ds.clips(status=None)
    mine = table[table["video_id"] == "counter"].sort_values("clip")
    seconds = ds.table("frames", ["video_id", "second"]).query("video_id == 'counter'")["second"].tolist()
    assert list(mine["start"]) == seconds == [0.0, 1.0, 2.0, 3.0]  # a clip at every sampled second
    arrays = ds.clip_frames(mine["key"])
    for start, key, times in zip(seconds, mine["key"], mine["times"]):
        frames = arrays[key]
        assert frames.shape == (T, SIZE[1], SIZE[0], 3)
        found = [int(np.argmin(np.abs(reference - f.mean()))) for f in frames]
        first = round(start * RATE)
        assert found == list(range(first, first + T)), key
        assert np.allclose(np.diff(times), 1 / RATE, atol=1e-4) and times[0] == start
    assert set(mine["status"]) == {"done"}


def test_the_frames_and_the_sound_are_those_of_a_frames_only_run(run, videos, tmp_path):
    """Keeping clips changes nothing else: the same frame JPEGs and sound as a run without them."""
    plain = tmp_path / "plain"
    run_module("pipeline.run", *pipeline_argv(videos, plain, "--size", "64x48", "--skip-frames", "none",
                                              "--shard-size", "40KB"))
    with_clips = check_manifest_agrees(run / "shards", run / "manifests")
    assert with_clips == check_manifest_agrees(plain / "shards", plain / "manifests")
    sound = {r["video_id"]: r["crc32"] for r in pq.read_table(run / "manifests" / "audio.parquet").to_pylist()}
    assert sound == {r["video_id"]: r["crc32"] for r in pq.read_table(plain / "manifests" / "audio.parquet").to_pylist()}
    assert sound["real0000"] is not None
    assert not (plain / "manifests" / "clips.parquet").exists()
    assert "clips" not in json.loads((plain / "manifests" / "dataset.json").read_text())


def test_bad_input_is_a_clear_row_and_nothing_else_is_lost(run):
    """A video shorter than one clip gives a short clip saying why; a variable-rate file with a gap gives a clip
    marked gap with the step; a corrupt frame inside a clip marks it corrupt; every video is done all the same."""
    clips = _clips(run)
    videos = {r["video_id"]: r for r in pq.read_table(run / "manifests" / "videos.parquet").to_pylist()}
    assert all(v["status"] == "done" and v["n_frames"] >= 1 for v in videos.values())
    short = clips["short_c0000"]
    assert (short["status"], short["n_frames"]) == ("short", 5) and "ends 5 frames into this clip" in short["warning"]
    gap = clips["vfr_c0000"]
    step = gap["times"][4] - gap["times"][3]  # the 0.5 s gap put after frame 3 (the muxer rounds it)
    assert gap["status"] == "gap" and f"step {1000 * step:.0f} ms after frame 3" in gap["warning"], gap["warning"]
    assert gap["n_frames"] == T and step > 0.5
    corrupt = clips["corrupt_c0000"]
    assert corrupt["status"] == "corrupt" and "before frame 5" in corrupt["warning"], corrupt["warning"]
    assert clips["corrupt_c0001"]["status"] == "done"
    assert {k: r["status"] for k, r in clips.items() if k.startswith("real0001")} == {
        "real0001_c0000": "done", "real0001_c0001": "done"}
    section = json.loads((run / "manifests" / "dataset.json").read_text())["clips"]
    assert section["status"]["short"] == 1 and section["status"]["gap"] >= 1 and section["status"]["corrupt"] == 1
    ds = Dataset.open(run / "shards", run / "manifests", need=())
    assert "short_c0000" not in set(ds.clips()["key"]) and ds.clip_spec == Clips(frames=T, size=SIZE, quality=2)


def test_verify_passes_and_names_a_damaged_clip(run, tmp_path):
    check_clips_agree(run / "shards", run / "manifests")
    proc = run_module("pipeline.verify", "--shards", run / "shards", "--manifests", run / "manifests", "--deep")
    assert proc.stdout.strip().endswith("OK"), proc.stdout
    shards = tmp_path / "shards"
    shutil.copytree(run / "shards", shards)
    row = _clips(run)["counter_c0001"]
    tar = shards / row["shard"]
    data = bytearray(tar.read_bytes())
    at = row["offset"] + 512 + row["bytes"] // row["n_frames"] // 2  # inside the clip's first JPEG
    data[at:at + 8] = bytes(b ^ 0xFF for b in data[at:at + 8])
    tar.write_bytes(bytes(data))
    proc = run_module("pipeline.verify", "--shards", shards, "--manifests", run / "manifests", "--deep", check=False)
    assert proc.returncode == 1
    bad = [line for line in proc.stdout.splitlines() if line.startswith("BAD")]
    assert any(row["shard"] in line and "sha256" in line for line in bad), bad
    assert any("counter_c0001 frame 0" in line and "crc32" in line for line in bad), bad


def test_parts_then_merge_equal_one_run(run, videos, tmp_path):
    out = tmp_path / "parted"
    for part in ("1/2", "2/2"):
        run_module("pipeline.run", *pipeline_argv(videos, out, *ARGS, "--shard-size", "40KB", "--part", part))
    run_module("pipeline.merge", "--manifests", out / "manifests", "--parts", "2")
    assert check_clips_agree(out / "shards", out / "manifests") == check_clips_agree(run / "shards",
                                                                                      run / "manifests")


def test_merge_refuses_parts_with_other_clips(tmp_path):
    base = {"fps": 1.0, "size": [64, 48], "quality": 2, "seed": 0, "val_fraction": 0.3, "grouping": "identities",
            "skip_frames": "none"}
    clips = Clips(frames=8, size=(64, 48)).to_dict()
    manifest.write_part_config(tmp_path, "p1of2", {**base, "part": [1, 2], "clips": clips})
    manifest.write_part_config(tmp_path, "p2of2", {**base, "part": [2, 2], "clips": {**clips, "frames": 16}})
    with pytest.raises(MergeError, match="clips"):
        merge(tmp_path)


def test_resplit_carries_the_clips(run, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(run, out)
    before = check_clips_agree(out / "shards", out / "manifests")
    run_module("pipeline.resplit", "--shards", out / "shards", "--manifests", out / "manifests", "--seed", 5,
               "--val-fraction", "0.5")
    assert check_clips_agree(out / "shards", out / "manifests") == before
    split = {v["video_id"]: v["split"] for v in pq.read_table(out / "manifests" / "videos.parquet").to_pylist()}
    assert all(r["split"] == split[r["video_id"]] for r in _clips(out).values())
    assert split != {v["video_id"]: v["split"] for v in pq.read_table(run / "manifests" / "videos.parquet").to_pylist()}


def test_clips_need_every_frame_and_the_same_settings_on_rerun(run, videos):
    with pytest.raises(ConfigError, match="every frame decoded"):
        PipelineConfig(videos="v", clip_frames=8, skip_frames="noref")
    proc = run_module("pipeline.run", *pipeline_argv(videos, run, "--size", "64x48", "--clip-frames", "16"),
                      check=False)
    assert proc.returncode == 2 and "clips=" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_module("pipeline.run", *pipeline_argv(videos, run, *ARGS, "--shard-size", "40KB"))
    assert "0 done, 0 failed" in proc.stderr  # the same command resumes (nothing left to do)


def test_clips_per_video_are_spread_and_never_overlap(tmp_path):
    clip = _counter(tmp_path / "counter.mp4")
    info, _ = extract(str(clip), 1.0, SIZE, 2, clips=Clips(frames=4, per_video=2, size=SIZE))
    assert info.clip_times == pytest.approx([0, .04, .08, .12, 2, 2.04, 2.08, 2.12])  # 4 s, 2 clips: every 2 s
    info, _ = extract(str(clip), 1.0, SIZE, 2, clips=Clips(frames=40, size=SIZE))
    # 40 frames last 1.6 s: the clip at 1 s would overlap the one at 0 s, so the next starts at 2 s (and runs on)
    assert info.clip_times[:40] == pytest.approx([j / RATE for j in range(40)])
    assert info.clip_times[40:] == pytest.approx([2 + j / RATE for j in range(40)])


def test_clips_per_video_are_spread_in_a_container_without_mp4_boxes(tmp_path):
    """A Matroska file has no MP4 header to read the duration from: ffmpeg's own report of the container's duration
    spreads the K clips as in an MP4, rather than keeping the first K."""
    mkv = tmp_path / "counter.mkv"
    subprocess.run([find_ffmpeg(), "-v", "error", "-i", str(_counter(tmp_path / "counter.mp4")), "-c", "copy",
                    str(mkv)], check=True)
    info, _ = extract(str(mkv), 1.0, SIZE, 2, clips=Clips(frames=4, per_video=2, size=SIZE))
    assert info.clip_times == pytest.approx([0, .04, .08, .12, 2, 2.04, 2.08, 2.12])


@pytest.mark.slow  # kills and reruns the pipeline
def test_resume_after_kill_keeps_the_clips_consistent(run, videos, tmp_path):
    """kill -9 (the whole process group) once a clip shard has sealed and a video is staged; the same command
    again gives exactly the clips of an uninterrupted run."""
    out = tmp_path / "killed"
    wrapper, _ = logging_ffmpeg(tmp_path / "slow-ffmpeg", delay=0.3)
    cmd = [sys.executable, "-m", "pipeline.run", *pipeline_argv(videos, out, *ARGS, "--shard-size", "40KB")]
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, "FFMPEG": str(wrapper)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    clip_shards, staging, deadline = out / "shards" / "clips", out / "shards" / ".staging", time.time() + 120
    try:
        while time.time() < deadline and proc.poll() is None:
            if list(clip_shards.glob("*.tar")) and list(staging.glob("*.clips")):
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (out / "manifests" / "dataset.json").exists()
    run_module("pipeline.run", *pipeline_argv(videos, out, *ARGS, "--shard-size", "40KB"))
    assert check_clips_agree(out / "shards", out / "manifests") == check_clips_agree(run / "shards",
                                                                                      run / "manifests")
    proc = run_module("pipeline.verify", "--shards", out / "shards", "--manifests", out / "manifests", "--deep")
    assert proc.stdout.strip().endswith("OK")


def test_portrait_clips_are_fitted_like_the_frames(tmp_path):
    """A portrait video's clips are fitted in the box turned, as its frames are, never upscaled; --clip-size
    gives the clips their own box."""
    from pipeline.ffmpeg.jpeg import jpeg_size

    clip = make_clip(tmp_path / "portrait.mp4", (48, 64), 1.0)
    info, frames = extract(str(clip), 1.0, (128, 96), 2, clips=Clips(frames=3, size=(128, 96)))
    assert (frames[0].width, frames[0].height) == jpeg_size(info.clip_jpegs[0]) == (48, 64)
    info, _ = extract(str(clip), 1.0, (128, 96), 2, clips=Clips(frames=3, size=(32, 24)))
    assert {jpeg_size(j) for j in info.clip_jpegs} == {(24, 32)} and len(info.clip_jpegs) == 3


def test_the_clips_spec_is_typed_bounded_and_round_trips():
    from pipeline.spec import SpecError

    spec = Clips(frames=25, per_video=4, size=(320, 180), quality=5)
    assert Clips.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert PipelineConfig(videos="v", clip_frames=8, skip_frames="none", quality=4).clips() == Clips(
        frames=8, size=(1280, 720), quality=4)  # the frames' size and quality by default
    for bad, field in (({"frames": 0}, "clips.frames"), ({"frames": 8, "per_video": 0}, "clips.per_video"),
                       ({"frames": 8, "quality": 40}, "clips.quality"), ({"frames": 8, "size": [8, 8]}, "size")):
        with pytest.raises(SpecError, match=field):
            Clips.from_dict(bad, "dataset.json")
