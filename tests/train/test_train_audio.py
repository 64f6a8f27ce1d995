"""Issue 18 items 3 and 5: bispectral features, the audio detector on real and resynthesised DFDC speech."""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from demodata.audio import griffin_lim, make
from helpers.commands import pipeline_argv, run_module
from helpers.sound import dfdc_clips
from train.audio.features import AudioFeatures, bicoherence, window_features, windows
from train.audio.fuse import NO_SOUND, fuse, fused_scores
from train.audio.classifier import AudioCheckpointError, load

RATE = 16000


def test_bicoherence_sees_quadratic_phase_coupling():
    """Three tones where the third's phase is the sum of the first two (coupled) against free phases: the
    coupled signal's bicoherence at (f1, f2) is near 1, the uncoupled one's near 0 (the method's premise)."""
    rng = np.random.default_rng(0)
    n, seg = 256, 256
    t = np.arange(n * 64) / RATE
    f1, f2 = 20 * RATE / seg, 31 * RATE / seg  # on FFT bins 20 and 31
    def signal(coupled: bool):
        out = []
        for s in range(64):  # a fresh random phase per segment, so only coupling survives the average
            a, b = rng.uniform(0, 2 * np.pi, 2)
            c = a + b if coupled else rng.uniform(0, 2 * np.pi)
            ts = t[s * n:(s + 1) * n]
            out.append(np.cos(2 * np.pi * f1 * ts + a) + np.cos(2 * np.pi * f2 * ts + b)
                       + np.cos(2 * np.pi * (f1 + f2) * ts + c))
        return np.concatenate(out) + 0.01 * rng.standard_normal(n * 64)
    coupled = np.abs(bicoherence(signal(True), seg, 64))
    free = np.abs(bicoherence(signal(False), seg, 64))
    f = np.arange(64)
    i1, i2 = np.meshgrid(f, f, indexing="ij")
    k = np.flatnonzero(((i1 == 20) & (i2 == 31))[i1 + i2 < seg // 2])[0]  # (20, 31) in bicoherence's order
    assert coupled[k] > 0.9 and free[k] < 0.4


def test_windows_skip_silence_and_features_are_finite():
    spec = AudioFeatures()
    x = np.concatenate([np.zeros(RATE * 3), 0.1 * np.random.default_rng(1).standard_normal(RATE * 3)])
    got = windows(x.astype(np.float32), RATE, spec)
    assert [s for s, _ in got] == [2.0, 3.0, 4.0]  # the windows that reach into the noise
    feats = window_features(got[0][1], RATE, spec)
    assert feats.shape == (len(spec.names),) and np.isfinite(feats).all()


def test_griffin_lim_keeps_the_spectrogram_and_changes_the_phases():
    rng = np.random.default_rng(0)
    t = np.arange(RATE) / RATE
    x = np.sin(2 * np.pi * 200 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(RATE)
    y = griffin_lim(x, 16, rng)
    assert abs(np.sqrt(np.mean(y ** 2)) - np.sqrt(np.mean(x ** 2))) < 1e-6
    assert abs(np.corrcoef(x, y)[0, 1]) < 0.9  # not the same waveform


@pytest.fixture(scope="module")
def audio_demo(tmp_path_factory):
    clips = dfdc_clips()
    if not clips:
        pytest.skip("no real DFDC sample here")
    root = tmp_path_factory.mktemp("audio-demo")
    make(root / "videos", clips[:2], seconds=2.5, iterations=16, seed=0)
    run_module("pipeline.run", *pipeline_argv(root / "videos", root, "--size", "64x48"))
    return root


@pytest.fixture(scope="module")
def audio_run(audio_demo):
    run = audio_demo / "run"
    proc = run_module("train.run", "--input", "audio", "--fake-audio", "all", "--shards", audio_demo / "shards",
                      "--manifests", audio_demo / "manifests", "--out", run)
    assert "held-out clip-level AUC" in proc.stderr
    return run


def test_train_audio_run_folder_and_checkpoint(audio_run):
    run = audio_run
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val_videos"] > 0 and metrics["train_windows"] > 0
    models = {c["model"]: c for c in metrics["comparison"]}
    assert {"logistic, bispectral only", "mlp-64, log-mel only"} <= set(models)
    # the fakes keep the real speech's spectrogram: the bispectral features tell them apart far better
    assert models["logistic, bispectral only"]["video_auc"] > 0.7
    for name in ("report.html", "top_windows.png", "bottom_windows.png", "val_windows.csv", "history.csv"):
        assert (run / name).is_file(), name
    model = load(run)
    assert model.spec == AudioFeatures() and len(model.columns) == len(model.spec.names)


def test_explain_an_audio_run_scores_and_draws_its_windows_again(audio_demo, audio_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(audio_run, run)
    for name in ("top_windows.png", "bottom_windows.png", "val_windows.csv"):
        (run / name).unlink()
    refused = run_module("train.explain", "--run", run, check=False)
    assert refused.returncode == 2 and "audio run" in refused.stderr and "Traceback" not in refused.stderr
    proc = run_module("train.explain", "--run", run, "--shards", audio_demo / "shards", "--manifests",
                      audio_demo / "manifests")
    assert "audio: video AUC" in proc.stdout
    for name in ("top_windows.png", "bottom_windows.png", "val_windows.csv", "report.html"):
        assert (run / name).is_file(), name
    before = json.loads((audio_run / "metrics.json").read_text())["val"]
    after = json.loads((run / "metrics.json").read_text())["val"]
    assert after["video_auc"] == pytest.approx(before["video_auc"])
    assert after["roc_auc"] == pytest.approx(before["roc_auc"])
    top = json.loads((run / "metrics.json").read_text())["explain"]["top_windows.png"]
    assert top and top[0]["p_fake"] >= top[-1]["p_fake"]


def test_fake_audio_manipulated_needs_changed_sound(audio_demo, tmp_path):
    """The demo's fakes keep their original's spectrogram: audio_diff finds them unchanged, so --fake-audio
    manipulated leaves no fake sound to learn from, and says so."""
    proc = run_module("train.run", "--input", "audio", "--shards", audio_demo / "shards", "--manifests",
                      audio_demo / "manifests", "--out", tmp_path / "run", check=False)
    assert proc.returncode != 0 and "needs real and fake sound" in proc.stderr


def test_an_unwritable_run_folder_is_refused_before_training(audio_demo, tmp_path):
    """Issue 28 item 2: the sound trainer used to train, then fail with a traceback writing its run folder."""
    import train.run
    from click.testing import CliRunner

    blocker = tmp_path / "file"
    blocker.write_text("a file where the run folder's parent should be\n")
    result = CliRunner().invoke(train.run.main, ["--input", "audio", "--fake-audio", "all", "--shards",
                                                 str(audio_demo / "shards"), "--out", str(blocker / "run")])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"Error: --out {blocker / 'run'}: cannot write there: {blocker} is a file" in result.output


def test_not_an_audio_checkpoint(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"nope")
    with pytest.raises(AudioCheckpointError, match="x.pt"):
        load(bad)


def test_fusion_rule_a_fake_picture_or_a_fake_voice_makes_a_fake_video():
    assert fuse(0.9, 0.1) == pytest.approx(0.91) and fuse(0.1, 0.9) == pytest.approx(0.91)
    assert fuse(0.5, 0.5) == pytest.approx(0.75) and fuse(0.5, 0.5, "max") == pytest.approx(0.5)
    assert fuse(0.0, 0.0) == 0.0 and fuse(0.3, float("nan")) == pytest.approx(0.3)  # no sound: the picture
    with pytest.raises(ValueError, match="noisy-or"):
        fuse(0.1, 0.2, "mean")
    import pandas as pd
    scores = pd.DataFrame({"filename": ["a.mp4", "b.mp4", "c.mp4"], "label": [0.2, 0.5, 0.1]})
    sound = pd.DataFrame({"filename": ["a.mp4", "b.mp4", "c.mp4"], "sound": [0.5, 0.9, np.nan],
                          "note": [None, None, NO_SOUND]})
    out = fused_scores(scores, sound, failed={"b.mp4"}).set_index("filename")
    assert out.loc["a.mp4", "label"] == pytest.approx(0.6) and out.loc["c.mp4", "label"] == pytest.approx(0.1)
    assert out.loc["b.mp4", "label"] == 0.5  # the picture failed: the failed score stays
    assert out.loc["c.mp4", "note"] == NO_SOUND and pd.isna(out.loc["a.mp4", "note"])


def test_predict_fuses_picture_and_sound(audio_demo, audio_run, tiny_run, tmp_path):
    import pandas as pd

    from helpers.sound import av_clip

    part = audio_demo / "videos" / "dfdc_train_part_0"
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("realr0s00.mp4", "faker0s00.mp4"):
        (videos / name).symlink_to(part / name)
    av_clip(videos / "mute.mp4", None, 2.0)
    out, frames_out = tmp_path / "sub.csv", tmp_path / "frames.csv"
    run_module("train.predict", videos, "--checkpoint", tiny_run / "checkpoints" / "best.pt", "--audio-checkpoint",
               audio_run, "--out", out, "--frames-out", frames_out, "--device", "cpu", "--workers", "0", "-q")
    sub = pd.read_csv(out)
    assert list(sub.columns) == ["filename", "label"] and len(sub) == 3
    verdicts = pd.read_csv(tmp_path / "sub.verdicts.csv").set_index("filename")
    mute = verdicts.loc["mute.mp4"]
    assert mute["note"] == NO_SOUND and mute["label"] == pytest.approx(mute["picture"]) and np.isnan(mute["sound"])
    for name in ("realr0s00.mp4", "faker0s00.mp4"):
        v = verdicts.loc[name]
        assert v["label"] == pytest.approx(1 - (1 - v["picture"]) * (1 - v["sound"]), abs=1e-6)  # 6 decimals
    windows = pd.read_csv(frames_out)
    windows = windows[windows["audio_p_fake"].notna()]
    assert set(windows["filename"]) == {"realr0s00.mp4", "faker0s00.mp4"}
    assert windows.groupby("filename")["audio_p_fake"].mean().to_dict() == pytest.approx(
        verdicts.loc[["realr0s00.mp4", "faker0s00.mp4"], "sound"].to_dict())


def test_evaluate_fuses_the_shards_sound(audio_demo, audio_run, tiny_run, tmp_path):
    """train.evaluate --audio-checkpoint on the demo's val split: the picture of the image checkpoint, the sound of
    the audio shards, the metrics of each alone and fused, the fused score by the stated rule."""
    import pandas as pd

    from train.score import metrics

    out = tmp_path / "eval"
    proc = run_module("train.evaluate", "--checkpoint", tiny_run / "checkpoints" / "best.pt", "--shards",
                      audio_demo / "shards", "--split", "val", "--audio-checkpoint", audio_run, "--out", out,
                      "--device", "cpu", "--workers", "0")
    assert "fused video (noisy-or)" in proc.stdout and "sound video" in proc.stdout
    result = json.loads((out / "metrics.json").read_text())
    audio = result["audio"]
    videos = pd.read_parquet(out / "video_predictions.parquet")
    val = pd.read_parquet(audio_demo / "manifests" / "audio.parquet").query("split == 'val'")
    assert set(videos["video_id"]) == set(val["video_id"]) and audio["without_sound"] == 0
    assert np.allclose(videos["fused"], 1 - (1 - videos["p_fake"]) * (1 - videos["sound"]))
    assert audio["fused"]["roc_auc"] == pytest.approx(metrics.roc_auc(videos["label"], videos["fused"]))
    assert audio["sound"]["videos"] == len(videos) == audio["fused"]["videos"]
    assert result["video"]["roc_auc"] == pytest.approx(metrics.roc_auc(videos["label"], videos["p_fake"]))
    windows = pd.read_parquet(out / "sound_windows.parquet")
    assert windows.groupby("video_id")["audio_p_fake"].mean().to_dict() == pytest.approx(
        videos.set_index("video_id")["sound"].to_dict())
    assert audio["window"]["windows"] == len(windows) and (out / "roc.png").is_file()
    # the sound alone tells these fakes (resynthesised speech under an untouched picture) from the reals
    assert audio["sound"]["roc_auc"] > 0.7


def test_evaluate_a_split_without_sound_scores_the_picture_alone(tiny_dataset, audio_run, tiny_run, tmp_path):
    """The tiny dataset's lavfi clips have no sound: every video is fused as its picture alone, with the note."""
    import pandas as pd

    out = tmp_path / "eval"
    proc = run_module("train.evaluate", "--checkpoint", tiny_run / "checkpoints" / "best.pt", "--shards",
                      tiny_dataset["shards"], "--split", "val", "--audio-checkpoint", audio_run, "--fuse", "max",
                      "--out", out, "--device", "cpu", "--workers", "0")
    videos = pd.read_parquet(out / "video_predictions.parquet")
    assert videos["sound"].isna().all() and (videos["fused"] == videos["p_fake"]).all()
    assert set(videos["note"]) == {NO_SOUND}
    audio = json.loads((out / "metrics.json").read_text())["audio"]
    assert audio["without_sound"] == len(videos) and audio["sound"] == {"videos": 0}
    picture = json.loads((out / "metrics.json").read_text())["video"]
    assert audio["fused"]["log_loss"] == pytest.approx(picture["log_loss"])
    assert f"{len(videos)} without sound (scored on the picture alone)" in proc.stdout


def test_predict_shards_fuses_the_sound_of_the_audio_shards(audio_demo, audio_run, tiny_run, tmp_path):
    """train.predict --shards --audio-checkpoint: the sound read from the audio shards scores exactly as the same
    videos' files do (the pipeline kept their sound losslessly), fused into the submission."""
    import pandas as pd

    from train.audio.sound_of_files import score_sounds

    out, frames_out = tmp_path / "sub.csv", tmp_path / "frames.csv"
    run_module("train.predict", "--shards", audio_demo / "shards", "--split", "val", "--checkpoint",
               tiny_run / "checkpoints" / "best.pt", "--audio-checkpoint", audio_run, "--out", out, "--frames-out",
               frames_out, "--device", "cpu", "-q")
    sub = pd.read_csv(out)
    verdicts = pd.read_csv(tmp_path / "sub.verdicts.csv").set_index("filename")
    val = pd.read_parquet(audio_demo / "manifests" / "audio.parquet").query("split == 'val'")
    assert len(sub) == len(val) == len(verdicts) and verdicts["sound"].notna().all()
    assert np.allclose(verdicts["label"], 1 - (1 - verdicts["picture"]) * (1 - verdicts["sound"]), atol=1e-6)
    names = sorted(verdicts.index)[:2]
    part = audio_demo / "videos" / "dfdc_train_part_0"
    files, _ = score_sounds(load(audio_run), [part / n for n in names], names)
    assert files.set_index("filename")["sound"].to_dict() == pytest.approx(verdicts.loc[names, "sound"].to_dict())
    windows = pd.read_csv(frames_out).dropna(subset=["audio_p_fake"])
    assert set(windows["filename"]) == set(verdicts.index)


def test_predict_shards_without_sound(tiny_dataset, audio_run, tiny_run, tmp_path):
    import pandas as pd

    out = tmp_path / "sub.csv"
    run_module("train.predict", "--shards", tiny_dataset["shards"], "--split", "val", "--checkpoint",
               tiny_run / "checkpoints" / "best.pt", "--audio-checkpoint", audio_run, "--out", out, "--device",
               "cpu", "-q")
    verdicts = pd.read_csv(tmp_path / "sub.verdicts.csv")
    assert set(verdicts["note"]) == {NO_SOUND} and np.allclose(verdicts["label"], verdicts["picture"])


def test_check_judges_the_sound_and_draws_it(audio_demo, audio_run, tiny_run, tmp_path):
    """dfd check --audio-model: the sound's windows scored as predict scores them, the fused P(fake) and the call
    (a fake picture or a fake voice) in the JSON and the line, the sound over time on the page (headless
    Chromium), and a video without sound that says so."""
    import shutil
    from pathlib import Path

    from helpers.sound import av_clip
    from helpers.pages import assert_self_contained, shoot
    from train.audio.sound_of_files import score_sounds
    from train.score.verdict import SOUND_THRESHOLD

    fake = audio_demo / "videos" / "dfdc_train_part_0" / "faker0s00.mp4"
    mute = av_clip(tmp_path / "mute.mp4", None, 2.0)
    model = tiny_run / "checkpoints" / "best.pt"
    proc = run_module("train.check", fake, mute, "--model", model, "--audio-model", audio_run, "--json",
                      "--no-html", "--device", "cpu")
    rows = {Path(r["path"]).name: r for r in map(json.loads, proc.stdout.strip().splitlines())}
    got, silent = rows[fake.name], rows[mute.name]
    files, _ = score_sounds(load(audio_run), [fake], ["f"])
    assert got["sound"]["p_fake"] == pytest.approx(files["sound"].iloc[0])
    assert got["sound"]["p_fake"] == pytest.approx(np.mean([w["p_fake"] for w in got["sound"]["windows"]]))
    assert got["p_fake"] == pytest.approx(1 - (1 - got["p_picture"]) * (1 - got["sound"]["p_fake"]))
    fake_call = got["p_picture"] >= got["threshold"] or got["sound"]["p_fake"] >= SOUND_THRESHOLD
    assert got["verdict"] == ("FAKE" if fake_call else "REAL")
    assert silent["sound"]["p_fake"] is None and silent["sound"]["note"] == NO_SOUND
    assert silent["p_fake"] == pytest.approx(silent["p_picture"]) and silent["sound"]["windows"] == []

    lines = run_module("train.check", fake, mute, "--model", model, "--audio-model", audio_run, "--fuse", "max",
                       "--out", tmp_path / "pages", "--device", "cpu").stdout.strip().splitlines()
    assert " max of picture and sound; picture P(fake) " in lines[0] and "sound P(fake) " in lines[0]
    assert lines[1].endswith(f"; sound: {NO_SOUND} -> {tmp_path / 'pages' / 'mute.html'}")
    page = tmp_path / "pages" / f"{fake.stem}.html"
    text = page.read_text()
    assert_self_contained(text)
    assert "The sound: P(fake) over time" in text and "audio model" in text and 'alt="sound P(fake) over time"' in text
    assert NO_SOUND in (tmp_path / "pages" / "mute.html").read_text()
    if shutil.which("chromium"):
        image = shoot(page, tmp_path, height=3200)[..., :3]
        # each window's band: #8e44ad at alpha 0.35, on white or on a predicted fake segment's shade (#e67e22 at
        # alpha 0.18 on white): a lavender found nowhere else on the page (measured: ~1,900 pixels in the sound
        # plot, none above it among the frames and Grad-CAMs)
        white, window = np.ones(3), np.array([0x8E, 0x44, 0xAD]) / 255
        shade = 0.18 * np.array([0xE6, 0x7E, 0x22]) / 255 + 0.82 * white
        band = sum((np.abs(image - (0.35 * window + 0.65 * under)) < 0.04).all(axis=-1) for under in (white, shade))
        assert band.sum() > 500  # the sound's P(fake) per window was drawn


def test_verdict_with_sound_a_fake_picture_or_a_fake_voice():
    """The call: the picture at its threshold or the sound at SOUND_THRESHOLD; no face but sound: the sound alone."""
    from pathlib import Path

    from train.score.verdict import Item, Sound, Verdict, as_json, line

    crop = np.zeros((4, 4, 3), np.uint8)

    def verdict(picture, sound, fused=None):
        items = [] if picture is None else [Item(0, 0.0, picture, crop)]
        s = Sound("noisy-or", "a", 2.0, 1.0, sound, [0.0, 1.0] if sound is not None else [],
                  [sound, sound] if sound is not None else [], None if sound is not None else NO_SOUND, fused)
        return Verdict(Path("v.mp4"), "frames", {"value": 0.6}, "mean", items, [b""], [0.0], sound=s)

    assert verdict(0.3, 0.4, fuse(0.3, 0.4)).label == "REAL"  # fused 0.58 is under 0.6 and neither part is fake
    assert verdict(0.3, 0.45, fuse(0.3, 0.45)).label == "REAL"  # fused 0.615, but neither part reaches its own
    assert verdict(0.7, 0.1, fuse(0.7, 0.1)).label == "FAKE" and verdict(0.1, 0.6, fuse(0.1, 0.6)).label == "FAKE"
    alone = verdict(None, 0.8, 0.8)
    assert alone.label == "FAKE" and "from the sound alone (no face found" in line(alone, "v.mp4")
    mute = verdict(0.2, None, 0.2)
    assert mute.label == "REAL" and line(mute, "v.mp4").endswith(f"sound: {NO_SOUND}")
    assert verdict(None, None).label == "NO FACE"
    row = as_json(verdict(0.3, 0.55, fuse(0.3, 0.55)), "v.mp4")  # sound 0.55: FAKE
    assert row["p_fake"] == pytest.approx(0.685) and row["p_picture"] == pytest.approx(0.3)
    assert row["sound"]["windows"] == [{"start": 0.0, "p_fake": 0.55}, {"start": 1.0, "p_fake": 0.55}]


@pytest.fixture(scope="module")
def fused_package(audio_demo, audio_run, tmp_path_factory):
    """dfd export of a picture model (a real frames network, untrained: its val split scored at export) with the
    demo's sound run: one package, the sound model in sound/."""
    from helpers.models import untrained_checkpoint

    root = tmp_path_factory.mktemp("fused")
    picture = untrained_checkpoint(root / "frames.pt", input="frames", box=(64, 48))
    out = root / "pkg"
    proc = run_module("train.export", "--checkpoint", picture, "--audio-checkpoint", audio_run, "--out", out,
                      "--shards", audio_demo / "shards", "--manifests", audio_demo / "manifests")
    return picture, out, proc


def test_export_picture_and_sound_with_a_fused_threshold_chosen_on_validation(audio_demo, audio_run, fused_package,
                                                                              tmp_path):
    import pandas as pd

    from train.score import metrics

    picture, pkg, proc = fused_package
    assert "sound/ (sound model); fused (noisy-or) threshold" in proc.stdout
    for folder in (pkg, pkg / "sound"):
        assert {p.name for p in folder.iterdir()} >= {"model.safetensors", "config.json", "README.md"}
    assert not list(pkg.rglob("*.pt"))
    config = json.loads((pkg / "config.json").read_text())
    fusion = config["fusion"]
    assert fusion["rule"] == "noisy-or" and fusion["sound"] == "sound" and fusion["threshold"]["rule"] == "eer"
    # the same choice made again from the two models' own val scores: the picture's by dfd evaluate of the package
    # (which scores its sound too, by its rule), the sound's from its run's val_windows.csv
    out = tmp_path / "eval"
    evaluated = run_module("train.evaluate", "--checkpoint", pkg, "--shards", audio_demo / "shards", "--manifests",
                           audio_demo / "manifests", "--split", "val", "--out", out, "--device", "cpu", "--workers",
                           "0")
    assert "fused video (noisy-or)" in evaluated.stdout and "sound video" in evaluated.stdout
    pictures = pd.read_parquet(out / "video_predictions.parquet")
    sounds = pd.read_csv(audio_run / "val_windows.csv").groupby("video_id", as_index=False)["p_fake"].mean()
    both = pictures.merge(sounds, on="video_id", suffixes=("", "_sound"))
    assert len(both) == fusion["threshold"]["n"] > 0
    fused = 1 - (1 - both["p_fake"]) * (1 - both["p_fake_sound"])
    assert fusion["threshold"]["value"] == pytest.approx(metrics.choose_threshold(both["label"], fused)["value"])
    called = json.loads((out / "metrics.json").read_text())["audio"]["fused_at_threshold"]  # evaluate applies it
    assert called["threshold"] == fusion["threshold"]["value"] and called["rule"] == "noisy-or"
    assert called["balanced_accuracy"] == pytest.approx(metrics.balanced_accuracy(
        pictures["label"], pictures["fused"], fusion["threshold"]["value"]))
    assert f"fused at the package's threshold {fusion['threshold']['value']:.4f}" in evaluated.stdout
    card = (pkg / "README.md").read_text()
    assert "## Picture and sound" in card and "**noisy-or**" in card and "`sound/README.md`" in card
    assert f"P(fake) >= **{fusion['threshold']['value']:.4f}**" in card and "Sound is not judged" not in card
    assert "- `sound/`: the sound model's package" in card
    assert json.loads((pkg / "sound" / "config.json").read_text())["kind"] == "audio"


def test_check_a_fused_package_applies_its_rule_and_threshold(audio_demo, fused_package, tmp_path):
    from pathlib import Path

    _, pkg, _ = fused_package
    part = audio_demo / "videos" / "dfdc_train_part_0"
    videos = [part / "realr0s00.mp4", part / "faker0s00.mp4"]
    proc = run_module("train.check", *videos, "--model", pkg, "--json", "--no-html", "--device", "cpu")
    fused_t = json.loads((pkg / "config.json").read_text())["fusion"]["threshold"]["value"]
    for row in map(json.loads, proc.stdout.strip().splitlines()):
        sound = row["sound"]
        assert sound["p_fake"] is not None and sound["fused_threshold"] == pytest.approx(fused_t)
        assert row["p_fake"] == pytest.approx(1 - (1 - row["p_picture"]) * (1 - sound["p_fake"]))
        assert row["verdict"] == ("FAKE" if row["p_fake"] >= fused_t else "REAL"), Path(row["path"]).name
    refused = run_module("train.check", videos[0], "--model", pkg, "--audio-model", pkg / "sound", check=False)
    assert refused.returncode == 2 and "holds its own sound model" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_export_refuses_sound_runs_that_met_no_picture_video(tiny_dataset, audio_run, tmp_path):
    """A picture model scored on another dataset's val split: no video both scored, said in one line."""
    from helpers.models import untrained_checkpoint

    picture = untrained_checkpoint(tmp_path / "frames.pt", input="frames")
    proc = run_module("train.export", "--checkpoint", picture, "--audio-checkpoint", audio_run, "--out",
                      tmp_path / "pkg", "--shards", tiny_dataset["shards"], "--manifests", tiny_dataset["manifests"],
                      check=False)
    assert proc.returncode != 0 and "no validation video was scored by both models" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "pkg").exists()


def test_benchmark_gets_the_sound_and_fused_columns(audio_demo, audio_run, tiny_run, tmp_path):
    out = tmp_path / "bench"
    proc = run_module("train.benchmark", "--checkpoint", f"tiny={tiny_run / 'checkpoints' / 'best.pt'}", "--test",
                      f"demo@val={audio_demo / 'shards'}", "--audio-checkpoint", audio_run, "--out", out, "--device",
                      "cpu", "--workers", "0")
    cell = json.loads((out / "benchmark.json").read_text())["detectors"][0]["tests"]["demo"]
    audio = json.loads((out / "cells" / "tiny" / "demo" / "metrics.json").read_text())["audio"]
    assert cell["sound_video_auc"] == pytest.approx(audio["sound"]["roc_auc"]) and cell["sound_videos"] > 0
    assert cell["fused_video_ap"] == pytest.approx(audio["fused"]["average_precision"])
    assert "| tiny | demo | sound video |" in proc.stdout and "| tiny | demo | fused video |" in proc.stdout


def test_benchmark_scores_a_fused_packages_own_sound(audio_demo, fused_package, tmp_path):
    """A fused package in dfd benchmark brings its sound model and rule, as dfd evaluate takes it: the sound and
    fused columns appear with no --audio-checkpoint, equal to evaluate's of the same package."""
    _, pkg, _ = fused_package
    out = tmp_path / "bench"
    proc = run_module("train.benchmark", "--checkpoint", f"both={pkg}", "--test", f"demo@val={audio_demo / 'shards'}",
                      "--out", out, "--device", "cpu", "--workers", "0")
    cell = json.loads((out / "benchmark.json").read_text())["detectors"][0]["tests"]["demo"]
    audio = json.loads((out / "cells" / "both" / "demo" / "metrics.json").read_text())["audio"]
    assert audio["fuse"] == "noisy-or" and cell["sound_videos"] > 0
    assert cell["fused_video_auc"] == pytest.approx(audio["fused"]["roc_auc"])
    assert "| both | demo | fused video |" in proc.stdout


def test_a_fused_package_with_a_bad_fusion_section_is_named(tmp_path):
    from train.audio.fused_package import fusion_of
    from train.paths import PackageError

    (tmp_path / "model.safetensors").write_bytes(b"")
    for fusion in ({"rule": "mean", "threshold": {"value": 0.5}}, {"rule": "max", "threshold": {"value": 2}},
                   {"rule": "max"}, "max"):
        (tmp_path / "config.json").write_text(json.dumps({"fusion": fusion}))
        with pytest.raises(PackageError, match="config.json: its fusion section needs a rule"):
            fusion_of(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"fusion": {"rule": "max", "threshold": {"value": 0.3}}}))
    assert fusion_of(tmp_path)["threshold"]["value"] == 0.3
    (tmp_path / "config.json").write_text(json.dumps({"threshold": {"value": 0.3}}))
    assert fusion_of(tmp_path) is None  # a picture model's package alone
