"""Finding ffmpeg: $FFMPEG, else `ffmpeg` on PATH, else the imageio-ffmpeg wheel's binary."""
from __future__ import annotations

import os
import shutil

import pytest

from pipeline.ffmpeg import locate as ff
from pipeline.ffmpeg.extract import expected_frames
from pipeline.ffmpeg.jpeg import jpeg_size, split_jpegs

from helpers.ffmpeg_calls import imageio_ffmpeg_exe


@pytest.fixture
def fresh_lookup(monkeypatch):
    ff.find_ffmpeg.cache_clear()
    yield monkeypatch
    ff.find_ffmpeg.cache_clear()


def _fake_ffmpeg(folder):
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "ffmpeg"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    return exe


def test_env_wins(fresh_lookup, tmp_path):
    exe = _fake_ffmpeg(tmp_path / "mine")
    fresh_lookup.setenv("FFMPEG", str(exe))
    fresh_lookup.setenv("PATH", str(_fake_ffmpeg(tmp_path / "onpath").parent))
    assert ff.find_ffmpeg() == str(exe)


def test_env_as_a_command_name(fresh_lookup, tmp_path):
    exe = _fake_ffmpeg(tmp_path / "bin")
    os.rename(exe, tmp_path / "bin" / "my-ffmpeg")
    fresh_lookup.setenv("PATH", str(tmp_path / "bin"))
    fresh_lookup.setenv("FFMPEG", "my-ffmpeg")
    assert ff.find_ffmpeg() == str(tmp_path / "bin" / "my-ffmpeg")


def test_env_pointing_nowhere_is_an_error(fresh_lookup, tmp_path):
    fresh_lookup.setenv("FFMPEG", str(tmp_path / "missing"))
    with pytest.raises(ff.FFmpegNotFound, match="FFMPEG"):
        ff.find_ffmpeg()


def test_path_next(fresh_lookup, tmp_path):
    exe = _fake_ffmpeg(tmp_path / "onpath")
    fresh_lookup.delenv("FFMPEG", raising=False)
    fresh_lookup.setenv("PATH", str(exe.parent))
    assert ff.find_ffmpeg() == str(exe)


def test_imageio_binary_last(fresh_lookup, tmp_path):
    fresh_lookup.delenv("FFMPEG", raising=False)
    fresh_lookup.setenv("PATH", str(tmp_path / "empty"))
    assert ff.find_ffmpeg() == imageio_ffmpeg_exe()
    assert os.access(ff.find_ffmpeg(), os.X_OK)


def test_versions_of_both_binaries():
    imageio = ff.ffmpeg_version(imageio_ffmpeg_exe())
    assert imageio.startswith("ffmpeg version") and ff.version_tuple(imageio) >= (5, 1)
    system = shutil.which("ffmpeg")
    if system:
        assert ff.ffmpeg_version(system).startswith("ffmpeg version")
    assert ff.version_tuple("ffmpeg version 5.1.9-0+deb12u1") == (5, 1)
    assert ff.version_tuple("ffmpeg version n9.0.2-17-g2a571b6068-20260930") == (9, 0)
    assert ff.version_tuple("ffmpeg version N-112345-gdeadbeef") == (99, 0)
    assert ff.passthrough_args(imageio_ffmpeg_exe()) == ["-fps_mode", "passthrough"]


def test_jpeg_stream_helpers():
    """split_jpegs cuts ffmpeg's MJPEG pipe into files even when a segment holds FF D9 bytes."""
    import io

    from PIL import Image

    blobs = []
    for size in ((16, 8), (32, 18)):
        buf = io.BytesIO()
        Image.new("RGB", size, (200, 30, 30)).save(buf, "JPEG", exif=b"Exif\x00\x00\xff\xd9junk")
        blobs.append(buf.getvalue())
    parts = split_jpegs(b"".join(blobs))
    assert parts == blobs
    assert [jpeg_size(p) for p in parts] == [(16, 8), (32, 18)]
    assert expected_frames(3.4, 25, 1.0) == 4 and expected_frames(10.02, 29.97, 1.0) == 10
    assert expected_frames(None, 25, 1.0) is None
