"""SyncNet (Chung & Zisserman, "Out of time: automated lip sync in the wild", 2016) with the published weights of
joonson/syncnet_python (`syncnet_v2.model`, MIT licence; never shipped here: the user points --sync-weights or
DFD_SYNCNET at their copy), in the authors' layout so that their state dict loads by name.

The network has two towers. The lip tower sees 5 consecutive colour frames (BGR, 0-255, not normalised) of the face
crop at 224x224 and 25 fps; the audio tower 20 MFCC frames (13 coefficients at 100 Hz: 0.2 s, the span of 5 video
frames) of the 16 kHz sound as python_speech_features computes them by default (int16 scale). Each gives a
1024-d embedding; in-sync pairs lie close. The offset search, as the authors' SyncNetInstance: for every video
frame the distance to the audio embedding at each shift within +-VSHIFT frames (zero-padded), their mean over the
frames; the offset is the shift of the least mean distance and the confidence is the median less that minimum.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from scipy import signal
from scipy.fft import dct
from torch import nn

from dfd.errors import ToolkitError

from .sync import NoSync

SYNCNET_ENV = "DFD_SYNCNET"
SYNCNET_LICENCE = "MIT licence"
FPS, RATE = 25.0, 16000      # the authors' rates: 4 MFCC frames per video frame
FACE_SIZE = 224              # the lip tower's input side
FRAMES = 5                   # video frames per stack; MFCC frames per stack: 4 * FRAMES
VSHIFT = 15                  # shifts searched either way (frames), the authors' demo default
IN_SYNC = 5                  # |shift| within this many frames (0.2 s) counts as in sync, as the signal-level rule
MEDFILT = 9                  # the authors' smoothing of the framewise confidence
# p_fake = sigmoid(SLOPE x (THRESHOLD - s)), s = (median - near) - (near - min) over the mean distances per shift
# (near: the least within +-IN_SYNC): SyncNet's confidence at the in-sync shifts, less any better shift elsewhere.
# Not calibrated (no weights at hand here): THRESHOLD and SLOPE are placeholders, not measured (docs/lipsync.md).
P_FAKE_THRESHOLD, P_FAKE_SLOPE = 3.0, 2.0
RULE = (f"SyncNet (joonson/syncnet_python, {SYNCNET_LICENCE}): sigmoid({P_FAKE_SLOPE:g} x ({P_FAKE_THRESHOLD:g} - "
        f"s)), s = (median - near) - (near - min) of the mean embedding distance over shifts within +-{VSHIFT} "
        f"frames at {FPS:g} fps, near = the least within +-{IN_SYNC} frames")


class SyncNetError(ToolkitError, ValueError):
    """A weights file that is not SyncNet's (the message names it)."""


def _block(conv: nn.Module, channels: int, norm, pool: nn.Module | None = None) -> list[nn.Module]:
    return [conv, norm(channels), nn.ReLU(inplace=True), *([pool] if pool is not None else [])]


class SyncNet(nn.Module):
    """The authors' SyncNetModel.S: attribute names and Sequential positions as theirs, so their keys load."""

    def __init__(self, embedding: int = 1024):
        super().__init__()
        c2, b2, c3, b3 = nn.Conv2d, nn.BatchNorm2d, nn.Conv3d, nn.BatchNorm3d
        self.netcnnaud = nn.Sequential(
            *_block(c2(1, 64, 3, 1, 1), 64, b2, nn.MaxPool2d(1, 1)),
            *_block(c2(64, 192, 3, 1, 1), 192, b2, nn.MaxPool2d(3, (1, 2))),
            *_block(c2(192, 384, 3, padding=1), 384, b2),
            *_block(c2(384, 256, 3, padding=1), 256, b2),
            *_block(c2(256, 256, 3, padding=1), 256, b2, nn.MaxPool2d(3, 2)),
            *_block(c2(256, 512, (5, 4)), 512, b2))
        self.netfcaud = self._head(embedding)
        self.netfclip = self._head(embedding)
        self.netcnnlip = nn.Sequential(
            *_block(c3(3, 96, (5, 7, 7), (1, 2, 2)), 96, b3, nn.MaxPool3d((1, 3, 3), (1, 2, 2))),
            *_block(c3(96, 256, (1, 5, 5), (1, 2, 2), (0, 1, 1)), 256, b3,
                    nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))),
            *_block(c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, b3),
            *_block(c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, b3),
            *_block(c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, b3, nn.MaxPool3d((1, 3, 3), (1, 2, 2))),
            *_block(c3(256, 512, (1, 6, 6)), 512, b3))

    @staticmethod
    def _head(embedding: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embedding))

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) MFCC -> (N, embedding)."""
        return self.netfcaud(self.netcnnaud(x).flatten(1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, 224, 224) BGR frames 0-255 -> (N, embedding)."""
        return self.netfclip(self.netcnnlip(x).flatten(1))


_LOADED: dict[str, SyncNet] = {}


def load_syncnet(path: str | Path) -> SyncNet:
    """The authors' state dict (torch-saved, loaded without pickle's code) in our network; SyncNetError naming
    the file when it is not one."""
    path = Path(path)
    if str(path) in _LOADED:
        return _LOADED[str(path)]
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever torch says, one line naming the file
        raise SyncNetError(f"{path}: not SyncNet's weights ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
                           ) from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SyncNetError(f"{path}: not SyncNet's weights (not a state dict of tensors)")
    net = SyncNet(int(state["netfcaud.3.weight"].shape[0]) if "netfcaud.3.weight" in state else 1024)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise SyncNetError(f"{path}: not SyncNet's weights ({str(exc).splitlines()[0][:160]})") from None
    _LOADED[str(path)] = net.eval()
    return _LOADED[str(path)]


def mfcc(samples: np.ndarray, rate: int = RATE) -> np.ndarray:
    """(13, N) MFCC at 100 Hz as python_speech_features.mfcc's defaults compute them (25 ms rectangular frames every
    10 ms, pre-emphasis 0.97, a 512-point power spectrum, 26 mel filters 0 to rate/2, log, orthonormal DCT-II,
    lifter 22, c0 replaced by the frame's log energy). `samples`: int16-scaled, as the authors read the WAV."""
    x = np.asarray(samples, np.float64)
    x = np.append(x[0], x[1:] - 0.97 * x[:-1])
    length, step, nfft = int(round(0.025 * rate)), int(round(0.01 * rate)), 512
    n = 1 if len(x) <= length else 1 + int(np.ceil((len(x) - length) / step))
    x = np.concatenate([x, np.zeros((n - 1) * step + length - len(x))])
    frames = x[np.arange(length)[None, :] + step * np.arange(n)[:, None]]
    power = np.abs(np.fft.rfft(frames, nfft)) ** 2 / nfft
    energy = power.sum(1)
    energy[energy == 0] = np.finfo(float).eps
    mel = np.linspace(0, 2595 * np.log10(1 + (rate / 2) / 700), 28)
    bins = np.floor((nfft + 1) * 700 * (10 ** (mel / 2595) - 1) / rate)
    bank = np.zeros((26, nfft // 2 + 1))
    for j in range(26):
        lo, mid, hi = int(bins[j]), int(bins[j + 1]), int(bins[j + 2])
        bank[j, lo:mid] = (np.arange(lo, mid) - bins[j]) / (bins[j + 1] - bins[j])
        bank[j, mid:hi] = (bins[j + 2] - np.arange(mid, hi)) / (bins[j + 2] - bins[j + 1])
    feat = power @ bank.T
    feat[feat == 0] = np.finfo(float).eps
    feat = dct(np.log(feat), type=2, axis=1, norm="ortho")[:, :13]
    feat *= 1 + 11 * np.sin(np.pi * np.arange(13) / 22)
    feat[:, 0] = np.log(energy)
    return feat.T


@torch.no_grad()
def embeddings(net: SyncNet, faces: np.ndarray, cepstra: np.ndarray, n_samples: int,
               batch: int = 20) -> tuple[torch.Tensor, ...]:
    """The towers' embeddings of every 5-frame stack and its 20 MFCC frames, as the authors' evaluate: faces
    (T, 224, 224, 3) BGR uint8 at 25 fps, cepstra (13, N) at 100 Hz of n_samples at 16 kHz (the stacks: as many
    as the shorter of picture and sound, 640 samples a frame, less 5)."""
    video = torch.from_numpy(np.ascontiguousarray(faces.transpose(3, 0, 1, 2))).float()[None]  # 1, 3, T, H, W
    audio = torch.from_numpy(cepstra).float()[None, None]
    last = min(len(faces), n_samples // int(RATE / FPS)) - FRAMES
    lips, sounds = [], []
    for i in range(0, max(last, 0), batch):
        at = range(i, min(last, i + batch))
        lips.append(net.forward_lip(torch.cat([video[:, :, t:t + FRAMES] for t in at])))
        sounds.append(net.forward_aud(torch.cat([audio[..., 4 * t:4 * t + 4 * FRAMES] for t in at])))
    if not lips:
        raise NoSync(f"{len(faces)} frames with their sound: SyncNet needs more than {FRAMES}")
    return torch.cat(lips), torch.cat(sounds)


def distances(lips: torch.Tensor, sounds: torch.Tensor, vshift: int = VSHIFT) -> torch.Tensor:
    """(L, 2 vshift + 1): frame i's distance to the sound's embedding at i + k - vshift (zeros beyond the ends)."""
    padded = torch.nn.functional.pad(sounds, (0, 0, vshift, vshift))
    return torch.stack([torch.nn.functional.pairwise_distance(lips[[i]].repeat(2 * vshift + 1, 1),
                                                              padded[i:i + 2 * vshift + 1]) for i in range(len(lips))])


@dataclasses.dataclass
class Offset:
    """The search's outcome: offset in frames as the authors print it (negative: the sound comes late), their
    confidence (median less minimum mean distance), the mean distance per shift and the framewise confidence."""

    offset: int
    confidence: float
    min_distance: float
    mean: np.ndarray
    framewise: np.ndarray


def search(dists: torch.Tensor, vshift: int = VSHIFT) -> Offset:
    mean = dists.mean(0)
    low, at = torch.min(mean, 0)
    median = torch.median(mean)
    framewise = (median - dists[:, at]).numpy()
    smooth = signal.medfilt(framewise, kernel_size=MEDFILT) if len(framewise) >= MEDFILT else framewise
    return Offset(int(vshift - at), float(median - low), float(low), mean.numpy(), smooth)


def p_fake_of(found: Offset, vshift: int = VSHIFT) -> tuple[float, float]:
    """(s, p_fake) by RULE."""
    median = float(np.median(found.mean))
    near = float(found.mean[vshift - IN_SYNC: vshift + IN_SYNC + 1].min())
    s = (median - near) - (near - found.min_distance)
    return s, float(1.0 / (1.0 + np.exp(-P_FAKE_SLOPE * (P_FAKE_THRESHOLD - s))))
