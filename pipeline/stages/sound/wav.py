"""A video's sound as the pipeline keeps it: 16-bit PCM WAV, mono, one rate; a compact log-mel fingerprint and the
re-encoding-robust difference of two fingerprints (does a fake keep its original's sound?). Pure: numpy and the
standard library, no ffmpeg (pipeline.ffmpeg.graph adds the audio output to the one ffmpeg command per video and
pipeline.ffmpeg.stderr reads what ffmpeg said about the track), so the trainer can read the WAVs with it too."""
from __future__ import annotations

import functools
import io
import wave

import numpy as np

from dfd.errors import ToolkitError


class AudioError(ToolkitError, RuntimeError):
    """A sound track that cannot be kept; the message is one line."""


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
