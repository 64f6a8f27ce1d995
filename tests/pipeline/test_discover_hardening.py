"""Issue 21 items 3, 4, 10: labels files are data (no entry may leave the videos folder unless the user says so),
ids stay distinct whatever the script of a name, and symlinked dataset folders are followed. Real ffmpeg clips."""
from __future__ import annotations

import json
import os

import pytest

from helpers.clips import make_clip
from helpers.commands import pipeline_argv, run_module
from helpers.manifests import read_manifest
from pipeline.sources.discover import discover
from pipeline.sources.video import OutsidePath, safe_id


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "c.mp4", seconds=1.0)


def _copy(clip, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(clip.read_bytes())
    return path


@pytest.mark.parametrize("rel", ["../outside.mp4", "/etc/passwd", "sub/../../outside.mp4", "../../../../etc/passwd"])
def test_labels_csv_paths_outside_the_folder_are_refused(tmp_path, clip, rel):
    root = tmp_path / "videos"
    _copy(clip, root / "a.mp4")
    _copy(clip, tmp_path / "outside.mp4")
    (root / "labels.csv").write_text(f"path,label\na.mp4,real\n{rel},fake\n")
    with pytest.raises(OutsidePath, match=r"labels.csv line 3"):
        discover(root)
    proc = run_module("pipeline.run", *pipeline_argv(root, tmp_path / "out"), check=False)
    assert proc.returncode == 2 and "line 3" in proc.stderr and "--allow-outside-paths" in proc.stderr, proc.stderr
    assert not (tmp_path / "out" / "shards").exists() or not list((tmp_path / "out" / "shards").glob("*.tar"))


def test_allow_outside_paths_accepts_them(tmp_path, clip):
    root = tmp_path / "videos"
    _copy(clip, root / "a.mp4")
    _copy(clip, tmp_path / "outside.mp4")
    (root / "labels.csv").write_text("path,label\na.mp4,real\n../outside.mp4,fake\n")
    run_module("pipeline.run", *pipeline_argv(root, tmp_path / "out", "--allow-outside-paths"))
    videos = read_manifest(tmp_path / "out" / "manifests")["videos"]
    assert sorted(v["status"] for v in videos) == ["done", "done"]


@pytest.mark.parametrize("name", ["../x.mp4", "/etc/passwd", "sub/../../x.mp4"])
def test_metadata_json_names_outside_the_part_are_refused(tmp_path, clip, name):
    part = tmp_path / "videos" / "dfdc_train_part_0"
    _copy(clip, part / "a.mp4")
    (part / "metadata.json").write_text(json.dumps({"a.mp4": {"label": "REAL"}, name: {"label": "FAKE"}}))
    with pytest.raises(OutsidePath, match="metadata.json entry"):
        discover(tmp_path / "videos")


def test_non_ascii_names_stay_distinct_and_stable(tmp_path, clip):
    root = tmp_path / "videos"
    names = ["名前.mp4", "日本.mp4", "été.mp4", "ete.mp4", "Ελληνικά.mp4", "plain.mp4"]
    for n in names:
        _copy(clip, root / n)
    _, videos = discover(root)
    ids = [v.video_id for v in videos]
    assert len(set(ids)) == len(names) and not any(v.error for v in videos), ids
    assert "plain" in ids and "ete" in ids  # ASCII names keep their ids
    assert safe_id("été") == safe_id("e\u0301te\u0301")  # NFC and NFD (macOS) spellings: one id
    assert all(len(i) <= 64 for i in ids)
    run_module("pipeline.run", *pipeline_argv(root, tmp_path / "out"))
    done = [v for v in read_manifest(tmp_path / "out" / "manifests")["videos"] if v["status"] == "done"]
    assert len(done) == len(names)


def test_symlinked_dataset_folders_are_followed(tmp_path, clip):
    store = tmp_path / "store" / "dfdc_train_part_0"
    _copy(clip, store / "a.mp4")
    _copy(clip, store / "b.mp4")
    (store / "metadata.json").write_text(json.dumps({"a.mp4": {"label": "REAL"},
                                                     "b.mp4": {"label": "FAKE", "original": "a.mp4"}}))
    root = tmp_path / "videos"
    root.mkdir()
    os.symlink(store, root / "dfdc_train_part_0")
    os.symlink(root, root / "dfdc_train_part_0" / "loop")  # a link back up is visited once, not forever
    layout, videos = discover(root)
    assert layout == "dfdc" and sorted(v.video_id for v in videos) == ["a", "b"]
    assert not any(v.error for v in videos)
