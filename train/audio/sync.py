"""Lip sync without training data, SyncNet-style at the signal level: do the mouth's motion and the speech agree?

The mouth's opening per frame (how dark the middle of its grey crop is against the whole crop, train.audio.mouth:
an open mouth shows its dark inside) against the speech envelope (RMS of the sound band-limited to SPEECH_BAND, in a
frame-long window at each frame's time: loud while the mouth is open). Chosen over the mouth's motion energy and the
envelope's change on the DFDC sample's four speaking clips, whose own sound agreed best this way (docs/lipsync.md). Both are detrended (less their
moving mean over DETREND_S) and normalised; their Pearson correlation at every lag within +-MAX_LAG_S gives:
`offset_s`, the lag of the sound at the peak (positive: the sound comes late); `agreement`, the peak correlation;
`confidence`, the peak less the median over the lags (SyncNet's confidence); the correlation at the found offset in
sliding windows (agreement over time); and `p_fake` (picture and sound do not belong together) by P_FAKE_RULE.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy import signal

from train.audio.mouth import MouthTube

SPEECH_BAND = (300.0, 3000.0)  # Hz: where speech's energy follows the mouth (voicing and formants)
MAX_LAG_S = 1.0                # lags searched either way
IN_SYNC_S = 0.2                # |offset| within this counts as in sync (the DFDC sample's own sound lags ~0.17 s)
DETREND_S = 1.0                # slow drifts (lighting, loudness) removed by the moving mean over this
WINDOW_S, HOP_S = 2.0, 0.5     # the sliding windows of agreement over time
MIN_SECONDS = 3.0              # picture and sound must overlap this long (the lags need room)
SPEECH_FLOOR_DB = -70.0        # frames whose band RMS lies above this (dBFS) ...
SPEECH_RANGE_DB = 30.0         # ... and within this of the span's loud frames (its 98th percentile) hold speech ...
MIN_SPEECH_SHARE = 0.15        # ... and at least this share of the frames must
# p_fake = sigmoid(SLOPE * (THRESHOLD - in_sync)), in_sync = (near - median) - (peak - near): near is the best
# correlation within +-IN_SYNC_S of zero lag (where a real video's sound sits), median the median over all lags
# (SyncNet's confidence is peak - median), and a peak elsewhere above near counts against. Calibrated on
# benchmarks/measure_sync.py's clips (see docs/lipsync.md): originals vs shifted and swapped sound.
P_FAKE_THRESHOLD, P_FAKE_SLOPE = 0.15, 20.0
P_FAKE_RULE = (f"sigmoid({P_FAKE_SLOPE:g} x ({P_FAKE_THRESHOLD:g} - s)), s = (near - median) - (peak - near), "
               f"near = best correlation within +-{IN_SYNC_S:g} s of zero lag, peak and median over lags within "
               f"+-{MAX_LAG_S:g} s")


class NoSync(ValueError):
    """Nothing to measure (too short an overlap, no speech); the message says which."""


@dataclasses.dataclass
class SyncResult:
    offset_s: float
    agreement: float        # the peak correlation
    confidence: float       # the peak less the median over the lags
    in_sync: float          # s of the rule: (near - median) - (peak - near)
    p_fake: float
    lags_s: list[float]
    correlation: list[float]
    starts: list[float]     # sliding windows: start second, correlation at offset_s
    windows: list[float]
    fps: float
    seconds: float


def mouth_opening(tube: MouthTube) -> np.ndarray:
    """How dark the middle of the mouth crop is against the whole crop (an open mouth shows its dark inside)."""
    c = tube.crops.astype(np.float64)
    h, w = c.shape[1:3]
    middle = c[:, h // 4: 3 * h // 4, w // 4: 3 * w // 4].mean((1, 2))
    return -middle / (c.mean((1, 2)) + 1e-6)


def band_rms(samples: np.ndarray, rate: int, times: np.ndarray, fps: float) -> np.ndarray:
    """RMS of the speech band in a window of one frame centred on each time (0 outside the sound)."""
    high = min(SPEECH_BAND[1], 0.45 * rate)
    x = signal.sosfiltfilt(signal.butter(4, (SPEECH_BAND[0], high), "bandpass", fs=rate, output="sos"),
                           samples.astype(np.float64))
    cum = np.concatenate([[0.0], np.cumsum(x * x)])
    half = 0.5 * rate / fps
    lo = np.clip(np.round(times * rate - half).astype(int), 0, len(x))
    hi = np.clip(np.round(times * rate + half).astype(int), 0, len(x))
    return np.sqrt((cum[hi] - cum[lo]) / np.maximum(hi - lo, 1))


def _normalise(x: np.ndarray, fps: float) -> np.ndarray:
    k = max(1, int(round(DETREND_S * fps)))
    ones = np.ones(k)
    x = x - np.convolve(x, ones, mode="same") / np.convolve(np.ones_like(x), ones, mode="same")  # edges: own mean
    return (x - x.mean()) / (x.std() + 1e-9)


def correlation_at(v: np.ndarray, a: np.ndarray, lag: int) -> float:
    """Pearson correlation of v[t] and a[t + lag] over the frames both have."""
    x, y = (v[: len(v) - lag], a[lag:]) if lag >= 0 else (v[-lag:], a[: len(a) + lag])
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def p_fake_of(in_sync: float) -> float:
    return float(1.0 / (1.0 + np.exp(-P_FAKE_SLOPE * (P_FAKE_THRESHOLD - in_sync))))


def usable(tube: MouthTube, samples: np.ndarray, rate: int) -> tuple[MouthTube, np.ndarray]:
    """The frames the sound covers, and their band RMS; NoSync when too short or without speech."""
    keep = tube.times < len(samples) / rate
    seconds = float(keep.sum()) / tube.fps if tube.fps else 0.0
    if seconds < MIN_SECONDS:
        raise NoSync(f"picture and sound overlap for {seconds:.1f} s, under the {MIN_SECONDS:g} s needed")
    tube = MouthTube(tube.crops[keep], tube.times[keep])
    rms = band_rms(samples, rate, tube.times, tube.fps)
    _speech(rms)
    return tube, rms


def _speech(rms: np.ndarray) -> None:
    """NoSync unless MIN_SPEECH_SHARE of the frames hold speech (loud in the band, within SPEECH_RANGE_DB of the
    loud frames)."""
    db = 20 * np.log10(rms + 1e-12)
    share = float(np.mean(db > max(SPEECH_FLOOR_DB, np.percentile(db, 98) - SPEECH_RANGE_DB)))
    if share < MIN_SPEECH_SHARE:
        raise NoSync(f"no speech: {100 * share:.0f}% of the frames hold sound in {SPEECH_BAND[0]:g}-"
                     f"{SPEECH_BAND[1]:g} Hz above {SPEECH_FLOOR_DB:g} dBFS")


def check_sound(samples: np.ndarray, rate: int, start: float = 0.0, fps: float = 25.0) -> None:
    """What can be told from the sound alone before the picture is decoded: NoSync when it is shorter than
    MIN_SECONDS after `start` or holds no speech there (at 1/fps steps)."""
    seconds = len(samples) / rate - start
    if seconds < MIN_SECONDS:
        raise NoSync(f"the sound lasts {max(seconds, 0.0):.1f} s from {start:g} s, under the {MIN_SECONDS:g} s needed")
    _speech(band_rms(samples, rate, start + np.arange(int(seconds * fps)) / fps, fps))


def measure(tube: MouthTube, samples: np.ndarray, rate: int) -> SyncResult:
    """The sync of one mouth tube and its sound (float samples from the video's start); NoSync with a reason."""
    tube, rms = usable(tube, samples, rate)
    fps = tube.fps
    v, a = _normalise(mouth_opening(tube), fps), _normalise(rms, fps)
    max_lag = int(round(MAX_LAG_S * fps))
    lags = np.arange(-max_lag, max_lag + 1)
    corr = np.array([correlation_at(v, a, int(k)) for k in lags])
    best, median = int(np.argmax(corr)), float(np.median(corr))
    near = np.abs(lags) <= IN_SYNC_S * fps + 1e-9
    in_sync = float(2 * corr[near].max() - median - corr[best])
    starts, windows = sliding(v, a, int(lags[best]), fps, float(tube.times[0]))
    return SyncResult(float(lags[best] / fps), float(corr[best]), float(corr[best] - median), in_sync,
                      p_fake_of(in_sync), [float(k / fps) for k in lags], [float(c) for c in corr], starts, windows,
                      fps, float(len(v) / fps))


def sliding(v: np.ndarray, a: np.ndarray, lag: int, fps: float, t0: float) -> tuple[list[float], list[float]]:
    """Correlation at `lag` in windows of WINDOW_S every HOP_S (start seconds in the video)."""
    n, hop = int(round(WINDOW_S * fps)), max(1, int(round(HOP_S * fps)))
    starts, values = [], []
    for s in range(0, max(1, len(v) - n + 1), hop):
        lo, hi = max(s, s - lag), min(s + n, len(a) - lag)
        if hi - lo < n // 2:
            continue
        values.append(correlation_at(v[lo:hi], a[lo + lag:hi + lag], 0))
        starts.append(round(t0 + s / fps, 3))
    return starts, values
