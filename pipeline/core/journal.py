"""The resplit journal and its recovery, apart from resplit itself: every pipeline command that touches the shards
(pipeline.run at start, pipeline.resplit) first finishes or undoes a resplit that was interrupted."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from dfd.files import write_bytes

from pipeline.core import manifest
from pipeline.config import GROUPING
from pipeline.core.shards import AUDIO_DIR, CLIPS_DIR, audio_shard_name, clips_shard_name

log = logging.getLogger(__name__)
JOURNAL = "resplit.json"


def recover(shards: Path, manifests: Path, interrupted: bool = True) -> None:
    """Finish or undo a resplit that was interrupted (its journal says which)."""
    journal_path = manifest.parts_dir(manifests) / JOURNAL
    if not journal_path.is_file():
        return
    journal = json.loads(journal_path.read_text())
    if journal["phase"] == "committed":
        if interrupted:
            log.warning("finishing an interrupted resplit")
        _remove_shards(shards, manifests, journal["old"])
        _update_configs(manifests, journal["seed"], journal["val_fraction"], journal.get("split_files", []))
    else:
        log.warning("undoing an interrupted resplit")
        _remove_shards(shards, manifests, journal["new"])
        for tmp in [*shards.glob(".*.tar.tmp"), *shards.glob(f"{AUDIO_DIR}/.*.tar.tmp"),
                    *shards.glob(f"{CLIPS_DIR}/.*.tar.tmp")]:
            tmp.unlink()
    journal_path.unlink()


def _remove_shards(shards: Path, manifests: Path, names: list[str]) -> None:
    folder = manifest.parts_dir(manifests)
    for name in names:
        for path in (folder / f"{name[:-4]}.videos.parquet", folder / f"{name[:-4]}.frames.parquet",
                     folder / f"{name[:-4]}.audio.parquet", folder / f"{name[:-4]}.clips.parquet",
                     folder / f"{name[:-4]}.shard.json", shards / name, shards / audio_shard_name(name),
                     shards / clips_shard_name(name)):
            path.unlink(missing_ok=True)


def _update_configs(manifests: Path, seed: int, val_fraction: float, split_files: list) -> None:
    for name, cfg in manifest.read_part_configs(manifests).items():
        cfg.update(seed=seed, val_fraction=val_fraction, grouping=GROUPING, split_files=split_files)
        write_bytes(manifest.parts_dir(manifests) / name, json.dumps(cfg, indent=2).encode(), durable=True)
