"""THE read side of the on-disk format: dataset.json, the Parquet tables, the shard lists, and members at offsets.

Every reader of a finished dataset goes through here (the trainer, explain, predict, evaluate, verify, resplit and
the faces stage): `Dataset.open(shards, manifests)` checks what training needs and gives the shard lists per split
and label, counts, class weights, the frame and face settings, the tables, and the JPEG bytes of a key. Anything
wrong with these files raises DatasetError naming the file and what is wrong. Writers (pipeline.core.manifest,
pipeline.stages.faces.manifest) own their fragments under manifests/parts and faces_parts.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shlex
import tarfile
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from dfd.errors import ToolkitError

from pipeline.spec import Clips, FaceCrop, FrameSampling, SpecError, frame_keys
from pipeline.core.shards import UnsafeManifest, check_shard_name

log = logging.getLogger(__name__)

DATASET_JSON = "dataset.json"
TABLES = {"videos": "videos.parquet", "frames": "frames.parquet", "faces": "faces.parquet", "audio": "audio.parquet",
          "clips": "clips.parquet", "face_clips": "face_clips.parquet"}
SHARD_COLUMNS = ("shard", "crop_shard")  # the tables' columns that name shards (checked on every read)
SHARDLESS_ROWS = ("videos", "audio", "clips", "face_clips")  # tables whose rows may have no shard (a failed video, a video without sound)
LABELS = {"real": 0, "fake": 1}


def own_label(meta: dict) -> str | None:
    """A sample's own picture label ("real", "fake" or None) from its JSON member: its `picture_label` (a frame's,
    face's or clip's own, fake only where it lies in a fake period of the picture: LAV-DF, AV-Deepfake1M; the
    picture's label: FakeAVCeleb), else its video's `label` (shards written before per-frame labels)."""
    return meta.get("picture_label") or meta.get("label")
CLASS_NAMES = ("real", "fake")
SPLITS = ("train", "val", "test")
SHARD_LABELS = ("real", "fake", "unlabelled")
INPUTS = ("frames", "faces")       # what a model reads: whole frames, or the faces stage's crops
FAKE_FACES = ("manipulated", "all")  # faces of fake videos kept for training (see Dataset.open)
TRAINING_SPLITS = ("train", "val")


class DatasetError(ToolkitError, RuntimeError):
    """The shards or the manifest cannot be used; the message names the file and what is wrong."""


class ShardError(DatasetError):
    """A shard cannot be read (missing, truncated, changed or corrupt); the message names the shard."""


def frame_sampling(config: dict, where: Path) -> FrameSampling | None:
    """dataset.json's frame sampling (a dataset made before a setting existed gets its old meaning through
    pipeline.spec.migrate); None where the config has none."""
    found = frame_keys(config)
    if not found:
        return None
    try:
        return FrameSampling.from_dict(found, str(where))
    except SpecError as err:
        raise DatasetError(str(err)) from None


def face_crop(faces: dict, where: Path) -> FaceCrop | None:
    """The faces section's crop settings; None where the faces stage has not run."""
    if not isinstance(faces.get("settings"), dict):
        return None
    try:
        return FaceCrop.from_dict(faces["settings"], str(where))
    except SpecError as err:
        raise DatasetError(str(err)) from None


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise DatasetError(message)


# Files -----------------------------------------------------------------------------------------------------------


def read_dataset_json(manifests: str | Path) -> dict:
    """MANIFESTS/dataset.json as a dict; DatasetError naming the file when it is missing, not JSON or not an object."""
    path = Path(manifests) / DATASET_JSON
    _require(path.is_file(), f"manifest {path} does not exist; pass --manifests (written by `make shards`)")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"manifest {path} is not valid JSON: {err}") from None
    _require(isinstance(data, dict), f"manifest {path} is not a JSON object")
    return data


def table_path(manifests: str | Path, name: str) -> Path:
    return Path(manifests) / TABLES[name]


def has_table(manifests: str | Path, name: str) -> bool:
    return table_path(manifests, name).is_file()


def read_table(manifests: str | Path, name: str, columns: Sequence[str] | None = None,
               keys: Iterable[str] | None = None, key: str = "key") -> pd.DataFrame:
    """videos | frames | faces .parquet as a DataFrame (only `columns`; only rows whose `key` column is in `keys`);
    DatasetError naming the file when it is missing, unreadable or lacks a column."""
    path = table_path(manifests, name)
    _require(path.is_file(), f"{path} does not exist" + (": run the faces stage (make faces) first"
                                                         if name == "faces" else "; pass --manifests"))
    columns = list(columns) if columns else None
    if keys is None:
        return _read(path, columns, None)
    wanted = sorted(set(keys))
    if not wanted:  # no rows asked for: the columns only, from the schema (the file is not read)
        import pyarrow.parquet as pq

        schema = pq.read_schema(path)
        return schema.empty_table().select(columns or schema.names).to_pandas()
    return _read(path, columns, [(key, "in", wanted)])


def read_arrow(manifests: str | Path, name: str, columns: Sequence[str] | None = None):
    """videos | frames | faces .parquet as a pyarrow Table (only `columns`), for callers that stay in Arrow (the
    faces stage's plan at DFDC scale); DatasetError naming the file when it is missing, unreadable or lacks a
    column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = table_path(manifests, name)
    _require(path.is_file(), f"{path} does not exist" + (": run the faces stage (make faces) first"
                                                         if name == "faces" else "; pass --manifests"))
    try:
        table = pq.read_table(path, columns=list(columns) if columns else None)
    except (OSError, ValueError, KeyError, pa.ArrowException) as err:
        raise DatasetError(f"{path} cannot be read: {err}") from None
    for column in SHARD_COLUMNS:
        if column in table.column_names:
            check_shard_column(table[column].unique().to_pylist(), f"{path}: column {column}", name in SHARDLESS_ROWS)
    return table


def _read(path: Path, columns, filters) -> pd.DataFrame:
    import pyarrow as pa

    try:
        frame = pd.read_parquet(path, columns=columns, filters=filters)
    except (OSError, ValueError, KeyError, pa.ArrowException) as err:
        raise DatasetError(f"{path} cannot be read: {err}") from None
    for column in SHARD_COLUMNS:
        if column in frame.columns:
            check_shard_column(frame[column].unique().tolist(), f"{path}: column {column}",
                               path.name in {TABLES[t] for t in SHARDLESS_ROWS})
    return frame


# Shard names and locations -----------------------------------------------------------------------------------------


def is_local(location: str) -> bool:
    """A plain folder, as opposed to a URL prefix or a `pipe:` template."""
    return "{name}" not in location and "://" not in location and not location.startswith("pipe:")


def shard_url(location: str, name: str) -> str:
    """Where shard `name` is read from, the way webdataset takes shard locations.

    - a folder: `shards/` -> `shards/train-fake-000001.tar`;
    - a URL prefix for fsspec or webdataset: `s3://bucket/shards` -> `s3://bucket/shards/train-fake-000001.tar`;
    - a template with `{name}`, e.g. `pipe:aws s3 cp s3://bucket/shards/{name} -`.
    """
    if "{name}" in location:  # names are checked (check_shard_name); quoted for `pipe:` commands all the same
        return location.replace("{name}", shlex.quote(name) if location.startswith("pipe:") else name)
    if not is_local(location):
        return location.rstrip("/") + "/" + name
    return str(Path(location) / name)


def shard_path(shards: str | Path, name, where: str) -> Path:
    """A local shard's path from a manifest value, checked first (check_shard_name): it cannot leave the folder."""
    try:
        return Path(shards) / check_shard_name(name, where)
    except UnsafeManifest as err:
        raise DatasetError(str(err)) from None


def check_shard_column(names: Iterable, where: str, nulls: bool = False) -> None:
    """A table's shard column (frames/videos `shard`, faces `crop_shard`) is untrusted input like dataset.json:
    every value must be a shard name (check_shard_name), so that no reader builds a path outside the shards folder
    from it; `nulls`: a missing value is allowed (a failed video has no shard)."""
    for name in names:
        if name is None or (isinstance(name, float) and name != name):
            _require(nulls, f"{where} has an empty value")
            continue
        try:
            check_shard_name(name, where)
        except UnsafeManifest as err:
            raise DatasetError(str(err)) from None


def check_shard_entries(entries, where) -> None:
    """dataset.json's shard list is untrusted input: each name must be a shard name (no folders, no shell
    characters: it reaches file paths and `pipe:` commands), split and label from their sets, sizes counts."""
    _require(isinstance(entries, list), f"manifest {where} has no 'shards' list")
    for i, entry in enumerate(entries):
        _require(isinstance(entry, dict), f"manifest {where}: shards[{i}] is not an object")
        try:
            check_shard_name(entry.get("name"), f"manifest {where}: shards[{i}].name")
        except UnsafeManifest as err:
            raise DatasetError(str(err)) from None
        _require(entry.get("split") in SPLITS, f"manifest {where}: shards[{i}].split is {entry.get('split')!r}, "
                                               f"not one of {SPLITS}")
        _require(entry.get("label") in SHARD_LABELS, f"manifest {where}: shards[{i}].label is "
                                                     f"{entry.get('label')!r}, not one of {SHARD_LABELS}")
        for field in ("size", "frames", "bytes"):
            value = entry.get(field)
            _require(value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0),
                     f"manifest {where}: shards[{i}].{field} is {value!r}, not a count")


# Members at offsets ----------------------------------------------------------------------------------------------


def read_member(fh, offset: int) -> tuple[str, bytes]:
    """The tar member whose headers start at `offset` of an open binary shard: (name, data).

    `offset` is where the member's first header block starts (for a name over 100 characters, that is the GNU
    long-name header, not the member's own 512-byte header), as frames.parquet records it. tarfile parses
    the headers, so no reader assumes that data starts at offset + 512.
    """
    return read_members(fh, offset, 1)[0]


def read_members(fh, offset: int, count: int) -> list[tuple[str, bytes]]:
    """`count` consecutive file members from `offset` (e.g. a frame's .jpg and .json), parsed by tarfile."""
    fh.seek(offset)
    out = []
    with tarfile.open(fileobj=fh, mode="r:") as tar:
        for _ in range(count):
            info = tar.next()
            if info is None or not info.isfile():
                raise tarfile.ReadError(f"fewer than {count} file members from byte {offset}" if count > 1
                                        else f"no file member at byte {offset}")
            out.append((info.name, tar.extractfile(info).read()))
    return out


class MemberReader:
    """Members of local shards read at their recorded offsets, each shard opened once (a context manager)."""

    def __init__(self, shards: str | Path) -> None:
        self.shards, self.handles = Path(shards), {}

    def handle(self, shard: str):
        """The shard's open binary file (opened on first use, its name checked: DatasetError; OSError where it
        cannot be opened)."""
        if shard not in self.handles:
            self.handles[shard] = open(shard_path(self.shards, shard, "frames.parquet: column shard"), "rb")
        return self.handles[shard]

    def members(self, shard: str, offset: int, count: int = 1) -> list[tuple[str, bytes]]:
        """Raises OSError, EOFError or tarfile.TarError where the shard does not hold members there."""
        return read_members(self.handle(shard), int(offset), count)

    def jpeg(self, shard: str, offset: int, key: str | None = None) -> bytes:
        """The `.jpg` member at offset; with `key`, refused (tarfile.ReadError) unless it is `{key}.jpg`."""
        name, data = self.members(shard, offset)[0]
        if key is not None and name != f"{key}.jpg":
            raise tarfile.ReadError(f"{shard} holds {name} at byte {offset}, not {key}.jpg")
        return data

    def close(self) -> None:
        for fh in self.handles.values():
            fh.close()
        self.handles.clear()

    def __enter__(self) -> "MemberReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def clip_jpegs(reader: MemberReader, shard: str, offset: int, key: str, n_frames: int) -> list[bytes]:
    """A clip's JPEGs (KEY.000.jpg ...), read at the offset clips.parquet records; tarfile.ReadError where the
    shard holds other members there."""
    members = reader.members(shard, offset, n_frames)
    for j, (name, _) in enumerate(members):
        if name != f"{key}.{j:03d}.jpg":
            raise tarfile.ReadError(f"{shard} holds {name} where clips.parquet puts {key}.{j:03d}.jpg")
    return [data for _, data in members]


def jpegs_by_offset(shards: str | Path, manifests: str | Path, keys: Iterable[str]) -> dict[str, bytes]:
    """Frame key -> its JPEG bytes, read at the offsets frames.parquet records from local frame shards; a key not
    found there (no such row, a missing shard, another member at that offset) is left out, for the caller to say."""
    wanted = sorted(set(keys))
    if not wanted or not is_local(str(shards)) or not Path(str(shards)).is_dir() or not has_table(manifests, "frames"):
        return {}
    rows = read_table(manifests, "frames", ["key", "shard", "offset"], keys=wanted)
    found = {}
    with MemberReader(str(shards)) as reader:
        for key, shard, offset in zip(rows["key"], rows["shard"], rows["offset"]):
            try:
                found[key] = reader.jpeg(shard, offset, key)
            except (OSError, EOFError, tarfile.TarError) as err:
                log.warning("frame %s not read from %s at byte %s: %s", key, shard, offset, err)
    return found


# The dataset -----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A finished dataset as its readers need it: shard locations per split and label, counts, class weights, the
    frame (and face) settings it was made with, and its tables. `input` "faces" reads the faces stage's output
    (dataset.json's "faces" section: face-crop shards under SHARDS/faces/, faces.parquet's counts)."""

    location: str            # a folder, a URL prefix or a `{name}` template (see shard_url)
    manifests: Path
    shards: tuple[dict, ...]
    counts: dict             # {split: {label: n}}: frames, or faces (after the fake-faces filter)
    class_weights: dict
    input: str = "frames"
    drop_untouched: bool = False      # faces: training skips faces of fake videos found untouched
    frame_sampling: FrameSampling | None = None  # how the frames were made (pipeline.spec)
    ffmpeg: str | None = None
    face_crop: FaceCrop | None = None   # how the faces stage cropped, where it ran
    faces_found: int = 0               # faces the faces stage found in all (faces input)

    @classmethod
    def open(cls, shards: str | Path, manifests: str | Path, input: str = "frames", fake_faces: str = "all",
             need: Sequence[str] = TRAINING_SPLITS, check: Sequence[str] | None = None) -> "Dataset":
        """Read dataset.json; each split of `need` must have shards and items, and the local shards of `check`
        (default: `need`) must be present with their recorded size and their last frame where frames.parquet puts it.

        fake_faces "manipulated" (faces only) drops, from training, the faces of fake videos whose `manipulated`
        is False (compared with the original's and found unchanged: a DFDC fake often swaps one face of two); a
        null `manipulated` (no original) is kept. "all" keeps every face. A video without any face has no row."""
        _require(input in INPUTS, f"input must be one of {', '.join(INPUTS)}, got {input!r}")
        _require(fake_faces in FAKE_FACES, f"fake_faces must be one of {', '.join(FAKE_FACES)}, got {fake_faces!r}")
        location, manifests = str(shards), Path(manifests)
        if is_local(location):  # never listed: dataset.json says which shards there are (checked below)
            _require(Path(location).is_dir(), f"shards folder {location} does not exist; build it with `make shards`")
        data = read_dataset_json(manifests)
        config = data.get("config") if isinstance(data.get("config"), dict) else {}
        faces = data.get("faces") if isinstance(data.get("faces"), dict) else {}
        reads = "a faces model reads its faces/ itself" if input == "faces" else "a frames model reads whole frames"
        _require(not _is_faces_folder(location, faces), f"shards folder {location} holds the face shards; pass the "
                 f"frame shards folder above it (--shards {Path(location).parent}): {reads}")
        common = {"location": location, "manifests": manifests, "ffmpeg": data.get("ffmpeg"),
                  "frame_sampling": frame_sampling(config, manifests / DATASET_JSON),
                  "face_crop": face_crop(faces, manifests / DATASET_JSON)}
        dataset = (cls._faces(data, common, fake_faces == "manipulated") if input == "faces"
                   else cls._frames(data, common))
        dataset._check(need, need if check is None else check)
        return dataset

    @classmethod
    def _frames(cls, data: dict, common: dict) -> "Dataset":
        where = common["manifests"] / DATASET_JSON
        check_shard_entries(data.get("shards"), where)
        return cls(shards=tuple(data["shards"]), counts=data.get("frames", {}),
                   class_weights=data.get("class_weights", {}), **common)

    @classmethod
    def _faces(cls, data: dict, common: dict, drop: bool) -> "Dataset":
        where = common["manifests"] / DATASET_JSON
        faces = data.get("faces")
        _require(isinstance(faces, dict) and isinstance(faces.get("shards"), list),
                 f"manifest {where} has no faces; run the faces stage first: `make faces SHARDS=... MANIFESTS=...` "
                 "(python -m pipeline.faces)")
        check_shard_entries(faces["shards"], f"{where} (faces)")
        _require(has_table(common["manifests"], "faces"), f"{table_path(common['manifests'], 'faces')} does not "
                 f"exist, but {where} has a faces section: rerun the faces stage (python -m pipeline.faces)")
        # a face shard's file size is its "bytes" (manifests before issue 21 have no "size"): checked before training
        # and a face shard without faces (listed by the stage before issue 21) is left out: a train stream given
        # only such shards would cycle over them for ever without yielding
        entries = tuple({**e, "size": e.get("size", e.get("bytes"))} for e in faces["shards"] if e.get("faces") != 0)
        counts = face_counts(common["manifests"], drop) or faces.get("counts", {})
        train = counts.get("train", {})
        total = sum(train.get(k, 0) for k in LABELS)
        weights = {k: total / (len(LABELS) * train[k]) for k in LABELS if train.get(k)}
        log.info("faces: %s train, %s val (%s); %s videos without any face are skipped", train,
                 counts.get("val", {}), "untouched fake faces dropped from training" if drop else "all faces kept",
                 faces.get("videos_without_faces", "?"))
        return cls(shards=entries, counts=counts, class_weights=weights, input="faces",
                   drop_untouched=drop, faces_found=int(faces.get("faces", 0) or 0), **common)

    def _check(self, need: Sequence[str], check: Sequence[str]) -> None:
        where = self.manifests / DATASET_JSON
        for split in need:
            if self.input == "faces":
                message = (f"manifest {where} has no {split} faces (no {split} face shards or faces); the faces stage "
                           f"found {self.faces_found} faces in all")
            else:
                message = (f"manifest {where} has no {split} split (no labelled {split} shards or frames); "
                           "rebuild the shards with a validation fraction > 0")
            _require(bool(self.urls(split)) and self.n_frames(split) > 0, message)
        if is_local(self.location):
            check_shard_files(self, check)
        elif check:
            log.info("shards are read from %s (remote: sizes not checked)", self.location)

    def urls(self, split: str, label: str | None = None) -> list[str]:
        return [shard_url(self.location, s["name"]) for s in self.shards
                if s["split"] == split and (label is None or s["label"] == label)]

    def n_frames(self, split: str, label: str | None = None) -> int:
        """Items (frames, or faces) of a split, of one label or both."""
        counts = self.counts.get(split, {})
        return int(counts.get(label, 0)) if label else int(sum(counts.get(k, 0) for k in LABELS))

    def table(self, name: str, columns: Sequence[str] | None = None, keys: Iterable[str] | None = None,
              key: str = "key") -> pd.DataFrame:
        return read_table(self.manifests, name, columns, keys, key)

    def has_table(self, name: str) -> bool:
        return has_table(self.manifests, name)

    def frame_jpegs(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Whole frames' JPEG bytes by key (the frame shards, read at their offsets); keys not found are left out."""
        return jpegs_by_offset(self.location, self.manifests, keys)

    def clips(self, columns: Sequence[str] | None = None, status: Sequence[str] | None = ("done",)) -> pd.DataFrame:
        """clips.parquet (a row per clip: video_id, clip, split, label, key, start, times, n_frames, status, ...),
        only the clips of `status` (None: every row, the short ones and those with gaps included); DatasetError
        where the dataset has no clips (made without --clip-frames)."""
        _require(self.has_table("clips"), f"{table_path(self.manifests, 'clips')} does not exist: the dataset was "
                 "made without clips; rebuild its shards with --clip-frames T (and new folders)")
        table = self.table("clips", None if columns is None else list(dict.fromkeys([*columns, "status"])))
        return table if status is None else table[table["status"].isin(status)]

    def clip_frames(self, keys: Iterable[str], table: str = "clips"):
        """Clip key -> its frames as one uint8 array (n_frames, height, width, 3), RGB, read from the local clip
        shards at their offsets; DatasetError naming the clip where a shard does not hold it. `table`
        "face_clips": face tubes by their key (face_clip_frames)."""
        import numpy as np
        import simplejpeg

        wanted = sorted(set(keys))
        rows = read_table(self.manifests, table, ["key", "shard", "offset", "n_frames"], keys=wanted)
        out = {}
        with MemberReader(self.location) as reader:
            for key, shard, offset, n in zip(rows["key"], rows["shard"], rows["offset"], rows["n_frames"]):
                _require(isinstance(shard, str), f"{table_path(self.manifests, table)}: clip {key} has no shard")
                try:
                    jpegs = clip_jpegs(reader, shard, int(offset), key, int(n))
                except (OSError, EOFError, tarfile.TarError) as err:
                    raise DatasetError(f"{shard}: clip {key} not read at byte {offset}: {err}") from None
                out[key] = np.stack([simplejpeg.decode_jpeg(j, colorspace="RGB") for j in jpegs])
        missing = [k for k in wanted if k not in out]
        _require(not missing, f"{table_path(self.manifests, table)} has no clip {', '.join(missing[:3])}")
        return out

    def face_clips(self, columns: Sequence[str] | None = None, status: Sequence[str] | None = ("done",),
                   clip_status: Sequence[str] | None = ("done",)) -> pd.DataFrame:
        """face_clips.parquet (a row per face tube: video_id, clip, clip_key, face, track, split, label, start,
        times, the one box x0..y1, key, shard, n_frames, status; or per clip without a tube, status saying why),
        only the rows of `status` whose clip is of `clip_status` (None: all); DatasetError where the faces stage
        made no face clips (a dataset without clips, or the stage not run)."""
        _require(self.has_table("face_clips"), f"{table_path(self.manifests, 'face_clips')} does not exist: run "
                 "the faces stage (dfd faces) on a dataset made with --clip-frames T")
        extra = [c for c, keep in (("status", status), ("clip_status", clip_status)) if keep is not None]
        table = self.table("face_clips", None if columns is None else list(dict.fromkeys([*columns, *extra])))
        if status is not None:
            table = table[table["status"].isin(status)]
        return table if clip_status is None else table[table["clip_status"].isin(clip_status)]

    def face_clip_frames(self, keys: Iterable[str]):
        """Face tube key -> its crops as one uint8 array (n_frames, size, size, 3), RGB, from the face-clip shards."""
        return self.clip_frames(keys, "face_clips")

    @property
    def clip_spec(self) -> Clips | None:
        """How the clips were made (dataset.json's config "clips"), None without clips."""
        config = read_dataset_json(self.manifests).get("config") or {}
        try:
            return Clips.from_dict(config["clips"], str(self.manifests / DATASET_JSON)) if config.get("clips") else None
        except SpecError as exc:
            raise DatasetError(str(exc)) from None


def face_counts(manifests: Path, drop_untouched: bool) -> dict | None:
    """{split: {label: faces}} from faces.parquet, without the untouched fake faces when asked; None without it."""
    if not has_table(manifests, "faces"):
        return None
    faces = read_table(manifests, "faces", ["split", "label", "manipulated"])
    if drop_untouched:
        faces = faces[~((faces["label"] == "fake") & (faces["manipulated"] == False))]  # noqa: E712 (null kept)
    counts: dict = {}
    for (split, label), n in faces.groupby(["split", "label"]).size().items():
        counts.setdefault(split, {})[label] = int(n)
    return counts


def _is_faces_folder(location: str, faces: dict) -> bool:
    """Whether `location` is SHARDS/faces of this dataset (its face shards are listed as faces/NAME)."""
    listed = faces.get("shards") if isinstance(faces.get("shards"), list) else []
    names = [e.get("name") for e in listed if isinstance(e, dict) and isinstance(e.get("name"), str)]
    folder = Path(location)
    return (is_local(location) and folder.name == "faces" and bool(names)
            and all(Path(n).parent.name == "faces" and (folder / Path(n).name).is_file() for n in names[:3]))


def _last_frames(manifests: Path) -> dict[str, tuple[str, int, int]]:
    """Per shard, its last frame in frames.parquet: (key, offset of the member's first header, JPEG bytes)."""
    if not has_table(manifests, "frames"):
        return {}
    frames = read_table(manifests, "frames", ["key", "shard", "offset", "bytes"])
    last = frames.loc[frames.groupby("shard")["offset"].idxmax()]
    return {s: (k, int(o), int(b)) for s, k, o, b in zip(last["shard"], last["key"], last["offset"], last["bytes"])}


def check_shard_files(dataset: Dataset, splits: Sequence[str]) -> None:
    """Every listed local shard of these splits exists, has the size dataset.json records (where it does), and
    holds the last frame frames.parquet puts in it, read from its recorded offset (long names included)."""
    last = _last_frames(dataset.manifests)
    with MemberReader(dataset.location) as reader:
        for entry in dataset.shards:
            if entry["split"] in splits:
                _check_shard_file(reader, entry, last.get(entry["name"]))


def _check_shard_file(reader: MemberReader, entry: dict, last: tuple[str, int, int] | None) -> None:
    path = reader.shards / entry["name"]
    if not path.is_file():
        raise ShardError(f"shard {path} is listed in dataset.json but missing from the shards folder")
    actual = path.stat().st_size
    if entry.get("size") is not None and actual != entry["size"]:
        state = "is truncated" if actual < entry["size"] else "was changed"
        raise ShardError(f"shard {path} {state}: {actual} bytes on disk, but dataset.json records "
                         f"{entry['size']}; check it with `python -m pipeline.verify`, rebuild it with `make shards`")
    if last is None:
        return
    key, offset, nbytes = last
    try:
        name, data = reader.members(entry["name"], offset)[0]
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ShardError(f"shard {path} is truncated or corrupt: {actual} bytes on disk, and its last frame "
                         f"{key} (byte {offset}) cannot be read: {err}; rebuild it with `make shards`") from None
    if name != f"{key}.jpg" or len(data) != nbytes:
        raise ShardError(f"shard {path} does not match frames.parquet: expected {key}.jpg ({nbytes} bytes) at "
                         f"byte {offset}, found {name} ({len(data)} bytes); rebuild the manifest or the shards")
