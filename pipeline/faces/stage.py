"""The faces stage over existing frame shards: plan per frame shard, detect/track/crop/diff in a pool, write a
face shard and a fragment per frame shard, consolidate. Resumable: a frame shard is finished when its
faces_parts/<stem>.done.json exists (written last) for the same settings and the same frame-shard content."""
from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import hashlib
import itertools
import json
import logging
import multiprocessing
import os
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dfd.children import die_with_parent
from dfd.errors import UsageProblem

from ..dataset import MemberReader, has_table, read_arrow, read_dataset_json
from ..shards import BLOCK, member
from ..split import part_of
from . import detect as detect_mod
from . import manifest as fm
from .api import add_crops, detections_to_rows
from .crop import decode_jpeg, encode_jpeg
from .detect import Face
from .diff import align, box_diff
from .settings import FaceSettings

log = logging.getLogger(__name__)

FACES = "faces"
# 1 - SSIM (blurred grey, inside the box) at or above this marks a fake's face as manipulated. Measured on the
# FF++ pairs in ../shared/data: NeuralTextures faces 0.048-0.13 (10th percentile 0.058), Deepfakes 0.19-0.26; random
# background patches of the face's size 0.002-0.037 (90th percentile 0.022).
DIFF_THRESHOLD = 0.04
JPEG_QUALITY = 90
CHUNK_CPU, CHUNK_GPU = 1, 8  # videos detected per batch


class FacesError(UsageProblem, RuntimeError):
    """The stage cannot run as asked (nothing was written)."""


def detect_settings(settings: FaceSettings) -> dict:
    """What decides the detections (the cache is reused only when all of it matches)."""
    return {"detect_size": settings.detect_size, "min_score": settings.min_score, "min_size": settings.min_size,
            "max_faces": settings.max_faces, "thresholds": list(detect_mod.THRESHOLDS),
            "retry_scale": detect_mod.RETRY_SCALE}


def run_settings(settings: FaceSettings) -> dict:
    return {**settings.asdict(), "diff_threshold": DIFF_THRESHOLD, "jpeg_quality": JPEG_QUALITY}


@dataclasses.dataclass
class Task:
    shard: str
    split: str
    label: str
    fingerprint: str
    frames: list[dict]            # this shard's frames (key, video_id, second, offset, bytes, width, height, label)
    originals: dict[str, dict]    # fake video id -> {"id": original, "frames": {second: (shard, offset)}} | {"note"}
    cache: dict[str, tuple]       # key -> (status, faces json) from earlier detections


# --------------------------------------------------------------------------------------------------- worker

_DETECTOR = None


def _init_worker(settings: dict, device: str, threads: int | None, parent: int | None = None) -> None:
    """Load MTCNN once per process; `threads` torch CPU threads (None: torch's default). In a pool worker
    (`parent` given) the process first makes sure it dies with the orchestrator (dfd.children)."""
    global _DETECTOR
    if parent is not None:
        die_with_parent(parent)
    import torch

    if threads:
        torch.set_num_threads(threads)
    from .detect import FaceDetector

    _DETECTOR = FaceDetector(FaceSettings.from_dict(settings), device)


def _faces_from_json(text: str) -> list[Face]:
    return [Face(tuple(f["box"]), f["score"], None if f["landmarks"] is None else np.asarray(f["landmarks"]))
            for f in json.loads(text)]


def _faces_to_json(faces: list[Face]) -> str:
    return json.dumps([{"box": [float(v) for v in f.box], "score": float(f.score),
                        "landmarks": None if f.landmarks is None else [[float(a), float(b)] for a, b in f.landmarks]}
                       for f in faces])


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

    fh: BinaryIO
    stats: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    undecodable: list[str] = dataclasses.field(default_factory=list)
    det_rows: list[dict] = dataclasses.field(default_factory=list)
    face_rows: list[dict] = dataclasses.field(default_factory=list)
    size: int = 0
    digest: Any = dataclasses.field(default_factory=hashlib.sha256)

    def write(self, data: bytes) -> None:
        self.fh.write(data)
        self.digest.update(data)
        self.size += len(data)


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
                v.dets[i] = _faces_from_json(hit[1])
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


def _video_faces(task: Task, v: _Video, fs: FaceSettings, reader: MemberReader, out: _Output) -> None:
    """Pass 2, one video: detections -> tracked rows; then frame by frame (decoded again, released when done) the
    crops and the comparison with the original, written to the face shard as members."""
    frames = v.frames
    for i, (f, faces) in enumerate(zip(frames, v.dets)):
        if i not in v.broken:
            out.det_rows.append({"key": f["key"], "status": "ok", "faces": _faces_to_json(faces)})
    rows = detections_to_rows(v.dets, [f["second"] for f in frames], fs, [f["key"] for f in frames], v.vid)
    rows = [r for r in rows if r["frame"] not in v.broken]  # no gap box in a broken frame
    label = frames[0]["label"]
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
        for r in group:
            _write_face(task, r, label, out)


def _write_face(task: Task, r: dict, label: str, out: _Output) -> None:
    crop = r.pop("crop")
    r.pop("frame")
    r.update(split=task.split, label=label, crop_shard=f"{FACES}/{task.shard}")
    row = {k: r.get(k) for k in fm.FACES_SCHEMA.names}
    out.write(member(f"{r['crop_key']}.jpg", encode_jpeg(crop, JPEG_QUALITY))
              + member(f"{r['crop_key']}.json", json.dumps(row).encode()))
    out.face_rows.append(row)
    out.stats["faces"] += 1
    m = row["manipulated"]
    out.stats["manipulated" if m else "not_manipulated" if m is False else "manipulated_unknown"] += 1


def _write_shard(task: Task, shards: Path, fs: FaceSettings, device: str, tmp: Path) -> _Output:
    """The face shard of one frame shard, written to `tmp` and fsynced (the frame shard is opened first: a missing
    one fails the task before anything is written)."""
    chunk = CHUNK_GPU if device == "cuda" else CHUNK_CPU
    videos = _by_video(task.frames)
    with MemberReader(shards) as reader:
        reader.handle(task.shard)
        with open(tmp, "wb") as fh:
            out = _Output(fh)
            for c in range(0, len(videos), chunk):
                for v in _detections(task, videos[c:c + chunk], reader, out):
                    _video_faces(task, v, fs, reader, out)
            out.write(b"\0" * (2 * BLOCK))
            fh.flush()
            os.fsync(fh.fileno())
    return out


def process_shard(task: Task, shards: str, manifests: str, settings: dict, device: str = "cpu") -> dict:
    """Worker: one frame shard -> detections cache, face shard, fragment, done marker (in that order)."""
    cpu0 = time.process_time()
    shards_p, manifests_p = Path(shards), Path(manifests)
    fs = FaceSettings.from_dict(settings)
    stem = task.shard[:-4]
    folder = fm.faces_dir(manifests_p)
    folder.mkdir(parents=True, exist_ok=True)
    out_dir = shards_p / FACES
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{task.shard}.tmp"
    out = _write_shard(task, shards_p, fs, device, tmp)
    out.det_rows.sort(key=lambda r: r["key"])
    fm.write_table(folder / f"{stem}.detections.parquet",
                   pa.Table.from_pylist(out.det_rows, schema=fm.DETECTION_SCHEMA),
                   {"detect_settings": detect_settings(fs)})
    if out.stats["faces"]:
        os.replace(tmp, out_dir / task.shard)
    else:  # no face shard at all (an empty one would be listed, and a stream cycling over it never yields)
        tmp.unlink()
        (out_dir / task.shard).unlink(missing_ok=True)  # one an earlier run with other settings wrote
    fm.write_table(folder / f"{stem}.faces.parquet", pa.Table.from_pylist(out.face_rows, schema=fm.FACES_SCHEMA))
    done = {"shard": task.shard, "split": task.split, "label": task.label, "fingerprint": task.fingerprint,
            "settings": settings_with_extras(fs), **_sealed(out),
            "undecodable_keys": out.undecodable[:100],
            "undecodable": len(out.undecodable), **{k: int(v) for k, v in out.stats.items()},
            "cpu_seconds": round(time.process_time() - cpu0, 3)}  # this worker's CPU for the shard (benchmarks)
    for k in ("frames", "frames_with_faces", "faces", "videos", "videos_without_faces", "manipulated",
              "not_manipulated", "manipulated_unknown", "detected", "cached"):
        done.setdefault(k, 0)
    fm.write_json(folder / f"{stem}.done.json", done)
    return done


def _sealed(out: _Output) -> dict:
    """The face shard's size and sha256 for its done marker; a frame shard without faces has no face shard."""
    return {"bytes": out.size, "sha256": out.digest.hexdigest()} if out.stats["faces"] else {"bytes": 0, "sha256": None}


def settings_with_extras(fs: FaceSettings) -> dict:
    return run_settings(fs)


def _worker(task: Task, shards: str, manifests: str, settings: dict, device: str) -> dict:
    return process_shard(task, shards, manifests, settings, device)


# ------------------------------------------------------------------------------------------------ orchestrator

def _read_manifest(manifests: Path) -> tuple[pa.Table, dict[str, dict]]:
    if not (has_table(manifests, "frames") and has_table(manifests, "videos")):
        raise FacesError(f"{manifests}: no frames.parquet/videos.parquet (run pipeline.run first)")
    read_dataset_json(manifests)  # its faces section is written last: a broken one stops the run before any work
    frames = read_arrow(manifests, "frames")
    videos = read_arrow(manifests, "videos", ["video_id", "label", "original", "status"])
    return frames, {v["video_id"]: v for v in videos.to_pylist()}


def _cache(manifests: Path, settings: FaceSettings, keys: set[str]) -> dict[str, tuple]:
    """Earlier detections of these frame keys made with the same detect settings (whatever shard they were in)."""
    import pyarrow.compute as pc

    want = detect_settings(settings)
    cache: dict[str, tuple] = {}
    paths = sorted(fm.faces_dir(manifests).glob("*.detections.parquet"))
    wanted = pa.array(sorted(keys), type=pa.string()) if paths else None
    for path in paths:
        try:
            table = pq.read_table(path)
            meta = table.schema.metadata or {}
            if json.loads(meta.get(b"detect_settings", b"null")) != want:
                continue
        except (OSError, pa.ArrowInvalid, ValueError) as exc:
            log.warning("%s: unreadable detections cache, ignored: %s", path.name, exc)
            continue
        table = table.filter(pc.is_in(table["key"], value_set=wanted))
        for k, st, faces in zip(table["key"].to_pylist(), table["status"].to_pylist(), table["faces"].to_pylist()):
            cache[k] = (st, faces)
    return cache


FRAME_COLUMNS = ("key", "video_id", "second", "split", "label", "shard", "offset", "bytes", "width", "height")


def plan(shards: Path, manifests: Path, settings: FaceSettings, part: tuple[int, int]) -> dict:
    """Tasks for the frame shards of this part whose faces are not finished (nothing is written).

    Frames stay in one Arrow table sorted by shard (a zero-copy slice per shard, turned into rows only when the
    shard's task is built), so the orchestrator's memory stays near the manifest's size at DFDC scale.
    """
    import pyarrow.compute as pc

    frames, videos = _read_manifest(manifests)
    table = frames.select([c for c in FRAME_COLUMNS if c in frames.column_names])
    table = table.sort_by([("shard", "ascending"), ("key", "ascending")])
    by_shard: dict[str, pa.Table] = {}
    start = 0
    if table.num_rows:
        runs = pc.run_end_encode(table["shard"].combine_chunks())
        for name, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist()):
            by_shard[name] = table.slice(start, end - start)
            start = end
    originals = {v["original"] for v in videos.values() if v.get("label") == "fake" and v.get("original")}
    by_video_second: dict[str, dict] = collections.defaultdict(dict)
    needed = table.filter(pc.is_in(table["video_id"], value_set=pa.array(sorted(originals), type=pa.string())))
    for vid, sec, shard, off in zip(*(needed[c].to_pylist() for c in ("video_id", "second", "shard", "offset"))):
        by_video_second[vid][round(sec, 3)] = (shard, off)
    k, n = part
    names = sorted(s for s in by_shard if n == 1 or part_of(s, n) == k)
    fingerprints = {s: fm.fingerprint(t.select(["key", "offset", "bytes"]).to_pylist()) for s, t in by_shard.items()}
    want = run_settings(settings)
    todo, finished = [], []
    for s in names:
        d = fm.read_done(manifests, s)
        if (d and d.get("settings") == want and d.get("fingerprint") == fingerprints[s]
                and (d.get("faces") == 0 or (shards / FACES / s).is_file())  # no faces: no face shard
                and (fm.faces_dir(manifests) / f"{s[:-4]}.faces.parquet").is_file()):
            finished.append(s)
        else:
            todo.append(s)
    return {"by_shard": by_shard, "by_video_second": by_video_second, "videos": videos, "names": names,
            "todo": todo, "finished": finished, "fingerprints": fingerprints, "all_shards": sorted(by_shard)}


def _task(p: dict, shard: str, cache: dict) -> Task:
    frames = p["by_shard"][shard].to_pylist()
    originals = {}
    for vid in sorted({f["video_id"] for f in frames}):
        v = p["videos"].get(vid) or {}
        if v.get("label") != "fake":
            continue
        orig = v.get("original")
        if not orig:
            originals[vid] = {"note": "no original recorded for this fake"}
        elif orig not in p["by_video_second"]:
            originals[vid] = {"note": f"original {orig} not in the dataset's frames"}
        else:
            originals[vid] = {"id": orig, "frames": p["by_video_second"][orig]}
    split = frames[0]["split"]
    label = frames[0]["label"] or "unlabelled"
    return Task(shard, split, label, p["fingerprints"][shard], frames, originals,
                {f["key"]: cache[f["key"]] for f in frames if f["key"] in cache})


def _collect_garbage(shards: Path, manifests: Path, current: set[str]) -> None:
    """After a complete run: remove face outputs of frame shards that no longer exist (resplit, re-pack)."""
    folder = fm.faces_dir(manifests)
    for path in list(folder.glob("*.done.json")) + list(folder.glob("*.faces.parquet")) + \
            list(folder.glob("*.detections.parquet")):
        stem = path.name.split(".")[0]
        if f"{stem}.tar" not in current:
            path.unlink(missing_ok=True)
            (shards / FACES / f"{stem}.tar").unlink(missing_ok=True)
    for tmp in (shards / FACES).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def start_pool(workers: int, settings: FaceSettings, device: str) -> cf.ProcessPoolExecutor:
    method = "fork" if sys.platform == "linux" and device == "cpu" else "spawn"
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method),
                                  initializer=_init_worker, initargs=(settings.asdict(), device, 1, os.getpid()))


def build(shards: Path, manifests: Path, settings: FaceSettings, device: str = "cpu", workers: int = 1,
          part: tuple[int, int] = (1, 1)) -> dict:
    """Run the stage; returns the summary stats."""
    from tqdm import tqdm

    shards, manifests = Path(shards), Path(manifests)
    started = time.time()
    p = plan(shards, manifests, settings, part)
    folder = fm.faces_dir(manifests)
    folder.mkdir(parents=True, exist_ok=True)
    previous = fm.run_settings(manifests)
    want = run_settings(settings)
    if previous is not None and previous != want:
        log.info("face settings changed (%s): faces are made again, detections reused where the detect "
                 "settings match", {k: v for k, v in want.items() if previous.get(k) != v})
    fm.write_json(folder / "settings.json", want)
    todo_keys = {k for s in p["todo"] for k in p["by_shard"][s]["key"].to_pylist()}
    cache = _cache(manifests, settings, todo_keys) if todo_keys else {}
    del todo_keys
    stats = collections.Counter(shards_done=0, shards_skipped=len(p["finished"]), shards_failed=0)
    n_frames = sum(p["by_shard"][s].num_rows for s in p["todo"])
    t0 = time.time()
    with tqdm(total=n_frames, unit="frame", desc="faces", dynamic_ncols=True, disable=not n_frames) as bar:
        def account(done: dict):
            stats["shards_done"] += 1
            for key in ("frames", "faces", "frames_with_faces", "videos", "videos_without_faces", "undecodable",
                        "detected", "cached"):
                stats[key] += done.get(key, 0)
            for key in done.get("undecodable_keys", []):
                log.warning("undecodable frame JPEG: %s (in %s)", key, done["shard"])
            bar.update(done["frames"])
            bar.set_postfix(faces=stats["faces"], fps=f"{stats['frames'] / max(time.time() - t0, 1e-6):.1f}")

        def failed(shard: str, exc: BaseException):
            stats["shards_failed"] += 1
            log.error("%s: faces failed, the run goes on (rerun to retry): %s: %s", shard, type(exc).__name__, exc)

        if p["todo"] and (workers <= 1 or device == "cuda"):
            _init_worker(settings.asdict(), device, None if device == "cuda" else max(1, workers))
            for shard in p["todo"]:
                try:
                    account(process_shard(_task(p, shard, cache), str(shards), str(manifests), settings.asdict(),
                                          device))
                except Exception as exc:  # a missing or truncated frame shard: reported, not fatal
                    failed(shard, exc)
        elif p["todo"]:
            pool = start_pool(min(workers, len(p["todo"])), settings, device)
            todo = iter(p["todo"])
            running: dict[cf.Future, str] = {}
            try:
                while True:
                    while len(running) < 2 * workers and (shard := next(todo, None)) is not None:
                        task = _task(p, shard, cache)  # built when submitted: the orchestrator stays small
                        running[pool.submit(_worker, task, str(shards), str(manifests), settings.asdict(),
                                            device)] = shard
                    if not running:
                        break
                    finished_now, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                    for fut in finished_now:
                        shard = running.pop(fut)
                        try:
                            account(fut.result())
                        except Exception as exc:
                            failed(shard, exc)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    if part == (1, 1):
        current = set(p["all_shards"])
        if all(fm.read_done(manifests, s) for s in current):
            _collect_garbage(shards, manifests, current)
        section = fm.consolidate_faces(manifests, p["all_shards"], p["fingerprints"])
        fm.update_dataset_json(manifests, section)
        stats["total_faces"] = section["faces"]
        stats["total_videos_without_faces"] = section["videos_without_faces"]
        stats["pending"] = len(section["pending_shards"])
    stats["seconds"] = round(time.time() - started, 1)
    return dict(stats)
