"""train.augment.device (--augment-impl device): the report's ten augmentations done in torch on the training
device do to the picture what albumentations does, with the fused path's draws. Run here on the CPU (the same torch
code runs on CUDA; benchmarks/gpu_train.py measures it there)."""
from __future__ import annotations

import dataclasses
import json
import random
import zlib

import cv2
import numpy as np
import pandas as pd
import pytest
import simplejpeg
import torch

from helpers import augment as test_augment
from helpers.augment import albumentations_for
from helpers.commands import run_module
from helpers.images import picture
from helpers.paths import REPO
from pipeline.dataset import Dataset
from train.augment.device import (DeviceAugmented, augment_batch, decode_batch, hsv_to_rgb, median_blur, median_chunks,
                                  quality_bin, rgb_to_hsv)
from train.augment.fused import Draw, apply, sample
from train.config import AUGMENTS, Augment
from train.data.batches import JpegBatch
from train.data.decode import decode_resized
from train.data.streams import TrainStream, make_loader

ALL_ON = test_augment.only(*AUGMENTS)


def as_batch(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def as_images(batch: torch.Tensor) -> list[np.ndarray]:
    return list(batch.permute(0, 2, 3, 1).numpy())


def only(name: str) -> Augment:
    return test_augment.only(name)


def binned(d: Draw) -> Draw:
    return d if d.jpeg is None else dataclasses.replace(d, jpeg=quality_bin(d.jpeg))


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
        # the device path encodes at the draw's quality bin (one batched call per bin): albumentations at that one
        theirs = albumentations_for(binned(d))(image=image)["image"]
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
            diff = np.abs(batch[i].astype(int) - apply(image, binned(d)))
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
    device decodes and applies them the batches agree within a small error; keys and labels are identical."""
    dataset = Dataset.open(tiny_dataset["shards"], tiny_dataset["manifests"])
    size = (48, 80)

    def batches(impl):
        stream = TrainStream(dataset, size, Augment(), 4, 3, "mix", 10, seed=2, augment_impl=impl)
        loader = make_loader(stream, 0)
        return list(DeviceAugmented(loader, "cpu", size) if impl == "device" else loader)

    fused, device = batches("fused"), batches("device")
    assert len(device) == len(fused) == 3
    for (a, la, ka, va), (b, lb, kb, vb) in zip(fused, device):
        assert ka == kb and va == vb and torch.equal(la, lb)
        assert b.shape == (4, 3, *size) and b.dtype == torch.uint8
        # the device path decodes the whole JPEG and resizes it (antialiased bilinear) where the CPU loader decodes
        # at a DCT scale with INTER_AREA, and encodes at the quality bin: a few levels, amplified at edges by warps
        diff = (a.contiguous().int() - b.int()).abs().float()
        assert diff.mean() < 6.0, diff.mean()  # same draws: ~3 here; another image: ~80-120
    raw = next(iter(make_loader(TrainStream(dataset, size, Augment(), 4, 1, "mix", 10, seed=2,
                                            augment_impl="device"), 0)))
    assert len(raw) == 5 and len(raw[4]) == 4 and all(isinstance(d, Draw) for d in raw[4])
    assert isinstance(raw[0], JpegBatch) and len(raw[0].lengths) == 4  # the workers hand over JPEG bytes


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


def test_loader_workers_only_read_the_shards_jpeg_bytes(tiny_dataset):
    """With two loader workers the device batches carry each frame's JPEG file exactly as the shard holds it (its
    crc32 in frames.parquet), not pixels; DeviceAugmented decodes and augments them into the training batches."""
    crcs = dict(pd.read_parquet(tiny_dataset["manifests"] / "frames.parquet", columns=["key", "crc32"]).values)
    n = 0
    for jpegs, labels, keys, videos, draws in make_loader(_device_stream(tiny_dataset), 2):
        files = jpegs.data.split(jpegs.lengths.tolist())
        assert [zlib.crc32(f.numpy().tobytes()) for f in files] == [crcs[k] for k in keys]
        assert jpegs.data.dtype == torch.uint8 and len(draws) == len(keys) == 4
        n += 1
    assert n == 12
    out = list(DeviceAugmented(make_loader(_device_stream(tiny_dataset), 2), "cpu", (48, 80)))
    assert len(out) == 12 and all(x.shape == (4, 3, 48, 80) and x.dtype == torch.uint8 for x, *_ in out)


def _jpeg_batch(images: list[np.ndarray]) -> JpegBatch:
    files = [simplejpeg.encode_jpeg(im, quality=90, colorspace="RGB") for im in images]
    return JpegBatch(torch.frombuffer(bytearray(b"".join(files)), dtype=torch.uint8),
                     torch.tensor([len(f) for f in files])), files


def test_decode_batch_decodes_and_resizes_as_the_cpu_loader_does():
    """Mixed shapes (landscape and portrait frames, a face crop) in one batch: each decoded in one call, resized per
    shape group, in batch order; at their own size exactly libjpeg's pixels, resized within a few levels of the CPU
    loader's decode_resized (DCT scaling + INTER_AREA against an antialiased bilinear)."""
    images = [picture((144, 256), seed=1), picture((256, 144), seed=2), picture((72, 128), seed=3),
              picture((160, 160), seed=4), picture((144, 256), seed=5)]
    jpegs, files = _jpeg_batch(images)
    same = decode_batch(_jpeg_batch([images[0], images[4]])[0], (144, 256), "cpu")
    for got, f in zip(same, [files[0], files[4]]):
        assert np.array_equal(got.permute(1, 2, 0).numpy(), simplejpeg.decode_jpeg(f, colorspace="RGB"))
    out = decode_batch(jpegs, (72, 128), "cpu")
    assert out.shape == (5, 3, 72, 128) and out.dtype == torch.uint8
    for got, f in zip(out, files):
        diff = np.abs(got.permute(1, 2, 0).numpy().astype(int) - decode_resized(f, (72, 128)))
        assert diff.mean() < 3.0, diff.mean()


def test_median_blur_goes_in_memory_bounded_chunks_not_image_by_image():
    assert median_chunks(64, 7, (224, 224)) == [64]
    assert median_chunks(13, 7, (720, 1280)) == [4, 4, 4, 1]  # 137 MB of windows per image at 720p
    assert sum(median_chunks(45, 3, (96, 96))) == 45 and median_chunks(45, 3, (96, 96)) == [32, 8, 4, 1]
    images = [picture((40, 56), seed=s) for s in range(5)]
    batch = median_blur(as_batch(images), 5)
    for got, image in zip(as_images(batch), images):
        assert np.array_equal(got, cv2.medianBlur(image, 5))


def test_jpeg_round_trips_go_in_at_most_eight_quality_bins():
    qualities = range(60, 96)
    bins = {quality_bin(q) for q in qualities}
    assert bins == set(range(60, 96, 5)) and all(abs(quality_bin(q) - q) <= 2 for q in qualities)
    images = [picture((32, 48), seed=s) for s in range(6)]
    draws = [Draw(jpeg=q) for q in (61, 62, 63, 64, 66, 67)]  # bins 60, 60, 65, 65, 65, 65
    out = as_images(augment_batch(as_batch(images), draws))
    for got, image, d in zip(out, images, draws):
        assert np.array_equal(got, as_images(augment_batch(as_batch([image]), [Draw(jpeg=quality_bin(d.jpeg))]))[0])
