"""The faces stage's plan: its settings, the frame shards still to do and their tasks, cached detections.

The faces stage's plan: its settings (what decides detections, what decides faces), the frame shards still to do and
each one's task (its frames, its fakes' originals, cached detections), and the outputs of shards gone.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dfd.errors import UsageProblem

from pipeline.dataset import has_table, read_arrow, read_dataset_json
from pipeline.split.hashed import part_of
from pipeline.stages.faces import detect as detect_mod
from pipeline.stages.faces import manifest as fm
from pipeline.stages.faces.tubes import FACE_CLIPS
from pipeline.spec import FaceCrop

log = logging.getLogger(__name__)

FACES = "faces"
# 1 - SSIM (blurred grey, inside the box) at or above this marks a fake's face as manipulated. Measured on the
# FF++ pairs in ../shared/data: NeuralTextures faces 0.048-0.13 (10th percentile 0.058), Deepfakes 0.19-0.26; random
# background patches of the face's size 0.002-0.037 (90th percentile 0.022).
DIFF_THRESHOLD = 0.04


class FacesError(UsageProblem, RuntimeError):
    """The stage cannot run as asked (nothing was written)."""


def detect_settings(settings: FaceCrop) -> dict:
    """What decides the detections (the cache is reused only when all of it matches)."""
    return {"detect_size": settings.detect_size, "min_score": settings.min_score, "min_size": settings.min_size,
            "max_faces": settings.max_faces, "thresholds": list(settings.thresholds),
            "retry_scale": detect_mod.RETRY_SCALE}


def run_settings(settings: FaceCrop) -> dict:
    """The faces section's settings: the crop spec and the stage's diff threshold."""
    return {**settings.to_dict(), "diff_threshold": DIFF_THRESHOLD}



@dataclasses.dataclass
class Task:
    shard: str
    split: str
    label: str
    fingerprint: str
    frames: list[dict]            # this shard's frames (key, video_id, second, offset, bytes, width, height, label,
                                  # picture_label where frames.parquet has it)
    originals: dict[str, dict]    # fake video id -> {"id": original, "frames": {second: (shard, offset)}} | {"note"}
    cache: dict[str, tuple]       # key -> (status, faces json) from earlier detections
    clips: dict[str, list] | None = None  # video id -> its clips.parquet rows (None: the dataset has no clips)


def _read_manifest(manifests: Path) -> tuple[pa.Table, dict[str, dict]]:
    if not (has_table(manifests, "frames") and has_table(manifests, "videos")):
        raise FacesError(f"{manifests}: no frames.parquet/videos.parquet (run pipeline.run first)")
    read_dataset_json(manifests)  # its faces section is written last: a broken one stops the run before any work
    frames = read_arrow(manifests, "frames")
    videos = read_arrow(manifests, "videos", ["video_id", "label", "original", "status"])
    return frames, {v["video_id"]: v for v in videos.to_pylist()}


def cached_detections(manifests: Path, settings: FaceCrop, keys: set[str]) -> dict[str, tuple]:
    """Earlier detections of these frame keys made with the same detect settings (whatever shard they were in)."""
    import pyarrow.compute as pc

    want = detect_settings(settings)
    cache: dict[str, tuple] = {}
    paths = sorted(fm.faces_dir(manifests).glob("*.detections.parquet"))
    wanted = pa.array(sorted(keys), type=pa.string()) if paths else None
    for path in paths:
        try:
            table = pq.read_table(path)
            meta = table.schema.metadata or {}
            if json.loads(meta.get(b"detect_settings", b"null")) != want:
                continue
        except (OSError, pa.ArrowInvalid, ValueError) as exc:
            log.warning("%s: unreadable detections cache, ignored: %s", path.name, exc)
            continue
        table = table.filter(pc.is_in(table["key"], value_set=wanted))
        for k, st, faces in zip(table["key"].to_pylist(), table["status"].to_pylist(), table["faces"].to_pylist()):
            cache[k] = (st, faces)
    return cache


CLIP_COLUMNS = ("video_id", "clip", "key", "start", "times", "n_frames", "status", "warning", "width", "height",
                "shard", "offset", "picture_label")


def _clips_by_video(manifests: Path) -> dict[str, list[dict]] | None:
    """clips.parquet's rows per video (None: a dataset made without clips)."""
    if not has_table(manifests, "clips"):
        return None
    by: dict[str, list[dict]] = collections.defaultdict(list)
    table = read_arrow(manifests, "clips")
    for r in table.select([c for c in CLIP_COLUMNS if c in table.column_names]).to_pylist():  # older: no picture_label
        by[r["video_id"]].append(r)
    return dict(by)


def _finished(shards: Path, manifests: Path, s: str, d: dict | None, want: dict, fp: str, clips: bool) -> bool:
    """A frame shard's faces (and, with clips, its face clips) are done with these settings for this content."""
    folder = fm.faces_dir(manifests)
    return bool(d and fm.same_settings(d.get("settings"), want) and d.get("fingerprint") == fp
                and (d.get("faces") == 0 or (shards / FACES / s).is_file())  # no faces: no face shard
                and (folder / f"{s[:-4]}.faces.parquet").is_file()
                and (not clips or ((folder / f"{s[:-4]}.face_clips.parquet").is_file()
                                   and (not d.get("tubes") or (shards / FACE_CLIPS / s).is_file()))))


FRAME_COLUMNS = ("key", "video_id", "second", "split", "label", "shard", "offset", "bytes", "width", "height",
                 "picture_label")  # the frame's own picture label (absent from older frames.parquet)


def plan(shards: Path, manifests: Path, settings: FaceCrop, part: tuple[int, int]) -> dict:
    """Tasks for the frame shards of this part whose faces are not finished (nothing is written).

    Frames stay in one Arrow table sorted by shard (a zero-copy slice per shard, turned into rows only when the
    shard's task is built), so the orchestrator's memory stays near the manifest's size at DFDC scale.
    """
    import pyarrow.compute as pc

    frames, videos = _read_manifest(manifests)
    table = frames.select([c for c in FRAME_COLUMNS if c in frames.column_names])
    table = table.sort_by([("shard", "ascending"), ("key", "ascending")])
    by_shard: dict[str, pa.Table] = {}
    start = 0
    if table.num_rows:
        runs = pc.run_end_encode(table["shard"].combine_chunks())
        for name, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist()):
            by_shard[name] = table.slice(start, end - start)
            start = end
    originals = {v["original"] for v in videos.values() if v.get("label") == "fake" and v.get("original")}
    by_video_second: dict[str, dict] = collections.defaultdict(dict)
    needed = table.filter(pc.is_in(table["video_id"], value_set=pa.array(sorted(originals), type=pa.string())))
    for vid, sec, shard, off in zip(*(needed[c].to_pylist() for c in ("video_id", "second", "shard", "offset"))):
        by_video_second[vid][round(sec, 3)] = (shard, off)
    k, n = part
    names = sorted(s for s in by_shard if n == 1 or part_of(s, n) == k)
    fingerprints = {s: fm.fingerprint(t.select(["key", "offset", "bytes"]).to_pylist()) for s, t in by_shard.items()}
    want = run_settings(settings)
    todo, finished = [], []
    clips = _clips_by_video(manifests)
    for s in names:
        done = _finished(shards, manifests, s, fm.read_done(manifests, s), want, fingerprints[s], clips is not None)
        (finished if done else todo).append(s)
    return {"clips": clips, "by_shard": by_shard, "by_video_second": by_video_second, "videos": videos,
            "names": names,
            "todo": todo, "finished": finished, "fingerprints": fingerprints, "all_shards": sorted(by_shard)}


def make_task(p: dict, shard: str, cache: dict) -> Task:
    frames = p["by_shard"][shard].to_pylist()
    originals = {}
    for vid in sorted({f["video_id"] for f in frames}):
        v = p["videos"].get(vid) or {}
        if v.get("label") != "fake":
            continue
        orig = v.get("original")
        if not orig:
            originals[vid] = {"note": "no original recorded for this fake"}
        elif orig not in p["by_video_second"]:
            originals[vid] = {"note": f"original {orig} not in the dataset's frames"}
        else:
            originals[vid] = {"id": orig, "frames": p["by_video_second"][orig]}
    split = frames[0]["split"]
    label = frames[0]["label"] or "unlabelled"
    clips = None if p.get("clips") is None else {
        vid: p["clips"].get(vid, []) for vid in sorted({f["video_id"] for f in frames})}
    return Task(shard, split, label, p["fingerprints"][shard], frames, originals,
                {f["key"]: cache[f["key"]] for f in frames if f["key"] in cache}, clips)


def collect_garbage(shards: Path, manifests: Path, current: set[str]) -> None:
    """After a complete run: remove face outputs of frame shards that no longer exist (resplit, re-pack)."""
    folder = fm.faces_dir(manifests)
    for path in list(folder.glob("*.done.json")) + list(folder.glob("*.faces.parquet")) + \
            list(folder.glob("*.detections.parquet")) + list(folder.glob("*.face_clips.parquet")):
        stem = path.name.split(".")[0]
        if f"{stem}.tar" not in current:
            path.unlink(missing_ok=True)
            (shards / FACES / f"{stem}.tar").unlink(missing_ok=True)
            (shards / FACE_CLIPS / f"{stem}.tar").unlink(missing_ok=True)
    for tmp in [*(shards / FACES).glob(".*.tmp"), *(shards / FACE_CLIPS).glob(".*.tmp")]:
        tmp.unlink(missing_ok=True)
