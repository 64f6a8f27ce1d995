"""Self-blended fakes (train.augment.sbi) on real faces: MTCNN's faces and landmarks in the genuine clips of
../shared/data, cropped as the faces stage crops them."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from helpers.real_faces import MARGIN, real_faces
from train.augment.sbi import MEAN_LANDMARKS, face_outline, hull_mask, landmarks_in_crop, self_blend

SIZE = 160


@pytest.fixture(scope="module")
def faces() -> list[tuple[np.ndarray, np.ndarray]]:
    found = real_faces(SIZE, seconds=(2.0,))
    assert len(found) == 3, "MTCNN finds the face of each real clip"
    return [(crop, landmarks_in_crop(row, MARGIN)) for crop, row in found]


def test_landmarks_map_into_the_crop(faces):
    for _, points in faces:
        assert points.shape == (5, 2) and np.all((points > 0.15) & (points < 0.85))  # a margin of 0.3 per side
        assert points[0, 0] < points[2, 0] < points[1, 0]                               # eye, nose, eye
        assert points[:2, 1].max() < points[2, 1] < points[3:, 1].min()                  # eyes, nose, mouth
    row = {"x0": 100.0, "y0": 50.0, "x1": 200.0, "y1": 170.0, "landmarks": None}       # a gap-filled face
    side = 120 * 1.6
    expected = (np.array([100.0, 50.0]) + MEAN_LANDMARKS * [100, 120] - [150 - side / 2, 110 - side / 2]) / side
    assert np.allclose(landmarks_in_crop(row, MARGIN), expected, atol=1 / side)


def test_mask_follows_the_landmarks(faces):
    for seed, (image, points) in enumerate(faces):
        blend = self_blend(image, points, np.random.default_rng(seed))
        for x, y in points * SIZE:
            assert blend.mask[int(y), int(x)] > 0.5, "every landmark lies inside the blend mask"
        ys, xs = np.nonzero(blend.mask > 0.5)
        centre = np.array([xs.mean(), ys.mean()]) / SIZE
        eye_distance = np.hypot(*(points[1] - points[0]))
        assert np.hypot(*(centre - points.mean(0))) < eye_distance, "the mask is centred on the face"
        # moving the landmarks moves the mask with them
        shifted = self_blend(image, points + [0.1, 0.0], np.random.default_rng(seed))
        ys2, xs2 = np.nonzero(shifted.mask > 0.5)
        assert abs((xs2.mean() - xs.mean()) / SIZE - 0.1) < 0.03


def test_blend_stays_inside_the_face(faces):
    for image, points in faces:
        hull = hull_mask((SIZE, SIZE), face_outline(points * SIZE))
        eye_distance = np.hypot(*(points[1] - points[0])) * SIZE
        grow = int(0.8 * eye_distance) | 1
        around_face = cv2.dilate(hull, np.ones((grow, grow), np.uint8)) > 0
        for seed in range(8):
            blend = self_blend(image, points, np.random.default_rng(seed))
            assert blend.mask.max() == pytest.approx(1.0) and 0.25 <= blend.ratio <= 1.0
            assert not np.any((blend.mask > 0.01) & ~around_face), "no blending outside the face and its edge"
            outside = blend.mask == 0
            assert outside.mean() > 0.3
            if blend.source_changed:  # the target is the untouched crop: outside the mask nothing changed
                assert np.array_equal(blend.image[outside], image[outside])
            inside = blend.mask * blend.ratio > 0.5
            if inside.any():
                assert np.abs(blend.image[inside].astype(int) - image[inside]).mean() > 1.0


def test_draws_are_reproducible_from_the_seed(faces):
    image, points = faces[0]
    a, b = (self_blend(image, points, np.random.default_rng(7)) for _ in range(2))
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) and a.ratio == b.ratio
    others = [self_blend(image, points, np.random.default_rng(s)) for s in range(8, 12)]
    assert all(not np.array_equal(a.mask, o.mask) for o in others)
