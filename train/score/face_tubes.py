"""A face-clips model (`dfd train --input face-clips`) on video files: each clip's face tubes cut as the faces stage
cuts them, so that the model sees at prediction what it saw in training.

One decode gives the sampled frames and the clips (train.score.model_input.sample_clips, as for a clip model); the
faces stage's own detector and tracker run on the sampled frames (train.score.face_crops.FaceCropper.rows, the
stage's detections_to_rows), and each whole clip's tubes come from pipeline.stages.faces.tubes: the faces of the
sampled frame the clip starts at (clip_faces), each box scaled to the clip's frames (scaled_box), every clip frame
cut with that one box and JPEG-encoded as the face-clip shards hold it (tube_jpegs); then decoded and resized as
ClipValStream does. A tube's P(fake) is the model's; a clip's is the run's rule over its tubes (frame_max: their
max); the video's is the run's rule over all its tubes, grouped by clip (train.score.metrics). A clip without a face
gives a row saying so (status no_face), not a score."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from dfd.errors import ToolkitError
from pipeline.ffmpeg.jpeg import jpeg_size
from pipeline.spec import Clips, FrameSampling
from pipeline.stages.faces.crop import decode_jpeg
from pipeline.stages.faces.tubes import clip_faces, scaled_box, tube_jpegs, tube_key
from train.config import TrainConfig
from train.score.face_crops import FaceCropper
from train.score.model_input import frame_inputs
from train.score.on_batches import Scorer
from train.score.one_video import decode_video
from train.score.verdict import Item, Verdict

log = logging.getLogger(__name__)

NO_FACE_CLIP = "not scored"  # a clip without a face tube: its row's note starts so


class TubeError(ToolkitError, RuntimeError):
    """A face-clips model records no face settings: its tubes cannot be cut as in training."""


class TubeCutter:
    """The faces stage's detector, tracker and tube crop with the run's FaceCrop, at the model's input size."""

    def __init__(self, cropper: FaceCropper) -> None:
        self.cropper, self.settings, self.size = cropper, cropper.settings, cropper.size

    @property
    def seconds(self) -> float:
        return self.cropper.seconds

    def __call__(self, frames: list, cut: list[dict], length: int, stem: str = "") -> list[dict]:
        """Per whole clip (`length` frames; a clip the video's end cut short is left out: the model takes T frames)
        its tubes {clip, start, clip_status, status "done", frame, face, track, box (sampled frame's pixels),
        input (T, H, W, 3)}, or one row {clip, start, clip_status, status, warning} for a clip without a face."""
        rows = self.cropper.rows([f.jpeg for f in frames], [f.second for f in frames])
        start = time.perf_counter()
        meta = [{"second": f.second, "key": f"{stem}_{f.index:04d}", "width": f.width, "height": f.height}
                for f in frames]
        out = []
        for c in cut:
            if len(c["jpegs"]) < length:
                continue
            width, height = jpeg_size(c["jpegs"][0])
            clip = {"start": c["times"][0], "width": width, "height": height}
            base = {"clip": c["clip"], "start": c["times"][0] or 0.0, "clip_status": c["status"]}
            t, here, found = clip_faces(clip, meta, rows, set())
            if not here:
                out.append({**base, **found})
                continue
            images = [decode_jpeg(j) for j in c["jpegs"]]
            for r in here:
                jpegs = tube_jpegs(images, scaled_box(r, meta[t], clip), self.settings)
                out.append({**base, "status": "done", "frame": t, "face": r["face"], "track": r["track"],
                            "box": (r["x0"], r["y0"], r["x1"], r["y1"]), "input": frame_inputs(jpegs, self.size)})
        self.cropper.seconds += time.perf_counter() - start
        return out


def tube_cutter(config: TrainConfig, size, device: str) -> TubeCutter | None:
    """The tube cutter of a face-clips model (None for any other)."""
    if config.input != "face-clips":
        return None
    if not config.faces:
        raise TubeError("the face-clips model records no face settings (the faces stage's): train it again with "
                        "this toolkit to score it")
    log.info("face-clips model: each clip's face tubes cut as the faces stage cuts them, with %s", config.faces)
    return TubeCutter(FaceCropper(config.faces, size, device))


def score_tubes(path: Path, scorer: Scorer, cutter: TubeCutter, settings: FrameSampling, clips: Clips,
                timings: dict) -> tuple[list[dict], list, str | None]:
    """One video file's tubes scored (each with p_fake) and its faceless clips' rows, the sampled frames, and why
    there is nothing (a file that is not a video, no whole clip); never raises for a bad file."""
    start = time.perf_counter()
    decoded, error = decode_video(Path(path), settings, clips)
    timings["decode_s"] = time.perf_counter() - start
    if error:
        return [], [], error
    frames, cut = decoded
    start = time.perf_counter()
    try:
        rows = cutter(frames, cut, clips.frames, Path(path).stem)
    except ValueError as err:  # a JPEG simplejpeg refuses
        return [], frames, f"{err.__class__.__name__}: {err}"
    timings["detect_s"] = time.perf_counter() - start
    if not rows:
        return [], frames, f"no whole clip of {clips.frames} frames in the video"
    tubes = [r for r in rows if r["status"] == "done"]
    start = time.perf_counter()
    if tubes:
        for row, p in zip(tubes, scorer(np.stack([r["input"] for r in tubes]))):
            row["p_fake"] = float(p)
    timings["score_s"] = time.perf_counter() - start
    return rows, frames, None


def check_face_clip_video(path: Path, scorer: Scorer, cutter: TubeCutter, settings: FrameSampling, clips: Clips,
                          threshold: dict, aggregate: str) -> Verdict:
    """A face-clips model's verdict: an Item per tube (at its clip's start; its box on the sampled frame the clip
    starts at), the faceless clips kept in `unscored`; the video's P(fake) the run's rule over the tubes."""
    verdict = Verdict(Path(path), "face-clips", threshold, aggregate)
    rows, frames, verdict.error = score_tubes(path, scorer, cutter, settings, clips, verdict.timings)
    verdict.jpegs = [f.jpeg for f in frames]
    verdict.size = (frames[0].width, frames[0].height) if frames else None
    verdict.seconds = sorted({r["start"] for r in rows})
    verdict.items = [Item(r["frame"], r["start"], r["p_fake"], r["input"][len(r["input"]) // 2], r["track"], r["face"],
                          r["box"], clip=r["input"], status=r["clip_status"]) for r in rows if r["status"] == "done"]
    verdict.unscored = [{k: r.get(k) for k in ("clip", "start", "clip_status", "status", "warning")}
                        for r in rows if r["status"] != "done"]
    if rows and not verdict.items:
        log.warning("%s: no face in the first frame of any of its %d clips", path, len(rows))
    return verdict


def tube_rows(path: Path, video: str, timings: dict, scorer: Scorer, cutter: TubeCutter, settings: FrameSampling,
              clips: Clips) -> tuple[list[dict], str | None]:
    """One video's predict rows of a face-clips model (train.score.videos.predict_clip_videos): one per tube of its
    whole clips (index: the clip, second: its start, face, track, box, key as the face-clip shards name it), one
    with a note for a clip without a face (no p_fake); and why there is nothing, if so."""
    tubes, _, error = score_tubes(path, scorer, cutter, settings, clips, timings)
    rows = []
    for r in tubes:
        row = {"index": r["clip"], "second": r["start"]}
        if r["status"] != "done":
            rows.append({**row, "note": f"{NO_FACE_CLIP}: {r['warning']}"})
            continue
        rows.append({**row, "key": tube_key(f"{video}_c{r['clip']:04d}", r["face"]), "p_fake": r["p_fake"],
                     "face": r["face"], "track": r["track"], **dict(zip(("x0", "y0", "x1", "y1"), r["box"])),
                     "note": None})
    return rows, error
