"""Tar members for webdataset, per-video staging files, and the shard writer that packs them atomically.

Reading members back at their offsets is pipeline.dataset's (read_member, read_members, MemberReader)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
import re
import tarfile
from pathlib import Path

from dfd.diskfull import writing
from dfd.errors import UsageProblem
from dfd.files import write_bytes

log = logging.getLogger(__name__)

BLOCK = 512
STAGING = ".staging"
SHARD_RE = re.compile(r"^(train|val|test)-(real|fake|unlabelled)(?:-(p\d+of\d+))?-(\d{6})\.tar$")
_MTIME = 1577836800  # fixed member time (2020-01-01) so that shards are byte-reproducible


def member(name: str, data: bytes) -> bytes:
    """One tar member (header + data padded to 512 bytes), as `tar` and webdataset read it."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), _MTIME, 0o644
    header = info.tobuf(format=tarfile.GNU_FORMAT)
    return header + data + b"\0" * (-len(data) % BLOCK)


def shard_name(split: str, label: str, part_tag: str, index: int) -> str:
    return f"{split}-{label}{'-' + part_tag if part_tag else ''}-{index:06d}.tar"


class UnsafeManifest(UsageProblem, ValueError):
    """A manifest value that would reach a path, a URL or a command is not what the pipeline writes."""


def check_shard_name(name, field: str) -> str:
    """A shard name from a manifest, as the pipeline writes it: `split-label[-pK of N]-NNNNNN.tar`, optionally in
    `faces/`. Anything else (folders, `..`, spaces, quotes, shell characters) raises UnsafeManifest naming the
    field, so that a crafted manifest can neither leave the shards folder nor reach a `pipe:` command."""
    bare = name[len("faces/"):] if isinstance(name, str) and name.startswith("faces/") else name
    if not isinstance(bare, str) or not SHARD_RE.fullmatch(bare):
        raise UnsafeManifest(f"{field} is {name!r}, not a shard name (split-label-NNNNNN.tar, optionally in faces/): "
                             "refusing a manifest that points outside the shards folder")
    return name


def parse_shard_name(name: str) -> tuple[str, str, str, int] | None:
    m = SHARD_RE.fullmatch(name)
    return (m.group(1), m.group(2), m.group(3) or "", int(m.group(4))) if m else None


@dataclasses.dataclass
class Staged:
    """A decoded video waiting in SHARDS/.staging: its tar members and what the manifest needs about it."""

    video_id: str
    meta: dict  # the videos.parquet row plus 'frames': [{key, index, second, bytes, width, height, rel}]

    @property
    def ok(self) -> bool:
        return self.meta["status"] == "done"


def staging_dir(shards: Path) -> Path:
    return Path(shards) / STAGING


def write_staged(shards: Path, video_id: str, meta: dict, members: bytes | None) -> None:
    """Members first, then the meta json: the meta's presence means the video is completely staged.

    No fsync here (a killed run keeps what the kernel has; sealed shards are fsynced): it would stall the
    worker between two ffmpeg runs.
    """
    folder = staging_dir(shards)
    folder.mkdir(parents=True, exist_ok=True)
    if members is not None:
        write_bytes(folder / f"{video_id}.members", members)
    write_bytes(folder / f"{video_id}.json", json.dumps(meta).encode())


def read_staged(shards: Path, video_id: str) -> Staged | None:
    folder = staging_dir(shards)
    try:
        meta = json.loads((folder / f"{video_id}.json").read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("%s: unreadable staging record, decoding again: %s", video_id, exc)
        return None
    if meta.get("status") == "done" and not (folder / f"{video_id}.members").is_file():
        return None
    return Staged(video_id, meta)


def remove_staged(shards: Path, video_id: str) -> None:
    for suffix in (".members", ".json"):
        try:
            os.remove(staging_dir(shards) / f"{video_id}{suffix}")
        except FileNotFoundError:
            pass


class ShardWriter:
    """Appends staged videos to `.NAME.tmp`; at `shard_size` bytes (or close) it seals the tar and renames it.

    `on_sealed(name, videos, size, sha256)` is called after the rename (size in bytes and the sha256 of the whole
    tar, hashed as it was written); it writes the manifest fragment, which marks the shard as finished. Only then
    are the videos' staging files removed.
    """

    def __init__(self, shards: Path, split: str, label: str, part_tag: str, next_index: int,
                 shard_size: int, on_sealed):
        self.shards, self.split, self.label, self.part_tag = Path(shards), split, label, part_tag
        self.index, self.shard_size, self.on_sealed = next_index, shard_size, on_sealed
        self.fh: io.BufferedWriter | None = None
        self.videos: list[Staged] = []
        self.size = 0
        self.sha256 = hashlib.sha256()

    @property
    def name(self) -> str:
        return shard_name(self.split, self.label, self.part_tag, self.index)

    def add(self, staged: Staged) -> None:
        """Append a video from the staging area."""
        with open(staging_dir(self.shards) / f"{staged.video_id}.members", "rb") as fh:
            self.append(staged, fh.read())

    def append(self, staged: Staged, data: bytes) -> None:
        """Append a video's tar members (its frames' `rel` offsets are relative to `data`)."""
        with writing(self.shards / self.name):
            if self.fh is None:
                self.fh = open(self.shards / f".{self.name}.tmp", "wb")
                self.size, self.sha256 = 0, hashlib.sha256()
            self.fh.write(data)
        self.sha256.update(data)
        base = self.size
        self.size += len(data)
        for frame in staged.meta["frames"]:
            frame["offset"] = base + frame["rel"]
        self.videos.append(staged)
        if self.size >= self.shard_size:
            self.seal()

    def seal(self) -> None:
        if self.fh is None:
            return
        self.sha256.update(b"\0" * (2 * BLOCK))
        with writing(self.shards / self.name):
            self.fh.write(b"\0" * (2 * BLOCK))
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            self.fh = None
            os.replace(self.shards / f".{self.name}.tmp", self.shards / self.name)
        self.on_sealed(self.name, self.videos, self.size + 2 * BLOCK, self.sha256.hexdigest())
        for staged in self.videos:
            remove_staged(self.shards, staged.video_id)
        self.videos = []
        self.index += 1
