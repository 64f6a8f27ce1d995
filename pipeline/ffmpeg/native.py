"""A span of a video at its native frame rate: every frame, small, as raw YUV (lip sync reads the mouth's motion).

One ffmpeg process (input seek to the span's start, every frame of the first real video stream, fitted inside a
long side, raw I420 to stdout, each frame's time from showinfo). I420 keeps 1.5 bytes a pixel: a 10 s 30 fps span at
640x360 is about 100 MB; the luma plane is what the mouth's motion is measured on, a frame's colour is rebuilt only
where a face detector looks at it (`rgb`).
"""
from __future__ import annotations

import dataclasses
import re
import subprocess

import numpy as np

from pipeline.ffmpeg.locate import find_ffmpeg
from pipeline.ffmpeg.stderr import FrameError, FrameTimeout, one_line, parse_stderr

_OUT_SIZE = re.compile(r"Video: rawvideo.*?, (\d{2,5})x(\d{2,5})[ ,\[]")


@dataclasses.dataclass
class NativeSpan:
    """Frames of one span: `yuv` (T, H*3/2, W) uint8 I420, their times in the video (seconds), the native rate."""

    yuv: np.ndarray
    times: np.ndarray
    fps: float
    width: int
    height: int
    duration: float | None  # the container's

    def gray(self, i: int) -> np.ndarray:
        return self.yuv[i, : self.height]

    def rgb(self, i: int) -> np.ndarray:
        import cv2

        return cv2.cvtColor(self.yuv[i], cv2.COLOR_YUV2RGB_I420)


def span_command(path: str, start: float, seconds: float, long_side: int, binary: str | None = None) -> list[str]:
    scale = (f"scale=w='trunc(min(1,{long_side}/max(iw,ih))*iw/2)*2'"
             f":h='trunc(min(1,{long_side}/max(iw,ih))*ih/2)*2':flags=area")
    return [binary or find_ffmpeg(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info",
            "-threads", "1", "-ss", f"{start:.3f}", "-t", f"{seconds:.3f}", "-i", path, "-map", "0:V:0", "-an",
            "-vf", f"setpts=PTS-STARTPTS,{scale},showinfo", "-pix_fmt", "yuv420p", "-f", "rawvideo",
            "-fps_mode", "passthrough", "pipe:1"]


def decode_span(path: str, start: float = 0.0, seconds: float = 10.0, long_side: int = 640,
                timeout: float = 300.0, binary: str | None = None) -> NativeSpan:
    """Every frame of [start, start + seconds) at the video's own rate; FrameError (one line) if none decode."""
    try:
        proc = subprocess.run(span_command(path, start, seconds, long_side, binary), stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FrameTimeout(f"ffmpeg took longer than {timeout:g} s") from None
    text = proc.stderr.decode("utf-8", "replace")
    info = parse_stderr(text)
    if proc.returncode != 0:
        raise FrameError(f"ffmpeg: {one_line(info.errors)} (exit {proc.returncode})")
    size = _OUT_SIZE.search(text.split("Output #0", 1)[-1])
    if not size or not proc.stdout:
        raise FrameError("no frames decoded in the span")
    width, height = int(size.group(1)), int(size.group(2))
    per = width * height * 3 // 2
    n = len(proc.stdout) // per
    yuv = np.frombuffer(proc.stdout[: n * per], np.uint8).reshape(n, height * 3 // 2, width)
    times = np.asarray(info.pts_times[:n], np.float64) + start
    if len(times) != n or not info.fps:
        fps = info.fps or 25.0
        times = start + np.arange(n) / fps
    return NativeSpan(yuv, times, float(info.fps or 1.0 / np.median(np.diff(times))), width, height, info.duration)
