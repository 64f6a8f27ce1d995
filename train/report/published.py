"""Published versus measured: for a zoo package in `dfd benchmark`, each figure its authors report (config.json's
zoo.reported, written by `dfd zoo import` from train.zoo.entries) beside what the benchmark measured on the test set
of that name, with the difference, so a user sees at once whether the number reproduces.

How a benchmark test set is matched to a reported figure: by its NAME (the `--test NAME=...` or the TOML's name),
compared without regard to case with the figure's dataset id (`celebdf-v2-test`, `ffpp-c23-test`, ...) or with the
figure's test-set name with spaces as hyphens (`Celeb-DF-v2`, `FF++-c23`, `DFDC-private`); `dfd zoo list` shows both.

Like is compared with like: a video AUC with the video AUC, a frame AUC with the frame AUC, a log loss with the
video log loss. On a test set of face images the image-level figure stands for the frame level (a face image is a
frame's face crop), so a reported frame AUC is compared with the image AUC; a reported video figure is shown beside
the image figure but marked "metric differs" and given no difference. A figure the import has not re-verified
against its source says "as reported, not re-verified"; a figure no test set matched is listed with the names that
would match it.

A row: {"test_set", "dataset", "metric", "reported", "protocol", "source", "verified", "test" (the benchmark's test
set or null), "measured", "measured_metric", "difference" (measured - reported, or null), "notes": [...]}.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from train.paths import CheckpointError, is_package, resolve
from train.score.package import kind_of
from train.score.tables import cell, markdown_table
from train.zoo.importer import KIND, read_zoo_config

NOT_VERIFIED = "as reported, not re-verified"
COLUMNS = ("detector", "test set", "reported metric", "reported", "measured metric", "measured", "difference", "notes")


def reported_of(checkpoint: str | Path) -> dict | None:
    """A zoo package's reported figures ({"entry", "figures", "note"}); None for any other checkpoint or package."""
    try:
        folder = resolve(checkpoint)
    except CheckpointError:
        return None
    if not is_package(folder) or kind_of(folder) != KIND:
        return None
    zoo = read_zoo_config(folder)["zoo"]
    return {"entry": zoo["name"], "figures": list(zoo.get("reported", [])), "note": zoo.get("reported_note", "")}


def names_of(figure: dict) -> tuple[str, str]:
    """The two test-set names that match a figure: its dataset id and its test-set name with spaces as hyphens."""
    return figure["dataset"], figure["test_set"].replace(" ", "-")


def matching_test(figure: dict, tests: Sequence[str]) -> str | None:
    """The first benchmark test set whose name matches the figure (see the module doc), else None."""
    wanted = {n.casefold() for n in names_of(figure)}
    return next((t for t in tests if t.casefold() in wanted), None)


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def compare(figure: dict, test: str | None, cell_: dict | None, images: bool) -> dict:
    """One row: the figure, what was measured of the same kind on `test` (None: no test set matched), the
    difference where the two are the same metric."""
    level, measure = figure["level"], figure["measure"]
    row = {k: figure[k] for k in ("test_set", "dataset", "metric", "protocol", "source", "verified")}
    row.update(reported=figure["value"], test=test, measured=None, measured_metric=None, difference=None, notes=[])
    if not figure["verified"]:
        row["notes"].append(NOT_VERIFIED)
    if test is None:
        row["notes"].append("not benchmarked: name a test set " + " or ".join(names_of(figure)))
        return row
    measure_name = figure["metric"].split()[-1] if measure == "auc" else figure["metric"]
    if images:
        row["measured"] = cell_.get(f"frame_{measure}")
        row["measured_metric"] = f"image {measure_name}"
        same = level == "frame"
        if not same:
            row["notes"].append(f"metric differs: reported {figure['metric']}, measured image {measure_name} "
                                "(a folder of face images has no videos); not compared")
    else:
        row["measured"] = cell_.get(f"{level}_{measure}")
        row["measured_metric"] = f"{level} {measure_name}"
        same = True
    if not _finite(row["measured"]):
        row["notes"].append("measured n/a (one class, or nothing scored)")
    elif same:
        row["difference"] = float(row["measured"]) - float(figure["value"])
    return row


def published_rows(reported: dict, tests: dict, cells: dict) -> list[dict]:
    """The rows of one zoo detector: every figure its entry reports, matched to the benchmark's test sets
    (`tests`: benchmark.json's name -> its entry, `cells`: name -> the detector's cell)."""
    rows = []
    for figure in reported["figures"]:
        test = matching_test(figure, list(tests))
        rows.append(compare(figure, test, cells.get(test) if test else None,
                            bool(test and "images" in tests[test])))
    return rows


def _signed(value) -> str:
    return "n/a" if not _finite(value) else f"{value:+.4f}"


def published_markdown(bench: dict) -> str:
    """"Published versus measured" as a markdown table (a row per reported figure of each zoo detector), with a
    line for a zoo detector whose entry reports none; "" when no detector is a zoo package."""
    rows, lines = [], []
    for det in bench["detectors"]:
        if "published" not in det:
            continue
        if not det["published"]:
            note = det.get("published_note") or "none recorded"
            lines.append(f"{det['name']}: its entry reports no figures ({note})")
        for r in det["published"]:
            tested = f"{r['test_set']} (as {r['test']})" if r["test"] else r["test_set"]
            rows.append([det["name"], tested, r["metric"], r["reported"], r["measured_metric"] or "not measured",
                         cell(r["measured"]) if r["test"] else "-", _signed(r["difference"]), "; ".join(r["notes"])])
    if not rows and not lines:
        return ""
    parts = ([markdown_table(COLUMNS, rows)] if rows else []) + [line + "\n" for line in lines]
    return "\nPublished versus measured (difference = measured - reported)\n\n" + "\n".join(parts)
