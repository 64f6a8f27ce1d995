"""Issue 11 item 10: behaviour that had no test: merge refusing parts made with different settings, resplit of a
--part dataset, and the pool's recovery after a worker process dies."""
from __future__ import annotations

import json
import shutil

import pytest

from helpers.clips import make_clip, make_dfdc_tree
from helpers.commands import pipeline_argv, run_module
from helpers.manifests import check_manifest_agrees, read_manifest
from pipeline.core import manifest
from pipeline.ffmpeg.locate import find_ffmpeg
from pipeline.merge import MergeError, merge


@pytest.mark.parametrize("key, value", [("fps", 2.0), ("size", [640, 360]), ("quality", 5), ("seed", 3),
                                        ("val_fraction", 0.2)])
def test_merge_refuses_parts_with_different_settings(tmp_path, key, value):
    base = {"fps": 1.0, "size": [1280, 720], "quality": 2, "seed": 0, "val_fraction": 0.3, "grouping": "identities"}
    manifest.write_part_config(tmp_path, "p1of2", {**base, "part": [1, 2]})
    manifest.write_part_config(tmp_path, "p2of2", {**base, key: value, "part": [2, 2]})
    with pytest.raises(MergeError, match=key):
        merge(tmp_path)
    proc = run_module("pipeline.merge", "--manifests", tmp_path, check=False)
    assert proc.returncode == 2 and key in proc.stderr


def test_resplit_of_a_part_dataset(tmp_path):
    videos = make_dfdc_tree(tmp_path / "videos", n_real=6, fakes_per_real=1, seconds=1.0, size=(96, 64))
    out = tmp_path / "parted"
    args = ("--size", "96x64", "--shard-size", "6KB")
    for part in ("1/2", "2/2"):
        run_module("pipeline.run", *pipeline_argv(videos, out, *args, "--part", part))
    run_module("pipeline.merge", "--manifests", out / "manifests", "--parts", "2")
    before = check_manifest_agrees(out / "shards", out / "manifests")
    splits = {v["video_id"]: v["split"] for v in read_manifest(out / "manifests")["videos"]}
    seed = 7
    run_module("pipeline.resplit", "--shards", out / "shards", "--manifests", out / "manifests", "--seed", seed,
               "--val-fraction", "0.5")
    after = read_manifest(out / "manifests")
    assert sorted(after["frames"], key=lambda f: f["key"]) and len(after["frames"]) == len(before)
    assert check_manifest_agrees(out / "shards", out / "manifests").keys() == before.keys()
    assert any(v["split"] != splits[v["video_id"]] for v in after["videos"])  # something moved
    names = [s["name"] for s in after["dataset"]["shards"]]
    assert all("-p1of2-" in n or "-p2of2-" in n for n in names)  # moved videos stay in their part's shards
    for cfg in manifest.read_part_configs(out / "manifests").values():
        assert cfg["seed"] == seed and cfg["val_fraction"] == 0.5
    proc = run_module("pipeline.run", *pipeline_argv(videos, out, *args, "--part", "1/2"))  # later runs accept it
    assert "0 done, 0 failed" in proc.stderr


def test_pool_recovers_after_a_worker_dies(tmp_path):
    """An ffmpeg wrapper kills its parent (the pool's worker) for one video: that video is failed with a reason,
    the pool is rebuilt, and every other video is done."""
    root = tmp_path / "videos"
    for name in ("a", "b", "die", "d", "e"):
        make_clip(root / f"{name}.mp4", (96, 64), 1.0)
    wrapper = tmp_path / "killing-ffmpeg"
    wrapper.write_text(f'#!/bin/sh\ncase "$*" in *die.mp4*) kill -9 $PPID; exec sleep 30;; esac\n'
                       f'exec "{find_ffmpeg()}" "$@"\n')
    wrapper.chmod(0o755)
    proc = run_module("pipeline.run", *pipeline_argv(root, tmp_path, "--size", "64x36", "--timeout", "60"),
                      env={"FFMPEG": str(wrapper)})
    assert proc.returncode == 0, proc.stderr
    videos = {v["video_id"]: v for v in read_manifest(tmp_path / "manifests")["videos"]}
    assert videos["die"]["status"] == "failed" and "worker process died" in videos["die"]["error"]
    assert all(videos[k]["status"] == "done" for k in ("a", "b", "d", "e"))
