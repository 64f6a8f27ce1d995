"""One ffmpeg process per video -> JPEG bytes for each sampled second, plus what ffmpeg said about the video."""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import subprocess

import ffmpeg

from .ffmpeg import ffmpeg_version, find_ffmpeg, passthrough_args, version_tuple

log = logging.getLogger(__name__)

_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\d+:\d+.*?: Video: .*?, (\d{2,5})x(\d{2,5})[ ,\[]")
_FPS = re.compile(r"([\d.]+)(k?) (?:fps|tbr)")
_ROTATION = re.compile(r"(?:displaymatrix|display matrix): rotation of (-?[\d.]+) degrees", re.I)
_PTS_TIME = re.compile(r"\bn:\s*(\d+)\s+pts:\s*-?\d+\s+pts_time:\s*(-?[\d.e+-]+)")
_LEVEL = re.compile(r"^(?:\[[^\]]*@ 0x[0-9a-f]+\] )*\[(error|fatal|panic)\] (.*)$")


class FrameError(RuntimeError):
    """A video that cannot be turned into frames; the message is one line, ffmpeg's own where it has one."""


@dataclasses.dataclass
class VideoInfo:
    duration: float | None = None
    width: int | None = None  # displayed size: rotation applied
    height: int | None = None
    fps: float | None = None
    rotation: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)
    pts_times: list[float] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Frame:
    index: int
    second: float
    jpeg: bytes
    width: int
    height: int


def frame_graph(path: str, fps: float, box: tuple[int, int], quality: int, binary: str):
    """The ffmpeg-python graph: first frame of every 1/fps interval, then fit inside the box (turned for portrait),
    never upscaled, each kept frame's time logged by showinfo, JPEGs to stdout."""
    long_side, short_side = box
    stream = ffmpeg.input(path, threads=1)["V:0"]  # the first real video stream (no cover art)
    stream = stream.filter("setpts", "PTS-STARTPTS")
    stream = stream.filter("select", f"isnan(prev_selected_t)+gt(floor(t*{fps}),floor(prev_selected_t*{fps}))")
    # swscale's bilinear filter widens with the scale factor when shrinking (antialiased, like an area filter),
    # and costs ~3-5% less of the whole decode than the default bicubic on 1080p -> 720p.
    stream = stream.filter("scale", w=f"if(gte(iw,ih),min(iw,{long_side}),min(iw,{short_side}))",
                           h=f"if(gte(iw,ih),min(ih,{short_side}),min(ih,{long_side}))",
                           force_original_aspect_ratio="decrease", force_divisible_by=2, flags="bilinear")
    # showinfo gives each kept frame's time; checksum=0 skips its per-plane checksums and stats (~1% of the CPU).
    stream = stream.filter("showinfo", checksum=0) if _showinfo_checksum_option(binary) else stream.filter("showinfo")
    passthrough = passthrough_args(binary)  # ['-fps_mode' or '-vsync', 'passthrough']
    return stream.output("pipe:1", **{"c:v": "mjpeg", "q:v": quality, "threads": 1, "f": "image2pipe",
                                      passthrough[0].lstrip("-"): passthrough[1]})


def ffmpeg_command(path: str, fps: float, box: tuple[int, int], quality: int, binary: str | None = None) -> list[str]:
    """The frame command: frame_graph compiled with our binary (one decode and one filter thread per video)."""
    binary = binary or find_ffmpeg()
    return frame_graph(path, fps, box, quality, binary).compile(cmd=[
        binary, "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info", "-filter_complex_threads", "1"])


def _showinfo_checksum_option(binary: str) -> bool:
    """showinfo's `checksum` option exists from ffmpeg 5.0 on (git builds included)."""
    return version_tuple(ffmpeg_version(binary)) >= (5, 0)


def parse_stderr(text: str) -> VideoInfo:
    """What ffmpeg's log tells about the input (before 'Output #0'), the selected frames' times and errors."""
    info = VideoInfo()
    in_input = True
    for line in text.splitlines():
        if "Output #0" in line:
            in_input = False
        if in_input:
            _parse_input_line(line, info)
        pts = _PTS_TIME.search(line)
        if pts and "showinfo" in line:
            info.pts_times.append(float(pts.group(2)))
        level = _LEVEL.match(line.strip())
        if level:
            info.errors.append(level.group(2).strip())
    if info.rotation % 180 == 90 and info.width:
        info.width, info.height = info.height, info.width
    return info


def _parse_input_line(line: str, info: VideoInfo) -> None:
    if (m := _DURATION.search(line)) and info.duration is None:
        info.duration = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    elif (m := _VIDEO.search(line)) and info.width is None and "attached pic" not in line:
        info.width, info.height = int(m.group(1)), int(m.group(2))
        if fm := _FPS.search(line):
            info.fps = float(fm.group(1)) * (1000 if fm.group(2) else 1)
    elif (m := _ROTATION.search(line)) and info.rotation == 0:
        info.rotation = round(float(m.group(1))) % 360


def split_jpegs(data: bytes) -> list[bytes]:
    """Cut ffmpeg's image2pipe MJPEG stream into JPEG files: walk the segments to SOS, then find EOI."""
    frames, pos, n = [], 0, len(data)
    while pos < n:
        if data[pos:pos + 2] != b"\xff\xd8":
            raise FrameError(f"unexpected bytes in ffmpeg's JPEG stream at offset {pos}")
        seg = pos + 2
        while seg + 4 <= n and data[seg] == 0xFF and data[seg + 1] != 0xDA:
            seg += 2 + int.from_bytes(data[seg + 2:seg + 4], "big")
        end = data.find(b"\xff\xd9", seg)
        if end < 0:
            raise FrameError("ffmpeg's JPEG stream ends inside a frame")
        frames.append(data[pos:end + 2])
        pos = end + 2
    return frames


def jpeg_size(jpeg: bytes) -> tuple[int, int]:
    """(width, height) from the JPEG's SOF header, without decoding pixels."""
    pos = 2
    while pos + 9 < len(jpeg):
        marker = jpeg[pos + 1]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return int.from_bytes(jpeg[pos + 7:pos + 9], "big"), int.from_bytes(jpeg[pos + 5:pos + 7], "big")
        pos += 2 + int.from_bytes(jpeg[pos + 2:pos + 4], "big")
    raise FrameError("JPEG without a frame header")


def expected_frames(duration: float | None, video_fps: float | None, fps: float) -> int | None:
    """How many sampled frames a complete video of this duration gives (the last frame starts 1/fps_in early)."""
    if not duration:
        return None
    last = duration - (1.0 / video_fps if video_fps else 0.0)
    return max(1, math.floor(max(last, 0.0) * fps) + 1)


def one_line(errors: list[str]) -> str:
    """The most telling of ffmpeg's error lines, as one line."""
    for err in errors:
        if "matches no streams" in err:
            return "no video stream"
    wanted = [e for e in errors if not e.startswith(("Error opening input file", "Error opening output"))]
    text = (wanted or errors or ["unknown error"])[0]
    return re.sub(r"\s+", " ", text)[:300]


def extract(path: str, fps: float, box: tuple[int, int], quality: int, timeout: float = 600.0,
            binary: str | None = None) -> tuple[VideoInfo, list[Frame]]:
    """Decode the video once and return its sampled frames. Raises FrameError with a one-line reason."""
    if not os.path.isfile(path):
        raise FrameError("file not found")
    if os.path.getsize(path) == 0:
        raise FrameError("empty file (0 bytes)")
    cmd = ffmpeg_command(path, fps, box, quality, binary)
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise FrameError(f"ffmpeg took longer than {timeout:g} s") from exc
    info = parse_stderr(proc.stderr.decode("utf-8", "replace"))
    if proc.returncode != 0:
        raise FrameError(f"ffmpeg: {one_line(info.errors)} (exit {proc.returncode})")
    jpegs = split_jpegs(proc.stdout)
    if not jpegs:
        raise FrameError(f"no frames decoded{': ffmpeg: ' + one_line(info.errors) if info.errors else ''}")
    expected = expected_frames(info.duration, info.fps, fps)
    partial = [e for e in info.errors if "partial file" in e]  # the demuxer hit EOF inside the data: truncated
    if partial or (info.errors and expected and len(jpegs) < expected - 1):
        raise FrameError(f"truncated or corrupt: {len(jpegs)} of {expected} frames; "
                         f"ffmpeg: {one_line(partial or info.errors)}")
    return info, _frames(jpegs, info, fps)


def _frames(jpegs: list[bytes], info: VideoInfo, fps: float) -> list[Frame]:
    times = info.pts_times if len(info.pts_times) == len(jpegs) else [i / fps for i in range(len(jpegs))]
    if len(info.pts_times) != len(jpegs):
        log.warning("ffmpeg reported %d frame times for %d frames; numbering them in order",
                    len(info.pts_times), len(jpegs))
    width, height = jpeg_size(jpegs[0])
    frames, last = [], -1
    for jpeg, t in zip(jpegs, times):
        index = max(math.floor(t * fps + 1e-6), last + 1)
        frames.append(Frame(index, round(t, 6), jpeg, width, height))
        last = index
    return frames
