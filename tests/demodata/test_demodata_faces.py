"""The faces demo generator: DFDC layout, fakes reference their original, boxes inside the face, MTCNN finds faces."""
import json
import re

import numpy as np
import pytest

from demodata.faces import PHOTOS, Identity, Swap, apply_swap, detection_rate, generate, render_identity
from demodata.synthetic import PART_NAME

N_VIDEOS = 8  # 2 reals (one portrait) + 6 fakes
SECONDS = 2.0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = generate(tmp_path_factory.mktemp("faces"), n_videos=N_VIDEOS, seconds=SECONDS, size=(256, 144), seed=3,
                    workers=2, progress=False)
    meta = json.loads((root / PART_NAME / "metadata.json").read_text())
    boxes = json.loads((root / "boxes.json").read_text())
    return root, meta, boxes


def test_layout_and_metadata(dataset):
    root, meta, boxes = dataset
    assert len(meta) == N_VIDEOS
    reals = {n for n, v in meta.items() if v["label"] == "REAL"}
    fakes = {n for n, v in meta.items() if v["label"] == "FAKE"}
    assert len(reals) == 2 and len(fakes) == 6
    for name, entry in meta.items():
        assert re.fullmatch(r"[a-z]{10}\.mp4", name) and (root / PART_NAME / name).stat().st_size > 0
        assert entry["original"] in reals if name in fakes else entry["original"] is None
    assert set(boxes) == fakes
    for per_second in boxes.values():
        assert len(per_second) == int(SECONDS)
        for x0, y0, x1, y1 in per_second:
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
            assert (x1 - x0) * (y1 - y0) < 0.15  # part of the face, not the frame


def test_mtcnn_finds_the_faces_and_the_swap_lies_inside(dataset):
    root, _, _ = dataset
    found = detection_rate(root)
    assert found["frames"] == N_VIDEOS * int(SECONDS)
    assert found["rate"] >= 0.9, found
    assert found["boxes_inside"] >= 0.9 * found["fake_frames_with_face"], found


def test_swap_changes_only_its_box():
    import random

    photo = PHOTOS[0]
    head = photo.load()
    rng = random.Random(0)
    who = Identity.random(rng, 1)
    host = render_identity(head, who, 120, 160)
    fake, (x0, y0, x1, y1) = apply_swap(host, head, photo, who.mirror, Swap.random(rng, who, 1))
    changed = np.abs(fake - host).max(axis=2) > 1
    assert changed[y0:y1, x0:x1].mean() > 0.5
    outside = changed.copy()
    outside[y0:y1, x0:x1] = False
    assert not outside.any()
    assert 0.1 * 120 < x0 < x1 < 0.9 * 120 and 0.2 * 160 < y0 < y1 < 0.8 * 160  # eyes and nose, not the edge


def test_same_seed_same_plan(tmp_path):
    from demodata.faces import _plan, available_photos

    a = _plan(12, 2.0, (256, 144), 5, available_photos())
    b = _plan(12, 2.0, (256, 144), 5, available_photos())
    assert [(g.real_id, g.fake_ids, g.who, g.swaps) for g in a] == [(g.real_id, g.fake_ids, g.who, g.swaps) for g in b]
