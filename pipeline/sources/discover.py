"""Dataset layouts -> a sorted list of Video records: the layout, its module, grouping by identity, duplicates.

Dataset layouts -> a sorted list of Video records: the layout detected or asked for, each layout's own module, then
every video grouped by the people it involves (connected components) and duplicate ids marked.
"""
from __future__ import annotations

import collections
import dataclasses
from pathlib import Path
from typing import Callable

from pipeline.sources.avdeepfake1m import discover_avdeepfake1m
from pipeline.sources.celebdf import discover_celebdf
from pipeline.sources.dfdc import discover_dfdc
from pipeline.sources.fakeavceleb import discover_fakeavceleb, people_named
from pipeline.sources.ffpp import discover_ffpp
from pipeline.sources.lavdf import discover_lavdf
from pipeline.sources.labels_csv import discover_csv
from pipeline.sources.mixed import detect_layout, discover_mixed
from pipeline.sources.video import DiscoveryError, Video, discover_unlabelled, safe_id

LAYOUT_FUNCS: dict[str, Callable[[Path, bool], list[Video]]] = {
    "dfdc": discover_dfdc, "ffpp": discover_ffpp, "celebdf": discover_celebdf, "csv": discover_csv,
    "fakeavceleb": discover_fakeavceleb, "lavdf": discover_lavdf, "avdeepfake1m": discover_avdeepfake1m,
    "unlabelled": discover_unlabelled, "mixed": discover_mixed,
}


def identities(source: str, label: str | None, path: str, group: str) -> tuple[str, ...]:
    """Every person id a video involves, the first being its own group before linking: a FaceForensics++ fake
    `TTT_SSS` (or DeepFakeDetection `TT_SS__scene__hash`) involves its target TTT and its source SSS, a Celeb-DF
    fake `idA_idB_NNNN` idA and idB, a FakeAVCeleb video its id folder and the ids its file name carries; other
    videos only their group (DFDC and labels.csv give only `original`)."""
    if source.startswith("fakeavceleb/"):
        return (group, *(safe_id(f"fakeavceleb-{p}") for p in people_named(path)))
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
