"""Mixed trees: the dataset trees a folder holds (the detected layout), each read as its layout, the rest unlabelled.

Mixed trees: which dataset trees a folder holds (the layout detected), each read with its own layout, the rest
unlabelled.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
from pathlib import Path

from pipeline.sources.avdeepfake1m import SPLIT_FILES, discover_avdeepfake1m
from pipeline.sources.celebdf import CELEBDF_DIRS, discover_celebdf
from pipeline.sources.dfdc import dfdc_video, read_metadata
from pipeline.sources.fakeavceleb import FAKEAVCELEB_DIRS, discover_fakeavceleb
from pipeline.sources.ffpp import DFD_DIRS, FFPP_DIRS, discover_ffpp
from pipeline.sources.lavdf import METADATA, discover_lavdf, is_record_list
from pipeline.sources.labels_csv import discover_csv
from pipeline.sources.video import Video, is_video, safe_id, tree, unlabelled, walk

log = logging.getLogger(__name__)


def find_datasets(root: Path) -> list[tuple[str, Path]]:
    """Every dataset tree under root, as (layout, folder): a folder with labels.csv (csv), one holding
    original_sequences/ or manipulated_sequences/ or the DeepFakeDetection folders (ffpp; not searched further),
    one holding Celeb-real/, YouTube-real/ or Celeb-synthesis/ (celebdf; not searched further), a folder with
    metadata.json (a DFDC part), one holding FakeAVCeleb's category folders, AV-Deepfake1M's per-split metadata
    files or LAV-DF's metadata.json list (each not searched further). Videos outside all of them are unlabelled."""
    found = []
    for dirpath, dirnames, filenames in tree(root):
        folder = Path(dirpath)
        if (layout := _av_layout(folder, dirnames, filenames)) is not None:
            found.append((layout, folder))
            dirnames[:] = []
        elif "labels.csv" in filenames:
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


def _av_layout(folder: Path, dirnames: list[str], filenames: list[str]) -> str | None:
    """fakeavceleb, avdeepfake1m or lavdf where the folder holds that audio-visual dataset, else None."""
    if set(FAKEAVCELEB_DIRS) & set(dirnames):
        return "fakeavceleb"
    if set(SPLIT_FILES.values()) & set(filenames):
        return "avdeepfake1m"
    if any(name in filenames and is_record_list(folder / name) for name in METADATA):
        return "lavdf"
    return None


AV_LAYOUTS = {"fakeavceleb": discover_fakeavceleb, "lavdf": discover_lavdf, "avdeepfake1m": discover_avdeepfake1m}


def detect_layout(root: Path) -> str:
    """The layout of the tree: one of pipeline.sources.discover.LAYOUT_FUNCS, or 'mixed' when it holds datasets of
    several layouts (or a csv or FaceForensics++ tree below the root)."""
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
            part = (discover_ffpp if layout == "ffpp" else discover_celebdf)(folder)
        elif layout in AV_LAYOUTS:
            part = AV_LAYOUTS[layout](folder, allow_outside)
        elif layout == "csv":
            prefix = safe_id(str(folder.relative_to(root))) if folder != root else ""
            part = [_prefixed(v, prefix) for v in discover_csv(folder, allow_outside)]
        else:
            part = [dfdc_video(folder, name, entry, folder / "metadata.json", allow_outside)
                    for name, entry in sorted(read_metadata(folder / "metadata.json").items())]
        counts[layout] += len(part)
        videos += part
    claimed = {Path(v.path).resolve() for v in videos}
    stray = [unlabelled(root, folder / f, "unlabelled") for folder, files in walk(root) for f in files
             if is_video(f) and not any(folder == t or t in folder.parents for t in trees)
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
