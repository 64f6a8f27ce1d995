"""The verdict page of one checked video: one self-contained HTML file (images as data URIs, no script, no external
request) with the verdict and the model, P(fake) over time per face track with the threshold, the faces (or frames)
of every sampled second with their scores, the most suspicious with their Grad-CAM beside the source frame and
its box, with an audio model the sound's P(fake) per window over time (or a note that there is no sound), and the
settings used. Rendered from train/templates/verdict.html.j2 with the one stylesheet inlined."""
from __future__ import annotations

import base64
import io
import json
import logging
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import simplejpeg
import torch

from dfd.files import write_text
from train.data.decode import to_chw
from train.config import CLIP_INPUTS
from train.model import normalize
from train.report.gradcam import clip_grad_cam, grad_cam, overlay
from train.score.threshold import describe
from train.score.verdict import (SOUND_THRESHOLD, SYNC_THRESHOLD, Verdict, evidence_text, picture_segments,
                                  sound_segments, sound_text, sync_text)
from train.templates import render

SUSPICIOUS = 4  # Grad-CAM for this many of the highest-scoring faces (or frames)
FAKE_CLASS = 1
PAGE_WHAT = {"faces": "faces", "clips": "clips", "face-clips": "face clips"}  # what the page calls a model's items

def jpeg_uri(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def image_uri(image: np.ndarray, quality: int = 88) -> str:
    return jpeg_uri(simplejpeg.encode_jpeg(np.ascontiguousarray(image), quality=quality, colorspace="RGB"))


def timeline_png(verdict: Verdict) -> bytes:
    """P(fake) against time, one line per face track, the threshold dashed."""
    fig, ax = plt.subplots(figsize=(9, 3.2), constrained_layout=True)
    for track in verdict.tracks():
        items = sorted((i for i in verdict.items if i.track == track["track"]), key=lambda i: i.second)
        label = (verdict.input if verdict.input == "clips" else "frames") if track["track"] is None else f"face track {track['track']}"
        ax.plot([i.second for i in items], [i.p_fake for i in items], marker="o", label=label)
    _shade(ax, picture_segments(verdict))
    return _over_time(fig, ax, verdict.threshold["value"], "P(fake)", max(verdict.seconds, default=1))


def _shade(ax, segments: list[dict]) -> None:
    """The predicted fake segments as shaded spans (one legend entry)."""
    for n, segment in enumerate(segments):
        ax.axvspan(segment["start"], segment["end"], color="#e67e22", alpha=0.18, linewidth=0,
                   label=None if n else "predicted fake segment")


def segments_text(segments: list[dict]) -> str:
    """'1.5-4.5 s (mean P(fake) 0.91), ...' or 'none'."""
    return ", ".join(f"{s['start']:.2f}-{s['end']:.2f} s (mean P(fake) {s['score']:.3f})" for s in segments) or "none"


def _over_time(fig, ax, threshold: float, ylabel: str, last_second: float) -> bytes:
    """The threshold dashed, the axes of a P(fake)-over-time plot, the legend beside it; the PNG."""
    ax.axhline(threshold, color="#c0392b", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set(ylim=(-0.02, 1.02), xlabel="second", ylabel=ylabel, xlim=(-0.2, last_second + 0.2))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def sound_png(verdict: Verdict) -> bytes:
    """The sound's P(fake) per window against time (each window drawn over the seconds it covers), its threshold
    dashed."""
    sound = verdict.sound
    fig, ax = plt.subplots(figsize=(9, 3.2), constrained_layout=True)
    for start, p in zip(sound.starts, sound.windows):
        ax.plot([start, start + sound.window_s], [p, p], color="#8e44ad", alpha=0.35, linewidth=3)
    mids = [s + sound.window_s / 2 for s in sound.starts]
    ax.plot(mids, sound.windows, marker="o", color="#8e44ad", label=f"sound, windows of {sound.window_s:g} s")
    _shade(ax, sound_segments(sound))
    last = max([s + sound.window_s for s in sound.starts] + list(verdict.seconds) + [1])
    return _over_time(fig, ax, sound.threshold, "P(fake) of the sound", last)


def sync_png(verdict: Verdict) -> bytes:
    """Lip sync: the agreement of mouth and speech (their correlation at the sound's lag found) per sliding window
    against time, and the correlation against the sound's lag with the lag found marked."""
    sync = verdict.sync
    fig, (ax, lag_ax) = plt.subplots(1, 2, figsize=(11, 3.2), constrained_layout=True,
                                     gridspec_kw={"width_ratios": [2, 1]})
    window = sync.window_s or 0.0
    ax.plot([s + window / 2 for s in sync.starts], sync.windows, marker="o", color="#16a085",
            label=f"agreement at lag {sync.offset_s:+.2f} s, windows of {window:g} s")
    ax.axhline(0, color="#7f8c8d", linewidth=0.8)
    ax.set(ylim=(-1.02, 1.02), xlabel="second (window middle)", ylabel="mouth-speech correlation")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=9)
    lag_ax.plot(sync.lags_s, sync.correlation, color="#16a085")
    lag_ax.axvline(sync.offset_s, color="#c0392b", linestyle="--", label=f"found {sync.offset_s:+.2f} s")
    lag_ax.set(xlabel="lag of the sound (s)", ylabel="correlation")
    lag_ax.grid(alpha=0.3)
    lag_ax.legend(loc="lower left", fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return buf.getvalue()


def gradcams(model: torch.nn.Module, crops: list[np.ndarray]) -> list[np.ndarray]:
    """Grad-CAM of class fake over each crop (the model's exact input), as overlays. One crop at a time (a backward
    pass holds every activation of the network); a model with `gradcam_model()` (a zoo ensemble) names the network
    to explain (its first member)."""
    if not crops:
        return []
    if callable(getattr(model, "gradcam_model", None)):
        model = model.gradcam_model()
    device = next(model.parameters()).device
    try:
        cams = np.concatenate([grad_cam(model, normalize(to_chw(c)[None].to(device)), target_class=FAKE_CLASS)
                               .cpu().numpy() for c in crops])
    except ValueError as err:  # a network without a spatial feature map (a zoo ViT): the crops without heat
        logging.getLogger(__name__).warning("no Grad-CAM: %s", str(err).splitlines()[0])
        return list(crops)
    return [overlay(c, cam) for c, cam in zip(crops, cams)]


def _box_style(verdict: Verdict, box) -> str | None:
    """Where the face box sits over the source frame, in percent of its size (None without a box)."""
    if box is None or verdict.size is None:
        return None
    w, h = verdict.size
    x0, y0, x1, y1 = (max(0.0, v) for v in box)
    return (f"left:{100 * x0 / w:.2f}%;top:{100 * y0 / h:.2f}%;"
            f"width:{100 * (min(x1, w) - x0) / w:.2f}%;height:{100 * (min(y1, h) - y0) / h:.2f}%")


def _who(item) -> str:
    if item.clip is not None:
        tube = "" if item.track is None else f", face track {item.track}"
        return f"clip of {len(item.clip)} frames from {item.second:.2f} s ({item.status}{tube})"
    return "frame" if item.track is None else f"track {item.track}, face {item.face}"


def clip_gradcams(model: torch.nn.Module, clips: list[np.ndarray]) -> list[np.ndarray]:
    """Grad-CAM of class fake over each clip (train.report.gradcam.clip_grad_cam), its middle frame overlaid."""
    if not clips:
        return []
    device = next(model.parameters()).device
    batch = normalize(torch.from_numpy(np.ascontiguousarray(np.stack(clips).transpose(0, 1, 4, 2, 3))).to(device))
    cams = clip_grad_cam(model, batch, target_class=FAKE_CLASS).cpu().numpy()
    mid = len(clips[0]) // 2
    return [overlay(c[mid], cam[mid]) for c, cam in zip(clips, cams)]


def suspicious(verdict: Verdict, model: torch.nn.Module) -> list[dict]:
    """The SUSPICIOUS highest-scoring faces (or frames): the source frame and box, the model's input, its Grad-CAM."""
    top = sorted(verdict.items, key=lambda i: -i.p_fake)[:SUSPICIOUS]
    return [{"second": item.second, "frame": jpeg_uri(verdict.jpegs[item.frame]),
             "box": _box_style(verdict, item.box), "has_box": bool(item.box), "crop": image_uri(item.crop),
             "who": _who(item), "cam": image_uri(cam), "p_fake": item.p_fake}
            for item, cam in zip(top, clip_gradcams(model, [i.clip for i in top]) if verdict.input in CLIP_INPUTS
                                 else gradcams(model, [i.crop for i in top]))]


def seconds(verdict: Verdict) -> list[tuple[float, list[dict]]]:
    """Every sampled second with its faces (or frame): a small crop each, outlined when at or above the threshold."""
    by_second: dict[float, list] = {}
    for item in verdict.items:
        by_second.setdefault(item.second, []).append(item)
    t = verdict.threshold["value"]
    return [(second, [{"hot": i.p_fake >= t, "who": _who(i), "uri": image_uri(i.crop, 80), "p_fake": i.p_fake,
                       "track": i.track} for i in by_second.get(second, [])]) for second in verdict.seconds]


def _png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def write_page(verdict: Verdict, name: str, out: Path, model: torch.nn.Module, models: list[dict],
               settings: dict) -> Path:
    """The page for one checked video (not for one that failed; train/templates/verdict.html.j2); returns its
    path."""
    start = time.perf_counter()
    items = bool(verdict.items)
    sound = verdict.sound
    values = dict(
        name=name, label=verdict.label, p_fake=verdict.p_fake, p_picture=verdict.p_picture, sound=sound,
        threshold=verdict.threshold, how=describe(verdict.threshold),
        sound_threshold=sound.threshold if sound is not None else SOUND_THRESHOLD,
        aggregate=verdict.aggregate, what=PAGE_WHAT.get(verdict.input, "frames"),
        n_seconds=len(verdict.seconds), evidence=evidence_text(verdict) if verdict.p_picture is not None else "",
        models=models, items=items, timeline=_png_uri(timeline_png(verdict)) if items else "",
        suspicious=suspicious(verdict, model) if items else [], seconds=seconds(verdict) if items else [],
        sound_text=sound_text(verdict) if sound is not None and sound.p_fake is not None else "",
        sound_png=_png_uri(sound_png(verdict)) if sound is not None and sound.p_fake is not None else "",
        segments=segments_text(picture_segments(verdict)) if items else "",
        sound_segments=segments_text(sound_segments(sound)) if sound is not None and sound.p_fake is not None else "",
        sync=verdict.sync, sync_text=sync_text(verdict.sync).lstrip("; "), sync_threshold=SYNC_THRESHOLD,
        sync_png=_png_uri(sync_png(verdict)) if verdict.sync is not None and verdict.sync.starts else "")
    timings = {**verdict.timings, "page_s": time.perf_counter() - start}
    page = render("verdict.html.j2", **values, threshold_json=json.dumps(verdict.threshold, indent=2, default=str),
                  settings={**settings, "timings (s)": ", ".join(f"{k} {v:.2f}" for k, v in timings.items()),
                            "written": time.strftime("%Y-%m-%d %H:%M:%S")})
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, page)
    verdict.timings["page_s"] = time.perf_counter() - start
    return out
