"""Manifest-shard agreement on the session's `tiny_dataset` (real pipeline output; only read here)."""
from __future__ import annotations

import collections
import json
import subprocess
import tarfile

import pyarrow.parquet as pq
import webdataset as wds

from helpers.manifests import check_manifest_agrees, read_manifest

VIDEO_COLUMNS = ["video_id", "path", "source", "label", "original", "group", "split", "status", "error", "duration",
                 "width", "height", "fps", "n_frames", "frame_width", "frame_height", "shard"]
FRAME_COLUMNS = ["key", "video_id", "index", "second", "split", "label", "shard", "offset", "bytes", "width",
                 "height"]


def test_manifest_and_shards_agree(tiny_dataset):
    out = check_manifest_agrees(tiny_dataset["shards"], tiny_dataset["manifests"])
    m = read_manifest(tiny_dataset["manifests"])
    assert len(out) == len(m["frames"]) == 24 * 3  # 24 clips of 3 s at 1 fps
    assert m["dataset"]["failed"] == 0


def test_schemas_follow_the_contract(tiny_dataset):
    videos = pq.read_schema(tiny_dataset["manifests"] / "videos.parquet")
    frames = pq.read_schema(tiny_dataset["manifests"] / "frames.parquet")
    assert set(VIDEO_COLUMNS) <= set(videos.names)
    assert frames.names[: len(FRAME_COLUMNS)] == FRAME_COLUMNS
    m = read_manifest(tiny_dataset["manifests"])
    assert {v["label"] for v in m["videos"]} == {"real", "fake"}
    assert {v["split"] for v in m["videos"]} <= {"train", "val"}
    assert {v["status"] for v in m["videos"]} == {"done"}
    d = m["dataset"]
    for key in ("version", "videos", "frames", "failed", "split_ratio", "class_weights", "shards", "config",
                "ffmpeg", "created"):
        assert key in d, key
    assert d["ffmpeg"].startswith("ffmpeg version")
    assert d["config"]["size"] == [128, 72] and d["config"]["fps"] == 1.0


def test_shard_names_and_sizes(tiny_dataset):
    """Per split and label, numbered; --shard-size 40KB means several shards, each sealed near that size."""
    d = read_manifest(tiny_dataset["manifests"])["dataset"]
    names = [s["name"] for s in d["shards"]]
    assert len(names) > 4
    by_stream = collections.defaultdict(list)
    for s in d["shards"]:
        split, label, number = s["name"][:-4].split("-")
        assert (split, label) == (s["split"], s["label"]) and len(number) == 6
        by_stream[(split, label)].append(int(number))
    for numbers in by_stream.values():
        assert sorted(numbers) == list(range(len(numbers)))
    for s in d["shards"]:
        size = (tiny_dataset["shards"] / s["name"]).stat().st_size
        assert size % 512 == 0 and size < 40_000 + 20_000  # sealed once past the target


def test_video_frames_are_contiguous_and_in_order(tiny_dataset):
    frames = read_manifest(tiny_dataset["manifests"])["frames"]
    for shard in {f["shard"] for f in frames}:
        rows = sorted((f for f in frames if f["shard"] == shard), key=lambda f: f["offset"])
        order = [r["video_id"] for r in rows]
        runs = [v for i, v in enumerate(order) if i == 0 or order[i - 1] != v]
        assert len(runs) == len(set(runs)), f"{shard}: a video's frames are split up"
        for vid in set(order):
            idx = [r["index"] for r in rows if r["video_id"] == vid]
            assert idx == sorted(idx)


def test_plain_tar_lists_the_members(tiny_dataset):
    frames = read_manifest(tiny_dataset["manifests"])["frames"]
    shard = frames[0]["shard"]
    listing = subprocess.run(["tar", "tf", str(tiny_dataset["shards"] / shard)], capture_output=True, text=True,
                             check=True).stdout.split()
    keys = [f["key"] for f in frames if f["shard"] == shard]
    assert listing == [name for k in keys for name in (f"{k}.jpg", f"{k}.json")]
    extracted = subprocess.run(["tar", "xOf", str(tiny_dataset["shards"] / shard), f"{keys[0]}.json"],
                               capture_output=True, check=True).stdout
    assert json.loads(extracted)["key"] == keys[0]


def test_webdataset_reads_every_frame(tiny_dataset):
    m = read_manifest(tiny_dataset["manifests"])
    urls = [str(tiny_dataset["shards"] / s["name"]) for s in m["dataset"]["shards"]]
    by_key = {f["key"]: f for f in m["frames"]}
    seen = []
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("rgb8"):
        key = sample["__key__"]
        f = by_key[key]
        meta = sample["json"]
        assert sample["jpg"].shape == (f["height"], f["width"], 3)
        assert (meta["video_id"], meta["index"], meta["split"], meta["label"]) == (
            f["video_id"], f["index"], f["split"], f["label"])
        assert set(meta) >= {"video_id", "second", "label", "split", "source", "original"}
        assert sample["__url__"].endswith(f["shard"])
        seen.append(key)
    assert sorted(seen) == sorted(by_key)


def test_json_member_fields(tiny_dataset):
    m = read_manifest(tiny_dataset["manifests"])
    videos = {v["video_id"]: v for v in m["videos"]}
    f = next(f for f in m["frames"] if f["label"] == "fake")
    with tarfile.open(tiny_dataset["shards"] / f["shard"]) as tar:
        sample = json.loads(tar.extractfile(f"{f['key']}.json").read())
    v = videos[f["video_id"]]
    assert sample["video_id"] == f["video_id"] and sample["second"] == f["second"]
    assert sample["label"] == "fake" and sample["split"] == v["split"] and sample["source"] == "dfdc"
    assert sample["original"] == v["original"] and sample["original"].startswith("real")


def test_dataset_counts_ratio_and_weights(tiny_dataset):
    m = read_manifest(tiny_dataset["manifests"])
    d, frames, videos = m["dataset"], m["frames"], m["videos"]
    assert sum(n for s in d["videos"].values() for n in s.values()) == len(videos) == 24
    assert sum(n for s in d["frames"].values() for n in s.values()) == len(frames)
    n_val = sum(v["split"] == "val" for v in videos)
    assert d["split_ratio"]["videos"]["val"] == round(n_val / len(videos), 4)
    assert d["split_ratio"]["videos"]["train"] + d["split_ratio"]["videos"]["val"] == 1.0
    train = collections.Counter(f["label"] for f in frames if f["split"] == "train")
    n = train["real"] + train["fake"]
    assert d["class_weights"] == {"real": n / (2 * train["real"]), "fake": n / (2 * train["fake"])}
