"""What a model saw, as one typed spec: frame sampling, face crop, sound and model input, and the one `migrate()`.

Each part is a frozen dataclass that validates itself (SpecError names the field and the allowed values), written
once by the stage that applies it and carried unchanged by dataset.json, TrainConfig, checkpoints and model
packages through `to_dict()` / `from_dict()`. Every shape written before this module existed (dataset.json's flat
frame keys, a checkpoint's `extra.pipeline`, a run's `pipeline.json`, a part config without its newer keys) is read
through `migrate()`: nothing else knows old layouts.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from dfd.errors import UsageProblem

SPEC_VERSION = 1  # written as "spec_version" beside each part; a dict without it is version 0 (before this module)
SKIP_FRAMES = ("noref", "none")  # ffmpeg -skip_frame noref drops frames nothing refers to; "none" decodes them all
DECODE_ALL = "none"              # the skip_frames of a decode that skips nothing
DETECTORS = ("mtcnn",)           # face detectors the faces stage runs
# square: around the box's long side, grown by `margin` of it on each side, black where it leaves the frame;
# per_side: the box grown by `margin` of its width (height) on the left and right (top and bottom), clipped to the
# frame (the DFDC winner: 1/3; SBI: 1/8); scale: a square of the long side x (1 + 2 margin) around the box's centre,
# clipped to the frame (DeepfakeBench's 1.3: margin 0.15)
FACE_BOXES = ("square", "per_side", "scale")
FACE_RESIZES = ("stretch", "isotropic_pad")  # to face_size x face_size | long side to face_size, zero-pad centred
ALIGNMENTS = ("none",)           # crops are not rotated to landmarks
COLOURS = ("rgb", "bgr")
INTERPOLATIONS = ("area", "linear", "cubic")  # area shrinks and linear grows in "area"; cv2's names otherwise
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_SIDE = 16384     # no frame box side above this
MAX_INPUT = 4096     # no model input or face crop side above this (a package asking for more is refused)

# What a part written before a setting existed meant (version 0): frames decoded whole, no sound, no split files.
_BEFORE = {"frames": {"skip_frames": DECODE_ALL, "timeout": 600.0},
           "part": {"skip_frames": DECODE_ALL, "audio": False, "split_files": []}}


class SpecError(UsageProblem, ValueError):
    """A spec value that cannot work; the message names where it was read, the field and what is allowed."""


def _number(where: str, name: str, value: Any, kind: type, low: float, high: float):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)) \
            or not low <= value <= high:
        article = "an integer" if kind is int else "a number"
        raise SpecError(f"{where}{name} is {value!r}, not {article} in [{low:g}, {high:g}]")
    return kind(value)


def _choice(where: str, name: str, value: Any, allowed: tuple) -> Any:
    if value not in allowed:
        raise SpecError(f"{where}{name} is {value!r}, not one of {', '.join(map(str, allowed))}")
    return value


def _pair(where: str, name: str, value: Any, low: int, high: int) -> tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise SpecError(f"{where}{name} is {value!r}, not a pair of integers")
    return (_number(where, f"{name}[0]", value[0], int, low, high), _number(where, f"{name}[1]", value[1], int, low, high))


def _triple(where: str, name: str, value: Any, low: float, high: float) -> tuple[float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise SpecError(f"{where}{name} is {value!r}, not three numbers")
    return tuple(_number(where, f"{name}[{i}]", v, float, low, high) for i, v in enumerate(value))


class _Spec:
    """to_dict / from_dict shared by the parts: JSON-ready values, unknown keys (a newer version's) ignored."""

    KIND = ""

    def to_dict(self) -> dict:
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
        return {**out, "spec_version": SPEC_VERSION}

    @classmethod
    def from_dict(cls, data: Mapping, where: str = ""):
        """Any version's dict (migrated first); `where` (a file name) leads every error message."""
        current = migrate(cls.KIND, data, where)
        names = {f.name for f in dataclasses.fields(cls)}
        prefix = f"{where}: {cls.KIND}." if where else f"{cls.KIND}."
        return cls(**{k: v for k, v in current.items() if k in names}, where=prefix)


@dataclass(frozen=True)
class FrameSampling(_Spec):
    """Which frames of a video are kept and how they are stored: pipeline.frames applies it."""

    KIND = "frames"
    fps: float = 1.0
    size: tuple[int, int] = (1280, 720)  # the landscape box frames are fitted into (portrait turns it), never upscaled
    quality: int = 2                     # ffmpeg's mjpeg -q:v (2 is about libjpeg quality 90)
    skip_frames: str = "noref"
    timeout: float = 600.0               # seconds one video's ffmpeg may run
    where: dataclasses.InitVar[str] = "frames."

    def __post_init__(self, where: str) -> None:
        set_ = object.__setattr__
        set_(self, "fps", _number(where, "fps", self.fps, float, 0.001, 60))
        set_(self, "size", _pair(where, "size", self.size, 16, MAX_SIDE))
        set_(self, "quality", _number(where, "quality", self.quality, int, 1, 31))
        _choice(where, "skip_frames", self.skip_frames, SKIP_FRAMES)
        set_(self, "timeout", _number(where, "timeout", self.timeout, float, 1, 86400))


@dataclass(frozen=True)
class FaceCrop(_Spec):
    """Which faces are found and how each is cut out: the faces stage (and prediction from files) applies it."""

    KIND = "faces"
    detector: str = "mtcnn"
    # the cascade's three stages (P-, R-, O-net), below facenet's default (0.6, 0.7, 0.7): on the dark DFDC clip
    # abofeumbvv the default misses the face in half the frames; min_score filters what the lower stages let through
    thresholds: tuple[float, float, float] = (0.5, 0.6, 0.6)
    detect_size: int = 640      # long side of the copy the detector runs on (boxes are mapped back to frame pixels)
    min_score: float = 0.7      # final probability a face needs
    min_size: int = 40          # faces whose box is shorter than this (frame pixels, short side) are dropped
    box: str = "square"
    margin: float = 0.3         # the crop grows by this share of the box on each side
    alignment: str = "none"
    face_size: int = 320        # crops are resized to face_size x face_size
    max_faces: int = 4          # at most this many faces per frame (the largest)
    jpeg_quality: int = 90      # crops are stored (and, at prediction, re-encoded) as JPEGs of this quality
    resize: str = "stretch"     # FACE_RESIZES (written only when not the default, so older dicts stay as they were)
    where: dataclasses.InitVar[str] = "faces."

    def to_dict(self) -> dict:
        out = super().to_dict()
        if out.get("resize") == "stretch":
            del out["resize"]
        return out

    def __post_init__(self, where: str) -> None:
        set_ = object.__setattr__
        _choice(where, "detector", self.detector, DETECTORS)
        set_(self, "thresholds", _triple(where, "thresholds", self.thresholds, 0, 1))
        set_(self, "detect_size", _number(where, "detect_size", self.detect_size, int, 64, MAX_SIDE))
        set_(self, "min_score", _number(where, "min_score", self.min_score, float, 0, 1))
        set_(self, "min_size", _number(where, "min_size", self.min_size, int, 0, MAX_SIDE))
        _choice(where, "box", self.box, FACE_BOXES)
        set_(self, "margin", _number(where, "margin", self.margin, float, 0, 2))
        _choice(where, "alignment", self.alignment, ALIGNMENTS)
        set_(self, "face_size", _number(where, "face_size", self.face_size, int, 16, MAX_INPUT))
        set_(self, "max_faces", _number(where, "max_faces", self.max_faces, int, 1, 1000))
        set_(self, "jpeg_quality", _number(where, "jpeg_quality", self.jpeg_quality, int, 1, 100))
        _choice(where, "resize", self.resize, FACE_RESIZES)


@dataclass(frozen=True)
class Sound(_Spec):
    """The sound as kept: mono 16-bit PCM at one rate, decoded in the frames' ffmpeg pass."""

    KIND = "sound"
    keep: bool = True
    rate: int = 16000
    where: dataclasses.InitVar[str] = "sound."

    def __post_init__(self, where: str) -> None:
        if not isinstance(self.keep, bool):
            raise SpecError(f"{where}keep is {self.keep!r}, not true or false")
        object.__setattr__(self, "rate", _number(where, "rate", self.rate, int, 4000, 192000))


MAX_CLIP_FRAMES = 512     # no clip longer than this many frames
MAX_CLIPS = 100000        # no more clips than this per video


@dataclass(frozen=True)
class Clips(_Spec):
    """Runs of consecutive frames at the video's own rate, kept in the frames' decode pass (pipeline.frames): a clip
    of `frames` frames starts at a sampled second's frame once the clip before it has ended (clips never overlap),
    at most `per_video` clips spread over the video (None: one at every sampled second the video allows), fitted in
    `size` and stored at JPEG `quality` (the frames' when the run does not say)."""

    KIND = "clips"
    frames: int = 16
    per_video: int | None = None
    size: tuple[int, int] = (1280, 720)
    quality: int = 2
    where: dataclasses.InitVar[str] = "clips."

    def __post_init__(self, where: str) -> None:
        set_ = object.__setattr__
        set_(self, "frames", _number(where, "frames", self.frames, int, 1, MAX_CLIP_FRAMES))
        if self.per_video is not None:
            set_(self, "per_video", _number(where, "per_video", self.per_video, int, 1, MAX_CLIPS))
        set_(self, "size", _pair(where, "size", self.size, 16, MAX_SIDE))
        set_(self, "quality", _number(where, "quality", self.quality, int, 1, 31))


@dataclass(frozen=True)
class ModelInput(_Spec):
    """What the network is given: an image of `size` (height, width), its colour order, how it was resized, and the
    normalisation (pixel / scale, minus mean, over std)."""

    KIND = "input"
    size: tuple[int, int] = (224, 224)
    colour: str = "rgb"
    interpolation: str = "area"     # area: shrink by area (after JPEG DCT-domain scaling), grow bilinearly
    scale: float = 255.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    where: dataclasses.InitVar[str] = "input."

    def __post_init__(self, where: str) -> None:
        set_ = object.__setattr__
        set_(self, "size", _pair(where, "size", self.size, 8, MAX_INPUT))
        _choice(where, "colour", self.colour, COLOURS)
        _choice(where, "interpolation", self.interpolation, INTERPOLATIONS)
        set_(self, "scale", _number(where, "scale", self.scale, float, 1, 65535))
        set_(self, "mean", _triple(where, "mean", self.mean, -10, 10))
        set_(self, "std", _triple(where, "std", self.std, 1e-6, 10))


def migrate(kind: str, data: Mapping | None, where: str = "") -> dict:
    """Any version of a spec part (or a part config) -> the current version's dict. Version 0 is every shape
    written before this module: dataset.json's flat frame keys, TrainConfig.frames, a run's pipeline.json
    "config", FaceSettings.asdict() (with the stage's extra keys), a part config without its newer keys, a
    training config whose frame and face settings were `extra.pipeline` / `extra.faces`."""
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise SpecError(f"{where + ': ' if where else ''}{kind} is {type(data).__name__}, not a table of settings")
    version = data.get("spec_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version > SPEC_VERSION:
        raise SpecError(f"{where + ': ' if where else ''}{kind}.spec_version {version!r} is newer than this toolkit "
                        f"reads ({SPEC_VERSION}); upgrade the toolkit")
    current = dict(data)
    if version == 0 and kind == "training":  # the frame and face settings were extra.pipeline / extra.faces
        extra = current.pop("extra", None) or {}
        current.setdefault("frames", extra.get("pipeline") or None)
        current.setdefault("faces", extra.get("faces") or current.pop("face_settings", None))
    if version == 0:
        current = {**_BEFORE.get(kind, {}), **current}
        if kind == "frames" and current.get("timeout") is None:
            current["timeout"] = _BEFORE["frames"]["timeout"]
    current.pop("spec_version", None)
    return current


def frame_keys(data: Mapping) -> dict:
    """The frame-sampling keys of a mixed settings table (dataset.json's "config", a part config)."""
    names = {f.name for f in dataclasses.fields(FrameSampling)}
    return {k: v for k, v in data.items() if k in names or k == "spec_version"}
