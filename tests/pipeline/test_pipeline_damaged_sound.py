"""Issue 28 item 7: a clip whose audio packets are damaged (its picture's intact) gets a failed audio row with the
reason, its frames kept; sound that decodes to clipping noise or to part of its stream says so. The damaged clips are
real files: an MP3 sine muxed with H.264 by the real ffmpeg, its audio packets (found with ffprobe -show_packets)
overwritten with noise after their first bytes (helpers.sound.damage_sound)."""
from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from helpers.commands import run_pipeline
from helpers.sound import damage_sound, damaged_clip
from pipeline.ffmpeg.extract import damage, extract, extract_sound

RATE = 16000


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    part = tmp_path_factory.mktemp("damaged") / "videos" / "dfdc_train_part_0"
    intact, damaged = damaged_clip(part)
    (part / "metadata.json").write_text(json.dumps({p.name: {"label": "REAL", "split": "train", "original": None}
                                                    for p in (intact, damaged)}))
    return intact, damaged


def test_damaged_packets_fail_the_sound_and_keep_the_frames(clips, tmp_path):
    intact, damaged = clips
    run_pipeline(intact.parent.parent, tmp_path, "--size", "128x72")
    videos = {v["video_id"]: v for v in pq.read_table(tmp_path / "manifests" / "videos.parquet").to_pylist()}
    sound = {r["video_id"]: r for r in pq.read_table(tmp_path / "manifests" / "audio.parquet").to_pylist()}
    ids = {p.stem: next(k for k in videos if k.endswith(p.stem)) for p in (intact, damaged)}
    ok, bad = ids[intact.stem], ids[damaged.stem]
    assert videos[ok]["status"] == videos[bad]["status"] == "done"
    assert videos[ok]["n_frames"] == videos[bad]["n_frames"] == 4  # the picture's packets are untouched
    assert sound[ok]["status"] == "done" and sound[ok]["error"] is None and sound[ok]["shard"]
    assert sound[bad]["status"] == "failed" and sound[bad]["has_audio"] and sound[bad]["shard"] is None
    assert sound[bad]["error"].startswith("damaged: decodes to 1.") and "of the stream's 4.0" in sound[bad]["error"]
    section = json.loads((tmp_path / "manifests" / "dataset.json").read_text())["audio"]
    assert (section["with_audio"], section["failed"]) == (1, 1)


def test_clipping_noise_and_partial_sound_are_named(clips, tmp_path):
    intact, damaged = clips
    alone = extract_sound(str(damaged), RATE)  # the path `dfd check --audio-model` takes
    assert alone.status == "failed" and alone.error.startswith("damaged: decodes to")
    noisy = damage_sound(intact, tmp_path / "every-second.mp4", every=2)  # 3 s of 4 decode: noise, not short
    info, frames = extract(str(noisy), 1.0, (128, 72), 2, audio_rate=RATE)
    assert len(frames) == 4 and info.audio.status == "failed"
    assert info.audio.error.startswith("damaged: clipping noise (") and "of the samples at full scale" in info.audio.error
    good = extract_sound(str(intact), RATE)
    assert good.status == "done" and good.error is None and good.warning is None
    problem, warning = damage(good.pcm[:len(good.pcm) * 3 // 4 // 2 * 2], RATE, 4.0)
    assert problem is None and warning.startswith("partial: decodes to 3.0") and warning.endswith("of the stream's 4.00 s")
