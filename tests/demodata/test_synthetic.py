"""Tests for the synthetic DFDC-shaped dataset generator."""

import json
import math
import re
import subprocess

import numpy as np
import pytest

from pipeline.ffmpeg.locate import find_ffmpeg
from demodata.synthetic import PART_NAME, generate

SECONDS = 2.0
SIZE = (160, 96)
N_VIDEOS = 5  # 2 reals (one portrait without audio) + 3 fakes


@pytest.fixture(scope="module")
def ffmpeg():
    return find_ffmpeg()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = generate(tmp_path_factory.mktemp("syn"), n_videos=N_VIDEOS, seconds=SECONDS, size=SIZE,
                    seed=7, workers=2, progress=False)
    meta = json.loads((root / PART_NAME / "metadata.json").read_text())
    boxes = json.loads((root / "boxes.json").read_text())
    return root, meta, boxes


def _probe(ffmpeg, path):
    """(width, height, has_audio) parsed from `ffmpeg -i` (ffprobe may not exist)."""
    err = subprocess.run([ffmpeg, "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    m = re.search(r"Video: h264.*?, (\d{2,5})x(\d{2,5})", err)
    assert m, err
    return int(m.group(1)), int(m.group(2)), "Audio:" in err


def _frame(ffmpeg, path, index):
    w, h, _ = _probe(ffmpeg, path)
    raw = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{index})",
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(h, w, 3).astype(np.float32)


def test_metadata_shape(dataset):
    root, meta, _ = dataset
    assert len(meta) == N_VIDEOS
    labels = [v["label"] for v in meta.values()]
    assert labels.count("REAL") == 2 and labels.count("FAKE") == 3
    for name, entry in meta.items():
        assert re.fullmatch(r"[a-z]{10}\.mp4", name)
        assert set(entry) == {"label", "split", "original"}
        assert entry["split"] == "train"
        assert (root / PART_NAME / name).is_file()
        if entry["label"] == "REAL":
            assert entry["original"] is None
        else:
            assert entry["original"] in meta and meta[entry["original"]]["label"] == "REAL"


def test_clips_decode_and_vary(dataset, ffmpeg):
    root, meta, _ = dataset
    shapes = set()
    for name in meta:
        path = root / PART_NAME / name
        proc = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-f", "null", "-"],
                              capture_output=True, text=True)
        assert proc.returncode == 0 and not proc.stderr.strip(), (name, proc.stderr)
        shapes.add(_probe(ffmpeg, path))
    # landscape with audio and portrait without audio are both present
    assert (SIZE[0], SIZE[1], True) in shapes
    assert (SIZE[1], SIZE[0], False) in shapes


def test_boxes(dataset):
    _, meta, boxes = dataset
    fakes = {n for n, e in meta.items() if e["label"] == "FAKE"}
    assert set(boxes) == fakes
    for per_second in boxes.values():
        assert len(per_second) == math.ceil(SECONDS)
        for x0, y0, x1, y1 in per_second:
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


def test_deterministic(dataset, tmp_path):
    root, meta, boxes = dataset
    again = generate(tmp_path / "again", n_videos=N_VIDEOS, seconds=SECONDS, size=SIZE, seed=7,
                     workers=1, progress=False)
    assert json.loads((again / PART_NAME / "metadata.json").read_text()) == meta
    assert json.loads((again / "boxes.json").read_text()) == boxes
    for name in meta:
        assert (again / PART_NAME / name).read_bytes() == (root / PART_NAME / name).read_bytes(), name
    other = generate(tmp_path / "other", n_videos=N_VIDEOS, seconds=SECONDS, size=SIZE, seed=8,
                     workers=2, progress=False)
    assert set(json.loads((other / PART_NAME / "metadata.json").read_text())).isdisjoint(meta)


def _blocks(a, k=4):
    """k x k block means: keeps the swap, averages away x264's high-frequency noise."""
    h, w = a.shape[0] // k * k, a.shape[1] // k * k
    return a[:h, :w].reshape(h // k, k, w // k, k, -1).mean(axis=(1, 3))


def test_fake_differs_inside_box(dataset, ffmpeg):
    root, meta, boxes = dataset
    index = 30  # a frame in second 1
    for name, entry in meta.items():
        if entry["label"] != "FAKE":
            continue
        fake = _frame(ffmpeg, root / PART_NAME / name, index)
        real = _frame(ffmpeg, root / PART_NAME / entry["original"], index)
        assert fake.shape == real.shape
        h, w, _ = fake.shape
        x0, y0, x1, y1 = boxes[name][index // 25]
        inside = np.zeros((h, w, 1), np.float32)
        inside[int(y0 * h):math.ceil(y1 * h), int(x0 * w):math.ceil(x1 * w)] = 1
        frac = _blocks(inside)[..., 0]
        diff = np.abs(_blocks(fake) - _blocks(real)).mean(axis=2)
        d_in, d_out = diff[frac == 1].mean(), diff[frac == 0].mean()
        assert d_in > 8.0 and d_in > 3 * d_out, (name, d_in, d_out)


def test_swap_changes_only_inside_its_box():
    """The sprite-level box is exact: outside it the fake equals the host (mask and seam <= 2%), inside it differs."""
    import random

    from demodata.synthetic import FaceParams, _apply_swap, _random_swap, _render_face

    rng = random.Random(3)
    for k in range(4):
        host = FaceParams.random(rng)
        rgb, alpha = _render_face(host, 96, 120, k)
        fake, (x0, y0, x1, y1) = _apply_swap(rgb, alpha, _random_swap(rng, host), 100 + k)
        diff = np.abs(fake - rgb).max(axis=2)
        outside = diff.copy()
        outside[y0:y1, x0:x1] = 0
        assert outside.max() <= 0.02 * 255 + 1e-3
        assert 0 < x0 < x1 < 96 and 0 < y0 < y1 < 120
        assert diff[y0:y1, x0:x1].mean() > 20
