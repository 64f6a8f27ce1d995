"""Issue 20 item 1: skipping non-reference frames (-skip_frame:v noref) in the frame command and in predict.

Real ffmpeg on lavfi clips in several codecs: where skipping does something (H.264 and MPEG-4 with B-frames) each
second keeps its first decoded frame, at most MAX_LAG of the interval late, byte-identical wherever it is the same
frame; where it changes nothing (intra-only H.264, MJPEG, VP9, HEVC here) the frames are those of a full decode;
where it is not faithful (a kept frame too late, an interval left empty, an error) the video is decoded again in
full. The choice is recorded in dataset.json; a dataset.json without it means every frame was decoded.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers.clips import make_dfdc_tree
from helpers.commands import run_pipeline

from pipeline.dataset import Dataset
from pipeline.ffmpeg.locate import find_ffmpeg
from pipeline.ffmpeg.extract import MAX_LAG, FrameError, extract
from pipeline.ffmpeg.graph import ffmpeg_command
from pipeline.spec import FrameSampling
from train.score.videos import _settings_from, decode_video

SRC = "testsrc2=size=128x72:rate=25"
CODECS = {  # name -> (file, encoder arguments)
    "h264-bframes": ("h264b.mp4", ["-c:v", "libx264", "-preset", "fast",
                                   "-x264-params", "bframes=3:b-adapt=0:b-pyramid=none"]),
    "mpeg4-bframes": ("mpeg4.avi", ["-c:v", "mpeg4", "-bf", "2"]),
    "hevc": ("hevc.mp4", ["-c:v", "libx265", "-preset", "fast", "-x265-params", "log-level=error"]),
    "vp9": ("vp9.webm", ["-c:v", "libvpx-vp9", "-deadline", "good", "-cpu-used", "8", "-b:v", "200k"]),
    "mjpeg": ("mjpeg.avi", ["-c:v", "mjpeg", "-q:v", "5"]),
    "h264-intra": ("intra.mp4", ["-c:v", "libx264", "-preset", "fast", "-x264-params", "keyint=1"]),
}
SKIPS_SOMETHING = {"h264-bframes", "mpeg4-bframes"}  # at 1 fps on these clips: some seconds start on a B-frame


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("codecs")
    out = {}
    for name, (file, args) in CODECS.items():
        subprocess.run([find_ffmpeg(), "-y", "-v", "error", "-f", "lavfi", "-i", SRC, "-t", "4", "-pix_fmt",
                        "yuv420p", *args, str(folder / file)], check=True)
        out[name] = str(folder / file)
    return out


def test_the_skip_is_one_input_option():
    noref = ffmpeg_command("in.mp4", 1.0, (1280, 720), 2, "/usr/bin/ffmpeg", "noref")
    full = ffmpeg_command("in.mp4", 1.0, (1280, 720), 2, "/usr/bin/ffmpeg", "none")
    at = noref.index("-skip_frame:v")
    assert noref[at + 1] == "noref" and at < noref.index("-i")
    assert noref[:at] + noref[at + 2:] == full and "-skip_frame:v" not in full


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_each_second_keeps_its_first_decoded_frame(clips, codec):
    full_info, full = extract(clips[codec], 1.0, (1280, 720), 2, skip_frames="none")
    info, skip = extract(clips[codec], 1.0, (1280, 720), 2, skip_frames="noref")
    assert full_info.skip_frames == "none" and info.skip_frames == "noref"
    assert [f.index for f in skip] == [f.index for f in full] == list(range(4))
    moved = 0
    for a, b in zip(full, skip):
        assert a.second <= b.second <= b.index + MAX_LAG + 1e-6
        if a.second == b.second:
            assert a.jpeg == b.jpeg  # the same frame: byte-identical
        else:
            moved += 1
            assert a.jpeg != b.jpeg  # a later frame of a moving picture
    if codec in SKIPS_SOMETHING:
        assert moved >= 2
    else:
        assert moved == 0


def test_predict_decodes_as_the_shards_were_made(clips):
    """train.predict's decode follows the recorded choice: the same seconds as the pipeline's frames either way."""
    clip = clips["h264-bframes"]
    for skip in ("noref", "none"):
        decoded = decode_video(Path(clip), FrameSampling(1.0, (1280, 720), 2, skip_frames=skip), None)
        assert decoded.error is None
        assert decoded.seconds == [f.second for f in extract(clip, 1.0, (1280, 720), 2, skip_frames=skip)[1]]
    assert decoded.seconds == [0.0, 1.0, 2.0, 3.0]  # none: each second's exact first frame
    assert FrameSampling.from_dict({"fps": 1.0, "size": [1280, 720], "quality": 2}).skip_frames == "none"  # before it


def test_too_late_a_frame_falls_back_to_every_frame(clips):
    """At 4 fps a kept frame of the B-frame clip would lie over a quarter of its 250 ms interval late."""
    full = extract(clips["h264-bframes"], 4.0, (1280, 720), 2, skip_frames="none")[1]
    info, frames = extract(clips["h264-bframes"], 4.0, (1280, 720), 2, skip_frames="noref")
    assert info.skip_frames == "none"
    assert [(f.index, f.second, f.jpeg) for f in frames] == [(f.index, f.second, f.jpeg) for f in full]


def test_a_truncated_file_fails_as_it_does_without_skipping(clips, tmp_path):
    data = open(clips["h264-bframes"], "rb").read()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FrameError) as full:
        extract(str(cut), 1.0, (1280, 720), 2, skip_frames="none")
    with pytest.raises(FrameError) as skip:
        extract(str(cut), 1.0, (1280, 720), 2, skip_frames="noref")
    assert str(skip.value) == str(full.value)


def test_the_choice_is_recorded_and_old_datasets_mean_every_frame(tmp_path):
    videos = make_dfdc_tree(tmp_path / "videos", n_real=2, fakes_per_real=1, seconds=1.0, size=(96, 64))
    run_pipeline(videos, tmp_path, "--size", "96x64")
    data = json.loads((tmp_path / "manifests" / "dataset.json").read_text())
    assert data["config"]["skip_frames"] == "noref"  # the default
    assert Dataset.open(tmp_path / "shards", tmp_path / "manifests", need=()).frame_sampling.skip_frames == "noref"
    assert _settings_from(data["config"], "dataset.json").skip_frames == "noref"
    # a dataset made before the setting existed: every frame was decoded, and resume and predict do the same
    old = {k: v for k, v in data["config"].items() if k != "skip_frames"}
    assert _settings_from(old, "dataset.json").skip_frames == "none"
    (tmp_path / "manifests" / "dataset.json").write_text(json.dumps({**data, "config": old}))
    assert Dataset.open(tmp_path / "shards", tmp_path / "manifests", need=()).frame_sampling.skip_frames == "none"
    part = tmp_path / "manifests" / "parts" / "config.json"
    part.write_text(json.dumps({k: v for k, v in json.loads(part.read_text()).items() if k != "skip_frames"}))
    proc = run_pipeline(videos, tmp_path, "--size", "96x64", "--skip-frames", "noref", check=False)
    assert proc.returncode != 0 and "skip_frames=none" in proc.stderr
    run_pipeline(videos, tmp_path, "--size", "96x64")  # unset: the dataset's own setting
    assert json.loads(part.read_text())["skip_frames"] == "none"
    assert json.loads((tmp_path / "manifests" / "dataset.json").read_text())["config"]["skip_frames"] == "none"
