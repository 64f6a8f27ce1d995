"""The Video record and what every layout shares: safe ids, labels, paths kept inside the folder, the walk.

The Video record and what every layout shares: ids safe for webdataset keys, labels, paths kept inside the folder,
the sorted walk over a tree of videos, unlabelled videos.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import unicodedata
from pathlib import Path
from typing import Iterable

from dfd.errors import UsageProblem

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".flv", ".wmv"}
LABELS = {"real": "real", "fake": "fake", "0": "real", "1": "fake", "original": "real", "manipulated": "fake"}


@dataclasses.dataclass(frozen=True)
class Video:
    """One input video. `error` is set for entries that cannot be processed (missing file, unknown label)."""

    video_id: str
    path: str
    label: str | None  # 'real', 'fake' or None (unlabelled test videos)
    original: str | None
    group: str
    source: str
    error: str | None = None
    # the audio-visual datasets (FakeAVCeleb, LAV-DF, AV-Deepfake1M) label picture and sound apart: `label` is fake
    # where either is; their periods (pipeline.sources.periods) say which seconds, None where not given
    picture_label: str | None = None
    sound_label: str | None = None
    fake_periods: tuple | None = None
    picture_periods: tuple | None = None
    sound_periods: tuple | None = None
    speaker: str | None = None  # the person who speaks (FakeAVCeleb's id folder, AV-Deepfake1M's VoxCeleb2 id)
    official_split: str | None = None  # the dataset's own split (its metadata): wins over the hash split

    @property
    def split_label(self) -> str:
        return self.label or "unlabelled"


# the sources whose metadata gives each video its split (Video.official_split): resplit keeps it
OFFICIAL_SPLIT_SOURCES = ("lavdf", "avdeepfake1m")


class DiscoveryError(UsageProblem, ValueError):
    """The videos folder cannot be read as any dataset layout."""


MAX_ID = 64  # so that a frame key (id + "_0000" + ".json") stays under tar's 100-character name field


def safe_id(text: str) -> str:
    """A video id webdataset can carry in a key: only [A-Za-z0-9_-], at most MAX_ID characters.

    A longer id is cut and given an 8-hex suffix from the sha1 of the full text (stable across runs and
    machines), so two long names that share a prefix stay apart; the original name stays in `path`. A name with
    any non-ASCII character keeps what folds to ASCII (`été` -> `ete`) and always gets the suffix (of its NFC
    form, so a macOS-decomposed name gives the same id): `名前` and `日本` stay two videos.
    """
    text = unicodedata.normalize("NFC", text)
    folded = text if text.isascii() else unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    clean = re.sub(r"[^A-Za-z0-9_-]+", "-", folded).strip("-") or "video"
    if len(clean) <= MAX_ID and text.isascii():
        return clean
    digest = hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{clean[:MAX_ID - 9].rstrip('-_')}-{digest}"


class OutsidePath(DiscoveryError):
    """A labels.csv or metadata.json entry names a file outside the videos folder."""


def inside(root: Path, rel: str, where: str, allow_outside: bool) -> Path:
    """`rel` from a labels file, joined to `root`: an absolute path or one that leaves the folder (`..`) raises
    OutsidePath naming the entry, unless the user allowed it (--allow-outside-paths). Checked on the path as
    written (symlinks inside the folder are the user's own and are followed)."""
    path = Path(os.path.normpath(root / rel))
    if not allow_outside and (os.path.isabs(rel) or not path.is_relative_to(Path(os.path.normpath(root)))):
        raise OutsidePath(f"{where}: {rel!r} is outside the videos folder {root}; labels files are data and may "
                          "not point elsewhere (pass --allow-outside-paths if you mean it)")
    return path


def parse_label(raw, where: str) -> tuple[str | None, str | None]:
    label = LABELS.get(str(raw).strip().lower()) if raw is not None else None
    if label is None:
        return None, f"unknown label {raw!r} in {where} (expected REAL or FAKE)"
    return label, None


def is_video(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def tree(root: Path) -> Iterable[tuple[str, list[str], list[str]]]:
    """os.walk in sorted order, hidden folders skipped, symlinked folders followed (a dataset assembled from links
    is common), each real folder visited once (no loop through a link to a parent)."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield dirpath, dirnames, filenames


def walk(root: Path) -> Iterable[tuple[Path, list[str]]]:
    for dirpath, _, filenames in tree(root):
        yield Path(dirpath), sorted(filenames)


def unlabelled(root: Path, path: Path, source: str) -> Video:
    vid = safe_id(str(path.relative_to(root).with_suffix(""))) if source != "dfdc" else safe_id(path.stem)
    return Video(vid, str(path), None, None, vid, source)


def discover_unlabelled(root: Path, allow_outside: bool = False) -> list[Video]:
    """Any tree of videos without labels (e.g. DFDC test_videos/): split test, label null."""
    return [unlabelled(root, folder / f, "unlabelled") for folder, files in walk(root) for f in files
            if is_video(f)]
