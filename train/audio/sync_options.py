"""The lip-sync options `dfd evaluate` and `dfd benchmark` share (--sync, --sync-weights), the function they hand
the report (train.audio.sync_of_split.with_sync bound to a test set's manifests) and the summary's words."""
from __future__ import annotations

import functools
from pathlib import Path

import click

from .syncnet import SYNCNET_ENV, SYNCNET_LICENCE


def sync_options(f):
    f = click.option("--sync-weights", type=click.Path(dir_okay=False, path_type=Path), envvar=SYNCNET_ENV,
                     help=f"SyncNet's weights (syncnet_v2.model of joonson/syncnet_python, {SYNCNET_LICENCE}; "
                          f"not shipped) for --sync instead of the signal-level measure [env {SYNCNET_ENV}].")(f)
    return click.option("--sync", "with_sync", is_flag=True,
                         help="Lip sync as a third column: each video's file (its path in videos.parquet; the "
                              "shards do not keep the native frame rate) measured as `dfd check --sync` does, its "
                              "P(fake) (picture and sound do not belong together) per video and its video-level "
                              "metrics (balanced accuracy at the rule's threshold, 0.5). A video not measured (file "
                              "gone, no sound, no speech, no face) is named and left out of them.")(f)


def sync_function(manifests: str | Path, device: str, weights: Path | None):
    """What the report calls with a video table (train.report.evaluation.evaluate's `sync`)."""
    from .sync_of_split import with_sync
    from .syncnet import load_syncnet

    if weights is not None:
        load_syncnet(weights)  # a bad file: one line naming it, before any scoring
    return functools.partial(with_sync, manifests=manifests, device=device, weights=weights)


def sync_summary(result: dict) -> str:
    """The summary line's lip-sync part ("" without --sync)."""
    if "sync" not in result:
        return ""
    level = result["sync"]
    return (f"; lip sync of {level['videos']} videos" + (f" ({level['not_measured']} not measured, named above)"
                                                         if level["not_measured"] else ""))
