"""Predict with a faces model holds no video's decoded frames all at once (issue 21 item 5), with the same
predictions as before: the old path decoded every frame, ran faces_of_video on the list and cropped from it."""
from __future__ import annotations

import weakref

import numpy as np
import pytest

from helpers.models import FACES, untrained_checkpoint
from helpers.paths import SHARED_DATA
from pipeline.spec import FaceCrop, FrameSampling
from pipeline.stages.faces import faces_of_video
from pipeline.stages.faces.crop import encode_jpeg
from pipeline.stages.faces.detect import DETECT_BATCH
from pipeline.ffmpeg.extract import extract
from train.data.decode import decode_resized
from train.score import face_crops as score_faces
from train.score.face_crops import FaceCropper, decode_frame
from train.score.videos import decode_video, load_scorer, predict_videos

CLIP = SHARED_DATA / "dfdc_sample" / "dfdc_train_part_0" / "lynaeydofd.mp4"
pytestmark = pytest.mark.skipif(not CLIP.is_file(), reason="../shared/data not present")
SETTINGS = FrameSampling(fps=2.0, size=(640, 360), quality=2, skip_frames="none")  # 20 frames: more than DETECT_BATCH + 1
SIZE = (64, 64)


@pytest.fixture(scope="module")
def cropper() -> FaceCropper:
    return FaceCropper(FaceCrop.from_dict(FACES), SIZE, "cpu")


def _old_path(cropper: FaceCropper) -> tuple[list[dict], np.ndarray]:
    """What predict did before: all frames decoded, faces_of_video over them, crops JPEG round-tripped."""
    _, frames = extract(str(CLIP), SETTINGS.fps, SETTINGS.size, SETTINGS.quality, SETTINGS.timeout,
                        skip_frames=SETTINGS.skip_frames)
    images = [decode_frame(f.jpeg) for f in frames]
    settings = FaceCrop.from_dict(FACES)
    rows = faces_of_video(images, [f.second for f in frames], cropper.detector, settings)
    crops = np.stack([decode_resized(encode_jpeg(r.pop("crop"), cropper.quality), SIZE) for r in rows])
    return rows, crops


def test_same_faces_and_predictions_as_decoding_every_frame(cropper, tmp_path):
    old_rows, old_crops = _old_path(cropper)
    item = decode_video(CLIP, SETTINGS, None)
    rows, crops = cropper(item.jpegs, item.seconds)
    assert len(rows) >= len(item.jpegs) - 2 and rows == old_rows
    assert np.array_equal(crops, old_crops)
    scorer, _ = load_scorer(untrained_checkpoint(tmp_path / "faces.pt", image_size=64), "cpu", 8)
    frames, _ = predict_videos(scorer, [CLIP], SETTINGS, SIZE, workers=0, progress=False, cropper=cropper)
    assert frames["p_fake"].tolist() == scorer(old_crops).tolist()
    assert frames[["x0", "y0", "x1", "y1"]].to_numpy().tolist() == [[r[k] for k in ("x0", "y0", "x1", "y1")]
                                                                    for r in old_rows]


def test_decoded_frames_are_not_all_held(cropper, monkeypatch):
    """decode_video keeps the JPEGs only; the cropper never has more than DETECT_BATCH decoded frames alive."""
    item = decode_video(CLIP, SETTINGS, None)
    assert item.images is None and len(item.jpegs) > DETECT_BATCH + 1
    alive: list[weakref.ref] = []
    most = 0

    def counting(jpeg: bytes) -> np.ndarray:
        nonlocal most
        image = decode_frame(jpeg)
        alive.append(weakref.ref(image))
        most = max(most, sum(r() is not None for r in alive))
        return image

    monkeypatch.setattr(score_faces, "decode_frame", counting)
    rows, _ = cropper(item.jpegs, item.seconds)
    assert rows and len(alive) == len(item.jpegs) + len({r["frame"] for r in rows})  # detect, then crop decodes
    assert most <= DETECT_BATCH
