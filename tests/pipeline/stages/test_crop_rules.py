"""The authors' crop rules (pipeline.spec.FACE_BOXES per_side and scale, FACE_RESIZES isotropic_pad): exact pixels on
a small synthetic image, and the default square crop and FaceCrop dict unchanged."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.spec import FaceCrop, SpecError
from pipeline.stages.faces.crop import clipped_window, crop_face, crop_window, isotropic_pad


def _image(h: int = 12, w: int = 16) -> np.ndarray:
    """Every pixel distinct: R = row, G = column, B = 7."""
    rows, cols = np.mgrid[0:h, 0:w]
    return np.stack([rows, cols, np.full_like(rows, 7)], axis=-1).astype(np.uint8)


def test_per_side_grows_each_side_by_its_share_and_clips():
    # box 4 wide, 6 high: w // 3 = 1 and h // 3 = 2 per side (the DFDC winner's rule)
    assert clipped_window((6, 3, 10, 9), 1 / 3, "per_side", 16, 12) == (5, 1, 11, 11)
    # near the border: clipped to the frame, not shifted or padded
    assert clipped_window((0, 0, 4, 6), 1 / 3, "per_side", 16, 12) == (0, 0, 5, 8)
    # SBI's 1/8 of a 16 x 8 box: 2 and 1 per side
    assert clipped_window((2.4, 2.6, 18.4, 10.6), 1 / 8, "per_side", 30, 20) == (0, 2, 20, 12)


def test_scale_is_a_square_of_the_long_side_around_the_centre():
    # box 4 x 6 centred on (8, 6): side round(6 * 1.3) = 8 -> x 4..12, y 2..10
    assert clipped_window((6, 3, 10, 9), 0.15, "scale", 16, 12) == (4, 2, 12, 10)
    assert clipped_window((12, 6, 16, 12), 0.15, "scale", 16, 12) == (10, 5, 16, 12)


def test_per_side_stretch_exact_pixels():
    image = _image()
    crop = crop_face(image, (6, 3, 10, 9), 1 / 3, 6, rule="per_side", resize="stretch")
    # window x 5..11 (6 wide), y 1..11 (10 high) stretched to 6 x 6: columns unchanged
    assert crop.shape == (6, 6, 3)
    assert crop[0, :, 1].tolist() == [5, 6, 7, 8, 9, 10] and (crop[..., 2] == 7).all()
    same = crop_face(image, (6, 3, 10, 9), 0.0, 6, rule="per_side")  # 4 x 6 window, width stretched
    assert same[:, 0, 0].tolist() == [3, 4, 5, 6, 7, 8]


def test_isotropic_pad_centres_the_long_side_and_pads_with_zeros():
    image = _image()
    region = image[1:11, 5:11]     # 10 high, 6 wide; long side 10 == size: no resize
    out = isotropic_pad(region, 10)
    assert out.shape == (10, 10, 3)
    assert (out[:, :2] == 0).all() and (out[:, 8:] == 0).all()
    assert (out[:, 2:8] == region).all()
    # a 4 x 8 block of 2 x 2 constant cells shrinks by exactly 2 (area): 2 x 4, centred in 4 x 4
    block = np.kron(np.arange(8, dtype=np.uint8).reshape(2, 4) * 10, np.ones((2, 2), np.uint8))
    small = isotropic_pad(np.repeat(block[..., None], 3, axis=2), 4)
    assert small[..., 0].tolist() == [[0, 0, 0, 0], [0, 10, 20, 30], [40, 50, 60, 70], [0, 0, 0, 0]]
    via_rule = crop_face(image, (6, 3, 10, 9), 1 / 3, 10, rule="per_side", resize="isotropic_pad")
    assert (via_rule == out).all()


def test_a_box_outside_the_frame_gives_a_black_crop():
    assert (crop_face(_image(), (40, 40, 50, 50), 0.1, 8, rule="scale") == 0).all()


def test_square_default_unchanged():
    image = _image()
    assert crop_window((6, 3, 10, 9), 0.3) == (3, 1, 10)  # side round(6 * 1.6), centred on (8, 6)
    assert (crop_face(image, (6, 3, 10, 9), 0.3, 10) == crop_face(image, (6, 3, 10, 9), 0.3, 10, "square")).all()
    assert "resize" not in FaceCrop().to_dict()
    assert FaceCrop.from_dict(FaceCrop().to_dict()) == FaceCrop()
    pad = FaceCrop(box="per_side", margin=1 / 3, resize="isotropic_pad")
    assert FaceCrop.from_dict(pad.to_dict()) == pad and pad.to_dict()["resize"] == "isotropic_pad"
    with pytest.raises(SpecError, match="faces.resize is 'crop'"):
        FaceCrop(resize="crop")
    with pytest.raises(SpecError, match="faces.box is 'round'"):
        FaceCrop(box="round")
