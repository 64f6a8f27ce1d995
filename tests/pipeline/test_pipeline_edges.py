"""Edge cases of the pipeline run: duplicate ids, --limit, --retry-failed, the lock, an interrupted resplit."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from helpers.clips import make_clip, make_dfdc_tree
from helpers.commands import pipeline_argv, run_module, run_pipeline
from helpers.manifests import check_manifest_agrees, read_manifest
from pipeline.ffmpeg.locate import find_ffmpeg
from pipeline import resplit
from pipeline.core import journal as resplit_journal, manifest
from pipeline.core.manifest import LockError


def _videos(manifests: Path) -> dict:
    return {v["video_id"]: v for v in read_manifest(manifests)["videos"]}


def test_duplicate_video_id_in_two_parts_is_a_failed_row(tmp_path):
    root = tmp_path / "videos"
    make_dfdc_tree(root, n_real=1, fakes_per_real=1, seconds=1.0, size=(96, 64), part="dfdc_train_part_0")
    part1 = root / "dfdc_train_part_1"
    part1.mkdir()
    shutil.copy(root / "dfdc_train_part_0" / "real0000.mp4", part1 / "real0000.mp4")
    (part1 / "metadata.json").write_text(json.dumps({"real0000.mp4": {"label": "REAL", "original": None}}))
    run_pipeline(root, tmp_path, "--size", "64x36")
    videos = _videos(tmp_path / "manifests")
    assert videos["real0000"]["status"] == "done"
    dup = videos["real0000-dup1"]
    assert dup["status"] == "failed" and "duplicate video id" in dup["error"]
    assert dup["path"].endswith("dfdc_train_part_1/real0000.mp4")
    check_manifest_agrees(tmp_path / "shards", tmp_path / "manifests")


def test_limit_takes_the_first_videos_then_the_rest_resume(tmp_path):
    root = make_dfdc_tree(tmp_path / "videos", n_real=3, fakes_per_real=1, seconds=1.0, size=(96, 64))
    run_pipeline(root, tmp_path, "--size", "64x36", "--limit", "2")
    done = {k for k, v in _videos(tmp_path / "manifests").items() if v["status"] == "done"}
    assert done == {"fake0000x0", "fake0001x0"}  # sorted by id
    proc = run_pipeline(root, tmp_path, "--size", "64x36")
    assert "4 done, 0 failed, 2 skipped" in proc.stderr
    assert len(read_manifest(tmp_path / "manifests")["videos"]) == 6
    check_manifest_agrees(tmp_path / "shards", tmp_path / "manifests")


def test_failed_video_is_not_retried_unless_changed_or_asked(tmp_path):
    root = make_dfdc_tree(tmp_path / "videos", n_real=1, fakes_per_real=1, seconds=1.0, size=(96, 64))
    bad = root / "dfdc_train_part_0" / "fake0000x0.mp4"
    good_bytes = bad.read_bytes()
    bad.write_bytes(b"not a video at all")
    run_pipeline(root, tmp_path, "--size", "64x36")
    assert _videos(tmp_path / "manifests")["fake0000x0"]["status"] == "failed"
    proc = run_pipeline(root, tmp_path, "--size", "64x36")
    assert "0 done, 1 failed, 1 skipped" in proc.stderr  # the failure is remembered, not decoded again
    proc = run_pipeline(root, tmp_path, "--size", "64x36", "--retry-failed")
    assert "0 done, 1 failed" in proc.stderr
    bad.write_bytes(good_bytes)  # fixed by the user: size and mtime change, so it is decoded again
    proc = run_pipeline(root, tmp_path, "--size", "64x36")
    assert "1 done, 0 failed, 1 skipped" in proc.stderr
    assert _videos(tmp_path / "manifests")["fake0000x0"]["status"] == "done"
    check_manifest_agrees(tmp_path / "shards", tmp_path / "manifests")


def test_second_run_on_the_same_manifests_is_refused(tmp_path):
    root = make_dfdc_tree(tmp_path / "videos", n_real=1, fakes_per_real=0, seconds=1.0, size=(96, 64))
    with manifest.lock(tmp_path / "manifests"):
        proc = run_pipeline(root, tmp_path, "--size", "64x36", check=False)
        with pytest.raises(LockError):
            with manifest.lock(tmp_path / "manifests"):
                pass
    assert proc.returncode == 2 and "another process is writing" in proc.stderr


@pytest.mark.parametrize("phase", ["writing", "committed"])
def test_interrupted_resplit_is_undone_or_finished(tmp_path, phase):
    root = make_dfdc_tree(tmp_path / "videos", n_real=6, fakes_per_real=1, seconds=1.0, size=(96, 64))
    run_pipeline(root, tmp_path, "--size", "64x36")
    shards, manifests = tmp_path / "shards", tmp_path / "manifests"
    before = {f["key"]: f["split"] for f in read_manifest(manifests)["frames"]}
    resplit.resplit(shards, manifests, seed=7, val_fraction=0.5)
    after = {f["key"]: f["split"] for f in read_manifest(manifests)["frames"]}
    assert before != after and before.keys() == after.keys()
    # Replay an interruption: journal claims a resplit back to seed 0 was in progress.
    old = manifest.finished_shards(manifests)
    journal = {"phase": phase, "old": old if phase == "committed" else [], "new": [], "seed": 0,
               "val_fraction": 0.3}
    if phase == "writing":  # a half-written new shard that must be thrown away
        (shards / ".train-real-000099.tar.tmp").write_bytes(b"partial")
    (manifest.parts_dir(manifests) / resplit_journal.JOURNAL).write_text(json.dumps(journal))
    resplit_journal.recover(shards, manifests)
    assert not (manifest.parts_dir(manifests) / resplit_journal.JOURNAL).exists()
    assert not list(shards.glob(".*.tmp"))
    if phase == "writing":
        manifest.consolidate(manifests)
        assert {f["key"]: f["split"] for f in read_manifest(manifests)["frames"]} == after
        check_manifest_agrees(shards, manifests)
    else:
        assert manifest.finished_shards(manifests) == [] and not list(shards.glob("*.tar"))
        cfg = json.loads((manifest.parts_dir(manifests) / "config.json").read_text())
        assert cfg["seed"] == 0


def test_timeout_fails_the_video_and_keeps_the_rest(tmp_path):
    """b hangs (an ffmpeg wrapper that sleeps for it), a does not: b fails with the timeout, a is done."""
    root = tmp_path / "videos"
    make_clip(root / "a.mp4", (96, 64), 1.0)
    make_clip(root / "b.mp4", (96, 64), 1.0, source="mandelbrot")
    wrapper = tmp_path / "hanging-ffmpeg"
    wrapper.write_text(f'#!/bin/sh\ncase "$*" in *b.mp4*) exec sleep 120;; esac\nexec "{find_ffmpeg()}" "$@"\n')
    wrapper.chmod(0o755)
    proc = run_module("pipeline.run", *pipeline_argv(root, tmp_path, "--size", "64x36", "--timeout", "5"),
                      env={"FFMPEG": str(wrapper)})
    assert proc.returncode == 0
    videos = _videos(tmp_path / "manifests")
    assert videos["b"]["status"] == "failed" and "longer than 5 s" in videos["b"]["error"]
    assert videos["a"]["status"] == "done" and videos["a"]["n_frames"] == 1
    table = pq.read_table(tmp_path / "manifests" / "videos.parquet")
    assert table.num_rows == 2
