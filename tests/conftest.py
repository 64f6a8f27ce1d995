"""Shared fixtures and hooks: real H.264 clips made with ffmpeg's lavfi sources, and tiny real shards made by the
pipeline. The plain helpers they use live in tests/helpers (clips, commands, ffmpeg_calls, manifests, images, paths)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from pipeline.ffmpeg.locate import find_ffmpeg  # noqa: E402

from helpers.clips import make_dfdc_tree, write_tiny_boxes  # noqa: E402
from helpers.commands import run_module, run_pipeline  # noqa: E402
from helpers.face_clips import SAMPLE, make_face_clip_dataset, train_face_clips  # noqa: E402


# a test that needs a trained run is an end-to-end test
SLOW_FIXTURES = {"tiny_run", "dev_run", "clip_run", "face_clip_run"}

# `heavy`: end-to-end tests of 18 s or more each on CI's two cores (measured 2026-12-05, --durations) whose paths
# a cheaper test in CI also walks. `make test` (CI, under 15 minutes) leaves them out; `make test-all` runs them
# and is run before an issue is called resolved. The exact conversions of every zoo entry stay in CI.
HEAVY = {
    "tests/train/zoo/test_zoo_scoring.py::test_predict_images_scores_each_face_image",
    "tests/train/test_train_init.py::test_fine_tune_a_zoo_package_on_face_shards",
    "tests/e2e/test_faces_end_to_end.py::test_faces_stage_counts_the_faceless_video_and_training_skips_it",
    "tests/e2e/test_faces_end_to_end.py::test_predict_scores_every_face_and_gives_faceless_videos_half",
    "tests/e2e/test_faces_end_to_end.py::test_export_then_check_with_the_package_gives_predicts_scores",
    "tests/pipeline/stages/test_faces_empty_shard.py::test_train_with_two_workers_and_explain_take_it",
    "tests/train/test_clip_models.py::test_grad_cam_of_a_clip_model_peaks_on_the_frame_that_holds_the_cue[temporal:test_resnet]",
    "tests/train/test_package.py::test_check_and_evaluate_take_the_package",
    "tests/pipeline/stages/test_face_tubes.py::test_resume_keeps_and_redoes_face_clips",
    "tests/pipeline/stages/test_faces_stage.py::test_batched_gpu_path_on_cpu_matches",
    "tests/pipeline/stages/test_faces_stage.py::test_kill_parent_only_workers_die_and_rerun_at_once",
    "tests/pipeline/stages/test_faces_stage.py::test_kill_then_rerun_equals_clean_run",
    "tests/pipeline/stages/test_faces_stage.py::test_missing_frame_shard_fails_that_shard_only",
    "tests/pipeline/stages/test_faces_stage.py::test_parts_then_merge",
    "tests/pipeline/stages/test_faces_stage.py::test_rerun_is_fast_and_resplit_follows_without_detecting",
    "tests/pipeline/stages/test_faces_units.py::test_detect_runs_in_bounded_batches_with_the_same_faces",
    "tests/pipeline/test_scaleout.py::test_torchrun_two_gloo_processes_one_run_folder_whole_val_set",
    "tests/pipeline/test_scaleout.py::test_training_reads_shards_through_urls[pipe:cat {dir}/{{name}}]",
    "tests/train/test_backbone_input.py::test_clip_run_records_exports_and_fine_tunes_with_clip_normalisation",
    "tests/train/test_check.py::test_json_lines_carry_the_same_verdicts",
    "tests/train/test_clip_scoring.py::test_a_clips_run_checkpoint_loads_and_gives_its_recorded_val_loss",
    "tests/train/test_device_augment.py::test_gpu_benchmark_runs_end_to_end_on_the_cpu",
    "tests/train/test_device_augment.py::test_training_with_device_augmentations",
    "tests/train/test_evaluate.py::test_predict_takes_an_ensemble_with_tta_and_a_rule",
    "tests/train/test_explain.py::test_trained_model_points_inside_the_box_far_more_than_chance",
    "tests/train/test_lipsync.py::test_check_reports_sync_and_plots_it",
    "tests/train/test_package.py::test_a_checkpoint_in_its_run_gets_the_run_threshold_and_a_lone_one_gets_half",
    "tests/train/test_package.py::test_threshold_at_a_target_fpr_and_from_the_val_shards",
    "tests/train/test_predict.py::test_predict_matches_validation_on_the_val_videos",
    "tests/train/test_predict.py::test_real_and_generated_clips_with_a_broken_one",
    "tests/train/test_predict.py::test_repeated_file_names_give_one_row_per_video",
    "tests/train/test_predict.py::test_sharded_test_split",
    "tests/train/test_predict.py::test_sharded_val_split_matches_explain",
    "tests/train/test_predict_faces_memory.py::test_same_faces_and_predictions_as_decoding_every_frame",
    "tests/train/test_recipes.py::test_the_b7_trains_a_step_on_the_cpu",
    "tests/train/test_recipes.py::test_the_winners_recipe_dev_run_reports_its_source",
    "tests/train/test_sync_column.py::test_benchmark_gets_the_sync_column",
    "tests/train/test_syncnet.py::test_syncnet_measures_a_real_clip",
    "tests/train/test_sync_column.py::test_evaluate_reports_lip_sync_beside_the_picture",
    "tests/train/test_synthetic_stream.py::test_dev_run_real_only_sbi_and_the_blend_pointing_game",
    "tests/train/test_timm_backbones.py::test_dev_run_at_64px_on_cpu[convnext_tiny]",
    "tests/train/test_timm_backbones.py::test_dev_run_at_64px_on_cpu[xception41]",
    "tests/train/test_train_audio.py::test_benchmark_gets_the_sound_and_fused_columns",
    "tests/train/test_train_audio.py::test_check_a_fused_package_applies_its_rule_and_threshold",
    "tests/train/test_train_audio.py::test_check_judges_the_sound_and_draws_it",
    "tests/train/test_train_audio.py::test_evaluate_fuses_the_shards_sound",
    "tests/train/test_train_audio.py::test_explain_an_audio_run_scores_and_draws_its_windows_again",
    "tests/train/test_train_audio.py::test_fake_audio_manipulated_needs_changed_sound",
    "tests/train/test_train_audio.py::test_predict_shards_fuses_the_sound_of_the_audio_shards",
    "tests/train/test_train_audio.py::test_predict_shards_without_sound",
    "tests/train/test_train_run.py::test_resume_equals_an_uninterrupted_run",
    "tests/train/zoo/test_zoo_bad_input.py::test_a_file_without_weights_is_refused",
}


def pytest_collection_modifyitems(config, items):
    """`slow` for every test that uses a trained run (`make test-fast` skips them); `heavy` for HEAVY (`make test`
    skips them, `make test-all` runs them)."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if item.nodeid in HEAVY:
            item.add_marker(pytest.mark.heavy)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    return find_ffmpeg()


@pytest.fixture(scope="session")
def clip_dataset(tmp_path_factory) -> dict:
    """4 reals + 4 fakes, 2 s at 64x48, sharded with clips of 4 frames (`dfd shards --clip-frames 4`)."""
    root = tmp_path_factory.mktemp("clips")
    videos = make_dfdc_tree(root / "videos", n_real=4, fakes_per_real=1, seconds=2.0, size=(64, 48))
    run_pipeline(videos, root / "with", "--clip-frames", "4", "--workers", "1")
    return {"shards": root / "with" / "shards", "manifests": root / "with" / "manifests", "root": root,
            "videos": videos}


@pytest.fixture(scope="session")
def clip_run(clip_dataset, tmp_path_factory) -> Path:
    """A dev run of `dfd train --input clips --recipe demo_clips` (temporal:test_resnet at 32x32): its folder."""
    out = tmp_path_factory.mktemp("cliprun") / "run"
    run_module("train.run", "--shards", clip_dataset["shards"], "--manifests", clip_dataset["manifests"],
               "--out", out, "--recipe", "demo_clips", "--dev-run", "--weights", "none", "--image-size", "32",
               "--batch-size", "4", "--workers", "0", "--device", "cpu", "--no-explain", "--input", "clips",
               "--arch", "temporal:test_resnet")
    return out


@pytest.fixture(scope="session")
def face_clip_dataset(tmp_path_factory) -> dict:
    """Real DFDC faces and a faceless lavfi clip, 2 s at 640x360, clips of 4 frames and their face tubes
    (tests/helpers/face_clips.py); skipped without ../shared/data."""
    if not SAMPLE.is_dir():
        pytest.skip("../shared/data not present")
    return make_face_clip_dataset(tmp_path_factory.mktemp("faceclips"))


@pytest.fixture(scope="session")
def face_clip_run(face_clip_dataset, tmp_path_factory) -> Path:
    """A dev run of `dfd train --input face-clips --recipe demo_clips` (temporal:test_resnet at 32x32): its folder."""
    return train_face_clips(face_clip_dataset, tmp_path_factory.mktemp("faceclip-run") / "run")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> dict:
    """8 reals + 16 fakes, 3 s each at 160x90, through the real pipeline at 128x72: shards and manifests."""
    root = tmp_path_factory.mktemp("tiny")
    videos = make_dfdc_tree(root / "videos", n_real=8, fakes_per_real=2, seconds=3.0)
    run_pipeline(videos, root, "--size", "128x72", "--shard-size", "40KB")
    return {"videos": videos, "shards": root / "shards", "manifests": root / "manifests", "root": root}


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_dataset) -> Path:
    """A --dev-run of the real trainer at 64 px with --boxes (train.run calls run_explain), once a session; used by
    tests/train/test_explain.py and tests/train/test_predict.py."""
    run = tmp_path_factory.mktemp("tiny-run") / "run"
    run.parent.mkdir(exist_ok=True)
    boxes = write_tiny_boxes(tiny_dataset, run.parent / "boxes.json")
    run_module("train.run", "--shards", tiny_dataset["shards"], "--manifests", tiny_dataset["manifests"],
               "--out", run, "--dev-run", "--weights", "none", "--image-size", "64", "--batch-size", "8",
               "--workers", "0", "--device", "cpu", "--boxes", boxes)
    return run


@pytest.fixture(scope="session")
def tiny_shards(tiny_dataset) -> Path:
    """The shards folder of `tiny_dataset` (its manifests are in the sibling `manifests` folder)."""
    return tiny_dataset["shards"]
