"""`python -m pipeline.run`: videos -> 1 fps JPEG frames in webdataset shards + a Parquet manifest."""
from __future__ import annotations

import logging
import os
import sys

import click

from .config import ConfigError, PipelineConfig, parse_bytes, parse_part, parse_size
from .discover import DiscoveryError
from .diskfull import is_full, one_line
from .ffmpeg import FFmpegNotFound, find_ffmpeg

log = logging.getLogger("pipeline")


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def _converter(fn, name):
    def convert(ctx, param, value):
        if value is None:
            return None
        try:
            return fn(value)
        except ConfigError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc
    convert.__name__ = name
    return convert


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--videos", required=True, type=click.Path(file_okay=False, path_type=str),
              help="Dataset root: DFDC parts with metadata.json, a FaceForensics++ tree, a folder with labels.csv, "
                   "or any folder of videos (unlabelled).")
@click.option("--shards", default="shards", help="Where the webdataset tar shards go.")
@click.option("--manifests", default="manifests", help="Where videos.parquet, frames.parquet, dataset.json go.")
@click.option("--fps", default=1.0, type=float, help="Frames sampled per second of video.")
@click.option("--size", default="1280x720", callback=_converter(parse_size, "size"),
              help="Fit frames inside this box, WIDTHxHEIGHT (the project's one size convention, also the "
                   "trainer's --image-size); portrait clips are fitted in it turned; never upscaled. A value "
                   "narrower than tall is refused.")
@click.option("--quality", default=2, type=int, help="ffmpeg JPEG quality -q:v (2 is about libjpeg 90).")
@click.option("--val-fraction", default=None, type=float,
              help="Share of labelled groups in val. [default: the dataset's own, else 0.3]")
@click.option("--seed", default=None, type=int, help="Split seed. [default: the dataset's own, else 0]")
@click.option("--workers", default=os.cpu_count() or 1, type=int, help="Parallel ffmpeg processes.")
@click.option("--shard-size", default="300MB", callback=_converter(parse_bytes, "shard_size"),
              help="Target tar size, e.g. 300MB.")
@click.option("--limit", default=None, type=int, help="Only the first N videos (sorted by id), for a quick look.")
@click.option("--layout", default="auto", type=click.Choice(["auto", "dfdc", "ffpp", "csv", "unlabelled", "mixed"]),
              help="Force a dataset layout instead of detecting it (mixed: each dataset tree under the root with "
                   "its own layout, as auto does when it finds several).")
@click.option("--part", default="1/1", callback=_converter(parse_part, "part"),
              help="Process share K of N (machines sharing --shards and --manifests); merge with pipeline.merge.")
@click.option("--timeout", default=600.0, type=float, help="Seconds one video may take before it is failed.")
@click.option("--retry-failed", is_flag=True, help="Decode videos that failed before again.")
@click.option("--strict", is_flag=True, help="Exit 1 if any video failed.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(videos, shards, manifests, fps, size, quality, val_fraction, seed, workers, shard_size, limit, layout,
         part, timeout, retry_failed, strict, verbose):
    """Decode every video once with ffmpeg into JPEG frames in webdataset shards, split 70:30 by group.

    Rerunning the same command resumes: finished shards are kept, videos added since are processed alone.
    """
    setup_logging(verbose)
    from .distribute import PlanError, build, plan  # here, so that pool workers importing this module stay light
    from .manifest import LockError
    from tqdm.contrib.logging import logging_redirect_tqdm

    if not os.path.isdir(videos):
        raise click.BadParameter(f"{videos}: no such folder", param_hint="--videos")
    try:
        find_ffmpeg()
        split = _split_defaults(manifests, val_fraction, seed)
        config = PipelineConfig(videos=videos, shards=shards, manifests=manifests, fps=fps, size=size,
                                quality=quality, workers=workers, shard_size=shard_size, limit=limit,
                                layout=layout, part=part, timeout=timeout, retry_failed=retry_failed, **split)
        the_plan = plan(config)
    except (ConfigError, DiscoveryError, PlanError, FFmpegNotFound) as exc:
        raise click.UsageError(str(exc)) from exc
    log.info("%s: layout %s, %d videos (%d in this run), %d workers, ffmpeg %s", videos, the_plan.layout,
             len(the_plan.videos), len(the_plan.selected), config.workers, find_ffmpeg())
    try:
        with logging_redirect_tqdm():
            stats = build(the_plan)
    except LockError as exc:
        raise click.UsageError(str(exc)) from exc
    except OSError as exc:
        if not is_full(exc):
            raise
        raise click.ClickException(one_line(exc, "rerun the same command: it resumes where it stopped")) from None
    if strict and stats["failed"]:
        log.error("--strict: %d videos failed (see %s/videos.parquet)", stats["failed"], manifests)
        sys.exit(1)


def _split_defaults(manifests: str, val_fraction: float | None, seed: int | None) -> dict:
    """Unset split settings follow the dataset's earlier runs (or resplit), else 0.3 and 0."""
    from .manifest import read_part_configs

    previous = next(iter(read_part_configs(manifests).values()), {})
    return {"val_fraction": previous.get("val_fraction", 0.3) if val_fraction is None else val_fraction,
            "seed": previous.get("seed", 0) if seed is None else seed}


if __name__ == "__main__":
    main()
