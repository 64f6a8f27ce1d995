"""`python -m pipeline.verify`: check shards against the checksums the manifest recorded when they were sealed.

--shards: every shard listed in dataset.json exists, has its recorded size and sha256 (the frame shards, the audio
shards of its audio section where the sound was kept, the clip shards of its clips section where clips were kept,
and the face shards and face-clip shards of its faces and face_clips sections where the faces stage ran).
--manifests: frames.parquet agrees with dataset.json (every frame's shard is listed, the counts match).
--deep: every frame's member is where frames.parquet says, has its size and crc32, and its JPEG decodes; every
sound's WAV is where audio.parquet says, has its size and crc32, and reads as 16-bit mono; every clip's JPEGs are
where clips.parquet says, in order, each with its crc32, and decode; every face tube's crops where
face_clips.parquet says, in order, and decode.
Every problem is printed on one line naming the shard (and key); the exit status is 1 if there was any.
"""
from __future__ import annotations

import sys
import tarfile
import zlib
from pathlib import Path

import click

from dfd.cli import command, default, reported, setup_logging, verbose_option
from dfd.errors import UsageProblem
from dfd.files import sha256_file

from pipeline.config import PipelineConfig
from pipeline.dataset import (DATASET_JSON, DatasetError, MemberReader, clip_jpegs, has_table, read_dataset_json,
                              read_table, table_path)
from pipeline.core.shards import UnsafeManifest, check_shard_name


class VerifyError(UsageProblem, ValueError):
    """The manifests cannot be checked at all (dataset.json or frames.parquet unreadable): exit 2, the file named."""


def _load(manifests: Path) -> dict:
    """dataset.json, its shard names checked (UnsafeManifest names the field: exit 2)."""
    path = manifests / DATASET_JSON
    try:
        data = read_dataset_json(manifests)
    except DatasetError as exc:
        raise VerifyError(str(exc)) from None  # names the file: missing, not JSON, not an object
    if not isinstance(data.get("shards"), list):
        raise VerifyError(f"{path} has no 'shards' list")
    for i, entry in enumerate(data["shards"]):
        check_shard_name(entry.get("name") if isinstance(entry, dict) else None, f"{path}: shards[{i}].name")
    return data


def _frames(manifests: Path):
    """frames.parquet, its shard names checked (UnsafeManifest names the column: exit 2)."""
    try:
        frames = read_table(manifests, "frames")
    except DatasetError as exc:
        raise VerifyError(str(exc)) from None
    for name in frames["shard"].unique():
        check_shard_name(name, f"{table_path(manifests, 'frames')}: column shard")
    return frames


def _check_sealed(shards: Path, entries: list[tuple[str, dict]], size_key: str, where: str,
                  problems: list[str]) -> int:
    """Each named file exists with the size (entry[size_key]) and sha256 recorded in `where` when it was sealed;
    returns how many entries recorded no sha256 (sizes checked only)."""
    unrecorded = 0
    for name, entry in entries:
        path = shards / name
        if not path.is_file():
            problems.append(f"{name}: missing from {shards}")
            continue
        size = path.stat().st_size
        if entry.get(size_key) is not None and size != entry[size_key]:
            problems.append(f"{name}: {size} bytes, {where} records {entry[size_key]}")
        elif not entry.get("sha256"):
            unrecorded += 1
        elif sha256_file(path) != entry["sha256"]:
            problems.append(f"{name}: sha256 differs from the one {where} recorded (the file changed after sealing)")
    return unrecorded


def check_shards(shards: Path, data: dict, problems: list[str], notes: list[str]) -> None:
    entries = [(e["name"], e) for e in data["shards"]]
    unrecorded = _check_sealed(shards, entries, "size", "dataset.json", problems)
    if unrecorded:
        notes.append(f"no checksums recorded for {unrecorded} of {len(entries)} shards (written before "
                     "checksums existed): sizes checked only; rebuild to record them")


def check_face_shards(shards: Path, data: dict, problems: list[str], notes: list[str]) -> None:
    """The faces stage's shards (dataset.json's faces section): each exists, has its recorded bytes and sha256."""
    entries = _section_shards(data, "faces", problems)
    if entries is None:
        return
    unrecorded = _check_sealed(shards, entries, "bytes", "dataset.json's faces section", problems)
    if unrecorded:
        notes.append(f"no checksums recorded for {unrecorded} of {len(entries)} face shards (made by a faces "
                     "stage from before checksums): sizes checked only")


def check_audio_shards(shards: Path, data: dict, problems: list[str]) -> None:
    """The audio shards of dataset.json's audio section: each exists, has its recorded size and sha256."""
    entries = _section_shards(data, "audio", problems)
    if entries is not None:
        _check_sealed(shards, entries, "size", "dataset.json's audio section", problems)


def check_clip_shards(shards: Path, data: dict, problems: list[str], key: str = "clips") -> None:
    """The clip shards of dataset.json's clips section (`key` "face_clips": the faces stage's face-clip shards):
    each exists, has its recorded size and sha256."""
    entries = _section_shards(data, key, problems)
    if entries is not None:
        _check_sealed(shards, entries, "size", f"dataset.json's {key} section", problems)


def check_clips(shards: Path, manifests: Path, problems: list[str], table: str = "clips") -> int:
    """Every kept clip's JPEG members (`table` "face_clips": every face tube's crops): names in order, crc32 each
    where the table records them, and that they decode. Returns clips checked."""
    if not has_table(manifests, table):
        return 0
    clips = read_table(manifests, table)
    clips = clips[clips["shard"].notna() & clips["offset"].notna()]
    crcs = clips["crc32"] if "crc32" in clips.columns else [None] * len(clips)
    checked = 0
    with MemberReader(shards) as reader:
        for key, shard, offset, n, crc in zip(clips["key"], clips["shard"], clips["offset"], clips["n_frames"], crcs):
            check_shard_name(shard, f"{table_path(manifests, table)}: column shard")
            if not (shards / shard).is_file():
                continue  # reported by the shard check
            checked += 1
            problem = _clip_problem(reader, shard, int(offset), key, int(n), crc)
            if problem:
                problems.append(f"{shard} {key}{problem}")
    return checked


def _clip_problem(reader: MemberReader, shard: str, offset: int, key: str, n: int, crcs) -> str | None:
    """What is wrong with one clip's JPEGs (None: nothing), after its key: where they are not, or the first frame
    that differs from its crc32 or does not decode."""
    try:
        jpegs = clip_jpegs(reader, shard, offset, key, n)
    except (tarfile.TarError, EOFError, OSError) as exc:
        return f": the clip's {n} JPEGs are not at byte {offset}: {exc}"
    crcs = [None] * len(jpegs) if crcs is None else [int(c) for c in crcs]
    for j, (jpeg, crc) in enumerate(zip(jpegs, crcs)):
        if (problem := _jpeg_problem(jpeg, crc)) is not None:
            return f" frame {j}: {problem}"
    return None


def _section_shards(data: dict, key: str, problems: list[str]) -> list[tuple[str, dict]] | None:
    """(checked name, entry) of a later stage's shards in dataset.json (its `key` section), a bad name a problem;
    None where the dataset has no such section."""
    section = data.get(key)
    if not isinstance(section, dict) or not isinstance(section.get("shards"), list):
        return None
    entries = []
    for i, entry in enumerate(section["shards"]):
        name = entry.get("name") if isinstance(entry, dict) else None
        try:
            entries.append((check_shard_name(name, f"dataset.json: {key}.shards[{i}].name"), entry))
        except UnsafeManifest as exc:
            problems.append(str(exc))
    return entries


def check_sounds(shards: Path, manifests: Path, problems: list[str]) -> int:
    """Every kept sound's WAV member: name, size, crc32, and that it reads back. Returns sounds checked."""
    from pipeline.stages.sound.wav import AudioError, read_wav

    if not has_table(manifests, "audio"):
        return 0
    audio = read_table(manifests, "audio", ["video_id", "shard", "offset", "bytes", "crc32"])
    audio = audio[audio["shard"].notna()]
    checked = 0
    with MemberReader(shards) as reader:
        for vid, shard, offset, nbytes, crc in zip(audio["video_id"], audio["shard"], audio["offset"],
                                                   audio["bytes"], audio["crc32"]):
            check_shard_name(shard, f"{table_path(manifests, 'audio')}: column shard")
            if not (shards / shard).is_file():
                continue  # reported by the shard check
            checked += 1
            try:
                name, wav = reader.members(shard, int(offset))[0]
            except (tarfile.TarError, EOFError, OSError) as exc:
                problems.append(f"{shard} {vid}: no readable member at byte {offset}: {exc}")
                continue
            if name != f"{vid}.wav" or len(wav) != nbytes:
                problems.append(f"{shard} {vid}: found {name} ({len(wav)} bytes) where audio.parquet puts {vid}.wav "
                                f"({nbytes} bytes)")
            elif zlib.crc32(wav) != int(crc):
                problems.append(f"{shard} {vid}: WAV bytes differ from the recorded crc32")
            else:
                try:
                    read_wav(wav)
                except AudioError as exc:
                    problems.append(f"{shard} {vid}: {exc}")
    return checked


def check_manifests(frames, data: dict, problems: list[str]) -> None:
    listed = {e["name"]: e for e in data["shards"]}
    counts = frames.groupby("shard").size().to_dict() if len(frames) else {}
    for shard, n in counts.items():
        if shard not in listed:
            problems.append(f"{shard}: in frames.parquet but not listed in dataset.json")
        elif listed[shard].get("frames") is not None and listed[shard]["frames"] != n:
            problems.append(f"{shard}: frames.parquet has {n} frames, dataset.json {listed[shard]['frames']}")
    for name in listed:
        if name not in counts:
            problems.append(f"{name}: listed in dataset.json but has no frames in frames.parquet")


def check_faces_manifest(manifests: Path, data: dict, problems: list[str]) -> None:
    """Where dataset.json has a faces section: faces.parquet exists, holds the faces the section counts, and each
    of its crops is in a face shard the section lists."""
    section = data.get("faces")
    if not isinstance(section, dict) or not isinstance(section.get("shards"), list):
        return
    path = table_path(manifests, "faces")
    if not path.is_file():
        problems.append(f"{path}: missing, but dataset.json has a faces section (rerun `python -m pipeline.faces`)")
        return
    try:
        faces = read_table(manifests, "faces", ["crop_shard"])
    except DatasetError as exc:
        raise VerifyError(str(exc)) from None
    if section.get("faces") is not None and len(faces) != section["faces"]:
        problems.append(f"{path}: {len(faces)} faces, dataset.json's faces section {section['faces']}")
    listed = {e.get("name") for e in section["shards"] if isinstance(e, dict)}
    for name in sorted(set(faces["crop_shard"]) - listed):
        problems.append(f"{path}: crops in {name}, a face shard dataset.json does not list")


def check_frames(shards: Path, frames, problems: list[str], notes: list[str]) -> int:
    """Every frame's member: name, size, crc32 (where recorded) and a JPEG decode. Returns frames checked."""
    has_crc = "crc32" in frames.columns and frames["crc32"].notna().any()
    if not has_crc:
        notes.append("no checksums recorded in frames.parquet (an older manifest): JPEGs decoded only")
    checked = 0
    for shard, group in frames.groupby("shard", sort=True):
        if not (shards / shard).is_file():
            continue  # reported by the shard check
        crcs = group["crc32"] if has_crc else [None] * len(group)
        with MemberReader(shards) as reader:  # one shard open at a time
            reader.handle(shard)
            for key, offset, nbytes, crc in zip(group["key"], group["offset"], group["bytes"], crcs):
                checked += 1
                problem = _check_frame(reader, shard, key, offset, nbytes, crc)
                if problem:
                    problems.append(f"{shard} {key}: {problem}")
    return checked


def _check_frame(reader: MemberReader, shard: str, key: str, offset, nbytes, crc) -> str | None:
    """What is wrong with one frame's member (None: nothing)."""
    try:
        name, jpeg = reader.members(shard, offset)[0]
    except (tarfile.TarError, EOFError, OSError) as exc:
        return f"no readable member at byte {offset}: {exc}"
    if name != f"{key}.jpg" or len(jpeg) != nbytes:
        return f"found {name} ({len(jpeg)} bytes) where frames.parquet puts {key}.jpg ({nbytes} bytes)"
    return _jpeg_problem(jpeg, crc)


def _jpeg_problem(jpeg: bytes, crc) -> str | None:
    """What is wrong with a JPEG's bytes against its recorded crc32 (None or NaN: not recorded), or that it does not
    decode (None: nothing)."""
    import simplejpeg

    if crc is not None and crc == crc and zlib.crc32(jpeg) != int(crc):
        return "JPEG bytes differ from the recorded crc32"
    try:
        simplejpeg.decode_jpeg(jpeg)
    except (ValueError, RuntimeError) as exc:
        return f"JPEG does not decode: {exc}"
    return None


def verify(shards: Path, manifests: Path, do_shards: bool, do_manifests: bool, deep: bool) -> tuple[list, list]:
    data = _load(manifests)
    problems: list[str] = []
    notes: list[str] = []
    frames = _frames(manifests) if do_manifests or deep else None
    if do_shards:
        check_shards(shards, data, problems, notes)
        check_face_shards(shards, data, problems, notes)
        check_audio_shards(shards, data, problems)
        check_clip_shards(shards, data, problems)
        check_clip_shards(shards, data, problems, "face_clips")
    if do_manifests:
        check_manifests(frames, data, problems)
        check_faces_manifest(manifests, data, problems)
    if deep:
        check_frames(shards, frames, problems, notes)
        check_sounds(shards, manifests, problems)
        check_clips(shards, manifests, problems)
        check_clips(shards, manifests, problems, "face_clips")
    return problems, notes


@command()
@click.option("--shards", "shards_dir", default=default(PipelineConfig, "shards"),
              type=click.Path(file_okay=False, exists=True))
@click.option("--manifests", "manifests_dir", default=default(PipelineConfig, "manifests"),
              type=click.Path(file_okay=False, exists=True))
@click.option("--check-shards/--no-check-shards", "do_shards", default=True,
              help="Each shard's size and sha256 against dataset.json (frame shards, and face shards where the faces "
                   "stage ran).")
@click.option("--check-manifests/--no-check-manifests", "do_manifests", default=True,
              help="frames.parquet against dataset.json.")
@click.option("--deep", is_flag=True, help="Also every frame, sound, clip and face tube: its members, sizes, crc32s, and that they "
              "decode.")
@verbose_option
def main(shards_dir, manifests_dir, do_shards, do_manifests, deep, verbose):
    """Check shards and manifests against the checksums recorded when the shards were sealed.

    Prints one line per problem (shard, and key with --deep) and exits 1 if there was any, else 0.
    """
    setup_logging(verbose)
    with reported():
        problems, notes = verify(Path(shards_dir), Path(manifests_dir), do_shards, do_manifests, deep)
    for note in notes:
        click.echo(f"note: {note}")
    for problem in problems:
        click.echo(f"BAD {problem}")
    click.echo(f"{len(problems)} problems" if problems else "OK")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
