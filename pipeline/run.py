"""`python -m pipeline.run`: videos -> 1 fps JPEG frames in webdataset shards + a Parquet manifest."""
from __future__ import annotations

import logging
import os
import sys

import click

from dfd.cli import command, converter, default, reported, setup_logging, verbose_option

from pipeline.config import LAYOUTS, SKIP_FRAMES, PipelineConfig, parse_bytes, parse_part, parse_size
from pipeline.spec import DECODE_ALL, migrate
from pipeline.ffmpeg.locate import find_ffmpeg

log = logging.getLogger("pipeline")

SIZE = "{}x{}".format(*default(PipelineConfig, "size"))      # the option's text form of the config's defaults
PART = "{}/{}".format(*default(PipelineConfig, "part"))
SHARD_SIZE = f"{default(PipelineConfig, 'shard_size') // 10**6}MB"
VAL_FRACTION, SEED = default(PipelineConfig, "val_fraction"), default(PipelineConfig, "seed")
SKIP = default(PipelineConfig, "skip_frames")


@command()
@click.option("--videos", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Dataset root: DFDC parts with metadata.json, a FaceForensics++ tree, a folder with labels.csv, "
                   "or any folder of videos (unlabelled).")
@click.option("--shards", default=default(PipelineConfig, "shards"), help="Where the webdataset tar shards go.")
@click.option("--manifests", default=default(PipelineConfig, "manifests"),
              help="Where videos.parquet, frames.parquet, dataset.json go.")
@click.option("--fps", default=default(PipelineConfig, "fps"), type=float, help="Frames sampled per second of video.")
@click.option("--size", default=SIZE, callback=converter(parse_size),
              help="Fit frames inside this box, WIDTHxHEIGHT (the project's one size convention, also the "
                   "trainer's --image-size); portrait clips are fitted in it turned; never upscaled. A value "
                   "narrower than tall is refused.")
@click.option("--quality", default=default(PipelineConfig, "quality"), type=int,
              help="ffmpeg JPEG quality -q:v (2 is about libjpeg 90).")
@click.option("--val-fraction", default=None, type=float,
              help=f"Share of labelled groups in val. [default: the dataset's own, else {VAL_FRACTION}]")
@click.option("--seed", default=None, type=int, help=f"Split seed. [default: the dataset's own, else {SEED}]")
@click.option("--split-file", "split_files", multiple=True, metavar="[SPLIT=]FILE",
              help="An official split or test list whose assignment wins over the hash split; repeatable. "
                   "FaceForensics++'s train.json / val.json / test.json (split from the name), Celeb-DF-v2's "
                   "List_of_testing_videos.txt, a DFDC-style labels.csv (filename,label): test unless SPLIT= says. "
                   "[default: the files of the dataset's earlier runs]")
@click.option("--workers", default=default(PipelineConfig, "workers"), type=int, help="Parallel ffmpeg processes.")
@click.option("--shard-size", default=SHARD_SIZE, callback=converter(parse_bytes), help="Target tar size, e.g. 300MB.")
@click.option("--limit", default=default(PipelineConfig, "limit"), type=int,
              help="Only the first N videos (sorted by id), for a quick look.")
@click.option("--layout", default=default(PipelineConfig, "layout"), type=click.Choice(LAYOUTS),
              help="Force a dataset layout instead of detecting it (mixed: each dataset tree under the root with "
                   "its own layout, as auto does when it finds several).")
@click.option("--part", default=PART, callback=converter(parse_part),
              help="Process share K of N (machines sharing --shards and --manifests); merge with pipeline.merge.")
@click.option("--timeout", default=default(PipelineConfig, "timeout"), type=float,
              help="Seconds one video may take before it is failed.")
@click.option("--skip-frames", default=None, type=click.Choice(SKIP_FRAMES),
              help="Frames the decoder may skip: noref skips frames no other frame refers to (~0.6x the CPU on "
                   "DFDC's H.264; a sampled second may start a frame or two late), none decodes every frame. "
                   f"[default: the dataset's own, else {SKIP}]")
@click.option("--audio/--no-audio", default=default(PipelineConfig, "audio"),
              help="Keep each video's sound (mono 16-bit WAV in SHARDS/audio/, manifests/audio.parquet), from the "
                   "same ffmpeg run as the frames.")
@click.option("--audio-rate", default=default(PipelineConfig, "audio_rate"), type=int,
              help="Sample rate the sound is kept at (Hz).")
@click.option("--clip-frames", default=default(PipelineConfig, "clip_frames"), type=int,
              help="Also keep clips of this many consecutive frames at the video's own rate (SHARDS/clips/, "
                   "manifests/clips.parquet), from the same ffmpeg run: one starting at each sampled second once "
                   "the one before has ended. Needs every frame decoded (--skip-frames none, its default then). "
                   "0: no clips.")
@click.option("--clips-per-video", default=default(PipelineConfig, "clips_per_video"), type=int,
              help="At most this many clips per video, spread over it (MP4; the first ones elsewhere). "
                   "[default: one per sampled second]")
@click.option("--clip-size", default=None, callback=converter(parse_size),
              help="Fit the clips' frames inside this box, WIDTHxHEIGHT. [default: --size]")
@click.option("--clip-quality", default=default(PipelineConfig, "clip_quality"), type=int,
              help="The clips' JPEG quality -q:v. [default: --quality]")
@click.option("--retry-failed", is_flag=True, help="Decode videos that failed before again.")
@click.option("--strict", is_flag=True, help="Exit 1 if any video failed.")
@click.option("--allow-outside-paths", is_flag=True,
              help="Accept labels.csv / metadata.json entries naming files outside --videos (refused by default).")
@verbose_option
def main(videos, shards, manifests, fps, size, quality, val_fraction, seed, split_files, workers, shard_size, limit,
         layout, part, timeout, skip_frames, audio, audio_rate, clip_frames, clips_per_video, clip_size, clip_quality,
         retry_failed, strict, allow_outside_paths, verbose):
    """Decode every video once with ffmpeg into JPEG frames in webdataset shards, split 70:30 by group.

    Rerunning the same command resumes: finished shards are kept, videos added since are processed alone.
    """
    setup_logging(verbose)
    from pipeline.stages.frames.build import build, plan  # here, so that pool workers importing this module stay light
    from pipeline.stages.sections import SECTIONS
    from tqdm.contrib.logging import logging_redirect_tqdm

    if not os.path.isdir(videos):
        raise click.BadParameter(f"{videos}: no such folder", param_hint="--videos")
    with reported("rerun the same command: it resumes where it stopped"):
        find_ffmpeg()
        split = _split_defaults(manifests, val_fraction, seed, skip_frames, split_files, clip_frames)
        config = PipelineConfig(videos=videos, shards=shards, manifests=manifests, fps=fps, size=size,
                                quality=quality, workers=workers, shard_size=shard_size, limit=limit,
                                layout=layout, part=part, timeout=timeout, retry_failed=retry_failed, audio=audio,
                                audio_rate=audio_rate, allow_outside_paths=allow_outside_paths,
                                clip_frames=clip_frames, clips_per_video=clips_per_video, clip_size=clip_size,
                                clip_quality=clip_quality, **split)
        the_plan = plan(config)
        log.info("%s: layout %s, %d videos (%d in this run), %d workers, ffmpeg %s", videos, the_plan.layout,
                 len(the_plan.videos), len(the_plan.selected), config.workers, find_ffmpeg())
        with logging_redirect_tqdm():
            stats = build(the_plan, SECTIONS)
    if strict and stats["failed"]:
        log.error("--strict: %d videos failed (see %s/videos.parquet)", stats["failed"], manifests)
        sys.exit(1)


def _split_defaults(manifests: str, val_fraction: float | None, seed: int | None, skip_frames: str | None,
                    split_files: tuple, clip_frames: int = 0) -> dict:
    """Unset split settings and --skip-frames follow the dataset's earlier runs (or resplit; a dataset made before
    --skip-frames existed decoded every frame), else the config's defaults (--skip-frames none with clips, which
    need every frame); split files are read here (a bad one fails before anything is written) and kept as
    'SPLIT=/absolute/path'."""
    from pipeline.core.manifest import read_part_configs
    from pipeline.split.files import normalised

    previous = next(iter(read_part_configs(manifests).values()), None)
    fresh = DECODE_ALL if clip_frames else SKIP
    skip = (migrate("part", previous)["skip_frames"] if previous else fresh) if skip_frames is None else skip_frames
    previous = previous or {}
    return {"val_fraction": previous.get("val_fraction", VAL_FRACTION) if val_fraction is None else val_fraction,
            "seed": previous.get("seed", SEED) if seed is None else seed, "skip_frames": skip,
            "split_files": normalised(split_files) if split_files else tuple(previous.get("split_files", ()))}


if __name__ == "__main__":
    main()
