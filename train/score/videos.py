"""Videos scored from files (or a sharded split): the pipeline's own frames, the val transform, a score per video.

Frames come from train.score.model_input, the one path from a video file to what a model sees (`dfd check` takes
it too): `pipeline.frames.extract` with the settings the training shards were made with (fps, size box, JPEG
quality), then `decode_resized` at the model's input size, exactly as `train.data.streams.ValStream` feeds
validation; a faces checkpoint's videos go through the faces stage's own detect-and-crop (train.score.face_crops).
"""
from __future__ import annotations

import functools
import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from dfd.errors import ToolkitError
from pipeline.dataset import LABELS, Dataset, DatasetError, is_local, own_label, read_dataset_json
from pipeline.sources.video import VIDEO_EXTENSIONS
from train.config import CLIP_INPUTS, TrainConfig
from train.data.decode import decode_resized
from train.data.streams import read_shard
from train.score import metrics
from train.score.checkpoints import load_ensemble
from train.paths import CheckpointError, RunLayout, resolve as resolve_checkpoint
from train.score.face_crops import FACE_ROW_COLUMNS, NO_FACE_NOTE, FaceCropper, face_rows
from pipeline.spec import Clips, FrameSampling, SpecError, frame_keys
from train.score.model_input import Decoded, decode_video
from train.score.on_batches import Scorer
from train.score.one_video import score_clips
from train.score.face_tubes import NO_FACE_CLIP, tube_cutter, tube_rows

log = logging.getLogger(__name__)

FAILED_SCORE = 0.5  # the submission row of a video that could not be read: the uninformed prior
FRAME_COLUMNS = ("filename", "video_id", "key", "index", "second", "label", "p_fake", "error")


class PredictError(ToolkitError, RuntimeError):
    """Prediction cannot start (no frame settings, no videos, no shards of the split); the message says why."""


def _settings_from(config: dict | None, source: str) -> FrameSampling | None:
    """Frame sampling from a manifest or run config (untrusted: it reaches ffmpeg's filter graph), checked for type
    and range by pipeline.spec; PredictError names the file and the field otherwise."""
    if not config or not all(k in config for k in ("fps", "size", "quality")):
        return None
    try:
        return FrameSampling.from_dict(frame_keys(config), source)
    except SpecError as err:
        raise PredictError(f"{err}: refusing frame settings that ffmpeg would be given") from None


def frame_settings(checkpoint: Path, config: TrainConfig, manifests: Path | None = None) -> tuple[FrameSampling, str]:
    """The frame sampling the model was trained on and where it was read, from (first found): --manifests'
    dataset.json, the checkpoint's own config (training stores it), the run folder's pipeline.json, the config's
    manifests."""
    candidates = []
    if manifests is not None:
        candidates.append(Path(manifests) / "dataset.json")
    elif config.frames is not None:
        return config.frames, f"{checkpoint} (its config)"
    layout = RunLayout.of_checkpoint(checkpoint)
    if layout is not None:
        candidates.append(layout.pipeline)
    if config.manifests:
        candidates.append(Path(config.manifests) / "dataset.json")
    for path in candidates:
        if path.is_file():
            settings = _settings_from(_saved_config(path), str(path))
            if settings is not None:
                return settings, str(path)
    raise PredictError("cannot find the pipeline settings (fps, size, JPEG quality) the model was trained on; looked "
                       f"at {', '.join(map(str, candidates))}. Pass --manifests DIR (the folder with dataset.json)")


def clip_spec(checkpoint: Path, config: TrainConfig, manifests: Path | None = None) -> tuple[Clips, str]:
    """The clips a clip model was trained on and where they were read, from (first found): --manifests'
    dataset.json, the checkpoint's own config (training stores it; a package keeps it), the run folder's
    pipeline.json, the config's manifests (dataset.json's config "clips")."""
    if manifests is None and config.clips is not None:
        return config.clips, f"{checkpoint} (its config)"
    layout = RunLayout.of_checkpoint(checkpoint)
    candidates = [Path(manifests) / "dataset.json"] if manifests is not None else []
    candidates += [layout.pipeline] if layout is not None else []
    candidates += [Path(config.manifests) / "dataset.json"] if config.manifests else []
    for path in candidates:
        saved = _saved_config(path) if path.is_file() else None
        if saved and saved.get("clips"):
            try:
                return Clips.from_dict(saved["clips"], str(path)), str(path)
            except SpecError as err:
                raise PredictError(f"{err}: refusing clip settings that ffmpeg would be given") from None
    raise PredictError(f"cannot find the clip settings (dfd shards --clip-frames) the clip model {checkpoint} was "
                       f"trained on; looked at {', '.join(map(str, candidates))}. Pass --manifests DIR (the folder "
                       "with dataset.json)")


def _saved_config(path: Path) -> dict | None:
    """The "config" of a dataset.json (read by pipeline.dataset) or of a run folder's pipeline.json."""
    try:
        data = read_dataset_json(path.parent) if path.name == "dataset.json" else json.loads(path.read_text())
    except (DatasetError, OSError, ValueError) as err:
        raise PredictError(f"{path}: {err}") from None
    return data.get("config") if isinstance(data, dict) else None


def find_videos(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given (whatever their extension), folders searched recursively for video files; sorted, unique."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        else:
            found.append(item)  # a missing file becomes an error row, not a crash
    return list(dict.fromkeys(found))


def video_names(paths: Sequence[Path], inputs: Sequence) -> list[str]:
    """The filename column: the bare file name (as Kaggle wants) when those are unique; else, with a warning, the
    path relative to the folder given (the path as given where even that repeats), so no two videos share a row."""
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    roots = [Path(i) for i in inputs if Path(i).is_dir()]

    def relative(path: Path) -> str:
        for root in roots:
            if path.is_relative_to(root):
                return str(path.relative_to(root))
        return str(path)

    out = [relative(p) for p in paths]
    if len(set(out)) < len(out):
        out = [str(p) for p in paths]
    repeated = pd.Series(names)[pd.Series(names).duplicated()].iloc[0]
    log.warning("several videos share a file name (e.g. %s): the filename column holds each video's path relative "
                "to the folder given instead", repeated)
    return out


def decoded_stream(paths: Sequence[Path], settings: FrameSampling, size, workers: int) -> Iterator[Decoded]:
    """Decoded videos in input order; with workers > 0, ffmpeg runs for the next videos while the model scores."""
    if workers <= 0:
        for path in paths:
            yield decode_video(path, settings, size)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        pending: list[Future] = []
        queue = iter(paths)
        for path in queue:
            pending.append(pool.submit(decode_video, path, settings, size))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done = pending.pop(0).result()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append(pool.submit(decode_video, nxt, settings, size))
            yield done


def predict_videos(scorer: Scorer, paths: Sequence[Path], settings: FrameSampling, size, workers: int = 2,
                   progress: bool = True, names: Sequence[str] | None = None,
                   cropper=None) -> tuple[pd.DataFrame, dict]:
    """Per-frame rows (error rows for videos that failed) and timings: wall, decode and model seconds.
    `names`: each video's filename column (video_names); default the bare file names. With a `cropper`
    (train.score.face_crops.FaceCropper, a faces checkpoint) a row per face instead, and a row with a note for a video
    without any face."""
    rows, start, decode_s, failed = [], time.perf_counter(), 0.0, 0
    names = iter(names if names is not None else [p.name for p in paths])
    bar = tqdm(total=len(paths), desc="videos", unit="video", disable=not progress, dynamic_ncols=True)
    for item in decoded_stream(paths, settings, None if cropper else size, workers):
        decode_s += item.decode_s
        name = next(names)
        base = {"filename": name, "video_id": str(Path(name).with_suffix("")), "label": None}
        if item.error is not None:
            failed += 1
            log.error("%s: %s", item.path, item.error)
            rows.append({**base, "error": item.error})
        elif cropper is not None:
            try:
                rows += face_rows(cropper, scorer, item, base)
            except ValueError as err:  # a JPEG simplejpeg refuses (decoded only now): the video's error row
                failed += 1
                log.error("%s: %s: %s", item.path, err.__class__.__name__, err)
                rows.append({**base, "error": f"{err.__class__.__name__}: {err}"})
        else:
            p_fake = scorer(item.images)
            rows += [{**base, "key": f"{base['video_id']}_{i:04d}", "index": i, "second": s, "p_fake": p}
                     for i, s, p in zip(item.indices, item.seconds, p_fake)]
        bar.update(1)
        bar.set_postfix(failed=failed)
    bar.close()
    stats = {"videos": len(paths), "failed": failed, "wall_s": time.perf_counter() - start, "decode_s": decode_s,
             "model_s": scorer.seconds}
    if cropper is None:
        return frames_frame(rows), stats
    stats.update(faces_s=cropper.seconds, no_face=sum(r.get("note") == NO_FACE_NOTE for r in rows))
    return frames_frame(rows, FRAME_COLUMNS + FACE_ROW_COLUMNS), stats


def frames_frame(rows: list[dict], columns: Sequence[str] = FRAME_COLUMNS) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    return frame.astype({"index": "Int64", "second": "float64", "p_fake": "float64"})


def predict_clip_videos(paths: Sequence[Path], names: Sequence[str], score_one, progress: bool = True
                        ) -> tuple[list[dict], int, float]:
    """A clip model's rows over video files (rows, videos failed, decode seconds): each video's from `score_one(path,
    video_id, timings) -> (rows, error)`, given its filename and video_id; an error row for a video without any."""
    rows, decode_s, failed = [], 0.0, 0
    for path, name in tqdm(list(zip(paths, names)), desc="videos", unit="video", disable=not progress):
        timings: dict = {}
        base = {"filename": name, "video_id": str(Path(name).with_suffix("")), "label": None}
        found, error = score_one(path, base["video_id"], timings)
        decode_s += timings.get("decode_s", 0.0)
        if error is not None:
            failed += 1
            log.error("%s: %s", path, error)
            rows.append({**base, "error": error})
        rows += [{**base, "error": None, **r} for r in found]
    return rows, failed, decode_s


def _clip_rows(path: Path, video: str, timings: dict, scorer: Scorer, settings: FrameSampling, clips: Clips,
               size) -> tuple[list[dict], str | None]:
    """One video's rows of a clip model: one per whole clip of the pipeline's clips of its one decode (index: the
    clip, second: its first frame's; train.score.one_video.score_clips); `video` unused (predict_clip_videos'
    call, which face tubes need for their keys)."""
    items, _, _, error = score_clips(path, scorer, settings, clips, size, timings)
    return [{"index": i.frame, "second": i.second, "p_fake": i.p_fake} for i in items], error


def _clip_videos(scorer: Scorer, config: TrainConfig, paths: Sequence[Path], settings: FrameSampling,
                 names: Sequence[str], checkpoint: Path, manifests: Path | None, device: str,
                 progress: bool) -> tuple[pd.DataFrame, dict]:
    """A clip model's rows (predict_clip_videos), or a face-clips model's, a row per face tube
    (train.score.face_tubes)."""
    spec, where = clip_spec(checkpoint, config, manifests)
    log.info("%s model: %d frames per clip (from %s)", config.input, spec.frames, where)
    cutter = tube_cutter(config, config.image_size, device)
    start = time.perf_counter()
    if cutter is None:
        score_one = functools.partial(_clip_rows, scorer=scorer, settings=settings, clips=spec, size=config.image_size)
    else:
        score_one = functools.partial(tube_rows, scorer=scorer, cutter=cutter, settings=settings, clips=spec)
    rows, failed, decode_s = predict_clip_videos(paths, names, score_one, progress)
    stats = {"videos": len(paths), "failed": failed, "wall_s": time.perf_counter() - start, "decode_s": decode_s,
             "model_s": scorer.seconds}
    if cutter is None:
        return frames_frame(rows), stats
    stats.update(faces_s=cutter.seconds, no_face_clips=sum(str(r.get("note") or "").startswith(NO_FACE_CLIP)
                                                           for r in rows))
    return frames_frame(rows, FRAME_COLUMNS + FACE_ROW_COLUMNS), stats


def shard_samples(shards: str, manifests: Path, split: str, input: str = "frames") -> tuple[list[str], dict[str, str]]:
    """Shard locations of a split (its face shards for input "faces"), checked as training checks them, and video
    id -> file name from videos.parquet (if present)."""
    try:
        dataset = Dataset.open(shards, manifests, input, need=(), check=(split,))
    except DatasetError as err:
        raise PredictError(str(err)) from None
    urls = dataset.urls(split)
    if not urls:
        raise PredictError(f"{Path(manifests) / 'dataset.json'} lists no shards of split {split!r}")
    names = {}
    if dataset.has_table("videos"):
        videos = dataset.table("videos", ["video_id", "path"]).dropna()
        base = [Path(p).name for p in videos["path"]]
        if len(set(base)) < len(base):  # e.g. FaceForensics++: the same TTT_SSS.mp4 under every method
            log.warning("several videos share a file name (e.g. %s): the filename column holds video ids instead",
                        pd.Series(base)[pd.Series(base).duplicated()].iloc[0])
            base = [f"{v}{Path(p).suffix}" for v, p in zip(videos["video_id"], videos["path"])]
        names = dict(zip(videos["video_id"], base))
    return urls, names


def predict_shards(scorer: Scorer, urls: Iterable[str], names: dict[str, str], size,
                   progress: bool = True) -> pd.DataFrame:
    """Per-frame rows for every sample of the shards (each its own picture label where the split has labels:
    pipeline.dataset.own_label)."""
    rows: list[dict] = []
    batch: list[tuple[dict, np.ndarray]] = []

    def flush() -> None:
        p_fake = scorer(np.stack([image for _, image in batch]))
        rows.extend({**meta, "p_fake": p} for (meta, _), p in zip(batch, p_fake))
        batch.clear()

    bar = tqdm(desc="frames", unit="frame", disable=not progress, dynamic_ncols=True)
    for url in urls:
        for sample in read_shard(url):
            meta = json.loads(sample["json"])
            video = meta.get("video_id") or sample["__key__"].rsplit("_", 1)[0]
            batch.append(({"filename": names.get(video, f"{video}.mp4"), "video_id": video, "key": sample["__key__"],
                           "index": meta.get("index"), "second": meta.get("second"),
                           "label": LABELS.get(own_label(meta)), "error": None},
                          decode_resized(sample["jpg"], size)))
            if len(batch) >= scorer.batch_size:
                flush()
            bar.update(1)
    if batch:
        flush()
    bar.close()
    return frames_frame(rows)


def video_scores(frames: pd.DataFrame, clip: float = 0.0, rule: str = "mean") -> pd.DataFrame:
    """filename, label = the rule over the P(fake) of the video's frames or faces (train.score.metrics.video_scores,
    the one per-video scoring; FAILED_SCORE where it failed or has no face), in input order."""
    ok = frames[frames["error"].isna() & frames["p_fake"].notna()]
    scored = metrics.video_scores(ok, rule, by="filename").set_index("filename")["p_fake"]
    names = list(dict.fromkeys(frames["filename"]))
    scores = np.array([scored.get(name, FAILED_SCORE) for name in names], dtype=np.float64)
    if clip > 0:
        scores = np.clip(scores, clip, 1 - clip)
    return pd.DataFrame({"filename": names, "label": scores})


def face_cropper(config: TrainConfig, size, device: str) -> FaceCropper | None:
    """The faces stage's detect-and-crop for a checkpoint trained on faces (None for a frames checkpoint)."""
    if config.input != "faces":
        return None
    if not config.faces:
        raise PredictError("the checkpoint was trained on faces but records no face settings")
    log.info("faces checkpoint: each video's faces detected and cropped with %s", config.faces)
    return FaceCropper(config.faces, size, device)


def load_scorer(checkpoints: Path | Sequence[Path], device: str, batch_size: int | None,
                tta: str = "none") -> tuple[Scorer, TrainConfig]:
    """A Scorer over one checkpoint or an ensemble (refused unless they take the same input) and the first config."""
    paths = [checkpoints] if isinstance(checkpoints, (str, Path)) else list(checkpoints)
    try:
        ensemble = load_ensemble(paths, device)
    except CheckpointError as err:
        raise PredictError(str(err)) from None
    return Scorer(ensemble.models, ensemble.dev, batch_size or ensemble.config.batch_size, tta), ensemble.config


def predict_inputs(inputs: Sequence[Path], checkpoints: Sequence[Path], shards: str | None, manifests: Path | None,
                   split: str, workers: int, batch_size: int | None, device: str, clip: float, tta: str,
                   rule: str | None, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Per-frame (or per-face) rows, the per-video submission and counts, for videos (files or folders) or, with
    `shards`, a sharded split. Nothing is written here: two videos sharing a file name raise PredictError first."""
    scorer, config = load_scorer(checkpoints, device, batch_size, tta)
    size = config.image_size
    if shards:
        if config.input in CLIP_INPUTS:
            raise PredictError(f"a {config.input} model scores its shards with `dfd evaluate --shards` (labelled "
                               "splits); `dfd predict` takes it on video files")
        if not manifests and not is_local(shards):
            raise PredictError("--shards is not a local folder: pass --manifests")
        urls, names = shard_samples(shards, Path(manifests or Path(shards).parent / "manifests"), split, config.input)
        frames = predict_shards(scorer, urls, names, size, progress=progress)
        stats = {"videos": frames["video_id"].nunique(), "failed": 0}
    else:
        settings, source = frame_settings(resolve_checkpoint(checkpoints[0]), config, manifests)
        paths = find_videos(inputs)
        if not paths:
            raise PredictError(f"no video files in {', '.join(map(str, inputs))}")
        log.info("%d videos; frames as the pipeline made them: fps %g, box %dx%d, quality %d, skip frames %s (from "
                 "%s); model input %dx%d", len(paths), settings.fps, *settings.size, settings.quality,
                 settings.skip_frames, source, *size)
        if config.input in CLIP_INPUTS:
            frames, stats = _clip_videos(scorer, config, paths, settings, video_names(paths, inputs),
                                         resolve_checkpoint(checkpoints[0]), manifests, device, progress)
        else:
            frames, stats = predict_videos(scorer, paths, settings, size, workers, progress=progress,
                                           names=video_names(paths, inputs), cropper=face_cropper(config, size, device))
    scores = video_scores(frames, clip, rule or config.aggregate)
    if len(scores) != stats["videos"] or frames["filename"].nunique() != frames["video_id"].nunique():
        raise PredictError(f"{stats['videos']} videos scored but {len(scores)} rows to write: two videos share a "
                           "filename; nothing written")
    return frames, scores, stats
