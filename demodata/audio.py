"""`python -m demodata.audio`: a DFDC-shaped part whose fakes have synthetic speech, made from the real speech in
the DFDC sample clips without any download.

Each real clip's sound is cut into short segments; a real video carries a segment as it is, its fake carries the
same segment resynthesised from its magnitude spectrogram by Griffin-Lim phase reconstruction (what a neural
vocoder's output resembles: the same spectral envelope, phases that a vocal tract did not make). Both are muxed as
AAC into small generated pictures, so the spectrogram says little and the bispectrum has to tell them apart. The
fake names its real as `original`, so the pipeline's group split keeps the pair on one side.
"""
from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import click
import numpy as np
from tqdm import tqdm

from dfd.cli import command, reported, setup_logging, verbose_option
from dfd.errors import UsageProblem
from pipeline.ffmpeg.locate import find_ffmpeg

log = logging.getLogger(__name__)

PART_NAME = "dfdc_train_part_0"
RATE = 16000
SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dfdc_sample" / PART_NAME


class DemoAudioError(UsageProblem, RuntimeError):
    """The demo cannot be made (no real speech to start from)."""


def stft(x: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    window = np.hanning(n_fft)
    x = np.pad(x, (n_fft // 2, n_fft // 2))
    idx = np.arange(n_fft)[None, :] + hop * np.arange(1 + (len(x) - n_fft) // hop)[:, None]
    return np.fft.rfft(x[idx] * window, axis=1)


def istft(spec: np.ndarray, length: int, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    window = np.hanning(n_fft)
    frames = np.fft.irfft(spec, n=n_fft, axis=1) * window
    out = np.zeros(hop * (len(frames) - 1) + n_fft)
    norm = np.zeros_like(out)
    for i, f in enumerate(frames):
        out[i * hop:i * hop + n_fft] += f
        norm[i * hop:i * hop + n_fft] += window ** 2
    out /= np.maximum(norm, 1e-8)
    return out[n_fft // 2:n_fft // 2 + length]


def griffin_lim(x: np.ndarray, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """x's magnitude spectrogram with phases reconstructed from random ones by Griffin-Lim."""
    magnitude = np.abs(stft(x))
    phase = np.exp(2j * np.pi * rng.random(magnitude.shape))
    y = istft(magnitude * phase, len(x))
    for _ in range(iterations):
        phase = np.exp(1j * np.angle(stft(y)))
        y = istft(magnitude * phase, len(x))
    return y * (np.sqrt(np.mean(x ** 2)) / (np.sqrt(np.mean(y ** 2)) + 1e-12))


def real_speech(clips: list[Path]) -> list[np.ndarray]:
    out = []
    for clip in clips:
        raw = subprocess.run([find_ffmpeg(), "-v", "error", "-i", str(clip), "-vn", "-ac", "1", "-ar", str(RATE),
                              "-f", "s16le", "-"], capture_output=True, check=True).stdout
        out.append(np.frombuffer(raw, "<i2").astype(np.float64) / 32768.0)
    return out


def mux(path: Path, sound: np.ndarray, seconds: float, source: str) -> None:
    """A 96x64 25 fps H.264 picture with `sound` as AAC (64 kbit/s, like DFDC's) beside it."""
    pcm = (np.clip(sound, -1, 1) * 32767).astype("<i2").tobytes()
    cmd = [find_ffmpeg(), "-y", "-v", "error", "-t", f"{seconds:.3f}", "-f", "lavfi", "-i", f"{source}=size=96x64:rate=25",
           "-f", "s16le", "-ar", str(RATE), "-ac", "1", "-i", "pipe:0", "-map", "0:v", "-map", "1:a",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k",
           "-ar", "48000", str(path)]
    subprocess.run(cmd, input=pcm, check=True)


LAYOUTS = ("dfdc", "fakeavceleb")
FAKES = ("griffin-lim", "same")


def make(out: Path, clips: list[Path], seconds: float, iterations: int, seed: int, layout: str = "dfdc",
         silent_start: float = 0.0, fake: str = "griffin-lim") -> dict:
    """The part folder with its metadata.json (dfdc), or a FakeAVCeleb tree (fakeavceleb: each clip's speaker is an
    id folder, its reals in RealVideo-RealAudio and its fakes in RealVideo-FakeAudio); returns {file: label}.
    silent_start: the fakes' first seconds are silence (the shortcut of FakeAVCeleb and AV-Deepfake1M); fake
    'same': the fake keeps the real speech, so the silence is all that tells it apart."""
    if not clips:
        raise DemoAudioError(f"no real DFDC clips with speech in {SAMPLE} (see ../shared/data/README.md)")
    rng = np.random.default_rng(seed)
    size, labels, jobs = int(seconds * RATE), {}, []
    for c, speech in enumerate(real_speech(clips)):
        for s, start in enumerate(range(0, len(speech) - size + 1, size // 2)):
            jobs.append((c, s, speech[start:start + size]))
    sources = ["testsrc2", "mandelbrot", "rgbtestsrc", "smptebars"]
    for i, (c, s, segment) in enumerate(tqdm(jobs, desc="demo-audio clips", unit="pair")):
        real_rel, fake_rel = _names(layout, c, s)
        voice = griffin_lim(segment, iterations, rng) if fake == "griffin-lim" else segment.copy()
        voice[: int(silent_start * RATE)] = 0.0
        for rel, sound in ((real_rel, segment), (fake_rel, voice)):
            (Path(out) / rel).parent.mkdir(parents=True, exist_ok=True)
            mux(Path(out) / rel, sound, seconds, sources[i % len(sources)])
        labels[real_rel], labels[fake_rel] = "REAL", "FAKE"
    if layout == "dfdc":
        meta = {Path(rel).name: {"label": lab, "split": "train",
                                 "original": Path(rel).name.replace("fake", "real", 1) if lab == "FAKE" else None}
                for rel, lab in labels.items()}
        (Path(out) / PART_NAME / "metadata.json").write_text(json.dumps(meta, indent=1))
    log.info("%s: %d real and %d fake clips of %.1f s (%s)", out, len(jobs), len(jobs), seconds, layout)
    return labels


def _names(layout: str, clip: int, segment: int) -> tuple[str, str]:
    if layout == "dfdc":
        return f"{PART_NAME}/realr{clip}s{segment:02d}.mp4", f"{PART_NAME}/faker{clip}s{segment:02d}.mp4"
    folder = f"demo/any/id{clip:05d}"
    return (f"RealVideo-RealAudio/{folder}/{segment:05d}.mp4",
            f"RealVideo-FakeAudio/{folder}/{segment:05d}_fake.mp4")


@command()
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Where the part goes.")
@click.option("--clips", "clips_dir", default=str(SAMPLE), type=click.Path(file_okay=False, path_type=Path),
              help="Folder of real clips with speech (the DFDC sample's part).")
@click.option("--seconds", default=2.5, type=click.FloatRange(min=1.0), help="Seconds of speech per clip.")
@click.option("--iterations", default=16, type=click.IntRange(min=0), help="Griffin-Lim iterations of the fakes.")
@click.option("--seed", default=0, type=int)
@click.option("--layout", type=click.Choice(LAYOUTS), default="dfdc", show_default=True,
              help="dfdc: one part with metadata.json; fakeavceleb: a FakeAVCeleb tree, each clip's voice a speaker.")
@click.option("--silent-start", default=0.0, type=click.FloatRange(min=0.0), show_default=True,
              help="Seconds of silence at the start of every fake's sound.")
@click.option("--fake", type=click.Choice(FAKES), default="griffin-lim", show_default=True,
              help="griffin-lim: the fake's voice resynthesised; same: the real voice (only --silent-start differs).")
@verbose_option
def main(out: Path, clips_dir: Path, seconds: float, iterations: int, seed: int, layout: str, silent_start: float,
         fake: str, verbose: bool) -> None:
    """Real clips with real speech and fakes with the same speech resynthesised (Griffin-Lim), DFDC-shaped or as
    FakeAVCeleb."""
    setup_logging(verbose)
    with reported():
        make(out, sorted(Path(clips_dir).glob("*.mp4")), seconds, iterations, seed, layout, silent_start, fake)


if __name__ == "__main__":
    main()
