"""Issue 17 item 2: `python -m train.benchmark`, every checkpoint on every test set, deterministic to the last digit;
the cross-dataset table on the comparison page."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from train.report.cross_dataset import BenchmarkError, Detector, TestSet, parse_test, run_benchmark
from train.report.comparison import compare

from helpers.commands import run_module, run_pipeline
from helpers.official import make_ffpp_tree

CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def ffpp_shards(tmp_path_factory) -> Path:
    """An FF++-shaped tree of lavfi clips sharded with its own official split files (a labelled test split)."""
    root = tmp_path_factory.mktemp("bench-ffpp")
    tree, files = make_ffpp_tree(root, seconds=2.0, dfd=False)
    run_pipeline(tree, root, "--size", "64x36", *[a for f in files.values() for a in ("--split-file", str(f))])
    return root


@pytest.fixture(scope="module")
def detectors(tiny_run, tmp_path_factory) -> list[Detector]:
    """The tiny --dev-run and a copy with other head weights (a second detector). Only learned weights move: noise
    on BatchNorm's running variance could make it negative, and the copy's every output NaN (the benchmark tests
    that failed with "Input contains NaN" whenever the dev run's variances came out small)."""
    best = tiny_run / "checkpoints" / "best.pt"
    other = tmp_path_factory.mktemp("bench-ckpt") / "other.pt"
    data = torch.load(best, map_location="cpu", weights_only=True)
    torch.manual_seed(5)
    data["model"] = {k: (v + 0.2 * torch.randn_like(v) if k.startswith("1.") and k.endswith((".weight", ".bias"))
                         else v) for k, v in data["model"].items()}
    torch.save(data, other)
    return [Detector("tiny", str(best)), Detector("other", str(other))]


def _tests(tiny_dataset, ffpp_shards) -> list[TestSet]:
    return [TestSet("demo", str(tiny_dataset["shards"]), str(tiny_dataset["manifests"]), "val"),
            TestSet("ffpp", str(ffpp_shards / "shards"), str(ffpp_shards / "manifests"), "test")]


def test_cli_table_json_and_cells_agree(detectors, tiny_dataset, ffpp_shards, tmp_path):
    out = tmp_path / "bench"
    proc = run_module("train.benchmark", "--checkpoint", f"tiny={detectors[0].checkpoint}",
                      "--checkpoint", f"other={detectors[1].checkpoint}",
                      "--test", f"demo@val={tiny_dataset['shards']}:{tiny_dataset['manifests']}",
                      "--test", f"ffpp={ffpp_shards / 'shards'}", "--out", out, "--device", "cpu", "--workers", "0")
    header = proc.stdout.splitlines()[0]
    assert header == ("| detector | demo frame AUC | demo video AUC | ffpp frame AUC | ffpp video AUC | avg frame AUC "
                      "| avg video AUC |")
    bench = json.loads((out / "benchmark.json").read_text())
    assert bench["columns"] == ["demo", "ffpp"] and [d["name"] for d in bench["detectors"]] == ["tiny", "other"]
    assert bench["tests"]["ffpp"]["split"] == "test" and bench["tests"]["demo"]["split"] == "val"
    for det in bench["detectors"]:
        for test in ("demo", "ffpp"):
            cell = det["tests"][test]
            evaluated = json.loads((out / "cells" / det["name"] / test / "metrics.json").read_text())
            assert cell["frame_auc"] == evaluated["frame"]["roc_auc"]
            assert cell["video_auc"] == evaluated["video"]["roc_auc"]
            assert cell["video_eer"] == evaluated["video"]["eer"] and cell["frame_ap"] == \
                evaluated["frame"]["average_precision"]
            assert cell["frames"] == evaluated["frame"]["frames"] > 0
            assert cell["real_videos"] + cell["fake_videos"] == cell["videos"]
        # the FF++ tree's test split is the official test pair: 2 originals and 2 fakes
        assert (det["tests"]["ffpp"]["real_videos"], det["tests"]["ffpp"]["fake_videos"]) == (2, 2)
        aucs = [det["tests"][t]["frame_auc"] for t in ("demo", "ffpp")]
        assert det["average"]["frame_auc"] == pytest.approx(sum(aucs) / 2)
    first = bench["detectors"][0]
    assert f"| tiny | {first['tests']['demo']['frame_auc']:.4f} |" in proc.stdout
    assert (out / "benchmark.md").read_text().splitlines()[0] == header
    assert 'id="runs"' in (out / "benchmark.html").read_text()


def test_the_same_checkpoints_on_the_same_shards_give_the_same_bytes(detectors, tiny_dataset, ffpp_shards, tmp_path):
    tests = _tests(tiny_dataset, ffpp_shards)
    # two loader workers finish in any order: the same command twice gives the same bytes all the same
    run_benchmark(detectors, tests, tmp_path / "a", device="cpu", workers=2, batch_size=4)
    run_benchmark(detectors, tests, tmp_path / "b", device="cpu", workers=2, batch_size=4)
    a, b = ((tmp_path / n / "benchmark.json").read_bytes() for n in ("a", "b"))
    assert a == b
    numbers = re.findall(rb"\d\.\d{6,}", a)
    assert len(numbers) > 20  # full-precision floats, not rounded away


def test_a_toml_lists_the_same_benchmark(detectors, tiny_dataset, ffpp_shards, tmp_path):
    config = tmp_path / "bench.toml"
    config.write_text(f"""
out = "from-toml"
split = "val"
[[checkpoint]]
name = "tiny"
path = "{detectors[0].checkpoint}"
[[test]]
name = "demo"
shards = "{tiny_dataset['shards']}"
manifests = "{tiny_dataset['manifests']}"
[[test]]
name = "ffpp"
shards = "{ffpp_shards / 'shards'}"
split = "test"
""")
    run_module("train.benchmark", "--config", config, "--device", "cpu", "--workers", "0")
    bench = json.loads((tmp_path / "from-toml" / "benchmark.json").read_text())
    assert bench["tests"]["demo"]["split"] == "val" and bench["tests"]["ffpp"]["split"] == "test"
    direct = run_benchmark([detectors[0]], _tests(tiny_dataset, ffpp_shards), tmp_path / "direct", device="cpu",
                           workers=0)
    assert bench["detectors"][0]["tests"] == direct["detectors"][0]["tests"]


def test_bad_specs_are_refused_naming_them(tmp_path, detectors):
    with pytest.raises(BenchmarkError, match="expected NAME=SHARDS"):
        parse_test("just-a-path")
    with pytest.raises(BenchmarkError, match="test set name"):
        parse_test("a b=shards")
    assert parse_test("cdf=s3://bucket/shards:/data/m") == TestSet("cdf", "s3://bucket/shards", "/data/m", "test")
    assert parse_test("cdf@val=x/shards").manifests == "x/manifests"
    proc = run_module("train.benchmark", "--checkpoint", detectors[0].checkpoint, check=False)
    assert proc.returncode == 2 and "--test" in proc.stderr
    proc = run_module("train.benchmark", "--checkpoint", detectors[0].checkpoint, "--test",
                      f"x={tmp_path / 'nowhere'}", "--out", tmp_path / "o", check=False)
    assert proc.returncode != 0 and "nowhere" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_compare_page_carries_the_cross_dataset_table(detectors, tiny_dataset, ffpp_shards, tiny_run, tmp_path):
    bench = run_benchmark(detectors, _tests(tiny_dataset, ffpp_shards), tmp_path / "b", device="cpu", workers=0)
    page, _ = compare([tiny_run], tmp_path / "compare.html", tmp_path / "b" / "benchmark.json")
    text = page.read_text()
    assert 'id="cross-dataset"' in text and "ffpp video AUC" in text
    auc = {d["name"]: d["tests"]["ffpp"]["frame_auc"] for d in bench["detectors"]}
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          page.resolve().as_uri() + "#sort=-ffpp:frame_auc"],
                         capture_output=True, text=True, timeout=120).stdout
    table = dom.split('id="benchmark"', 1)[1].split("</tbody>", 1)[0]
    names = re.findall(r'<tr><td class="text" data-value="([^"]+)"', table)
    # highest first; two detectors with the same AUC (likely on four test videos) may stand in either order
    assert sorted(names) == sorted(auc) and [auc[n] for n in names] == sorted(auc.values(), reverse=True)
    assert 'data-sorted="ffpp:frame_auc:desc"' in dom
