"""Per-shard manifest fragments -> manifests/videos.parquet, frames.parquet and dataset.json."""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import fcntl
import json
import logging
from pathlib import Path
from typing import Callable, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from dfd.children import hold_lock, release_lock
from dfd.errors import UsageProblem
from dfd.files import parquet_writer, write_bytes, write_parquet

from pipeline.core.shards import parse_shard_name
from pipeline.split.hashed import class_weights

log = logging.getLogger(__name__)

PARTS = "parts"
PERIODS = pa.list_(pa.list_(pa.float64()))  # [[start, end], ...] in seconds
VIDEO_SCHEMA = pa.schema([
    ("video_id", pa.string()), ("path", pa.string()), ("source", pa.string()), ("label", pa.string()),
    ("original", pa.string()), ("group", pa.string()), ("split", pa.string()), ("status", pa.string()),
    ("error", pa.string()), ("warning", pa.string()), ("duration", pa.float64()), ("width", pa.int32()),
    ("height", pa.int32()), ("fps", pa.float64()), ("rotation", pa.int32()), ("n_frames", pa.int32()),
    ("frame_width", pa.int32()), ("frame_height", pa.int32()), ("shard", pa.string()), ("bytes", pa.int64()),
    # the audio-visual datasets' own labels of picture and sound, their speaker and fake periods (null elsewhere)
    ("picture_label", pa.string()), ("sound_label", pa.string()), ("speaker", pa.string()),
    ("fake_periods", PERIODS), ("picture_periods", PERIODS), ("sound_periods", PERIODS),
])
FRAME_SCHEMA = pa.schema([
    ("key", pa.string()), ("video_id", pa.string()), ("index", pa.int32()), ("second", pa.float64()),
    ("split", pa.string()), ("label", pa.string()), ("shard", pa.string()), ("offset", pa.int64()),
    ("bytes", pa.int64()), ("width", pa.int32()), ("height", pa.int32()),
    ("crc32", pa.int64()),  # zlib.crc32 of the JPEG bytes; null in manifests written before checksums
    ("picture_label", pa.string()),  # this frame's own: fake where it lies in a fake period of the picture
])


class LockError(UsageProblem, RuntimeError):
    """Another process is writing the same manifests."""


@contextlib.contextmanager
def lock(manifests: Path, tag: str = ""):
    """An exclusive lock per part (and one for resplit), so that two runs never write the same files."""
    manifests = Path(manifests)
    manifests.mkdir(parents=True, exist_ok=True)
    with open(manifests / f".lock{'-' + tag if tag else ''}", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise LockError(f"another process is writing {manifests} ({tag or 'part 1/1'})") from exc
        hold_lock(fh.fileno())  # never inherited by a forked worker (dfd.children)
        try:
            yield
        finally:
            release_lock(fh.fileno())


def parts_dir(manifests: Path) -> Path:
    return Path(manifests) / PARTS


def video_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist([{k: r.get(k) for k in VIDEO_SCHEMA.names} for r in rows], schema=VIDEO_SCHEMA)


def write_fragment(manifests: Path, shard: str, metas: list[dict], shard_bytes: int,
                   sha256: str | None = None, records: Mapping[str, dict] | None = None) -> None:
    """Shard size and checksum (and each stage's record of it: `records`, stage name -> e.g. its audio shard's size
    and sha256), frames, then videos last: a shard is finished when its videos fragment exists (a stage that keeps
    a fragment of its own per frame shard writes it before this: pipeline.stages.frames.build.write_fragments)."""
    folder = parts_dir(manifests)
    folder.mkdir(parents=True, exist_ok=True)
    stem = shard[:-4]
    record = {"size": shard_bytes, "sha256": sha256, **{k: v for k, v in (records or {}).items() if v}}
    write_bytes(folder / f"{stem}.shard.json", json.dumps(record).encode())
    frames = [{**f, "video_id": m["video_id"], "split": m["split"], "label": m["label"], "shard": shard}
              for m in metas for f in m["frames"]]
    frame_rows = [{k: f.get(k) for k in FRAME_SCHEMA.names} for f in frames]
    write_parquet(pa.Table.from_pylist(frame_rows, schema=FRAME_SCHEMA), folder / f"{stem}.frames.parquet")
    write_parquet(video_table([{**m, "shard": shard} for m in metas]), folder / f"{stem}.videos.parquet")
    log.debug("sealed %s: %d videos, %d frames, %d bytes", shard, len(metas), len(frames), shard_bytes)


def write_videos_fragment(manifests: Path, shard: str, rows: list[dict]) -> None:
    """Rewrite a finished shard's videos fragment (its rows changed, its frames did not)."""
    write_parquet(video_table(rows), parts_dir(manifests) / f"{shard[:-4]}.videos.parquet")


def write_failures(manifests: Path, part_tag: str, rows: list[dict]) -> None:
    folder = parts_dir(manifests)
    folder.mkdir(parents=True, exist_ok=True)
    write_parquet(video_table(rows), folder / f"failed{'-' + part_tag if part_tag else ''}.videos.parquet")


def finished_shards(manifests: Path) -> list[str]:
    """Names of the shards whose fragment was written (so the tar is complete)."""
    folder = parts_dir(manifests)
    if not folder.is_dir():
        return []
    names = [p.name[: -len(".videos.parquet")] + ".tar" for p in folder.glob("*.videos.parquet")]
    return sorted(n for n in names if parse_shard_name(n))


def done_video_ids(manifests: Path) -> set[str]:
    folder = parts_dir(manifests)
    done: set[str] = set()
    for shard in finished_shards(manifests):
        table = pq.read_table(folder / f"{shard[:-4]}.videos.parquet", columns=["video_id"])
        done.update(table.column("video_id").to_pylist())
    return done


def read_part_configs(manifests: Path) -> dict[str, dict]:
    folder = parts_dir(manifests)
    return {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("config*.json"))} if folder.is_dir() else {}


def write_part_config(manifests: Path, part_tag: str, config: dict) -> None:
    folder = parts_dir(manifests)
    folder.mkdir(parents=True, exist_ok=True)
    write_bytes(folder / f"config{'-' + part_tag if part_tag else ''}.json", json.dumps(config, indent=2).encode(),
                durable=True)


def _nested(counter: collections.Counter) -> dict:
    out: dict = {}
    for (split, label), n in sorted(counter.items()):
        out.setdefault(split, {})[label] = n
    return out


# A stage's section of dataset.json, rebuilt from its own fragments for the frame shards that exist now: (manifests,
# the shards' records as dataset.json lists them, the stage's own record of each frame shard by name (STEM.shard.json
# under the stage's name; {} for a stage that keeps none)) -> the section, or None where the stage never ran. Every
# stage adds its section this one way (pipeline.stages.sections.SECTIONS: the sound, the faces).
SectionBuilder = Callable[[Path, list, dict], "dict | None"]


@dataclasses.dataclass(frozen=True)
class Stage:
    """A stage as the manifest sees it: its name (its key in dataset.json and in a frame shard's STEM.shard.json),
    where its fragments live (under MANIFESTS), and the builder of its section from them."""

    name: str
    fragments: str
    section: SectionBuilder


def consolidate(manifests: Path, extra: dict | None = None,
                sections: Mapping[str, SectionBuilder] | None = None) -> dict:
    """Join every fragment in manifests/parts into videos.parquet, frames.parquet and dataset.json.

    `sections`: dataset.json key -> builder, for the stages (pipeline.stages.sections.SECTIONS: the sound, the
    faces), so that a rerun, merge or resplit keeps their sections for the shards that still exist. The pipeline
    core never imports a stage: the commands pass them in; without them, dataset.json has the core's keys only."""
    manifests = Path(manifests)
    folder = parts_dir(manifests)
    shards = finished_shards(manifests)
    # conformed: fragments written before a column existed (picture_label, ...) join today's with it null
    video_tables = [conform(pq.read_table(folder / f"{s[:-4]}.videos.parquet"), VIDEO_SCHEMA) for s in shards]
    video_tables += [conform(pq.read_table(p), VIDEO_SCHEMA) for p in sorted(folder.glob("failed*.videos.parquet"))]
    videos = pa.concat_tables(video_tables) if video_tables else VIDEO_SCHEMA.empty_table()
    videos = _dedupe_videos(videos)
    write_parquet(videos, manifests / "videos.parquet")
    shard_stats = _write_frames(manifests, shards)
    summary = _summary(videos, shard_stats, extra or {})
    records = {s["name"]: s.pop("stages") for s in shard_stats if "stages" in s}  # not listed in dataset.json
    for key, build in (sections or {}).items():
        section = build(manifests, shard_stats, {n: r[key] for n, r in records.items() if key in r})
        if section is not None:
            summary[key] = section
    write_bytes(manifests / "dataset.json", json.dumps(summary, indent=2).encode(), durable=True)
    return summary


def _dedupe_videos(videos: pa.Table) -> pa.Table:
    """A video that failed once and was done later keeps only its done row; sorted by id."""
    done = set(videos.filter(pa.compute.equal(videos["status"], "done"))["video_id"].to_pylist())
    keep = [not (s != "done" and v in done) for v, s in zip(videos["video_id"].to_pylist(),
                                                            videos["status"].to_pylist())]
    videos = videos.filter(pa.array(keep, type=pa.bool_()))
    return videos.sort_by([("video_id", "ascending")])


def _write_frames(manifests: Path, shards: list[str]) -> list[dict]:
    folder = parts_dir(manifests)
    stats = []
    with parquet_writer(manifests / "frames.parquet", FRAME_SCHEMA) as writer:
        for shard in shards:
            table = conform(pq.read_table(folder / f"{shard[:-4]}.frames.parquet"), FRAME_SCHEMA)
            writer.write_table(table)
            split, label, _, _ = parse_shard_name(shard)
            stats.append({"name": shard, "split": split, "label": label, "frames": table.num_rows,
                          "videos": len(set(table["video_id"].to_pylist())),
                          "bytes": int(pa.compute.sum(table["bytes"]).as_py() or 0), **_shard_record(folder, shard)})
    return stats


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A table from an older manifest in today's schema: columns it lacks (e.g. crc32) are added as nulls."""
    columns = [table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _shard_record(folder: Path, shard: str) -> dict:
    """The shard's file size and sha256 as sealed ({} for shards written before checksums were recorded)."""
    try:
        record = json.loads((folder / f"{shard[:-4]}.shard.json").read_text())
    except FileNotFoundError:
        return {}
    stages = {k: v for k, v in record.items() if k not in ("size", "sha256") and v}
    return {"size": int(record["size"]), "sha256": record.get("sha256"), **({"stages": stages} if stages else {})}


def _summary(videos: pa.Table, shard_stats: list[dict], extra: dict) -> dict:
    done = videos.filter(pa.compute.equal(videos["status"], "done"))
    n_videos = collections.Counter(zip(done["split"].to_pylist(),
                                       [lab or "unlabelled" for lab in done["label"].to_pylist()]))
    n_frames: collections.Counter = collections.Counter()
    for s in shard_stats:
        n_frames[(s["split"], s["label"])] += s["frames"]
    labelled = ("train", "val", *(["test"] if any(s == "test" and lab != "unlabelled" for s, lab in n_videos)
                                  else []))
    labelled_v = {sp: sum(n for (s, lab), n in n_videos.items() if s == sp and lab != "unlabelled") for sp in labelled}
    labelled_f = {sp: sum(n for (s, lab), n in n_frames.items() if s == sp and lab != "unlabelled") for sp in labelled}
    return {
        "version": 1,
        "videos": _nested(n_videos),
        "frames": _nested(n_frames),
        "failed": videos.num_rows - done.num_rows,
        "split_ratio": {"videos": _ratio(labelled_v), "frames": _ratio(labelled_f)},
        "class_weights": class_weights(n_frames[("train", "real")], n_frames[("train", "fake")]),
        "shards": shard_stats,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }


def _ratio(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: round(v / total, 4) if total else 0.0 for k, v in counts.items()}
