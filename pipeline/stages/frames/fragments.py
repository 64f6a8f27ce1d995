"""A sealed frame shard's manifest fragments: the sound's, then the core's (the same for a run and a resplit)."""
from __future__ import annotations

from pathlib import Path

from pipeline.core import manifest
from pipeline.core.shards import audio_shard_name, clips_shard_name
from pipeline.stages.clips import manifest as clips_manifest
from pipeline.stages.sound import manifest as sound


def write_fragments(manifests: Path, shard: str, metas: list[dict], size: int, sha256: str | None,
                    audio: dict | None = None, clips: dict | None = None) -> None:
    """A sealed frame shard's fragments: the sound's rows (where its videos were asked for their sound), the clips'
    (where they were asked for clips), then the core's (its size and sha256, its audio and clip shards' records,
    frames, videos last: the shard is finished then)."""
    folder = manifest.parts_dir(manifests)
    folder.mkdir(parents=True, exist_ok=True)
    if any(m.get("audio") for m in metas):
        sound.write_fragment(folder / f"{shard[:-4]}.audio.parquet", metas,
                             audio_shard_name(shard) if audio else None)
    if any(m.get("clips") for m in metas):
        clips_manifest.write_fragment(folder / f"{shard[:-4]}.clips.parquet", metas,
                                      clips_shard_name(shard) if clips else None)
    manifest.write_fragment(manifests, shard, metas, size, sha256, {"audio": audio, "clips": clips})
