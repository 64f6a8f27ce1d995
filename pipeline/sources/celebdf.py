"""The Celeb-DF layout (v1, v2): Celeb-real/, YouTube-real/, Celeb-synthesis/."""
from __future__ import annotations

from pathlib import Path

from pipeline.sources.video import Video, is_video, safe_id, walk

CELEBDF_DIRS = ("Celeb-real", "YouTube-real", "Celeb-synthesis")


def discover_celebdf(root: Path, allow_outside: bool = False) -> list[Video]:
    """Celeb-DF (v1, v2): Celeb-real/idA_NNNN and YouTube-real/NNNNN are real, Celeb-synthesis/idA_idB_NNNN fake
    (idA's video NNNN with idB's face, original Celeb-real/idA_NNNN). Groups by identity: a celebrity's real and
    fake videos join idA (and idB through identities()); a YouTube video is its own group."""
    videos: list[Video] = []
    for family in CELEBDF_DIRS:
        for folder, files in walk(root / family) if (root / family).is_dir() else ():
            videos += [_celebdf_video(folder / f, family) for f in files if is_video(f)]
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
