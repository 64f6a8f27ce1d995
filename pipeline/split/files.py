"""Official split files and test lists: which split (and, for unlabelled videos, which label) a dataset's own
files give each video. The file's assignment wins over the hash split (pipeline.split.hashed).

Formats, recognised by content:
- FaceForensics++ `train.json` / `val.json` / `test.json`: a JSON list of `[target, source]` id pairs. An
  original `TTT` and the fakes `TTT_SSS` / `SSS_TTT` of a listed pair go to that split (YouTube-based methods;
  DeepFakeDetection / actors videos are not in these files). The split is the file's name unless `SPLIT=FILE`.
- Celeb-DF-v2 `List_of_testing_videos.txt`: lines `LABEL RELATIVE/PATH.mp4` (1 = real, 0 = fake); split test.
- DFDC-style `labels.csv`: columns `filename` (or `path`), `label` (0/1 or REAL/FAKE, 1 = fake); split test. Its
  labels are given to videos discovery found unlabelled (DFDC's test_videos/ beside its labels.csv).
A path entry matches a video whose path ends with the entry's path parts (a bare file name matches the name).
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import hashlib
import json
import logging
from pathlib import Path
from typing import Iterable, Sequence

from dfd.errors import UsageProblem

from pipeline.sources.video import LABELS, Video
from pipeline.split.hashed import assign_split

log = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")  # as pipeline.dataset.SPLITS
FFPP_SKIP = ("actors", "DeepFakeDetection")  # families the FF++ pair files do not list


class SplitFileError(UsageProblem, ValueError):
    """A split file that cannot be read or used; the message names the file and the reason."""


@dataclasses.dataclass(frozen=True)
class SplitFile:
    """One parsed file: `pairs` (FF++ id pairs) or `paths` (relative path -> label or None), all in `split`."""

    split: str
    path: str
    kind: str  # ffpp | list | csv
    sha256: str
    pairs: frozenset = frozenset()
    paths: tuple = ()

    def record(self) -> dict:
        """What the manifest's config keeps: enough to notice that a rerun was given other files."""
        return {"split": self.split, "path": self.path, "kind": self.kind, "sha256": self.sha256}


def parse_spec(spec: str) -> tuple[str | None, str]:
    """'test=FILE' -> ('test', 'FILE'); 'FILE' -> (None, 'FILE') (the split comes from the file)."""
    head, sep, tail = spec.partition("=")
    if sep and head in SPLIT_NAMES:
        return head, tail
    if sep and "/" not in head and "." not in head:
        raise SplitFileError(f"--split-file {spec!r}: the split must be one of {', '.join(SPLIT_NAMES)}")
    return None, spec


def read_split_file(spec: str) -> SplitFile:
    """Parse one `[SPLIT=]FILE`; SplitFileError names the file and what is wrong."""
    split, name = parse_spec(spec)
    path = Path(name)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SplitFileError(f"--split-file {path}: cannot read it: {exc.strerror or exc}") from exc
    digest = hashlib.sha256(raw).hexdigest()
    text = raw.decode("utf-8", "replace")
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        pairs = _ffpp_pairs(text, path)
        split = split or path.stem.lower()
        if split not in SPLIT_NAMES:
            raise SplitFileError(f"{path}: a FaceForensics++ split file is named train.json, val.json or test.json; "
                                 f"for another name write SPLIT={path}")
        return SplitFile(split, str(path), "ffpp", digest, pairs=pairs)
    if path.suffix.lower() == ".csv":
        return SplitFile(split or "test", str(path), "csv", digest, paths=_csv_paths(text, path))
    return SplitFile(split or "test", str(path), "list", digest, paths=_list_paths(text, path))


def _ffpp_pairs(text: str, path: Path) -> frozenset:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SplitFileError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, list) or not all(isinstance(p, list) and len(p) == 2 for p in data):
        raise SplitFileError(f"{path}: expected a JSON list of [target, source] id pairs, as FaceForensics++'s "
                             "train.json")
    return frozenset(frozenset(str(x) for x in p) for p in data)


def _list_paths(text: str, path: Path) -> tuple:
    """Celeb-DF-v2's test list: `1 YouTube-real/00170.mp4` (1 = real, 0 = fake)."""
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            raise SplitFileError(f"{path} line {number}: expected `LABEL PATH` with LABEL 1 (real) or 0 (fake), "
                                 f"got {line.strip()!r}")
        out.append((parts[1].strip().replace("\\", "/"), "real" if parts[0] == "1" else "fake"))
    if not out:
        raise SplitFileError(f"{path}: lists no videos")
    return tuple(out)


def _csv_paths(text: str, path: Path) -> tuple:
    reader = csv.DictReader(text.splitlines())
    fields = set(reader.fieldnames or ())
    column = "filename" if "filename" in fields else "path" if "path" in fields else None
    if column is None:
        raise SplitFileError(f"{path}: needs a filename (or path) column and optionally label, got "
                             f"{reader.fieldnames}")
    out = []
    for line, row in enumerate(reader, 2):
        name = (row.get(column) or "").strip().replace("\\", "/")
        if not name:
            raise SplitFileError(f"{path} line {line}: empty {column}")
        raw = (row.get("label") or "").strip()
        label = LABELS.get(raw.lower()) if raw else None
        if raw and label is None:
            raise SplitFileError(f"{path} line {line}: unknown label {raw!r} (expected 0/1 or REAL/FAKE)")
        out.append((name, label))
    return tuple(out)


def read_split_files(specs: Iterable[str]) -> list[SplitFile]:
    files = [read_split_file(s) for s in specs]
    return sorted(files, key=lambda f: (SPLIT_NAMES.index(f.split), f.path))


def normalised(specs: Iterable[str]) -> tuple[str, ...]:
    """The specs as the manifest's config records them: 'SPLIT=/absolute/path', in train, val, test order."""
    return tuple(f"{f.split}={Path(f.path).resolve()}" for f in read_split_files(specs))


def _ffpp_key(video: Video) -> tuple[str, frozenset] | None:
    """(kind, ids) by which the FF++ pair files name this video, or None for videos they cannot list."""
    if not video.source.startswith("ffpp/") or video.source.split("/", 1)[1] in FFPP_SKIP:
        return None
    stem = Path(video.path).stem
    if video.label == "real":
        return "id", frozenset([stem])
    ids = stem.split("_")
    return ("pair", frozenset(ids[:2])) if len(ids) >= 2 else None


def _suffixes(path: str) -> list[str]:
    parts = Path(path).parts
    return ["/".join(parts[-n:]) for n in range(1, min(len(parts), 4) + 1)]


@dataclasses.dataclass
class Assignment:
    """The split files' verdict per video id: split, and a label for videos discovery left unlabelled."""

    splits: dict
    labels: dict
    unmatched: int  # entries of the files that matched no video
    label_conflicts: int  # entries whose label disagrees with the one discovery found (discovery's is kept)


def assign(files: Sequence[SplitFile], videos: Sequence[Video]) -> Assignment:
    """Which videos the files place, and where; a later file of a later split loses to an earlier one (files are
    sorted train, val, test), with a warning counting the videos two files claim."""
    splits: dict[str, str] = {}
    labels: dict[str, str] = {}
    unmatched = conflicts = claimed_twice = 0
    by_suffix: dict[str, list[Video]] = collections.defaultdict(list)
    for v in videos:
        for s in _suffixes(v.path):
            by_suffix[s].append(v)
    for f in files:
        if f.kind == "ffpp":
            keys = [(v, k) for v in videos if (k := _ffpp_key(v)) is not None and _in_pairs(k, f.pairs)]
            unmatched += sum(not any(k[1] <= p for _, k in keys) for p in f.pairs)
            matched = [(v, None) for v, _ in keys]
        else:
            matched = []
            for rel, label in f.paths:
                found = by_suffix.get(rel.strip("/"), [])
                unmatched += not found
                matched += [(v, label) for v in found]
        for v, label in matched:
            if splits.setdefault(v.video_id, f.split) != f.split:
                claimed_twice += 1
                continue
            if label is not None and v.label is None:
                labels[v.video_id] = label
            elif label is not None and label != v.label:
                conflicts += 1
    if claimed_twice:
        log.warning("split files: %d videos are listed in two splits; the first (train, val, test order) wins",
                    claimed_twice)
    return Assignment(splits, labels, unmatched, conflicts)


def _in_pairs(key: tuple[str, frozenset], pairs: frozenset) -> bool:
    kind, ids = key
    if kind == "pair":
        return ids in pairs
    return any(ids <= p for p in pairs)


def apply(files: Sequence[SplitFile], videos: Sequence[Video], seed: int,
          val_fraction: float) -> list[tuple[Video, str]]:
    """(video, split) for every video: the files' split where they place it (with their label for an unlabelled
    video), else the hash split; warns about entries that matched nothing, labels that disagree, and identities
    (groups) the files put on two sides."""
    if not files:
        return [(v, v.official_split or assign_split(v.label, v.group, seed, val_fraction)) for v in videos]
    verdict = assign(files, videos)
    out = []
    for v in videos:
        if v.video_id in verdict.labels:
            v = dataclasses.replace(v, label=verdict.labels[v.video_id])
        split = (verdict.splits.get(v.video_id) or v.official_split
                 or assign_split(v.label, v.group, seed, val_fraction))
        if v.label is None and split != "test":
            split = "test"  # an unlabelled video cannot train
        out.append((v, split))
    placed = sum(v.video_id in verdict.splits for v, _ in out)
    log.info("split files: %d of %d videos placed by %s", placed, len(out), ", ".join(
        f"{f.split}={Path(f.path).name}" for f in files))
    if verdict.unmatched:
        log.warning("split files: %d entries match no video found under the videos folder", verdict.unmatched)
    if verdict.label_conflicts:
        log.warning("split files: %d entries give a label that disagrees with the dataset's own (kept)",
                    verdict.label_conflicts)
    if (n := len(crossing_groups(out))):
        log.warning("split files put %d identities (groups of linked people) on two sides of the split, e.g. %s: "
                    "the same face is then seen in training and in evaluation", n, crossing_groups(out)[0])
    return out


def crossing_groups(pairs: Iterable[tuple[Video, str]]) -> list[str]:
    """Groups with labelled videos in more than one split, sorted."""
    sides: dict[str, set] = collections.defaultdict(set)
    for v, split in pairs:
        if v.label is not None and v.error is None:
            sides[v.group].add(split)
    return sorted(g for g, s in sides.items() if len(s) > 1)
