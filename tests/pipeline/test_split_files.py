"""Issue 17 item 1: official split files and test lists win over the hash split; `test` is a split like the others;
discovery knows Celeb-DF-v2 and FaceForensics++'s DeepFakeDetection folders."""
from __future__ import annotations

import json
import shutil

import pytest

from pipeline.split import files as splitfiles
from pipeline.sources.discover import discover
from pipeline.sources.video import Video
from pipeline.split.files import SplitFileError, apply, read_split_file

from helpers.clips import make_clip
from helpers.commands import pipeline_argv, run_module
from helpers.manifests import check_manifest_agrees, read_manifest
from helpers.official import CELEBDF, make_celebdf_tree, make_ffpp_tree
from helpers.paths import SHARED_DATA

SPLITS = SHARED_DATA / "ffpp_splits"
need_splits = pytest.mark.skipif(not SPLITS.is_dir(), reason="../shared/data/ffpp_splits is not here")


@need_splits
def test_the_real_ffpp_files_give_720_140_140_videos_per_method():
    files = [read_split_file(str(SPLITS / f"{s}.json")) for s in ("train", "val", "test")]
    assert [(f.split, len(f.pairs)) for f in files] == [("train", 360), ("val", 70), ("test", 70)]
    ids = sorted({i for f in files for p in f.pairs for i in p})
    videos = [Video(f"r{i}", f"/x/original_sequences/youtube/c23/videos/{i}.mp4", "real", None, i, "ffpp/youtube")
              for i in ids]
    for f in files:
        for a, b in (tuple(p) for p in f.pairs):
            for t, s in ((a, b), (b, a)):
                videos.append(Video(f"f{t}_{s}", f"/x/manipulated_sequences/Deepfakes/c23/videos/{t}_{s}.mp4",
                                    "fake", f"r{t}", t, "ffpp/Deepfakes"))
    placed = apply(files, videos, seed=0, val_fraction=0.3)
    for label, expected in (("real", (720, 140, 140)), ("fake", (720, 140, 140))):
        counts = tuple(sum(v.label == label and s == split for v, s in placed) for split in ("train", "val", "test"))
        assert counts == expected, label
    assert splitfiles.crossing_groups(placed) == []  # pairs are disjoint: no identity on two sides


@need_splits
def test_the_real_ffpp_files_place_the_real_sample_clips():
    layout, videos = discover(SHARED_DATA / "ffpp_sample")
    files = splitfiles.read_split_files([str(SPLITS / f"{s}.json") for s in ("train", "val", "test")])
    placed = {v.video_id: s for v, s in apply(files, videos, seed=0, val_fraction=0.3)}
    # 004_982 is the official val pair ['004', '982'], 519_515 the train pair ['515', '519']
    assert placed == {"ffpp-youtube-c23-004": "val", "ffpp-NeuralTextures-c23-004_982": "val",
                      "ffpp-youtube-c23-519": "train", "ffpp-Deepfakes-c23-519_515": "train"}


def test_split_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "train.json"
    bad.write_text('{"not": "pairs"}')
    with pytest.raises(SplitFileError, match="train.json: expected a JSON list"):
        read_split_file(str(bad))
    odd = tmp_path / "mine.json"
    odd.write_text('[["1", "2"]]')
    with pytest.raises(SplitFileError, match="SPLIT="):
        read_split_file(str(odd))
    assert read_split_file(f"val={odd}").split == "val"
    listing = tmp_path / "List_of_testing_videos.txt"
    listing.write_text("1 YouTube-real/00170.mp4\nYouTube-real/00171.mp4\n")
    with pytest.raises(SplitFileError, match="line 2"):
        read_split_file(str(listing))
    with pytest.raises(SplitFileError, match="cannot read"):
        read_split_file(str(tmp_path / "missing.json"))
    with pytest.raises(SplitFileError, match="one of train, val, test"):
        splitfiles.parse_spec("holdout=x.txt")


@pytest.fixture(scope="module")
def ffpp_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ffpp-official")
    tree, files = make_ffpp_tree(root)
    out = root / "out"
    proc = run_module("pipeline.run", *pipeline_argv(tree, out, "--size", "64x36", *[
        a for f in files.values() for a in ("--split-file", str(f))]))
    return tree, files, out, proc


def test_ffpp_official_split_wins_and_test_is_a_split(ffpp_run):
    tree, files, out, proc = ffpp_run
    m = read_manifest(out / "manifests")
    split = {v["video_id"]: v["split"] for v in m["videos"]}
    for name, expected in (("071", "train"), ("054", "train"), ("720", "val"), ("672", "val"), ("953", "test"),
                           ("974", "test")):
        assert split[f"ffpp-youtube-c23-{name}"] == expected
    assert split["ffpp-Deepfakes-c23-953_974"] == split["ffpp-Deepfakes-c23-974_953"] == "test"
    # the DeepFakeDetection folders: actors' original and its fake, discovered, linked, hash-split together
    assert split["ffpp-actors-c23-01__walking"] == split["ffpp-DeepFakeDetection-c23-01_02__walking__ABCDEFGH"]
    d = m["dataset"]
    assert d["videos"]["test"] == {"fake": 2, "real": 2}
    assert set(d["split_ratio"]["videos"]) == {"train", "val", "test"}
    assert {s["name"].split("-000")[0] for s in d["shards"]} >= {"test-real", "test-fake"}
    assert d["config"]["split_files"] == [f"{s}={files[s].resolve()}" for s in ("train", "val", "test")]
    check_manifest_agrees(out / "shards", out / "manifests")
    verify = run_module("pipeline.verify", "--shards", out / "shards", "--manifests", out / "manifests")
    assert verify.returncode == 0
    assert "split files: 12 of 14 videos placed" in proc.stderr


def test_a_rerun_keeps_the_split_files_and_refuses_others(ffpp_run, tmp_path):
    tree, files, out, _ = ffpp_run
    again = run_module("pipeline.run", *pipeline_argv(tree, out, "--size", "64x36"))
    assert "0 done" in again.stderr and "14 skipped" in again.stderr
    other = tmp_path / "test.json"
    other.write_text(json.dumps([["071", "054"]]))
    refused = run_module("pipeline.run", *pipeline_argv(tree, out, "--size", "64x36", "--split-file", str(other)),
                         check=False)
    assert refused.returncode == 2 and "split_files" in refused.stderr and "pipeline.resplit" in refused.stderr


def test_resplit_applies_a_split_file_without_decoding(ffpp_run, tmp_path):
    tree, files, out, _ = ffpp_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    args = ("--shards", copy / "shards", "--manifests", copy / "manifests")
    run_module("pipeline.resplit", *args, "--split-file", f"test={files['train']}",
               env={"FFMPEG": "/nonexistent/ffmpeg"})
    split = {v["video_id"]: v["split"] for v in read_manifest(copy / "manifests")["videos"]}
    assert split["ffpp-youtube-c23-071"] == split["ffpp-Deepfakes-c23-054_071"] == "test"
    assert split["ffpp-youtube-c23-953"] in ("train", "val")  # no file places it now: the hash split
    check_manifest_agrees(copy / "shards", copy / "manifests")
    d = read_manifest(copy / "manifests")["dataset"]
    assert d["config"]["split_files"] == [f"test={files['train'].resolve()}"]


@pytest.fixture(scope="module")
def celebdf_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("celebdf")
    tree, test_list = make_celebdf_tree(root)
    out = root / "out"
    proc = run_module("pipeline.run", *pipeline_argv(tree, out, "--size", "64x36", "--split-file", str(test_list)))
    return tree, out, proc


def test_celebdf_layout_groups_and_test_list(celebdf_run):
    tree, out, proc = celebdf_run
    assert "layout celebdf" in proc.stderr
    videos = {v["video_id"]: v for v in read_manifest(out / "manifests")["videos"]}
    ids = {("celebdf-yt-" if folder == "YouTube-real" else "celebdf-") + stem: test for folder, stem, test in CELEBDF}
    assert set(videos) == set(ids)
    for vid, test in ids.items():
        assert (videos[vid]["split"] == "test") == test, vid
    fake = videos["celebdf-id0_id1_0000"]
    assert fake["label"] == "fake" and fake["original"] == "celebdf-id0_0000"
    assert videos["celebdf-yt-00000"]["label"] == "real"
    # id0, id1 and id2 are linked by the fakes into one group; the test list puts it on two sides: warned, counted
    assert len({videos[v]["group"] for v in videos if not v.startswith("celebdf-yt")}) == 1
    assert "split files put 1 identities (groups of linked people) on two sides" in proc.stderr


def test_dfdc_style_labels_csv_labels_a_test_folder(tmp_path):
    videos = tmp_path / "dfdc_test"
    for i, name in enumerate(("aaaa.mp4", "bbbb.mp4", "cccc.mp4")):
        make_clip(videos / "test_videos" / name, seconds=1.0, source=["testsrc2", "mandelbrot", "rgbtestsrc"][i])
    labels = tmp_path / "labels.csv"
    labels.write_text("filename,label\naaaa.mp4,1\nbbbb.mp4,0\nzzzz.mp4,1\n")
    out = tmp_path / "out"
    proc = run_module("pipeline.run", *pipeline_argv(videos, out, "--size", "64x36", "--split-file", str(labels)))
    rows = {v["video_id"]: v for v in read_manifest(out / "manifests")["videos"]}
    assert {k: (v["split"], v["label"]) for k, v in rows.items()} == {
        "test_videos-aaaa": ("test", "fake"), "test_videos-bbbb": ("test", "real"), "test_videos-cccc": ("test", None)}
    assert "1 entries match no video" in proc.stderr
    d = read_manifest(out / "manifests")["dataset"]
    assert d["videos"]["test"] == {"fake": 1, "real": 1, "unlabelled": 1}
    # the same csv in the folder itself is DFDC's layout: discovery reads filename,label
    (videos / "test_videos" / "labels.csv").write_text(labels.read_text())
    layout, found = discover(videos / "test_videos")
    assert layout == "csv" and {v.video_id: v.label for v in found if v.error is None} == {"aaaa": "fake",
                                                                                           "bbbb": "real"}


def test_parts_with_the_same_split_files_merge_and_others_are_refused(ffpp_run, tmp_path):
    tree, files, _, _ = ffpp_run
    out = tmp_path / "parts"
    specs = [a for f in files.values() for a in ("--split-file", str(f))]
    for part in ("1/2", "2/2"):
        run_module("pipeline.run", *pipeline_argv(tree, out, "--size", "64x36", "--part", part, *specs))
    run_module("pipeline.merge", "--manifests", out / "manifests", "--parts", "2")
    split = {v["video_id"]: v["split"] for v in read_manifest(out / "manifests")["videos"]}
    assert split["ffpp-youtube-c23-953"] == split["ffpp-Deepfakes-c23-974_953"] == "test"
    assert split["ffpp-youtube-c23-720"] == "val" and split["ffpp-youtube-c23-071"] == "train"
    # part 2 on another machine without the files (its own folders, copied over afterwards): merge refuses
    other, elsewhere = tmp_path / "other", tmp_path / "elsewhere"
    run_module("pipeline.run", *pipeline_argv(tree, other, "--size", "64x36", "--part", "1/2", *specs))
    run_module("pipeline.run", *pipeline_argv(tree, elsewhere, "--size", "64x36", "--part", "2/2"))
    shutil.copytree(elsewhere / "shards", other / "shards", dirs_exist_ok=True)
    shutil.copytree(elsewhere / "manifests" / "parts", other / "manifests" / "parts", dirs_exist_ok=True)
    refused = run_module("pipeline.merge", "--manifests", other / "manifests", "--parts", "2", check=False)
    assert refused.returncode != 0 and "split_files" in refused.stderr
