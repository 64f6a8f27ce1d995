"""What ffmpeg said on stderr about the input, the kept frames, the sound and its errors; the records it fills.

What ffmpeg said on stderr: the input's duration, size, rate and rotation, the kept frames' times, its errors (as
one line), the sound's stream and messages; the records they fill and the error a video that cannot be decoded
raises.
"""
from __future__ import annotations

import dataclasses
import re

from dfd.errors import ToolkitError

from pipeline.spec import DECODE_ALL

_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\d+:\d+.*?: Video: .*?, (\d{2,5})x(\d{2,5})[ ,\[]")
_FPS = re.compile(r"([\d.]+)(k?) (?:fps|tbr)")
_ROTATION = re.compile(r"(?:displaymatrix|display matrix): rotation of (-?[\d.]+) degrees", re.I)
_PTS_TIME = re.compile(r"\bn:\s*(\d+)\s+pts:\s*-?\d+\s+pts_time:\s*(-?[\d.e+-]+)")
_LEVEL = re.compile(r"^(?:\[[^\]]*@ 0x[0-9a-f]+\] )*\[(error|fatal|panic)\] (.*)$")
_STREAM = r"Stream #{}:\d+.*?: Audio: (\w+)[^,]*, (\d+) Hz, ([^,]+)"
_SOUND_LEVEL = re.compile(r"^((?:\[[^\]]*@ 0x[0-9a-f]+\] )*)\[(error|fatal|panic|warning)\] (.*)$")
_LAYOUTS = {"mono": 1, "stereo": 2, "2.1": 3, "3.0": 3, "quad": 4, "4.0": 4, "4.1": 5, "5.0": 5, "5.1": 6,
            "6.0": 6, "6.1": 7, "7.0": 7, "7.1": 8, "downmix": 2}


class FrameError(ToolkitError, RuntimeError):
    """A video that cannot be turned into frames; the message is one line, ffmpeg's own where it has one."""


class FrameTimeout(FrameError):
    """ffmpeg ran past the timeout (not retried with every frame decoded: it would only time out again)."""


@dataclasses.dataclass
class VideoInfo:
    duration: float | None = None
    width: int | None = None  # displayed size: rotation applied
    height: int | None = None
    fps: float | None = None
    rotation: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)
    pts_times: list[float] = dataclasses.field(default_factory=list)
    skip_frames: str = DECODE_ALL  # what the decode that stands skipped ("noref" or "none")
    audio: AudioTrack | None = None  # the sound, where extract was asked for it
    clip_jpegs: list[bytes] = dataclasses.field(default_factory=list)  # the clips' frames, where asked for
    clip_times: list[float] = dataclasses.field(default_factory=list)  # their times (s), as showinfo logged them
    # (i, error): ffmpeg logged `error` after i of the clips' frames had come out (so it was met decoding frame i
    # or one between frames i-1 and i)
    clip_errors: list[tuple[int, str]] = dataclasses.field(default_factory=list)



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



def parse_stderr(text: str, showinfo: str | None = None) -> VideoInfo:
    """What ffmpeg's log tells about the input (before 'Output #0'), the selected frames' times and errors; with
    `showinfo` (the filter's name in the log), the times that filter logged only (a graph with several outputs)."""
    info = VideoInfo()
    in_input = True
    for line in text.splitlines():
        if "Output #0" in line:
            in_input = False
        if in_input:
            _parse_input_line(line, info)
        pts = _PTS_TIME.search(line)
        if pts and ("showinfo" in line if showinfo is None else f"[{showinfo} @" in line):
            info.pts_times.append(float(pts.group(2)))
        level = _LEVEL.match(line.strip())
        if level:
            info.errors.append(level.group(2).strip())
    if info.rotation % 180 == 90 and info.width:
        info.width, info.height = info.height, info.width
    return info


def errors_between(text: str, showinfo: str, errors: list[str]) -> list[tuple[int, str]]:
    """Each of `errors` (ffmpeg's error lines, as parse_stderr gives them) with the number of frames the showinfo
    filter `showinfo` had logged before it: where in that output's frames the decoder met it."""
    wanted, out, seen = set(errors), [], 0
    for line in text.splitlines():
        if f"[{showinfo} @" in line and _PTS_TIME.search(line):
            seen += 1
        elif (level := _LEVEL.match(line.strip())) and level.group(2).strip() in wanted:
            out.append((seen, level.group(2).strip()))
    return out


def _parse_input_line(line: str, info: VideoInfo) -> None:
    if (m := _DURATION.search(line)) and info.duration is None:
        info.duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    elif (m := _VIDEO.search(line)) and info.width is None and "attached pic" not in line:
        info.width, info.height = int(m.group(1)), int(m.group(2))
        if fm := _FPS.search(line):
            info.fps = float(fm.group(1)) * (1000 if fm.group(2) else 1)
    elif (m := _ROTATION.search(line)) and info.rotation == 0:
        info.rotation = round(float(m.group(1))) % 360


def one_line(errors: list[str]) -> str:
    """The most telling of ffmpeg's error lines, as one line."""
    for err in errors:
        if "matches no streams" in err:
            return "no video stream"
    wanted = [e for e in errors if not e.startswith(("Error opening input file", "Error opening output"))]
    text = (wanted or errors or ["unknown error"])[0]
    return re.sub(r"\s+", " ", text)[:300]


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
    The picture's lines are left to pipeline.ffmpeg.extract."""
    names = {n for n in (codec, "aresample", "SWR", "pcm_s16le", "s16le", "pipe:3") if n}
    errors, warnings = [], []
    for line in stderr.splitlines():
        m = _SOUND_LEVEL.match(line.strip())
        if not m or not (any(f"[{n} @" in m.group(1) or f"[{n}]" in m.group(1) for n in names)
                         or (input_index is not None and re.search(rf"stream #{input_index}:\d", m.group(3)))):
            continue
        (warnings if m.group(2) == "warning" else errors).append(m.group(3).strip())
    return errors, warnings

