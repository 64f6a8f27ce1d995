"""The faces stage's run: plan, a task per frame shard in the pipeline's pool (or here on a GPU), consolidate.

The faces stage over existing frame shards: plan, a task per frame shard in the pipeline's pool (or in this process
on a GPU), consolidate. Resumable: a frame shard is finished when its faces_parts/<stem>.done.json exists (written
last) for the same settings and the same frame-shard content.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import logging
import time
from pathlib import Path

from pipeline.core.pool import process_pool
from pipeline.stages.faces import manifest as fm
from pipeline.stages.faces.plan import cached_detections, collect_garbage, make_task, plan, run_settings
from pipeline.spec import FaceCrop
from pipeline.stages.faces.worker import init_worker, process_shard

log = logging.getLogger(__name__)


def start_pool(workers: int, settings: FaceCrop, device: str) -> cf.ProcessPoolExecutor:
    return process_pool(workers, fork=device == "cpu", initializer=init_worker,
                        initargs=(settings.to_dict(), device, 1))


def _consolidate(manifests: Path, p: dict) -> dict:
    """faces.parquet and face_clips.parquet, dataset.json's faces and face_clips sections; their totals."""
    section = fm.consolidate_faces(manifests, p["all_shards"], p["fingerprints"])
    fm.update_dataset_json(manifests, section)
    tubes = fm.consolidate_face_clips(manifests, p["all_shards"], p["fingerprints"])
    fm.update_dataset_json(manifests, tubes, "face_clips")
    totals = {"total_faces": section["faces"], "total_videos_without_faces": section["videos_without_faces"],
              "pending": len(section["pending_shards"])}
    return totals if tubes is None else {**totals, "total_tubes": tubes["tubes"]}


def build(shards: Path, manifests: Path, settings: FaceCrop, device: str = "cpu", workers: int = 1,
          part: tuple[int, int] = (1, 1)) -> dict:
    """Run the stage; returns the summary stats."""
    from tqdm import tqdm

    shards, manifests = Path(shards), Path(manifests)
    started = time.time()
    p = plan(shards, manifests, settings, part)
    folder = fm.faces_dir(manifests)
    folder.mkdir(parents=True, exist_ok=True)
    previous = fm.run_settings(manifests)
    want = run_settings(settings)
    if previous is not None and not fm.same_settings(previous, want):
        log.info("face settings changed (%s): faces are made again, detections reused where the detect "
                 "settings match", {k: v for k, v in want.items() if previous.get(k) != v})
    fm.write_json(folder / "settings.json", want)
    todo_keys = {k for s in p["todo"] for k in p["by_shard"][s]["key"].to_pylist()}
    cache = cached_detections(manifests, settings, todo_keys) if todo_keys else {}
    del todo_keys
    stats = collections.Counter(shards_done=0, shards_skipped=len(p["finished"]), shards_failed=0)
    n_frames = sum(p["by_shard"][s].num_rows for s in p["todo"])
    t0 = time.time()
    with tqdm(total=n_frames, unit="frame", desc="faces", dynamic_ncols=True, disable=not n_frames) as bar:
        def account(done: dict):
            stats["shards_done"] += 1
            for key in ("frames", "faces", "frames_with_faces", "videos", "videos_without_faces", "undecodable",
                        "detected", "cached", "tubes", "clips_without_tube"):
                stats[key] += done.get(key, 0)
            for key in done.get("undecodable_keys", []):
                log.warning("undecodable frame JPEG: %s (in %s)", key, done["shard"])
            bar.update(done["frames"])
            bar.set_postfix(faces=stats["faces"], fps=f"{stats['frames'] / max(time.time() - t0, 1e-6):.1f}")

        def failed(shard: str, exc: BaseException):
            stats["shards_failed"] += 1
            log.error("%s: faces failed, the run goes on (rerun to retry): %s: %s", shard, type(exc).__name__, exc)

        if p["todo"] and (workers <= 1 or device == "cuda"):
            init_worker(settings.to_dict(), device, None if device == "cuda" else max(1, workers))
            for shard in p["todo"]:
                try:
                    account(process_shard(make_task(p, shard, cache), str(shards), str(manifests), settings.to_dict(),
                                          device))
                except Exception as exc:  # a missing or truncated frame shard: reported, not fatal
                    failed(shard, exc)
        elif p["todo"]:
            pool = start_pool(min(workers, len(p["todo"])), settings, device)
            todo = iter(p["todo"])
            running: dict[cf.Future, str] = {}
            try:
                while True:
                    while len(running) < 2 * workers and (shard := next(todo, None)) is not None:
                        task = make_task(p, shard, cache)  # built when submitted: the orchestrator stays small
                        running[pool.submit(process_shard, task, str(shards), str(manifests), settings.to_dict(),
                                            device)] = shard
                    if not running:
                        break
                    finished_now, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                    for fut in finished_now:
                        shard = running.pop(fut)
                        try:
                            account(fut.result())
                        except Exception as exc:
                            failed(shard, exc)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    if part == (1, 1):
        current = set(p["all_shards"])
        if all(fm.read_done(manifests, s) for s in current):
            collect_garbage(shards, manifests, current)
        stats.update(_consolidate(manifests, p))
    stats["seconds"] = round(time.time() - started, 1)
    return dict(stats)
