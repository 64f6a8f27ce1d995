"""Dataset layouts -> a sorted list of Video records (DFDC parts, FaceForensics++, labels.csv, unlabelled)."""
from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import json
import logging
import os
import re
import unicodedata
from pathlib import Path
from typing import Callable, Iterable

from dfd.errors import UsageProblem

log = logging.getLogger(__name__)

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

    @property
    def split_label(self) -> str:
        return self.label or "unlabelled"


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


def _label(raw, where: str) -> tuple[str | None, str | None]:
    label = LABELS.get(str(raw).strip().lower()) if raw is not None else None
    if label is None:
        return None, f"unknown label {raw!r} in {where} (expected REAL or FAKE)"
    return label, None


def _is_video(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


def _tree(root: Path) -> Iterable[tuple[str, list[str], list[str]]]:
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


def _walk(root: Path) -> Iterable[tuple[Path, list[str]]]:
    for dirpath, _, filenames in _tree(root):
        yield Path(dirpath), sorted(filenames)


def discover_dfdc(root: Path, allow_outside: bool = False) -> list[Video]:
    """Every folder with a metadata.json is a DFDC part; videos in folders without one are unlabelled."""
    videos: list[Video] = []
    for folder, files in _walk(root):
        meta_path = folder / "metadata.json"
        if "metadata.json" not in files:
            loose = [_unlabelled(root, folder / f, "dfdc") for f in files if _is_video(f)]
            if loose:
                log.warning("%s: %d videos in a folder without metadata.json are taken as unlabelled (split test)",
                            folder, len(loose))
            videos += loose
            continue
        meta = _read_metadata(meta_path)
        listed = set()
        for name, entry in sorted(meta.items()):
            listed.add(name)
            videos.append(_dfdc_video(folder, name, entry, meta_path, allow_outside))
        extra = [f for f in files if _is_video(f) and f not in listed]
        if extra:
            log.warning("%s: %d videos not listed in metadata.json are taken as unlabelled", folder, len(extra))
            videos += [_unlabelled(root, folder / f, "dfdc") for f in extra]
    return videos


def _read_metadata(meta_path: Path) -> dict:
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DiscoveryError(f"{meta_path}: cannot read metadata: {exc}") from exc
    if not isinstance(meta, dict):
        raise DiscoveryError(f"{meta_path}: expected an object mapping file names to entries")
    return meta


def _dfdc_video(folder: Path, name: str, entry, meta_path: Path, allow_outside: bool = False) -> Video:
    vid = safe_id(Path(name).stem)
    path = inside(folder, name, f"{meta_path} entry {name!r}", allow_outside)
    entry = entry if isinstance(entry, dict) else {}
    label, error = _label(entry.get("label"), f"{meta_path} for {name}")
    original = entry.get("original")
    original_id = safe_id(Path(original).stem) if original else None
    group = original_id if (label == "fake" and original_id) else vid
    if error is None and not path.is_file():
        error = f"listed in {meta_path} but the file is missing"
    return Video(vid, str(path), label, original_id, group, "dfdc", error)


def _unlabelled(root: Path, path: Path, source: str) -> Video:
    vid = safe_id(str(path.relative_to(root).with_suffix(""))) if source != "dfdc" else safe_id(path.stem)
    return Video(vid, str(path), None, None, vid, source)


FFPP_DIRS = ("original_sequences", "manipulated_sequences")
# The DeepFakeDetection (Google/Jigsaw) part as often shared on its own, flat: originals of the actors and their fakes
DFD_DIRS = {"DFD_original sequences": "original_sequences", "DFD_original_sequences": "original_sequences",
            "DFD_manipulated_sequences": "manipulated_sequences"}
COMPRESSIONS = ("raw", "c23", "c40")


def discover_ffpp(root: Path, allow_outside: bool = False) -> list[Video]:
    """FaceForensics++: original_sequences/<src>/<comp>/videos are real, manipulated_sequences/<method>/... fake;
    the DeepFakeDetection folders `DFD_original sequences/` (actors) and `DFD_manipulated_sequences/` too, flat or
    not (compression from a raw/c23/c40 folder in the path, else c23, the form they are shared in)."""
    videos: list[Video] = []
    for kind in FFPP_DIRS:
        base = root / kind
        if not base.is_dir():
            continue
        for folder, files in _walk(base):
            rel = folder.relative_to(base).parts  # (<src or method>, <compression>, 'videos')
            if len(rel) < 2:
                continue
            for name in files:
                if _is_video(name):
                    videos.append(_ffpp_video(folder / name, kind, rel[0], rel[1]))
    for name, kind in DFD_DIRS.items():
        if (root / name).is_dir():
            family = "actors" if kind == "original_sequences" else "DeepFakeDetection"
            for folder, files in _walk(root / name):
                rel = folder.relative_to(root / name).parts
                compression = next((p for p in rel if p in COMPRESSIONS), "c23")
                videos += [_ffpp_video(folder / f, kind, family, compression) for f in files if _is_video(f)]
    return videos


def _ffpp_video(path: Path, kind: str, family: str, compression: str) -> Video:
    stem = path.stem
    vid = safe_id(f"ffpp-{family}-{compression}-{stem}")
    if kind == "original_sequences":
        who = stem.split("__")[0]  # actors: '01__meeting_serious' -> actor 01
        return Video(vid, str(path), "real", None, safe_id(f"ffpp-{family}-{who}"), f"ffpp/{family}")
    if "__" in stem:  # DeepFakeDetection: '01_02__scene__HASH' -> target actor 01 (source 02), original '01__scene'
        target = stem.split("_")[0]
        scene = stem.split("__")[1]
        original = safe_id(f"ffpp-actors-{compression}-{target}__{scene}")
        group = safe_id(f"ffpp-actors-{target}")
    else:  # 'TTT_SSS' -> target TTT (the source SSS links in through identities())
        target = stem.split("_")[0]
        original = safe_id(f"ffpp-youtube-{compression}-{target}")
        group = safe_id(f"ffpp-youtube-{target}")
    return Video(vid, str(path), "fake", original, group, f"ffpp/{family}")


CELEBDF_DIRS = ("Celeb-real", "YouTube-real", "Celeb-synthesis")


def discover_celebdf(root: Path, allow_outside: bool = False) -> list[Video]:
    """Celeb-DF (v1, v2): Celeb-real/idA_NNNN and YouTube-real/NNNNN are real, Celeb-synthesis/idA_idB_NNNN fake
    (idA's video NNNN with idB's face, original Celeb-real/idA_NNNN). Groups by identity: a celebrity's real and
    fake videos join idA (and idB through identities()); a YouTube video is its own group."""
    videos: list[Video] = []
    for family in CELEBDF_DIRS:
        for folder, files in _walk(root / family) if (root / family).is_dir() else ():
            videos += [_celebdf_video(folder / f, family) for f in files if _is_video(f)]
    return videos


def _celebdf_video(path: Path, family: str) -> Video:
    stem = path.stem
    source = f"celebdf/{family}"
    if family == "YouTube-real":
        vid = safe_id(f"celebdf-yt-{stem}")
        return Video(vid, str(path), "real", None, vid, source)
    vid = safe_id(f"celebdf-{stem}")
    ids = stem.split("_")
    group = safe_id(f"celebdf-{ids[0]}")
    if family == "Celeb-real":
        return Video(vid, str(path), "real", None, group, source)
    original = safe_id(f"celebdf-{ids[0]}_{ids[-1]}") if len(ids) >= 3 else None
    return Video(vid, str(path), "fake", original, group, source)


def identities(source: str, label: str | None, path: str, group: str) -> tuple[str, ...]:
    """Every person id a video involves, the first being its own group before linking: a FaceForensics++ fake
    `TTT_SSS` (or DeepFakeDetection `TT_SS__scene__hash`) involves its target TTT and its source SSS, a Celeb-DF
    fake `idA_idB_NNNN` idA and idB; other videos only their group (DFDC and labels.csv give only `original`)."""
    if source == "celebdf/Celeb-synthesis":
        ids = Path(path).stem.split("_")
        return (group, *(safe_id(f"celebdf-{i}") for i in ids[1:-1]))
    if not source.startswith("ffpp/"):
        return (group,)
    family, stem = source.split("/", 1)[1], Path(path).stem
    if label != "fake":
        return (safe_id(f"ffpp-{family}-{stem.split('__')[0]}"),)
    people = stem.split("__")[0].split("_")[:2]
    kind = "actors" if "__" in stem else "youtube"
    return tuple(safe_id(f"ffpp-{kind}-{p}") for p in people if p)


def link_groups(id_lists: list[tuple[str, ...]]) -> list[str]:
    """The group of each video: the connected component of the ids it shares with others, so that one person (as a
    target, a source or a real video) never sits on both sides of the split. A component is named by the smallest
    of its videos' own groups (first ids), never by a source-only id: a fake whose source has no video of its own
    keeps its target's group, and groups change only where videos really link two of them."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for ids in id_lists:
        for other in ids[1:]:
            a, b = root(ids[0]), root(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
        root(ids[0])
    name: dict[str, str] = {}
    for ids in id_lists:
        r = root(ids[0])
        name[r] = min(name.get(r, ids[0]), ids[0])
    return [name[root(ids[0])] for ids in id_lists]


def discover_csv(root: Path, allow_outside: bool = False) -> list[Video]:
    """labels.csv with columns path,label[,original] (or DFDC's test labels, filename,label with 1 = fake); paths
    relative to the csv's folder."""
    csv_path = root / "labels.csv"
    videos: list[Video] = []
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields = set(reader.fieldnames or ())
        column = "path" if "path" in fields else "filename"
        if not {column, "label"} <= fields:
            raise DiscoveryError(f"{csv_path}: needs the columns path,label[,original] (or filename,label), got "
                                 f"{reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            rel = (row.get(column) or "").strip()
            path = inside(root, rel, f"{csv_path} line {line}", allow_outside) if rel else root
            vid = safe_id(str(Path(rel).with_suffix("")))
            label, error = _label(row.get("label"), f"{csv_path} line {line}")
            original = (row.get("original") or "").strip()
            original_id = safe_id(str(Path(original).with_suffix(""))) if original else None
            group = original_id if (label == "fake" and original_id) else vid
            if error is None and not path.is_file():
                error = f"listed in {csv_path} line {line} but the file is missing"
            videos.append(Video(vid, str(path), label, original_id, group, "csv", error))
    return videos


def discover_unlabelled(root: Path, allow_outside: bool = False) -> list[Video]:
    """Any tree of videos without labels (e.g. DFDC test_videos/): split test, label null."""
    return [_unlabelled(root, folder / f, "unlabelled") for folder, files in _walk(root) for f in files
            if _is_video(f)]


LAYOUT_FUNCS: dict[str, Callable[[Path, bool], list[Video]]] = {
    "dfdc": discover_dfdc, "ffpp": discover_ffpp, "celebdf": discover_celebdf, "csv": discover_csv,
    "unlabelled": discover_unlabelled,
}


def find_datasets(root: Path) -> list[tuple[str, Path]]:
    """Every dataset tree under root, as (layout, folder): a folder with labels.csv (csv), one holding
    original_sequences/ or manipulated_sequences/ or the DeepFakeDetection folders (ffpp; not searched further),
    one holding Celeb-real/, YouTube-real/ or Celeb-synthesis/ (celebdf; not searched further), a folder with
    metadata.json (a DFDC part). Videos outside all of them are unlabelled."""
    found = []
    for dirpath, dirnames, filenames in _tree(root):
        folder = Path(dirpath)
        if "labels.csv" in filenames:
            found.append(("csv", folder))
            dirnames[:] = []
        elif {*FFPP_DIRS, *DFD_DIRS} & set(dirnames):
            found.append(("ffpp", folder))
            dirnames[:] = []
        elif set(CELEBDF_DIRS) & set(dirnames):
            found.append(("celebdf", folder))
            dirnames[:] = []
        elif "metadata.json" in filenames:
            found.append(("dfdc", folder))
    return found


def detect_layout(root: Path) -> str:
    """The layout of the tree: one of LAYOUT_FUNCS, or 'mixed' when it holds datasets of several layouts (or a
    csv or FaceForensics++ tree below the root)."""
    found = find_datasets(root)
    kinds = {layout for layout, _ in found}
    if not kinds:
        return "unlabelled"
    if kinds == {"dfdc"}:
        return "dfdc"
    if len(found) == 1 and found[0][1] == root:
        return found[0][0]
    return "mixed"


def discover_mixed(root: Path, allow_outside: bool = False) -> list[Video]:
    """Each dataset tree with its own layout, then the videos outside them as unlabelled; all ids kept unique
    (FaceForensics++ ids carry their `ffpp-` prefix; csv and unlabelled ids are relative to this root)."""
    found = find_datasets(root)
    trees = [folder for layout, folder in found if layout != "dfdc"]
    videos: list[Video] = []
    counts: collections.Counter = collections.Counter()
    for layout, folder in found:
        if layout in ("ffpp", "celebdf"):
            part = LAYOUT_FUNCS[layout](folder)
        elif layout == "csv":
            prefix = safe_id(str(folder.relative_to(root))) if folder != root else ""
            part = [_prefixed(v, prefix) for v in discover_csv(folder, allow_outside)]
        else:
            part = [_dfdc_video(folder, name, entry, folder / "metadata.json", allow_outside)
                    for name, entry in sorted(_read_metadata(folder / "metadata.json").items())]
        counts[layout] += len(part)
        videos += part
    claimed = {Path(v.path).resolve() for v in videos}
    stray = [_unlabelled(root, folder / f, "unlabelled") for folder, files in _walk(root) for f in files
             if _is_video(f) and not any(folder == t or t in folder.parents for t in trees)
             and (folder / f).resolve() not in claimed]
    if stray:
        log.warning("%s: %d videos outside any labelled dataset are taken as unlabelled (split test), e.g. %s",
                    root, len(stray), stray[0].path)
    log.info("%s holds several datasets: %s", root, ", ".join(f"{k} ({n} videos)" for k, n in sorted(counts.items())))
    return videos + stray


def _prefixed(video: Video, prefix: str) -> Video:
    if not prefix:
        return video
    fix = lambda x: safe_id(f"{prefix}-{x}") if x else x  # noqa: E731
    return dataclasses.replace(video, video_id=fix(video.video_id), original=fix(video.original), group=fix(video.group))


LAYOUT_FUNCS["mixed"] = discover_mixed


def discover(root: str | Path, layout: str = "auto", allow_outside: bool = False) -> tuple[str, list[Video]]:
    """(layout used, videos sorted by id). Duplicate ids after the first become error rows. A labels.csv or
    metadata.json entry outside the folder raises OutsidePath unless `allow_outside`."""
    root = Path(root)
    if not root.is_dir():
        raise DiscoveryError(f"{root}: no such folder")
    layout = detect_layout(root) if layout == "auto" else layout
    videos = sorted(LAYOUT_FUNCS[layout](root, allow_outside), key=lambda v: (v.video_id, v.path))
    groups = link_groups([identities(v.source, v.label, v.path, v.group) for v in videos])
    videos = [dataclasses.replace(v, group=g) if g != v.group else v for v, g in zip(videos, groups)]
    return layout, _mark_duplicates(videos)


def _mark_duplicates(videos: list[Video]) -> list[Video]:
    first: dict[str, str] = {}
    repeats: collections.Counter = collections.Counter()
    out = []
    for v in videos:
        if v.video_id in first:
            repeats[v.video_id] += 1
            v = dataclasses.replace(v, video_id=f"{v.video_id}-dup{repeats[v.video_id]}",
                                    error=f"duplicate video id {v.video_id!r} (first at {first[v.video_id]})")
        else:
            first[v.video_id] = v.path
        out.append(v)
    return out
