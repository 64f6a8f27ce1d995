"""`make bench-shards`: the pipeline's wall time on 1080p 10 s H.264 clips against the ffmpeg decode floor.

The clip set is the real DFDC clips in ../shared/data (symlinked, read-only) plus N generated ones made like DFDC
(1920x1080, 29.97 fps, x264 medium at ~3 Mbit/s, default GOP, AAC audio), cached in OUT/cache so reruns skip
generation, each in the set --copies times under its own names (4 + 8 x 4 = 36 clips by default). In the same run,
alternately R times:

  floor:    `ffmpeg -threads 1 -i CLIP -map 0:v -f null -` over the clips, W processes at a time;
  pipeline: `python -m pipeline.run --workers W` (fresh output folders), run in-process by a tiny wrapper that
            reports its own peak RSS (the orchestrator, not its workers) and CPU time;
  (with --compare-full) the pipeline with PIPELINE_FULL_DECODE=1: every clip decoded to its end, no early stop;
  (with --compare-skip) the pipeline with --skip-frames none: every frame decoded (the default skips the frames
            no other frame refers to, -skip_frame:v noref).
  (with --compare-audio) the pipeline with --no-audio: the sound's cost is the default run's CPU over this one's
            (target: within 3%; the sound is a second output of the same ffmpeg process, see pipeline.stages.sound.wav).
  (with --clip-frames T) the pipeline with --skip-frames none --clip-frames T beside the one with --skip-frames none
            alone (clips need every frame decoded): the clips' extra CPU per clip frame, and the ratios to the
            frames-only runs (every frame, and the default skip); then per distinct clip, one at a time, ffmpeg's
            CPU-s of `extract` for the three (noref, every frame, every frame + clips), alternated --repeats times.

The CPU-seconds ratio (pipeline / floor, orchestrator and workers included) is the figure that a loaded machine
does not distort; its target is 0.70x with non-reference frames skipped (issue 20), 1.05x without. Then, per
distinct clip, the floor and `pipeline.ffmpeg.extract.extract` with and without the skip (ffmpeg's CPU-s), and what the
skip changed: which frame each second keeps (how late against the full decode), and whether the frames that did
not move are byte-identical (frames.parquet's crc32 of both runs).

Both use the binary `pipeline.ffmpeg.locate.find_ffmpeg()` returns. Medians are reported. The orchestrator's memory is also
measured on a set with twice the clips and on a 120k-entry DFDC tree (discovery and planning at full scale, a few
videos decoded), to show that it stays flat in the number of videos.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.ffmpeg.locate import ffmpeg_version, find_ffmpeg  # noqa: E402
from pipeline.ffmpeg.extract import extract  # noqa: E402
from pipeline.config import parse_size  # noqa: E402

log = logging.getLogger("bench_shards")

REAL_PART = ROOT.parent / "shared" / "data" / "dfdc_sample" / "dfdc_train_part_0"
DFDC_CLIPS = 119_154
TARGET_CORES = 16
TARGET_RATIO = 1.10
TARGET_CPU_RATIO = 1.05
TARGET_SKIP_CPU_RATIO = 0.70
TARGET_RSS_MB = 300
TARGET_AUDIO_OVERHEAD = 0.03

# Sources with motion and detail everywhere (temporal noise keeps x264 at its bitrate cap, as camera noise does).
SOURCES = [
    "testsrc2=s=1920x1080:r=30000/1001:d=10,noise=alls=14:allf=t+u",
    "mandelbrot=s=1920x1080:r=30000/1001,trim=duration=10,noise=alls=8:allf=t+u",
    "testsrc2=s=1920x1080:r=30000/1001:d=10,hue=h=t*36,rotate=a=t/5:fillcolor=gray,noise=alls=10:allf=t+u",
]

# Runs pipeline.run.main in this process, then reports the process's own peak RSS and CPU (workers not included
# in 'self'; 'children' is every worker and ffmpeg it waited for).
WRAPPER = """
import json, resource, sys, time
t0 = time.perf_counter()
from pipeline.run import main
rc = 0
try:
    main.main(args=sys.argv[1:], standalone_mode=False)
except SystemExit as exc:
    rc = exc.code or 0
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print("BENCH_RESULT " + json.dumps({"rc": rc, "seconds": time.perf_counter() - t0, "maxrss_kb": me.ru_maxrss,
      "self_cpu": me.ru_utime + me.ru_stime, "children_cpu": kids.ru_utime + kids.ru_stime}), flush=True)
"""


def run_checked(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise click.ClickException(f"{' '.join(cmd[:6])}... failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


# ----------------------------------------------------------------------------------------------------- clips

def generate_clip(ffmpeg: str, index: int, cache: Path) -> Path:
    """One DFDC-like clip, cached: 1080p, 29.97 fps, 10 s, x264 medium at 3 Mbit/s, default GOP, AAC mono."""
    cmd = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y",
           "-f", "lavfi", "-i", SOURCES[index % len(SOURCES)],
           "-f", "lavfi", "-i", f"sine=f={220 + 20 * index}:sample_rate=44100:d=10",
           "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "medium", "-pix_fmt", "yuv420p",
           "-b:v", "3M", "-maxrate", "3M", "-bufsize", "6M", "-c:a", "aac", "-b:a", "64k", "-ac", "1",
           "-shortest", "-movflags", "+faststart"]
    recipe = hashlib.sha1(" ".join(cmd[1:]).encode()).hexdigest()[:8]  # a changed recipe makes new clips
    path = cache / f"gen-{index:04d}-{recipe}.mp4"
    if path.is_file() and path.stat().st_size > 0:
        return path
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    cmd.append(str(tmp))
    started = time.perf_counter()
    run_checked(cmd)
    os.replace(tmp, path)
    log.info("generated %s (%.1f MB) in %.0f s", path.name, path.stat().st_size / 1e6, time.perf_counter() - started)
    return path


def dfdc_tree(folder: Path, clips: list[tuple[str, Path, dict]]) -> Path:
    """A DFDC-shaped folder: part_0/ with symlinks and a metadata.json. Rebuilt each time (it is cheap)."""
    shutil.rmtree(folder, ignore_errors=True)
    part = folder / "dfdc_train_part_0"
    part.mkdir(parents=True)
    for name, src, _ in clips:
        (part / name).symlink_to(src.resolve())
    (part / "metadata.json").write_text(json.dumps({name: entry for name, _, entry in clips}))
    return folder


def clip_set(ffmpeg: str, out: Path, n_generated: int, copies: int = 1) -> list[tuple[str, Path, dict]]:
    """(file name, source path, metadata entry): the real DFDC clips, then the generated ones `copies` times."""
    real_meta = json.loads((REAL_PART / "metadata.json").read_text())
    clips = [(name, REAL_PART / name, entry) for name, entry in sorted(real_meta.items())
             if (REAL_PART / name).is_file()]
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    generated = [generate_clip(ffmpeg, i, cache) for i in range(n_generated)]
    for copy in range(copies):
        for i, src in enumerate(generated):
            # DFDC-like labels: one real in six, the fakes point at the nearest real before them.
            real = i % 6 == 0
            name = f"bench{'abcdefgh'[copy]}{i:04d}.mp4"
            original = None if real else f"bench{'abcdefgh'[copy]}{i - i % 6:04d}.mp4"
            clips.append((name, src, {"label": "REAL" if real else "FAKE", "split": "train", "original": original}))
    return clips


def scale_tree(folder: Path, entries: int, target: Path) -> Path:
    """A 50-part DFDC tree with `entries` metadata entries, each a symlink to one clip (made once, then reused)."""
    marker = folder / ".complete"
    if marker.is_file() and marker.read_text() == f"{entries} {target.resolve()}":
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    per_part = -(-entries // 50)
    src = str(target.resolve())
    for p in range(50):
        part = folder / f"dfdc_train_part_{p}"
        part.mkdir(parents=True)
        meta = {}
        for i in range(p * per_part, min(entries, (p + 1) * per_part)):
            name = f"s{i:07d}.mp4"
            os.symlink(src, part / name)
            real = i % 6 == 0
            meta[name] = {"label": "REAL" if real else "FAKE", "split": "train",
                          "original": None if real else f"s{i - i % 6:07d}.mp4"}
        (part / "metadata.json").write_text(json.dumps(meta))
    marker.write_text(f"{entries} {target.resolve()}")
    log.info("made a %d-entry DFDC tree in %.1f s", entries, time.perf_counter() - started)
    return folder


def count_frames(ffmpeg: str, path: Path) -> int | None:
    """Video frames in the clip, from the container (ffprobe next to ffmpeg), without decoding."""
    ffprobe = shutil.which("ffprobe", path=str(Path(ffmpeg).parent)) or shutil.which("ffprobe")
    if not ffprobe:
        return None
    proc = subprocess.run([ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=nb_frames",
                           "-of", "csv=p=0", str(path)], capture_output=True, text=True)
    try:
        return int(proc.stdout.strip().splitlines()[0])
    except (ValueError, IndexError):
        return None


# ------------------------------------------------------------------------------------------------- measures

def _floor_one(ffmpeg: str, clip: Path) -> float:
    """Decode every frame of one clip with one thread; return the process's CPU seconds."""
    proc = subprocess.Popen([ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-threads", "1",
                             "-i", str(clip), "-map", "0:v", "-f", "null", "-"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise click.ClickException(f"floor decode of {clip} failed: {err.decode(errors='replace')[-500:]}")
    return usage.ru_utime + usage.ru_stime


def run_floor(ffmpeg: str, clips: list[Path], workers: int) -> dict:
    started = time.perf_counter()
    with cf.ThreadPoolExecutor(workers) as pool:
        cpu = list(pool.map(lambda c: _floor_one(ffmpeg, c), clips))
    return {"wall": time.perf_counter() - started, "cpu": sum(cpu), "cpu_per_clip": dict(zip(map(str, clips), cpu))}


def run_pipeline(videos: Path, work: Path, workers: int, extra: list[str] = (), full_decode: bool = False) -> dict:
    """The pipeline in a fresh subprocess and fresh output folders; wall time measured from outside. full_decode:
    ffmpeg decodes every clip to its end (PIPELINE_FULL_DECODE=1), as before the early stop."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    cmd = [sys.executable, "-c", WRAPPER, "--videos", str(videos), "--shards", str(work / "shards"),
           "--manifests", str(work / "manifests"), "--workers", str(workers), *extra]
    env = {**os.environ, "FFMPEG": find_ffmpeg(), "PYTHONPATH": str(ROOT), "PIPELINE_FULL_DECODE": str(int(full_decode))}
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - started
    (work / "pipeline.log").write_text(proc.stderr)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise click.ClickException(f"pipeline failed ({proc.returncode}); log in {work / 'pipeline.log'}:\n"
                                   f"{proc.stderr[-2000:]}")
    result = json.loads(line.split(" ", 1)[1])
    if result["rc"] not in (0, None):
        raise click.ClickException(f"pipeline exited {result['rc']}; log in {work / 'pipeline.log'}")
    summary = json.loads((work / "manifests" / "dataset.json").read_text())
    frames = sum(n for per_label in summary["frames"].values() for n in per_label.values())
    videos_done = sum(n for per_label in summary["videos"].values() for n in per_label.values())
    return {**result, "wall": wall, "frames": frames, "videos": videos_done, "failed": summary["failed"],
            "cpu": result["self_cpu"] + result["children_cpu"]}


def per_clip(ffmpeg: str, clips: list[Path]) -> list[dict]:
    """Each distinct clip, one after the other: ffmpeg's CPU-s for the floor and for the pipeline's frame command
    (`extract`, 1 fps into 1280x720, as the pipeline's defaults) with and without skipping non-reference frames."""
    rows = []
    for clip in dict.fromkeys(clips):
        row = {"clip": clip.name, "real": clip.parent == REAL_PART, "floor": _floor_one(ffmpeg, clip)}
        for skip in ("none", "noref"):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            info, _ = extract(str(clip), 1.0, (1280, 720), 2, binary=ffmpeg, skip_frames=skip)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            row[skip] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            row[f"{skip}_stood"] = info.skip_frames
        rows.append(row)
        log.info("%s: floor %.2f, every frame %.2f, noref %.2f CPU-s (%.2fx the floor)%s", clip.name, row["floor"],
                 row["none"], row["noref"], row["noref"] / row["floor"],
                 "" if row["noref_stood"] == "noref" else " (fell back to every frame)")
    return rows


def skip_changes(skip_run: Path, full_run: Path, fps: float = 1.0) -> dict:
    """What skipping changed, from the two runs' frames.parquet: per video and second, how late the kept frame is
    against the full decode's, and whether the frames that did not move are byte-identical (crc32)."""
    import pandas as pd

    cols = ["video_id", "index", "second", "crc32"]
    skip = pd.read_parquet(skip_run / "manifests" / "frames.parquet", columns=cols)
    full = pd.read_parquet(full_run / "manifests" / "frames.parquet", columns=cols)
    both = skip.merge(full, on=["video_id", "index"], how="outer", suffixes=("_skip", "_full"), indicator=True)
    both = both.drop_duplicates(["video_id", "index"])
    paired = both[both["_merge"] == "both"]
    late = (paired["second_skip"] - paired["second_full"]) * 1000
    moved = late.abs() > 0.5
    late_of_second = (paired["second_skip"] - paired["index"] / fps) * 1000
    log_text = (skip_run / "pipeline.log").read_text()
    return {"seconds": int(len(paired)), "unpaired": int(len(both) - len(paired)), "moved": int(moved.sum()),
            "late_ms_max": float(late.max()) if len(late) else 0.0,
            "late_ms_mean_of_moved": float(late[moved].mean()) if moved.any() else 0.0,
            "behind_exact_second_ms_max": float(late_of_second.max()) if len(late) else 0.0,
            "unmoved_identical": int((paired.loc[~moved, "crc32_skip"] == paired.loc[~moved, "crc32_full"]).sum()),
            "unmoved": int((~moved).sum()),
            "fell_back": log_text.count("decoding every frame")}


def _extract_cpu(ffmpeg: str, clip: Path, skip: str, clips=None) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    extract(str(clip), 1.0, (1280, 720), 2, binary=ffmpeg, skip_frames=skip, clips=clips)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def clip_cost(ffmpeg: str, clips: list[Path], frames: int, repeats: int,
              size: tuple[int, int] | None = None) -> list[dict]:
    """Each distinct clip, one at a time: ffmpeg's CPU-s of the frame command (1 fps into 1280x720) skipping
    non-reference frames (the default), decoding every frame, and decoding every frame with clips of `frames`
    frames as a further output of the same decode (the clips at the frames' quality, in `size`, default the
    frames'); medians of `repeats` alternations, and the clip frames kept."""
    from pipeline.spec import Clips

    spec = Clips(frames=frames, size=size or (1280, 720))
    rows = []
    for clip in dict.fromkeys(clips):
        cpu: dict[str, list[float]] = {"noref": [], "none": [], "clips": []}
        for _ in range(repeats):
            cpu["noref"].append(_extract_cpu(ffmpeg, clip, "noref"))
            cpu["none"].append(_extract_cpu(ffmpeg, clip, "none"))
            cpu["clips"].append(_extract_cpu(ffmpeg, clip, "none", spec))
        info, _ = extract(str(clip), 1.0, (1280, 720), 2, binary=ffmpeg, skip_frames="none", clips=spec)
        row = {"clip": clip.name, "real": clip.parent == REAL_PART, "clip_frames": len(info.clip_jpegs),
               **{k: median(v) for k, v in cpu.items()}}
        row["extra_ms_per_clip_frame"] = 1000 * (row["clips"] - row["none"]) / max(row["clip_frames"], 1)
        rows.append(row)
        log.info("%s: noref %.2f, every frame %.2f, every frame + %d clip frames %.2f CPU-s (%.3fx every frame, "
                 "%.3fx noref; %.2f ms per clip frame)", clip.name, row["noref"], row["none"], row["clip_frames"],
                 row["clips"], row["clips"] / row["none"], row["clips"] / row["noref"], row["extra_ms_per_clip_frame"])
    return rows


def clip_summary(frames: int, clipped: list[dict], noskips: list[dict], pipes: list[dict], out: Path,
                 per_clip_rows: list[dict]) -> dict | None:
    """The clips' cost in the pipeline runs (per repeat, side by side) and per clip (extract)."""
    if not clipped:
        return None
    section = json.loads((out / "run-clips" / "manifests" / "dataset.json").read_text())["clips"]
    extra = [(c["cpu"] - q["cpu"]) / max(section["frames"], 1) * 1000 for c, q in zip(clipped, noskips)]
    spec = json.loads((out / "run-clips" / "manifests" / "dataset.json").read_text())["config"]["clips"]
    return {"frames_per_clip": frames, "clip_size": spec["size"], "clips": section["clips"],
            "clip_frames": section["frames"],
            "cpu_s": median([c["cpu"] for c in clipped]),
            "cpu_ratio_vs_every_frame_per_repeat": [c["cpu"] / q["cpu"] for c, q in zip(clipped, noskips)],
            "cpu_ratio_vs_default_per_repeat": [c["cpu"] / p["cpu"] for c, p in zip(clipped, pipes)],
            "extra_cpu_ms_per_clip_frame_per_repeat": extra, "extra_cpu_ms_per_clip_frame": median(extra),
            "wall_ratio_vs_every_frame": median([c["wall"] / q["wall"] for c, q in zip(clipped, noskips)]),
            "per_clip": per_clip_rows}


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


# ----------------------------------------------------------------------------------------------------- main

def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.option("--clips", "n_clips", default=8, type=int, help="Generated 1080p clips added to the real DFDC ones.")
@click.option("--copies", default=4, type=int,
              help="Each generated clip is in the set this many times (own names): a set big enough that start-up "
                   "does not dominate, without hours of x264 (the clips are cached in OUT/cache).")
@click.option("--compare-full/--no-compare-full", default=True,
              help="Also run the pipeline with PIPELINE_FULL_DECODE=1 (no early stop), alternating, same set.")
@click.option("--compare-skip/--no-compare-skip", default=True,
              help="Also run the pipeline with --skip-frames none (every frame decoded), alternating, same set; "
                   "then per-clip CPU-s with and without the skip and what it changed.")
@click.option("--compare-audio/--no-compare-audio", default=True,
              help="Also run the pipeline with --no-audio, alternating, same set: the CPU the sound costs.")
@click.option("--workers", default=os.cpu_count() or 1, type=int,
              help="Pipeline workers, and parallel ffmpeg processes for the floor.")
@click.option("--repeats", default=3, type=int, help="Alternating floor/pipeline runs; medians are reported.")
@click.option("--out", default="bench-out", type=click.Path(file_okay=False, path_type=Path),
              help="Work folder: clip cache, outputs, bench_shards.json.")
@click.option("--scale-entries", default=120_000, type=int,
              help="Entries of the fake DFDC tree for the memory scale test (0: skip it).")
@click.option("--no-double", is_flag=True, help="Skip the memory run on twice the generated clips.")
@click.option("--clip-frames", default=0, type=int,
              help="Also run the pipeline with --clip-frames T (and --skip-frames none, which it needs, alone), "
                   "alternating, same set: the clips' extra CPU per clip frame (0: not measured).")
@click.option("--clip-size", default=None, help="The clips' box, WIDTHxHEIGHT. [default: the frames' 1280x720]")
def main(n_clips: int, copies: int, compare_full: bool, compare_skip: bool, compare_audio: bool, workers: int,
         repeats: int, out: Path, scale_entries: int, no_double: bool, clip_frames: int,
         clip_size: str | None) -> None:
    """Pipeline wall time against the ffmpeg decode floor, frames/s, orchestrator memory, DFDC projection."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    if n_clips < 0 or workers < 1 or repeats < 1 or not 1 <= copies <= 4 or clip_frames < 0:
        raise click.UsageError("--clips and --clip-frames must be >= 0, --workers and --repeats >= 1, --copies 1..4")
    if not REAL_PART.is_dir():
        raise click.UsageError(f"{REAL_PART}: the real DFDC sample is missing")
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    ffmpeg = find_ffmpeg()
    version = ffmpeg_version(ffmpeg)
    log.info("ffmpeg: %s (%s); %d workers, %d repeats; load average %s", ffmpeg, version, workers, repeats,
             load_average())

    clips = clip_set(ffmpeg, out, n_clips, copies=max(1, copies))
    videos = dfdc_tree(out / "videos", clips)
    paths = [src for _, src, _ in clips]
    n_real = sum(1 for _, src, _ in clips if src.parent == REAL_PART)
    source_frames = [count_frames(ffmpeg, p) for p in paths]
    for p in paths:  # page cache: neither side pays for the first read from disk
        p.read_bytes()
    log.info("%d clips (%d real DFDC, %d generated)", len(paths), n_real, len(paths) - n_real)

    floors, pipes, fulls, noskips, silent, clipped, loads = [], [], [], [], [], [], []
    for r in range(repeats):
        loads.append(load_average())
        floors.append(run_floor(ffmpeg, paths, workers))
        pipes.append(run_pipeline(videos, out / "run", workers))
        if compare_skip or clip_frames:
            noskips.append(run_pipeline(videos, out / "run-noskip", workers, ["--skip-frames", "none"]))
            log.info("repeat %d/%d: pipeline decoding every frame %.2f s, %.1f CPU-s", r + 1, repeats,
                     noskips[-1]["wall"], noskips[-1]["cpu"])
        if clip_frames:
            clipped.append(run_pipeline(videos, out / "run-clips", workers,
                                        ["--skip-frames", "none", "--clip-frames", str(clip_frames),
                                         *(["--clip-size", clip_size] if clip_size else [])]))
            log.info("repeat %d/%d: pipeline with clips of %d frames %.2f s, %.1f CPU-s (%.3fx every frame alone)",
                     r + 1, repeats, clip_frames, clipped[-1]["wall"], clipped[-1]["cpu"],
                     clipped[-1]["cpu"] / noskips[-1]["cpu"])
        if compare_audio:
            silent.append(run_pipeline(videos, out / "run-no-audio", workers, ["--no-audio"]))
            log.info("repeat %d/%d: pipeline --no-audio %.2f s, %.1f CPU-s; with the sound %.1f CPU-s (%+.1f%%)",
                     r + 1, repeats, silent[-1]["wall"], silent[-1]["cpu"], pipes[-1]["cpu"],
                     100 * (pipes[-1]["cpu"] / silent[-1]["cpu"] - 1))
        if compare_full:
            fulls.append(run_pipeline(videos, out / "run-full", workers, full_decode=True))
            log.info("repeat %d/%d: pipeline without the early stop %.2f s, %.1f CPU-s", r + 1, repeats,
                     fulls[-1]["wall"], fulls[-1]["cpu"])
        log.info("repeat %d/%d: floor %.2f s (%.1f CPU-s), pipeline %.2f s (%.1f CPU-s, orchestrator %.1f CPU-s, "
                 "%.0f MB), ratio %.3f; load %s", r + 1, repeats, floors[-1]["wall"], floors[-1]["cpu"],
                 pipes[-1]["wall"], pipes[-1]["cpu"], pipes[-1]["self_cpu"], pipes[-1]["maxrss_kb"] / 1024,
                 pipes[-1]["wall"] / floors[-1]["wall"], loads[-1])
    loads.append(load_average())
    skip = json.loads((out / "run" / "manifests" / "dataset.json").read_text())["config"]["skip_frames"]
    clips_cpu = per_clip(ffmpeg, paths) if compare_skip else []
    changes = skip_changes(out / "run", out / "run-noskip") if compare_skip else None
    clip_result = clip_summary(clip_frames, clipped, noskips, pipes, out,
                               clip_cost(ffmpeg, paths, clip_frames, repeats,
                                         parse_size(clip_size) if clip_size else None) if clip_frames else [])

    n = len(paths)
    floor_wall, pipe_wall = median([f["wall"] for f in floors]), median([p["wall"] for p in pipes])
    floor_cpu, pipe_cpu = median([f["cpu"] for f in floors]), median([p["cpu"] for p in pipes])
    real_floor_cpu = median([sum(c for k, c in f["cpu_per_clip"].items() if Path(k).parent == REAL_PART) / n_real
                             for f in floors]) if n_real else float("nan")
    frames = pipes[0]["frames"]
    decoded = sum(source_frames) if all(source_frames) else None
    memory = [{"videos": n, "what": "bench set", "maxrss_mb": max(p["maxrss_kb"] for p in pipes) / 1024}]

    if not no_double and n_clips:
        double = dfdc_tree(out / "videos-double", clip_set(ffmpeg, out, n_clips, copies=2 * max(1, copies)))
        res = run_pipeline(double, out / "run-double", workers)
        memory.append({"videos": res["videos"], "what": "generated clips twice", "maxrss_mb": res["maxrss_kb"] / 1024,
                       "wall": res["wall"]})
        log.info("double set: %d videos in %.1f s, orchestrator peak %.0f MB", res["videos"], res["wall"],
                 res["maxrss_kb"] / 1024)
    if scale_entries:
        tree = scale_tree(out / "scale", scale_entries, paths[0])
        res = run_pipeline(tree, out / "run-scale", workers, ["--limit", str(workers)])
        memory.append({"videos": scale_entries, "what": f"{scale_entries} metadata entries, {workers} decoded",
                       "maxrss_mb": res["maxrss_kb"] / 1024, "wall": res["wall"]})
        log.info("scale tree: %d entries discovered and planned, %d decoded, in %.1f s, orchestrator peak %.0f MB",
                 scale_entries, res["videos"], res["wall"], res["maxrss_kb"] / 1024)

    ratio = pipe_wall / floor_wall
    pipe_cpu_clip = pipe_cpu / n
    result = {
        "ffmpeg": ffmpeg, "ffmpeg_version": version, "workers": workers, "repeats": repeats,
        "clips": n, "real_clips": n_real, "generated_clips": n - n_real, "load_average": loads,
        "floor_wall_s": floor_wall, "pipeline_wall_s": pipe_wall, "ratio": ratio, "target_ratio": TARGET_RATIO,
        "cpu_ratio": pipe_cpu / floor_cpu,  # less sensitive to other load on the machine than the wall ratio
        "target_cpu_ratio": TARGET_SKIP_CPU_RATIO if skip == "noref" else TARGET_CPU_RATIO, "skip_frames": skip,
        "cpu_ratio_every_frame": median([p["cpu"] for p in noskips]) / floor_cpu if noskips else None,
        "clip_cost": clip_result,
        "ratio_every_frame": median([p["wall"] for p in noskips]) / floor_wall if noskips else None,
        "per_clip_cpu_s": clips_cpu, "skip_changes": changes,
        "cpu_ratio_full_decode": median([p["cpu"] for p in fulls]) / floor_cpu if fulls else None,
        "ratio_full_decode": median([p["wall"] for p in fulls]) / floor_wall if fulls else None,
        # the sound's CPU: medians of the runs with and without it, and of the per-repeat ratios (side by side)
        "cpu_s_per_clip_no_audio": median([p["cpu"] for p in silent]) / n if silent else None,
        "audio_cpu_overhead": pipe_cpu / median([p["cpu"] for p in silent]) - 1 if silent else None,
        "audio_cpu_overhead_per_repeat": [p["cpu"] / q["cpu"] - 1 for p, q in zip(pipes, silent)],
        "target_audio_overhead": TARGET_AUDIO_OVERHEAD,
        "floor_runs_s": [f["wall"] for f in floors], "pipeline_runs_s": [p["wall"] for p in pipes],
        "floor_cpu_s_per_clip": floor_cpu / n, "floor_cpu_s_per_real_dfdc_clip": real_floor_cpu,
        "pipeline_cpu_s_per_clip": pipe_cpu_clip,
        "orchestrator_cpu_s_per_clip": median([p["self_cpu"] for p in pipes]) / n,
        "sampled_frames": frames, "sampled_frames_per_s": frames / pipe_wall,
        "decoded_frames": decoded, "decoded_frames_per_s_pipeline": decoded / pipe_wall if decoded else None,
        "decoded_frames_per_s_floor": decoded / floor_wall if decoded else None,
        "orchestrator_peak_rss": memory, "target_rss_mb": TARGET_RSS_MB,
        "projection": {"clips": DFDC_CLIPS, "cores": TARGET_CORES,
                       "hours_pipeline": DFDC_CLIPS * pipe_cpu_clip / TARGET_CORES / 3600,
                       "hours_floor": DFDC_CLIPS * floor_cpu / n / TARGET_CORES / 3600,
                       "hours_pipeline_real_dfdc": DFDC_CLIPS * real_floor_cpu * (pipe_cpu / floor_cpu)
                       / TARGET_CORES / 3600},
    }
    (out / "bench_shards.json").write_text(json.dumps(result, indent=2))
    print_table(result)
    log.info("wrote %s", out / "bench_shards.json")


def print_table(r: dict) -> None:
    ok = "ok" if r["ratio"] <= r["target_ratio"] else "ABOVE TARGET"
    rows = [
        ("ffmpeg", r["ffmpeg_version"]),
        ("clips (real DFDC + generated)", f"{r['clips']} ({r['real_clips']} + {r['generated_clips']}), "
                                          f"{r['workers']} workers, {r['repeats']} repeats"),
        ("load average (per repeat)", " | ".join(r["load_average"])),
        ("decode floor, median wall", f"{r['floor_wall_s']:.2f} s  (runs {_fmt(r['floor_runs_s'])})"),
        ("pipeline, median wall", f"{r['pipeline_wall_s']:.2f} s  (runs {_fmt(r['pipeline_runs_s'])})"),
        ("pipeline / floor", f"{r['ratio']:.3f}x  (target <= {r['target_ratio']:.2f}x: {ok})"),
        (f"pipeline / floor, CPU-seconds (skip {r['skip_frames']})",
         f"{r['cpu_ratio']:.3f}x  (target <= {r['target_cpu_ratio']:.2f}x: "
                                          f"{'ok' if r['cpu_ratio'] <= r['target_cpu_ratio'] else 'ABOVE TARGET'}; "
                                          "robust to other load; fixed start-up included)"),
        ("same, decoding every frame", "not run" if r["cpu_ratio_every_frame"] is None else
         f"{r['cpu_ratio_every_frame']:.3f}x CPU-seconds, {r['ratio_every_frame']:.3f}x wall (--skip-frames none)"),
        ("same, without the early stop", "not run" if r["cpu_ratio_full_decode"] is None else
         f"{r['cpu_ratio_full_decode']:.3f}x CPU-seconds, {r['ratio_full_decode']:.3f}x wall "
         "(PIPELINE_FULL_DECODE=1: every frame decoded)"),
        ("the sound's CPU (vs --no-audio)", "not run" if r["audio_cpu_overhead"] is None else
         f"{100 * r['audio_cpu_overhead']:+.1f}%  ({r['cpu_s_per_clip_no_audio']:.3f} CPU-s/clip without it; per "
         f"repeat {', '.join(f'{100 * x:+.1f}%' for x in r['audio_cpu_overhead_per_repeat'])}; target <= "
         f"{100 * r['target_audio_overhead']:.0f}%: "
         f"{'ok' if r['audio_cpu_overhead'] <= r['target_audio_overhead'] else 'ABOVE TARGET'})"),
        ("sampled frames/s (JPEGs)", f"{r['sampled_frames_per_s']:.1f}  ({r['sampled_frames']} frames)"),
        ("decoded frames/s pipeline | floor",
         f"{r['decoded_frames_per_s_pipeline']:.0f} | {r['decoded_frames_per_s_floor']:.0f}"
         if r["decoded_frames"] else "n/a"),
        ("floor CPU-s per clip (all | real DFDC)",
         f"{r['floor_cpu_s_per_clip']:.2f} | {r['floor_cpu_s_per_real_dfdc_clip']:.2f}"),
        ("pipeline CPU-s per clip (orchestrator)",
         f"{r['pipeline_cpu_s_per_clip']:.2f}  ({r['orchestrator_cpu_s_per_clip']:.3f})"),
    ]
    rows += [(f"orchestrator peak RSS, {m['videos']} videos", f"{m['maxrss_mb']:.0f} MB  ({m['what']}; "
              f"target < {r['target_rss_mb']} MB)") for m in r["orchestrator_peak_rss"]]
    rows += _skip_rows(r)
    rows += _clip_rows(r.get("clip_cost"))
    p = r["projection"]
    rows += [(f"projected {p['clips']:,} DFDC clips / {p['cores']} cores",
              f"{p['hours_pipeline']:.1f} h pipeline on this set's CPU-s/clip; "
              f"{p['hours_pipeline_real_dfdc']:.1f} h scaled to real DFDC clips; floor {p['hours_floor']:.1f} h")]
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print()


def _skip_rows(r: dict) -> list[tuple[str, str]]:
    """Per-clip CPU-s with and without the skip against the floor, and what skipping changed."""
    rows = []
    for group, real in (("real DFDC", True), ("generated", False)):
        picked = [c for c in r["per_clip_cpu_s"] if c["real"] == real]
        if not picked:
            continue
        floor = sum(c["floor"] for c in picked)
        rows.append((f"{group} clips, ffmpeg CPU-s per clip", f"floor {floor / len(picked):.2f} | every frame "
                     f"{sum(c['none'] for c in picked) / len(picked):.2f} ({sum(c['none'] for c in picked) / floor:.2f}x)"
                     f" | noref {sum(c['noref'] for c in picked) / len(picked):.2f} "
                     f"({sum(c['noref'] for c in picked) / floor:.2f}x)  [{len(picked)} clips, one at a time]"))
    for c in r["per_clip_cpu_s"]:
        rows.append((f"  {c['clip']}", f"floor {c['floor']:.2f}, every frame {c['none']:.2f}, noref {c['noref']:.2f}"
                     f" CPU-s ({c['noref'] / c['floor']:.2f}x){'' if c['noref_stood'] == 'noref' else ', fell back'}"))
    if (s := r["skip_changes"]):
        rows += [("seconds whose kept frame moved", f"{s['moved']} of {s['seconds']} (later by {s['late_ms_mean_of_moved']:.0f} "
                  f"ms on average, at most {s['late_ms_max']:.0f} ms; at most {s['behind_exact_second_ms_max']:.0f} ms "
                  f"after the exact second; {s['unpaired']} unpaired; {s['fell_back']} videos fell back)"),
                 ("frames that did not move, byte-identical", f"{s['unmoved_identical']} of {s['unmoved']} (crc32)")]
    return rows


def _clip_rows(c: dict | None) -> list[tuple[str, str]]:
    """The clips' cost: pipeline runs side by side per repeat, then per clip (ffmpeg alone)."""
    if not c:
        return []
    rows = [(f"clips of {c['frames_per_clip']} frames in {c['clip_size'][0]}x{c['clip_size'][1]}, pipeline CPU",
             f"{c['extra_cpu_ms_per_clip_frame']:.2f} ms more per clip frame ({c['clips']} clips, {c['clip_frames']} "
             f"frames); x{_fmt(c['cpu_ratio_vs_every_frame_per_repeat'])} the frames-only run decoding every frame, "
             f"x{_fmt(c['cpu_ratio_vs_default_per_repeat'])} the default (noref) run, per repeat")]
    for p in c["per_clip"]:
        rows.append((f"  {p['clip']} (ffmpeg CPU-s)",
                     f"noref {p['noref']:.2f} | every frame {p['none']:.2f} | + {p['clip_frames']} clip frames "
                     f"{p['clips']:.2f} ({p['clips'] / p['none']:.3f}x every frame, {p['clips'] / p['noref']:.3f}x "
                     f"noref; {p['extra_ms_per_clip_frame']:.2f} ms per clip frame)"))
    return rows


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


if __name__ == "__main__":
    main()
