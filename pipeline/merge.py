"""`python -m pipeline.merge`: join the manifest fragments of every part (`--part K/N` runs) into one manifest."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import click

from dfd.cli import command, default, reported, setup_logging, verbose_option
from dfd.errors import UsageProblem

from pipeline.core import manifest
from pipeline.config import PipelineConfig
from pipeline.spec import migrate
from pipeline.ffmpeg.locate import FFmpegNotFound, ffmpeg_version, find_ffmpeg
from pipeline.stages.sections import SECTIONS

log = logging.getLogger(__name__)


class MergeError(UsageProblem, RuntimeError):
    """The parts cannot be merged: missing, or made with different settings."""


def merge(manifests: Path, expect_parts: int | None = None,
          sections: Mapping[str, manifest.SectionBuilder] = SECTIONS) -> dict:
    """Check that every part used the same settings (and, if asked, that all N parts are there), then join (with
    the later stages' `sections` of dataset.json: the faces of the parts that ran the faces stage)."""
    configs = manifest.read_part_configs(manifests)
    if not configs:
        raise MergeError(f"{manifests}: no part configs found (run pipeline.run --part K/N first)")
    keys = ("fps", "size", "quality", "skip_frames", "seed", "val_fraction", "grouping", "audio", "audio_rate",
            "split_files", "clips")
    configs = {name: migrate("part", cfg, name) for name, cfg in configs.items()}
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
    summary = manifest.consolidate(manifests, {"config": config, "ffmpeg": version}, sections)
    log.info("merged %d parts: %d shards, videos %s", len(parts), len(summary["shards"]), summary["videos"])
    return summary


@command()
@click.option("--manifests", default=default(PipelineConfig, "manifests"),
              type=click.Path(file_okay=False, exists=True))
@click.option("--parts", "expect_parts", default=None, type=int, help="Fail unless all N parts have finished.")
@verbose_option
def main(manifests, expect_parts, verbose):
    """Merge the fragments written by `pipeline.run --part K/N` on several machines into one manifest."""
    setup_logging(verbose)
    with reported("rerun the same command"), manifest.lock(Path(manifests), "merge"):
        merge(Path(manifests), expect_parts)


if __name__ == "__main__":
    main()
