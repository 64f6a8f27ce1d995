"""Issue 26: the generator of fakes only time reveals -- each fake frame real-looking, the cue in frame order."""
from __future__ import annotations

import csv
import subprocess

import numpy as np

from demodata.time_only import make
from pipeline.ffmpeg.locate import find_ffmpeg

SIZE = (32, 32)


def frames(path) -> np.ndarray:
    raw = subprocess.run([find_ffmpeg(), "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, SIZE[1], SIZE[0], 3).astype(np.int16)


def motion(clip: np.ndarray) -> float:
    return float(np.abs(np.diff(clip, axis=0)).mean())


def test_shuffled_fakes_hold_exactly_the_reals_frames_in_another_order(tmp_path):
    labels = make(tmp_path, videos=2, seconds=0.4, size=SIZE, cue="shuffle")  # 10 frames each
    rows = list(csv.DictReader(open(labels)))
    assert [(r["label"], r["original"]) for r in rows] == [("real", ""), ("fake", "real0000.mp4")] * 1 + [
        ("real", ""), ("fake", "real0001.mp4")]
    for i in range(2):
        real, fake = frames(tmp_path / f"real{i:04d}.mp4"), frames(tmp_path / f"fake{i:04d}.mp4")
        assert len(real) == len(fake) == 10
        assert np.array_equal(fake[0::2], real[1::2]) and np.array_equal(fake[1::2], real[0::2])  # pairs swapped
        assert motion(real) > 0.5 and not np.array_equal(fake, real)  # the source moves: the order shows


def test_jitter_and_flicker_fakes_change_more_between_frames_than_their_reals(tmp_path):
    for cue in ("jitter", "flicker"):
        make(tmp_path / cue, videos=1, seconds=0.4, size=SIZE, cue=cue, seed=3)
        real, fake = frames(tmp_path / cue / "real0000.mp4"), frames(tmp_path / cue / "fake0000.mp4")
        assert motion(fake) > 1.5 * motion(real), cue
        assert abs(real.mean() - fake.mean()) < 20  # each frame as bright as a real one, on average


def test_a_patch_flicker_fake_flickers_in_the_middle_only(tmp_path):
    make(tmp_path, videos=1, seconds=0.4, size=SIZE, cue="patch-flicker", seed=3)
    real, fake = frames(tmp_path / "real0000.mp4"), frames(tmp_path / "fake0000.mp4")
    inside = (slice(None), slice(10, 22), slice(10, 22))  # the patch is 8..24 of 32; chroma bleeds a pixel or two
    outside = (slice(None), slice(0, 6), slice(None))
    assert motion(fake[inside]) > 1.5 * motion(real[inside])
    assert np.array_equal(fake[outside], real[outside])  # the rest of the frame: the real's own pixels
