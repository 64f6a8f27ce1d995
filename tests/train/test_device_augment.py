"""train.augment.device (--augment-impl device): the report's ten augmentations done in torch on the training
device do to the picture what albumentations does, with the fused path's draws. Run here on the CPU (the same torch
code runs on CUDA; benchmarks/gpu_train.py measures it there)."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from helpers import augment as test_augment
from helpers.augment import albumentations_for
from helpers.commands import run_module
from helpers.images import picture
from helpers.paths import REPO
from pipeline.dataset import Dataset
from train.augment.device import DeviceAugmented, augment_batch, hsv_to_rgb, rgb_to_hsv
from train.augment.fused import Draw, apply, sample
from train.config import AUGMENTS, Augment
from train.data.streams import TrainStream, make_loader

ALL_ON = test_augment.only(*AUGMENTS)


def as_batch(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def as_images(batch: torch.Tensor) -> list[np.ndarray]:
    return list(batch.permute(0, 2, 3, 1).numpy())


def only(name: str) -> Augment:
    return test_augment.only(name)


# the largest difference from albumentations each augmentation may show, alone, in grey levels: (max, mean).
# Exact where both compute in integers on the same data; HSV -> RGB rounds floats (OpenCV's SIMD path rounds
# differently, see hsv_to_rgb); bilinear weights are OpenCV's 5-bit fixed point against grid_sample's floats.
TOLERANCE = {"blur": (1, 0.01), "median_blur": (0, 0.0), "hflip": (0, 0.0), "hsv": (1, 0.05), "crop_pad": (2, 0.2),
             "rotate": (2, 0.05), "zoom": (2, 0.05), "brightness": (0, 0.0), "contrast": (0, 0.0), "jpeg": (2, 0.05)}


@pytest.mark.parametrize("size", [(72, 128), (120, 96)])
@pytest.mark.parametrize("name", AUGMENTS)
def test_each_augmentation_alone_matches_albumentations(name, size):
    image = picture(size)
    rng = random.Random(7)
    draws = [sample(rng, only(name), size) for _ in range(4)]
    assert all(d.names() == {name} for d in draws)
    ours = as_images(augment_batch(as_batch([image] * len(draws)), draws))
    worst, mean = TOLERANCE[name]
    for d, out in zip(draws, ours):
        theirs = albumentations_for(d)(image=image)["image"]
        diff = np.abs(out.astype(int) - theirs)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert diff.max() <= worst and diff.mean() <= mean, (name, d, diff.max(), diff.mean())
    if name not in ("hflip",):  # each draw really changed the picture
        assert all(not np.array_equal(out, image) for out in ours)


def test_every_median_and_blur_kernel_is_opencvs():
    image = picture((90, 160), seed=4)
    for k in (3, 5, 7):
        for kind in ("blur", "median_blur"):
            d = Draw(**{kind: k})
            out = as_images(augment_batch(as_batch([image]), [d]))[0]
            diff = np.abs(out.astype(int) - albumentations_for(d)(image=image)["image"])
            assert diff.max() <= TOLERANCE[kind][0], (kind, k, diff.max())


def test_opencv_hsv_round_trip():
    """rgb_to_hsv is OpenCV's 8-bit formula exactly (every colour of a 64^3 grid), hsv_to_rgb within one level
    (and exact for at least 97% of them)."""
    import cv2

    levels = np.arange(0, 256, 4, dtype=np.uint8)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(256, -1, 3)
    ours = rgb_to_hsv(as_batch([grid]))
    assert np.array_equal(ours[0].permute(1, 2, 0).numpy(), cv2.cvtColor(grid, cv2.COLOR_RGB2HSV))
    back = as_images(hsv_to_rgb(ours))[0]
    diff = np.abs(back.astype(int) - cv2.cvtColor(cv2.cvtColor(grid, cv2.COLOR_RGB2HSV), cv2.COLOR_HSV2RGB))
    assert diff.max() <= 1 and (diff == 0).all(-1).mean() >= 0.97


def test_a_mixed_batch_equals_the_fused_path_image_by_image():
    """Twelve images, the seed recipe's draws and every augmentation at once: each image is augmented by its own
    draw (grouping by kernel or quality mixes nothing up) and lands within a small error of the fused CPU path
    (which does the same single warp)."""
    size = (96, 160)
    images = [picture(size, seed=s) for s in range(12)]
    rng = random.Random(13)
    for probs in (Augment(), ALL_ON):
        draws = [sample(rng, probs, size) for _ in images]
        batch = as_images(augment_batch(as_batch(images), draws))
        for i, (image, d) in enumerate(zip(images, draws)):
            alone = as_images(augment_batch(as_batch([image]), [d]))[0]
            assert np.array_equal(batch[i], alone), (i, d)
            diff = np.abs(batch[i].astype(int) - apply(image, d))
            # HSV rounding before a JPEG round trip can move a block by a few levels
            assert diff.mean() < 0.6 and np.percentile(diff, 99) <= 6, (i, d, diff.mean(), diff.max())


def test_input_batch_is_not_modified_and_bad_input_is_refused():
    image = picture((48, 64))
    batch = as_batch([image, image])
    before = batch.clone()
    out = augment_batch(batch, [Draw(hflip=True, brightness=0.1), Draw(median_blur=3)])
    assert torch.equal(batch, before) and not torch.equal(out, batch)
    with pytest.raises(ValueError, match="2 draws for a batch of 1"):
        augment_batch(batch[:1], [Draw(), Draw()])
    with pytest.raises(ValueError, match="uint8"):
        augment_batch(batch.float(), [Draw(), Draw()])


def test_device_stream_draws_what_the_fused_stream_draws(tiny_dataset):
    """The same seed gives the same samples and the same draws with --augment-impl device as with fused: after the
    device applies them the batches agree within the small error above; keys and labels are identical."""
    dataset = Dataset.open(tiny_dataset["shards"], tiny_dataset["manifests"])
    size = (48, 80)

    def batches(impl):
        stream = TrainStream(dataset, size, Augment(), 4, 3, "mix", 10, seed=2, augment_impl=impl)
        loader = make_loader(stream, 0)
        return list(DeviceAugmented(loader, "cpu") if impl == "device" else loader)

    fused, device = batches("fused"), batches("device")
    assert len(device) == len(fused) == 3
    for (a, la, ka, va), (b, lb, kb, vb) in zip(fused, device):
        assert ka == kb and va == vb and torch.equal(la, lb)
        assert b.shape == (4, 3, *size) and b.dtype == torch.uint8
        diff = (a.contiguous().int() - b.int()).abs().float()
        assert diff.mean() < 0.6, diff.mean()
    raw = next(iter(make_loader(TrainStream(dataset, size, Augment(), 4, 1, "mix", 10, seed=2,
                                            augment_impl="device"), 0)))
    assert len(raw) == 5 and len(raw[4]) == 4 and all(isinstance(d, Draw) for d in raw[4])


def test_training_with_device_augmentations(tiny_dataset, tmp_path):
    """train.run --augment-impl device trains (dev run) and records the choice in config.json."""
    run = tmp_path / "run"
    run_module("train.run", "--shards", tiny_dataset["shards"], "--manifests", tiny_dataset["manifests"],
               "--out", run, "--dev-run", "--weights", "none", "--image-size", "64", "--batch-size", "8",
               "--workers", "1", "--device", "cpu", "--augment-impl", "device", "--no-lr-find")
    config = json.loads((run / "config.json").read_text())
    assert config["augment_impl"] == "device"
    assert (run / "metrics.csv").read_text().count("\n") >= 2


def test_auto_picks_where_the_augmentations_cost_least():
    """`--augment-impl auto` (the default), from what an H100 measured: on CUDA at full-frame sizes (both sides >=
    448 px) device with up to 8 loader workers (427 against 374 images/s for fused at 8) and fused with more (635
    against 382 at 16); the plain pipeline on the CPU and for 224 px crops (where the choices tie on that GPU); an
    explicit choice is kept as it is."""
    from train.augment import DEVICE_AUGMENT_MAX_WORKERS, DEVICE_AUGMENT_MIN_SIDE
    from train.augment import resolve_impl as resolve_augment_impl
    from train.config import TrainConfig

    assert resolve_augment_impl("auto", "cuda", (720, 1280), 8) == "device"
    assert resolve_augment_impl("auto", "cuda", (720, 1280), 1) == "device"
    assert resolve_augment_impl("auto", "cuda", (720, 1280), DEVICE_AUGMENT_MAX_WORKERS + 1) == "fused"
    assert resolve_augment_impl("auto", "cuda", (720, 1280), 16) == "fused"
    assert resolve_augment_impl("auto", "cuda", (DEVICE_AUGMENT_MIN_SIDE, 1280), 8) == "device"
    assert resolve_augment_impl("auto", "cuda", (DEVICE_AUGMENT_MIN_SIDE - 2, 1280), 8) == "albumentations"
    assert resolve_augment_impl("auto", "cuda", (224, 224), 16) == "albumentations"
    assert resolve_augment_impl("auto", "cpu", (720, 1280), 2) == "albumentations"
    for impl in ("albumentations", "fused", "device"):
        assert resolve_augment_impl(impl, "cpu", (64, 64), 0) == impl
    assert TrainConfig.__dataclass_fields__["augment_impl"].default == "auto"


def test_a_default_cpu_run_records_the_plain_pipeline(tiny_run):
    """A run started with the default (auto) writes the implementation it resolved to, so --resume replays it."""
    assert json.loads((tiny_run / "config.json").read_text())["augment_impl"] == "albumentations"


@pytest.mark.slow
def test_gpu_benchmark_runs_end_to_end_on_the_cpu(tiny_dataset, tmp_path):
    """benchmarks/gpu_train.py --smoke-cpu runs the very code a GPU session runs (cost table, every loader, the
    training step), at tiny sizes on the CPU, so device time is never spent finding a bug in the script."""
    import subprocess
    import sys

    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_train.py"), "--smoke-cpu", "--steps", "1",
                           "--shards", str(tiny_dataset["shards"]), "--manifests", str(tiny_dataset["manifests"]),
                           "--loaders", "albumentations:0,fused:0,device:0", "--amp", "off", "--out", str(out)],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(out.read_text())
    costs = rows[0]["augment_ms_per_batch"]
    assert set(costs) >= {"median_blur", "jpeg", "seed probabilities"} and all(v > 0 for v in costs.values())
    inputs = {r["input"] for r in rows[1:]}
    assert inputs == {"synthetic", "albumentations, 0 workers", "fused, 0 workers", "device, 0 workers"}
    assert all(r["img_per_s"] > 0 for r in rows[1:])
    assert all("augment_ms_per_batch" in r and (r["augment_ms_per_batch"] > 0) == r["input"].startswith("device")
               for r in rows[1:])


def _device_stream(tiny_dataset, seed=3, n_batches=12):
    dataset = Dataset.open(tiny_dataset["shards"], tiny_dataset["manifests"])
    return TrainStream(dataset, (48, 80), Augment(), 4, n_batches, "mix", 10, seed=seed, augment_impl="device")


def test_workers_reuse_handed_back_buffers_and_never_overwrite_kept_ones(tiny_dataset):
    """BufferPool: with two loader workers, a consumer that hands each batch back (as DeviceAugmented does) gets
    the workers' buffers again (tokens repeat) and exactly the pixels of a run that allocates every batch afresh;
    a consumer that keeps its batches and hands nothing back finds every one of them intact at the end."""
    def run(release: bool):
        stream = _device_stream(tiny_dataset)
        out, tokens = [], []
        for images, labels, keys, videos, draws in make_loader(stream, 2):
            out.append((images.clone(), keys))
            tokens.append(draws.token)
            if release:
                stream.pool.release(draws.token)
        return out, tokens

    fresh, _ = run(release=False)
    reused, tokens = run(release=True)
    assert len(tokens) == 12 and len(set(tokens)) < len(tokens) and None not in tokens  # buffers came back
    for (a, ka), (b, kb) in zip(fresh, reused):
        assert ka == kb and torch.equal(a, b)

    stream = _device_stream(tiny_dataset)
    kept = list(make_loader(stream, 2))  # nothing handed back: no buffer is ever written twice
    assert [k for _images, _labels, k, *_rest in kept] == [k for _images, k in fresh]
    for (images, *_rest), (ref, _keys) in zip(kept, fresh):
        assert torch.equal(images, ref)
    assert sum(d.token is None for *_rest, d in kept) >= 12 - 2 * stream.pool.slots  # one-off buffers past the ring


def test_device_augmented_hands_buffers_back_and_trains_on_the_same_pixels(tiny_dataset):
    """The trainer's wrapper returns each buffer after augmenting; the augmented batches equal a run without reuse."""
    def run(release: bool):
        stream = _device_stream(tiny_dataset, seed=4, n_batches=10)
        wrapped = DeviceAugmented(make_loader(stream, 2), "cpu", release=stream.pool.release if release else None)
        return [(x.clone(), k) for x, _labels, k, _videos in wrapped], stream

    plain, _ = run(False)
    reused, stream = run(True)
    assert [k for _x, k in plain] == [k for _x, k in reused]
    assert all(torch.equal(a, b) for (a, _), (b, _) in zip(plain, reused))
    assert list(stream.pool.free[:2 * stream.pool.slots]).count(1) > 0  # the parent's flags: buffers handed back
