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
AUDIO_DIR = "audio"  # SHARDS/audio/NAME.tar: the sound of the videos of frame shard NAME.tar
CLIPS_DIR = "clips"  # SHARDS/clips/NAME.tar: the clips of the videos of frame shard NAME.tar
FACE_CLIPS_DIR = "face_clips"  # the faces stage's face-clip (tube) shards, one per frame shard with tubes
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
    `faces/`, `audio/`, `clips/` or `face_clips/`. Anything else (folders, `..`, spaces, quotes, shell characters) raises UnsafeManifest
    naming the field, so that a crafted manifest can neither leave the shards folder nor reach a `pipe:` command."""
    bare = name
    for folder in ("faces/", f"{AUDIO_DIR}/", f"{CLIPS_DIR}/", f"{FACE_CLIPS_DIR}/"):
        if isinstance(name, str) and name.startswith(folder):
            bare = name[len(folder):]
    if not isinstance(bare, str) or not SHARD_RE.fullmatch(bare):
        raise UnsafeManifest(f"{field} is {name!r}, not a shard name (split-label-NNNNNN.tar, optionally in faces/, "
                             "audio/, clips/ or face_clips/): "
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


def audio_shard_name(frame_shard: str) -> str:
    """The audio shard beside a frame shard (same split, label, part and number)."""
    return f"{AUDIO_DIR}/{frame_shard}"


def clips_shard_name(frame_shard: str) -> str:
    """The clip shard beside a frame shard (same split, label, part and number)."""
    return f"{CLIPS_DIR}/{frame_shard}"


def has_clips(meta: dict) -> bool:
    """True if a staged video's meta says it has clip members."""
    return any(c.get("rel") is not None for c in meta.get("clips") or ())


def has_sound(meta: dict) -> bool:
    """True if a staged video's meta says it has sound members (a WAV and a json)."""
    return bool(meta.get("audio")) and meta["audio"].get("rel") is not None


def write_staged(shards: Path, video_id: str, meta: dict, members: bytes | None, audio: bytes | None = None,
                 clips: bytes | None = None) -> None:
    """Members (and the sound's, the clips') first, then the meta json: the meta's presence means the video is
    staged.

    No fsync here (a killed run keeps what the kernel has; sealed shards are fsynced): it would stall the
    worker between two ffmpeg runs.
    """
    folder = staging_dir(shards)
    folder.mkdir(parents=True, exist_ok=True)
    if members is not None:
        write_bytes(folder / f"{video_id}.members", members)
    if audio is not None:
        write_bytes(folder / f"{video_id}.audio", audio)
    if clips is not None:
        write_bytes(folder / f"{video_id}.clips", clips)
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
    if has_sound(meta) and not (folder / f"{video_id}.audio").is_file():
        return None
    if has_clips(meta) and not (folder / f"{video_id}.clips").is_file():
        return None
    return Staged(video_id, meta)


def remove_staged(shards: Path, video_id: str) -> None:
    for suffix in (".members", ".audio", ".clips", ".json"):
        try:
            os.remove(staging_dir(shards) / f"{video_id}{suffix}")
        except FileNotFoundError:
            pass


class ShardWriter:
    """Appends staged videos to `.NAME.tmp`; at `shard_size` bytes (or close) it seals the tar and renames it.

    `on_sealed(name, videos, size, sha256, audio_record, clips_record)` is called after the rename (size in bytes
    and the sha256 of the whole tar, hashed as it was written); it writes the manifest fragment, which marks the
    shard as finished. Only then are the videos' staging files removed. The videos' sound goes the same way into
    the audio shard beside it (AUDIO_DIR/NAME), and their clips into the clip shard (CLIPS_DIR/NAME), both sealed
    before the fragment; audio_record and clips_record are their size and sha256 (None: no sound, no clips here).
    """

    def __init__(self, shards: Path, split: str, label: str, part_tag: str, next_index: int,
                 shard_size: int, on_sealed):
        self.shards, self.split, self.label, self.part_tag = Path(shards), split, label, part_tag
        self.index, self.shard_size, self.on_sealed = next_index, shard_size, on_sealed
        self.videos: list[Staged] = []
        self.tar = TarFile(self.shards)
        self.audio = TarFile(self.shards / AUDIO_DIR)
        self.clips = TarFile(self.shards / CLIPS_DIR)

    @property
    def name(self) -> str:
        return shard_name(self.split, self.label, self.part_tag, self.index)

    def add(self, staged: Staged) -> None:
        """Append a video from the staging area."""
        with open(staging_dir(self.shards) / f"{staged.video_id}.members", "rb") as fh:
            data = fh.read()
        audio = None
        if has_sound(staged.meta):
            with open(staging_dir(self.shards) / f"{staged.video_id}.audio", "rb") as fh:
                audio = fh.read()
        clips = None
        if has_clips(staged.meta):
            with open(staging_dir(self.shards) / f"{staged.video_id}.clips", "rb") as fh:
                clips = fh.read()
        self.append(staged, data, audio, clips)

    def append(self, staged: Staged, data: bytes, audio: bytes | None = None, clips: bytes | None = None) -> None:
        """Append a video's tar members (its frames' `rel` offsets are relative to `data`), its sound's
        (meta['audio']['rel'] relative to `audio`) and its clips' (each meta['clips'][i]['rel'] relative to
        `clips`)."""
        if audio is not None:
            staged.meta["audio"]["offset"] = self.audio.append(self.name, audio) + staged.meta["audio"]["rel"]
        if clips is not None:
            base = self.clips.append(self.name, clips)
            for clip in staged.meta["clips"]:
                clip["offset"] = None if clip.get("rel") is None else base + clip["rel"]
        base = self.tar.append(self.name, data)
        for frame in staged.meta["frames"]:
            frame["offset"] = base + frame["rel"]
        self.videos.append(staged)
        if self.tar.size >= self.shard_size:
            self.seal()

    def seal(self) -> None:
        record = self.tar.seal(self.name)
        if record is None:
            return
        audio_record = self.audio.seal(self.name)
        clips_record = self.clips.seal(self.name)
        self.on_sealed(self.name, self.videos, record["size"], record["sha256"], audio_record, clips_record)
        for staged in self.videos:
            remove_staged(self.shards, staged.video_id)
        self.videos = []
        self.index += 1


class TarFile:
    """The one tar writer: a tar written as `.NAME.tmp` in `folder`, hashed as it is written, ended, fsynced and
    renamed to NAME when sealed (frame shards, the audio shards beside them, face shards)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.fh: io.BufferedWriter | None = None
        self.size = 0
        self.sha256 = hashlib.sha256()

    def append(self, name: str, data: bytes) -> int:
        """Append members; returns the offset they start at."""
        with writing(self.folder / name):
            if self.fh is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                self.fh = open(self.folder / f".{name}.tmp", "wb")
                self.size, self.sha256 = 0, hashlib.sha256()
            self.fh.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return self.size - len(data)

    def finish(self, name: str) -> dict | None:
        """End the tar and fsync it, still under its temporary name; {'size', 'sha256'} (None where nothing was
        appended)."""
        if self.fh is None:
            return None
        self.sha256.update(b"\0" * (2 * BLOCK))
        with writing(self.folder / name):
            self.fh.write(b"\0" * (2 * BLOCK))
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            self.fh = None
        self.size += 2 * BLOCK
        return {"size": self.size, "sha256": self.sha256.hexdigest()}

    def commit(self, name: str) -> None:
        """Rename a finished tar into place."""
        with writing(self.folder / name):
            os.replace(self.folder / f".{name}.tmp", self.folder / name)

    def seal(self, name: str) -> dict | None:
        """finish() and commit(): the tar is in place; its record (None where nothing was appended)."""
        record = self.finish(name)
        if record is not None:
            self.commit(name)
        return record

    def discard(self, name: str) -> None:
        """Drop the tar being written (a shard that turned out to have nothing worth keeping)."""
        if self.fh is not None:
            self.fh.close()
            self.fh = None
        (self.folder / f".{name}.tmp").unlink(missing_ok=True)
