"""FaceSettings: everything that decides which faces are found and how they are cropped (recorded in
dataset.json and in faces checkpoints, so that prediction crops exactly as training did)."""
from __future__ import annotations

import dataclasses

from dfd.errors import UsageProblem


class FaceSettingsError(UsageProblem, ValueError):
    """A face setting out of range."""


@dataclasses.dataclass(frozen=True)
class FaceSettings:
    detect_size: int = 640      # long side of the copy MTCNN runs on (boxes are mapped back to frame pixels)
    min_score: float = 0.7      # final MTCNN probability a face needs (the cascade itself runs at 0.5/0.6/0.6)
    min_size: int = 40          # faces whose box is shorter than this (frame pixels, short side) are dropped
    margin: float = 0.3         # the square crop grows by this share of the box on each side
    face_size: int = 320        # crops are resized to face_size x face_size
    max_faces: int = 4          # at most this many faces per frame (the largest)

    def __post_init__(self):
        if self.detect_size < 64:
            raise FaceSettingsError(f"detect size must be at least 64, got {self.detect_size}")
        if not 0 <= self.min_score <= 1:
            raise FaceSettingsError(f"min score must be in [0, 1], got {self.min_score}")
        if self.min_size < 0 or self.face_size < 16 or self.max_faces < 1 or not 0 <= self.margin <= 2:
            raise FaceSettingsError(f"bad face settings: {self}")

    def asdict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FaceSettings":
        """From asdict() output (unknown keys, e.g. from a newer version, are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
