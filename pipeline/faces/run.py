"""`python -m pipeline.faces`: MTCNN faces of every frame in the frame shards -> face-crop shards + faces.parquet."""
from __future__ import annotations

import logging
import os
import sys

import click

log = logging.getLogger("pipeline.faces")


def _part(ctx, param, value):
    from ..config import ConfigError, parse_part

    try:
        return parse_part(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from exc


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--shards", default="shards", type=click.Path(file_okay=False, exists=True),
              help="The frame shards (face shards go to SHARDS/faces/).")
@click.option("--manifests", default="manifests", type=click.Path(file_okay=False, exists=True),
              help="The pipeline's manifests (faces.parquet and dataset.json's faces section go here).")
@click.option("--device", default="auto", type=click.Choice(["auto", "cpu", "cuda"]),
              help="auto: cuda where there is one (batched, one process), else a CPU process pool.")
@click.option("--workers", default=os.cpu_count() or 1, type=int, help="CPU processes (one torch thread each).")
@click.option("--detect-size", default=640, type=int, help="Long side of the copy MTCNN runs on.")
@click.option("--min-score", default=0.7, type=float, help="Final MTCNN probability a face needs.")
@click.option("--min-size", default=40, type=int, help="Drop faces whose box is shorter than this (frame px).")
@click.option("--margin", default=0.3, type=float, help="Crop margin on each side, as a share of the box.")
@click.option("--face-size", default=320, type=int, help="Crops are resized to this many pixels square.")
@click.option("--max-faces", default=4, type=int, help="At most this many faces per frame (the largest).")
@click.option("--part", default="1/1", callback=_part,
              help="Process share K of N of the frame shards; join with `python -m pipeline.merge`.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(shards, manifests, device, workers, detect_size, min_score, min_size, margin, face_size, max_faces,
         part, verbose):
    """Detect, track and crop the faces of every frame of the frame shards (never decoding a video again).

    Rerunning the same command resumes: finished frame shards are kept, new ones processed alone; after
    `pipeline.resplit` the faces are re-derived from cached detections without running the detector.
    """
    from ..run import setup_logging
    from ..manifest import LockError, lock
    from .detect import resolve_device
    from .settings import FaceSettings, FaceSettingsError
    from .stage import FacesError, build
    from tqdm.contrib.logging import logging_redirect_tqdm

    setup_logging(verbose)
    try:
        settings = FaceSettings(detect_size=detect_size, min_score=min_score, min_size=min_size, margin=margin,
                                face_size=face_size, max_faces=max_faces)
        device = resolve_device(device)
    except (FaceSettingsError, RuntimeError) as exc:
        raise click.UsageError(str(exc)) from exc
    tag = "" if part == (1, 1) else f"p{part[0]}of{part[1]}"
    log.info("%s: faces on %s, %d workers, %s", shards, device, workers, settings)
    try:
        with lock(manifests, f"faces{'-' + tag if tag else ''}"), logging_redirect_tqdm():
            stats = build(shards, manifests, settings, device, workers, part)
    except (FacesError, LockError) as exc:
        raise click.UsageError(str(exc)) from exc
    stats.setdefault("total_faces", stats.get("faces", 0))
    log.info("summary: %d shards done, %d skipped (already done), %d frames, %d faces on %d frames, "
             "%d of %d videos without a face, %d undecodable frames, %d frames detected (%d from cache) in %.1f s",
             stats.get("shards_done", 0), stats.get("shards_skipped", 0), stats.get("frames", 0),
             stats.get("faces", 0), stats.get("frames_with_faces", 0), stats.get("videos_without_faces", 0),
             stats.get("videos", 0), stats.get("undecodable", 0), stats.get("detected", 0), stats.get("cached", 0),
             stats.get("seconds", 0))
    if stats.get("shards_failed"):
        log.error("%d frame shards failed (see the errors above); their faces are missing", stats["shards_failed"])
        sys.exit(1)
    if stats.get("pending"):
        log.warning("%d frame shards have no faces yet (other --part runs?)", stats["pending"])


if __name__ == "__main__":
    main()
