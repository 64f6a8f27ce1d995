"""Issue 8 item 5: ffmpeg stops once the last frame the select filter can pass is out; not one output byte changes."""
from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

import pipeline.ffmpeg.extract as frames
from helpers.clips import make_clip, make_dfdc_tree
from helpers.commands import run_pipeline
from helpers.paths import SHARED_DATA
from pipeline.ffmpeg.locate import find_ffmpeg
from pipeline.ffmpeg.extract import extract, run_ffmpeg
from pipeline.ffmpeg.graph import ffmpeg_command
from pipeline.ffmpeg.mp4 import mp4_video_duration


def _both(monkeypatch, clip: Path, fps: float, box=(1280, 720)):
    out = {}
    for early in (False, True):
        monkeypatch.setattr(frames, "EARLY_STOP", early)
        out[early] = extract(str(clip), fps, box, 2)
    return out


def _same(out) -> None:
    (full_info, full), (early_info, early) = out[False], out[True]
    assert [f.jpeg for f in early] == [f.jpeg for f in full] and len(full) > 0
    assert [(f.index, f.second, f.width, f.height) for f in early] == [(f.index, f.second, f.width, f.height)
                                                                       for f in full]
    assert early_info.pts_times == full_info.pts_times and early_info.duration == full_info.duration


@pytest.mark.parametrize("seconds, rate, fps, audio", [(3.0, "25", 1.0, False), (2.6, "30000/1001", 2.0, True),
                                                        (3.0, "24", 0.5, True), (1.0, "25", 4.0, False)])
def test_same_frames_as_a_full_decode_on_generated_clips(tmp_path, monkeypatch, seconds, rate, fps, audio):
    clip = make_clip(tmp_path / "c.mp4", (160, 90), seconds, rate=rate, audio=audio)
    _same(_both(monkeypatch, clip, fps, (128, 72)))


def test_same_frames_and_a_shorter_decode_on_a_real_dfdc_clip(monkeypatch):
    clips = sorted((SHARED_DATA / "dfdc_sample").rglob("*.mp4"))
    if not clips:
        pytest.skip("no real DFDC sample here")
    _same(_both(monkeypatch, clips[0], 1.0))
    # the container's duration is the audio's (10.02 s); the video track's own (10.01 s) lets the decode stop
    assert mp4_video_duration(str(clips[0])) == pytest.approx(10.01, abs=0.001)
    cmd = ffmpeg_command(str(clips[0]), 1.0, (1280, 720), 2, find_ffmpeg())
    _out, _err, code, stopped = run_ffmpeg(cmd, 1.0, 120, True, mp4_video_duration(str(clips[0])))
    assert stopped and code == 0


def test_video_duration_from_the_mp4_header(tmp_path):
    clip = make_clip(tmp_path / "a.mp4", (160, 90), 2.0, rate="25", audio=True)
    assert mp4_video_duration(str(clip)) == pytest.approx(2.0, abs=0.05)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\xff" * 100)
    assert mp4_video_duration(str(junk)) is None
    assert mp4_video_duration(str(tmp_path / "missing.mp4")) is None
    assert mp4_video_duration(str(clip)[:-4] + ".nothing") is None


def _jpegs(shards: Path) -> dict[str, bytes]:
    members = {}
    for shard in sorted(shards.glob("*.tar")):
        with tarfile.open(shard) as tar:
            for m in tar.getmembers():
                if m.name.endswith(".jpg"):
                    members[m.name] = tar.extractfile(m).read()
    return members


def test_shards_jpegs_are_byte_identical_with_and_without_the_early_stop(tmp_path, monkeypatch):
    videos = make_dfdc_tree(tmp_path / "videos", n_real=2, fakes_per_real=1, seconds=3.0)
    monkeypatch.setenv("PIPELINE_FULL_DECODE", "1")
    run_pipeline(videos, tmp_path / "before", "--size", "128x72")
    monkeypatch.delenv("PIPELINE_FULL_DECODE")
    run_pipeline(videos, tmp_path / "after", "--size", "128x72")
    before, after = _jpegs(tmp_path / "before" / "shards"), _jpegs(tmp_path / "after" / "shards")
    assert before == after and len(before) == 4 * 3
