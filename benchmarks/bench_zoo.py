"""bench-zoo: per zoo entry, faces per second of its network at its input size, seconds per 10-s clip for `dfd check`
with its package, and peak memory; on the CPU, and on CUDA when there is one.

For each entry a random-weight file in its authors' published layout (tests/helpers/zoo_reference.py: the library
the authors used, the layout they saved; speed does not depend on the weights) is imported by the real importer
(train.zoo.importer.import_entry: the dfdc-winner with all seven members). A fresh child process then measures the
package as `dfd check` runs it (train.check's own functions: load_ensemble, frame_settings, face_cropper, Scorer,
check_video, write_page), so its peak RSS is the package's alone:

  faces/s : Scorer on random uint8 faces at the entry's input size (every member of the package), after a warm-up;
  s/clip  : check_video + write_page on a real 10-s 1080p DFDC clip of ../shared/data, the entry's frame sampling
            (its frames per video over 10 s; --frames caps it), MTCNN, the authors' crop rule, the network(s), the
            page with its Grad-CAM; split into decode, detection, scoring and page. With --frames capped, "s/clip
            (all frames)" projects the scoring and detection to the entry's own frame count;
  CPU-s   : the check's CPU time (the process's and its ffmpeg's): what the clip costs on a machine shared by others;
  h/5000  : hours for DFDC's 5,000 test clips at that s/clip;
  peak    : the child's peak RSS (ru_maxrss) and, on CUDA, torch.cuda.max_memory_allocated.

Writes a table to stdout and bench-out/zoo.json + bench-out/zoo.csv. CPU threads: --threads (default 2).

Usage: .venv/bin/python benchmarks/bench_zoo.py [--entries sbi-c23,gend-clip-l14,dfdc-winner] [--frames N]
       [--devices cpu,cuda] [--clip FILE] [--threads 2] [--batch 4] [--rounds 2] [--out bench-out]
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import gc
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # helpers.zoo_reference: the tests' reference builders, not shipped

import numpy as np  # noqa: E402
import torch  # noqa: E402

CLIP = ROOT.parent / "shared" / "data" / "dfdc_sample" / "dfdc_train_part_0" / "abqwwspghj.mp4"
CLIP_SECONDS = 10.0
CLIPS_TEST = 5000        # DFDC's public test set: what a user's full run costs
DEFAULT_ENTRIES = "sbi-c23,gend-clip-l14,dfdc-winner"
log = logging.getLogger("bench_zoo")
PHASES = ("decode_s", "detect_s", "score_s", "page_s")
COLUMNS = ("entry", "device", "members", "input", "faces_per_s", "faces_per_cpu_s", "frames", "faces", "clip_s",
           "clip_cpu_s", "clip_s_all_frames", "hours_5000_clips",
           *PHASES, "load_s", "peak_rss_mib", "cuda_peak_mib", "threads", "load_average")


def build_package(name: str, tmp: Path) -> Path:
    """Random-weight published files of `name` (all of its members) imported by the real importer; the files are
    removed once imported."""
    from helpers.zoo_reference import write_published
    from train.zoo.entries import entry
    from train.zoo.importer import import_entry

    files = write_published(name, tmp / f"{name}-published", members=entry(name).max_files)
    out = tmp / f"{name}-package"
    import_entry(name, files, out)
    for f in files:
        f.unlink()
    gc.collect()
    return out


def cpu_seconds() -> float:
    """This process's user + system time and that of its children (ffmpeg)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def faces_per_second(scorer, size: tuple[int, int], batch: int, rounds: int) -> tuple[float, float]:
    """Faces per wall second and per CPU second through every member, as check scores them (uint8 NHWC ->
    P(fake)), after a one-face warm-up."""
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (batch, size[0], size[1], 3), dtype=np.uint8)
    scorer(faces[:1])
    cpu, start = cpu_seconds(), time.perf_counter()
    for _ in range(rounds):
        scorer(faces)
    return batch * rounds / (time.perf_counter() - start), batch * rounds / (cpu_seconds() - cpu)


def measure(package: Path, clip: Path, device: str, frames: int | None, batch: int, rounds: int) -> dict:
    """One package on one device, in this (fresh) process: load, faces/s, one check of `clip` with its page."""
    from train.check import settings_of
    from train.report.verdict_page import write_page
    from train.score.checkpoints import load_ensemble
    from train.score.on_batches import Scorer
    from train.score.one_video import check_video
    from train.score.package import zoo_facts
    from train.score.threshold import decision_threshold
    from train.score.videos import face_cropper, frame_settings

    start = time.perf_counter()
    ensemble = load_ensemble([package], device)
    load_s = time.perf_counter() - start
    config = ensemble.config
    sampled = frame_settings(ensemble.paths[0], config)
    all_frames = round(sampled[0].fps * CLIP_SECONDS)
    settings = sampled[0]
    if frames is not None and frames < all_frames:
        settings = dataclasses.replace(settings, fps=frames / CLIP_SECONDS)
    fps, fps_cpu = faces_per_second(Scorer(ensemble.models, ensemble.dev, batch), ensemble.image_size, batch, rounds)
    log.info("%s: loaded in %.1f s; %.3f faces/s (%.3f per CPU-s); checking %s", package.name, load_s, fps, fps_cpu,
             clip.name)
    scorer = Scorer(ensemble.models, ensemble.dev, config.batch_size)  # as check batches
    cropper = face_cropper(config, ensemble.image_size, device)
    threshold = decision_threshold(ensemble.paths, ensemble.thresholds, config.aggregate)
    described = [{"name": str(package), "arch": config.arch, "input": config.input, "zoo": zoo_facts(package)}]
    cpu, start = cpu_seconds(), time.perf_counter()
    verdict = check_video(clip, scorer, settings, ensemble.image_size, cropper, threshold, config.aggregate)
    if verdict.error:
        raise SystemExit(f"{clip}: {verdict.error}")
    log.info("%s: %d faces of %d frames in %.1f s (%s); the page", package.name, len(verdict.items),
             len(verdict.seconds), time.perf_counter() - start,
             ", ".join(f"{k} {v:.1f}" for k, v in verdict.timings.items()))
    page = package.parent / f"{package.name}-{device}.html"
    page_start = time.perf_counter()
    write_page(verdict, clip.name, page, ensemble.models[0], described, settings_of(ensemble, sampled, threshold))
    clip_s, clip_cpu_s = time.perf_counter() - start, cpu_seconds() - cpu
    done = len(verdict.seconds)
    scaled = verdict.timings.get("detect_s", 0.0) + verdict.timings.get("score_s", 0.0)
    cuda = device.startswith("cuda")
    return {"device": str(ensemble.dev.device), "members": int(json.loads((package / "config.json").read_text())
                                                                   .get("members", 1)),
            "input": "x".join(map(str, ensemble.image_size)), "faces_per_s": fps, "faces_per_cpu_s": fps_cpu,
            "frames": done,
            "faces": len(verdict.items), "clip_s": clip_s, "clip_cpu_s": clip_cpu_s,
            "clip_s_all_frames": clip_s + scaled * (all_frames / max(done, 1) - 1),
            "hours_5000_clips": (clip_s + scaled * (all_frames / max(done, 1) - 1)) * CLIPS_TEST / 3600,
            **{k: verdict.timings.get(k, 0.0) for k in PHASES[:3]}, "page_s": time.perf_counter() - page_start,
            "load_s": load_s, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            "threads": torch.get_num_threads()}


class LoadAverage:
    """The 1-min load average sampled every few seconds while a child runs: its mean and maximum."""

    def __init__(self, every: float = 5.0) -> None:
        self.every, self.samples, self.stop = every, [os.getloadavg()[0]], threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.stop.wait(self.every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> "LoadAverage":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    def summary(self) -> str:
        return f"mean {sum(self.samples) / len(self.samples):.2f}, max {max(self.samples):.2f}"


def run_child(package: Path, args: argparse.Namespace, device: str) -> dict:
    """`measure` in a fresh process (its own peak RSS); the row it prints as its last line, with the load average
    while it ran."""
    cmd = [sys.executable, __file__, "--measure", str(package), "--clip", str(args.clip), "--devices", device,
           "--threads", str(args.threads), "--batch", str(args.batch), "--rounds", str(args.rounds)]
    if args.frames is not None:
        cmd += ["--frames", str(args.frames)]
    with LoadAverage() as load:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{package.name} on {device}: the measuring process failed ({proc.returncode})")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "load_average": load.summary()}


def row_line(r: dict) -> str:
    cuda = f"{r['cuda_peak_mib']:8.0f}" if r["cuda_peak_mib"] is not None else "       -"
    return (f"{r['entry']:30s} {r['device']:6s} {r['members']:2d} {r['input']:>7s} {r['faces_per_s']:8.3f} "
            f"{r['faces_per_cpu_s']:8.3f} {r['frames']:3d} {r['faces']:3d} {r['clip_s']:8.1f} {r['clip_cpu_s']:8.1f} "
            f"{r['clip_s_all_frames']:8.1f} {r['hours_5000_clips']:7.1f} "
            + " ".join(f"{r[k]:7.1f}" for k in PHASES) + f" {r['peak_rss_mib']:8.0f} {cuda}  {r['load_average']}")


def write_rows(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "zoo.json").write_text(json.dumps(rows, indent=2) + "\n")
    with open(out / "zoo.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", default=DEFAULT_ENTRIES, help="Zoo entries, comma-separated ('all': every one).")
    parser.add_argument("--frames", type=int, help="Cap the frames sampled per clip [default: the entry's own].")
    parser.add_argument("--devices", default="cpu,cuda", help="Devices, in order; cuda is skipped without CUDA.")
    parser.add_argument("--clip", type=Path, default=CLIP, help="The real clip `dfd check` is timed on.")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on the CPU.")
    parser.add_argument("--batch", type=int, default=4, help="Faces per forward pass for faces/s.")
    parser.add_argument("--rounds", type=int, default=1, help="Timed batches for faces/s (after a one-face warm-up).")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out", help="Folder for zoo.json and zoo.csv.")
    parser.add_argument("--keep", type=Path, help="Keep the packages and their check pages in this folder.")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child: measure one package
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    torch.set_num_threads(args.threads)
    if args.measure:
        print(json.dumps(measure(args.measure, args.clip, args.devices, args.frames, args.batch, args.rounds)))
        return
    from dfd.errors import ToolkitError
    from train.zoo.entries import ENTRIES, entry

    names = list(ENTRIES) if args.entries == "all" else args.entries.split(",")
    try:
        for name in names:
            entry(name)  # an unknown name: one line listing the entries, before any work
    except ToolkitError as err:
        raise SystemExit(str(err)) from None
    if not args.clip.is_file():
        raise SystemExit(f"{args.clip}: no such clip")
    devices = [d for d in args.devices.split(",") if d == "cpu" or torch.cuda.is_available()]
    print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, devices {','.join(devices)}; "
          f"clip {args.clip}")
    print(f"{'entry':30s} {'device':6s} {'m':>2s} {'input':>7s} {'faces/s':>8s} {'f/CPU-s':>8s} {'frm':>3s} "
          f"{'fcs':>3s} {'s/clip':>8s} {'CPU-s':>8s} {'s/clip*':>8s} {'h/5000':>7s} " + " ".join(f"{k[:-2]:>7s}" for k in PHASES)
          + f" {'RSS MiB':>8s} {'CUDA MiB':>8s}  1-min load average while measured")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        for name in names:
            package = build_package(name, work)
            for device in devices:
                rows.append({"entry": name, **run_child(package, args, device)})
                print(row_line(rows[-1]), flush=True)
                write_rows(rows, args.out)  # after each row: an interrupted run keeps what it measured
    print("s/clip*: with the entry's own frames per clip (projected when --frames caps them); h/5000: hours for "
          "DFDC's 5,000 test clips at s/clip*; CPU-s: this process's and ffmpeg's CPU time for the clip")
    print(f"rows: {args.out / 'zoo.json'}, {args.out / 'zoo.csv'}")


if __name__ == "__main__":
    main()
