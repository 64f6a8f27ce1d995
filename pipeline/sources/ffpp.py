"""The FaceForensics++ layout (original_sequences/, manipulated_sequences/) with the DeepFakeDetection folders."""
from __future__ import annotations

from pathlib import Path

from pipeline.sources.video import Video, is_video, safe_id, walk

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
        for folder, files in walk(base):
            rel = folder.relative_to(base).parts  # (<src or method>, <compression>, 'videos')
            if len(rel) < 2:
                continue
            for name in files:
                if is_video(name):
                    videos.append(_ffpp_video(folder / name, kind, rel[0], rel[1]))
    for name, kind in DFD_DIRS.items():
        if (root / name).is_dir():
            family = "actors" if kind == "original_sequences" else "DeepFakeDetection"
            for folder, files in walk(root / name):
                rel = folder.relative_to(root / name).parts
                compression = next((p for p in rel if p in COMPRESSIONS), "c23")
                videos += [_ffpp_video(folder / f, kind, family, compression) for f in files if is_video(f)]
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
