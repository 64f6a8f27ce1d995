"""`python -m pipeline.faces`: MTCNN faces of every frame in the frame shards -> face-crop shards + faces.parquet
(and, where the dataset has clips, face-clip shards + face_clips.parquet)."""
from __future__ import annotations

import logging
import sys

import click

from dfd.cli import command, converter, default, device_option, reported, setup_logging, verbose_option
from dfd.threads import usable_cores

from pipeline.config import PipelineConfig, parse_part
from pipeline.spec import FaceCrop

log = logging.getLogger("pipeline.faces")


@command()
@click.option("--shards", default=default(PipelineConfig, "shards"), type=click.Path(file_okay=False, exists=True),
              help="The frame shards (face shards go to SHARDS/faces/).")
@click.option("--manifests", default=default(PipelineConfig, "manifests"),
              type=click.Path(file_okay=False, exists=True),
              help="The pipeline's manifests (faces.parquet and dataset.json's faces section go here).")
@device_option(help="auto: cuda where there is one (batched, one process), else a CPU process pool.")
@click.option("--workers", default=usable_cores, type=int, show_default="the usable cores",
              help="CPU processes (one torch thread each).")
@click.option("--detect-size", default=default(FaceCrop, "detect_size"), type=int,
              help="Long side of the copy MTCNN runs on.")
@click.option("--min-score", default=default(FaceCrop, "min_score"), type=float,
              help="Final MTCNN probability a face needs.")
@click.option("--min-size", default=default(FaceCrop, "min_size"), type=int,
              help="Drop faces whose box is shorter than this (frame px).")
@click.option("--margin", default=default(FaceCrop, "margin"), type=float,
              help="Crop margin on each side, as a share of the box.")
@click.option("--face-size", default=default(FaceCrop, "face_size"), type=int,
              help="Crops are resized to this many pixels square.")
@click.option("--max-faces", default=default(FaceCrop, "max_faces"), type=int,
              help="At most this many faces per frame (the largest).")
@click.option("--part", default="{}/{}".format(*default(PipelineConfig, "part")),
              callback=converter(parse_part),
              help="Process share K of N of the frame shards; join with `python -m pipeline.merge`.")
@verbose_option
def main(shards, manifests, device, workers, detect_size, min_score, min_size, margin, face_size, max_faces,
         part, verbose):
    """Detect, track and crop the faces of every frame of the frame shards (never decoding a video again).

    On a dataset made with --clip-frames T it also cuts face tubes: each face of a clip's sampled frame cropped
    across the clip's T frames with one box (SHARDS/face_clips/, face_clips.parquet; `dfd train --input
    face-clips`).

    Rerunning the same command resumes: finished frame shards are kept, new ones processed alone; after
    `pipeline.resplit` the faces are re-derived from cached detections without running the detector.
    """
    from pipeline.core.manifest import lock
    from pipeline.stages.faces.detect import resolve_device
    from pipeline.stages.faces.stage import build
    from tqdm.contrib.logging import logging_redirect_tqdm

    setup_logging(verbose)
    tag = "" if part == (1, 1) else f"p{part[0]}of{part[1]}"
    with reported():
        settings = FaceCrop(detect_size=detect_size, min_score=min_score, min_size=min_size, margin=margin,
                                face_size=face_size, max_faces=max_faces)
        device = resolve_device(device)
        log.info("%s: faces on %s, %d workers, %s", shards, device, workers, settings)
        with lock(manifests, f"faces{'-' + tag if tag else ''}"), logging_redirect_tqdm():
            stats = build(shards, manifests, settings, device, workers, part)
    _summary(stats)


def _summary(stats: dict) -> None:
    """The run's counts on one line; exit 1 where a frame shard failed."""
    stats.setdefault("total_faces", stats.get("faces", 0))
    log.info("summary: %d shards done, %d skipped (already done), %d frames, %d faces on %d frames, "
             "%d of %d videos without a face, %d undecodable frames, %d frames detected (%d from cache) in %.1f s",
             stats.get("shards_done", 0), stats.get("shards_skipped", 0), stats.get("frames", 0),
             stats.get("faces", 0), stats.get("frames_with_faces", 0), stats.get("videos_without_faces", 0),
             stats.get("videos", 0), stats.get("undecodable", 0), stats.get("detected", 0), stats.get("cached", 0),
             stats.get("seconds", 0))
    if "total_tubes" in stats:
        log.info("face clips: %d tubes made in this run, %d clips without a tube (face_clips.parquet says why); "
                 "%d tubes in all", stats.get("tubes", 0), stats.get("clips_without_tube", 0), stats["total_tubes"])
    if stats.get("shards_failed"):
        log.error("%d frame shards failed (see the errors above); their faces are missing", stats["shards_failed"])
        sys.exit(1)
    if stats.get("pending"):
        log.warning("%d frame shards have no faces yet (other --part runs?)", stats["pending"])


if __name__ == "__main__":
    main()
