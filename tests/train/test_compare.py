"""train.report.comparison (and `python -m train.compare`): run rows, the self-contained page, sorting in headless
Chromium."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from train.score import metrics
from train.report.comparison import CompareError, compare, load_run, runs_markdown, recipe_summary

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def run_dir(tiny_run) -> Path:
    """The tiny --dev-run with --boxes (conftest's session fixture, shared with test_explain and test_predict)."""
    return tiny_run


@pytest.fixture(scope="module")
def two_runs(run_dir, tmp_path_factory) -> tuple[Path, Path]:
    """The real run and a copy named 'sharper' whose predictions are pushed towards the truth."""
    base = tmp_path_factory.mktemp("compare")
    a, b = base / "tiny", base / "sharper"
    shutil.copytree(run_dir, a)
    shutil.copytree(run_dir, b)
    pred = pd.read_parquet(b / "predictions.parquet")
    pred["p_fake"] = 0.5 * pred["p_fake"] + 0.5 * pred["label"]
    pred.to_parquet(b / "predictions.parquet", index=False)
    history = pd.read_csv(b / "metrics.csv")
    history["val_loss"] *= 0.5
    history.to_csv(b / "metrics.csv", index=False)
    return a, b


def test_run_row(run_dir):
    run = load_run(run_dir)
    history = pd.read_csv(run_dir / "metrics.csv")
    pred = pd.read_parquet(run_dir / "predictions.parquet")
    assert run.row["arch"] == "resnet18" and run.row["image_size"] == "64x64" and run.row["input"] == "frames"
    assert run.row["epochs"] == len(history)
    assert run.row["best_epoch"] == int(history["log_loss"].idxmin()) + 1
    assert run.row["images_per_s"] == pytest.approx(history["images_per_s"].mean(), rel=1e-4)
    assert run.row["train_s"] == pytest.approx(history["seconds"].sum(), rel=1e-4)
    assert run.row["frame_log_loss"] == pytest.approx(metrics.log_loss(pred["label"], pred["p_fake"]))
    videos = pred.groupby("video_id").agg(label=("label", "first"), p=("p_fake", "mean"))
    assert run.row["video_roc_auc"] == pytest.approx(metrics.roc_auc(videos["label"], videos["p"]), nan_ok=True)
    assert run.row["wall_s"] > 0


def test_recipe_summary():
    recipe = {"batch_size": 8, "stages": [{"epochs": 2, "lr": [1e-4, 1e-3], "frozen": False},
                                          {"epochs": 1, "lr": 0.01, "frozen": True}]}
    assert recipe_summary(recipe) == "2x0.0001..0.001 + 1x0.01 frozen, batch 8"


def test_page_is_self_contained(two_runs, tmp_path):
    out, runs = compare(two_runs, tmp_path / "compare.html")
    page = out.read_text()
    assert page.count("<tr>") == 1 + 2  # header and one row per run
    assert page.count('src="data:image/png;base64,') == 2  # loss curves and ROC curves, inline
    assert not re.search(r'(src|href)="(?!data:|#)', page)  # nothing fetched from anywhere
    assert "<script>" in page and "sortBy" in page
    for name in ("tiny", "sharper", "video log loss", "train images/s", "wall time (s)", "best epoch"):
        assert name in page
    sharper = next(r for r in runs if r.name == "sharper")
    tiny = next(r for r in runs if r.name == "tiny")
    assert sharper.row["frame_log_loss"] < tiny.row["frame_log_loss"]
    assert f'data-value="{sharper.row["frame_log_loss"]!r}"' in page
    table = runs_markdown(runs).splitlines()
    assert table[0].startswith("| run | arch | image_size |") and len(table) == 4


def test_not_a_run_is_refused(tmp_path, run_dir):
    with pytest.raises(CompareError, match="not a run folder"):
        load_run(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "train.compare", str(run_dir), str(tmp_path), "--out",
                           str(tmp_path / "c.html")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 1 and "not a run folder" in proc.stderr


def test_cli_prints_markdown(two_runs, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "train.compare", *map(str, two_runs), "--out",
                           str(tmp_path / "c.html"), "--markdown"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| run | arch |" in proc.stdout and "comparison of 2 runs" in proc.stdout


def _chromium(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'profile'}", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_page_renders_and_sorts_in_headless_chromium(two_runs, tmp_path):
    import matplotlib.image as mpimg

    out, runs = compare(two_runs, tmp_path / "compare.html")
    shot = tmp_path / "compare.png"
    proc = _chromium(f"--screenshot={shot}", "--window-size=1400,1600", out.resolve().as_uri(), tmp_path=tmp_path)
    assert shot.is_file(), proc.stderr[-2000:]
    image = mpimg.imread(shot)
    assert image.shape[:2] == (1600, 1400) and image[..., :3].std() > 0.05
    # the inline script runs in a real browser: #sort=COLUMN orders the rows (ascending, '-' for descending)
    by_loss = sorted(runs, key=lambda r: r.row["frame_log_loss"])
    for fragment, expected in (("#sort=frame_log_loss", by_loss), ("#sort=-frame_log_loss", by_loss[::-1])):
        dom = _chromium("--dump-dom", out.resolve().as_uri() + fragment, tmp_path=tmp_path).stdout
        body = dom.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
        names = re.findall(r'<tr><td class="text" data-value="([^"]+)"', body)
        assert names == [r.name for r in expected], (fragment, names)
        assert f'data-sorted="frame_log_loss:{"desc" if fragment[6] == "-" else "asc"}"' in dom
    assert np.isfinite(by_loss[0].row["frame_log_loss"])


@pytest.mark.parametrize("name", ["run$x^$", "a$\\frac{1}{$b", "$5 and $6"])
def test_run_names_with_dollars_are_text(two_runs, tmp_path, name):
    """Issue 21 item 9: a run folder named with `$...$` is a label, not mathtext (which crashed or rendered)."""
    odd = tmp_path / name
    shutil.copytree(two_runs[1], odd)
    page, runs = compare([two_runs[0], odd], tmp_path / "c.html")
    assert name in page.read_text()
