"""The LAV-DF layout: metadata.json (or metadata.min.json) at the root, a list of records with `file` (relative to
the root), `split` (train, dev, test), `n_fakes`, `fake_periods` ([[start, end], ...] in seconds), `duration`,
`original`, `modify_video`, `modify_audio` (and video_frames, audio_channels, audio_frames, unused)."""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.sources.periods import parse_periods
from pipeline.sources.video import DiscoveryError, Video, inside, safe_id

METADATA = ("metadata.json", "metadata.min.json")
SPLITS = {"train": "train", "dev": "val", "val": "val", "test": "test"}


def is_record_list(path: Path) -> bool:
    """Whether a metadata file holds a JSON list (LAV-DF's records; DFDC's metadata.json is an object)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4096).lstrip().startswith(b"[")
    except OSError:
        return False


def read_records(path: Path) -> list:
    try:
        records = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DiscoveryError(f"{path}: cannot read metadata: {exc}") from exc
    if not isinstance(records, list):
        raise DiscoveryError(f"{path}: expected a list of records (file, split, fake_periods, ...)")
    return records


def discover_lavdf(root: Path, allow_outside: bool = False) -> list[Video]:
    meta = next((root / name for name in METADATA if (root / name).is_file()), None)
    if meta is None:
        raise DiscoveryError(f"{root}: no LAV-DF metadata.json")
    return [lavdf_video(root, r, i, f"{meta} record {i}", allow_outside) for i, r in enumerate(read_records(meta))]


def lavdf_video(root: Path, record, index: int, where: str, allow_outside: bool) -> Video:
    """One record: label fake where the picture or the sound was modified; picture_periods / sound_periods are the
    fake periods of what was modified (none of what was not); a fake is grouped with its original."""
    record = record if isinstance(record, dict) else {}
    file = str(record.get("file") or "")
    if not file or not Path(file).name:
        vid = safe_id(f"lavdf-record-{index}")
        return Video(vid, str(root), None, None, vid, "lavdf", f"{where}: no 'file' (a record is an object)")
    vid = safe_id(f"lavdf-{Path(file).with_suffix('')}")
    path = inside(root, file, where, allow_outside)
    periods, error = parse_periods(record.get("fake_periods"), where)
    if error is None and record.get("n_fakes") is not None and record["n_fakes"] != len(periods):
        error = f"{where}: n_fakes {record['n_fakes']} but {len(periods)} fake periods"
    split = SPLITS.get(str(record.get("split")))
    if error is None and split is None:
        error = f"{where}: unknown split {record.get('split')!r} (expected train, dev or test)"
    if error is None and not path.is_file():
        error = f"listed in {where} but the file is missing"
    return av_video(vid, path, "lavdf", bool(record.get("modify_video")), bool(record.get("modify_audio")),
                    periods or (), periods or (), periods or (), record.get("original"), "lavdf", None, split, error)


def av_video(vid: str, path: Path, prefix: str, picture: bool, sound: bool, periods, picture_periods,
             sound_periods, original: str | None, source: str, speaker: str | None, split: str | None,
             error: str | None) -> Video:
    """The Video of a segment-labelled dataset (LAV-DF, AV-Deepfake1M): labels from what was modified, the periods
    of what was not modified emptied, grouped by speaker where known, else by original."""
    label = "fake" if picture or sound else "real"
    original_id = safe_id(f"{prefix}-{Path(original).with_suffix('')}") if original and label == "fake" else None
    group = safe_id(f"{prefix}-{speaker}") if speaker else (original_id or vid)
    return Video(vid, str(path), label, original_id, group, source, error,
                 picture_label="fake" if picture else "real", sound_label="fake" if sound else "real",
                 fake_periods=tuple(periods), picture_periods=tuple(picture_periods) if picture else (),
                 sound_periods=tuple(sound_periods) if sound else (), speaker=speaker, official_split=split)
