"""The clips' part of the manifest: a fragment per frame shard (parts/STEM.clips.parquet, the clip shard's size and
sha256 in STEM.shard.json), joined into manifests/clips.parquet and dataset.json's "clips" section. The fragment is
written beside the frame shard's (pipeline.stages.frames.fragments); the section is rebuilt by
pipeline.core.manifest.consolidate as every stage's is (pipeline.stages.sections); read back through
pipeline.dataset (Dataset.clips, Dataset.clip_frames)."""
from __future__ import annotations

import collections
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dfd.files import write_parquet

from pipeline.core.manifest import Stage, conform, parts_dir
from pipeline.core.shards import clips_shard_name

CLIPS_TABLE = "clips.parquet"
# A row per clip: its frames' times (s, from the start of the video), where its members start in its clip shard
# (offset: the header of KEY.000.jpg; n_frames JPEGs then KEY.json follow), each JPEG's crc32, its status (done,
# short: the video ends inside it, gap: its frame times jump, none: the video gave no clip; warning says why).
CLIP_SCHEMA = pa.schema([
    ("video_id", pa.string()), ("clip", pa.int32()), ("split", pa.string()), ("label", pa.string()),
    ("key", pa.string()), ("start", pa.float64()), ("times", pa.list_(pa.float64())), ("n_frames", pa.int32()),
    ("status", pa.string()), ("warning", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
    ("shard", pa.string()), ("offset", pa.int64()), ("bytes", pa.int64()), ("crc32", pa.list_(pa.int64())),
    ("picture_label", pa.string()),  # the clip's own: fake where it overlaps a fake period of the picture
])


def write_fragment(path: Path, metas: list[dict], clip_shard: str | None) -> None:
    """clips.parquet rows of a frame shard's videos (those that were asked for clips)."""
    rows = [{**{k: c.get(k) for k in CLIP_SCHEMA.names},
             "shard": clip_shard if c.get("offset") is not None else None}
            for m in metas for c in m.get("clips") or ()]
    write_parquet(pa.Table.from_pylist(rows, schema=CLIP_SCHEMA), path)


def section_for_manifest(manifests: Path, shard_stats: list[dict], records: dict[str, dict]) -> dict | None:
    """For pipeline.core.manifest.consolidate(): clips.parquet and the "clips" section (None where no run kept
    clips: then there is no clips.parquet either); `records`: each frame shard's clip shard (size, sha256)."""
    folder = parts_dir(manifests)
    paths = [folder / f"{s['name'][:-4]}.clips.parquet" for s in shard_stats]
    tables = [conform(pq.read_table(p), CLIP_SCHEMA) for p in paths if p.is_file()]
    if not tables:
        (Path(manifests) / CLIPS_TABLE).unlink(missing_ok=True)
        return None
    table = pa.concat_tables(tables)
    write_parquet(table, Path(manifests) / CLIPS_TABLE)
    return _section(table.drop_columns(["times", "crc32"]).to_pylist(), shard_stats, records)


def _section(rows: list[dict], shard_stats: list[dict], records: dict[str, dict]) -> dict:
    counts: collections.Counter = collections.Counter()
    for r in rows:
        if r["status"] == "done":
            counts[(r["split"], r["label"] or "unlabelled")] += 1
    nested: dict = {}
    for (split, label), n in sorted(counts.items()):
        nested.setdefault(split, {})[label] = n
    per_shard = collections.Counter(r["shard"] for r in rows if r["shard"])
    shards = [{"name": clips_shard_name(s["name"]), "frame_shard": s["name"], "split": s["split"],
               "label": s["label"], "clips": per_shard[clips_shard_name(s["name"])], "size": r["size"],
               "sha256": r["sha256"]}
              for s in shard_stats if (r := records.get(s["name"]))]
    statuses = collections.Counter(r["status"] for r in rows)
    return {"clips": len(rows), "videos": len({r["video_id"] for r in rows}),
            "frames": sum(r["n_frames"] or 0 for r in rows), "status": dict(sorted(statuses.items())),
            "counts": nested, "shards": shards}


STAGE = Stage("clips", "parts/STEM.clips.parquet (+ the clip shard's record in parts/STEM.shard.json)",
              section_for_manifest)
