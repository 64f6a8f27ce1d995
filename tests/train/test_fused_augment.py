"""train.augment.fused draws what the plain albumentations pipeline draws and does what it does to the picture."""
from __future__ import annotations

import os
import random

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import augment as test_augment  # noqa: E402
from helpers.augment import albumentations_for  # noqa: E402
from helpers.images import picture  # noqa: E402
from train.augment.fused import Draw, FusedAugment, apply, sample  # noqa: E402
from train.augment.params import (BRIGHTNESS, CONTRAST, CROP_PAD_PERCENT, HSV_SHIFT, JPEG_QUALITY,  # noqa: E402
                                  ROTATE_DEGREES, ZOOM, blur_limit)
from train.config import AUGMENTS, Augment  # noqa: E402
from train.data.batches import augmented_batches  # noqa: E402
from train.data.decode import decoded  # noqa: E402
from train.model import normalize  # noqa: E402

ALL_ON = test_augment.only(*AUGMENTS)


reference = albumentations_for


def only(name: str) -> Augment:
    return test_augment.only(name)


@pytest.mark.parametrize("size", [(72, 128), (120, 96)])
@pytest.mark.parametrize("name", AUGMENTS)
def test_each_augmentation_alone_matches_albumentations(name, size):
    """Alone, every augmentation gives the albumentations result, pixel for pixel."""
    image = picture(size)
    rng = random.Random(7)
    for _ in range(4):
        d = sample(rng, only(name), size)
        assert d.names() == {name}
        ours, theirs = apply(image, d), reference(d)(image=image)["image"]
        assert ours.shape == image.shape and ours.dtype == np.uint8
        diff = np.abs(ours.astype(int) - theirs)
        assert diff.max() == 0, (name, d)


def test_fused_warp_equals_the_sequential_resamplings():
    """Flip + crop-and-pad + rotate + zoom with fixed parameters: one warp agrees with albumentations' three
    resamplings (each of which blurs a little) within a small pixel error wherever the sequential pipeline did not
    fill a border by mirroring: under 1 grey level on average, more only along sharp edges."""
    size = (144, 256)
    image = picture(size, seed=1)
    rng = random.Random(3)
    geometric = test_augment.only("hflip", "crop_pad", "rotate", "zoom")
    for _ in range(6):
        d = sample(rng, geometric, size)
        ours, theirs = apply(image, d), reference(d)(image=image)["image"]
        # where the sequential pipeline read only real pixels: warp a white frame with a black constant border
        probe = Draw(**{k: getattr(d, k) for k in ("hflip", "crop_pad", "rotate", "zoom")})
        white = np.full(size + (3,), 255, np.uint8)
        seq = [A.HorizontalFlip(p=1)] if d.hflip else []
        seq += [A.CropAndPad(percent=tuple((v, v) for v in d.crop_pad), keep_size=True,
                             border_mode=cv2.BORDER_CONSTANT, fill=0, p=1),
                A.Rotate(limit=(d.rotate, d.rotate), border_mode=cv2.BORDER_CONSTANT, fill=0, p=1),
                A.Affine(scale=(d.zoom, d.zoom), border_mode=cv2.BORDER_CONSTANT, fill=0, p=1)]
        inside = cv2.erode(A.Compose(seq, strict=True)(image=white)["image"][..., 0], np.ones((5, 5))) == 255
        assert inside.mean() > 0.6, probe
        diff = np.abs(ours.astype(int) - theirs)[inside]
        # hard synthetic edges at a small size: the sequential path blurs them up to three times (p99 on real
        # 720p DFDC frames: 1-4 levels)
        assert diff.mean() < 0.75 and np.percentile(diff, 99) <= 12 and diff.max() <= 64, (d, diff.mean(), diff.max())


def test_colour_and_jpeg_steps_compose_exactly():
    """HSV, brightness, contrast and JPEG together (one HSV LUT, one composed brightness/contrast LUT) equal the
    sequential albumentations steps pixel for pixel."""
    size = (96, 160)
    image = picture(size, seed=2)
    rng = random.Random(5)
    colour = test_augment.only("blur", "median_blur", "hsv", "brightness", "contrast", "jpeg")
    for _ in range(6):
        d = sample(rng, colour, size)
        assert np.array_equal(apply(image, d), reference(d)(image=image)["image"]), d


def test_share_of_images_each_augmentation_touches_matches_its_probability():
    """With the seed recipe's probabilities, each augmentation is drawn for its share of images (4 sigma), its
    parameters stay inside the albumentations ranges, and the draws are independent of each other."""
    probs, size, n = Augment(), (720, 1280), 6000
    rng = random.Random(11)
    draws = [sample(rng, probs, size) for _ in range(n)]
    for name in AUGMENTS:
        p = getattr(probs, name)
        share = np.mean([name in d.names() for d in draws])
        assert abs(share - p) < 4 * np.sqrt(p * (1 - p) / n), (name, share, p)
    kernels = {d.blur for d in draws if d.blur} | {d.median_blur for d in draws if d.median_blur}
    assert kernels == set(range(blur_limit(size)[0], blur_limit(size)[1] + 1, 2)) == {3, 5, 7}
    hsv = np.array([d.hsv for d in draws if d.hsv])
    assert (np.abs(hsv) <= HSV_SHIFT).all() and (hsv.max(0) > 0.9 * np.array(HSV_SHIFT)).all()
    crop = np.array([d.crop_pad for d in draws if d.crop_pad])
    assert crop.min() >= CROP_PAD_PERCENT[0] and crop.max() <= CROP_PAD_PERCENT[1] and abs(crop.mean()) < 0.01
    assert all(abs(d.rotate) <= ROTATE_DEGREES for d in draws if d.rotate is not None)
    assert all(ZOOM[0] <= d.zoom <= ZOOM[1] for d in draws if d.zoom is not None)
    assert all(abs(d.brightness) <= BRIGHTNESS for d in draws if d.brightness is not None)
    assert all(abs(d.contrast) <= CONTRAST for d in draws if d.contrast is not None)
    assert {d.jpeg for d in draws if d.jpeg} == set(range(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    both = np.mean([d.hflip and d.rotate is not None for d in draws])
    assert abs(both - probs.hflip * probs.rotate) < 0.03


def test_albumentations_pipeline_touches_the_same_shares():
    """The plain pipeline, run on images, changes each augmentation's share of them: the same probabilities."""
    from train.augment.reference import train_transform

    size, n = (32, 48), 1500
    image = picture(size, seed=3)
    for name in ("hflip", "jpeg", "rotate"):
        plain = train_transform(size, Augment(**{k: (0.3 if k == name else 0.0) for k in AUGMENTS}), seed=1)
        fused = FusedAugment(size, Augment(**{k: (0.3 if k == name else 0.0) for k in AUGMENTS}), seed=1)
        changed_plain = np.mean([not np.array_equal(plain(image=image)["image"], image) for _ in range(n)])
        changed_fused = np.mean([not np.array_equal(fused(image), image) for _ in range(n)])
        assert abs(changed_plain - 0.3) < 0.05 and abs(changed_fused - 0.3) < 0.05, (name, changed_plain, changed_fused)


def test_output_is_written_into_the_given_slot_and_the_input_is_untouched():
    size = (72, 128)
    image = picture(size)
    before = image.copy()
    aug = FusedAugment(size, ALL_ON, seed=0)
    for _ in range(5):
        out = np.zeros_like(image)
        result = aug(image, out=out)
        assert result is out and out.any()
    nothing = FusedAugment(size, Augment.none(), seed=0)
    copy = nothing(image)
    assert np.array_equal(copy, image) and copy is not image
    assert np.array_equal(image, before)


def test_fused_batches_are_channels_last_uint8_and_normalise_like_the_plain_path():
    """The batch the trainer gets: uint8 N x 3 x H x W (channels_last strides, no copy), labels int64; normalised
    it is the same float tensor the contiguous layout gives."""
    import json

    size, batch = (64, 96), 4
    frames = [picture(size, seed=s) for s in range(batch)]

    def samples():
        i = 0
        while True:
            ok, jpg = cv2.imencode(".jpg", frames[i % batch][..., ::-1])
            yield {"__key__": f"v{i}_0000", "jpg": jpg.tobytes(),
                   "json": json.dumps({"label": "fake" if i % 2 else "real", "video_id": f"v{i}"}).encode()}
            i += 1

    images, labels, keys, videos = next(augmented_batches(decoded(samples(), size), size, batch,
                                                          FusedAugment(size, Augment.none())))
    assert images.shape == (batch, 3, *size) and images.dtype == torch.uint8
    assert images.is_contiguous(memory_format=torch.channels_last)
    assert labels.tolist() == [0, 1, 0, 1] and keys[1] == "v1_0000" and videos[1] == "v1"
    x = normalize(images)
    assert x.dtype == torch.float32 and torch.allclose(x, normalize(images.contiguous()))
    assert abs(float(x.mean())) < 1.5


@pytest.mark.parametrize("impl", ["fused", "albumentations"])
def test_train_stream_yields_the_same_batches_with_either_implementation(tiny_dataset, impl):
    """augment_impl switches the augmentation code only: same keys and labels, same shapes and dtypes."""
    from pipeline.dataset import Dataset
    from train.data.streams import TrainStream, make_loader

    dataset = Dataset.open(tiny_dataset["shards"], tiny_dataset["manifests"])
    stream = TrainStream(dataset, (48, 80), Augment(), 4, 3, "mix", 10, seed=2, augment_impl=impl)
    batches = list(make_loader(stream, 0))
    reference = list(make_loader(TrainStream(dataset, (48, 80), Augment.none(), 4, 3, "mix", 10, seed=2,
                                             augment_impl="albumentations"), 0))
    assert [b[2] for b in batches] == [b[2] for b in reference]
    for (images, labels, _keys, _videos), (ref, ref_labels, *_rest) in zip(batches, reference):
        assert images.shape == ref.shape == (4, 3, 48, 80) and images.dtype == torch.uint8
        assert torch.equal(labels, ref_labels)
    with pytest.raises(ValueError, match="augment_impl"):
        TrainStream(dataset, (48, 80), Augment(), 4, 3, "mix", 10, seed=2, augment_impl="kornia")


def test_gpu_benchmark_exits_cleanly_without_cuda():
    import subprocess
    import sys
    from pathlib import Path

    if torch.cuda.is_available():
        pytest.skip("CUDA is here: the benchmark would run")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "gpu_train.py"), "--steps", "2"],
                          capture_output=True, text=True, cwd=root, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "CUDA is not available" in proc.stdout and "not run" in proc.stdout
