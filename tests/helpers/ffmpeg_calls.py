"""ffmpeg binaries for the pipeline's tests: the imageio-ffmpeg wheel's, and a wrapper that logs each call."""
from __future__ import annotations

from pathlib import Path

from pipeline.ffmpeg.locate import find_ffmpeg


def imageio_ffmpeg_exe() -> str:
    """The static ffmpeg binary shipped in the imageio-ffmpeg wheel (a newer ffmpeg than Debian's)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def logging_ffmpeg(folder: Path, real: str | None = None, delay: float = 0.0) -> tuple[Path, Path]:
    """An executable that logs each call's arguments (one line) and then runs the real ffmpeg: (wrapper, log)."""
    folder.mkdir(parents=True, exist_ok=True)
    log, wrapper = folder / "ffmpeg-calls.log", folder / "ffmpeg-logged"
    sleep = f"sleep {delay}\n" if delay else ""
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\n{sleep}exec "{real or find_ffmpeg()}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, log


def decode_calls(log: Path) -> list[str]:
    """The logged ffmpeg calls that opened an input (`-i`), i.e. decodes, not `-version`."""
    if not log.exists():
        return []
    return [line for line in log.read_text().splitlines() if " -i " in f" {line} "]
