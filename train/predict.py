"""Score videos with a trained checkpoint: the pipeline's own frames, the val transform, mean P(fake) per video.

`python -m train.predict --checkpoint runs/NAME/checkpoints/best.pt VIDEO_OR_DIR... [--out submission.csv]`
writes Kaggle's DFDC submission (`filename,label`, label = P(fake)); `--shards DIR --split test` scores a split
that is already sharded. Frames come from `pipeline.frames.extract` with the settings the training shards were
made with (fps, size box, JPEG quality), then go through `decode_resized` at the model's input size and ImageNet
normalisation, exactly as `train.data.ValStream` feeds validation.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import click  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import simplejpeg  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from pipeline.discover import VIDEO_EXTENSIONS  # noqa: E402
from pipeline.frames import FrameError, extract  # noqa: E402

from train import metrics  # noqa: E402
from train.augment import decode_resized, to_chw  # noqa: E402
from train.data import LABELS, DataError, check_shard_entries, is_local, read_shard, shard_url  # noqa: E402
from train.engine import TTA_MODES, Device, ensemble_p_fake  # noqa: E402
from train.evaluate import EvaluateError, load_ensemble  # noqa: E402
from train.metrics import RULES  # noqa: E402
from train.model import WeightsError  # noqa: E402

log = logging.getLogger(__name__)

FAILED_SCORE = 0.5  # the submission row of a video that could not be read: the uninformed prior
FRAME_COLUMNS = ("filename", "video_id", "key", "index", "second", "label", "p_fake", "error")


class PredictError(RuntimeError):
    """Prediction cannot start (no frame settings, no videos, no shards of the split); the message says why."""


@dataclass(frozen=True)
class FrameSettings:
    """What `pipeline.frames.extract` needs to reproduce the training frames, and where it was read from."""

    fps: float
    box: tuple[int, int]
    quality: int
    timeout: float = 600.0
    source: str = ""


def _settings_from(config: dict | None, source: str) -> FrameSettings | None:
    """Frame settings from a manifest or checkpoint config (untrusted: they reach ffmpeg's filter graph), checked
    for type and range; PredictError names the field otherwise."""
    if not config or not all(k in config for k in ("fps", "size", "quality")):
        return None

    def number(field, value, kind, low, high):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)) \
                or not low <= value <= high:
            raise PredictError(f"{source}: config.{field} is {value!r}, not a{'n integer' if kind is int else ' number'} "
                               f"in [{low}, {high}]: refusing frame settings that ffmpeg would be given")
        return kind(value)

    size = config["size"]
    if not isinstance(size, (list, tuple)) or len(size) != 2:
        raise PredictError(f"{source}: config.size is {size!r}, not [width, height]")
    return FrameSettings(number("fps", config["fps"], float, 0.001, 60),
                         (number("size[0]", size[0], int, 16, 16384), number("size[1]", size[1], int, 16, 16384)),
                         number("quality", config["quality"], int, 1, 31),
                         number("timeout", config.get("timeout") or 600.0, float, 1, 86400), source)


def frame_settings(checkpoint: Path, config: dict, manifests: Path | None = None) -> FrameSettings:
    """The pipeline settings the model was trained on, from (first found): --manifests' dataset.json, the
    checkpoint's own config (train.run stores them), the run folder's pipeline.json, the config's manifests."""
    candidates = []
    if manifests is not None:
        candidates.append(Path(manifests) / "dataset.json")
    elif (stored := _settings_from((config.get("extra") or {}).get("pipeline"), f"{checkpoint} (its config)")):
        return stored
    candidates.append(checkpoint.resolve().parent.parent / "pipeline.json")
    if config.get("manifests"):
        candidates.append(Path(config["manifests"]) / "dataset.json")
    for path in candidates:
        if path.is_file():
            settings = _settings_from(json.loads(path.read_text()).get("config"), str(path))
            if settings is not None:
                return settings
    raise PredictError("cannot find the pipeline settings (fps, size, JPEG quality) the model was trained on; looked "
                       f"at {', '.join(map(str, candidates))}. Pass --manifests DIR (the folder with dataset.json)")


def find_videos(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given (whatever their extension), folders searched recursively for video files; sorted, unique."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
        else:
            found.append(item)  # a missing file becomes an error row, not a crash
    return list(dict.fromkeys(found))


def video_names(paths: Sequence[Path], inputs: Sequence) -> list[str]:
    """The filename column: the bare file name (as Kaggle wants) when those are unique; else, with a warning, the
    path relative to the folder given (the path as given where even that repeats), so no two videos share a row."""
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    roots = [Path(i) for i in inputs if Path(i).is_dir()]

    def relative(path: Path) -> str:
        for root in roots:
            if path.is_relative_to(root):
                return str(path.relative_to(root))
        return str(path)

    out = [relative(p) for p in paths]
    if len(set(out)) < len(out):
        out = [str(p) for p in paths]
    repeated = pd.Series(names)[pd.Series(names).duplicated()].iloc[0]
    log.warning("several videos share a file name (e.g. %s): the filename column holds each video's path relative "
                "to the folder given instead", repeated)
    return out


@dataclass
class Decoded:
    """One video's frames at the model's input size (uint8 NHWC), or the reason it has none."""

    path: Path
    images: np.ndarray | None = None
    indices: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    error: str | None = None
    decode_s: float = 0.0


def decode_video(path: Path, settings: FrameSettings, size: tuple[int, int] | None) -> Decoded:
    """ffmpeg via pipeline.frames.extract (the shards' own JPEGs), then decode_resized as ValStream does (size None:
    the frames as the shards hold them, for the faces stage's detector)."""
    start = time.perf_counter()
    try:
        _, frames = extract(str(path), settings.fps, settings.box, settings.quality, settings.timeout)
        images = np.stack([decode_resized(f.jpeg, size) if size else simplejpeg.decode_jpeg(f.jpeg, colorspace="RGB")
                           for f in frames])
    except FrameError as err:
        return Decoded(path, error=str(err), decode_s=time.perf_counter() - start)
    except (OSError, ValueError, RuntimeError) as err:  # unreadable file, a JPEG simplejpeg refuses
        return Decoded(path, error=f"{err.__class__.__name__}: {err}", decode_s=time.perf_counter() - start)
    return Decoded(path, images, [f.index for f in frames], [f.second for f in frames],
                   decode_s=time.perf_counter() - start)


class Scorer:
    """One model or an ensemble in eval mode on a device: uint8 NHWC frames -> P(fake) per frame (the mean over the
    models, and over each frame and its mirror with tta="hflip"; train.engine.ensemble_p_fake)."""

    def __init__(self, models: torch.nn.Module | Sequence[torch.nn.Module], dev: Device, batch_size: int,
                 tta: str = "none") -> None:
        models = [models] if isinstance(models, torch.nn.Module) else list(models)
        self.models, self.dev, self.batch_size, self.tta = [dev.prepare(m).eval() for m in models], dev, batch_size, tta
        self.seconds = 0.0

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out = []
        for i in range(0, len(images), self.batch_size):
            batch = torch.stack([to_chw(image) for image in images[i:i + self.batch_size]])
            out.append(ensemble_p_fake(self.models, batch, self.dev, self.tta).cpu().numpy())
        self.seconds += time.perf_counter() - start
        return np.concatenate(out).astype(np.float64)


def decoded_stream(paths: Sequence[Path], settings: FrameSettings, size, workers: int) -> Iterator[Decoded]:
    """Decoded videos in input order; with workers > 0, ffmpeg runs for the next videos while the model scores."""
    if workers <= 0:
        for path in paths:
            yield decode_video(path, settings, size)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        pending: list[Future] = []
        queue = iter(paths)
        for path in queue:
            pending.append(pool.submit(decode_video, path, settings, size))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done = pending.pop(0).result()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append(pool.submit(decode_video, nxt, settings, size))
            yield done


def predict_videos(scorer: Scorer, paths: Sequence[Path], settings: FrameSettings, size, workers: int = 2,
                   progress: bool = True, names: Sequence[str] | None = None,
                   cropper=None) -> tuple[pd.DataFrame, dict]:
    """Per-frame rows (error rows for videos that failed) and timings: wall, decode and model seconds.
    `names`: each video's filename column (video_names); default the bare file names. With a `cropper`
    (train.faces.FaceCropper, a faces checkpoint) a row per face instead, and a row with a note for a video
    without any face."""
    rows, start, decode_s, failed = [], time.perf_counter(), 0.0, 0
    names = iter(names if names is not None else [p.name for p in paths])
    bar = tqdm(total=len(paths), desc="videos", unit="video", disable=not progress, dynamic_ncols=True)
    for item in decoded_stream(paths, settings, None if cropper else size, workers):
        decode_s += item.decode_s
        name = next(names)
        base = {"filename": name, "video_id": str(Path(name).with_suffix("")), "label": None}
        if item.error is not None:
            failed += 1
            log.error("%s: %s", item.path, item.error)
            rows.append({**base, "error": item.error})
        elif cropper is not None:
            from train.faces import face_rows

            rows += face_rows(cropper, scorer, item, base)
        else:
            p_fake = scorer(item.images)
            rows += [{**base, "key": f"{base['video_id']}_{i:04d}", "index": i, "second": s, "p_fake": p}
                     for i, s, p in zip(item.indices, item.seconds, p_fake)]
        bar.update(1)
        bar.set_postfix(failed=failed)
    bar.close()
    stats = {"videos": len(paths), "failed": failed, "wall_s": time.perf_counter() - start, "decode_s": decode_s,
             "model_s": scorer.seconds}
    if cropper is None:
        return frames_frame(rows), stats
    from train.faces import FACE_ROW_COLUMNS, NO_FACE_NOTE

    stats.update(faces_s=cropper.seconds, no_face=sum(r.get("note") == NO_FACE_NOTE for r in rows))
    return frames_frame(rows, FRAME_COLUMNS + FACE_ROW_COLUMNS), stats


def frames_frame(rows: list[dict], columns: Sequence[str] = FRAME_COLUMNS) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns))
    return frame.astype({"index": "Int64", "second": "float64", "p_fake": "float64"})


def shard_samples(shards: str, manifests: Path, split: str, input: str = "frames") -> tuple[list[str], dict[str, str]]:
    """Shard locations of a split from dataset.json (its face shards for input "faces"), and video id -> file name
    from videos.parquet (if present)."""
    path = manifests / "dataset.json"
    if not path.is_file():
        raise PredictError(f"no manifest at {path}; pass --manifests (the folder `make shards` wrote)")
    dataset = json.loads(path.read_text())
    if input == "faces" and not dataset.get("faces"):
        raise PredictError(f"{path} has no faces: run the faces stage (make faces) before scoring faces from shards")
    entries = (dataset["faces"] if input == "faces" else dataset).get("shards", [])
    try:
        check_shard_entries(entries, path)
    except DataError as err:
        raise PredictError(str(err)) from None
    listed = [s for s in entries if s.get("split") == split]
    if not listed:
        raise PredictError(f"{path} lists no shards of split {split!r}")
    urls = [shard_url(str(shards), s["name"]) for s in listed]
    missing = [u for u in urls if is_local(str(shards)) and not Path(u).is_file()]
    if missing:
        raise PredictError(f"{len(missing)} {split} shards listed in {path} are missing, e.g. {missing[0]}")
    names = {}
    if (manifests / "videos.parquet").is_file():
        videos = pd.read_parquet(manifests / "videos.parquet", columns=["video_id", "path"]).dropna()
        base = [Path(p).name for p in videos["path"]]
        if len(set(base)) < len(base):  # e.g. FaceForensics++: the same TTT_SSS.mp4 under every method
            log.warning("several videos share a file name (e.g. %s): the filename column holds video ids instead",
                        pd.Series(base)[pd.Series(base).duplicated()].iloc[0])
            base = [f"{v}{Path(p).suffix}" for v, p in zip(videos["video_id"], videos["path"])]
        names = dict(zip(videos["video_id"], base))
    return urls, names


def predict_shards(scorer: Scorer, urls: Iterable[str], names: dict[str, str], size,
                   progress: bool = True) -> pd.DataFrame:
    """Per-frame rows for every sample of the shards (labels kept where the split has them)."""
    rows: list[dict] = []
    batch: list[tuple[dict, np.ndarray]] = []

    def flush() -> None:
        p_fake = scorer(np.stack([image for _, image in batch]))
        rows.extend({**meta, "p_fake": p} for (meta, _), p in zip(batch, p_fake))
        batch.clear()

    bar = tqdm(desc="frames", unit="frame", disable=not progress, dynamic_ncols=True)
    for url in urls:
        for sample in read_shard(url):
            meta = json.loads(sample["json"])
            video = meta.get("video_id") or sample["__key__"].rsplit("_", 1)[0]
            batch.append(({"filename": names.get(video, f"{video}.mp4"), "video_id": video, "key": sample["__key__"],
                           "index": meta.get("index"), "second": meta.get("second"),
                           "label": LABELS.get(meta.get("label")), "error": None},
                          decode_resized(sample["jpg"], size)))
            if len(batch) >= scorer.batch_size:
                flush()
            bar.update(1)
    if batch:
        flush()
    bar.close()
    return frames_frame(rows)


def video_scores(frames: pd.DataFrame, clip: float = 0.0, rule: str = "mean") -> pd.DataFrame:
    """filename, label = the rule (train.metrics.aggregate; mean by default) over the P(fake) of the video's frames
    or faces (FAILED_SCORE where it failed or has no face), in input order."""
    ok = frames[frames["error"].isna() & frames["p_fake"].notna()]
    means = ok.groupby("filename", sort=False)["p_fake"].agg(lambda p: metrics.aggregate(p.to_numpy(), rule))
    names = list(dict.fromkeys(frames["filename"]))
    scores = np.array([means.get(name, FAILED_SCORE) for name in names], dtype=np.float64)
    if clip > 0:
        scores = np.clip(scores, clip, 1 - clip)
    return pd.DataFrame({"filename": names, "label": scores})


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False, float_format="%.6f")
    os.replace(tmp, path)


def face_cropper(config: dict, size, device: str):
    """The faces stage's detect-and-crop for a checkpoint trained on faces (None for a frames checkpoint)."""
    if config.get("input", "frames") != "faces":
        return None
    settings = (config.get("extra") or {}).get("faces")
    if not settings:
        raise PredictError("the checkpoint was trained on faces but records no face settings (extra.faces)")
    from train.faces import FaceCropper

    log.info("faces checkpoint: each video's faces detected and cropped with %s", settings)
    return FaceCropper(settings, size, device)


def load_scorer(checkpoints: Path | Sequence[Path], device: str, batch_size: int | None,
                tta: str = "none") -> tuple[Scorer, dict]:
    """A Scorer over one checkpoint or an ensemble (refused unless they take the same input) and the first config."""
    paths = [checkpoints] if isinstance(checkpoints, (str, Path)) else list(checkpoints)
    try:
        ensemble = load_ensemble(paths, device)
    except EvaluateError as err:
        raise PredictError(str(err)) from None
    config = ensemble.configs[0]
    return Scorer(ensemble.models, ensemble.dev, batch_size or int(config["recipe"]["batch_size"]), tta), config


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--checkpoint", "checkpoints", required=True, multiple=True,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A checkpoint of train.run, e.g. runs/NAME/checkpoints/best.pt; repeat for an ensemble (mean "
                   "P(fake); the checkpoints must take the same input).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=Path("submission.csv"),
              help="Kaggle DFDC submission: filename,label with label = P(fake) of the video.")
@click.option("--frames-out", type=click.Path(dir_okay=False, path_type=Path),
              help="Per-frame CSV (filename, video_id, key, index, second, label, p_fake, error); a video that "
                   "failed has one row with its error.")
@click.option("--shards", help="Score a split that is already sharded instead of videos (with --split): a folder, a "
                               "URL prefix (s3://...) or a template such as 'pipe:aws s3 cp s3://b/{name} -'.")
@click.option("--manifests", type=click.Path(file_okay=False, path_type=Path),
              help="Folder with dataset.json: the frame settings, and the shard list with --shards "
                   "[default: the run's pipeline.json, then the checkpoint config's manifests; SHARDS/../manifests "
                   "with --shards].")
@click.option("--split", default="test", help="With --shards: the split to score.")
@click.option("--workers", type=click.IntRange(min=0), default=2,
              help="Videos decoded in parallel (one single-threaded ffmpeg each) while the model scores; 0 = serial.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Frames per forward pass [default: the recipe's].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto")
@click.option("--clip", type=click.FloatRange(0.0, 0.5, max_open=True), default=0.0,
              help="Clip each video's label to [clip, 1 - clip] (top DFDC entries used about 0.01); 0 = raw.")
@click.option("--tta", type=click.Choice(TTA_MODES), default="none", help="hflip: also score each mirrored frame.")
@click.option("--aggregate", "rule", type=click.Choice(RULES), default=None, show_default="the checkpoint's, else mean",
              help="How frames (or faces) make a video's label (confident = the DFDC winner's rule; see train.metrics).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(inputs, checkpoints, out, frames_out, shards, manifests, split, workers, batch_size, device, clip, tta, rule,
         quiet, verbose) -> None:
    """Score videos (files or folders, searched recursively) or a sharded split with a trained checkpoint.

    Each video is decoded exactly as the training shards were (pipeline.frames: same fps, size and JPEG quality),
    its frames scored with the validation transform (by each --checkpoint, averaged; with --tta hflip also mirrored),
    and its label is the --aggregate rule over its frames' P(fake) (the mean by default). A video that
    cannot be read gets label 0.5 in the submission and an error row in --frames-out; the others go on.

    Exit status: 0 when every video was scored, 1 when any video failed, 2 on a usage error.
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if bool(inputs) == bool(shards):
        raise click.UsageError("give either videos/folders or --shards DIR (with --split), not both nor neither")
    try:
        scorer, config = load_scorer(checkpoints, device, batch_size, tta)
        checkpoint = checkpoints[0]
        size = tuple(config["recipe"]["image_size"])
        if shards:
            if not manifests and not is_local(shards):
                raise PredictError("--shards is not a local folder: pass --manifests")
            urls, names = shard_samples(shards, Path(manifests or Path(shards).parent / "manifests"), split,
                                        config.get("input", "frames"))
            frames = predict_shards(scorer, urls, names, size, progress=not quiet)
            stats = {"videos": frames["video_id"].nunique(), "failed": 0}
        else:
            settings = frame_settings(checkpoint, config, manifests)
            paths = find_videos(inputs)
            if not paths:
                raise PredictError(f"no video files in {', '.join(map(str, inputs))}")
            log.info("%d videos; frames as the pipeline made them: fps %g, box %dx%d, quality %d (from %s); model "
                     "input %dx%d", len(paths), settings.fps, *settings.box, settings.quality, settings.source, *size)
            cropper = face_cropper(config, size, device)
            frames, stats = predict_videos(scorer, paths, settings, size, workers, progress=not quiet,
                                           names=video_names(paths, inputs), cropper=cropper)
        scores = video_scores(frames, clip, rule or config.get("aggregate", "mean"))
        if len(scores) != stats["videos"] or frames["filename"].nunique() != frames["video_id"].nunique():
            raise PredictError(f"{stats['videos']} videos scored but {len(scores)} rows to write: two videos share a "
                               "filename; nothing written")
    except (PredictError, WeightsError) as err:
        raise click.ClickException(str(err)) from None
    write_csv(scores, out)
    if frames_out:
        write_csv(frames, frames_out)
    click.echo(f"{stats['videos'] - stats['failed']} of {stats['videos']} videos scored -> {out}"
               + (f"; {stats['failed']} failed (label {FAILED_SCORE} in the submission"
                  + (f", errors in {frames_out})" if frames_out else "; pass --frames-out for the errors)")
                  if stats["failed"] else "")
               + (f"; {stats['no_face']} without any face (label {FAILED_SCORE}, noted in --frames-out)"
                  if stats.get("no_face") else ""))
    sys.exit(1 if stats["failed"] else 0)


if __name__ == "__main__":
    main()
