"""Faces stage, pure parts: settings, crop geometry at the borders, track linking and gap filling, the diff."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.spec import FaceCrop, SpecError
from pipeline.stages.faces import crop_face
from pipeline.stages.faces.api import detections_to_rows
from pipeline.stages.faces.crop import crop_window, decode_jpeg, encode_jpeg
from pipeline.stages.faces.detect import Face
from pipeline.stages.faces.diff import align, box_diff
from pipeline.stages.faces.track import gaps, iou, link


def test_settings_round_trip_and_validation():
    s = FaceCrop(detect_size=512, min_score=0.8, min_size=20, margin=0.25, face_size=224, max_faces=2)
    assert FaceCrop.from_dict(s.to_dict()) == s
    assert FaceCrop.from_dict({**s.to_dict(), "from_the_future": 1}) == s
    with pytest.raises(SpecError):
        FaceCrop(min_score=1.5)
    with pytest.raises(SpecError):
        FaceCrop(detect_size=10)


def _marked(h=200, w=300):
    """An image whose pixel (y, x) encodes its coordinates, so a crop shows where it came from."""
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([yy % 256, xx % 256, np.full_like(xx, 200)], axis=-1).astype(np.uint8)


def test_crop_inside_is_the_grown_square():
    img = _marked()
    box = (100, 50, 140, 90)  # 40x40, margin 0.5 -> 80x80 square at (80, 30)
    assert crop_window(box, 0.5) == (80, 30, 80)
    crop = crop_face(img, box, 0.5, 80)
    assert crop.shape == (80, 80, 3)
    assert np.array_equal(crop, img[30:110, 80:160])


def test_crop_at_border_pads_and_keeps_face_centred():
    img = _marked()
    box = (0, 0, 40, 40)  # corner face: the square reaches outside on the left and top
    crop = crop_face(img, box, 0.5, 80)
    x, y, side = crop_window(box, 0.5)
    assert (x, y, side) == (-20, -20, 80)
    assert crop[:20].max() == 0 and crop[:, :20].max() == 0  # padded, not shifted
    assert np.array_equal(crop[20:, 20:], img[0:60, 0:60])
    # the box centre lands on the crop centre
    assert np.array_equal(crop[40, 40], img[20, 20])
    # right/bottom border, and a box wider than tall gives a square of the long side
    crop = crop_face(img, (250, 170, 300, 200), 0.0, 50)
    assert crop.shape == (50, 50, 3)
    assert crop[-10:].max() == 0  # rows below the image
    assert np.array_equal(crop[:40], img[160:200, 250:300])


def test_crop_resizes_and_jpeg_round_trip():
    img = _marked(400, 400)
    crop = crop_face(img, (100, 100, 300, 300), 0.3, 64)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    back = decode_jpeg(encode_jpeg(crop))
    assert back.shape == crop.shape
    with pytest.raises(ValueError):
        decode_jpeg(b"\0" * 100)


def test_iou():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1
    assert iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)


def test_link_two_people_crossing_order_and_a_newcomer():
    a = lambda x: (x, 10, x + 20, 30)  # noqa: E731
    frames = [[a(0), a(100)], [a(102), a(3)], [a(6)], [a(9), a(104), a(200)]]
    ids = link(frames)
    assert ids == [[0, 1], [1, 0], [0], [0, 1, 2]]
    # a fast move with no overlap still links by centre distance (within 0.6 box sizes)
    assert link([[a(0)], [a(10)]]) == [[0], [0]]
    assert link([[a(0)], [a(50)]]) == [[0], [1]]


def test_gaps_filled_inside_tracks_only():
    a = lambda x: (x, 10, x + 20, 30)  # noqa: E731
    frames = [[a(0)], [], [a(10)], [], [], [a(16)], [], [], [], [a(30)]]
    ids = link(frames)
    assert [r for r in ids if r] == [[0], [0], [0], [1]]  # a 3-frame gap ends the track
    filled = gaps(frames, ids)
    assert [(t, k) for t, k, _ in filled] == [(1, 0), (3, 0), (4, 0)]
    assert filled[0][2] == pytest.approx(a(5))
    assert filled[1][2] == pytest.approx(a(12))
    assert filled[2][2] == pytest.approx(a(14))


def test_rows_from_detections_order_and_interpolated_score():
    small, big = Face((0, 0, 10, 10), 0.9, np.zeros((5, 2))), Face((100, 100, 150, 150), 0.99, np.ones((5, 2)))
    dets = [[small, big], [Face((101, 101, 151, 151), 0.98, None)], [small, Face((102, 102, 152, 152), 0.97, None)]]
    rows = detections_to_rows(dets, [0.0, 1.0, 2.0], FaceCrop(), ["v_0000", "v_0001", "v_0002"], "v")
    first = [r for r in rows if r["frame"] == 0]
    assert [r["face"] for r in first] == [0, 1] and first[0]["x1"] == 150  # face 0 is the largest
    assert first[0]["landmarks"] == [1.0] * 10 and first[0]["crop_key"] == "v_0000_0"
    middle = [r for r in rows if r["frame"] == 1]
    assert len(middle) == 2
    filled = [r for r in middle if r["score"] is None]
    assert len(filled) == 1 and filled[0]["landmarks"] is None and filled[0]["x1"] == 10
    assert filled[0]["track"] == first[1]["track"]


def test_diff_same_box_noise_vs_change_and_alignment():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:120, 0:160]
    base = (np.stack([np.sin(xx / 5) * 60 + np.cos(yy / 7) * 60 + 128] * 3, -1)).clip(0, 255).astype(np.uint8)
    noisy = decode_jpeg(encode_jpeg(base, 60))  # re-encoding only
    changed = base.copy()
    changed[40:80, 60:100] = np.flip(base[40:80, 60:100], 1) // 2 + 40
    box = (55, 35, 105, 85)
    assert box_diff(noisy, base, box) < 0.02
    assert box_diff(changed, base, box) > 0.1
    # same size -> as is; same aspect -> resized; cut narrower at equal scale -> found by correlation
    assert align(base, base)[0] is base
    big = np.repeat(np.repeat(base, 2, 0), 2, 1)
    assert align(base, big)[0].shape == base.shape
    wide = np.concatenate([base, rng.integers(0, 255, (120, 12, 3), dtype=np.uint8)], axis=1)
    wide = np.concatenate([rng.integers(0, 255, (120, 5, 3), dtype=np.uint8), wide], axis=1)
    got, note = align(base, wide)
    assert note is None and np.array_equal(got, base)
    other = rng.integers(0, 255, (100, 200, 3), dtype=np.uint8)
    got, note = align(base, other)
    assert got is None and "aspect" in note


def test_diff_rows_notes_for_missing_originals_and_reals():
    from pipeline.stages.faces.worker import _diff_rows

    img = np.full((60, 80, 3), 128, np.uint8)
    frames = [{"second": 0.0}]
    row = lambda: {"frame": 0, "x0": 10.0, "y0": 10.0, "x1": 40.0, "y1": 40.0, "diff": None,  # noqa: E731
                   "manipulated": None, "note": None}
    real, fake, lost, short, unl = row(), row(), row(), row(), row()
    _diff_rows([real], [img], frames, "r", "real", {}, None)
    assert real["manipulated"] is False and real["diff"] is None and real["note"] is None
    _diff_rows([fake], [img], frames, "f", "fake", {"f": {"note": "original o not in the dataset's frames"}}, None)
    assert fake["manipulated"] is None and fake["diff"] is None and "not in the dataset" in fake["note"]
    _diff_rows([lost], [img], frames, "g", "fake", {}, None)
    assert lost["manipulated"] is None and lost["note"] == "no original in the dataset"
    _diff_rows([short], [img], frames, "h", "fake", {"h": {"id": "o", "frames": {}}}, None)
    assert short["manipulated"] is None and "has no frame at second 0" in short["note"]
    _diff_rows([unl], [img], frames, "u", None, {}, None)
    assert unl["manipulated"] is None and unl["note"] == "unlabelled video"


def test_detect_runs_in_bounded_batches_with_the_same_faces(monkeypatch):
    """Issue 21 item 5: MTCNN sees at most DETECT_BATCH images at once (its memory grew with the clip), and the
    faces found do not depend on the batching."""
    from pathlib import Path

    import cv2
    import matplotlib

    from pipeline.stages.faces import FaceDetector
    from pipeline.stages.faces import detect as detect_mod

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    images = [img, img[:, ::-1].copy(), np.roll(img, 40, axis=1), img[20:, 10:].copy(), np.zeros_like(img)]
    detector = FaceDetector(FaceCrop(detect_size=320, face_size=64), "cpu")
    whole = detector.detect(images)
    sizes = []
    raw = detector.mtcnn.detect
    monkeypatch.setattr(detector.mtcnn, "detect", lambda batch, **kw: sizes.append(len(batch)) or raw(batch, **kw))
    monkeypatch.setattr(detect_mod, "DETECT_BATCH", 2)
    bounded = detector.detect(images)
    assert sizes and max(sizes) <= 2
    assert [len(f) for f in bounded] == [len(f) for f in whole]
    for a, b in zip(bounded, whole):  # equal up to float noise (oneDNN may sum in another order per batch size)
        for fa, fb in zip(a, b):
            assert np.allclose(fa.box, fb.box, atol=0.05) and abs(fa.score - fb.score) < 1e-4
    assert sum(map(len, whole)) >= 4
