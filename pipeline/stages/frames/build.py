"""The run: plan the videos, decode them in a process pool (tqdm), pack shards, write the manifest. Resumable."""
from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Iterator, Mapping

from tqdm import tqdm

from dfd.errors import UsageProblem

from pipeline.core import manifest
from pipeline.core.journal import recover
from pipeline.core.pool import process_pool
from pipeline.config import PipelineConfig
from pipeline.spec import migrate
from pipeline.sources.discover import discover, identities
from pipeline.sources.video import Video
from pipeline.ffmpeg.locate import ffmpeg_version, find_ffmpeg
from pipeline.ffmpeg.graph import ffmpeg_command
from pipeline.core.shards import (AUDIO_DIR, CLIPS_DIR, ShardWriter, Staged, parse_shard_name, read_staged, remove_staged,
                                  write_staged)
from pipeline.split import files as splitfiles
from pipeline.split.hashed import fraction_warning, part_of
from pipeline.stages.frames.fragments import write_fragments
from pipeline.stages.frames.video import Job, base_row, process_video, source_stat

log = logging.getLogger(__name__)


class PlanError(UsageProblem, ValueError):
    """The run cannot start as asked (nothing was written)."""


@dataclasses.dataclass
class Plan:
    config: PipelineConfig
    layout: str
    videos: list[tuple[Video, str]]  # (video, split) for every video of this part, errors included
    selected: list[tuple[Video, str]]  # what this run processes (after --limit)


def plan(config: PipelineConfig) -> Plan:
    """Discover, split and check against earlier runs. Writes nothing; raises PlanError for bad requests."""
    layout, videos = discover(config.videos, config.layout, config.allow_outside_paths)
    if not videos:
        raise PlanError(f"{config.videos}: no videos found (layout {layout})")
    _check_previous(config, videos)
    k, n = config.part
    files = splitfiles.read_split_files(config.split_files)
    everywhere = splitfiles.apply(files, videos, config.seed, config.val_fraction)
    pairs = [(v, split) for v, split in everywhere if n == 1 or part_of(v.group, n) == k]
    selected = pairs[: config.limit] if config.limit else pairs
    hashed = [(v.label, split) for v, split in everywhere if v.error is None and not files]
    if (warning := fraction_warning(hashed, config.val_fraction)) is not None:
        log.warning(warning)
    return Plan(config, layout, pairs, selected)


def _check_previous(config: PipelineConfig, videos: list[Video]) -> None:
    for name, previous in manifest.read_part_configs(Path(config.manifests)).items():
        if previous.get("grouping") is None and any(
                v.group != identities(v.source, v.label, v.path, v.group)[0] for v in videos):
            raise PlanError(f"{config.manifests} was split before videos were grouped by every person they involve "
                            "(a FaceForensics++ fake by its target only): regroup it once with `python -m "
                            "pipeline.resplit` (same --seed and --val-fraction), then rerun")
        previous = {**migrate("part", previous, name), "grouping": previous.get("grouping") or config.grouping}
        for key, value in config.frame_settings().items():
            if previous.get(key) != value:
                raise PlanError(f"{config.manifests} holds frames made with {key}={previous.get(key)} "
                                f"({name}); this run asks for {value}: use the same setting or new folders")
        for key, value in config.audio_settings().items():
            if previous.get(key) != value:
                raise PlanError(f"{config.manifests} was made with {key}={previous.get(key)} ({name}); this run asks "
                                f"for {value}: pass {'--audio' if previous.get('audio') else '--no-audio'} "
                                "to match it, or use new folders")
        for key, value in config.clip_settings().items():
            if previous.get(key) != value:
                raise PlanError(f"{config.manifests} was made with {key}={previous.get(key)} ({name}); this run asks "
                                f"for {value}: pass the same --clip-frames (and clip options), or use new folders")
        for key, value in config.split_settings().items():
            if previous.get(key) != value:
                raise PlanError(f"{config.manifests} was split with {key}={previous.get(key)}; this run asks "
                                f"for {value}: pass the same value, or change it with `python -m pipeline.resplit`")


def _clean_unfinished(shards: Path, manifests: Path, part_tag: str) -> set[str]:
    """Remove half-written tars of this part (temp files, and tars whose fragment is missing)."""
    finished = set(manifest.finished_shards(manifests))
    for path in [*shards.glob("*.tar*"), *(shards / AUDIO_DIR).glob("*.tar*"), *(shards / CLIPS_DIR).glob("*.tar*")]:
        name = path.name.lstrip(".").removesuffix(".tmp")
        parsed = parse_shard_name(name)
        if parsed and parsed[2] == part_tag and (path.name.endswith(".tmp") or name not in finished):
            log.info("removing unfinished shard %s", path.name)
            path.unlink()
    return finished


def _next_indices(finished: set[str], part_tag: str) -> dict[tuple[str, str], int]:
    nxt: dict[tuple[str, str], int] = collections.defaultdict(int)
    for name in finished:
        split, label, tag, index = parse_shard_name(name)
        if tag == part_tag:
            nxt[(split, label)] = max(nxt[(split, label)], index + 1)
    return nxt


def _reusable(staged: Staged | None, video: Video, retry_failed: bool) -> bool:
    if staged is None:
        return False
    if staged.ok:
        return True
    return not retry_failed and staged.meta.get("source_stat") == source_stat(video.path)


def start_pool(workers: int, binary: str) -> cf.ProcessPoolExecutor:
    """The decode pool, started before the orchestrator has any thread: forked on Linux (no re-import per worker),
    with ffmpeg's version checks already cached, so a worker's first video starts at once."""
    ffmpeg_command("probe", 1.0, (16, 16), 2, binary)  # fills the lru caches the workers inherit
    pool = process_pool(workers)
    for future in [pool.submit(os.getpid) for _ in range(workers)]:
        future.result()
    return pool


def _fresh_pool(pool: cf.ProcessPoolExecutor, workers: int) -> cf.ProcessPoolExecutor:
    """Replace a broken pool (spawned: the orchestrator has threads by now, so no fork)."""
    pool.shutdown(wait=False, cancel_futures=True)
    return process_pool(workers, fork=False)


def _ordered(jobs: list[Job], staged: dict[str, Staged], pool: cf.ProcessPoolExecutor,
             workers: int) -> Iterator[tuple[Job, dict]]:
    """Results in job order; decoding runs ahead in the pool of `workers` processes."""
    window: collections.deque = collections.deque()
    todo = iter(jobs)
    try:
        while True:
            while len(window) < 2 * workers + 2 and (job := next(todo, None)) is not None:
                hit = staged.get(job.video.video_id)
                window.append((job, hit.meta if hit else pool.submit(process_video, job)))
            if not window:
                return
            job, result = window.popleft()
            if isinstance(result, cf.Future):
                try:
                    result = result.result()
                except cf.process.BrokenProcessPool:
                    # A worker died (killed, out of memory): every video in flight lost its result, and which one
                    # killed it is unknown. Run this one alone in a fresh pool: if the pool dies again it is the
                    # culprit (failed, recorded in staging like any failure); the others are simply resubmitted.
                    pool = _fresh_pool(pool, workers)
                    try:
                        result = pool.submit(process_video, job).result()
                    except cf.process.BrokenProcessPool:
                        log.error("%s: the worker process died while decoding it; recording the video as failed",
                                  job.video.path)
                        result = {**base_row(job.video, job.split), "source_stat": source_stat(job.video.path),
                                  "status": "failed", "frames": [],
                                  "error": "the worker process died while decoding it (out of memory?)"}
                        write_staged(Path(job.shards), job.video.video_id, result, None)
                        pool = _fresh_pool(pool, workers)
                    window = collections.deque((j, pool.submit(process_video, j) if isinstance(r, cf.Future)
                                                else r) for j, r in window)
            yield job, result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def build(p: Plan, sections: Mapping[str, manifest.SectionBuilder] | None = None) -> dict:
    """Process the plan: decode what is not staged, pack shards, write fragments and the manifest (with the later
    stages' `sections` of dataset.json, see manifest.consolidate)."""
    cfg = p.config
    shards, manifests = Path(cfg.shards), Path(cfg.manifests)
    started = time.time()
    with manifest.lock(manifests, cfg.part_tag):
        pool = start_pool(cfg.workers, find_ffmpeg())
        shards.mkdir(parents=True, exist_ok=True)
        recover(shards, manifests)
        finished = _clean_unfinished(shards, manifests, cfg.part_tag)
        done = manifest.done_video_ids(manifests)
        for vid in done:
            remove_staged(shards, vid)
        stats = _run(p, shards, manifests, done, finished, pool)
        failures = _failures(p, shards, done)
        manifest.write_failures(manifests, cfg.part_tag, failures)
        manifest.write_part_config(manifests, cfg.part_tag, {**cfg.to_dict(), "layout": p.layout})
        if cfg.part == (1, 1):
            manifest.consolidate(manifests, {"config": {**cfg.to_dict(), "layout": p.layout},
                                             "ffmpeg": ffmpeg_version(find_ffmpeg())}, sections)
    stats.update(failed=len(failures), seconds=round(time.time() - started, 1))
    log.info("summary: %(done)d done, %(failed)d failed, %(skipped)d skipped (already in shards), "
             "%(frames)d frames, %(gb).3f GB written in %(seconds).1f s", stats)
    for row in failures[:20]:
        log.warning("failed: %s: %s", row["path"], row["error"])
    return stats


def _run(p: Plan, shards: Path, manifests: Path, done: set[str], finished: set[str],
         pool: cf.ProcessPoolExecutor) -> dict:
    cfg = p.config
    binary = find_ffmpeg()
    pending = [(v, s) for v, s in p.selected if v.error is None and v.video_id not in done]
    staged = {v.video_id: st for v, s in pending
              if _reusable(st := read_staged(shards, v.video_id), v, cfg.retry_failed)}
    jobs = [Job(v, s, str(shards), cfg.fps, cfg.size, cfg.quality, cfg.timeout, binary, cfg.skip_frames,
                cfg.audio_rate if cfg.audio else None, cfg.clips()) for v, s in pending]
    nxt = _next_indices(finished, cfg.part_tag)

    def sealed(name, videos, size, sha256, audio=None, clips=None):
        write_fragments(manifests, name, [s.meta for s in videos], size, sha256, audio, clips)

    writers: dict[tuple[str, str], ShardWriter] = {}
    skipped = sum(v.error is None and v.video_id in done for v, s in p.selected)  # not the discovery failures
    stats = {"done": 0, "skipped": skipped, "frames": 0, "gb": 0.0}
    t0, nbytes = time.time(), 0
    with tqdm(total=len(jobs), unit="video", desc="videos", dynamic_ncols=True) as bar:
        for job, meta in _ordered(jobs, staged, pool, cfg.workers):
            if meta["status"] == "done":
                key = (job.split, job.video.split_label)
                if key not in writers:
                    writers[key] = ShardWriter(shards, *key, cfg.part_tag, nxt[key], cfg.shard_size, sealed)
                writers[key].add(Staged(job.video.video_id, meta))
                stats["done"] += 1
                stats["frames"] += meta["n_frames"]
                nbytes += meta["bytes"]
            bar.update(1)
            bar.set_postfix(frames=stats["frames"], MBps=f"{nbytes / 1e6 / max(time.time() - t0, 1e-6):.1f}")
        for writer in writers.values():
            writer.seal()
    stats["gb"] = nbytes / 1e9
    return stats


def _failures(p: Plan, shards: Path, done: set[str]) -> list[dict]:
    rows = []
    for video, split in p.videos:
        if video.video_id in done:
            continue
        if video.error:
            rows.append({**base_row(video, split), "status": "failed", "error": video.error})
        elif (st := read_staged(shards, video.video_id)) is not None and not st.ok:
            rows.append({k: v for k, v in st.meta.items() if k != "frames"})
    return rows
