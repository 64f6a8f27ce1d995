"""The verdict page of one checked video: one self-contained HTML file (images as data URIs, no script, no external
request) with the verdict and the model, P(fake) over time per face track with the threshold, the faces (or frames)
of every sampled second with their scores, the most suspicious with their Grad-CAM beside the source frame and
its box, with an audio model the sound's P(fake) per window over time (or a note that there is no sound), and the
settings used."""
from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import simplejpeg
import torch

from dfd.files import write_text
from train.data.decode import to_chw
from train.model import normalize
from train.report.gradcam import grad_cam, overlay
from train.score.threshold import describe
from train.score.verdict import SOUND_THRESHOLD, Verdict, evidence_text, sound_text

SUSPICIOUS = 4  # Grad-CAM for this many of the highest-scoring faces (or frames)
FAKE_CLASS = 1
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222;
padding:0 1em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.badge{display:inline-block;padding:.2em .7em;border-radius:6px;color:#fff;font-weight:bold;font-size:22px}
.FAKE{background:#c0392b} .REAL{background:#27ae60} .NOFACE{background:#7f8c8d}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;
vertical-align:top} th{background:#f3f3f3}
.frame{position:relative;display:inline-block;width:480px;max-width:100%} .frame img{width:100%;display:block}
.box{position:absolute;border:3px solid #f1c40f;box-sizing:border-box}
.row{display:flex;gap:1em;align-items:flex-start;flex-wrap:wrap;margin:1em 0}
figure{margin:0} figcaption{font-size:13px;color:#444} .crop{width:112px;height:112px;display:block}
.big{width:224px;height:224px} .hot{outline:3px solid #c0392b} .secs{display:flex;flex-wrap:wrap;gap:.8em 1.2em}
.sec{border-top:1px solid #ddd;padding-top:.2em} .faces{display:flex;gap:.3em} pre{background:#f7f7f7;padding:.8em;
font-size:12px;overflow:auto}
"""


def jpeg_uri(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def image_uri(image: np.ndarray, quality: int = 88) -> str:
    return jpeg_uri(simplejpeg.encode_jpeg(np.ascontiguousarray(image), quality=quality, colorspace="RGB"))


def timeline_png(verdict: Verdict) -> bytes:
    """P(fake) against time, one line per face track, the threshold dashed."""
    fig, ax = plt.subplots(figsize=(9, 3.2), constrained_layout=True)
    for track in verdict.tracks():
        items = sorted((i for i in verdict.items if i.track == track["track"]), key=lambda i: i.second)
        label = "frames" if track["track"] is None else f"face track {track['track']}"
        ax.plot([i.second for i in items], [i.p_fake for i in items], marker="o", label=label)
    return _over_time(fig, ax, verdict.threshold["value"], "P(fake)", max(verdict.seconds, default=1))


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
    last = max([s + sound.window_s for s in sound.starts] + list(verdict.seconds) + [1])
    return _over_time(fig, ax, SOUND_THRESHOLD, "P(fake) of the sound", last)


def sound_section(verdict: Verdict) -> str:
    """The sound's verdict: its P(fake) over time, or why there is none."""
    sound = verdict.sound
    head = '<h2 id="sound">The sound: P(fake) over time</h2>'
    if sound.p_fake is None:
        return f"{head}<p><b>{html.escape(sound.note or 'no sound')}</b>: the verdict is the picture's alone.</p>"
    return (f"{head}<p>{html.escape(sound_text(verdict))}; the sound's P(fake) is the mean over its "
            f"{len(sound.windows)} windows (silence skipped).</p><img alt=\"sound P(fake) over time\" "
            f'src="data:image/png;base64,{base64.b64encode(sound_png(verdict)).decode()}">')


def gradcams(model: torch.nn.Module, crops: list[np.ndarray]) -> list[np.ndarray]:
    """Grad-CAM of class fake over each crop (the model's exact input), as overlays."""
    if not crops:
        return []
    device = next(model.parameters()).device
    batch = normalize(torch.stack([to_chw(c) for c in crops]).to(device))
    cams = grad_cam(model, batch, target_class=FAKE_CLASS).cpu().numpy()
    return [overlay(c, cam) for c, cam in zip(crops, cams)]


def _box_div(verdict: Verdict, box) -> str:
    if box is None or verdict.size is None:
        return ""
    w, h = verdict.size
    x0, y0, x1, y1 = (max(0.0, v) for v in box)
    return (f'<div class="box" style="left:{100 * x0 / w:.2f}%;top:{100 * y0 / h:.2f}%;'
            f'width:{100 * (min(x1, w) - x0) / w:.2f}%;height:{100 * (min(y1, h) - y0) / h:.2f}%"></div>')


def _who(item) -> str:
    return "frame" if item.track is None else f"track {item.track}, face {item.face}"


def suspicious_section(verdict: Verdict, model: torch.nn.Module) -> str:
    top = sorted(verdict.items, key=lambda i: -i.p_fake)[:SUSPICIOUS]
    overlays = gradcams(model, [i.crop for i in top])
    rows = []
    for item, cam in zip(top, overlays):
        rows.append(
            '<div class="row">'
            f'<figure><div class="frame"><img alt="source frame at {item.second:g} s" '
            f'src="{jpeg_uri(verdict.jpegs[item.frame])}">{_box_div(verdict, item.box)}</div>'
            f"<figcaption>source frame at {item.second:.2f} s{' with the face box' if item.box else ''}"
            "</figcaption></figure>"
            f'<figure><img class="crop big" alt="model input" src="{image_uri(item.crop)}"><figcaption>what the model '
            f"saw ({_who(item)})</figcaption></figure>"
            f'<figure><img class="crop big" alt="Grad-CAM" src="{image_uri(cam)}"><figcaption>Grad-CAM of class '
            f"fake; P(fake) <b>{item.p_fake:.3f}</b></figcaption></figure></div>")
    return "\n".join(rows)


def seconds_section(verdict: Verdict) -> str:
    by_second: dict[float, list] = {}
    for item in verdict.items:
        by_second.setdefault(item.second, []).append(item)
    t = verdict.threshold["value"]
    out = []
    for second in verdict.seconds:
        items = by_second.get(second, [])
        cells = "".join(f'<figure><img class="crop{" hot" if i.p_fake >= t else ""}" alt="{html.escape(_who(i))}" '
                        f'src="{image_uri(i.crop, 80)}"><figcaption>{i.p_fake:.3f}'
                        f"{'' if i.track is None else f' &middot; t{i.track}'}</figcaption></figure>" for i in items)
        out.append(f'<div class="sec"><b>{second:.2f} s</b><div class="faces">{cells or "<i>no face</i>"}</div></div>')
    return '<div class="secs">' + "\n".join(out) + "</div>"


def settings_table(rows: dict) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td><code>{html.escape(str(v))}</code></td></tr>"
                               for k, v in rows.items()) + "</table>"


def header(verdict: Verdict, name: str, models: list[dict]) -> str:
    label = verdict.label
    score = "" if verdict.p_fake is None else f" P(fake) <b>{verdict.p_fake:.3f}</b>"
    model = "; ".join(f"{html.escape(m['name'])} ({html.escape(m['arch'])}, {m['input']})" for m in models)
    alone = "No verdict." if verdict.p_fake is None else "The verdict is the sound's alone."
    says = (f"<p>No face was found in the {len(verdict.seconds)} sampled frames: the model, trained on faces, has "
            f"nothing to judge. {alone}</p>" if verdict.p_picture is None else
            f"<p>Strongest evidence: {html.escape(evidence_text(verdict))}.</p>")
    return (f"<h1>{html.escape(name)}</h1><p><span class=\"badge {label.replace(' ', '')}\">{label}</span>{score} "
            f"{_against(verdict)}; the picture's P(fake) is the <code>{html.escape(verdict.aggregate)}</code> of its "
            f"{'faces' if verdict.input == 'faces' else 'frames'}.</p>{says}<p>Model: {model}.</p>")


def _against(verdict: Verdict) -> str:
    """What the header's P(fake) is compared with: the image model's threshold, and with sound also the sound's."""
    picture = f"the threshold {verdict.threshold['value']:.3f} ({html.escape(describe(verdict.threshold))})"
    sound = verdict.sound
    if sound is None:
        return f"against {picture}"
    if sound.p_fake is None:
        return f"against {picture}; {html.escape(sound.note or 'no sound')}"
    pic = "no picture verdict" if verdict.p_picture is None else f"picture {verdict.p_picture:.3f}"
    return (f"(<code>{sound.rule}</code> of {pic} and sound {sound.p_fake:.3f}): fake when the picture reaches "
            f"{picture} or the sound reaches {SOUND_THRESHOLD:.3f}")


def write_page(verdict: Verdict, name: str, out: Path, model: torch.nn.Module, models: list[dict],
               settings: dict) -> Path:
    """The page for one checked video (not for one that failed); returns its path."""
    start = time.perf_counter()
    body = [header(verdict, name, models)]
    if verdict.items:
        body += ['<h2 id="timeline">P(fake) over time</h2>',
                 f'<img alt="P(fake) over time" src="data:image/png;base64,'
                 f'{base64.b64encode(timeline_png(verdict)).decode()}">',
                 f'<h2 id="suspicious">The most suspicious {"faces" if verdict.input == "faces" else "frames"}</h2>',
                 suspicious_section(verdict, model),
                 f"<h2 id=\"seconds\">Every sampled second</h2><p>Outlined red: P(fake) at or above the threshold.</p>",
                 seconds_section(verdict)]
    if verdict.sound is not None:
        body.append(sound_section(verdict))
    timings = {**verdict.timings, "page_s": time.perf_counter() - start}
    body += ['<h2 id="settings">Settings used</h2>',
             settings_table({**settings, "timings (s)": ", ".join(f"{k} {v:.2f}" for k, v in timings.items()),
                             "written": time.strftime("%Y-%m-%d %H:%M:%S")}),
             f"<pre>{html.escape(json.dumps(verdict.threshold, indent=2, default=str))}</pre>"]
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(name)}: {verdict.label}'
            f"</title><style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, page)
    verdict.timings["page_s"] = time.perf_counter() - start
    return out
