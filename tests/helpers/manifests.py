"""Reading what the pipeline wrote and checking that the manifest and the shards describe each other."""
from __future__ import annotations

import json
from pathlib import Path

import pytest


def read_manifest(manifests: Path) -> dict:
    """videos.parquet and frames.parquet as lists of dicts, and dataset.json."""
    import pyarrow.parquet as pq

    manifests = Path(manifests)
    return {"videos": pq.read_table(manifests / "videos.parquet").to_pylist(),
            "frames": pq.read_table(manifests / "frames.parquet").to_pylist(),
            "dataset": json.loads((manifests / "dataset.json").read_text())}


def check_manifest_agrees(shards: Path, manifests: Path) -> dict:
    """Assert that the manifest and the shards describe each other exactly (docs/manifest.md).

    Returns {key: (sha1 of the JPEG, the json member)} for comparing datasets made in different ways.
    """
    import collections
    import hashlib
    import io
    import tarfile

    from PIL import Image

    shards, m = Path(shards), read_manifest(manifests)
    videos, frames, dataset = m["videos"], m["frames"], m["dataset"]
    by_video = {v["video_id"]: v for v in videos}
    assert len(by_video) == len(videos), "a video id appears twice in videos.parquet"
    keys = [f["key"] for f in frames]
    assert len(set(keys)) == len(keys), "a frame key appears twice in frames.parquet"

    # every listed shard is on disk and nothing else is
    listed = {s["name"] for s in dataset["shards"]}
    on_disk = {p.name for p in shards.glob("*.tar")}
    assert listed == on_disk == {f["shard"] for f in frames}
    assert not list(shards.glob(".*.tmp")), "temporary shard files left behind"

    out = {}
    members_seen = collections.defaultdict(set)
    for shard in sorted(listed):
        with tarfile.open(shards / shard) as tar:
            members = tar.getmembers()
        members_seen[shard] = {mem.name for mem in members}
        by_offset = {mem.offset: (i, mem) for i, mem in enumerate(members)}
        with open(shards / shard, "rb") as fh:
            for f in (f for f in frames if f["shard"] == shard):
                i, mem = by_offset[f["offset"]]
                assert mem.name == f"{f['key']}.jpg" and mem.size == f["bytes"], (shard, f)
                nxt = members[i + 1]
                assert nxt.name == f"{f['key']}.json", (shard, f)
                fh.seek(mem.offset_data)
                jpeg = fh.read(mem.size)
                fh.seek(nxt.offset_data)
                sample = json.loads(fh.read(nxt.size))
                with Image.open(io.BytesIO(jpeg)) as im:
                    im.load()
                    assert im.format == "JPEG" and im.size == (f["width"], f["height"]), (f, im.size)
                video = by_video[f["video_id"]]
                expect = {"key": f["key"], "video_id": f["video_id"], "index": f["index"], "label": video["label"],
                          "split": video["split"], "source": video["source"], "original": video["original"],
                          "group": video["group"], "width": f["width"], "height": f["height"]}
                assert {k: sample.get(k) for k in expect} == expect, (sample, expect)
                assert abs(sample["second"] - f["second"]) < 1e-6
                out[f["key"]] = (hashlib.sha1(jpeg).hexdigest(), sample)
    expected_members = collections.defaultdict(set)
    for f in frames:
        expected_members[f["shard"]] |= {f"{f['key']}.jpg", f"{f['key']}.json"}
    assert dict(members_seen) == dict(expected_members), "tar members and frames.parquet differ"

    # frames agree with their videos
    per_video = collections.Counter(f["video_id"] for f in frames)
    for f in frames:
        v = by_video[f["video_id"]]
        assert v["status"] == "done"
        assert (f["split"], f["label"]) == (v["split"], v["label"])
        assert f["key"] == f"{f['video_id']}_{f['index']:04d}" and "." not in f["key"]
        assert (f["width"], f["height"]) == (v["frame_width"], v["frame_height"])
        assert f["shard"].startswith(f"{v['split']}-{v['label'] or 'unlabelled'}-")
    for v in videos:
        if v["status"] == "done":
            assert v["n_frames"] == per_video[v["video_id"]] > 0, v
            assert v["error"] is None
        else:
            assert v["status"] == "failed" and v["error"] and "\n" not in v["error"], v
            assert per_video[v["video_id"]] == 0

    # dataset.json counts
    n_frames = collections.Counter((f["split"], f["label"] or "unlabelled") for f in frames)
    n_videos = collections.Counter((v["split"], v["label"] or "unlabelled") for v in videos if v["status"] == "done")
    flat = lambda nested: {(s, lab): n for s, d in nested.items() for lab, n in d.items()}  # noqa: E731
    assert flat(dataset["frames"]) == dict(n_frames)
    assert flat(dataset["videos"]) == dict(n_videos)
    assert dataset["failed"] == sum(v["status"] != "done" for v in videos)
    for s in dataset["shards"]:
        rows = [f for f in frames if f["shard"] == s["name"]]
        assert s["frames"] == len(rows) and s["videos"] == len({f["video_id"] for f in rows})
        assert s["bytes"] == sum(f["bytes"] for f in rows)
    real, fake = n_frames[("train", "real")], n_frames[("train", "fake")]
    if real and fake:
        assert dataset["class_weights"]["real"] == pytest.approx((real + fake) / (2 * real))
        assert dataset["class_weights"]["fake"] == pytest.approx((real + fake) / (2 * fake))
    return out


def check_clips_agree(shards: Path, manifests: Path) -> dict:
    """Assert that clips.parquet, dataset.json's clips section and the clip shards describe each other exactly:
    every clip shard on disk is listed (and nothing else), each clip's JPEGs then its json are in its shard at its
    offset in order, their crc32s match, and no member is left over. Returns {key: (status, times, sha1s)}."""
    import hashlib
    import tarfile
    import zlib

    import pyarrow.parquet as pq

    shards, manifests = Path(shards), Path(manifests)
    rows = pq.read_table(manifests / "clips.parquet").to_pylist()
    section = json.loads((manifests / "dataset.json").read_text())["clips"]
    listed = {s["name"] for s in section["shards"]}
    assert listed == {f"clips/{p.name}" for p in (shards / "clips").glob("*.tar")} == {
        r["shard"] for r in rows if r["shard"]}
    assert section["clips"] == len(rows)
    keys = [r["key"] for r in rows if r["key"]]
    assert len(set(keys)) == len(keys), "a clip key appears twice in clips.parquet"
    out, seen = {}, set()
    for shard in sorted(listed):
        with tarfile.open(shards / shard) as tar:
            members = tar.getmembers()
            by_offset = {m.offset: i for i, m in enumerate(members)}
            for r in (r for r in rows if r["shard"] == shard):
                i = by_offset[r["offset"]]
                mine = members[i:i + r["n_frames"] + 1]
                assert [m.name for m in mine] == [f"{r['key']}.{j:03d}.jpg" for j in range(r["n_frames"])] + [
                    f"{r['key']}.json"], r["key"]
                jpegs = [tar.extractfile(m).read() for m in mine[:-1]]
                assert [zlib.crc32(j) for j in jpegs] == r["crc32"], r["key"]
                assert json.loads(tar.extractfile(mine[-1]).read())["times"] == r["times"]
                assert len(r["times"]) == r["n_frames"] and r["start"] == r["times"][0]
                seen.update(m.name for m in mine)
                out[r["key"]] = (r["status"], tuple(r["times"]), tuple(hashlib.sha1(j).hexdigest() for j in jpegs))
        assert {m.name for m in members} <= seen, f"{shard} holds members clips.parquet does not name"
    return out
