"""The faces stage's worker: one frame shard -> its face shard, detections cache, fragment and done marker.

The faces stage's worker: one frame shard -> detections (the one detector of the process), tracks, crops, the
comparison with each fake's original -> its face shard, detections cache, fragment and done marker.
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
import json
import logging
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.dataset import MemberReader
from pipeline.core.shards import TarFile, member
from pipeline.stages.faces import detect as detect_mod
from pipeline.stages.faces import manifest as fm
from pipeline.stages.faces import tubes
from pipeline.stages.faces.api import add_crops, detections_to_rows
from pipeline.stages.faces.crop import decode_jpeg, encode_jpeg
from pipeline.stages.faces.detect import faces_from_json, faces_to_json
from pipeline.stages.faces.diff import align, box_diff
from pipeline.stages.faces.plan import DIFF_THRESHOLD, FACES, Task, detect_settings, run_settings
from pipeline.spec import FaceCrop

log = logging.getLogger(__name__)

CHUNK_CPU, CHUNK_GPU = 1, 8  # videos detected per batch

_DETECTOR = None


def init_worker(settings: dict, device: str, threads: int | None) -> None:
    """Load MTCNN once per process; `threads` torch CPU threads (None: torch's default)."""
    global _DETECTOR
    import torch

    if threads:
        torch.set_num_threads(threads)
    from pipeline.stages.faces.detect import FaceDetector

    _DETECTOR = FaceDetector(FaceCrop.from_dict(settings), device)


def _original_image(reader: MemberReader, shard: str, offset: int) -> np.ndarray:
    """An original's frame a fake is compared with, read at its offset (the reader keeps the shard open)."""
    return decode_jpeg(reader.members(shard, offset)[0][1])


def _diff_rows(rows: list[dict], images, frames: list[dict], video: str, label: str, originals: dict,
               reader: MemberReader) -> None:
    """Fill diff / manipulated / note of one video's rows."""
    if label == "real":
        for r in rows:
            r["manipulated"] = False
        return
    if label != "fake":
        for r in rows:
            r["note"] = "unlabelled video"
        return
    orig = originals.get(video)
    if orig is None or "note" in orig:
        for r in rows:
            r["note"] = orig["note"] if orig else "no original in the dataset"
        return
    aligned: dict[int, tuple] = {}
    for r in rows:
        t = r["frame"]
        if t not in aligned:
            sec = round(frames[t]["second"], 3)
            where = orig["frames"].get(sec)
            if where is None:
                aligned[t] = (None, f"original {orig['id']} has no frame at second {sec:g}")
            else:
                try:
                    aligned[t] = align(images[t], _original_image(reader, *where))
                except (ValueError, OSError) as exc:
                    aligned[t] = (None, f"original {orig['id']} frame at second {sec:g} unreadable: {exc}")
        other, note = aligned[t]
        if other is None:
            r["note"] = note
            continue
        d = box_diff(images[t], other, (r["x0"], r["y0"], r["x1"], r["y1"]))
        if d is None:
            r["note"] = "box too small to compare"
            continue
        r["diff"] = round(d, 5)
        r["manipulated"] = d >= DIFF_THRESHOLD


@dataclasses.dataclass
class _Output:
    """What one frame shard's run accumulates: the face shard being written (its size and sha256, recorded in its
    done marker and dataset.json for pipeline.verify), the detections and face rows, and the counts."""

    tar: TarFile
    name: str
    stats: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    undecodable: list[str] = dataclasses.field(default_factory=list)
    det_rows: list[dict] = dataclasses.field(default_factory=list)
    face_rows: list[dict] = dataclasses.field(default_factory=list)
    record: dict | None = None  # the finished face shard's size and sha256 (None: no face, no shard)
    tubes: TarFile | None = None  # the face-clip shard being written (None: the dataset has no clips)
    tube_rows: list[dict] = dataclasses.field(default_factory=list)
    tubes_record: dict | None = None

    def write(self, data: bytes) -> None:
        self.tar.append(self.name, data)


def _by_video(frames: list[dict]) -> list[tuple[str, list[dict]]]:
    """A shard's frames per video, each video's in time order."""
    by_video: dict[str, list[dict]] = collections.OrderedDict()
    for f in sorted(frames, key=lambda f: (f["video_id"], f["second"])):
        by_video.setdefault(f["video_id"], []).append(f)
    return list(by_video.items())


@dataclasses.dataclass
class _Video:
    """One video between the two passes: its frames (time order), their detections, the frames that do not
    decode. No image is kept: memory does not depend on the clip's length."""

    vid: str
    frames: list[dict]
    dets: list
    broken: set = dataclasses.field(default_factory=set)


def _read_frame(task: Task, f: dict, reader: MemberReader) -> np.ndarray:
    return decode_jpeg(reader.members(task.shard, f["offset"])[0][1])


def _detections(task: Task, batch: list, reader: MemberReader, out: _Output) -> list[_Video]:
    """Pass 1 over a batch of videos: each frame decoded, its cached detections reused or the frame detected in
    batches of at most DETECT_BATCH, then released. A frame that does not decode has no faces (and is counted)."""
    videos = [_Video(vid, frames, [None] * len(frames)) for vid, frames in batch]
    pending: list[tuple[_Video, int, np.ndarray]] = []
    for v in videos:
        for i, f in enumerate(v.frames):
            try:
                image = _read_frame(task, f, reader)
            except (ValueError, OSError, EOFError) as exc:
                log.debug("%s (%s): frame does not decode, skipped: %s", f["key"], task.shard, exc)
                out.undecodable.append(f["key"])
                out.det_rows.append({"key": f["key"], "status": "undecodable", "faces": "[]"})
                v.broken.add(i)
                v.dets[i] = []
                continue
            hit = task.cache.get(f["key"])
            if hit is not None and hit[0] == "ok":
                v.dets[i] = faces_from_json(hit[1])
                out.stats["cached"] += 1
                continue
            pending.append((v, i, image))
            if len(pending) >= detect_mod.DETECT_BATCH:
                _detect(pending, out)
    _detect(pending, out)
    return videos


def _detect(pending: list, out: _Output) -> None:
    """Run the detector on the pending frames (one bounded batch), fill their detections, release the images."""
    if not pending:
        return
    found = _DETECTOR.detect([image for _, _, image in pending])
    out.stats["detected"] += len(pending)
    for (v, i, _), faces in zip(pending, found):
        v.dets[i] = faces
    pending.clear()


def _video_faces(task: Task, v: _Video, fs: FaceCrop, reader: MemberReader, out: _Output) -> None:
    """Pass 2, one video: detections -> tracked rows; then frame by frame (decoded again, released when done) the
    crops and the comparison with the original, written to the face shard as members."""
    frames = v.frames
    for i, (f, faces) in enumerate(zip(frames, v.dets)):
        if i not in v.broken:
            out.det_rows.append({"key": f["key"], "status": "ok", "faces": faces_to_json(faces)})
    rows = detections_to_rows(v.dets, [f["second"] for f in frames], fs, [f["key"] for f in frames], v.vid)
    rows = [r for r in rows if r["frame"] not in v.broken]  # no gap box in a broken frame
    label = frames[0]["label"]
    if task.clips is not None:
        _video_tubes(task, v, rows, fs, reader, out)
    stats = out.stats
    stats["videos"] += 1
    stats["frames"] += len(frames)
    stats["frames_with_faces"] += len({r["frame"] for r in rows})
    stats["videos_without_faces"] += not rows
    for t, group in itertools.groupby(rows, key=lambda r: r["frame"]):  # rows come in frame order
        group = list(group)
        images = {t: _read_frame(task, frames[t], reader)}
        add_crops(group, images, fs)
        _diff_rows(group, images, frames, v.vid, label, task.originals, reader)
        del images
        for r in group:  # each face carries its frame's own picture label (its video's in older frames.parquet)
            r["picture_label"] = frames[t].get("picture_label") or label
            _write_face(task, r, label, out, fs.jpeg_quality)


def _video_tubes(task: Task, v: _Video, rows: list[dict], fs: FaceCrop, reader: MemberReader, out: _Output) -> None:
    """A video's face tubes: each clip's faces, one box each from the clip's sampled frame (tubes.clip_tubes)."""
    for clip in task.clips.get(v.vid, []):
        tube_rows, members = tubes.clip_tubes(clip, v.frames, rows, v.broken, task.split, task.label, reader, fs)
        for row, data in zip(tube_rows, members):
            offset = out.tubes.append(task.shard, data)
            row.update(shard=f"{tubes.FACE_CLIPS}/{task.shard}", offset=offset)
        out.tube_rows.extend({k: r.get(k) for k in fm.FACE_CLIP_SCHEMA.names} for r in tube_rows)
        out.stats["tubes"] += len(members)
        out.stats["clips_without_tube"] += not members


def _write_face(task: Task, r: dict, label: str, out: _Output, quality: int) -> None:
    crop = r.pop("crop")
    r.pop("frame")
    r.update(split=task.split, label=label, crop_shard=f"{FACES}/{task.shard}")
    row = {k: r.get(k) for k in fm.FACES_SCHEMA.names}
    out.write(member(f"{r['crop_key']}.jpg", encode_jpeg(crop, quality))
              + member(f"{r['crop_key']}.json", json.dumps(row).encode()))
    out.face_rows.append(row)
    out.stats["faces"] += 1
    m = row["manipulated"]
    out.stats["manipulated" if m else "not_manipulated" if m is False else "manipulated_unknown"] += 1


def _write_shard(task: Task, shards: Path, fs: FaceCrop, device: str) -> _Output:
    """The face shard of one frame shard, written under its temporary name and fsynced, not yet in place (the frame
    shard is opened first: a missing one fails the task before anything is written)."""
    chunk = CHUNK_GPU if device == "cuda" else CHUNK_CPU
    videos = _by_video(task.frames)
    with MemberReader(shards) as reader:
        reader.handle(task.shard)
        out = _Output(TarFile(shards / FACES), task.shard,
                      tubes=None if task.clips is None else TarFile(shards / tubes.FACE_CLIPS))
        for c in range(0, len(videos), chunk):
            for v in _detections(task, videos[c:c + chunk], reader, out):
                _video_faces(task, v, fs, reader, out)
        out.record = out.tar.finish(task.shard)
        if out.tubes is not None:
            out.tubes_record = out.tubes.finish(task.shard)
    return out


def process_shard(task: Task, shards: str, manifests: str, settings: dict, device: str = "cpu") -> dict:
    """Worker: one frame shard -> detections cache, face shard, fragment, done marker (in that order)."""
    cpu0 = time.process_time()
    shards_p, manifests_p = Path(shards), Path(manifests)
    fs = FaceCrop.from_dict(settings)
    stem = task.shard[:-4]
    folder = fm.faces_dir(manifests_p)
    folder.mkdir(parents=True, exist_ok=True)
    out_dir = shards_p / FACES
    out_dir.mkdir(parents=True, exist_ok=True)
    out = _write_shard(task, shards_p, fs, device)
    out.det_rows.sort(key=lambda r: r["key"])
    fm.write_table(folder / f"{stem}.detections.parquet",
                   pa.Table.from_pylist(out.det_rows, schema=fm.DETECTION_SCHEMA),
                   {"detect_settings": detect_settings(fs)})
    if out.stats["faces"]:
        out.tar.commit(task.shard)
    else:  # no face shard at all (an empty one would be listed, and a stream cycling over it never yields)
        out.tar.discard(task.shard)
        (out_dir / task.shard).unlink(missing_ok=True)  # one an earlier run with other settings wrote
    fm.write_table(folder / f"{stem}.faces.parquet", pa.Table.from_pylist(out.face_rows, schema=fm.FACES_SCHEMA))
    _commit_tubes(task, shards_p, folder, out)
    done = {"shard": task.shard, "split": task.split, "label": task.label, "fingerprint": task.fingerprint,
            "settings": run_settings(fs), **_sealed(out),
            "undecodable_keys": out.undecodable[:100],
            "undecodable": len(out.undecodable), **{k: int(v) for k, v in out.stats.items()},
            "cpu_seconds": round(time.process_time() - cpu0, 3)}  # this worker's CPU for the shard (benchmarks)
    for k in ("frames", "frames_with_faces", "faces", "videos", "videos_without_faces", "manipulated",
              "not_manipulated", "manipulated_unknown", "detected", "cached", "tubes", "clips_without_tube"):
        done.setdefault(k, 0)
    fm.write_json(folder / f"{stem}.done.json", done)
    return done


def _commit_tubes(task: Task, shards: Path, folder: Path, out: _Output) -> None:
    """The face-clip shard in place (or none, and an older one removed, where no clip gave a tube) and its
    fragment, before the done marker: a shard is finished only with both. Without clips, those of an earlier
    run are removed."""
    if out.tubes is None:
        (folder / f"{task.shard[:-4]}.face_clips.parquet").unlink(missing_ok=True)
        (shards / tubes.FACE_CLIPS / task.shard).unlink(missing_ok=True)
        return
    if out.stats["tubes"]:
        out.tubes.commit(task.shard)
    else:
        out.tubes.discard(task.shard)
        (shards / tubes.FACE_CLIPS / task.shard).unlink(missing_ok=True)
    out.tube_rows.sort(key=lambda r: (r["video_id"], r["clip"] if r["clip"] is not None else -1, r["face"] or 0))
    fm.write_table(folder / f"{task.shard[:-4]}.face_clips.parquet",
                   pa.Table.from_pylist(out.tube_rows, schema=fm.FACE_CLIP_SCHEMA))


def _sealed(out: _Output) -> dict:
    """The face shard's size and sha256 for its done marker; a frame shard without faces has no face shard."""
    tubes_rec = out.tubes_record if out.stats["tubes"] else None
    sealed = {"tubes_bytes": tubes_rec["size"] if tubes_rec else 0, "tubes_sha256": tubes_rec and tubes_rec["sha256"]}
    if not out.stats["faces"]:
        return {"bytes": 0, "sha256": None, **sealed}
    return {"bytes": out.record["size"], "sha256": out.record["sha256"], **sealed}
