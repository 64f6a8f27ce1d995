"""Manifest -> webdataset streams: shard shuffle and splitting, shuffle buffer, decode, augment, balance, batch."""
from __future__ import annotations

import json
import logging
import random
import shlex
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np
import pandas as pd
import torch
import webdataset as wds
from webdataset.gopen import gopen_schemes
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pipeline.shards import UnsafeManifest, check_shard_name, read_member
from train.augment import decode_resized, to_chw, train_transform
from train.config import AUGMENT_IMPLS, Augment
from train.fused_augment import FusedAugment

log = logging.getLogger(__name__)

LABELS = {"real": 0, "fake": 1}
CLASS_NAMES = ("real", "fake")


class DataError(RuntimeError):
    """The shards or the manifest cannot be used; the message says which file and why."""


class ShardError(DataError):
    """A shard could not be read (truncated or corrupt); the message names the shard."""


def _gopen_fsspec(url: str, mode: str = "rb", bufsize: int = 8192, **kw):
    """Open any URL fsspec knows (s3://, gs://, az://, hf://, ...) for schemes webdataset has no handler of."""
    import fsspec

    return fsspec.open(url, mode).open()


gopen_schemes["__default__"] = _gopen_fsspec


def is_local(location: str) -> bool:
    """A plain folder, as opposed to a URL prefix or a `pipe:` template."""
    return "{name}" not in location and "://" not in location and not location.startswith("pipe:")


def shard_url(location: str, name: str) -> str:
    """Where shard `name` is read from, the way webdataset takes shard locations.

    - a folder: `shards/` -> `shards/train-fake-000001.tar`;
    - a URL prefix for fsspec or webdataset: `s3://bucket/shards` -> `s3://bucket/shards/train-fake-000001.tar`;
    - a template with `{name}`, e.g. `pipe:aws s3 cp s3://bucket/shards/{name} -`.
    """
    if "{name}" in location:  # names are checked (check_shard_name); quoted for `pipe:` commands all the same
        return location.replace("{name}", shlex.quote(name) if location.startswith("pipe:") else name)
    if not is_local(location):
        return location.rstrip("/") + "/" + name
    return str(Path(location) / name)


@dataclass(frozen=True)
class Manifest:
    """What the trainer needs from dataset.json: shard locations per split and label, frame counts, class weights."""

    shards_dir: str  # a folder, a URL prefix or a `{name}` template (see shard_url)
    shards: tuple[dict, ...]
    frames: dict           # {split: {label: n}}: frames, or faces for input "faces" (after the fake-faces filter)
    class_weights: dict
    input: str = "frames"  # frames | faces
    drop_untouched: bool = False  # faces: training skips faces of fake videos the faces stage found untouched

    def urls(self, split: str, label: str | None = None) -> list[str]:
        return [shard_url(self.shards_dir, s["name"]) for s in self.shards
                if s["split"] == split and (label is None or s["label"] == label)]

    def n_frames(self, split: str, label: str | None = None) -> int:
        counts = self.frames.get(split, {})
        return int(counts.get(label, 0)) if label else int(sum(counts.get(k, 0) for k in LABELS))


SPLITS = ("train", "val", "test")
SHARD_LABELS = ("real", "fake", "unlabelled")


def check_shard_entries(entries, path) -> None:
    """dataset.json's shard list is untrusted input: each name must be a shard name (no folders, no shell
    characters: it reaches file paths and `pipe:` commands), split and label from their sets; DataError names
    the field otherwise."""
    for i, entry in enumerate(entries):
        _require(isinstance(entry, dict), f"manifest {path}: shards[{i}] is not an object")
        try:
            check_shard_name(entry.get("name"), f"manifest {path}: shards[{i}].name")
        except UnsafeManifest as err:
            raise DataError(str(err)) from None
        _require(entry.get("split") in SPLITS, f"manifest {path}: shards[{i}].split is {entry.get('split')!r}, "
                                               f"not one of {SPLITS}")
        _require(entry.get("label") in SHARD_LABELS, f"manifest {path}: shards[{i}].label is "
                                                     f"{entry.get('label')!r}, not one of {SHARD_LABELS}")
        for field in ("size", "frames"):
            value = entry.get(field)
            _require(value is None or (isinstance(value, int) and value >= 0),
                     f"manifest {path}: shards[{i}].{field} is {value!r}, not a count")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise DataError(message)


def _last_frames(manifests_dir: Path) -> dict[str, tuple[str, int, int]]:
    """Per shard, its last frame in frames.parquet: (key, offset of the member's first header, JPEG bytes)."""
    path = manifests_dir / "frames.parquet"
    if not path.is_file():
        return {}
    frames = pd.read_parquet(path, columns=["key", "shard", "offset", "bytes"])
    last = frames.loc[frames.groupby("shard")["offset"].idxmax()]
    return {s: (k, int(o), int(b)) for s, k, o, b in zip(last["shard"], last["key"], last["offset"], last["bytes"])}


def _check_shard_files(manifest: Manifest, manifests_dir: Path, splits: Sequence[str]) -> None:
    """Every listed shard of these splits exists, has the size dataset.json records (where it does), and holds
    the last frame frames.parquet puts in it, read with tarfile from its recorded offset (long names included)."""
    last = _last_frames(manifests_dir)
    for entry in manifest.shards:
        if entry["split"] not in splits:
            continue
        path = Path(manifest.shards_dir) / entry["name"]
        _require(path.is_file(), f"shard {path} is listed in dataset.json but missing from the shards folder")
        actual = path.stat().st_size
        if entry.get("size") is not None and actual != entry["size"]:
            state = "is truncated" if actual < entry["size"] else "was changed"
            raise ShardError(f"shard {path} {state}: {actual} bytes on disk, but dataset.json records "
                             f"{entry['size']}; check it with `python -m pipeline.verify`, rebuild it with `make shards`")
        if entry["name"] not in last:
            continue
        key, offset, nbytes = last[entry["name"]]
        try:
            with open(path, "rb") as fh:
                name, data = read_member(fh, offset)
        except (tarfile.TarError, OSError, EOFError) as err:
            raise ShardError(f"shard {path} is truncated or corrupt: {actual} bytes on disk, and its last frame "
                             f"{key} (byte {offset}) cannot be read: {err}; rebuild it with `make shards`") from None
        if name != f"{key}.jpg" or len(data) != nbytes:
            raise ShardError(f"shard {path} does not match frames.parquet: expected {key}.jpg ({nbytes} bytes) at "
                             f"byte {offset}, found {name} ({len(data)} bytes); rebuild the manifest or the shards")


def load_manifest(shards_dir: str | Path, manifests_dir: str | Path, input: str = "frames",
                  fake_faces: str = "all") -> Manifest:
    """Read dataset.json and check the train and val shards it lists; raise DataError naming what is wrong.

    input "faces" reads its "faces" section instead (face-crop shards under SHARDS/faces/, see load_faces)."""
    if input == "faces":
        return load_faces(shards_dir, manifests_dir, fake_faces)
    location, manifests_dir = str(shards_dir), Path(manifests_dir)
    local = is_local(location)
    if local:  # the folder is never listed: dataset.json says which shards there are (checked one by one below)
        _require(Path(location).is_dir(), f"shards folder {location} does not exist; build it with `make shards`")
    path, data = read_dataset_json(manifests_dir)
    _require(isinstance(data.get("shards"), list), f"manifest {path} has no 'shards' list")
    check_shard_entries(data["shards"], path)
    manifest = Manifest(location, tuple(data["shards"]), data.get("frames", {}), data.get("class_weights", {}))
    for split in ("train", "val"):
        _require(bool(manifest.urls(split)) and manifest.n_frames(split) > 0,
                 f"manifest {path} has no {split} split (no labelled {split} shards or frames); "
                 "rebuild the shards with a validation fraction > 0")
    if local:
        _check_shard_files(manifest, manifests_dir, ("train", "val"))
    else:
        log.info("shards are read from %s (remote: sizes not checked before training)", location)
    return manifest


def read_dataset_json(manifests_dir: Path) -> tuple[Path, dict]:
    """(path, contents) of MANIFESTS/dataset.json; DataError naming the file when it is missing or not JSON."""
    path = manifests_dir / "dataset.json"
    _require(path.is_file(), f"manifest {path} does not exist; pass --manifests (written by `make shards`)")
    try:
        return path, json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"manifest {path} is not valid JSON: {err}") from None


def untouched_fake(sample: dict) -> bool:
    """A face of a fake video that the faces stage compared with its original and found unchanged
    (`manipulated` False; None, unknown, is kept)."""
    try:
        meta = json.loads(sample["json"])
    except (KeyError, ValueError):
        return False  # decode_sample names the bad sample
    return meta.get("label") == "fake" and meta.get("manipulated") is False


def face_counts(manifests_dir: Path, drop_untouched: bool) -> dict | None:
    """{split: {label: faces}} from faces.parquet, without the untouched fake faces when asked; None without it."""
    path = manifests_dir / "faces.parquet"
    if not path.is_file():
        return None
    faces = pd.read_parquet(path, columns=["split", "label", "manipulated"])
    if drop_untouched:
        faces = faces[~((faces["label"] == "fake") & (faces["manipulated"] == False))]  # noqa: E712 (null kept)
    counts: dict = {}
    for (split, label), n in faces.groupby(["split", "label"]).size().items():
        counts.setdefault(split, {})[label] = int(n)
    return counts


def load_faces(shards_dir: str | Path, manifests_dir: str | Path, fake_faces: str = "manipulated") -> Manifest:
    """The faces stage's output as a Manifest: dataset.json's "faces" section (face-crop shards, one per frame
    shard, under SHARDS/faces/) and faces.parquet's counts.

    fake_faces "manipulated" drops, from training, the faces of fake videos whose `manipulated` is False (the
    faces stage compared them with the original's and found them unchanged: a DFDC fake often swaps one face of
    two); a null `manipulated` (no original to compare with) is kept. "all" keeps every face. Validation always
    scores every face, as train.predict does. A video without any face has no row and is skipped.
    """
    location, manifests_dir = str(shards_dir), Path(manifests_dir)
    path, data = read_dataset_json(manifests_dir)
    faces = data.get("faces")
    _require(isinstance(faces, dict) and isinstance(faces.get("shards"), list),
             f"manifest {path} has no faces; run the faces stage first: `make faces SHARDS=... MANIFESTS=...` "
             "(python -m pipeline.faces)")
    check_shard_entries(faces["shards"], f"{path} (faces)")
    drop = fake_faces == "manipulated"
    counts = face_counts(manifests_dir, drop) or faces.get("counts", {})
    train = counts.get("train", {})
    total = sum(train.get(k, 0) for k in LABELS)
    weights = {k: total / (len(LABELS) * train[k]) for k in LABELS if train.get(k)}
    manifest = Manifest(location, tuple(faces["shards"]), counts, weights, input="faces", drop_untouched=drop)
    for split in ("train", "val"):
        _require(bool(manifest.urls(split)) and manifest.n_frames(split) > 0,
                 f"manifest {path} has no {split} faces (no {split} face shards or faces); the faces stage found "
                 f"{faces.get('faces', 0)} faces in all")
    if is_local(location):
        _check_shard_files(manifest, manifests_dir, ("train", "val"))
    log.info("faces: %s train, %s val (%s); %s videos without any face are skipped", train,
             counts.get("val", {}), "untouched fake faces dropped from training" if drop else "all faces kept",
             faces.get("videos_without_faces", "?"))
    return manifest


def read_shard(url: str) -> Iterator[dict]:
    """Raw samples (dict with __key__, jpg, json) of one tar; a read error becomes a ShardError naming the shard."""
    try:
        yield from wds.tarfile_to_samples()([{"url": url}])
    except (tarfile.TarError, OSError, ValueError) as err:
        raise ShardError(f"cannot read shard {url}: {err}") from None


def read_shards(urls: Iterator[str]) -> Iterator[dict]:
    for url in urls:
        yield from read_shard(url)


class CorruptSample(ShardError):
    """A frame whose JPEG does not match its recorded crc32 or does not decode: skipped with a warning."""


def decode_sample(sample: dict, size: tuple[int, int]) -> tuple[np.ndarray, int, str, str]:
    """Raw sample -> (uint8 HxWx3 at size, label 0/1, key, video id).

    A JPEG that differs from the crc32 in its json member (shards written since checksums exist) or fails to
    decode raises CorruptSample; a missing member or a bad label raises ShardError (the shard is unusable).
    """
    key = sample["__key__"]
    try:
        meta = json.loads(sample["json"])
        jpeg = sample["jpg"]
    except (KeyError, ValueError) as err:
        raise ShardError(f"bad sample {key} in shard {sample.get('__url__')}: {err!r}") from None
    crc = meta.get("crc32")
    if crc is not None and zlib.crc32(jpeg) != crc:
        raise CorruptSample(f"sample {key} in shard {sample.get('__url__')}: JPEG bytes differ from its crc32")
    try:
        image = decode_resized(jpeg, size)
    except (ValueError, RuntimeError, OSError) as err:
        raise CorruptSample(f"sample {key} in shard {sample.get('__url__')}: JPEG does not decode: {err}") from None
    if meta.get("label") not in LABELS:
        raise ShardError(f"sample {key} in shard {sample.get('__url__')} has label {meta.get('label')!r}; "
                         f"training needs one of {sorted(LABELS)}")
    return image, LABELS[meta["label"]], key, meta.get("video_id", key.rsplit("_", 1)[0])


def decoded(samples: Iterator[dict], size: tuple[int, int]) -> Iterator[tuple[np.ndarray, int, str, str]]:
    """decode_sample over a stream; a corrupt frame is skipped with a warning naming its shard and key and the
    number skipped so far in this worker (policy: a run goes on without it; `pipeline.verify --deep` finds all)."""
    skipped = 0
    for sample in samples:
        try:
            yield decode_sample(sample, size)
        except CorruptSample as err:
            skipped += 1
            log.warning("skipped corrupt frame (%d so far in this worker): %s", skipped, err)


def collate(items: list) -> tuple[torch.Tensor, torch.Tensor, list[str], list[str]]:
    """[(uint8 CHW, label, key, video)] -> (uint8 NCHW, int64 labels, keys, video ids)."""
    images = torch.stack([item[0] for item in items])
    labels = torch.tensor([item[1] for item in items], dtype=torch.int64)
    return images, labels, [item[2] for item in items], [item[3] for item in items]


def batched(samples: Iterator, batch_size: int, partial: bool) -> Iterator:
    batch = []
    for sample in samples:
        batch.append(sample)
        if len(batch) == batch_size:
            yield collate(batch)
            batch = []
    if batch and partial:
        yield collate(batch)


def worker_seed(*parts: int) -> int:
    """A 32-bit seed from integers (run seed, stage, epoch, worker), stable across processes and runs."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def _worker() -> tuple[int, int]:
    """(worker id, number of workers). OpenCV's thread count is not set here: cv2.setNumThreads in a forked
    worker, after the parent used OpenCV's pool, deadlocks (seen in test_train_data with workers=2); make_loader
    sets it in the parent before the fork."""
    info = get_worker_info()
    return (info.id, info.num_workers) if info else (0, 1)


def my_shards(urls: Sequence[str], rng: random.Random) -> list[str]:
    """This node's and this worker's share of the shuffled shard list, or all of them if the share is empty."""
    urls = list(urls)
    random.Random(rng.random()).shuffle(urls)  # same order on every worker: rng is seeded per epoch below
    share = list(wds.split_by_worker(wds.split_by_node(urls)))
    return share or urls


def shard_cycle(urls: Sequence[str], rng: random.Random, resample: bool) -> Iterator[str]:
    """Endless shard order: random draws with replacement (resampled) or reshuffled passes."""
    urls = list(urls)
    while True:
        if resample:
            yield rng.choice(urls)
        else:
            rng.shuffle(urls)
            yield from urls


def batch_buffer(batch_size: int, size: tuple[int, int]) -> torch.Tensor:
    """An empty uint8 NHWC batch; in a loader worker it is allocated in shared memory, so handing it to the main
    process copies nothing."""
    images = torch.empty((batch_size, size[0], size[1], 3), dtype=torch.uint8)
    return images.share_memory_() if get_worker_info() is not None else images


def _filled_batches(items: Iterator[tuple[np.ndarray, int, str, str]], size: tuple[int, int], batch_size: int,
                    write, take=None) -> Iterator[tuple]:
    """Batches written straight into a uint8 NHWC buffer (from `take()` -> (buffer, token), else a fresh one): each
    decoded sample goes through `write(image, slot)`, whose results come back in a list. Yields uint8 NCHW views with
    channels_last strides, labels, keys, video ids, the buffer's token and the write results."""
    while True:
        images, token = take() if take is not None else (batch_buffer(batch_size, size), None)
        slots = images.numpy()
        labels, keys, videos, written = [], [], [], []
        for i in range(batch_size):
            image, label, key, video = next(items)
            written.append(write(image, slots[i]))
            labels.append(label)
            keys.append(key)
            videos.append(video)
        yield images.permute(0, 3, 1, 2), torch.tensor(labels, dtype=torch.int64), keys, videos, token, written


def fused_batches(items: Iterator[tuple[np.ndarray, int, str, str]], size: tuple[int, int],
                  augment: FusedAugment, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[str], list[str]]]:
    """Augment each decoded sample (see `decoded`) straight into its slot of the batch; yields uint8 NCHW views with
    channels_last strides (what the model runs on), labels, keys, video ids."""
    for images, labels, keys, videos, _token, _written in _filled_batches(
            items, size, batch_size, lambda image, slot: augment(image, out=slot)):
        yield images, labels, keys, videos


PREFETCH = 4  # batches each loader worker prepares ahead (DataLoader's prefetch_factor)


class Draws(list):
    """The draws of one device batch, plus `token`: the (worker, slot) of the BufferPool buffer it came in, for
    DeviceAugmented to hand back once it has copied the pixels away (None: a one-off buffer, nothing to return).
    A list subclass with an attribute survives pickling between processes and DataLoader's pin_memory (which
    copies mutable sequences with copy.copy)."""

    token: tuple[int, int] | None = None


class BufferPool:
    """Batch buffers a loader worker reuses instead of allocating fresh shared memory for every batch.

    At 720x1280 a fresh shared-memory batch costs ~3 ms per image in page faults on this project's machines, about
    as much as reading and decoding it (bench-train (3)); the `device` workers do little else. Each worker keeps
    `slots` buffers; a flag per buffer, in shared memory made before the workers fork, says whether the consumer
    has handed it back (`release`). A worker reuses only a buffer handed back explicitly, else it allocates a fresh
    one, so a consumer that never releases (keeps batches, iterates the raw loader) is always safe."""

    MAX_WORKERS = 256

    def __init__(self, slots: int = PREFETCH + 2) -> None:
        import multiprocessing

        self.slots = slots
        self.free = multiprocessing.RawArray("b", self.MAX_WORKERS * slots)  # 0: in use or never made, 1: free
        self._buffers: dict[int, torch.Tensor] = {}  # this process's buffers, by slot

    def take(self, batch_size: int, size: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int] | None]:
        """A uint8 NHWC buffer and its token: a handed-back one of this worker's if any, else a new one (kept in a
        free slot of the ring if there is one, else one-off with token None)."""
        worker, _ = _worker()
        shape = (batch_size, size[0], size[1], 3)
        if worker >= self.MAX_WORKERS:
            return batch_buffer(batch_size, size), None
        base = worker * self.slots
        for slot in range(self.slots):
            buf = self._buffers.get(slot)
            if buf is not None and self.free[base + slot] == 1 and tuple(buf.shape) == shape:
                self.free[base + slot] = 0
                return buf, (worker, slot)
        for slot in range(self.slots):
            if slot not in self._buffers:
                self._buffers[slot] = buf = batch_buffer(batch_size, size)
                self.free[base + slot] = 0
                return buf, (worker, slot)
        return batch_buffer(batch_size, size), None

    def release(self, token: tuple[int, int] | None) -> None:
        """The consumer is done with this buffer's pixels: its worker may write the next batch into it."""
        if token is not None:
            worker, slot = token
            self.free[worker * self.slots + slot] = 1


def drawn_batches(items: Iterator[tuple[np.ndarray, int, str, str]], size: tuple[int, int],
                  augment: FusedAugment, batch_size: int, pool: BufferPool | None = None) -> Iterator[tuple]:
    """For augment_impl "device": the decoded samples, not augmented, in a NHWC batch (as fused_batches) plus each
    image's draw (the fused path's own draws for the same seed); train.device_augment applies them on the device.
    With a pool, the batch comes in one of the worker's reused buffers (see BufferPool; the draws carry its token)."""
    def write(image: np.ndarray, slot: np.ndarray):
        np.copyto(slot, image)
        return augment.draw()

    take = (lambda: pool.take(batch_size, size)) if pool is not None else None
    for images, labels, keys, videos, token, drawn in _filled_batches(items, size, batch_size, write, take):
        draws = Draws(drawn)
        draws.token = token
        yield images, labels, keys, videos, draws


class TrainStream(IterableDataset):
    """One training epoch: exactly n_batches augmented batches in total over all workers.

    augment_impl: "albumentations" (the plain train.augment.train_transform pipeline), "fused" (train.fused_augment:
    one warp for the geometric augmentations, LUTs for the colour ones, written straight into the batch) or "device"
    (decode only; batches carry a fifth item, each image's draw, for train.device_augment.DeviceAugmented).
    """

    def __init__(self, manifest: Manifest, size: tuple[int, int], augment: Augment, batch_size: int,
                 n_batches: int, balance: str, shuffle_buffer: int, seed: int, augment_impl: str = "albumentations") -> None:
        super().__init__()
        if augment_impl not in AUGMENT_IMPLS:
            raise ValueError(f"augment_impl must be one of {AUGMENT_IMPLS}, got {augment_impl!r}")
        self.manifest, self.size, self.augment = manifest, size, augment
        self.batch_size, self.n_batches, self.balance = batch_size, n_batches, balance
        self.shuffle_buffer, self.seed, self.augment_impl = shuffle_buffer, seed, augment_impl
        self.pool = BufferPool() if augment_impl == "device" else None  # before the workers fork: shared flags

    def _stream(self, urls: list[str], rng: random.Random, resample: bool) -> Iterator[dict]:
        shuffled_order = random.Random(self.seed)  # shared by all workers: same epoch shard permutation
        shards = shard_cycle(my_shards(urls, shuffled_order), rng, resample)
        buffer = self.shuffle_buffer
        return wds.shuffle(buffer, initial=buffer, rng=random.Random(rng.random()))(read_shards(shards))

    def _samples(self, rng: random.Random) -> Iterator[dict]:
        m = self.manifest
        if self.balance == "mix":
            real = self._stream(m.urls("train", "real"), random.Random(rng.random()), resample=True)
            fake = self._stream(m.urls("train", "fake"), random.Random(rng.random()), resample=True)
            random.seed(rng.random())  # wds.RandomMix draws from the module-level `random`
            return iter(wds.RandomMix([real, fake], probs=[0.5, 0.5]))
        return self._stream(m.urls("train"), rng, resample=False)

    def __iter__(self):
        worker, n_workers = _worker()
        quota = self.n_batches // n_workers + (1 if worker < self.n_batches % n_workers else 0)
        seed = worker_seed(self.seed, worker)
        rng = random.Random(seed)
        samples = self._samples(rng)
        if self.manifest.drop_untouched:
            samples = (s for s in samples if not untouched_fake(s))
        items = decoded(samples, self.size)
        if self.augment_impl == "fused":
            batches = fused_batches(items, self.size, FusedAugment(self.size, self.augment, seed=seed), self.batch_size)
        elif self.augment_impl == "device":
            batches = drawn_batches(items, self.size, FusedAugment(self.size, self.augment, seed=seed), self.batch_size,
                                    self.pool)
        else:
            transform = train_transform(self.size, self.augment, seed=seed)
            augmented = ((to_chw(transform(image=image)["image"]), label, key, video)
                         for image, label, key, video in items)
            batches = batched(augmented, self.batch_size, partial=False)
        for _ in range(quota):
            yield next(batches)


class ValStream(IterableDataset):
    """Validation (or any split): every frame exactly once, shards split over nodes and workers, no augmentation."""

    def __init__(self, urls: Sequence[str], size: tuple[int, int], batch_size: int) -> None:
        super().__init__()
        self.urls, self.size, self.batch_size = list(urls), size, batch_size

    def __iter__(self):
        shards = wds.split_by_worker(wds.split_by_node(self.urls))
        items = ((to_chw(image), label, key, video)
                 for image, label, key, video in decoded(read_shards(iter(shards)), self.size))
        yield from batched(items, self.batch_size, partial=True)


def make_loader(dataset: IterableDataset, workers: int, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over a stream that already yields batches.

    With workers, OpenCV is set to one thread here, in the parent, before the workers fork (they inherit it): one
    core per worker, no oversubscription. Calling cv2.setNumThreads inside a forked worker can deadlock."""
    if workers:
        cv2.setNumThreads(1)
    return DataLoader(dataset, batch_size=None, num_workers=workers, pin_memory=pin_memory,
                      prefetch_factor=PREFETCH if workers else None, persistent_workers=False)


def train_batches_per_epoch(manifest: Manifest, batch_size: int) -> int:
    """Epoch length from the manifest's counts: as many full batches as there are train frames."""
    return max(1, manifest.n_frames("train") // batch_size)
