"""`dfd explain` (`python -m train.explain`): val predictions, video-level metrics, top losses, Grad-CAM, the pointing
game and report.html of a run (train.report.explanation)."""
from __future__ import annotations

from pathlib import Path

import click

from dfd.cli import command, reported, setup_logging, threads_option, verbose_option
from train.report.explanation import DEFAULT_K, run_explain
from train.paths import RunLayout


@command()
@click.option("--run", "run_dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Run folder (runs/NAME) with checkpoints/.")
@click.option("--checkpoint", default="best", help="best | last | PATH to a checkpoint of this trainer | a model package folder (dfd export).")
@click.option("--boxes", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Manipulated regions of the fakes (the demo's videos/boxes.json): runs the pointing game "
              "(not for a clip model: its report says why).")
@click.option("--k", type=click.IntRange(min=1), default=DEFAULT_K, help="Frames in the top-loss and best grids (clips: at most 6 per strip figure).")
@click.option("--shards", help="Shards folder, URL prefix or {name} template [default: the run's config].")
@click.option("--manifests", type=click.Path(path_type=Path), help="Manifests folder [default: the run's config].")
@click.option("--device", default="cpu", help="cpu, cuda, cuda:N.")
@click.option("--blend-pointing/--no-blend-pointing", "blend", default=None, show_default="on for runs trained "
              "with --synthetic-fakes", help="--input faces: the pointing game against the blend masks of "
              "self-blended val real faces (pointing_blend.png).")
@threads_option
@verbose_option
def main(run_dir, checkpoint, boxes, k, shards, manifests, device, blend, verbose) -> None:
    """Predictions on the val split, video-level metrics, top losses, Grad-CAM and report.html of a run (of a clip
    model: per val clip, with Grad-CAM per frame of a clip: where and when)."""
    setup_logging(verbose)
    layout = RunLayout(run_dir)
    if layout.checkpoint("audio").is_file() and not layout.checkpoint("best").is_file():
        return _explain_audio(run_dir, shards, manifests, k)
    with reported():
        metrics = run_explain(run_dir, shards, manifests, device, checkpoint=checkpoint, boxes=boxes, k=k,
                              blend=blend)
    v, unit = metrics["video"], metrics.get("unit", "frame")
    click.echo(f"video log loss {v['log_loss']:.4f}  AUC {v['roc_auc']:.4f}  accuracy {v['accuracy']:.4f}  "
               f"({v['videos']} videos, {metrics['frame']['frames']} {unit}s)")
    if metrics["pointing"]:
        p = metrics["pointing"]
        click.echo(f"pointing game {p['pointing_game']:.3f} over {p['frames']} val fakes "
                   f"(random point {p['random_point']:.3f})")
    if metrics.get("pointing_blend"):
        p = metrics["pointing_blend"]
        click.echo(f"pointing game against the blend mask {p['pointing_game']:.3f} over {p['faces']} self-blended "
                   f"val real faces (random point {p['random_point']:.3f})")
    click.echo(f"report: {run_dir / 'report.html'}")


def _explain_audio(run_dir: Path, shards: str | None, manifests: Path | None, k: int) -> None:
    """An audio run (train.run --input audio): its val windows scored again, the top and bottom ones drawn."""
    from train.audio.fit_audio import explain_run

    if not shards or not manifests:
        raise click.UsageError(f"{run_dir} is an audio run: pass --shards and --manifests (the sound's shards)")
    with reported():
        metrics = explain_run(run_dir, shards, manifests, k=min(k, 8))
    v = metrics["val"]
    click.echo(f"audio: video AUC {v['video_auc']:.4f}, window AUC {v['roc_auc']:.4f}; "
               f"report: {run_dir / 'report.html'}")


if __name__ == "__main__":
    main()
