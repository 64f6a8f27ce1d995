"""Clips with sound for the audio tests: a small lavfi picture muxed with a lavfi sound or a real DFDC clip's speech."""
from __future__ import annotations

import subprocess
from pathlib import Path

from pipeline.ffmpeg.locate import find_ffmpeg

from .paths import SHARED_DATA

DFDC_PART = SHARED_DATA / "dfdc_sample" / "dfdc_train_part_0"


def dfdc_clips() -> list[Path]:
    return sorted(DFDC_PART.glob("*.mp4"))


def av_clip(path: Path, audio: list[str] | None, video_seconds: float = 2.0, audio_args: list[str] | None = None,
            container_args: list[str] | None = None, video_source: str = "testsrc2") -> Path:
    """A 160x90 25 fps H.264 picture of `video_seconds` with the sound of the ffmpeg input arguments `audio`
    (e.g. ['-f', 'lavfi', '-i', 'sine=d=2'] or ['-ss', '1', '-t', '3', '-i', 'real.mp4']), encoded with
    `audio_args` (default AAC); no `audio`: picture only. The sound keeps its own length (no -shortest)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [find_ffmpeg(), "-y", "-v", "error", "-t", str(video_seconds), "-f", "lavfi", "-i",
           f"{video_source}=size=160x90:rate=25"]
    if audio:
        cmd += audio + ["-map", "0:v", "-map", "1:a:0"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    cmd += (audio_args or ["-c:a", "aac"]) if audio else ["-an"]
    cmd += (container_args or []) + [str(path)]
    subprocess.run(cmd, check=True)
    return path


def damage_sound(src: Path, dst: Path, keep: int = 8, every: int = 1, seed: int = 0) -> Path:
    """A copy of `src` whose audio packets are damaged and whose video packets are left alone: ffprobe
    -show_packets gives each packet of the first audio stream (its byte position and size in the file); of every
    `every`-th one the first `keep` bytes (an MP3 frame's 4-byte header and a little more) stay and the rest become seeded noise."""
    import json
    import random

    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries", "packet=pos,size",
                            "-of", "json", str(src)], capture_output=True, text=True, check=True).stdout
    packets = [(int(p["pos"]), int(p["size"])) for p in json.loads(probe)["packets"]]
    data, rng = bytearray(src.read_bytes()), random.Random(seed)
    for pos, size in packets[::every]:
        data[pos + keep:pos + size] = rng.randbytes(size - keep)
    dst.write_bytes(bytes(data))
    return dst


def damaged_clip(folder: Path, seconds: float = 4.0) -> tuple[Path, Path]:
    """(an intact clip, its copy with damaged sound): 160x90 H.264 with a 440 Hz sine of `seconds` as MP3 in MP4;
    every MP3 packet of the copy keeps its first 8 bytes and gets noise for the rest (ffmpeg exits 0 and decodes
    1.8 s of the 4 s, at -10 dBFS with a tenth of the samples at full scale); the picture's packets are untouched."""
    good = av_clip(folder / "intact.mp4", ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:d={seconds}"],
                   seconds, ["-c:a", "libmp3lame", "-b:a", "64k"])
    return good, damage_sound(good, folder / "damaged.mp4")


def pcm(path: Path, rate: int = 16000, start: float = 0.0, seconds: float | None = None) -> bytes:
    """A file's first audio stream as s16le mono at `rate` (decoded by ffmpeg on its own, for comparisons)."""
    cmd = [find_ffmpeg(), "-v", "error", "-ss", str(start), "-i", str(path)]
    cmd += (["-t", str(seconds)] if seconds else []) + ["-vn", "-ac", "1", "-ar", str(rate), "-f", "s16le", "-"]
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def check_audio_agrees(shards: Path, manifests: Path) -> dict:
    """Assert that audio.parquet, dataset.json's audio section and the audio shards describe each other exactly;
    returns {video_id: (sha1 of the WAV, its json member)} for comparing datasets made in different ways."""
    import hashlib
    import json
    import tarfile

    import pyarrow.parquet as pq

    from pipeline.stages.sound.wav import read_wav

    shards, manifests = Path(shards), Path(manifests)
    rows = pq.read_table(manifests / "audio.parquet").to_pylist()
    videos = {v["video_id"]: v for v in pq.read_table(manifests / "videos.parquet").to_pylist()}
    section = json.loads((manifests / "dataset.json").read_text())["audio"]
    assert len({r["video_id"] for r in rows}) == len(rows), "a video twice in audio.parquet"
    assert {r["video_id"] for r in rows} == {v for v, row in videos.items() if row["status"] == "done"}
    listed = {s["name"] for s in section["shards"]}
    assert listed == {f"audio/{p.name}" for p in (shards / "audio").glob("*.tar")} == \
        {r["shard"] for r in rows if r["shard"]}
    assert not list((shards / "audio").glob(".*.tmp")), "temporary audio shards left behind"
    out = {}
    for name in sorted(listed):
        with tarfile.open(shards / name) as tar:
            members = tar.getmembers()
            by_offset = {m.offset: i for i, m in enumerate(members)}
            mine = [r for r in rows if r["shard"] == name]
            assert sorted(m.name for m in members) == sorted(n for r in mine for n in (f"{r['video_id']}.wav",
                                                                                        f"{r['video_id']}.json"))
            for r in mine:
                i = by_offset[r["offset"]]
                wav = tar.extractfile(members[i]).read()
                sample = json.loads(tar.extractfile(members[i + 1]).read())
                assert members[i].name == f"{r['video_id']}.wav" and len(wav) == r["bytes"]
                assert zlib_crc(wav) == r["crc32"]
                samples, rate = read_wav(wav)
                assert rate == r["sample_rate"] and abs(len(samples) / rate - r["duration"]) < 1e-6
                v = videos[r["video_id"]]
                assert (sample["split"], sample["label"], r["split"], r["label"]) == (v["split"], v["label"]) * 2
                assert name.startswith(f"audio/{v['split']}-{v['label']}-")
                out[r["video_id"]] = (hashlib.sha1(wav).hexdigest(), {k: sample[k] for k in sample if k != "split"})
    for r in rows:
        assert (r["shard"] is not None) == (r["has_audio"] and r["status"] == "done"), r
    return out


def zlib_crc(data: bytes) -> int:
    import zlib

    return zlib.crc32(data)
