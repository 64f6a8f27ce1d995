"""A video's sound as the pipeline keeps it: 16-bit PCM WAV, mono, one rate; what ffmpeg said about the track; a
compact log-mel fingerprint and the re-encoding-robust difference of two fingerprints (does a fake keep its
original's sound?). Pure: numpy and the standard library, no ffmpeg (pipeline.frames adds the audio output to the
one ffmpeg command per video), so the trainer can read the WAVs with it too."""
from __future__ import annotations

import dataclasses
import functools
import io
import re
import wave

import numpy as np

from dfd.errors import ToolkitError

# The sound is read from a second opening of the file with its video discarded (no second video decode), its
# timestamps moved this far back so that ffmpeg, which feeds the output that is furthest behind, finishes the whole
# audio before the picture gets going; the early stop after the last sampled frame then never cuts the sound.
AUDIO_INPUT_OFFSET = -1000
AUDIO_FD = 3  # ffmpeg writes the PCM to this pipe (pipe:3)

_STREAM = r"Stream #{}:\d+.*?: Audio: (\w+)[^,]*, (\d+) Hz, ([^,]+)"
_LEVEL = re.compile(r"^((?:\[[^\]]*@ 0x[0-9a-f]+\] )*)\[(error|fatal|panic|warning)\] (.*)$")
_LAYOUTS = {"mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "quad": 4, "4.0": 4, "4.1": 5, "5.0": 5, "5.1": 6,
            "6.0": 6, "6.1": 7, "7.0": 7, "7.1": 8, "downmix": 2}


class AudioError(ToolkitError, RuntimeError):
    """A sound track that cannot be kept; the message is one line."""


@dataclasses.dataclass
class AudioTrack:
    """What the decode-once pass got of a video's sound. status: done (has_audio says whether there was any) or
    failed (error says why; the frames are kept all the same)."""

    status: str = "done"
    has_audio: bool = False
    pcm: bytes = b""                # s16le mono at `sample_rate`
    sample_rate: int | None = None
    codec: str | None = None        # the original track's codec, rate and channels
    source_rate: int | None = None
    channels: int | None = None
    error: str | None = None
    warning: str | None = None

    @property
    def duration(self) -> float | None:
        return len(self.pcm) / 2 / self.sample_rate if self.has_audio and self.sample_rate else None


def parse_stream(stderr: str, input_index: int = 1) -> tuple[str | None, int | None, int | None]:
    """(codec, sample rate, channels) of the first audio stream of ffmpeg's input #input_index, from its log."""
    pattern = re.compile(_STREAM.format(input_index))
    for line in stderr.splitlines():
        if "Output #0" in line:
            break
        if m := pattern.search(line):
            layout = m.group(3).strip()
            channels = _LAYOUTS.get(layout.split("(")[0])
            if channels is None and (n := re.match(r"(\d+) channels", layout)):
                channels = int(n.group(1))
            return m.group(1), int(m.group(2)), channels
    return None, None, None


def audio_messages(stderr: str, codec: str | None, input_index: int | None = 1) -> tuple[list[str], list[str]]:
    """(errors, warnings) ffmpeg logged about the sound: lines from its decoder (named by codec), the resampler or
    the PCM output, and ffmpeg's own about input #`input_index` (only its sound is decoded; None: no input's).
    The picture's lines are left to pipeline.frames."""
    names = {n for n in (codec, "aresample", "SWR", "pcm_s16le", "s16le", "pipe:3") if n}
    errors, warnings = [], []
    for line in stderr.splitlines():
        m = _LEVEL.match(line.strip())
        if not m or not (any(f"[{n} @" in m.group(1) or f"[{n}]" in m.group(1) for n in names)
                         or (input_index is not None and re.search(rf"stream #{input_index}:\d", m.group(3)))):
            continue
        (warnings if m.group(2) == "warning" else errors).append(m.group(3).strip())
    return errors, warnings


def wav_bytes(pcm: bytes, rate: int) -> bytes:
    """16-bit mono PCM as a WAV file (the standard library reads it back: `read_wav`)."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def read_wav(data: bytes) -> tuple[np.ndarray, int]:
    """(float32 samples in [-1, 1], rate) of a WAV the pipeline wrote; AudioError if it is not one."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            if w.getsampwidth() != 2 or w.getnchannels() != 1:
                raise AudioError(f"WAV with {w.getnchannels()} channels of {8 * w.getsampwidth()} bits, "
                                 "expected 16-bit mono")
            rate, frames = w.getframerate(), w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"not a WAV file: {exc}") from None
    return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0, rate


def rms_dbfs(pcm: bytes) -> float | None:
    """Root mean square level in dB relative to full scale (None: no samples; -inf for digital silence)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0
    if not len(x):
        return None
    rms = float(np.sqrt(np.mean(x * x)))
    return round(20 * np.log10(rms), 2) if rms > 0 else float("-inf")


# ------------------------------------------------------------------------------------------------- fingerprint

FP_BANDS, FP_HOP_S, FP_NFFT = 24, 0.02, 1024  # 24 mel bands every 20 ms (64 ms windows at 16 kHz)
FP_FLOOR_DB = -90.0                            # stored as uint8 in 0.5 dB steps from here (to +37.5 dB)
SILENCE_DB = -60.0                             # bands below this count as silence when comparing


@functools.lru_cache(maxsize=8)
def _mel_bank(rate: int, nfft: int, bands: int) -> np.ndarray:
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)
    edges = hz(np.linspace(mel(60.0), mel(min(7600.0, rate / 2 - 1)), bands + 2))
    freqs = np.fft.rfftfreq(nfft, 1.0 / rate)
    bank = np.zeros((bands, len(freqs)))
    for b in range(bands):
        lo, mid, hi = edges[b:b + 3]
        bank[b] = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
    return bank


def log_mel(samples: np.ndarray, rate: int, bands: int = FP_BANDS, hop_s: float = FP_HOP_S,
            nfft: int = FP_NFFT) -> np.ndarray:
    """(frames, bands) mel energies in dB (0 dB: a full-scale sine), Hann windows of nfft samples every hop_s."""
    hop = max(1, int(round(hop_s * rate)))
    if len(samples) < nfft:
        samples = np.pad(samples, (0, nfft - len(samples)))
    n = 1 + (len(samples) - nfft) // hop
    window = np.hanning(nfft)
    idx = np.arange(nfft)[None, :] + hop * np.arange(n)[:, None]
    power = np.abs(np.fft.rfft(samples[idx] * window, axis=1)) ** 2 / (window.sum() ** 2 / 4)
    return 10 * np.log10(power @ _mel_bank(rate, nfft, bands).T + 1e-12)


def fingerprint(pcm: bytes, rate: int) -> bytes:
    """The sound's log-mel energies as uint8 (0.5 dB steps), frames x FP_BANDS: 1.2 KB per second of sound."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    db = log_mel(x, rate)
    return np.clip(np.round((db - FP_FLOOR_DB) * 2), 0, 255).astype(np.uint8).tobytes()


def _unpack(fp: bytes) -> np.ndarray:
    return np.frombuffer(fp, dtype=np.uint8).reshape(-1, FP_BANDS).astype(np.float32) / 2 + FP_FLOOR_DB


def compare(fake_fp: bytes, original_fp: bytes, max_lag_s: float = 0.5) -> tuple[float, float]:
    """(difference in dB, lag in seconds) of two fingerprints: the original shifted by up to max_lag_s to the lag
    where they agree best, an overall gain difference removed (the median), then the mean absolute difference of
    the bands that are not silent in either. Re-encoding (AAC at another bitrate, resampling) moves log-mel
    energies by a fraction of a dB; another voice or another recording by several dB."""
    a, b = np.maximum(_unpack(fake_fp), SILENCE_DB), np.maximum(_unpack(original_fp), SILENCE_DB)
    max_lag = int(round(max_lag_s / FP_HOP_S))
    best = (float("inf"), 0)
    for lag in range(-max_lag, max_lag + 1):
        x, y = (a[lag:], b) if lag >= 0 else (a, b[-lag:])
        n = min(len(x), len(y))
        if n < max(4, min(len(a), len(b)) // 2):
            continue
        x, y = x[:n], y[:n]
        loud = (x > SILENCE_DB) | (y > SILENCE_DB)
        if not loud.any():
            best = min(best, (0.0, lag))  # silence on both sides agrees everywhere
            continue
        d = (x - y)[loud]
        best = min(best, (float(np.mean(np.abs(d - np.median(d)))), lag))
    if best[0] == float("inf"):
        raise AudioError("the two sounds overlap too little to compare")
    return round(best[0], 3), round(best[1] * FP_HOP_S, 3)
