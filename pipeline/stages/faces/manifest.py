"""faces_parts/ fragments -> manifests/faces.parquet and the "faces" section of dataset.json.

Light imports (pyarrow, no torch): the commands that consolidate the pipeline's manifest pass `section_for_manifest`
to pipeline.core.manifest.consolidate() (pipeline.stages.sections.SECTIONS), so that a pipeline rerun, resplit or
merge keeps the faces of the shards that still exist (and counts the ones that need the stage again). The final tables and
dataset.json are read through pipeline.dataset.
"""
from __future__ import annotations

import collections
import hashlib
import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dfd.files import parquet_writer, write_parquet, write_text

from pipeline.core.manifest import Stage
from pipeline.dataset import DATASET_JSON, has_table, read_arrow, read_dataset_json
from pipeline.spec import FaceCrop

log = logging.getLogger(__name__)

FACES_PARTS = "faces_parts"
FACES_SCHEMA = pa.schema([
    ("key", pa.string()), ("video_id", pa.string()), ("second", pa.float64()), ("split", pa.string()),
    ("label", pa.string()), ("face", pa.int32()), ("track", pa.int32()), ("x0", pa.float64()),
    ("y0", pa.float64()), ("x1", pa.float64()), ("y1", pa.float64()), ("score", pa.float64()),
    ("landmarks", pa.list_(pa.float64())), ("crop_key", pa.string()), ("crop_shard", pa.string()),
    ("diff", pa.float64()), ("manipulated", pa.bool_()), ("note", pa.string()),
    ("picture_label", pa.string()),  # its frame's own (frames.parquet's); null in fragments written before it
])
DETECTION_SCHEMA = pa.schema([("key", pa.string()), ("status", pa.string()), ("faces", pa.string())])
FACE_CLIPS_TABLE = "face_clips.parquet"
# A row per face tube (the same face across a clip's T frames, cut with one box: pipeline.stages.faces.tubes), or per
# clip without a tube (status says why, key and shard null): the clip's times and status, the sampled frame whose
# faces it follows (frame_key), the one box in clip-frame pixels, where its members start in its face-clip shard.
FACE_CLIP_SCHEMA = pa.schema([
    ("video_id", pa.string()), ("clip", pa.int32()), ("clip_key", pa.string()), ("face", pa.int32()),
    ("track", pa.int32()), ("split", pa.string()), ("label", pa.string()), ("start", pa.float64()),
    ("times", pa.list_(pa.float64())), ("clip_status", pa.string()), ("frame_key", pa.string()),
    ("x0", pa.float64()), ("y0", pa.float64()), ("x1", pa.float64()), ("y1", pa.float64()), ("key", pa.string()),
    ("n_frames", pa.int32()), ("shard", pa.string()), ("offset", pa.int64()), ("status", pa.string()),
    ("warning", pa.string()),
])


def faces_dir(manifests: Path) -> Path:
    return Path(manifests) / FACES_PARTS


def write_table(path: Path, table: pa.Table, metadata: dict | None = None) -> None:
    """A table with its settings as JSON in the schema's metadata, written atomically (dfd.files)."""
    if metadata:
        table = table.replace_schema_metadata({k: json.dumps(v) for k, v in metadata.items()})
    write_parquet(table, path)


def write_json(path: Path, data: dict) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True))


def fingerprint(frames: list[dict]) -> str:
    """Identity of a frame shard's content as the manifest lists it (keys and offsets)."""
    h = hashlib.sha1()
    for f in sorted(frames, key=lambda f: f["key"]):
        h.update(f"{f['key']}:{f['offset']}:{f['bytes']}\n".encode())
    return h.hexdigest()


def read_done(manifests: Path, shard: str) -> dict | None:
    try:
        return json.loads((faces_dir(manifests) / f"{shard[:-4]}.done.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def run_settings(manifests: Path) -> dict | None:
    try:
        return json.loads((faces_dir(manifests) / "settings.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def same_settings(a: dict | None, b: dict | None) -> bool:
    """Two run settings mean the same faces, whatever version wrote them (an older one has no spec_version)."""
    if a is None or b is None:
        return a is b
    return FaceCrop.from_dict(a) == FaceCrop.from_dict(b) and a.get("diff_threshold") == b.get("diff_threshold")


def done_shards(manifests: Path, frame_shards: list[str], fingerprints: dict[str, str] | None = None):
    """([(shard, done marker)] finished with the run's settings and, where `fingerprints` is given, for the frame
    shard's current content; [(shard, marker or None)] still pending)."""
    folder = faces_dir(manifests)
    settings = run_settings(manifests) or {}
    done, pending = [], []
    for shard in sorted(frame_shards):
        d = read_done(manifests, shard)
        ok = (d is not None and same_settings(d.get("settings"), settings)
              and (fingerprints is None or d.get("fingerprint") == fingerprints.get(shard))
              and (folder / f"{shard[:-4]}.faces.parquet").is_file())
        (done if ok else pending).append((shard, d))
    return done, pending


def consolidate_face_clips(manifests: Path, frame_shards: list[str],
                           fingerprints: dict[str, str] | None = None) -> dict | None:
    """face_clips.parquet from the finished shards' STEM.face_clips.parquet fragments and dataset.json's
    "face_clips" section (None, and no table, where no finished shard has face clips: a dataset without clips)."""
    manifests = Path(manifests)
    folder = faces_dir(manifests)
    done, _ = done_shards(manifests, frame_shards, fingerprints)
    done = [(s, d) for s, d in done if (folder / f"{s[:-4]}.face_clips.parquet").is_file()]
    if not done:
        (manifests / FACE_CLIPS_TABLE).unlink(missing_ok=True)
        return None
    table = pa.concat_tables([pq.read_table(folder / f"{s[:-4]}.face_clips.parquet", schema=FACE_CLIP_SCHEMA)
                              for s, _ in done])
    write_parquet(table, manifests / FACE_CLIPS_TABLE)
    counts: collections.Counter = collections.Counter()
    statuses = collections.Counter(table["status"].to_pylist())
    for split, label, status, clip in zip(*(table[c].to_pylist() for c in ("split", "label", "status",
                                                                         "clip_status"))):
        if status == "done" and clip == "done":  # what a trainer reads (train.data.clip_streams)
            counts[(split, label or "unlabelled")] += 1
    nested: dict = {}
    for (split, label), n in sorted(counts.items()):
        nested.setdefault(split, {})[label] = n
    shards = [{"name": f"face_clips/{s}", "split": d["split"], "label": d["label"], "tubes": d["tubes"],
               "size": d["tubes_bytes"], "sha256": d.get("tubes_sha256")} for s, d in done if d.get("tubes")]
    return {"tubes": statuses.get("done", 0), "status": dict(sorted(statuses.items())), "counts": nested,
            "shards": shards}


def consolidate_faces(manifests: Path, frame_shards: list[str], fingerprints: dict[str, str] | None = None) -> dict:
    """Join the fragments of the given frame shards into faces.parquet; return the dataset.json section.

    A fragment counts if it was made with the run's settings (faces_parts/settings.json) and, where
    `fingerprints` is given, for the frame shard's current content. The others are listed as pending.
    """
    manifests = Path(manifests)
    folder = faces_dir(manifests)
    settings = run_settings(manifests) or {}
    done, pending = done_shards(manifests, frame_shards, fingerprints)
    counts: collections.Counter = collections.Counter()
    shard_rows, totals = [], collections.Counter()
    with parquet_writer(manifests / "faces.parquet", FACES_SCHEMA) as writer:
        for shard, d in done:
            table = pq.read_table(folder / f"{shard[:-4]}.faces.parquet", schema=FACES_SCHEMA)
            writer.write_table(table)
            counts[(d["split"], d["label"])] += d["faces"]
            for k in ("frames", "frames_with_faces", "faces", "videos", "videos_without_faces", "undecodable",
                      "manipulated", "not_manipulated", "manipulated_unknown"):
                totals[k] += d.get(k, 0)
            if not d["faces"]:  # a frame shard without faces has no face shard (its done marker says it is done)
                continue
            shard_rows.append({"name": f"faces/{shard}", "split": d["split"], "label": d["label"],
                               "faces": d["faces"], "bytes": d["bytes"], "size": d["bytes"],
                               "sha256": d.get("sha256")})
    nested: dict = {}
    for (split, label), n in sorted(counts.items()):
        nested.setdefault(split, {})[label] = n
    return {"settings": settings, "frames": totals["frames"], "frames_with_faces": totals["frames_with_faces"],
            "faces": totals["faces"], "videos": totals["videos"],
            "videos_without_faces": totals["videos_without_faces"], "undecodable_frames": totals["undecodable"],
            "manipulated": {"true": totals["manipulated"], "false": totals["not_manipulated"],
                            "null": totals["manipulated_unknown"]},
            "counts": nested, "shards": shard_rows, "pending_shards": [s for s, _ in pending]}


def update_dataset_json(manifests: Path, section: dict | None, key: str = "faces") -> None:
    """Set dataset.json's `key` (None: drop it), leaving the pipeline's keys as they are (atomic rename)."""
    path = Path(manifests) / DATASET_JSON
    data = read_dataset_json(manifests) if path.is_file() else {}
    data[key] = section
    if section is None:
        data.pop(key)
    write_text(path, json.dumps(data, indent=2))


def section_for_manifest(manifests: Path, shard_stats: list[dict], records: dict | None = None) -> dict | None:
    """For pipeline.core.manifest.consolidate(): the faces section (and faces.parquet) if the faces stage ever ran."""
    manifests = Path(manifests)
    if run_settings(manifests) is None:
        return None
    names = [s["name"] for s in shard_stats]
    section = consolidate_faces(manifests, names, _fingerprints(manifests))
    if section["pending_shards"]:
        log.warning("%d frame shards have no faces yet (new or re-packed shards): run `python -m pipeline.faces` "
                    "again; detections are cached by frame key, so re-packed frames are not detected twice",
                    len(section["pending_shards"]))
    return section


def face_clips_for_manifest(manifests: Path, shard_stats: list[dict], records: dict | None = None) -> dict | None:
    """For pipeline.core.manifest.consolidate(): the face_clips section (and face_clips.parquet), None where the
    faces stage never ran or made no face clips."""
    if run_settings(Path(manifests)) is None:
        return None
    return consolidate_face_clips(Path(manifests), [s["name"] for s in shard_stats], _fingerprints(Path(manifests)))


def _fingerprints(manifests: Path) -> dict[str, str]:
    if not has_table(manifests, "frames"):
        return {}
    by: dict = collections.defaultdict(list)
    for r in read_arrow(manifests, "frames", ["key", "shard", "offset", "bytes"]).to_pylist():
        by[r["shard"]].append(r)
    return {s: fingerprint(rows) for s, rows in by.items()}


STAGE = Stage("faces", f"{FACES_PARTS}/STEM.done.json, STEM.faces.parquet, STEM.detections.parquet, settings.json",
              section_for_manifest)
FACE_CLIPS_STAGE = Stage("face_clips", f"{FACES_PARTS}/STEM.face_clips.parquet (+ the tubes' record in STEM.done.json)",
                         face_clips_for_manifest)
