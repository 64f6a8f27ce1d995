"""The labels.csv layout: path,label[,original] (or DFDC's test labels, filename,label), paths relative to it."""
from __future__ import annotations

import csv
from pathlib import Path

from pipeline.sources.video import DiscoveryError, Video, inside, parse_label, safe_id


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
            label, error = parse_label(row.get("label"), f"{csv_path} line {line}")
            original = (row.get("original") or "").strip()
            original_id = safe_id(str(Path(original).with_suffix(""))) if original else None
            group = original_id if (label == "fake" and original_id) else vid
            if error is None and not path.is_file():
                error = f"listed in {csv_path} line {line} but the file is missing"
            videos.append(Video(vid, str(path), label, original_id, group, "csv", error))
    return videos
