"""`dfd export` (`python -m train.export`): a checkpoint -> a model package in the Hugging Face Hub's layout
(model.safetensors, config.json, README.md: the model card), with a decision threshold chosen on the validation
split. The work is train.score.card; the package format is train.score.package."""
from __future__ import annotations

from pathlib import Path

import click

from dfd.cli import command, device_option, reported, setup_logging, threads_option, verbose_option
from train.audio.audio_package import export_audio
from train.audio.classifier import is_audio
from train.checkpoint import load_checkpoint
from train.config import CLIP_INPUTS
from train.score.card import export
from train.paths import CARD, CONFIG, WEIGHTS, resolve as resolve_checkpoint
from train.score.threshold import describe
from train.score.videos import clip_spec, frame_settings


@command()
@click.option("--checkpoint", required=True, help="A checkpoint (.pt) or a run folder (its best.pt); a sound "
                                                  "detector's run folder (train.run --input audio) or its audio.pt.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The package folder to write (made if missing). Never a run folder; a folder holding another "
                   "model's package only with --replace.")
@click.option("--replace", is_flag=True, help="Replace the package files already in --out (another model's).")
@click.option("--threshold-at-fpr", "at_fpr", type=click.FloatRange(0.0, 1.0),
              help="Choose the threshold as the lowest whose validation false-positive rate is at most this "
                   "(e.g. 0.01) [default: the EER point].")
@click.option("--threshold", "manual", type=click.FloatRange(0.0, 1.0),
              help="Set the threshold by hand (recorded in the card as chosen by hand), e.g. when the validation "
                   "split holds one class only.")
@click.option("--shards", help="The val shards, when the run folder has no val scores of this checkpoint "
                               "[default: the training config's].")
@click.option("--manifests", type=click.Path(file_okay=False, path_type=Path),
              help="Folder with dataset.json [default: the training config's].")
@device_option("cpu")
@threads_option
@verbose_option
def main(checkpoint, out, replace, at_fpr, manual, shards, manifests, device, verbose) -> None:
    """Package a trained model to be shared without pickle: the weights as safetensors, everything prediction needs
    in config.json, and a model card (data, counts, split, recipe, validation metrics, threshold, benchmark, intended
    use and limits) as README.md. Every command that takes --checkpoint (and `dfd check --model`) takes the folder."""
    setup_logging(verbose)
    if manual is not None and at_fpr is not None:
        raise click.UsageError("give --threshold or --threshold-at-fpr, not both")
    if is_audio(checkpoint):
        if manual is not None:
            raise click.UsageError("--threshold is an image model's; a sound detector's is chosen on its validation "
                                   "windows (EER, or --threshold-at-fpr)")
        with reported():
            package = export_audio(checkpoint, out, at_fpr)
        click.echo(f"{out}: {WEIGHTS}, {CONFIG}, {CARD} (sound detector); threshold "
                   f"{package['threshold']['value']:.4f} ({describe(package['threshold'])})")
        return
    with reported():
        path = resolve_checkpoint(checkpoint)
        _, config = load_checkpoint(path)
        frames, _ = frame_settings(path, config, manifests)
        clips = clip_spec(path, config, manifests)[0] if config.input in CLIP_INPUTS else None
        package = export(path, out, frames, at_fpr, shards, manifests, device, manual, replace, clips)
    threshold = package["threshold"]
    click.echo(f"{out}: {WEIGHTS}, {CONFIG}, {CARD}; threshold {threshold['value']:.4f} ({describe(threshold)})")


if __name__ == "__main__":
    main()
