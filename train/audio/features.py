"""Features of a window of sound: the bicoherence statistics of AlBadawy, Lyu & Farid (2019) and log-mel statistics.

Speech synthesis and vocoders leave higher-order correlations between frequencies that a human vocal tract does not
make; the bispectrum B(f1, f2) = E[X(f1) X(f2) X*(f1 + f2)] over short segments measures them, and its normalised
form, the bicoherence, has a magnitude in [0, 1] and a phase. Following the paper, the first four moments (mean,
variance, skewness, kurtosis) of the magnitude and of the phase over the (f1, f2) plane summarise a window: 8
numbers. The log-mel spectrogram's per-band mean and standard deviation (2 x 32) add the spectral envelope.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.stages.sound.wav import log_mel


@dataclasses.dataclass(frozen=True)
class AudioFeatures:
    """Everything that decides a window's features (saved in the checkpoint: prediction uses the same)."""

    window_s: float = 2.0     # seconds of sound per window
    hop_s: float = 1.0        # windows start this far apart
    segment: int = 256        # samples per FFT segment of the bispectrum (16 ms at 16 kHz)
    max_bin: int = 64         # f1, f2 < max_bin bins of the segment FFT (up to 4 kHz at 16 kHz): speech's band
    mel_bands: int = 32
    min_rms_db: float = -60.0  # quieter windows are silence: skipped
    # windows that start earlier are left out, in training and in scoring: a fake whose sound is silent at the start
    # (FakeAVCeleb, AV-Deepfake1M) is then not caught by its silence alone (train.run --skip-start)
    skip_start_s: float = 0.0

    @property
    def names(self) -> list[str]:
        moments = ("mean", "var", "skew", "kurt")
        return ([f"bicoh_mag_{m}" for m in moments] + [f"bicoh_phase_{m}" for m in moments]
                + [f"mel{b}_mean" for b in range(self.mel_bands)] + [f"mel{b}_std" for b in range(self.mel_bands)])

    @property
    def n_bispectral(self) -> int:
        return 8


def windows(samples: np.ndarray, rate: int, spec: AudioFeatures) -> list[tuple[float, np.ndarray]]:
    """(start second, samples) of each window that is not silence and starts no earlier than spec.skip_start_s; a
    sound shorter than a window is one window (from skip_start_s)."""
    size, hop = int(spec.window_s * rate), int(spec.hop_s * rate)
    first = int(round(spec.skip_start_s * rate))
    starts = range(first, max(first + 1, len(samples) - size + 1), hop) if len(samples) - first >= size else [first]
    out = []
    for s in starts:
        w = samples[s:s + size]
        rms = float(np.sqrt(np.mean(w.astype(np.float64) ** 2))) if len(w) else 0.0
        if rms > 0 and 20 * np.log10(rms) > spec.min_rms_db:
            out.append((s / rate, w))
    return out


def bicoherence(x: np.ndarray, segment: int, max_bin: int) -> np.ndarray:
    """The complex bicoherence over f1, f2 < max_bin (f1 + f2 < segment / 2) from Hann-windowed, back-to-back
    segments of x: B / sqrt(E|X1 X2|^2 E|X12|^2)."""
    hop = segment
    n = max(1, 1 + (len(x) - segment) // hop)
    if len(x) < segment:
        x = np.pad(x, (0, segment - len(x)))
    idx = np.arange(segment)[None, :] + hop * np.arange(n)[:, None]
    seg = x[idx] * np.hanning(segment)
    spec = np.fft.rfft(seg - seg.mean(axis=1, keepdims=True), axis=1).astype(np.complex64)
    f = np.arange(max_bin)
    f1, f2 = np.meshgrid(f, f, indexing="ij")
    keep = f1 + f2 < segment // 2
    x1, x2, x12 = spec[:, f1[keep]], spec[:, f2[keep]], np.conj(spec[:, (f1 + f2)[keep]])
    prod = x1 * x2
    b = np.mean(prod * x12, axis=0)
    norm = np.sqrt(np.mean(np.abs(prod) ** 2, axis=0) * np.mean(np.abs(x12) ** 2, axis=0)) + 1e-20
    return b / norm


def _moments(v: np.ndarray) -> list[float]:
    m, s = float(np.mean(v)), float(np.std(v)) + 1e-12
    z = (v - m) / s
    return [m, s * s, float(np.mean(z ** 3)), float(np.mean(z ** 4))]


def window_features(w: np.ndarray, rate: int, spec: AudioFeatures) -> np.ndarray:
    """One window's feature vector (spec.names): bicoherence moments, then log-mel means and stds."""
    bc = bicoherence(w.astype(np.float64), spec.segment, spec.max_bin)
    mel = log_mel(w.astype(np.float64), rate, bands=spec.mel_bands, hop_s=0.01, nfft=512)
    return np.array(_moments(np.abs(bc)) + _moments(np.angle(bc)) + list(mel.mean(axis=0)) + list(mel.std(axis=0)),
                    dtype=np.float32)


def bicoherence_image(w: np.ndarray, spec: AudioFeatures) -> np.ndarray:
    """The bicoherence magnitude as a (max_bin, max_bin) image (zero where f1 + f2 is beyond the band), to plot."""
    bc = bicoherence(w.astype(np.float64), spec.segment, spec.max_bin)
    f = np.arange(spec.max_bin)
    f1, f2 = np.meshgrid(f, f, indexing="ij")
    img = np.zeros((spec.max_bin, spec.max_bin))
    img[f1 + f2 < spec.segment // 2] = np.abs(bc)
    return img
