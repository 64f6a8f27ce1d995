"""How this toolkit runs a zoo entry, and where that differs from its authors' preprocessing.

The toolkit has one face detector (MTCNN, pipeline.stages.faces) and no landmark alignment, and decodes frames with
the pipeline's frame code. `frame_sampling_of` and `face_crop_of` are what `dfd check` and `predict` apply to a zoo
package (the authors' frames per clip, their box rule and crop size, on our detector); `differences` says, in
sentences for the model card and the check page, what is not the authors': another detector or other settings of the
same one, no 5-point alignment, the frame resolution, the frame sampling, the crops' re-encoding.
"""
from __future__ import annotations

from pipeline.spec import FaceCrop, FrameSampling

CLIP_SECONDS = 10.0       # the authors' frames per video are spread over a DFDC clip's 10 s: fps = frames / 10
FACE_RULE_FACES = {"largest": 1, "max": 4, "each": 4}  # faces a frame gives (max: each scored, the max kept)
CROP_QUALITY = 100        # crops re-encoded at this JPEG quality (the authors did not re-encode)
DETECTOR_NAMES = {"retinaface": "RetinaFace", "scrfd": "SCRFD", "dlib": "dlib", "mtcnn": "MTCNN"}
USED = "MTCNN"            # the toolkit's detector


def frame_sampling_of(preprocessing: dict) -> FrameSampling:
    """The authors' frames per video as a rate over a 10-s clip; the pipeline's frame box and JPEG quality."""
    return FrameSampling(fps=round(int(preprocessing["frames_per_video"]) / CLIP_SECONDS, 3))


def face_crop_of(config: dict, where: str = "") -> FaceCrop:
    """The faces stage's crop for this package: MTCNN (the toolkit's detector) with the authors' box rule (per_side
    with their margin and resize; an aligned crop at 1.3 becomes the scale rule at 1.3, without the alignment),
    their crop size, the faces a frame gives by their face rule; crops re-encoded at JPEG quality 100. `where`: the
    package's config.json, named by a size or margin the spec refuses."""
    p = config["zoo"]["preprocessing"]
    if p["box"] == "per_side":
        box, margin, resize = "per_side", float(p["margin"]), p["resize"]
    else:
        box, margin, resize = "scale", round(max(0.0, (float(p["margin"]) - 1) / 2), 6), "stretch"
    return FaceCrop(box=box, margin=min(margin, 2.0), resize=resize if resize == "isotropic_pad" else "stretch",
                    face_size=int(p["face_size"]),
                    max_faces=FACE_RULE_FACES.get(p.get("face_rule", "largest"), 1), jpeg_quality=CROP_QUALITY,
                    where=f"{where}: zoo.preprocessing: " if where else "faces.")


def authors_detector(preprocessing: dict) -> str:
    return DETECTOR_NAMES.get(preprocessing["detector"], preprocessing["detector"])


def _detector(p: dict, crop: FaceCrop) -> str:
    ours = (f"{USED} on the frame fitted in {crop.detect_size} px, thresholds "
            f"{'/'.join(f'{t:g}' for t in crop.thresholds)}, final score at least {crop.min_score:g}, faces under "
            f"{crop.min_size} px dropped")
    theirs = authors_detector(p)
    if theirs == USED:
        return f"Same face detector, other settings: here {ours}; the authors: {p['detector_settings']}."
    return (f"Different face detector: the authors used {theirs} (their settings: {p['detector_settings']}); here "
            f"{ours}. The faces "
            f"found and their boxes, and so the crops, can differ from the authors'.")


def differences(config: dict) -> list[str]:
    """Sentences saying where running this package here differs from its authors' preprocessing."""
    p = config["zoo"]["preprocessing"]
    crop, frames = face_crop_of(config), frame_sampling_of(p)
    out = [_detector(p, crop)]
    if p.get("alignment", "none") == "five_point":
        out.append(f"No 5-point alignment: the authors warp each face by its 5 landmarks (scale {p['margin']:g}) "
                   f"before cropping; here the crop is an unaligned square of {1 + 2 * crop.margin:g} x the "
                   f"detector box's long side, stretched to {crop.face_size} px.")
    out.append(f"Frames: decoded fitted in {frames.size[0]}x{frames.size[1]} (ffmpeg JPEG -q:v {frames.quality}) and "
               f"cropped from there; the authors crop from the frame at its own resolution.")
    out.append(f"Sampling: {frames.fps:g} frames per second ({p['frames_per_video']} over a {CLIP_SECONDS:g}-s clip); "
               f"the authors take {p['frames_per_video']} frames spread over the whole video, whatever its length.")
    out.append(f"Crops are re-encoded as JPEG at quality {CROP_QUALITY} before scoring; the authors did not re-encode.")
    return out
