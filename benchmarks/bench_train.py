"""Trainer benchmarks: where a loader's time goes, the loader against an ImageFolder + PIL baseline, the full
DataLoader against its workers, and the CPU step time.

    python benchmarks/bench_train.py [--videos DIR] [--n 64] [--n-seed 192] [--workers 2] [--out bench-out/train]

Frames: 720p JPEGs (ffmpeg, -q:v 2 as the pipeline writes them) from the mp4s under --videos (e.g. the DFDC
sample), else from ffmpeg's lavfi sources (testsrc2 + mandelbrot). They are written both as a shard with a
dataset.json (the trainer's path) and as an ImageFolder tree (the baseline's path).

(1) cost table: CPU ms per image of decode, each of the ten augmentations alone (p=1; albumentations and fused),
    to_chw + collation and normalisation, at 720x1280 and 224x224;
(2) loaders in this one process (workers=0, OpenCV and torch on one thread: images/s is per worker, per core),
    side by side and interleaved: TrainStream with the fused augmentations, TrainStream with --augment-impl device
    (the workers' share: read, decode, draw; the GPU applies the draws, measured by `make bench-gpu`), TrainStream
    with the plain albumentations pipeline, torchvision ImageFolder + PIL with the same albumentations pipeline; with the seed
    recipe's probabilities and with every augmentation on (p=1). Ratios use CPU time (a shared machine's wall
    clock lies) and wall time;
(3) the full DataLoader (W workers, prefetch, collation; pinned memory where CUDA is there) against W times one
    worker's standalone rate, in images/s and in images per CPU-second (parent + workers), and the workers needed
    for 1,000 images/s at the measured per-core rate;
(4) self-blended fakes (--synthetic-fakes sbi): CPU ms per face of the generator at 224 and 380 px, one thread,
    on MTCNN faces of the real clips in ../shared/data (tests/helpers/real_faces.py), beside the face's decode.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # helpers.augment: test-only, not shipped

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image  # noqa: E402

from helpers.augment import albumentations_for, only  # noqa: E402
from pipeline.dataset import Dataset  # noqa: E402
from train.augment.fused import FusedAugment, apply, sample  # noqa: E402
from train.augment.reference import train_transform  # noqa: E402
from train.config import AUGMENTS, Augment  # noqa: E402
from train.data.batches import collate  # noqa: E402
from train.data.decode import decode_resized, to_chw  # noqa: E402
from train.data.streams import TrainStream, make_loader, worker_seed  # noqa: E402
from train.fit.loop import make_optimizer  # noqa: E402
from train.model import build_model, normalize  # noqa: E402

ALL_ON = only(*AUGMENTS)  # every augmentation on every image: the worst case
SEED = Augment()  # the seed recipe's probabilities (train/recipes/seed.toml)
SIZES = {"720x1280": (720, 1280), "224": (224, 224)}


def extract_frames(out: Path, videos: Path | None, n: int) -> list[Path]:
    """n 720p JPEGs at 1 fps from the mp4s under `videos`, or from lavfi sources."""
    out.mkdir(parents=True, exist_ok=True)
    scale = "fps=1,scale=1280:720:force_original_aspect_ratio=decrease,pad=1280:720:(ow-iw)/2:(oh-ih)/2"
    inputs = (sorted(videos.rglob("*.mp4")) if videos else
              ["lavfi:testsrc2=size=1280x720:rate=25", "lavfi:mandelbrot=size=1280x720:rate=25"])
    per = -(-n // len(inputs))
    for i, src in enumerate(inputs):
        args = ["-f", "lavfi", "-i", src[6:]] if str(src).startswith("lavfi:") else ["-i", str(src)]
        subprocess.run(["ffmpeg", "-v", "error", "-y", *args, "-t", str(per), "-vf", scale, "-q:v", "2",
                        "-frames:v", str(per), str(out / f"v{i:03d}_%04d.jpg")], check=True)
    frames = sorted(out.glob("*.jpg"))
    return (frames * (-(-n // max(len(frames), 1))))[:n]


def write_shard_and_folder(frames: list[Path], root: Path) -> tuple[Path, Path, Path]:
    """The same JPEGs as a train shard (+ a val shard and dataset.json) and as an ImageFolder tree."""
    shards, manifests, folder = root / "shards", root / "manifests", root / "imagefolder"
    for d in (shards, manifests, folder / "real", folder / "fake"):
        d.mkdir(parents=True, exist_ok=True)
    entries = []
    for split in ("train", "val"):
        for label in ("real", "fake"):
            name = f"{split}-{label}-000000.tar"
            chosen = frames[::2] if label == "real" else frames[1::2]
            with tarfile.open(shards / name, "w", format=tarfile.USTAR_FORMAT) as tar:
                for i, path in enumerate(chosen):
                    key = f"{label}{i:04d}_0000"
                    meta = json.dumps({"key": key, "video_id": f"{label}{i:04d}", "label": label}).encode()
                    for suffix, data in ((".jpg", path.read_bytes()), (".json", meta)):
                        info = tarfile.TarInfo(key + suffix)
                        info.size = len(data)
                        tar.addfile(info, io.BytesIO(data))
                    if split == "train":
                        shutil.copy(path, folder / label / f"{key}.jpg")
            entries.append({"name": name, "split": split, "label": label, "frames": len(chosen)})
    counts = {s: {"real": len(frames[::2]), "fake": len(frames[1::2])} for s in ("train", "val")}
    (manifests / "dataset.json").write_text(json.dumps({"version": 1, "frames": counts, "shards": entries,
                                                        "class_weights": {"real": 1.0, "fake": 1.0}}))
    return shards, manifests, folder


def timed(fn, n_images: int) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"images": n_images, "wall_s": wall, "cpu_s": cpu}


def rates(r: dict) -> dict:
    return {**r, "img_per_s": r["images"] / r["wall_s"], "img_per_cpu_s": r["images"] / r["cpu_s"]}


def add(a: dict | None, b: dict) -> dict:
    return b if a is None else {k: a[k] + b[k] for k in ("images", "wall_s", "cpu_s")}


def ours(shards: Path, manifests: Path, size: tuple[int, int], probs: Augment, n: int, impl: str,
         batch: int = 16, seed: int = 0) -> dict:
    """The trainer's own TrainStream (decode at size, augment, mix, batch), one process, workers=0."""
    dataset = Dataset.open(shards, manifests)
    n_batches = max(1, n // batch)
    stream = TrainStream(dataset, size, probs, batch, n_batches, "mix", shuffle_buffer=64, seed=seed,
                         augment_impl=impl)
    return timed(lambda: consume(make_loader(stream, 0), stream), n_batches * batch)


def consume(loader, stream: TrainStream) -> int:
    """Take every batch as the trainer does: look at it and drop it (--augment-impl device: its JPEG bytes, which
    train.augment.device.DeviceAugmented decodes and augments on the GPU; not measured here)."""
    seen = 0
    for images, labels, *rest in loader:
        if stream.deferred:
            seen += int(images.lengths.numel())
            images.data[:: 4096].sum()  # touch the bytes as the copy to the GPU would
        else:
            seen += int(images.shape[0])
            images[:, :, 0, 0].sum()  # touch the batch as the trainer's copy would
    return seen


def decode_and_draw(shards: Path, manifests: Path, size: tuple[int, int], probs: Augment, n: int,
                    seed: int = 0) -> dict:
    """What a `device` loader worker did before issue 20 (decode each JPEG at size on the CPU, then draw), for the
    comparison with what it does now (read the bytes, check the crc32, draw): one process, the same samples."""
    from train.augment.device import DeferredAugment
    from train.data.decode import decoded

    stream = TrainStream(Dataset.open(shards, manifests), size, probs, 16, 1, "mix", shuffle_buffer=64, seed=seed)
    samples, draw = stream._samples(random.Random(seed)), DeferredAugment(size, probs, seed)

    def run() -> None:
        for _, (image, *_rest) in zip(range(n), decoded(samples, size)):
            image[0, 0].sum()
            draw.draw()
    return timed(run, n)


class FullFrameAugment:
    """The baseline transform: PIL image -> array -> the albumentations pipeline at full size -> resize -> CHW.

    With `draws`, the i-th image gets the albumentations transforms of the i-th draw (built beforehand, outside the
    timing): the very draws the fused loader makes with the same seed. At 720p one median blur with a 7 px kernel
    costs as much as ~30 other images, so independent draws make a 200-image comparison swing by +-20%."""

    def __init__(self, size: tuple[int, int], probs: Augment, seed: int = 0, draws: int = 0) -> None:
        self.size = size
        self.aug = train_transform((720, 1280), probs, seed=seed)
        fused = FusedAugment((720, 1280), probs, seed=worker_seed(seed, 0))  # TrainStream's seed with workers=0
        self.plans = [albumentations_for(fused.draw()) for _ in range(draws)]
        self.calls = 0

    def __call__(self, image: Image.Image) -> torch.Tensor:
        aug = self.plans[self.calls % len(self.plans)] if self.plans else self.aug
        self.calls += 1
        array = aug(image=np.asarray(image.convert("RGB")))["image"]
        if array.shape[:2] != self.size:
            array = cv2.resize(array, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        return to_chw(array)


def baseline(folder: Path, size: tuple[int, int], probs: Augment, n: int, batch: int = 16, seed: int = 0,
             same_draws: bool = True) -> dict:
    """torchvision ImageFolder + PIL, augmenting full frames, DataLoader with workers=0."""
    transform = FullFrameAugment(size, probs, seed, draws=n if same_draws else 0)
    dataset = torchvision.datasets.ImageFolder(str(folder), transform=transform)
    indices = [i % len(dataset) for i in range(n)]
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=batch, shuffle=True,
                                         num_workers=0, generator=torch.Generator().manual_seed(seed))
    return timed(lambda: [b for b in loader], n)


def _ms(fn, items: list) -> float:
    t = time.process_time()
    for item in items:
        fn(item)
    return (time.process_time() - t) / len(items) * 1e3


def cost_table(frames: list[Path], n: int = 12) -> dict:
    """(1) CPU ms per image of each step at p=1, at 720x1280 and 224 (the same n frames)."""
    data = [p.read_bytes() for p in frames[:n]]
    rows: dict[str, dict] = {}
    rows["decode: PIL open + RGB array (baseline)"] = {
        "720x1280": _ms(lambda d: np.asarray(Image.open(io.BytesIO(d)).convert("RGB")), data)}
    rows["decode: simplejpeg at size (ours)"] = {
        label: _ms(lambda d: decode_resized(d, size), data) for label, size in SIZES.items()}
    images = {label: [decode_resized(d, size) for d in data] for label, size in SIZES.items()}
    rng = random.Random(0)

    def both(probs: Augment, label: str, reps: int = 1) -> dict:
        """albumentations with the fused path's own draws fixed (same kernels, angles...) vs the fused path."""
        size = SIZES[label]
        pairs = [(im, sample(rng, probs, size)) for im in images[label] * reps]
        plain = [(im, albumentations_for(d)) for im, d in pairs]
        return {label: _ms(lambda pair: pair[1](image=pair[0]), plain), label + " fused": _ms(lambda p: apply(*p), pairs)}

    for name in AUGMENTS:
        alone = only(name)
        rows[f"{name} (p=1)"] = both(alone, "720x1280") | both(alone, "224")
    for k in (3, 5, 7):  # median blur's kernels at 720p differ by 100x in cost
        rows[f"  median blur k={k}"] = {"720x1280": _ms(lambda im: cv2.medianBlur(im, k), images["720x1280"])}
    geometric = only("hflip", "crop_pad", "rotate", "zoom")
    rows["flip+crop_pad+rotate+zoom (fused: one warp)"] = both(geometric, "720x1280") | both(geometric, "224")
    rows["all ten (p=1)"] = both(ALL_ON, "720x1280") | both(ALL_ON, "224")
    rows["seed recipe probabilities (4 draws per frame)"] = both(SEED, "720x1280", 4) | both(SEED, "224", 4)
    row = {}
    for label, size in SIZES.items():
        row[label] = _ms(lambda im: collate([(to_chw(im), 0, "k", "v")]), images[label])
        slots = np.empty((1, *size, 3), np.uint8)
        row[label + " fused"] = _ms(lambda im: np.copyto(slots[0], im), images[label])
    rows["to CHW + collate (fused: written into the batch)"] = row
    row = {}
    for label, size in SIZES.items():
        chw = [to_chw(im)[None] for im in images[label]]
        row[label] = _ms(normalize, chw)
    rows["normalise to float (CPU, 1 thread; on the GPU in training)"] = row
    return rows


def sbi_cost(reps: int = 4) -> dict:
    """(4) CPU ms per face of train.augment.sbi.self_blend at 224 and 380 px, and of decoding that face's JPEG."""
    import simplejpeg

    from helpers.real_faces import MARGIN, real_faces
    from train.augment.sbi import landmarks_in_crop, self_blend

    faces = real_faces(380, seconds=(1.0, 3.0, 5.0))
    rows: dict = {"faces": len(faces)}
    for size in (224, 380):
        crops = [(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA), landmarks_in_crop(row, MARGIN))
                 for crop, row in faces] * reps
        rng = np.random.default_rng(0)
        jpegs = [simplejpeg.encode_jpeg(c, quality=90, colorspace="RGB") for c, _ in crops]
        rows[str(size)] = {"sbi_ms": _ms(lambda item: self_blend(item[0], item[1], rng), crops),
                           "decode_ms": _ms(lambda d: decode_resized(d, (size, size)), jpegs)}
    return rows


def report_sbi() -> dict:
    sbi = sbi_cost()
    print(f"\n(4) self-blended fakes (train.augment.sbi), CPU ms per face, one thread, {sbi['faces']} MTCNN faces of "
          "the real clips in ../shared/data:")
    for size in ("224", "380"):
        print(f"  {size} px: self_blend {sbi[size]['sbi_ms']:.2f} ms, decoding the face JPEG {sbi[size]['decode_ms']:.2f} "
              f"ms ({sbi[size]['sbi_ms'] / sbi[size]['decode_ms']:.1f}x)")
    return sbi


def print_cost_table(rows: dict) -> None:
    cols = ["720x1280", "720x1280 fused", "224", "224 fused"]
    print(f"\n(1) CPU ms per image, one thread (albumentations | fused):")
    print(f"{'step':58s} " + " ".join(f"{c:>15s}" for c in cols))
    for name, row in rows.items():
        print(f"{name:58s} " + " ".join(f"{row[c]:15.2f}" if c in row else f"{'':15s}" for c in cols))


def side_by_side(shards, manifests, folder, size, probs, n, rounds: int = 2) -> dict:
    """(2) The three loaders, interleaved over `rounds` rounds (different seeds), summed."""
    totals: dict[str, dict | None] = {"ours fused": None, "ours device (CPU side)": None,
                                      "device before (CPU decode)": None, "ours albumentations": None,
                                      "ImageFolder+PIL": None}
    for r in range(rounds):
        totals["ours fused"] = add(totals["ours fused"], ours(shards, manifests, size, probs, n, "fused", seed=r))
        totals["ours device (CPU side)"] = add(totals["ours device (CPU side)"],
                                               ours(shards, manifests, size, probs, n, "device", seed=r))
        totals["device before (CPU decode)"] = add(totals["device before (CPU decode)"],
                                                   decode_and_draw(shards, manifests, size, probs, n, seed=r))
        totals["ImageFolder+PIL"] = add(totals["ImageFolder+PIL"], baseline(folder, size, probs, n, seed=r))
        totals["ours albumentations"] = add(totals["ours albumentations"],
                                            ours(shards, manifests, size, probs, n, "albumentations", seed=r))
    return {k: rates(v) for k, v in totals.items()}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def full_loader(shards, manifests, size, probs, n, workers: int, impl: str, batch: int = 16) -> dict:
    """(3) TrainStream through DataLoader(workers, prefetch 4, pinned memory if CUDA), consumed as a trainer does;
    CPU time of the parent and of the workers (collected when the loader joins them)."""
    dataset = Dataset.open(shards, manifests)
    n_batches = max(workers, n // batch)
    stream = TrainStream(dataset, size, probs, batch, n_batches, "mix", shuffle_buffer=64, seed=5, augment_impl=impl)
    loader = make_loader(stream, workers, pin_memory=torch.cuda.is_available())
    children, cpu, wall = _children_cpu(), time.process_time(), time.perf_counter()
    seen = consume(loader, stream)
    del loader
    wall = time.perf_counter() - wall
    cpu = (time.process_time() - cpu) + (_children_cpu() - children)
    return rates({"images": seen, "wall_s": wall, "cpu_s": cpu}) | {"workers": workers}


def step_time(size: int = 64, batch: int = 32, steps: int = 8) -> dict:
    """(b) CPU training step (forward, backward, AdamW) of resnet-18 + head at size px."""
    torch.manual_seed(0)
    model = build_model("resnet18")
    opt = make_optimizer(model, 0.01)
    x, y = torch.randn(batch, 3, size, size), torch.randint(0, 2, (batch,))
    times, cpu = [], []
    for i in range(steps + 2):
        t, c = time.perf_counter(), time.process_time()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
    return {"size": size, "batch": batch, "threads": torch.get_num_threads(), "median_step_s": float(np.median(times)),
            "min_step_s": float(np.min(times)), "median_cpu_s": float(np.median(cpu)), "img_per_s": batch / float(np.median(times))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, help="Folder of mp4s to take 720p frames from (default: lavfi).")
    parser.add_argument("--n", type=int, default=64, help="Images per loader measurement with p=1, and at 224.")
    parser.add_argument("--n-seed", type=int, default=192,
                        help="Images per loader measurement at 720x1280 with the seed probabilities (per round).")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="DataLoader workers for (3).")
    parser.add_argument("--out", type=Path, default=Path("bench-out/train"))
    parser.add_argument("--skip-p1", action="store_true", help="Skip the p=1 loader rows.")
    parser.add_argument("--sbi-only", action="store_true", help="Only (4), the self-blended fakes' cost.")
    args = parser.parse_args()
    if args.sbi_only:
        cv2.setNumThreads(1)
        report_sbi()
        return
    if args.out.exists():
        shutil.rmtree(args.out)
    frames = extract_frames(args.out / "frames", args.videos, max(args.n, 32))
    shards, manifests, folder = write_shard_and_folder(frames, args.out)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    print(f"frames: {len(frames)} JPEGs, {np.mean([p.stat().st_size for p in frames]) / 1e3:.0f} kB mean, "
          f"source: {args.videos or 'lavfi testsrc2+mandelbrot'}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    costs = cost_table(frames)
    print_cost_table(costs)

    results: dict = {"costs": costs, "loaders": {}}
    print("\n(2) loaders, one worker (workers=0, one thread), interleaved over two seeds; ImageFolder+PIL applies the "
          "fused loader's own draws (same seed) with albumentations, the plain TrainStream path draws its own; "
          "img/s wall and per CPU-second:")
    print(f"{'size':9s} {'augmentations':14s} {'loader':22s} {'images':>7s} {'img/s':>8s} {'img/CPU-s':>10s}  "
          "(device: what the loader workers do; the augmentations run on the GPU, see make bench-gpu)")
    cases = [("720x1280", "seed", SEED, args.n_seed), ("224", "seed", SEED, args.n)]
    if not args.skip_p1:
        cases += [("720x1280", "all (p=1)", ALL_ON, args.n // 2), ("224", "all (p=1)", ALL_ON, args.n)]
    for label, probs_name, probs, n in cases:
        rows = side_by_side(shards, manifests, folder, SIZES[label], probs, n)
        results["loaders"][f"{label} {probs_name}"] = rows
        for name, r in rows.items():
            print(f"{label:9s} {probs_name:14s} {name:22s} {r['images']:7d} {r['img_per_s']:8.1f} "
                  f"{r['img_per_cpu_s']:10.1f}")
        base, fused = rows["ImageFolder+PIL"], rows["ours fused"]
        device = rows["ours device (CPU side)"]
        print(f"{'':9s} {'':14s} -> fused / ImageFolder+PIL: {fused['img_per_cpu_s'] / base['img_per_cpu_s']:.2f}x "
              f"per CPU-second, {fused['img_per_s'] / base['img_per_s']:.2f}x wall; fused / plain albumentations: "
              f"{fused['img_per_cpu_s'] / rows['ours albumentations']['img_per_cpu_s']:.2f}x per CPU-second; "
              f"device (CPU side) / ImageFolder+PIL: {device['img_per_cpu_s'] / base['img_per_cpu_s']:.2f}x; "
              f"device workers now (JPEG bytes) / before (CPU decode): "
              f"{device['img_per_cpu_s'] / rows['device before (CPU decode)']['img_per_cpu_s']:.1f}x per CPU-second")

    one = results["loaders"]["720x1280 seed"]["ours fused"]
    print(f"\n(3) full DataLoader at 720x1280, seed probabilities, batch 64, {args.workers} workers, prefetch 4, "
          f"pinned memory {'on' if torch.cuda.is_available() else 'off (no CUDA)'}:")
    results["dataloader"] = {"earlier_standalone": one}
    # device: 32x the images, so that its run (reading JPEG bytes only) lasts a little longer than fused's and the
    # workers' start (fork, first shuffle buffer) weighs little; batches of 64 as the seed recipe's; standalone
    # before and after the DataLoader run, so that both see the same load on a shared machine
    for impl, scale in (("fused", 2), ("device", 32)):
        n = args.n_seed * scale
        alone = ours(shards, manifests, SIZES["720x1280"], SEED, n // 2, impl, batch=64, seed=5)
        full = full_loader(shards, manifests, SIZES["720x1280"], SEED, n * args.workers, args.workers, impl, batch=64)
        alone = rates(add(alone, ours(shards, manifests, SIZES["720x1280"], SEED, n // 2, impl, batch=64, seed=6)))
        expected_wall = args.workers * alone["img_per_s"]
        gap_wall = 1 - full["img_per_s"] / expected_wall
        gap_cpu = 1 - full["img_per_cpu_s"] / alone["img_per_cpu_s"]
        per_core = min(full["img_per_cpu_s"], alone["img_per_cpu_s"])
        needed = int(np.ceil(1000 / per_core))
        what = " (the workers' share: JPEG bytes and draws; the GPU decodes and augments)" if impl == "device" else ""
        print(f"  --augment-impl {impl}{what}:")
        print(f"    one worker standalone: {alone['img_per_s']:.1f} img/s, {alone['img_per_cpu_s']:.1f} img/CPU-s")
        print(f"    DataLoader: {full['images']} images, {full['img_per_s']:.1f} img/s delivered, "
              f"{full['img_per_cpu_s']:.1f} img/CPU-s (parent + workers)")
        print(f"    gap to the sum of {args.workers} standalone workers: {gap_wall:.1%} in img/s (needs {args.workers} "
              f"free cores; load average {os.getloadavg()[0]:.1f}), {gap_cpu:.1%} in img/CPU-s (target < 10%)")
        print(f"    workers (cores) for 1,000 img/s at 720x1280: {needed} at {per_core:.1f} img/CPU-s")
        results["dataloader"][impl] = {"standalone": alone, "full": full, "gap_wall": gap_wall, "gap_cpu": gap_cpu,
                                       "workers_for_1000": needed}

    results["sbi"] = report_sbi()
    torch.set_num_threads(os.cpu_count() or 1)
    r = step_time()
    print(f"\n(b) CPU train step, resnet-18, {r['batch']}x3x{r['size']}x{r['size']}, {r['threads']} threads: "
          f"median {r['median_step_s'] * 1e3:.0f} ms wall (min {r['min_step_s'] * 1e3:.0f} ms), "
          f"{r['median_cpu_s'] * 1e3:.0f} ms CPU, {r['img_per_s']:.0f} img/s")
    results["step"] = r
    (args.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
