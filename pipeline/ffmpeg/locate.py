"""Finding the ffmpeg binary and asking it what it is."""
from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess

from dfd.errors import UsageProblem

log = logging.getLogger(__name__)


class FFmpegNotFound(UsageProblem, RuntimeError):
    """No usable ffmpeg binary."""


@functools.lru_cache(maxsize=None)
def find_ffmpeg() -> str:
    """`$FFMPEG`, else `ffmpeg` on PATH, else the binary shipped in the imageio-ffmpeg wheel."""
    env = os.environ.get("FFMPEG")
    if env:
        path = shutil.which(env) or (env if os.path.isfile(env) else None)
        if not path:
            raise FFmpegNotFound(f"$FFMPEG is set to {env!r}, which is not an executable file")
        return path
    path = shutil.which("ffmpeg")
    if path:
        return path
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - the wheel is a dependency
        raise FFmpegNotFound("ffmpeg is not on PATH and imageio-ffmpeg is not installed") from exc
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise FFmpegNotFound(f"ffmpeg is not on PATH and imageio-ffmpeg has none: {exc}") from exc


@functools.lru_cache(maxsize=None)
def ffmpeg_version(binary: str | None = None) -> str:
    """The first line of `ffmpeg -version`, e.g. 'ffmpeg version 5.1.9-0+deb12u1'."""
    binary = binary or find_ffmpeg()
    out = subprocess.run([binary, "-hide_banner", "-version"], capture_output=True, text=True, check=True)
    first = out.stdout.splitlines()[0] if out.stdout else "ffmpeg version unknown"
    return first.split(" Copyright")[0].strip()


def version_tuple(version_line: str) -> tuple[int, int]:
    """(major, minor) from a version line; release builds like 'n9.0.2' included; (99, 0) for git builds."""
    match = re.search(r"version n?(\d+)\.(\d+)", version_line)
    if not match:
        return (99, 0)
    return int(match.group(1)), int(match.group(2))


def passthrough_args(binary: str | None = None) -> list[str]:
    """Keep selected frames as they are (no duplication to a constant rate): -fps_mode from 5.1, -vsync before."""
    major, minor = version_tuple(ffmpeg_version(binary))
    if (major, minor) >= (5, 1):
        return ["-fps_mode", "passthrough"]
    return ["-vsync", "passthrough"]
