"""Issue 25 items 6 (evaluate and benchmark on labelled face images) and 7 (published versus measured): a zoo package
scored on real face crops cut from the FF++ sample clips, as `dfd evaluate --images` and as a `dfd benchmark` test
set named after a figure its entry reports."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from helpers.paths import SHARED_DATA
from helpers.zoo_reference import DFBXceptionReference, prepare
from train.benchmark import main as benchmark_main
from train.evaluate import main as evaluate_main
from train.report.cross_dataset import BenchmarkError, parse_test, read_config
from train.report.image_evaluation import evaluate_images
from train.report.published import NOT_VERIFIED, compare, matching_test, published_markdown, reported_of
from train.score import metrics
from train.score.face_images import ImagesError, labelled_images, score_images
from train.zoo.entries import entry, entry_dict
from train.zoo.importer import import_entry

NAME = "deepfakebench-xception"
SIZE = 64  # the package's input here: Xception is fully convolutional, and 64 px keeps its stride-32 map at 2x2
CLIPS = {"real": ("original_sequences/youtube/c23/videos/004.mp4", "original_sequences/youtube/c23/videos/519.mp4"),
         "fake": ("manipulated_sequences/NeuralTextures/c23/videos/004_982.mp4",
                  "manipulated_sequences/Deepfakes/c23/videos/519_515.mp4")}


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """DeepfakeBench's Xception with random weights in the authors' layout, imported by `dfd zoo import`'s function;
    config.json's input size then set to 64 px so that the scoring is cheap (the weights do not depend on it)."""
    root = tmp_path_factory.mktemp("zoo-bench")
    torch.manual_seed(4)
    prepare(DFBXceptionReference(), torch.randn(4, 3, SIZE, SIZE), 4).save(root / "xception_best.pth")
    out = root / "package"
    import_entry(NAME, [root / "xception_best.pth"], out)
    config = json.loads((out / "config.json").read_text())
    config["input"]["size"] = config["image_size"] = [SIZE, SIZE]
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """real/ and fake/: three 96 px crops of the face region of each FF++ sample clip (ffmpeg, one frame a second)."""
    root = tmp_path_factory.mktemp("faces")
    for label, clips in CLIPS.items():
        (root / label).mkdir()
        for clip in clips:
            subprocess.run(["ffmpeg", "-v", "error", "-ss", "1", "-i", str(SHARED_DATA / "ffpp_sample" / clip), "-vf",
                            "fps=1,crop=ih/2:ih/2:(iw-ih/2)/2:ih/8,scale=96:96", "-frames:v", "3",
                            str(root / label / f"{Path(clip).stem}_%d.jpg")], check=True)
    assert len(list(root.rglob("*.jpg"))) == 12
    return root


def _invoke(command, *args):
    """The command line in this process (click's runner): its exit code and stdout."""
    got = CliRunner().invoke(command, [str(a) for a in args])
    assert got.exception is None or isinstance(got.exception, SystemExit), got.exception
    return got


def test_evaluate_a_labelled_image_folder(package, faces, tmp_path, caplog):
    """`dfd evaluate --images DIR`: each image scored as `predict --images` scores it, labelled by its subfolder,
    the image-level metrics of train.score.metrics; an unreadable image is named and left out, not a crash."""
    folder = tmp_path / "faces"
    shutil.copytree(faces, folder)
    (folder / "fake" / "broken.jpg").write_text("not a picture")
    proc = _invoke(evaluate_main, "--checkpoint", package, "--images", folder, "--out", tmp_path / "eval",
                   "--device", "cpu")
    assert proc.exit_code == 0, proc.output
    assert f"{folder / 'fake' / 'broken.jpg'}: not a readable image" in caplog.text
    assert "12 images (6 real, 6 fake); 1 could not be read" in proc.stdout
    result = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert result["level"] == "image" and (result["image"]["images"], result["image"]["unreadable"]) == (12, 1)
    rows = pd.read_parquet(tmp_path / "eval" / "predictions.parquet").set_index("path")
    assert rows.loc[str(folder / "fake" / "broken.jpg"), "error"] == "not a readable image"
    rows = rows[rows["error"].isna()]
    assert (rows["label"] == [int(Path(p).parent.name == "fake") for p in rows.index]).all()
    predicted, _ = score_images(faces, [str(package)], "cpu", None)
    by_predict = predicted.assign(path=[p.replace(str(faces), str(folder)) for p in predicted["path"]])
    assert rows["p_fake"].to_numpy() == pytest.approx(by_predict.set_index("path").loc[rows.index, "p_fake"], abs=1e-6)
    assert rows["p_fake"].nunique() > 1
    expected = metrics.score(rows["label"], rows["p_fake"])
    assert {k: result["image"][k] for k in expected} == pytest.approx(expected)
    assert "| image | 12 | 1 |" in proc.stdout


def test_a_labels_csv_and_folders_without_labelled_images(package, faces, tmp_path):
    """A CSV path,label (relative paths, 0/1 or real/fake) scores its images as the folder does; a folder with no
    labelled image, or a CSV with a bad label: one line naming it, a non-zero exit, no traceback."""
    chosen = [("real/004_1.jpg", "real"), ("fake/004_982_2.jpg", "1"), ("real/519_3.jpg", "0"),
              ("fake/519_515_1.jpg", "fake")]
    csv = faces / "labels.csv"
    csv.write_text("path,label\n" + "".join(f"{p},{label}\n" for p, label in chosen))
    try:
        assert labelled_images(csv)["label"].tolist() == [1, 1, 0, 0]
        by_csv = evaluate_images([str(package)], csv, tmp_path / "csv", device="cpu")
        by_folder = pd.read_parquet(evaluate_images([str(package)], faces, tmp_path / "dir", device="cpu")["out"]
                                    + "/predictions.parquet").set_index("path")
    finally:
        csv.unlink()
    rows = pd.read_parquet(Path(by_csv["out"]) / "predictions.parquet").set_index("path")
    assert by_csv["image"]["images"] == 4 and (by_csv["image"]["real"], by_csv["image"]["fake"]) == (2, 2)
    assert rows["p_fake"].to_numpy() == pytest.approx(by_folder.loc[rows.index, "p_fake"].to_numpy())
    empty = tmp_path / "empty"
    for sub in ("real", "fake"):
        (empty / sub).mkdir(parents=True)
    (empty / "stray.jpg").write_bytes(b"")
    bad = tmp_path / "bad.csv"
    bad.write_text("path,label\na.jpg,maybe\n")
    for source, said in ((empty, "no labelled images"), (bad, "label 'maybe' on line 2 is not 0, 1, real or fake")):
        got = _invoke(evaluate_main, "--checkpoint", package, "--images", source, "--device", "cpu")
        assert got.exit_code == 1 and got.output.count("\n") == 1, got.output
        assert f"--images {source}: " in got.output and said in got.output, got.output
    with pytest.raises(ImagesError, match="neither a folder nor a .csv"):
        labelled_images(tmp_path / "missing")


def test_benchmark_prints_published_beside_measured(package, faces, tmp_path):
    """A test set named FF++-c23 (images) is matched to the entry's FF++ c23 frame AUC: the measured image AUC
    beside it with the difference, marked as not re-verified; the figures of test sets not benchmarked are listed
    with the names that would match them; benchmark.json and benchmark.html carry the same."""
    out = tmp_path / "bench"
    proc = _invoke(benchmark_main, "--checkpoint", f"xcep={package}", "--test", f"FF++-c23={faces}", "--out", out,
                   "--device", "cpu")
    assert proc.exit_code == 0, proc.output
    bench = json.loads((out / "benchmark.json").read_text())
    (det,) = bench["detectors"]
    measured = det["tests"]["FF++-c23"]["frame_auc"]
    cell = json.loads((out / "cells" / "xcep" / "FF++-c23" / "metrics.json").read_text())
    assert measured == cell["image"]["roc_auc"] and det["tests"]["FF++-c23"]["video_auc"] is None
    assert bench["tests"] == {"FF++-c23": {"images": str(faces)}} and det["entry"] == NAME
    figures = {f.test_set: f for f in entry(NAME).figures}
    rows = {r["test_set"]: r for r in det["published"]}
    assert set(rows) == set(figures)
    ffpp = rows["FF++ c23"]
    assert (ffpp["test"], ffpp["metric"], ffpp["measured_metric"]) == ("FF++-c23", "frame AUC", "image AUC")
    assert ffpp["difference"] == pytest.approx(measured - figures["FF++ c23"].value)
    assert ffpp["notes"] == [NOT_VERIFIED]
    assert rows["DFDC"]["test"] is None and rows["DFDC"]["difference"] is None
    assert "not benchmarked: name a test set dfdc-test or DFDC" in rows["DFDC"]["notes"]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("| xcep | FF++ c23 (as FF++-c23)"))
    assert (f"| frame AUC | {figures['FF++ c23'].value:.4f} | image AUC | {measured:.4f} | "
            f"{measured - figures['FF++ c23'].value:+.4f} | {NOT_VERIFIED} |") in line
    assert "| xcep | FF++-c23 image AUC |" not in proc.stdout and "| detector | FF++-c23 image AUC |" in proc.stdout
    assert proc.stdout.count("| xcep |") == 1 + len(figures)
    assert (out / "benchmark.md").read_text() in proc.stdout
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.unescape((out / "benchmark.html").read_text())))
    assert "Published versus measured" in text and f"{measured - figures['FF++ c23'].value:+.4f}" in text
    assert "as reported, not re-verified" in text


def test_unlike_metrics_are_shown_not_compared():
    """SBI reports video AUCs (re-verified): on a sharded test set the video AUC is compared; on face images the
    image AUC is shown but marked as another metric, with no difference; a frame AUC on images is compared."""
    sbi = {f["test_set"]: f for f in entry_dict(entry("sbi-c23"))["reported"]}
    cdf = sbi["Celeb-DF-v2"]
    cell = {"frame_auc": 0.7, "video_auc": 0.9, "frame_log_loss": 0.5, "video_log_loss": 0.4}
    assert matching_test(cdf, ["ffpp", "CELEBDF-V2-TEST"]) == "CELEBDF-V2-TEST"
    assert matching_test(cdf, ["celebdf"]) is None and matching_test(sbi["DFDC"], ["DFDC-preview"]) is None
    on_videos = compare(cdf, "celeb-df-v2", cell, images=False)
    assert on_videos["measured_metric"] == "video AUC" and on_videos["difference"] == pytest.approx(0.9 - cdf["value"])
    assert on_videos["notes"] == []
    on_images = compare(cdf, "celeb-df-v2", cell, images=True)
    assert (on_images["measured"], on_images["measured_metric"], on_images["difference"]) == (0.7, "image AUC", None)
    assert on_images["notes"][0].startswith("metric differs: reported video AUC, measured image AUC")
    xception = entry_dict(entry(NAME))["reported"][0]
    frame_on_images = compare(xception, "x", cell, images=True)
    assert frame_on_images["difference"] == pytest.approx(0.7 - xception["value"])
    assert compare(xception, "x", {**cell, "frame_auc": float("nan")}, images=False)["difference"] is None
    winner = entry_dict(entry("dfdc-winner"))["reported"][0]
    assert compare(winner, "x", cell, images=False)["measured_metric"] == "video log loss"


def test_image_test_sets_from_the_command_line_and_a_toml(faces, tmp_path):
    """NAME=DIR with real/ and fake/ (or NAME=FILE.csv) is an image test set; a TOML's [[test]] images = ..."""
    assert parse_test(f"x={faces}").images == str(faces)
    assert parse_test(f"x={faces / 'real'}").images == ""  # no real/ or fake/ below: shards
    with pytest.raises(BenchmarkError, match="test set name"):
        parse_test(f"FF++ c23={faces}")
    toml = tmp_path / "bench.toml"
    toml.write_text(f'[[test]]\nname = "Celeb-DF-v2"\nimages = "{faces}"\n')
    (test,) = read_config(toml)["tests"]
    assert (test.name, test.images, test.describe()) == ("Celeb-DF-v2", str(faces), {"images": str(faces)})
    got = CliRunner().invoke(benchmark_main, ["--help"])
    assert "NAME=IMAGES" in got.output and "as reported, not re-verified" in " ".join(got.output.split())


def test_only_zoo_packages_get_the_published_table(package, tmp_path):
    """A checkpoint that is no zoo package has no published figures (and the markdown no such table); an entry
    that reports none (GenD) says so in one line with its note."""
    plain = tmp_path / "model.pt"
    plain.write_bytes(b"")
    assert reported_of(plain) is None and reported_of(tmp_path / "missing.pt") is None
    assert reported_of(package)["entry"] == NAME
    gend = entry_dict(entry("gend-clip-l14"))
    bench = {"detectors": [{"name": "mine", "tests": {}},
                           {"name": "gend", "published": [], "published_note": gend["reported_note"]}]}
    text = published_markdown(bench)
    assert text == ("\nPublished versus measured (difference = measured - reported)\n\n"
                    f"gend: its entry reports no figures ({gend['reported_note']})\n")
    assert published_markdown({"detectors": [{"name": "mine", "tests": {}}]}) == ""
