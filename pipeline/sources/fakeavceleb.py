"""The FakeAVCeleb layout: RealVideo-RealAudio/, RealVideo-FakeAudio/, FakeVideo-RealAudio/, FakeVideo-FakeAudio/,
each holding RACE/GENDER/ID/*.mp4. The folder says which of picture and sound is fake; the id folder is the speaker."""
from __future__ import annotations

import re
from pathlib import Path

from pipeline.sources.video import Video, is_video, safe_id, walk

FAKEAVCELEB_DIRS = ("RealVideo-RealAudio", "RealVideo-FakeAudio", "FakeVideo-RealAudio", "FakeVideo-FakeAudio")
SHORT = {"RealVideo-RealAudio": "rvra", "RealVideo-FakeAudio": "rvfa", "FakeVideo-RealAudio": "fvra",
         "FakeVideo-FakeAudio": "fvfa"}
PERSON = re.compile(r"id\d+")


def discover_fakeavceleb(root: Path, allow_outside: bool = False) -> list[Video]:
    """Every video of the four category folders: picture_label from RealVideo/FakeVideo, sound_label from
    RealAudio/FakeAudio, label fake where either is; grouped by the speaker's id folder (the other ids a fake's file
    name carries are linked by pipeline.sources.discover.identities); a fake's original is the real video of its
    id folder whose name its own starts with, where there is one."""
    videos: list[Video] = []
    for family in FAKEAVCELEB_DIRS:
        folder_root = root / family
        for folder, files in walk(folder_root) if folder_root.is_dir() else ():
            videos += [_video(root, folder / f, family) for f in files if is_video(f)]
    return videos


def _video(root: Path, path: Path, family: str) -> Video:
    speaker = path.parent.name
    picture = "fake" if family.startswith("FakeVideo") else "real"
    sound = "fake" if family.endswith("FakeAudio") else "real"
    label = "fake" if "fake" in (picture, sound) else "real"
    vid = safe_id(f"fakeavceleb-{SHORT[family]}-{speaker}-{path.stem}")
    original = None
    if label == "fake":
        real = root / "RealVideo-RealAudio" / path.parent.relative_to(root / family) / f"{path.stem.split('_')[0]}.mp4"
        original = safe_id(f"fakeavceleb-rvra-{speaker}-{real.stem}") if real.is_file() else None
    return Video(vid, str(path), label, original, safe_id(f"fakeavceleb-{speaker}"), f"fakeavceleb/{family}",
                 picture_label=picture, sound_label=sound, speaker=speaker)


def people_named(path: str) -> list[str]:
    """The person ids a FakeAVCeleb file involves besides its id folder's (a face swapped in names its source)."""
    return [p for p in PERSON.findall(Path(path).stem) if p != Path(path).parent.name]
