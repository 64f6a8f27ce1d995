"""Shared fixtures and hooks: real H.264 clips made with ffmpeg's lavfi sources, and tiny real shards made by the
pipeline. The plain helpers they use live in tests/helpers (clips, commands, ffmpeg_calls, manifests, images, paths)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from pipeline.ffmpeg.locate import find_ffmpeg  # noqa: E402

from helpers.clips import make_dfdc_tree, write_tiny_boxes  # noqa: E402
from helpers.commands import run_module, run_pipeline  # noqa: E402


SLOW_FIXTURES = {"tiny_run", "dev_run", "clip_run"}  # a test that needs a trained run is an end-to-end test


def pytest_collection_modifyitems(config, items):
    """`slow` for every test that uses a trained run (`make test-fast` skips them)."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return find_ffmpeg()


@pytest.fixture(scope="session")
def clip_dataset(tmp_path_factory) -> dict:
    """4 reals + 4 fakes, 2 s at 64x48, sharded with clips of 4 frames (`dfd shards --clip-frames 4`)."""
    root = tmp_path_factory.mktemp("clips")
    videos = make_dfdc_tree(root / "videos", n_real=4, fakes_per_real=1, seconds=2.0, size=(64, 48))
    run_pipeline(videos, root / "with", "--clip-frames", "4", "--workers", "1")
    return {"shards": root / "with" / "shards", "manifests": root / "with" / "manifests", "root": root,
            "videos": videos}


@pytest.fixture(scope="session")
def clip_run(clip_dataset, tmp_path_factory) -> Path:
    """A dev run of `dfd train --input clips --recipe demo_clips` (temporal:test_resnet at 32x32): its folder."""
    out = tmp_path_factory.mktemp("cliprun") / "run"
    run_module("train.run", "--shards", clip_dataset["shards"], "--manifests", clip_dataset["manifests"],
               "--out", out, "--recipe", "demo_clips", "--dev-run", "--weights", "none", "--image-size", "32",
               "--batch-size", "4", "--workers", "0", "--device", "cpu", "--no-explain", "--input", "clips",
               "--arch", "temporal:test_resnet")
    return out


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> dict:
    """8 reals + 16 fakes, 3 s each at 160x90, through the real pipeline at 128x72: shards and manifests."""
    root = tmp_path_factory.mktemp("tiny")
    videos = make_dfdc_tree(root / "videos", n_real=8, fakes_per_real=2, seconds=3.0)
    run_pipeline(videos, root, "--size", "128x72", "--shard-size", "40KB")
    return {"videos": videos, "shards": root / "shards", "manifests": root / "manifests", "root": root}


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_dataset) -> Path:
    """A --dev-run of the real trainer at 64 px with --boxes (train.run calls run_explain), once a session; used by
    tests/train/test_explain.py and tests/train/test_predict.py."""
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
