"""`python -m pipeline.resplit` (no ffmpeg) and `--part K/N` runs joined by `python -m pipeline.merge`."""
from __future__ import annotations

import collections
import shutil

import pytest

from pipeline.split.hashed import assign_split

from helpers.clips import make_dfdc_tree
from helpers.commands import pipeline_argv, run_module
from helpers.manifests import check_manifest_agrees, read_manifest

NO_FFMPEG = {"FFMPEG": "/nonexistent/ffmpeg"}


@pytest.fixture
def copy_of_tiny(tiny_dataset, tmp_path):
    """A private copy of the session's tiny dataset (its shards and manifests must stay as they are)."""
    shutil.copytree(tiny_dataset["shards"], tmp_path / "shards")
    shutil.copytree(tiny_dataset["manifests"], tmp_path / "manifests")
    return tmp_path


def _resplit(out, *args, check=True):
    return run_module("pipeline.resplit", "--shards", out / "shards", "--manifests", out / "manifests", *args,
                      env=NO_FFMPEG, check=check)


def test_resplit_moves_groups_and_keeps_every_frame_once(copy_of_tiny, tiny_dataset):
    out = copy_of_tiny
    before = check_manifest_agrees(out / "shards", out / "manifests")
    old_videos = {v["video_id"]: v for v in read_manifest(out / "manifests")["videos"]}
    proc = _resplit(out, "--val-fraction", "0.5", "--seed", "3")
    assert "resplit:" in proc.stderr
    after = check_manifest_agrees(out / "shards", out / "manifests")  # json members carry the new split
    m = read_manifest(out / "manifests")
    videos = {v["video_id"]: v for v in m["videos"]}
    for v in videos.values():
        assert v["split"] == assign_split(v["label"], v["group"], 3, 0.5)
    moved = [vid for vid in videos if videos[vid]["split"] != old_videos[vid]["split"]]
    assert moved, "seed 3 at 0.5 should move some groups"
    groups = collections.defaultdict(set)
    for f in m["frames"]:
        groups[videos[f["video_id"]]["group"]].add(f["split"])
    assert all(len(s) == 1 for s in groups.values())
    # every frame exactly once, with its bytes unchanged; only the split in its json moved
    assert sorted(after) == sorted(before)
    for key, (sha, sample) in after.items():
        assert sha == before[key][0]
        assert {**sample, "split": before[key][1]["split"]} == before[key][1]
        assert sample["split"] == videos[sample["video_id"]]["split"]
    assert m["dataset"]["config"]["seed"] == 3 and m["dataset"]["config"]["val_fraction"] == 0.5
    assert not (out / "manifests" / "parts" / "resplit.json").exists()
    # the session's dataset was not touched
    assert check_manifest_agrees(tiny_dataset["shards"], tiny_dataset["manifests"]) == before


def test_later_runs_keep_the_new_split(copy_of_tiny, tiny_dataset):
    out = copy_of_tiny
    _resplit(out, "--val-fraction", "0.5", "--seed", "3")
    resplit_frames = read_manifest(out / "manifests")["frames"]
    proc = run_module("pipeline.run", *pipeline_argv(tiny_dataset["videos"], out, "--size", "128x72",
                                                     "--shard-size", "40KB"))
    assert "0 done, 0 failed, 24 skipped" in proc.stderr
    m = read_manifest(out / "manifests")
    assert m["frames"] == resplit_frames
    assert m["dataset"]["config"]["seed"] == 3 and m["dataset"]["config"]["val_fraction"] == 0.5
    bad = run_module("pipeline.run", *pipeline_argv(tiny_dataset["videos"], out, "--size", "128x72", "--seed", "5"),
                     check=False)
    assert bad.returncode == 2 and "resplit" in bad.stderr and "seed" in bad.stderr
    bad = run_module("pipeline.run", *pipeline_argv(tiny_dataset["videos"], out, "--size", "96x54"), check=False)
    assert bad.returncode == 2 and "size" in bad.stderr
    assert read_manifest(out / "manifests")["frames"] == resplit_frames


def test_resplit_back_restores_the_original_split(copy_of_tiny):
    out = copy_of_tiny
    original = read_manifest(out / "manifests")
    _resplit(out, "--val-fraction", "0.5", "--seed", "3")
    _resplit(out, "--val-fraction", "0.3", "--seed", "0")
    back = read_manifest(out / "manifests")
    pick = lambda rows: sorted((r["key"], r["split"], r["label"]) for r in rows)  # noqa: E731
    assert pick(back["frames"]) == pick(original["frames"])
    assert back["dataset"]["class_weights"] == original["dataset"]["class_weights"]
    check_manifest_agrees(out / "shards", out / "manifests")


def test_resplit_rejects_bad_fraction_and_empty_folders(copy_of_tiny, tmp_path):
    out = copy_of_tiny
    proc = _resplit(out, "--val-fraction", "2", check=False)
    assert proc.returncode == 2 and "val fraction" in proc.stderr
    (tmp_path / "empty" / "shards").mkdir(parents=True)
    (tmp_path / "empty" / "manifests").mkdir()
    proc = _resplit(tmp_path / "empty", check=False)
    assert proc.returncode == 2 and "no finished shards" in proc.stderr


@pytest.fixture(scope="module")
def parts_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("parts")
    videos = make_dfdc_tree(root / "videos", n_real=6, fakes_per_real=1, seconds=1.0, size=(96, 64))
    return root, videos


def test_parts_then_merge_equal_one_run(parts_tree):
    root, videos = parts_tree
    args = ("--size", "96x64", "--shard-size", "6KB")
    single, parted = root / "single", root / "parted"
    run_module("pipeline.run", *pipeline_argv(videos, single, *args))
    run_module("pipeline.run", *pipeline_argv(videos, parted, *args, "--part", "1/2"))
    early = run_module("pipeline.merge", "--manifests", parted / "manifests", "--parts", "2", check=False)
    assert early.returncode == 2 and "2/2" in early.stderr  # part 2 has not run yet
    run_module("pipeline.run", *pipeline_argv(videos, parted, *args, "--part", "2/2"))
    run_module("pipeline.merge", "--manifests", parted / "manifests", env=NO_FFMPEG)

    one = check_manifest_agrees(single / "shards", single / "manifests")
    merged = check_manifest_agrees(parted / "shards", parted / "manifests")
    assert merged == one  # same keys, JPEG bytes and json members (so the same splits)
    a, b = read_manifest(single / "manifests"), read_manifest(parted / "manifests")
    pick = lambda rows: sorted((r["key"], r["split"], r["label"]) for r in rows)  # noqa: E731
    assert pick(a["frames"]) == pick(b["frames"])
    for key in ("videos", "frames", "class_weights", "failed"):
        assert a["dataset"][key] == b["dataset"][key], key
    names = [s["name"] for s in b["dataset"]["shards"]]
    assert any("-p1of2-" in n for n in names) and any("-p2of2-" in n for n in names)
    assert all("-p1of2-" in n or "-p2of2-" in n for n in names)
    # a group never straddles the parts: fakes are in their original's part
    videos_b = {v["video_id"]: v for v in b["videos"]}
    part_of_video = {f["video_id"]: f["shard"].split("-")[2] for f in b["frames"]}
    for vid, v in videos_b.items():
        if v["original"]:
            assert part_of_video[vid] == part_of_video[v["original"]]
    assert b["dataset"]["config"]["parts"] == [[1, 2], [2, 2]]
