"""Issue 29 item 1: one typed spec of what a model saw, its round trip, its bounds, and the one migrate()."""
from __future__ import annotations

import dataclasses
import json

import pytest

from pipeline.spec import SPEC_VERSION, FaceCrop, FrameSampling, ModelInput, Sound, SpecError, migrate

PARTS = (FrameSampling(fps=4, size=(256, 144), quality=3, skip_frames="none"),
         FaceCrop(margin=0.25, face_size=96, min_size=30), Sound(rate=22050), ModelInput(size=(64, 96), colour="bgr"))


@pytest.mark.parametrize("part", PARTS, ids=lambda p: type(p).__name__)
def test_round_trip_through_json_is_exact(part):
    data = json.loads(json.dumps(part.to_dict()))
    assert data["spec_version"] == SPEC_VERSION
    assert type(part).from_dict(data) == part


def test_version_0_shapes_mean_what_they_meant():
    # dataset.json's flat config keys before skip_frames existed: every frame was decoded
    old = {"fps": 1.0, "size": [1280, 720], "quality": 2, "timeout": None}
    assert FrameSampling.from_dict(old) == FrameSampling(skip_frames="none")
    # FaceSettings.asdict() with the stage's own extra keys: MTCNN at the cascade thresholds, square crops
    faces = {"detect_size": 640, "min_score": 0.7, "min_size": 40, "margin": 0.3, "face_size": 320, "max_faces": 4,
             "diff_threshold": 0.1, "jpeg_quality": 90}
    assert FaceCrop.from_dict(faces) == FaceCrop()
    # a part config written before sound and split files were kept
    assert migrate("part", {"fps": 1.0}) == {"fps": 1.0, "skip_frames": "none", "audio": False, "split_files": []}
    # a current dict is taken as it is: its skip_frames is not replaced by the old meaning
    assert FrameSampling.from_dict(FrameSampling().to_dict()).skip_frames == "noref"


@pytest.mark.parametrize("kind, data, words", [
    (FrameSampling, {"fps": 1, "size": [100000, 720], "quality": 2}, "frames.size[0] is 100000"),
    (FrameSampling, {"fps": "1", "size": [1280, 720], "quality": 2}, "frames.fps is '1'"),
    (FrameSampling, {"fps": 1, "size": [1280, 720], "quality": 2, "skip_frames": "all"}, "noref, none"),
    (FaceCrop, {"margin": -0.2}, "faces.margin is -0.2"),
    (FaceCrop, {"face_size": 100000}, "faces.face_size is 100000"),
    (FaceCrop, {"detector": "dlib"}, "not one of mtcnn"),
    (ModelInput, {"size": [224, 100000]}, "input.size[1] is 100000"),
    (ModelInput, {"std": [0.2, 0.0, 0.2]}, "input.std[1] is 0.0"),
    (Sound, {"rate": 10}, "sound.rate is 10"),
    (FrameSampling, {"spec_version": SPEC_VERSION + 1}, "newer than this toolkit reads"),
    (FaceCrop, ["not", "a", "table"], "not a table of settings"),
])
def test_bad_values_are_refused_naming_the_file_and_the_field(kind, data, words):
    with pytest.raises(SpecError, match="package/config.json") as err:
        kind.from_dict(data, "package/config.json")
    assert words in str(err.value)


def test_parts_are_frozen_and_replace_validates():
    part = FrameSampling()
    with pytest.raises(dataclasses.FrozenInstanceError):
        part.fps = 2  # type: ignore[misc]
    assert dataclasses.replace(part, fps=2).fps == 2.0
    with pytest.raises(SpecError, match="fps"):
        dataclasses.replace(part, fps=0)
