"""`make measure-sync`: lip sync (train.audio.sync) on the DFDC sample's speaking clips in ../shared/data, their own
sound against sound shifted and sound of another clip, made here with ffmpeg.

Test videos (a temporary folder, deleted after): each clip's picture copied as it is (-c:v copy) with its sound
re-encoded to AAC: (original) its own sound; (shift +-0.3, +-0.5, +-1 s) its sound delayed (adelay: silence before)
or advanced (atrim of the start, silence padded at the end), cut to the clip's length; (swapped) each other clip's
sound. The mouth tube is made once per clip from its original file by the real path (native-rate span decode,
MTCNN, landmarks; the variants' pictures are byte copies of it), each variant's sound is decoded from its own file
by the pipeline's extract_sound. Prints a row per video and a table per kind: the offset found (expected: the shift),
p_fake, and the AUC of p_fake for shifted and swapped against the originals.
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.ffmpeg.locate import find_ffmpeg  # noqa: E402
from train.audio.sync_of_files import SyncSpan, sound_of, sync_detector, sync_of, tube_of  # noqa: E402

log = logging.getLogger("measure_sync")
DFDC = ROOT.parent / "shared" / "data" / "dfdc_sample" / "dfdc_train_part_0"
SHIFTS = (-1.0, -0.5, -0.3, 0.3, 0.5, 1.0)


def make_variant(clip: Path, sound: Path, shift: float, out: Path, seconds: float) -> Path:
    """The clip's picture (copied) with `sound`'s first audio track shifted by `shift` s (positive: late)."""
    if shift > 0:
        af = f"adelay={int(shift * 1000)}:all=1,atrim=0:{seconds}"
    elif shift < 0:
        af = f"atrim=start={-shift},asetpts=PTS-STARTPTS,apad,atrim=0:{seconds}"
    else:
        af = f"atrim=0:{seconds}"
    subprocess.run([find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(clip), "-i", str(sound),
                    "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-af", af, "-c:a", "aac", "-b:a", "96k",
                    str(out)], check=True)
    return out


def auc(positive: list[float], negative: list[float]) -> float | None:
    if not positive or not negative:
        return None
    pairs = [(p > n) + 0.5 * (p == n) for p in positive for n in negative]
    return float(np.mean(pairs))


def variants(clips: list[Path], folder: Path, seconds: float):
    """(clip, kind, expected offset, path) of every test video."""
    for clip in clips:
        yield clip, "original", 0.0, make_variant(clip, clip, 0.0, folder / f"{clip.stem}_orig.mp4", seconds)
        for s in SHIFTS:
            yield clip, f"shift {s:+g}", s, make_variant(clip, clip, s, folder / f"{clip.stem}_{s:+g}.mp4", seconds)
        for other in clips:
            if other != clip:
                yield clip, "swapped", None, make_variant(clip, other, 0.0,
                                                         folder / f"{clip.stem}_{other.stem}.mp4", seconds)


def summary(rows: list[dict]) -> None:
    ok = [r for r in rows if r["p_fake"] is not None]
    print(f"\n{'kind':<12}{'n':>3}  {'offsets found (s)':<34}{'p_fake mean':>12}{'called apart':>14}")
    for kind in dict.fromkeys(r["kind"] for r in rows):
        got = [r for r in ok if r["kind"] == kind]
        offsets = " ".join(f"{r['offset_s']:+.2f}" for r in got)
        mean = np.mean([r["p_fake"] for r in got]) if got else float("nan")
        called = sum(r["p_fake"] >= 0.5 for r in got)
        print(f"{kind:<12}{len(got):>3}  {offsets:<34}{mean:>12.3f}{f'{called} of {len(got)}':>14}")
    orig = [r["p_fake"] for r in ok if r["kind"] == "original"]
    for name, test in (("swapped", lambda k: k == "swapped"), ("shifted", lambda k: k.startswith("shift")),
                       ("|shift| >= 0.5", lambda k: k.startswith("shift") and abs(float(k[6:])) >= 0.5)):
        pos = [r["p_fake"] for r in ok if test(r["kind"])]
        value = auc(pos, orig)
        print(f"AUC of p_fake, {name} ({len(pos)}) vs original ({len(orig)}): "
              f"{'n/a' if value is None else f'{value:.3f}'}")
    own = {r["clip"]: r["offset_s"] for r in ok if r["kind"] == "original"}
    shifted = [r for r in ok if r["kind"].startswith("shift") and r["clip"] in own]
    found = [abs(r["offset_s"] - r["expected"]) <= 0.1 for r in shifted]
    relative = [abs(r["offset_s"] - own[r["clip"]] - r["expected"]) <= 0.1 for r in shifted]
    print(f"shift found within 0.1 s: {sum(found)} of {len(found)}; of the shift plus the clip's own offset: "
          f"{sum(relative)} of {len(relative)}")


@click.command()
@click.option("--clips", type=click.Path(exists=True, file_okay=False, path_type=Path), default=DFDC,
              show_default=True, help="Folder of real clips with speech.")
@click.option("--seconds", type=float, default=10.0, show_default=True, help="The span measured (from 0 s).")
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), help="Write the rows here too.")
def main(clips: Path, seconds: float, json_out: Path | None) -> None:
    """Lip sync's offset and p_fake on originals, shifted and swapped sound (see the module's docstring)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    files = sorted(clips.glob("*.mp4"))
    detector, span, rows, tubes = sync_detector("cpu"), SyncSpan(seconds=seconds), [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for clip, kind, expected, path in variants(files, Path(tmp), seconds):
            if clip not in tubes:
                tubes[clip] = tube_of(clip, detector, span)
            samples, why = sound_of(path)
            sync = sync_of(tubes[clip], samples) if samples is not None else None
            row = {"clip": clip.name, "kind": kind, "expected": expected, "p_fake": sync and sync.p_fake,
                   "offset_s": sync and sync.offset_s, "agreement": sync and sync.agreement,
                   "in_sync": sync and sync.in_sync, "confidence": sync and sync.confidence, "note": why if sync is None else sync.note}
            print(json.dumps(row))
            rows.append({**row, "lags_s": sync and sync.lags_s, "correlation": sync and sync.correlation})
    summary(rows)
    if json_out:
        json_out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
