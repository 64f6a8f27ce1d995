"""`python -m pipeline.resplit`: change the split ratio or seed without running ffmpeg; re-packs moved videos."""
from __future__ import annotations

import json
import logging
import zlib
from pathlib import Path
from typing import Mapping, Sequence

import click
import pyarrow.parquet as pq

from dfd.cli import command, default, reported, setup_logging, verbose_option
from dfd.errors import UsageProblem
from dfd.files import write_bytes

from pipeline.core import manifest
from pipeline.config import ConfigError, PipelineConfig
from pipeline.dataset import read_arrow, read_members
from pipeline.split import files as splitfiles
from pipeline.sources.discover import identities, link_groups
from pipeline.sources.video import OFFICIAL_SPLIT_SOURCES, Video
from pipeline.core.journal import JOURNAL, recover
from pipeline.core.manifest import SectionBuilder, lock
from pipeline.core.shards import ShardWriter, Staged, member, parse_shard_name
from pipeline.split.hashed import fraction_warning
from pipeline.stages.frames.fragments import write_fragments
from pipeline.stages.sections import SECTIONS

log = logging.getLogger(__name__)


class ResplitError(UsageProblem, RuntimeError):
    """The manifest cannot be resplit (nothing there, or parts not merged)."""


def _regroup(rows: list[dict]) -> None:
    """Groups as connected components of the people each video involves (datasets split before that grouping
    existed move to it); the previous group is kept in `_old_group`."""
    groups = link_groups([identities(r["source"] or "", r["label"], r["path"] or "", r["group"] or r["video_id"])
                          for r in rows])
    for r, g in zip(rows, groups):
        r["_old_group"], r["group"] = r["group"], g


def _new_splits(rows: list[dict], files: Sequence[str], seed: int, val_fraction: float) -> dict[str, str]:
    """video id -> its split now: the split files' where they place it (pipeline.split.files), else the hash split.
    A label a file gives an unlabelled video is not applied here (its frames would change shards of label too):
    rerun pipeline.run with the file for that."""
    videos = [Video(r["video_id"], r["path"] or "", r["label"], r.get("original"), r["group"] or r["video_id"],
                    r["source"] or "", official_split=r["split"] if r["source"] in OFFICIAL_SPLIT_SOURCES else None)
              for r in rows]
    parsed = splitfiles.read_split_files(files)
    pairs = splitfiles.apply(parsed, videos, seed, val_fraction)
    return {v.video_id: split if row["label"] is not None else "test" for (v, split), row in zip(pairs, rows)}


def resplit(shards: Path, manifests: Path, seed: int, val_fraction: float,
            sections: Mapping[str, SectionBuilder] = SECTIONS, split_files: Sequence[str] = ()) -> dict:
    """Move videos whose split changes into new shards; untouched shards stay as they are (the later stages'
    `sections` of dataset.json are rebuilt for the shards there are then). `split_files` ('[SPLIT=]FILE' each)
    win over the hash split, as in pipeline.run."""
    shards, manifests = Path(shards), Path(manifests)
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val fraction must be in [0, 1), got {val_fraction}")
    split_files = splitfiles.normalised(split_files)
    recover(shards, manifests)
    finished = manifest.finished_shards(manifests)
    if not finished:
        raise ResplitError(f"{manifests}: no finished shards to resplit")
    folder = manifest.parts_dir(manifests)
    tables = {name: pq.read_table(folder / f"{name[:-4]}.videos.parquet").to_pylist() for name in finished}
    failed = {p: pq.read_table(p).to_pylist() for p in sorted(folder.glob("failed*.videos.parquet"))}
    every = [v for rows in [*tables.values(), *failed.values()] for v in rows]
    _regroup(every)
    split_of = _new_splits(every, split_files, seed, val_fraction)
    affected = {}
    for name, videos in tables.items():
        new = [split_of[v["video_id"]] for v in videos]
        if any(n != v["split"] for n, v in zip(new, videos)):
            affected[name] = (videos, new)
        elif any(v["group"] != v.pop("_old_group") for v in videos):  # same split, group renamed: rows only
            manifest.write_videos_fragment(manifests, name, videos)
        for v in videos:
            v.pop("_old_group", None)
    journal = {"phase": "writing", "old": sorted(affected), "new": [], "seed": seed, "val_fraction": val_fraction,
               "split_files": list(split_files)}
    journal_path = folder / JOURNAL
    write_bytes(journal_path, json.dumps(journal).encode(), durable=True)
    moved = _repack(shards, manifests, affected, finished, journal, journal_path)
    journal["phase"] = "committed"
    write_bytes(journal_path, json.dumps(journal).encode(), durable=True)
    recover(shards, manifests, interrupted=False)
    for failed, rows in failed.items():
        for r in rows:
            r.pop("_old_group", None)
            r["split"] = split_of[r["video_id"]]
        manifest.write_failures(manifests, failed.name[len("failed-"):-len(".videos.parquet")]
                                if failed.name.startswith("failed-") else "", rows)
    configs = manifest.read_part_configs(manifests)
    summary_extra = {"config": next(iter(configs.values()), {})}
    summary = manifest.consolidate(manifests, summary_extra, sections)
    log.info("resplit: %d videos moved, %d shards re-packed; split ratio %s", moved, len(affected),
             summary["split_ratio"]["videos"])
    done = read_arrow(manifests, "videos", ["label", "split", "status"]).to_pylist()
    pairs = [(v["label"], v["split"]) for v in done if v["status"] == "done"]
    if not split_files and (warning := fraction_warning(pairs, val_fraction)) is not None:
        log.warning(warning)
    return {"moved": moved, "repacked": len(affected), "summary": summary}


def _repack(shards, manifests, affected, finished, journal, journal_path) -> int:
    nxt: dict = {}
    for name in finished:
        split, label, tag, index = parse_shard_name(name)
        nxt[(split, label, tag)] = max(nxt.get((split, label, tag), 0), index + 1)
    shard_size = max((shards / n).stat().st_size for n in finished)

    def sealed(name, videos, size, sha256, audio=None, clips=None):
        write_fragments(manifests, name, [s.meta for s in videos], size, sha256, audio, clips)
        journal["new"].append(name)
        write_bytes(journal_path, json.dumps(journal).encode(), durable=True)

    writers: dict = {}
    moved = 0
    for name, (videos, new_splits) in sorted(affected.items()):
        _, label, tag, _ = parse_shard_name(name)
        frames = pq.read_table(manifest.parts_dir(manifests) / f"{name[:-4]}.frames.parquet").to_pylist()
        sounds = _audio_rows(manifests, name)
        clips = _clip_rows(manifests, name)
        with open(shards / name, "rb") as fh:
            for video, split in zip(videos, new_splits):
                moved += split != video["split"]
                meta, data = _video_members(fh, video, split, [f for f in frames if f["video_id"] == video["video_id"]])
                meta["audio"], audio = _video_audio(shards, sounds.get(video["video_id"]), split)
                meta["clips"], clip_data = _video_clips(shards, clips.get(video["video_id"]), split)
                key = (split, label, tag)
                if key not in writers:
                    writers[key] = ShardWriter(shards, split, label, tag, nxt.get(key, 0), shard_size, sealed)
                writers[key].append(Staged(video["video_id"], meta), data, audio, clip_data)
    for writer in writers.values():
        writer.seal()
    return moved


def _audio_rows(manifests: Path, shard: str) -> dict[str, dict]:
    """A frame shard's audio fragment rows by video ({} where it kept no sound)."""
    path = manifest.parts_dir(manifests) / f"{shard[:-4]}.audio.parquet"
    return {r["video_id"]: r for r in pq.read_table(path).to_pylist()} if path.is_file() else {}


def _clip_rows(manifests: Path, shard: str) -> dict[str, list[dict]]:
    """A frame shard's clip fragment rows by video ({} where it kept no clips)."""
    path = manifest.parts_dir(manifests) / f"{shard[:-4]}.clips.parquet"
    rows: dict[str, list[dict]] = {}
    for r in pq.read_table(path).to_pylist() if path.is_file() else []:
        rows.setdefault(r["video_id"], []).append(r)
    return rows


def _video_clips(shards: Path, rows: list[dict] | None, split: str) -> tuple[list[dict] | None, bytes | None]:
    """A video's clip rows with their new split, and their members read from its old clip shard (each JPEG checked
    against its crc32), each clip's json with the new split."""
    if rows is None:
        return None, None
    data, out = bytearray(), []
    for row in sorted(rows, key=lambda r: -1 if r["clip"] is None else r["clip"]):
        new = {**row, "split": split, "rel": None, "offset": None}
        out.append(new)
        if row.get("shard") is None or row.get("offset") is None:
            continue
        with open(shards / row["shard"], "rb") as fh:
            members = read_members(fh, row["offset"], row["n_frames"] + 1)
        names = [f"{row['key']}.{j:03d}.jpg" for j in range(row["n_frames"])] + [f"{row['key']}.json"]
        if [name for name, _ in members] != names or any(
                zlib.crc32(jpeg) != crc for (_, jpeg), crc in zip(members, row["crc32"] or [])):
            raise ResplitError(f"{row['shard']}: clip {row['key']} is not at byte {row['offset']} or does not match "
                               "its checksums (crc32); check the shards with `python -m pipeline.verify --deep`")
        sample = {**json.loads(members[-1][1]), "split": split}
        new["rel"] = len(data)
        for name, jpeg in members[:-1]:
            data += member(name, jpeg)
        data += member(names[-1], json.dumps(sample).encode())
    return out, bytes(data)


def _video_audio(shards: Path, row: dict | None, split: str) -> tuple[dict | None, bytes | None]:
    """A video's audio row with its new split, and its WAV and json members read from its old audio shard."""
    if row is None:
        return None, None
    row = {**row, "split": split, "rel": None}
    if row.get("shard") is None or row.get("offset") is None:
        return row, None
    with open(shards / row["shard"], "rb") as fh:
        (wav_name, wav), (json_name, raw) = read_members(fh, row["offset"], 2)
    if wav_name != f"{row['video_id']}.wav" or (row.get("crc32") is not None and zlib.crc32(wav) != row["crc32"]):
        raise ResplitError(f"{row['shard']}: the sound of {row['video_id']} is not at byte {row['offset']} or does "
                           "not match its checksum (crc32); check the shards with `python -m pipeline.verify --deep`")
    sample = {**json.loads(raw), "split": split}
    row["rel"] = 0
    return row, member(wav_name, wav) + member(json_name, json.dumps(sample).encode())


def _video_members(fh, video: dict, split: str, frames: list[dict]) -> tuple[dict, bytes]:
    """Read a video's JPEGs from its old shard and rebuild its members with the new split."""
    data, rows = bytearray(), []
    for f in sorted(frames, key=lambda f: f["index"]):
        (jpg_name, jpeg), (json_name, raw) = read_members(fh, f["offset"], 2)
        if jpg_name != f"{f['key']}.jpg" or json_name != f"{f['key']}.json":
            raise ResplitError(f"{video['shard']}: expected {f['key']}.jpg/.json at byte {f['offset']}, "
                               f"found {jpg_name}, {json_name}")
        sample = json.loads(raw)
        sample["split"], sample["group"] = split, video.get("group", sample.get("group"))
        crc = f.get("crc32")
        if crc is not None and zlib.crc32(jpeg) != crc:
            raise ResplitError(f"{video['shard']}: frame {f['key']} does not match its checksum (crc32); "
                               "check the shards with `python -m pipeline.verify --deep`")
        rows.append({k: f[k] for k in ("key", "index", "second", "bytes", "width", "height")}
                    | {"crc32": crc, "rel": len(data)})
        data += member(f"{f['key']}.jpg", jpeg) + member(f"{f['key']}.json", json.dumps(sample).encode())
    return {**video, "split": split, "frames": rows}, bytes(data)


@command()
@click.option("--shards", default=default(PipelineConfig, "shards"), type=click.Path(file_okay=False, exists=True))
@click.option("--manifests", default=default(PipelineConfig, "manifests"),
              type=click.Path(file_okay=False, exists=True))
@click.option("--val-fraction", default=default(PipelineConfig, "val_fraction"), type=float,
              help="New share of labelled groups in val.")
@click.option("--seed", default=default(PipelineConfig, "seed"), type=int, help="New split seed.")
@click.option("--split-file", "split_files", multiple=True, metavar="[SPLIT=]FILE",
              help="An official split or test list that wins over the hash split, as pipeline.run's; repeatable. "
                   "Without it the split is the hash split alone (earlier split files are dropped).")
@verbose_option
def main(shards, manifests, val_fraction, seed, split_files, verbose):
    """Re-split a sharded dataset by group without decoding any video: moved videos are re-packed."""
    setup_logging(verbose)
    with reported("rerun the same command: the interrupted resplit is undone first"):
        with lock(Path(manifests), "resplit"):
            resplit(Path(shards), Path(manifests), seed, val_fraction, split_files=split_files)


if __name__ == "__main__":
    main()
