"""The AV-Deepfake1M layout: one metadata file per split at the root (train_metadata.json, val_metadata.json: lists
of records), the videos under the split's folder (train/FILE, val/FILE), and test_files.txt listing the test
videos (test/FILE) without labels. A record: `file` (VoxCeleb2-style ID/CLIP/NNNNN.mp4), `original`, `split`,
`modify_type` (real, visual_modified, audio_modified, both_modified), `audio_model`, `fake_segments`,
`visual_fake_segments`, `audio_fake_segments` ([[start, end], ...] in seconds), `video_frames`, `audio_frames`."""
from __future__ import annotations

from pathlib import Path

from pipeline.sources.lavdf import av_video, read_records
from pipeline.sources.periods import parse_periods
from pipeline.sources.video import DiscoveryError, Video, inside, safe_id

SPLIT_FILES = {"train": "train_metadata.json", "val": "val_metadata.json"}
TEST_LIST = "test_files.txt"
MODIFY = {"real": (False, False), "visual_modified": (True, False), "audio_modified": (False, True),
          "both_modified": (True, True), "both-modified": (True, True)}


def discover_avdeepfake1m(root: Path, allow_outside: bool = False) -> list[Video]:
    videos: list[Video] = []
    for split, name in SPLIT_FILES.items():
        if (root / name).is_file():
            videos += [_video(root, split, r, i, f"{root / name} record {i}", allow_outside)
                       for i, r in enumerate(read_records(root / name))]
    if (root / TEST_LIST).is_file():
        for line in (root / TEST_LIST).read_text().splitlines():
            if line.strip() and Path(line.strip()).name:
                vid = safe_id(f"av1m-{Path(line.strip()).with_suffix('')}")
                path = inside(root / "test", line.strip(), f"{root / TEST_LIST}", allow_outside)
                videos.append(Video(vid, str(path), None, None, vid, "avdeepfake1m", None if path.is_file()
                                    else f"listed in {root / TEST_LIST} but the file is missing", official_split="test"))
    if not videos:
        raise DiscoveryError(f"{root}: no AV-Deepfake1M metadata ({', '.join(SPLIT_FILES.values())}, {TEST_LIST})")
    return videos


def _video(root: Path, split: str, record, index: int, where: str, allow_outside: bool) -> Video:
    """A record: picture and sound labels from modify_type, the picture's periods from visual_fake_segments and the
    sound's from audio_fake_segments (fake_segments where those are absent); grouped by speaker (the file's first
    folder, a VoxCeleb2 id)."""
    record = record if isinstance(record, dict) else {}
    file = str(record.get("file") or "")
    if not file or not Path(file).name:
        vid = safe_id(f"av1m-{split}-record-{index}")
        return Video(vid, str(root), None, None, vid, "avdeepfake1m", f"{where}: no 'file' (a record is an object)")
    vid = safe_id(f"av1m-{Path(file).with_suffix('')}")
    path = inside(root / split, file, where, allow_outside)
    parsed = {k: parse_periods(record.get(k), where) for k in
              ("fake_segments", "visual_fake_segments", "audio_fake_segments")}
    error = next((e for _, e in parsed.values() if e), None)
    periods = {k: p or () for k, (p, _) in parsed.items()}
    modify = MODIFY.get(str(record.get("modify_type")))
    if error is None and modify is None:
        error = f"{where}: unknown modify_type {record.get('modify_type')!r} (expected {', '.join(MODIFY)})"
    if error is None and not path.is_file():
        error = f"listed in {where} but the file is missing"
    picture, sound = modify or (False, False)
    whole = periods["fake_segments"]
    visual = periods["visual_fake_segments"] if "visual_fake_segments" in record else whole
    audio = periods["audio_fake_segments"] if "audio_fake_segments" in record else whole
    speaker = Path(file).parts[0] if len(Path(file).parts) > 1 else None
    return av_video(vid, path, "av1m", picture, sound, whole, visual, audio, record.get("original"), "avdeepfake1m",
                    speaker, split, error)
