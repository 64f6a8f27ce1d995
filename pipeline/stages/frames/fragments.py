"""A sealed frame shard's manifest fragments: the sound's, then the core's (the same for a run and a resplit)."""
from __future__ import annotations

from pathlib import Path

from pipeline.core import manifest
from pipeline.core.shards import audio_shard_name
from pipeline.stages.sound import manifest as sound


def write_fragments(manifests: Path, shard: str, metas: list[dict], size: int, sha256: str | None,
                    audio: dict | None = None) -> None:
    """A sealed frame shard's fragments: the sound's rows (where its videos were asked for their sound), then the
    core's (its size and sha256, its audio shard's record, frames, videos last: the shard is finished then)."""
    folder = manifest.parts_dir(manifests)
    folder.mkdir(parents=True, exist_ok=True)
    if any(m.get("audio") for m in metas):
        sound.write_fragment(folder / f"{shard[:-4]}.audio.parquet", metas,
                             audio_shard_name(shard) if audio else None)
    manifest.write_fragment(manifests, shard, metas, size, sha256, {"audio": audio})
