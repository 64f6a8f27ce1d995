"""Issue 18 item 1 and 6: the sound from the same ffmpeg process as the frames, and every kind of odd sound track."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

import pipeline.ffmpeg.extract as frames
from helpers.sound import av_clip, dfdc_clips, pcm
from pipeline.stages.sound.wav import read_wav, wav_bytes
from pipeline.ffmpeg.extract import FrameError, extract
from pipeline.ffmpeg.graph import ffmpeg_command

RATE = 16000


def _extract(clip, early=True, monkeypatch=None, fps=1.0, box=(128, 72)):
    if monkeypatch is not None:
        monkeypatch.setattr(frames, "EARLY_STOP", early)
    return extract(str(clip), fps, box, 2, audio_rate=RATE)


def test_one_ffmpeg_process_decodes_the_picture_once_for_frames_and_sound():
    cmd = ffmpeg_command("clip.mp4", 1.0, (1280, 720), 2, "ffmpeg", audio_rate=RATE)
    assert cmd[0] == "ffmpeg" and cmd.count("-i") == 2 and cmd.count("-filter_complex") == 1
    second = cmd.index("-i", cmd.index("-i") + 1)
    assert "-vn" in cmd[cmd.index("-i") + 1:second]  # the second opening's video is never decoded
    assert cmd[-1] == "pipe:3" and cmd[cmd.index("-ar") + 1] == str(RATE) and cmd[cmd.index("-ac") + 1] == "1"
    assert ffmpeg_command("clip.mp4", 1.0, (1280, 720), 2, "ffmpeg")[-1] == "pipe:1"  # --no-audio: as before


def test_real_dfdc_speech_early_stop_keeps_all_of_it_and_the_same_frames(monkeypatch):
    clips = dfdc_clips()
    if not clips:
        pytest.skip("no real DFDC sample here")
    clip = clips[0]
    early_info, early = _extract(clip, True, monkeypatch, box=(1280, 720))
    full_info, full = _extract(clip, False, monkeypatch, box=(1280, 720))
    monkeypatch.setattr(frames, "EARLY_STOP", True)
    _, pictures_only = extract(str(clip), 1.0, (1280, 720), 2)
    assert [f.jpeg for f in early] == [f.jpeg for f in full] == [f.jpeg for f in pictures_only]
    a, b = early_info.audio, full_info.audio
    assert a.pcm == b.pcm and a.status == "done" and a.has_audio
    assert (a.codec, a.source_rate, a.channels, a.sample_rate) == ("aac", 48000, 1, RATE)
    assert a.duration == pytest.approx(10.0, abs=0.05)
    # the same samples as ffmpeg decoding the sound on its own
    alone = np.frombuffer(pcm(clip), "<i2").astype(float)
    ours = np.frombuffer(a.pcm, "<i2").astype(float)
    n = min(len(alone), len(ours))
    assert abs(len(alone) - len(ours)) < RATE // 100 and np.abs(alone[:n] - ours[:n]).max() <= 1
    samples, rate = read_wav(wav_bytes(a.pcm, RATE))
    assert rate == RATE and len(samples) == len(ours) and 0.005 < np.sqrt(np.mean(samples ** 2)) < 0.5


@pytest.mark.parametrize("early", [True, False])
def test_no_audio_stream_mp4_and_mkv(tmp_path, monkeypatch, early):
    for ext in ("mp4", "mkv"):  # the MP4 header says there is none; for the MKV ffmpeg's refusal does
        info, got = _extract(av_clip(tmp_path / f"none.{ext}", None), early, monkeypatch)
        assert len(got) == 2 and info.audio.status == "done" and not info.audio.has_audio
        assert info.audio.duration is None and info.audio.error is None


def test_silent_track(tmp_path, monkeypatch):
    clip = av_clip(tmp_path / "silent.mp4", ["-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono:d=2"])
    info, got = _extract(clip, True, monkeypatch)
    a = info.audio
    assert len(got) == 2 and a.status == "done" and a.has_audio and a.duration == pytest.approx(2.0, abs=0.06)
    assert not any(np.frombuffer(a.pcm, "<i2"))


def test_audio_only_file_fails_with_no_video_stream(tmp_path):
    path = tmp_path / "sound.m4a"
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-f", "lavfi", "-i", "sine=d=2", "-c:a", "aac", str(path)],
                   check=True)
    with pytest.raises(FrameError, match="no video stream"):
        extract(str(path), 1.0, (128, 72), 2, audio_rate=RATE)


def test_six_channels_at_48k_become_mono_16k(tmp_path, monkeypatch):
    # a 440 Hz tone on the front left only, noise elsewhere: the downmix keeps the tone
    src = ("aevalsrc=exprs=0.5*sin(2*PI*440*t)|0.05*random(0)|0.05*random(1)|0|0.05*random(2)|0.05*random(3)"
           ":s=48000:d=2:c=5.1")
    clip = av_clip(tmp_path / "six.mp4", ["-f", "lavfi", "-i", src], audio_args=["-c:a", "aac", "-b:a", "256k"])
    info, got = _extract(clip, True, monkeypatch)
    a = info.audio
    assert (a.source_rate, a.channels, a.sample_rate, a.status) == (48000, 6, RATE, "done")
    x = np.frombuffer(a.pcm, "<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(x))
    assert np.argmax(spectrum) * RATE / len(x) == pytest.approx(440, abs=3)


def test_8k_mono_is_resampled_to_the_one_rate(tmp_path, monkeypatch):
    clip = av_clip(tmp_path / "phone.mkv", ["-f", "lavfi", "-i", "sine=f=1000:r=8000:d=2"],
                   audio_args=["-c:a", "pcm_s16le"])
    info, got = _extract(clip, True, monkeypatch)
    a = info.audio
    assert (a.codec, a.source_rate, a.channels, a.sample_rate) == ("pcm_s16le", 8000, 1, RATE)
    assert a.duration == pytest.approx(2.0, abs=0.02)


@pytest.mark.parametrize("audio_seconds", [0.8, 3.5])
def test_sound_shorter_or_longer_than_the_picture_is_kept_whole(tmp_path, monkeypatch, audio_seconds):
    clip = av_clip(tmp_path / "c.mp4", ["-f", "lavfi", "-i", f"sine=d={audio_seconds}"], video_seconds=2.0)
    for early in (True, False):
        info, got = _extract(clip, early, monkeypatch)
        assert len(got) == 2 and info.audio.status == "done"
        assert info.audio.duration == pytest.approx(audio_seconds, abs=0.06)


def test_damaged_sound_is_a_reason_and_the_frames_are_kept(tmp_path, monkeypatch):
    good = av_clip(tmp_path / "good.mkv", ["-f", "lavfi", "-i", "anoisesrc=d=2:a=0.3"],
                   audio_args=["-c:a", "aac"])
    # every audio packet garbled (the picture untouched): nothing of the sound decodes
    bad = tmp_path / "garbled.mkv"
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-i", str(good), "-c", "copy", "-bsf:a", "noise=amount=2",
                    str(bad)], check=True)
    info, got = _extract(bad, True, monkeypatch)
    _, clean = _extract(good, True, monkeypatch)
    assert [f.jpeg for f in got] == [f.jpeg for f in clean] and info.errors == []
    a = info.audio
    assert a.has_audio and (a.status == "failed" and a.error) or (a.status == "done" and a.warning)


def test_truncated_sound_stream(tmp_path, monkeypatch):
    # an MPEG-TS whose audio packets stop after 0.6 s (every later one dropped) while the picture goes on
    good = av_clip(tmp_path / "good.ts", ["-f", "lavfi", "-i", "sine=d=2"], audio_args=["-c:a", "mp2"])
    cut = tmp_path / "cut.ts"
    subprocess.run(["ffmpeg", "-y", "-v", "error", "-i", str(good), "-map", "0", "-c", "copy", "-bsf:a",
                    "noise=drop=gt(pts*tb\\,0.6)", str(cut)], check=True)
    info, got = _extract(cut, True, monkeypatch)
    assert len(got) == 2 and info.audio.status == "done"
    assert info.audio.duration == pytest.approx(0.6, abs=0.1)
