"""report.html of a run folder: config, per-epoch metrics, every figure (embedded), frame/video metrics, pointing game.

One self-contained file rendered from train/templates/report.html.j2 with the one stylesheet inlined: figures are
base64 data URIs and there is no script, so it opens from disk in any browser with no server, and can be mailed or
archived alone. This module gathers what the run folder holds; the template lays it out.
"""
from __future__ import annotations

import base64
import csv
import json
import math
import time
from pathlib import Path

import pandas as pd

from dfd.files import write_text
from train.templates import render

# (file, caption) in the report's order; a figure the run lacks is listed as missing, not silently dropped.
FIGURES = (
    ("batch.png", "An augmented training batch, as the model sees it."),
    ("lr_find.png", "LR finder: smoothed loss against learning rate (log scale)."),
    ("lr_schedule.png", "One-cycle schedule: learning rate per layer group and Adam's beta1, per step."),
    ("losses.png", "Train loss per batch and val loss per epoch, one panel per stage."),
    ("top_losses.png", "Top losses: the worst val frames (prediction/actual / loss / probability of the actual "
                       "class)."),
    ("best.png", "The most confidently right val frames."),
    ("gradcam_worst.png", "Grad-CAM of the predicted class on the worst val frames."),
    ("gradcam_best.png", "Grad-CAM of the predicted class on the best val frames."),
    ("pointing.png", "Pointing game: Grad-CAM of class fake on val fakes; known manipulated box in white, peak as a "
                     "cross (green: inside)."),
)
# A clip model's run (explain.json's unit "clip"): the strips of train.report.clip_explanation instead of the frame
# grids and the pointing game.
CLIP_FIGURES = (
    *FIGURES[:4],
    ("clips_worst.png", "Where and when, the worst val clips: each clip's frames (video time above each), and under "
                        "them Grad-CAM of the predicted class per frame, normalised per clip so that the frames "
                        "compare; the frame holding the clip's peak framed in red (prediction/actual / loss / "
                        "probability of the actual class)."),
    ("clips_best.png", "Where and when, the most confidently right val clips (as above)."),
)
WORST_VIDEOS = 15
METRIC_NAMES = ("log_loss", "roc_auc", "accuracy", "balanced_accuracy", "eer", "average_precision")


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def epochs(run_dir: Path) -> list[dict] | None:
    """metrics.csv's rows (None without the file)."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return None
    with path.open() as f:
        return list(csv.DictReader(f))


def unit(explained: dict) -> str:
    """What a prediction row is: "frame" (a frame or a face), or "clip" for a clip model's run."""
    return str(explained.get("unit", "frame")) if explained else "frame"


def cards(explained: dict) -> list[tuple[str, float | None]]:
    v, f, u = explained.get("video", {}), explained.get("frame", {}), unit(explained)
    items = [("video log loss", v.get("log_loss")), ("video ROC-AUC", v.get("roc_auc")),
             ("video accuracy", v.get("accuracy")), (f"{u} log loss", f.get("log_loss")),
             (f"{u} ROC-AUC", f.get("roc_auc")), (f"{u} accuracy", f.get("accuracy"))]
    p = explained.get("pointing")
    if p:
        items += [("pointing game", p.get("pointing_game")), ("random point", p.get("random_point"))]
    return items


def scores(explained: dict) -> dict | None:
    """The frame and video rows of explain.json and the numbers the paragraph under them quotes."""
    if not explained:
        return None
    f, v = explained["frame"], explained["video"]
    rows = [{"level": unit(explained), "n": f["frames"], **{k: f.get(k) for k in METRIC_NAMES}, "mean CE loss": f.get("loss")},
            {"level": "video", "n": v["videos"], **{k: v.get(k) for k in METRIC_NAMES}}]
    return {"rows": rows, "columns": ["level", "n", *METRIC_NAMES, "mean CE loss"],
            "checkpoint": str(explained.get("checkpoint_name")), "aggregate": str(v.get("aggregate", "mean")),
            "eps": explained.get("log_loss_eps"), "clip": v.get("submission_clip", [None, None]),
            "clipped": v.get("log_loss_clipped"), "unit": unit(explained)}


def when(explained: dict) -> dict | None:
    """A clip run's 'where and when' (explain.json's `when`): per class, clips per peak frame as a table row."""
    w = explained.get("when") if explained else None
    if not w:
        return None
    frames = int(w["frames"])
    rows = [{"class": name, "clips": c["clips"], **{f"frame {j}": n for j, n in enumerate(c["peak_frame_counts"])},
             "no peak": c["no_peak"], "peak share": c["peak_share_mean"]} for name, c in w["classes"].items()]
    return {"rows": rows, "columns": ["class", "clips", *[f"frame {j}" for j in range(frames)], "no peak",
                                      "peak share"], "frames": frames, "uniform": w["uniform_share"],
            "note": explained.get("pointing_note"), "top": explained.get("top", {})}


def pointing(explained: dict) -> dict | None:
    p = explained.get("pointing") if explained else None
    if not p:
        return None
    ratio = p["pointing_game"] / p["random_point"] if p["random_point"] else math.nan
    return {**p, "ratio": ratio, "empty_maps": p.get("empty_maps", 0), "boxes": str(explained.get("boxes"))}


def worst_videos(run_dir: Path, unit: str = "frame") -> list[dict]:
    """The worst videos by log loss; their count of frames (clips) under `frames` (`clips`)."""
    path = run_dir / "video_predictions.parquet"
    if not path.is_file():
        return []
    rows = pd.read_parquet(path).sort_values("loss", ascending=False).head(WORST_VIDEOS)
    return rows.rename(columns={"frames": f"{unit}s"}).to_dict("records")


def figures(run_dir: Path, clips: bool = False) -> list[dict]:
    """FIGURES (CLIP_FIGURES for a clip run) in order, each embedded as a data URI, or with uri None when the run
    folder lacks it."""
    return [{"name": name, "caption": caption, "anchor": name.rsplit(".", 1)[0],
             "uri": data_uri(run_dir / name) if (run_dir / name).is_file() else None}
            for name, caption in (CLIP_FIGURES if clips else FIGURES)]


def source(config: dict) -> dict | None:
    """The recipe's [source]: the paper or solution it follows, linked, and the figures the source reports (to read
    beside this run's, which come from other data and another budget); None for a recipe without one."""
    source = (config.get("recipe") or {}).get("source") or {}
    if not source:
        return None
    url = source.get("url", "")
    return {"url": url, "title": source.get("title", url), "note": source.get("note"),
            "reported": [(str(k), str(v)) for k, v in (source.get("reported") or {}).items()]}  # every digit


def write_report(run_dir: str | Path) -> Path:
    """Write run_dir/report.html from what the run folder holds; returns its path."""
    run_dir = Path(run_dir)
    config_path, explain_path = run_dir / "config.json", run_dir / "explain.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    explained = json.loads(explain_path.read_text()) if explain_path.is_file() else {}
    page = render("report.html.j2", name=run_dir.resolve().name, path=str(run_dir.resolve()),
                  written=time.strftime("%Y-%m-%d %H:%M:%S"), cards=cards(explained) if explained else [],
                  source=source(config), scores=scores(explained), worst_videos=worst_videos(run_dir, unit(explained)),
                  pointing=pointing(explained), when=when(explained), epochs=epochs(run_dir), unit=unit(explained),
                  figures=figures(run_dir, unit(explained) == "clip"),
                  config=json.dumps(config, indent=2, sort_keys=True))
    out = run_dir / "report.html"
    write_text(out, page)
    return out
