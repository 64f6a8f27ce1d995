"""report.html of a run folder: config, per-epoch metrics, every figure (embedded), frame/video metrics, pointing game.

One self-contained file: figures are base64 data URIs and there is no script, so it opens from disk in any
browser with no server, and can be mailed or archived alone.
"""
from __future__ import annotations

import base64
import csv
import html
import json
import math
import time
from pathlib import Path

import pandas as pd

from dfd.files import write_text

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
WORST_VIDEOS = 15
NAV = ('<p><a href="#scores">metrics</a> &middot; <a href="#pointing-game">pointing game</a> &middot; '
       '<a href="#epochs">epochs</a> &middot; <a href="#figures">figures</a> &middot; <a href="#config">config</a></p>')
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222;
padding:0 1em}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0} td,th{border:1px solid #ccc;padding:3px 7px;
text-align:right} th{background:#f3f3f3} td.l,th.l{text-align:left}
figure{margin:1em 0} figure img{max-width:100%;border:1px solid #eee} figcaption{color:#555;font-size:14px}
.cards{display:flex;gap:1em;flex-wrap:wrap} .card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em}
.card b{font-size:20px;display:block} .missing{color:#a00} pre{background:#f7f7f7;padding:.8em;overflow:auto;
font-size:12px}
"""


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def table(rows: list[dict], columns: list[str], left: tuple[str, ...] = ()) -> str:
    head = "".join(f'<th class="{"l" if c in left else ""}">{html.escape(c)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f'<td class="{"l" if c in left else ""}">{fmt(_number(r.get(c)))}</td>'
                                    for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _number(value):
    """CSV strings back to numbers for formatting (ints stay ints)."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value if value else None
    return value


def metrics_section(run_dir: Path) -> str:
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return '<p class="missing">no metrics.csv</p>'
    with path.open() as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return "<p>metrics.csv has no epochs yet</p>"
    return table(rows, list(rows[0].keys()))


def cards(explained: dict) -> str:
    v, f = explained.get("video", {}), explained.get("frame", {})
    items = [("video log loss", v.get("log_loss")), ("video ROC-AUC", v.get("roc_auc")),
             ("video accuracy", v.get("accuracy")), ("frame log loss", f.get("log_loss")),
             ("frame ROC-AUC", f.get("roc_auc")), ("frame accuracy", f.get("accuracy"))]
    p = explained.get("pointing")
    if p:
        items += [("pointing game", p.get("pointing_game")), ("random point", p.get("random_point"))]
    return '<div class="cards">' + "".join(f'<div class="card"><b>{fmt(val)}</b>{html.escape(name)}</div>'
                                            for name, val in items) + "</div>"


def scores_section(explained: dict) -> str:
    if not explained:
        return '<p class="missing">no explain.json: run <code>python -m train.explain --run RUN</code></p>'
    f, v = explained["frame"], explained["video"]
    eps = explained.get("log_loss_eps")
    clip = v.get("submission_clip", [None, None])
    names = ["log_loss", "roc_auc", "accuracy", "balanced_accuracy", "eer", "average_precision"]
    rows = [{"level": "frame", "n": f["frames"], **{k: f.get(k) for k in names}, "mean CE loss": f.get("loss")},
            {"level": "video", "n": v["videos"], **{k: v.get(k) for k in names}}]
    out = table(rows, ["level", "n", *names, "mean CE loss"], left=("level",))
    out += (f"<p>Checkpoint <code>{html.escape(str(explained.get('checkpoint_name')))}</code>. A video's score is "
            f"its frames' P(fake) aggregated by the rule <code>{html.escape(str(v.get('aggregate', 'mean')))}</code> "
            f"(train.score.metrics.aggregate). Log loss clips P(fake) to [{eps:g}, 1 &minus; {eps:g}] as Kaggle's DFDC "
            f"scorer did; with scores clipped to [{fmt(clip[0], 2)}, {fmt(clip[1], 2)}] as top submissions did, the "
            f"video log loss is {fmt(v.get('log_loss_clipped'))}. Accuracy thresholds P(fake) at 0.5.</p>")
    return out


def pointing_section(explained: dict) -> str:
    p = explained.get("pointing") if explained else None
    if not p:
        return ("<p>Not computed: pass <code>--boxes boxes.json</code> (the manipulated region of each fake, as the "
                "demo's generator writes it).</p>")
    ratio = p["pointing_game"] / p["random_point"] if p["random_point"] else math.nan
    return (f"<p>Grad-CAM for class <i>fake</i> peaks inside the known manipulated box on <b>{p['hits']} of "
            f"{p['frames']}</b> val fake frames ({p['videos']} videos): <b>{fmt(p['pointing_game'], 3)}</b>. A point "
            f"drawn uniformly at random would land inside with probability {fmt(p['random_point'], 3)} (mean box "
            f"area), so the heatmap peak hits {fmt(ratio, 1)}x as often as chance. {p.get('empty_maps', 0)} heatmaps "
            f"were all zero (no positive evidence; counted as misses). Boxes: "
            f"<code>{html.escape(str(explained.get('boxes')))}</code>.</p>")


def videos_section(run_dir: Path) -> str:
    path = run_dir / "video_predictions.parquet"
    if not path.is_file():
        return ""
    videos = pd.read_parquet(path).sort_values("loss", ascending=False).head(WORST_VIDEOS)
    return (f"<h3>Worst {len(videos)} val videos by log loss</h3>"
            + table(videos.to_dict("records"), ["video_id", "label_name", "p_fake", "frames", "loss"],
                    left=("video_id", "label_name")))


def figures_section(run_dir: Path) -> str:
    parts = []
    for name, caption in FIGURES:
        path = run_dir / name
        anchor = name.rsplit(".", 1)[0]
        if path.is_file():
            parts.append(f'<figure id="{anchor}"><img alt="{name}" src="{data_uri(path)}">'
                         f"<figcaption><b>{name}</b>: {html.escape(caption)}</figcaption></figure>")
        else:
            parts.append(f'<p id="{anchor}" class="missing">{name}: not in the run folder.</p>')
    return "\n".join(parts)


def source_section(config: dict) -> str:
    """The recipe's [source]: the paper or solution it follows, linked, and the figures the source reports (to read
    beside this run's, which come from other data and another budget); '' for a recipe without one."""
    source = (config.get("recipe") or {}).get("source") or {}
    if not source:
        return ""
    url = html.escape(source.get("url", ""))
    rows = "".join(f'<tr><td class="l">{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>'
                   for k, v in (source.get("reported") or {}).items())  # as the source wrote them, every digit
    figures = f'<table><tr><th class="l">figure</th><th>reported</th></tr>{rows}</table>' if rows else ""
    note = f"<p>{html.escape(source['note'])}</p>" if source.get("note") else ""
    return (f'<h2 id="source">Recipe source</h2><p>This recipe follows <a href="{url}">'
            f'{html.escape(source.get("title", url))}</a>. The figures it reports (its data and budget, not this '
            f"run's):</p>{figures}{note}")


def write_report(run_dir: str | Path) -> Path:
    """Write run_dir/report.html from what the run folder holds; returns its path."""
    run_dir = Path(run_dir)
    config_path, explain_path = run_dir / "config.json", run_dir / "explain.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    explained = json.loads(explain_path.read_text()) if explain_path.is_file() else {}
    name = html.escape(run_dir.resolve().name)
    body = [
        f"<h1>Run {name}</h1>",
        f"<p>{html.escape(str(run_dir.resolve()))} &middot; report written {time.strftime('%Y-%m-%d %H:%M:%S')}</p>",
        NAV,
        cards(explained) if explained else "",
        source_section(config),
        '<h2 id="scores">Frame- and video-level metrics (val)</h2>', scores_section(explained), videos_section(run_dir),
        '<h2 id="pointing-game">Does Grad-CAM look at the right place?</h2>', pointing_section(explained),
        '<h2 id="epochs">Metrics per epoch</h2>', metrics_section(run_dir),
        '<h2 id="figures">Figures</h2>', figures_section(run_dir),
        '<h2 id="config">Config</h2>', f"<pre>{html.escape(json.dumps(config, indent=2, sort_keys=True), quote=False)}"
                                       "</pre>",
    ]
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Run {name}</title>'
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    out = run_dir / "report.html"
    write_text(out, page)
    return out
