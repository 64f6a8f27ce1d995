"""The pipeline's settings: one frozen dataclass that validates itself."""
from __future__ import annotations

import dataclasses
import re

from dfd.errors import UsageProblem
from dfd.threads import usable_cores
from pipeline.spec import MAX_SIDE, SKIP_FRAMES, Clips, FrameSampling

GROUPING = "identities"  # groups are connected components of the people a video involves (issue 11 item 13)
LAYOUTS = ("auto", "dfdc", "ffpp", "celebdf", "csv", "fakeavceleb", "lavdf", "avdeepfake1m", "unlabelled", "mixed")
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "kib": 2**10, "mib": 2**20, "gib": 2**30}


class ConfigError(UsageProblem, ValueError):
    """A setting that cannot work; the message names the setting and the allowed values."""


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720): the long and short side of the box frames are fitted into."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX:]\s*(\d+)\s*", str(text))
    if not match:
        raise ConfigError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 1280x720")
    w, h = int(match.group(1)), int(match.group(2))
    if w < 16 or h < 16 or w > MAX_SIDE or h > MAX_SIDE:
        raise ConfigError(f"size {text!r}: both sides must be between 16 and {MAX_SIDE} pixels")
    return w, h


def parse_bytes(text: str | int) -> int:
    """'300MB' -> 300_000_000; plain integers are bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _UNITS:
        raise ConfigError(f"shard size {text!r} is not a size such as 300MB, 1GB or 50000000")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_part(text: str) -> tuple[int, int]:
    """'2/4' -> (2, 4): this machine's share of the videos when preprocessing is spread over N machines."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not match:
        raise ConfigError(f"part {text!r} is not K/N, e.g. 1/4")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1 or not 1 <= k <= n:
        raise ConfigError(f"part {text!r}: need 1 <= K <= N")
    return k, n


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything that decides which frames end up in which shard."""

    videos: str
    shards: str = "shards"
    manifests: str = "manifests"
    fps: float = 1.0
    size: tuple[int, int] = (1280, 720)
    quality: int = 2
    val_fraction: float = 0.3
    seed: int = 0
    workers: int = dataclasses.field(default_factory=usable_cores)  # processes never wait on each other (dfd.threads)
    shard_size: int = 300 * 10**6
    limit: int | None = None
    layout: str = "auto"
    part: tuple[int, int] = (1, 1)
    timeout: float = 600.0
    retry_failed: bool = False
    grouping: str = GROUPING
    skip_frames: str = "noref"  # ~0.6x the CPU of decoding every frame on DFDC (docs/performance.md)
    allow_outside_paths: bool = False  # labels.csv / metadata.json may name files outside --videos
    audio: bool = True               # keep each video's sound (mono WAV) in SHARDS/audio/, from the same ffmpeg run
    audio_rate: int = 16000          # Hz; speech detectors and the bispectral features work at 16 kHz
    split_files: tuple[str, ...] = ()  # 'SPLIT=/abs/FILE' each: official splits and test lists (pipeline.split.files)
    clip_frames: int = 0             # keep clips of this many consecutive frames in SHARDS/clips/ (0: no clips)
    clips_per_video: int | None = None  # at most this many clips per video, spread over it (None: one per second)
    clip_size: tuple[int, int] | None = None  # the clips' box (None: the frames' size)
    clip_quality: int | None = None  # the clips' JPEG -q:v (None: the frames' quality)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first setting that cannot work."""
        if not (0 < self.fps <= 60):
            raise ConfigError(f"fps must be in (0, 60], got {self.fps}")
        if self.size[0] < self.size[1]:
            raise ConfigError(f"size is the landscape box WIDTHxHEIGHT (e.g. 1280x720), got "
                              f"{self.size[0]}x{self.size[1]}; portrait clips use it turned automatically")
        if not 1 <= self.quality <= 31:
            raise ConfigError(f"quality is ffmpeg's JPEG -q:v, 1 (best) to 31, got {self.quality}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val fraction must be in [0, 1), got {self.val_fraction}")
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.shard_size < 1:
            raise ConfigError(f"shard size must be positive, got {self.shard_size}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be at least 1, got {self.limit}")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        if self.skip_frames not in SKIP_FRAMES:
            raise ConfigError(f"skip frames must be one of {', '.join(SKIP_FRAMES)}, got {self.skip_frames!r}")
        if self.timeout <= 0:
            raise ConfigError(f"timeout must be positive, got {self.timeout}")
        if not 4000 <= self.audio_rate <= 192000:
            raise ConfigError(f"audio rate must be between 4000 and 192000 Hz, got {self.audio_rate}")
        if self.clip_frames < 0:
            raise ConfigError(f"clip frames must be 0 (no clips) or more, got {self.clip_frames}")
        if self.clip_frames and self.skip_frames != "none":
            raise ConfigError("clips need every frame decoded: pass --skip-frames none with --clip-frames "
                              f"(got skip frames {self.skip_frames!r})")
        if self.clip_size is not None and self.clip_size[0] < self.clip_size[1]:
            raise ConfigError(f"clip size is the landscape box WIDTHxHEIGHT, got {self.clip_size[0]}x{self.clip_size[1]}")
        self.clips()  # bounds: pipeline.spec.Clips

    @property
    def part_tag(self) -> str:
        """'' for a single-machine run, 'p2of4' for part 2 of 4."""
        k, n = self.part
        return "" if n == 1 else f"p{k}of{n}"

    def frame_sampling(self) -> FrameSampling:
        """What the frames stage applies: the spec every later reader (dataset.json, checkpoints, packages) carries."""
        return FrameSampling(fps=self.fps, size=self.size, quality=self.quality, skip_frames=self.skip_frames,
                             timeout=self.timeout)

    def frame_settings(self) -> dict:
        """The settings that change the frames themselves (the sampling but its timeout): they must match across
        reruns and parts."""
        kept = self.frame_sampling().to_dict()
        return {k: kept[k] for k in ("fps", "size", "quality", "skip_frames")}

    def audio_settings(self) -> dict:
        """The settings that decide the sound kept: they must match across reruns and parts (a manifest made
        before sound was kept reads as audio=False)."""
        return {"audio": self.audio, "audio_rate": self.audio_rate if self.audio else None}

    def clips(self) -> Clips | None:
        """What the clips part of the frames stage applies (None: no clips): its size and quality default to the
        frames'."""
        if not self.clip_frames:
            return None
        return Clips(frames=self.clip_frames, per_video=self.clips_per_video, size=self.clip_size or self.size,
                     quality=self.clip_quality or self.quality)

    def clip_settings(self) -> dict:
        """The settings that decide the clips kept: they must match across reruns and parts (a manifest made before
        clips existed reads as none)."""
        clips = self.clips()
        return {"clips": clips.to_dict() if clips else None}

    def split_settings(self) -> dict:
        return {"seed": self.seed, "val_fraction": self.val_fraction, "grouping": self.grouping,
                "split_files": list(self.split_files)}

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["size"] = list(self.size)
        d["part"] = list(self.part)
        d["split_files"] = list(self.split_files)
        d["clip_size"] = list(self.clip_size) if self.clip_size else None
        d["clips"] = self.clip_settings()["clips"]
        return d
