"""The DFDC layout: a folder with a metadata.json is a part; loose videos are unlabelled.

The DFDC layout: every folder with a metadata.json is a part (label, original per file); loose videos are
unlabelled.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from pipeline.sources.video import DiscoveryError, Video, inside, is_video, parse_label, safe_id, unlabelled, walk

log = logging.getLogger(__name__)


def discover_dfdc(root: Path, allow_outside: bool = False) -> list[Video]:
    """Every folder with a metadata.json is a DFDC part; videos in folders without one are unlabelled."""
    videos: list[Video] = []
    for folder, files in walk(root):
        meta_path = folder / "metadata.json"
        if "metadata.json" not in files:
            loose = [unlabelled(root, folder / f, "dfdc") for f in files if is_video(f)]
            if loose:
                log.warning("%s: %d videos in a folder without metadata.json are taken as unlabelled (split test)",
                            folder, len(loose))
            videos += loose
            continue
        meta = read_metadata(meta_path)
        listed = set()
        for name, entry in sorted(meta.items()):
            listed.add(name)
            videos.append(dfdc_video(folder, name, entry, meta_path, allow_outside))
        extra = [f for f in files if is_video(f) and f not in listed]
        if extra:
            log.warning("%s: %d videos not listed in metadata.json are taken as unlabelled", folder, len(extra))
            videos += [unlabelled(root, folder / f, "dfdc") for f in extra]
    return videos


def read_metadata(meta_path: Path) -> dict:
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DiscoveryError(f"{meta_path}: cannot read metadata: {exc}") from exc
    if not isinstance(meta, dict):
        raise DiscoveryError(f"{meta_path}: expected an object mapping file names to entries")
    return meta


def dfdc_video(folder: Path, name: str, entry, meta_path: Path, allow_outside: bool = False) -> Video:
    vid = safe_id(Path(name).stem)
    path = inside(folder, name, f"{meta_path} entry {name!r}", allow_outside)
    entry = entry if isinstance(entry, dict) else {}
    label, error = parse_label(entry.get("label"), f"{meta_path} for {name}")
    original = entry.get("original")
    original_id = safe_id(Path(original).stem) if original else None
    group = original_id if (label == "fake" and original_id) else vid
    if error is None and not path.is_file():
        error = f"listed in {meta_path} but the file is missing"
    return Video(vid, str(path), label, original_id, group, "dfdc", error)
