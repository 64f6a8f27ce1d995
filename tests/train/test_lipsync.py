"""Issue 27 item 1: lip sync without training data (train.audio.sync, .mouth, .sync_of_files). The measure on a
synthetic mouth whose opening follows a known speech envelope (the lag it finds is the one put in); the real path on
a real DFDC clip (360p, 4 s: native-rate decode, MTCNN, the mouth's landmarks) with its own sound, the sound delayed by
ffmpeg, and another clip's speech; and every bad input's stated result."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from helpers.commands import run_module
from helpers.models import untrained_checkpoint
from helpers.sound import av_clip, dfdc_clips
from pipeline.ffmpeg.locate import find_ffmpeg
from pipeline.stages.faces.detect import Face
from train.audio.mouth import MouthTube, NoMouth, follow_face
from train.audio.sync import MIN_SECONDS, NoSync, measure
from train.audio.sync_of_files import RATE, SyncSpan, sound_of, sync_detector, sync_of, sync_verdict, tube_of

FPS = 25.0


def envelope(seconds: float, seed: int) -> np.ndarray:
    """A syllable-like envelope at RATE: bursts of 0.1-0.3 s with pauses, smoothed."""
    rng = np.random.default_rng(seed)
    env, n = np.zeros(int(seconds * RATE)), 0
    while n < len(env):
        on, off = int(rng.uniform(0.1, 0.3) * RATE), int(rng.uniform(0.05, 0.25) * RATE)
        env[n:n + on] = rng.uniform(0.3, 1.0)
        n += on + off
    return np.convolve(env, np.ones(400) / 400, mode="same")


def synthetic(seconds: float, seed: int) -> tuple[MouthTube, np.ndarray]:
    """A grey mouth whose middle darkens with the envelope, and band noise modulated by it."""
    env = envelope(seconds, seed)
    times = np.arange(int(seconds * FPS)) / FPS
    opening = env[(times * RATE).astype(int)]
    crops = np.full((len(times), 32, 48), 150.0, np.float32)
    crops[:, 8:24, 12:36] -= 100 * opening[:, None, None]
    noise = np.random.default_rng(seed + 100).standard_normal(len(env))
    return MouthTube(crops, times), (0.3 * noise * env).astype(np.float32)


@pytest.mark.parametrize("lag", [0.0, 0.4, -0.6])
def test_measure_finds_the_lag_put_in(lag):
    tube, sound = synthetic(8.0, 1)
    shift = int(lag * RATE)
    moved = np.concatenate([np.zeros(shift, np.float32), sound])[: len(sound)] if shift >= 0 else np.concatenate(
        [sound[-shift:], np.zeros(-shift, np.float32)])
    r = measure(tube, moved, RATE)
    assert abs(r.offset_s - lag) <= 1.5 / FPS
    assert r.agreement > 0.5 and r.confidence > 0.4
    assert (r.p_fake < 0.1) if lag == 0 else (r.p_fake > 0.9)
    assert len(r.windows) == len(r.starts) >= 10 and np.median(r.windows) > 0.5


def test_measure_tells_another_voice_from_its_own():
    tube, own = synthetic(8.0, 1)
    _, other = synthetic(8.0, 2)
    mine, theirs = measure(tube, own, RATE), measure(tube, other, RATE)
    assert theirs.agreement < 0.5 < mine.agreement and theirs.p_fake > mine.p_fake + 0.3


def test_measure_states_short_and_silent_sound():
    tube, sound = synthetic(8.0, 1)
    with pytest.raises(NoSync, match="overlap for 2.0 s"):
        measure(tube, sound[: 2 * RATE], RATE)
    with pytest.raises(NoSync, match="no speech"):
        measure(tube, np.zeros_like(sound), RATE)
    r = measure(tube, sound[: int((MIN_SECONDS + 2) * RATE)], RATE)  # shorter sound: measured where both are
    assert r.seconds == pytest.approx(MIN_SECONDS + 2, abs=0.1) and r.p_fake < 0.1


def test_follow_face_states_no_face_and_several_faces():
    lm = np.array([[10, 10], [30, 10], [20, 20], [12, 30], [28, 30]], float)
    face = Face((0.0, 0.0, 40.0, 40.0), 0.99, lm)
    other = Face((100.0, 0.0, 140.0, 40.0), 0.99, lm + [100, 0])
    assert follow_face([[face]] * 4 + [[]], 25, 5).shape == (25, 5, 2)
    with pytest.raises(NoMouth, match="no face: one was found in 1 of 5"):
        follow_face([[face]] + [[]] * 4, 25, 5)
    with pytest.raises(NoMouth, match="several faces: 2 people"):
        follow_face([[face, other]] * 5, 25, 5)


def remux(src: Path, sound: Path, dst: Path, af: str) -> Path:
    subprocess.run([find_ffmpeg(), "-v", "error", "-y", "-i", str(src), "-i", str(sound), "-map", "0:v", "-map",
                    "1:a", "-c:v", "copy", "-af", af, "-c:a", "aac", str(dst)], check=True)
    return dst


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """A real DFDC clip's first 4 s at 640x360 with its own sound, and the tube the real path makes of it."""
    folder = tmp_path_factory.mktemp("sync")
    clip = folder / "real.mp4"
    subprocess.run([find_ffmpeg(), "-v", "error", "-y", "-t", "4", "-i", str(dfdc_clips()[2]), "-vf", "scale=640:360",
                    "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", str(clip)], check=True)
    detector = sync_detector("cpu")
    return clip, detector, tube_of(clip, detector, SyncSpan(seconds=4.0))


def test_real_clip_own_sound_delayed_and_another_voice(real, tmp_path):
    clip, detector, tube = real
    assert 95 <= len(tube.times) <= 125 and abs(tube.fps - 29.97) < 0.1  # every frame at the native rate
    own = sync_verdict(clip, detector, SyncSpan(seconds=4.0), use="uncertain")
    assert own.p_fake is not None and own.note is None and own.use == "uncertain" and own.windows
    late = remux(clip, clip, tmp_path / "late.mp4", "adelay=500:all=1,atrim=0:4")
    found = sync_of(tube, sound_of(late)[0])
    assert abs(found.offset_s - (own.offset_s + 0.5)) <= 0.1 and found.p_fake > own.p_fake
    other = remux(clip, dfdc_clips()[0], tmp_path / "other.mp4", "atrim=0:4")
    assert sync_of(tube, sound_of(other)[0]).p_fake > own.p_fake
    quiet_start = remux(clip, clip, tmp_path / "quiet.mp4", "volume=enable='lt(t,1)':volume=0")
    measured = sync_of(tube, sound_of(quiet_start)[0])  # a silent first second: measured over all of it
    assert measured.p_fake is not None and abs(measured.offset_s - own.offset_s) <= 0.1


def test_bad_input_gives_a_stated_result(tmp_path):
    speech = ["-t", "4", "-i", str(dfdc_clips()[2])]
    cases = {
        "no sound track": av_clip(tmp_path / "mute.mp4", None, 4.0),
        "no speech": av_clip(tmp_path / "silent.mp4", ["-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono:d=4"], 4.0),
        "the sound lasts 2.0 s": av_clip(tmp_path / "short.mp4", ["-t", "2", "-i", str(dfdc_clips()[2])], 4.0),
        "no face: one was found in 0 of": av_clip(tmp_path / "noface.mp4", speech, 4.0),
        "not a video": None,
    }
    detector = sync_detector("cpu")
    for reason, path in cases.items():
        if path is None:
            path = tmp_path / "broken.mp4"
            path.write_bytes(b"not a video")
            reason = "no sound track"  # ffmpeg finds no audio stream in it (dfd check fails it on its picture first)
        sync = sync_verdict(path, detector, SyncSpan(seconds=4.0))
        assert sync.p_fake is None and sync.offset_s is None and reason in sync.note, (reason, sync.note)


@pytest.mark.slow
def test_check_reports_sync_and_plots_it(real, tmp_path):
    clip, _, _ = real
    mute = av_clip(tmp_path / "mute.mp4", None, 2.0)
    model = untrained_checkpoint(tmp_path / "frames.pt", input="frames")
    proc = run_module("train.check", clip, mute, "--model", model, "--sync", "--json", "--out", tmp_path / "pages",
                      "--device", "cpu")
    rows = {Path(r["path"]).name: r for r in map(json.loads, proc.stdout.strip().splitlines())}
    sync = rows["real.mp4"]["sync"]
    assert sync["p_fake"] is not None and -1.0 <= sync["offset_s"] <= 1.0 and sync["verdict_use"] == "off"
    assert sync["agreement"] >= sync["confidence"] - 1 and sync["windows"] and "sigmoid" in sync["rule"]
    assert rows["mute.mp4"]["sync"] == {**rows["mute.mp4"]["sync"], "p_fake": None, "note": "no sound track"}
    page = Path(rows["real.mp4"]["page"]).read_text()
    assert 'id="sync"' in page and 'alt="lip sync agreement over time"' in page
    assert "no sound track" in Path(rows["mute.mp4"]["page"]).read_text()


@pytest.mark.parametrize("picture,use,sync_p,label", [
    (0.45, "uncertain", 0.9, "FAKE"),   # picture uncertain, sync says apart: lip sync decides
    (0.45, "off", 0.9, "REAL"),         # off (the default): reported only
    (0.10, "uncertain", 0.9, "REAL"),   # the picture is sure: lip sync does not overrule it
    (0.45, "uncertain", 0.2, "REAL"),   # in sync
    (0.45, "uncertain", None, "REAL"),  # not measured
])
def test_verdict_uses_sync_only_by_its_rule(picture, use, sync_p, label):
    from train.score.verdict import Item, Sync, Verdict, as_json

    verdict = Verdict(Path("v.mp4"), "frames", {"value": 0.5, "rule": "test"}, "mean",
                      items=[Item(0, 0.0, picture, np.zeros((2, 2, 3), np.uint8))], seconds=[0.0],
                      sync=Sync(rule="r", p_fake=sync_p, use=use, note=None if sync_p else "no speech"))
    assert verdict.label == label
    assert as_json(verdict, "v")["sync"]["p_fake"] == sync_p
