"""Face tubes: a clip's face crops, the same face across its T consecutive frames, cut with ONE box per tube.

A clip starts at a sampled second (pipeline.stages.clips), whose frame the faces stage has already detected and
tracked; each face of that frame gives one tube: its box (scaled to the clip's frame size) crops every frame of the
clip by the stage's crop rule. No detector runs on the clip frames: one steady box per tube, because frame-to-frame
crop jitter would be learned as a fake, and because a face moves little in T frames (measured in README 4c: on a
real DFDC clip, 8 frames at 30 fps, per-frame MTCNN boxes stay within a few pixels of the first; detecting every
frame costs T times the detector for boxes that are then thrown away to keep the crop steady). The box is the
sampled frame's, grown by the crop margin, so a face drifting a little inside a tube stays inside its crop.

A clip gives no tube, and a row saying why (status): no_face (its sampled frame has no face), no_frame (no sampled
frame at the clip's start, or it does not decode), no_clip (the decode gave the video no clip frames), unreadable
(the clip's frames could not be read back). Light imports: numpy and the crop only.
"""
from __future__ import annotations

import json
import logging
import tarfile

from pipeline.core.shards import FACE_CLIPS_DIR, member
from pipeline.dataset import MemberReader, clip_jpegs
from pipeline.spec import FaceCrop
from pipeline.stages.faces.crop import crop_face, decode_jpeg, encode_jpeg

log = logging.getLogger(__name__)

FACE_CLIPS = FACE_CLIPS_DIR  # the face-clip shards' folder under SHARDS/
MATCH = 0.02  # s: a clip belongs to the sampled frame whose second is this close to the clip's start
STATUSES = ("done", "no_face", "no_frame", "no_clip", "unreadable")


def tube_key(clip_key: str, face: int) -> str:
    return f"{clip_key}_f{face:02d}"


def sampled_frame(seconds: list[float], start: float | None) -> int | None:
    """The index of the sampled frame a clip starts at (None: none within MATCH seconds)."""
    if start is None:
        return None
    best = min(range(len(seconds)), key=lambda i: abs(seconds[i] - start), default=None)
    return best if best is not None and abs(seconds[best] - start) <= MATCH else None


def scaled_box(row: dict, frame: dict, clip: dict) -> tuple[float, float, float, float]:
    """A face row's box in the clip frames' pixels (the clip may be kept at another size than the frame)."""
    sx = (clip.get("width") or frame["width"]) / frame["width"]
    sy = (clip.get("height") or frame["height"]) / frame["height"]
    return row["x0"] * sx, row["y0"] * sy, row["x1"] * sx, row["y1"] * sy


def _base(clip: dict, split: str, label: str) -> dict:
    return {"video_id": clip["video_id"], "clip": clip["clip"], "clip_key": clip["key"], "split": split,
            "label": label, "start": clip.get("start"), "times": clip.get("times"),
            "clip_status": clip["status"], "n_frames": 0}


def clip_faces(clip: dict, frames: list[dict], faces: list[dict], broken: set) -> tuple[int | None, list[dict], dict]:
    """The faces a clip's tubes follow: (the index of the sampled frame the clip starts at, that frame's face rows,
    what the clip's rows carry: frame_key, and where there is no face, status and warning saying why: no_frame,
    no_face). `faces`: the video's face rows (frame index, face, track, box), tracked over all its sampled frames.
    The faces stage and prediction (train.score.face_tubes) both take it."""
    t = sampled_frame([f["second"] for f in frames], clip.get("start"))
    if t is None or t in broken:
        why = "does not decode" if t is not None else f"is not among the sampled frames (start {clip.get('start')})"
        return t, [], {"status": "no_frame", "warning": f"the clip's first frame {why}"}
    here = [r for r in faces if r["frame"] == t]
    if not here:
        return t, [], {"frame_key": frames[t]["key"], "status": "no_face",
                       "warning": f"no face in frame {frames[t]['key']}"}
    return t, here, {"frame_key": frames[t]["key"]}


def tube_jpegs(images: list, box, fs: FaceCrop) -> list[bytes]:
    """A tube's frames as its face-clip shard holds them: every frame of the clip (RGB uint8) cut with the one box by
    the stage's crop rule, JPEG-encoded at the stage's quality."""
    return [encode_jpeg(crop_face(image, box, fs.margin, fs.face_size, fs.box, fs.resize), fs.jpeg_quality)
            for image in images]


def clip_tubes(clip: dict, frames: list[dict], faces: list[dict], broken: set, split: str, label: str,
               reader: MemberReader, fs: FaceCrop) -> tuple[list[dict], list[bytes]]:
    """One clip's face_clips rows and, for each tube, its tar members (KEY.000.jpg ... KEY.json); a clip without a
    tube gives one row whose status says why. `faces`: the video's face rows (frame index, face, track, box)."""
    base = _base(clip, split, label)
    if not clip.get("shard") or not clip.get("n_frames"):
        return [{**base, "status": "no_clip", "warning": clip.get("warning") or "the clip has no frames"}], []
    t, here, found = clip_faces(clip, frames, faces, broken)
    base.update(found)
    if not here:
        return [base], []
    try:
        images = [decode_jpeg(j) for j in clip_jpegs(reader, clip["shard"], int(clip["offset"]), clip["key"],
                                                      int(clip["n_frames"]))]
    except (OSError, EOFError, ValueError, tarfile.TarError) as exc:
        return [{**base, "status": "unreadable", "warning": f"{clip['shard']}: {exc}"[:300]}], []
    rows, members = [], []
    for r in here:
        box = scaled_box(r, frames[t], clip)
        key = tube_key(clip["key"], r["face"])
        row = {**base, "face": r["face"], "track": r["track"], "x0": box[0], "y0": box[1], "x1": box[2],
               "y1": box[3], "key": key, "n_frames": len(images), "status": "done"}
        data = b"".join(member(f"{key}.{j:03d}.jpg", jpeg) for j, jpeg in enumerate(tube_jpegs(images, box, fs)))
        meta = {**{k: row.get(k) for k in ("key", "video_id", "clip", "face", "track", "split", "label", "times",
                                           "x0", "y0", "x1", "y1")}, "picture_label": clip.get("picture_label"),
                "status": clip["status"]}  # the clip's, as a clip sample's (train.data.clip_streams reads "done")
        rows.append(row)
        members.append(data + member(f"{key}.json", json.dumps(meta).encode()))
    return rows, members
