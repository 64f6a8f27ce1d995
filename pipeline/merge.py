"""`python -m pipeline.merge`: join the manifest fragments of every part (`--part K/N` runs) into one manifest."""
from __future__ import annotations

import logging
from pathlib import Path

import click

from . import manifest
from .diskfull import is_full, one_line
from .ffmpeg import FFmpegNotFound, ffmpeg_version, find_ffmpeg

log = logging.getLogger(__name__)


class MergeError(RuntimeError):
    """The parts cannot be merged: missing, or made with different settings."""


def merge(manifests: Path, expect_parts: int | None = None) -> dict:
    """Check that every part used the same settings (and, if asked, that all N parts are there), then join."""
    configs = manifest.read_part_configs(manifests)
    if not configs:
        raise MergeError(f"{manifests}: no part configs found (run pipeline.run --part K/N first)")
    keys = ("fps", "size", "quality", "seed", "val_fraction", "grouping")
    first_name, first = next(iter(configs.items()))
    for name, cfg in configs.items():
        for key in keys:
            if cfg.get(key) != first.get(key):
                raise MergeError(f"{name} has {key}={cfg.get(key)} but {first_name} has {first.get(key)}")
    parts = {tuple(c["part"]) for c in configs.values()}
    n = expect_parts or max(p[1] for p in parts)
    missing = sorted({(k, n) for k in range(1, n + 1)} - parts)
    if missing and any(p[1] == n for p in parts):
        raise MergeError(f"{manifests}: parts {', '.join(f'{k}/{n}' for k, n in missing)} have not finished")
    try:
        version = ffmpeg_version(find_ffmpeg())
    except FFmpegNotFound:
        version = "unknown"
    config = {**first, "part": [1, 1], "parts": sorted(list(p) for p in parts)}
    summary = manifest.consolidate(manifests, {"config": config, "ffmpeg": version})
    log.info("merged %d parts: %d shards, videos %s", len(parts), len(summary["shards"]), summary["videos"])
    return summary


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--manifests", default="manifests", type=click.Path(file_okay=False, exists=True))
@click.option("--parts", "expect_parts", default=None, type=int, help="Fail unless all N parts have finished.")
def main(manifests, expect_parts):
    """Merge the fragments written by `pipeline.run --part K/N` on several machines into one manifest."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with manifest.lock(Path(manifests), "merge"):
            merge(Path(manifests), expect_parts)
    except (MergeError, manifest.LockError) as exc:
        raise click.UsageError(str(exc)) from exc
    except OSError as exc:
        if not is_full(exc):
            raise
        raise click.ClickException(one_line(exc, "rerun the same command")) from None


if __name__ == "__main__":
    main()
