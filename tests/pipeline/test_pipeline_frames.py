"""Frames: how many per video, their size and orientation, keys, and that the JPEGs decode (real ffmpeg, real clips).

The clips are generated with lavfi (landscape, portrait, 25 and 29.97 fps, a 3.4 s clip, with and without audio,
odd sizes, rotation metadata) and sharded through `python -m pipeline.run` with a 128x72 box.
"""
from __future__ import annotations

import io
import shutil
import subprocess

import pytest
import simplejpeg
from PIL import Image

from pipeline.ffmpeg.locate import ffmpeg_version, version_tuple

from helpers.clips import make_clip
from helpers.commands import run_module, pipeline_argv
from helpers.ffmpeg_calls import imageio_ffmpeg_exe
from helpers.manifests import check_manifest_agrees, read_manifest

BOX = "128x72"

# name -> (make_clip kwargs, expected frames at 1 fps, expected frame size in the 128x72 box or None to check apart)
CLIPS = {
    "land25s34": (dict(size=(320, 180), seconds=3.4, rate="25"), 4, (128, 72)),
    "ntsc": (dict(size=(320, 180), seconds=3.0, rate="30000/1001", source="mandelbrot"), 3, (128, 72)),
    "ntsc25s": (dict(size=(320, 180), seconds=2.5, rate="30000/1001", source="smptehdbars"), 3, (128, 72)),
    "portrait": (dict(size=(180, 320), seconds=2.0, rate="25", source="testsrc"), 2, (72, 128)),
    "portrait2997": (dict(size=(180, 320), seconds=3.4, rate="30000/1001"), 4, (72, 128)),
    "small": (dict(size=(96, 64), seconds=2.0, rate="25", source="rgbtestsrc"), 2, (96, 64)),
    "smallportrait": (dict(size=(64, 96), seconds=1.0, rate="25"), 1, (64, 96)),
    "wide": (dict(size=(320, 100), seconds=1.0, rate="25"), 1, (128, 40)),
    "audio": (dict(size=(320, 180), seconds=2.0, rate="25", audio=True, source="pal100bars"), 2, (128, 72)),
    "audio34": (dict(size=(160, 90), seconds=3.4, rate="25", audio=True), 4, (128, 72)),
    # odd sizes: yuv444p lets x264 store them; frames must still come out even
    "oddsmall": (dict(size=(99, 55), seconds=1.0, rate="25", extra=["-pix_fmt", "yuv444p"]), 1, None),
    "oddbig": (dict(size=(333, 187), seconds=1.0, rate="25", extra=["-pix_fmt", "yuv444p"]), 1, None),
}


def _rotate(src, dst, ffmpeg_exe, new_style: bool):
    """Copy the stream and tag it with a 90 degree display rotation (ffmpeg >= 7: -display_rotation)."""
    if new_style:
        cmd = [ffmpeg_exe, "-y", "-v", "error", "-display_rotation", "90", "-i", str(src), "-c", "copy", str(dst)]
    else:
        cmd = [ffmpeg_exe, "-y", "-v", "error", "-i", str(src), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(dst)]
    subprocess.run(cmd, check=True)


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory, ffmpeg):
    """A labels.csv dataset of all the clips above plus two rotated ones."""
    root = tmp_path_factory.mktemp("frames") / "videos"
    lines = ["path,label,original"]
    for i, (name, (kwargs, _, _)) in enumerate(CLIPS.items()):
        make_clip(root / "clips" / f"{name}.mp4", **kwargs)
        lines.append(f"clips/{name}.mp4,{'FAKE' if i % 3 == 2 else 'REAL'},")
    plain = make_clip(root / "plain.mp4", size=(320, 180), seconds=2.0)
    _rotate(plain, root / "clips" / "rot9.mp4", imageio_ffmpeg_exe(), new_style=True)
    system = shutil.which("ffmpeg")  # Debian's 5.1 still has the old `rotate` tag; newer builds dropped it
    old_style = bool(system) and version_tuple(ffmpeg_version(system)) < (6, 0)
    _rotate(plain, root / "clips" / "rot5.mp4", system if old_style else imageio_ffmpeg_exe(), new_style=not old_style)
    plain.unlink()
    lines += ["clips/rot9.mp4,real,", "clips/rot5.mp4,fake,clips/rot9.mp4"]
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def sharded(clip_folder, tmp_path_factory):
    """The clips through the pipeline with the default ffmpeg (PATH's, Debian 5.1 here)."""
    out = tmp_path_factory.mktemp("frames_out")
    run_module("pipeline.run", *pipeline_argv(clip_folder, out, "--size", BOX), env={"FFMPEG": None})
    return out


@pytest.fixture(scope="module")
def sharded_imageio(clip_folder, tmp_path_factory):
    """The same clips with the imageio-ffmpeg static binary (ffmpeg 9) as FFMPEG."""
    out = tmp_path_factory.mktemp("frames_out_imageio")
    run_module("pipeline.run", *pipeline_argv(clip_folder, out, "--size", BOX), env={"FFMPEG": imageio_ffmpeg_exe()})
    return out


def _videos(out):
    return {v["video_id"]: v for v in read_manifest(out / "manifests")["videos"]}


def _frames(out):
    frames = {}
    for f in read_manifest(out / "manifests")["frames"]:
        frames.setdefault(f["video_id"], []).append(f)
    return frames


def test_all_clips_done_and_manifest_agrees(sharded):
    videos = _videos(sharded)
    assert set(videos) == {f"clips-{n}" for n in [*CLIPS, "rot9", "rot5"]}
    assert all(v["status"] == "done" for v in videos.values()), [v["error"] for v in videos.values()]
    check_manifest_agrees(sharded / "shards", sharded / "manifests")


@pytest.mark.parametrize("name", list(CLIPS))
def test_frame_count_and_size(sharded, name):
    _, n_expected, size = CLIPS[name]
    video, frames = _videos(sharded)[f"clips-{name}"], _frames(sharded)[f"clips-{name}"]
    assert video["n_frames"] == len(frames) == n_expected
    # one frame per started second: index 0..n-1, each taken at the first frame of its second
    assert [f["index"] for f in frames] == list(range(n_expected))
    assert all(f["index"] <= f["second"] < f["index"] + 1 for f in frames), [f["second"] for f in frames]
    if size:
        assert {(f["width"], f["height"]) for f in frames} == {size}


def test_source_properties_recorded(sharded):
    videos = _videos(sharded)
    land = videos["clips-land25s34"]
    assert (land["width"], land["height"]) == (320, 180)
    assert land["duration"] == pytest.approx(3.4, abs=0.05) and land["fps"] == pytest.approx(25)
    assert videos["clips-ntsc"]["fps"] == pytest.approx(29.97, abs=0.01)
    assert (videos["clips-portrait"]["width"], videos["clips-portrait"]["height"]) == (180, 320)


def test_ntsc_seconds_follow_the_clock(sharded):
    """At 29.97 fps the first frame of second k is at k * 1.001 s (frame 30k): times, not frame numbers / 30."""
    seconds = [f["second"] for f in _frames(sharded)["clips-ntsc"]]
    assert seconds == pytest.approx([0.0, 1.001, 2.002], abs=2e-3)


def test_odd_sizes_give_even_frames_never_upscaled(sharded):
    frames = _frames(sharded)
    w, h = frames["clips-oddsmall"][0]["width"], frames["clips-oddsmall"][0]["height"]
    assert w % 2 == 0 and h % 2 == 0 and 98 <= w <= 99 and 54 <= h <= 55  # not upscaled to the box
    w, h = frames["clips-oddbig"][0]["width"], frames["clips-oddbig"][0]["height"]
    assert w % 2 == 0 and h % 2 == 0 and w <= 128 and h <= 72 and (w == 128 or h == 72)
    assert abs(w / h - 333 / 187) < 0.05  # aspect kept


@pytest.mark.parametrize("name", ["rot9", "rot5"])
def test_rotation_metadata_gives_portrait(sharded, name):
    """A 320x180 stream tagged with a 90 degree display rotation is a portrait video: 180x320, frames 72x128."""
    video, frames = _videos(sharded)[f"clips-{name}"], _frames(sharded)[f"clips-{name}"]
    assert (video["width"], video["height"]) == (180, 320)
    assert video["rotation"] in (90, 270)
    assert {(f["width"], f["height"]) for f in frames} == {(72, 128)}
    assert len(frames) == 2


def test_keys_have_no_dots_and_name_video_and_second(sharded):
    for f in read_manifest(sharded / "manifests")["frames"]:
        assert f["key"] == f"{f['video_id']}_{f['index']:04d}"
        assert "." not in f["key"] and "." not in f["video_id"]


def test_jpegs_decode_to_manifest_size(sharded):
    """Decode every frame from the shards with simplejpeg and PIL: RGB pixels of the size the manifest says."""
    import tarfile

    m = read_manifest(sharded / "manifests")
    for f in m["frames"]:
        with open(sharded / "shards" / f["shard"], "rb") as fh:
            fh.seek(f["offset"])
            info = tarfile.TarInfo.frombuf(fh.read(512), "utf-8", "surrogateescape")
            assert info.name == f"{f['key']}.jpg"
            jpeg = fh.read(f["bytes"])
        pixels = simplejpeg.decode_jpeg(jpeg, colorspace="RGB")
        assert pixels.shape == (f["height"], f["width"], 3)
        assert pixels.std() > 1  # a picture, not a blank
        with Image.open(io.BytesIO(jpeg)) as im:
            assert im.size == (f["width"], f["height"])


def test_imageio_ffmpeg_gives_the_same_frames(sharded, sharded_imageio):
    """The whole pipeline with the ffmpeg 9 static binary: same keys, sizes and source properties as Debian's."""
    m = read_manifest(sharded_imageio / "manifests")
    assert "version n9." in m["dataset"]["ffmpeg"] or "version 9." in m["dataset"]["ffmpeg"], m["dataset"]["ffmpeg"]
    assert m["dataset"]["config"]["size"] == [128, 72]
    check_manifest_agrees(sharded_imageio / "shards", sharded_imageio / "manifests")
    base = read_manifest(sharded / "manifests")
    as_set = lambda frames: {(f["key"], f["width"], f["height"], f["split"], f["label"]) for f in frames}  # noqa
    assert as_set(m["frames"]) == as_set(base["frames"])
    pick = ("video_id", "status", "width", "height", "n_frames", "frame_width", "frame_height", "split")
    assert [{k: v[k] for k in pick} for v in m["videos"]] == [{k: v[k] for k in pick} for v in base["videos"]]


def test_two_fps(clip_folder, tmp_path):
    """--fps 2 on the 3.4 s clip: the first frame of every half second, 7 frames, index = half-seconds."""
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "land25s34.mp4").symlink_to(clip_folder / "clips" / "land25s34.mp4")
    (folder / "ntsc.mp4").symlink_to(clip_folder / "clips" / "ntsc.mp4")
    out = tmp_path / "out"
    run_module("pipeline.run", *pipeline_argv(folder, out, "--size", BOX, "--fps", "2"))
    check_manifest_agrees(out / "shards", out / "manifests")
    frames = _frames(out)
    land = frames["land25s34"]
    assert [f["index"] for f in land] == list(range(7))
    assert [f["key"] for f in land][-1] == "land25s34_0006"
    # the first 25 fps frame at or after each half second (0.5 s falls between frames 0.48 and 0.52)
    assert all(i / 2 <= f["second"] < i / 2 + 0.04 + 1e-6 for i, f in enumerate(land)), [f["second"] for f in land]
    ntsc = frames["ntsc"]  # 3.0 s at 29.97: half-seconds 0..5
    assert [f["index"] for f in ntsc] == list(range(6))
    assert all(f["index"] / 2 <= f["second"] < (f["index"] + 1) / 2 for f in ntsc)
