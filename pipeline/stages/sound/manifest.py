"""The sound's part of the manifest: a fragment per frame shard (parts/STEM.audio.parquet, the audio shard's size
and sha256 in STEM.shard.json), joined into manifests/audio.parquet and dataset.json's "audio" section, with each
fake's audio compared to its original's (audio_diff, audio_manipulated). The fragment is written beside the frame
shard's (pipeline.stages.frames.build.write_fragments); the section is rebuilt by pipeline.core.manifest.consolidate
as every stage's is (pipeline.stages.sections); read back through pipeline.dataset."""
from __future__ import annotations

import base64
import collections
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dfd.files import write_parquet

from pipeline.core.manifest import Stage, parts_dir
from pipeline.core.shards import audio_shard_name
from pipeline.stages.sound.wav import AudioError, compare

log = logging.getLogger(__name__)

AUDIO_TABLE = "audio.parquet"
# A fake whose sound differs from its original's by more than this (pipeline.stages.sound.wav.compare, dB) had it changed:
# AAC re-encoding at 32-128 kbit/s and resampling stay under 1 dB on real speech, another voice is above 5 dB
# (measured on the DFDC sample: AAC at 24 kbit/s 0.9 dB, MP3 0.2, delays of 10-260 ms 0.2-1.5, half the volume
# 0.7; the sample's other voices 6.4-8.7 dB; tests/pipeline/test_pipeline_audio_diff.py).
MANIPULATED_DB = 3.0
AUDIO_SCHEMA = pa.schema([
    ("video_id", pa.string()), ("split", pa.string()), ("label", pa.string()), ("has_audio", pa.bool_()),
    ("duration", pa.float64()), ("sample_rate", pa.int32()), ("codec", pa.string()), ("source_rate", pa.int32()),
    ("channels", pa.int32()), ("rms", pa.float64()), ("shard", pa.string()), ("offset", pa.int64()),
    ("bytes", pa.int64()), ("crc32", pa.int64()), ("status", pa.string()), ("error", pa.string()),
    ("warning", pa.string()), ("original", pa.string()), ("audio_diff", pa.float64()),
    ("audio_lag", pa.float64()), ("audio_manipulated", pa.bool_()), ("audio_note", pa.string()),
    ("fingerprint", pa.binary()),
])


def fragment_rows(metas: list[dict], audio_shard: str | None) -> list[dict]:
    """audio.parquet rows of a frame shard's videos (those that were asked for their sound)."""
    rows = []
    for m in metas:
        a = m.get("audio")
        if not a:
            continue
        fp = a.get("fingerprint")
        rows.append({**{k: a.get(k) for k in AUDIO_SCHEMA.names}, "original": m.get("original"),
                     "shard": audio_shard if a.get("offset") is not None else None,
                     "fingerprint": base64.b64decode(fp) if isinstance(fp, str) else fp})
    return rows


def write_fragment(path: Path, metas: list[dict], audio_shard: str | None) -> None:
    rows = [{k: r.get(k) for k in AUDIO_SCHEMA.names} for r in fragment_rows(metas, audio_shard)]
    write_parquet(pa.Table.from_pylist(rows, schema=AUDIO_SCHEMA), path)


def section_for_manifest(manifests: Path, shard_stats: list[dict], records: dict[str, dict]) -> dict | None:
    """For pipeline.core.manifest.consolidate(): audio.parquet and the "audio" section (None where no run kept
    sound); `records`: each frame shard's audio shard (size, sha256) as its STEM.shard.json holds it."""
    named = {shard: {"name": audio_shard_name(shard), **record} for shard, record in records.items()}
    return consolidate_audio(parts_dir(manifests), manifests, shard_stats, named)


def consolidate_audio(folder: Path, manifests: Path, shard_stats: list[dict], records: dict[str, dict]) -> dict | None:
    """Join the frame shards' audio fragments into audio.parquet, compare fakes with their originals; the
    dataset.json section (None where no run kept sound: then there is no audio.parquet either)."""
    paths = [folder / f"{s['name'][:-4]}.audio.parquet" for s in shard_stats]
    tables = [pq.read_table(p) for p in paths if p.is_file()]
    if not tables:
        (Path(manifests) / AUDIO_TABLE).unlink(missing_ok=True)
        return None
    rows = pa.concat_tables(tables).to_pylist()
    diff_originals(rows)
    for r in rows:  # fingerprints stay in the fragments: 12 KB per 10 s clip would make audio.parquet ~1.4 GB on DFDC
        r["fingerprint"] = None
    write_parquet(pa.Table.from_pylist(rows, schema=AUDIO_SCHEMA).drop_columns(["fingerprint"]),
                  Path(manifests) / AUDIO_TABLE)
    return _section(rows, shard_stats, records)


def diff_originals(rows: list[dict]) -> None:
    """audio_diff / audio_manipulated / audio_note of each fake against its original's sound, in place."""
    by_id = {r["video_id"]: r for r in rows}
    for r in rows:
        if r["label"] != "fake":
            continue
        original = by_id.get(r["original"]) if r["original"] else None
        r["audio_diff"], r["audio_lag"], r["audio_manipulated"] = None, None, None
        if not r["original"]:
            r["audio_note"] = "no original named for this fake"
        elif original is None:
            r["audio_note"] = "original not in the dataset"
        elif r["status"] != "done" or original["status"] != "done":
            r["audio_note"] = "sound not decoded: " + ("this fake's" if r["status"] != "done" else "the original's")
        elif not r["has_audio"] and not original["has_audio"]:
            r["audio_note"] = "no sound in either"
        elif not r["has_audio"]:
            r["audio_note"] = "the fake has no sound (its original has)"
        elif not original["has_audio"]:
            r["audio_manipulated"], r["audio_note"] = True, "sound added: the original has none"
        else:
            try:
                r["audio_diff"], r["audio_lag"] = compare(r["fingerprint"], original["fingerprint"])
            except AudioError as exc:
                r["audio_note"] = str(exc)
                continue
            r["audio_manipulated"], r["audio_note"] = r["audio_diff"] > MANIPULATED_DB, None


def _section(rows: list[dict], shard_stats: list[dict], records: dict[str, dict]) -> dict:
    counts: collections.Counter = collections.Counter()
    for r in rows:
        if r["has_audio"] and r["status"] == "done":
            counts[(r["split"], r["label"] or "unlabelled")] += 1
    nested: dict = {}
    for (split, label), n in sorted(counts.items()):
        nested.setdefault(split, {})[label] = n
    per_shard = collections.Counter(r["shard"] for r in rows if r["shard"])
    shards = [{"name": r["name"], "frame_shard": s["name"], "split": s["split"], "label": s["label"],
               "videos": per_shard[r["name"]], "size": r["size"], "sha256": r["sha256"]}
              for s in shard_stats if (r := records.get(s["name"]))]
    fakes = [r for r in rows if r["label"] == "fake"]
    rates = sorted({r["sample_rate"] for r in rows if r["sample_rate"]})
    return {"format": "wav", "codec": "pcm_s16le", "channels": 1, "sample_rate": rates[0] if len(rates) == 1 else rates,
            "videos": len(rows), "with_audio": sum(bool(r["has_audio"]) and r["status"] == "done" for r in rows),
            "without_audio": sum(not r["has_audio"] for r in rows),
            "failed": sum(r["status"] != "done" for r in rows),
            "seconds": round(sum(r["duration"] or 0 for r in rows), 3), "counts": nested,
            "manipulated": {"true": sum(r["audio_manipulated"] is True for r in fakes),
                            "false": sum(r["audio_manipulated"] is False for r in fakes),
                            "null": sum(r["audio_manipulated"] is None for r in fakes)},
            "manipulated_threshold_db": MANIPULATED_DB, "shards": shards}


STAGE = Stage("audio", "parts/STEM.audio.parquet (+ the audio shard's record in parts/STEM.shard.json)",
              section_for_manifest)
