"""A labels.csv dataset whose fakes only time reveals, made with ffmpeg's lavfi sources alone.

`python -m demodata.time_only --out DIR [--videos N] [--seconds S] [--size WxH]
[--cue shuffle|jitter|flicker|patch-flicker]`

Every video is a moving lavfi picture (testsrc2 scrolling, colour bars rotating, the game of life, a cellular
automaton; varied per video), cropped from a slightly larger render. A real keeps its frames in order, its crop still and its brightness
steady. A fake's frames, one at a time, are just as real:
- `shuffle`: the real's own frames, each pair swapped in time (ffmpeg's shuffleframes "1 0 3 2"): the motion stutters
  back and forth; every frame is a frame of the same real source;
- `jitter`: the crop moves by a random few pixels every frame (a swapped face's frame-to-frame jitter); a real's crop
  is still, at a random offset from the same range;
- `flicker`: the brightness changes randomly every frame (eq, eval=frame); a real's brightness is one random shift
  from the same range for the whole video;
- `patch-flicker`: as `flicker`, but only inside the middle quarter of the picture (half its width and height, where
  a swapped face would be): the region's brightness changes every frame in a fake, is one steady shift in a real.
So a frame model sees real-looking frames in both classes (for `shuffle` the very same frames), while a clip of
consecutive frames shows the cue. The pairs are lossless H.264 (-qp 0), so the frames are what the filters made.
Made for issue 26's "a clip model against a frame model on a task that only time reveals".
"""
from __future__ import annotations

import csv
import logging
import random
import subprocess
from pathlib import Path

import click

from dfd.cli import reported, setup_logging
from dfd.errors import ToolkitError
from pipeline.ffmpeg.locate import find_ffmpeg

log = logging.getLogger(__name__)

CUES = ("shuffle", "jitter", "flicker", "patch-flicker")
RATE = 25
MARGIN = 8          # pixels rendered around the crop on each side: the jitter's range
BRIGHTNESS = 0.08   # the flicker's (and the reals' steady shift's) range, eq's units


class TimeOnlyError(ToolkitError):
    """The test videos could not be made."""


def source(index: int, width: int, height: int, seed: int) -> str:
    """A moving lavfi picture for video `index`, rendered MARGIN pixels larger on each side."""
    size = f"{width + 2 * MARGIN}x{height + 2 * MARGIN}"
    speed = 0.01 * (1 + (seed + index) % 3)  # of the picture per frame
    kinds = [f"testsrc2=size={size}:rate={RATE},scroll=h={speed}:v={speed / 2}",
             f"rgbtestsrc=size={size}:rate={RATE},rotate=t*{60 * speed}",
             f"life=size={size}:rate={RATE}:seed={seed * 1000 + index}:ratio=0.3:mold=10",
             f"cellauto=size={size}:rate={RATE}:rule={[18, 30, 90, 110][(seed + index) % 4]}"]
    return kinds[index % len(kinds)]


def video_filter(cue: str, fake: bool, width: int, height: int, rng: random.Random) -> str:
    """The filter chain of one video: a real's still crop and steady brightness, or a fake's cue. Draw with a
    generator seeded alike for a real and its fake: a shuffled fake then shows the real's very frames."""
    x, y, level = rng.randint(0, 2 * MARGIN), rng.randint(0, 2 * MARGIN), rng.uniform(-BRIGHTNESS, BRIGHTNESS)
    if cue == "jitter" and fake:
        crop = f"crop={width}:{height}:'{MARGIN}+{MARGIN}*(2*random(0)-1)':'{MARGIN}+{MARGIN}*(2*random(1)-1)'"
    else:
        crop = f"crop={width}:{height}:{x}:{y}"
    steps = [crop]
    if cue in ("flicker", "patch-flicker"):
        level = f"'{BRIGHTNESS}*(2*random(2)-1)'" if fake else f"{level:.4f}"
        eq = f"eq=brightness={level}:eval=frame"
        steps.append(eq if cue == "flicker" else
                     f"split[whole][part];[part]crop=iw/2:ih/2:iw/4:ih/4,{eq}[patch];[whole][patch]overlay=W/4:H/4")
    if cue == "shuffle" and fake:
        steps.append("shuffleframes=1 0 3 2")
    return ",".join([*steps, "format=yuv420p"])


def make_video(path: Path, lavfi: str, vf: str, seconds: float) -> Path:
    cmd = [find_ffmpeg(), "-y", "-v", "error", "-f", "lavfi", "-i", lavfi, "-t", f"{seconds}", "-vf", vf,
           "-c:v", "libx264", "-qp", "0", "-preset", "ultrafast", "-an", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise TimeOnlyError(f"{path}: ffmpeg failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return path


def make(out: Path, videos: int, seconds: float, size: tuple[int, int], cue: str, seed: int = 0) -> Path:
    """`videos` pairs (a real and its fake from the same source) into out/, with out/labels.csv
    (path,label,original). Returns the csv's path."""
    if cue not in CUES:
        raise TimeOnlyError(f"--cue must be one of {', '.join(CUES)}, got {cue!r}")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(videos):
        lavfi = source(i, *size, seed)
        real, fake = f"real{i:04d}.mp4", f"fake{i:04d}.mp4"
        make_video(out / real, lavfi, video_filter(cue, False, *size, random.Random(seed * 100003 + i)), seconds)
        make_video(out / fake, lavfi, video_filter(cue, True, *size, random.Random(seed * 100003 + i)), seconds)
        rows += [(real, "real", ""), (fake, "fake", real)]
    with open(out / "labels.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "label", "original"), *rows])
    log.info("%d real and %d fake videos (cue %s) in %s", videos, videos, cue, out)
    return out / "labels.csv"


def _size(ctx, param, value: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter("expected WxH, e.g. 64x64") from None
    return w, h


@click.command(help=__doc__.split("\n\n")[0])
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the videos and labels.csv.")
@click.option("--videos", type=click.IntRange(1), default=16, show_default=True, help="Pairs of real and fake.")
@click.option("--seconds", type=click.FloatRange(0.2), default=4.0, show_default=True)
@click.option("--size", callback=_size, default="96x96", show_default=True, help="WIDTHxHEIGHT of every video.")
@click.option("--cue", type=click.Choice(CUES), default="shuffle", show_default=True, help="What the fakes do in time.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("-v", "--verbose", is_flag=True)
def main(out: Path, videos: int, seconds: float, size: tuple[int, int], cue: str, seed: int, verbose: bool) -> None:
    setup_logging(verbose)
    with reported():
        make(out, videos, seconds, size, cue, seed)


if __name__ == "__main__":
    main()
