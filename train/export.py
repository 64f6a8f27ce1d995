"""`dfd export` (`python -m train.export`): a checkpoint -> a model package in the Hugging Face Hub's layout
(model.safetensors, config.json, README.md: the model card), with a decision threshold chosen on the validation
split. The work is train.score.card; the package format is train.score.package."""
from __future__ import annotations

import functools
from pathlib import Path

import click

from dfd.cli import command, device_option, reported, setup_logging, threads_option, verbose_option
from train.audio.audio_package import export_audio
from train.audio.classifier import is_audio
from train.audio.fuse import FUSE_RULES
from train.audio.fused_package import SOUND_FOLDER, export_fused
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
@click.option("--audio-checkpoint", type=click.Path(exists=True, path_type=Path),
              help="A sound detector (its run folder or audio.pt) packaged with the picture model: one package, the "
                   "sound model in OUT/sound, fused by --fuse at a threshold chosen on the fused validation scores "
                   "of the videos both scored (the EER point, or --threshold-at-fpr), as config.json and the card "
                   "say. `dfd check --model OUT` then judges picture and sound by that rule.")
@click.option("--fuse", "fuse_rule", type=click.Choice(FUSE_RULES), default="noisy-or", show_default=True,
              help="With --audio-checkpoint: noisy-or 1-(1-p_picture)(1-p_sound), or max.")
@device_option("cpu")
@threads_option
@verbose_option
def main(checkpoint, out, replace, at_fpr, manual, shards, manifests, audio_checkpoint, fuse_rule, device,
         verbose) -> None:
    """Package a trained model to be shared without pickle: the weights as safetensors, everything prediction needs
    in config.json, and a model card (data, counts, split, recipe, validation metrics, threshold, benchmark, intended
    use and limits) as README.md. Every command that takes --checkpoint (and `dfd check --model`) takes the folder."""
    setup_logging(verbose)
    if manual is not None and at_fpr is not None:
        raise click.UsageError("give --threshold or --threshold-at-fpr, not both")
    if audio_checkpoint is not None and (is_audio(checkpoint) or not is_audio(audio_checkpoint) or manual is not None):
        raise click.UsageError("--audio-checkpoint takes a sound detector to package with a picture model's "
                               "--checkpoint, whose fused threshold is chosen on validation (not --threshold)")
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
        write = functools.partial(export, path, out, frames, at_fpr, shards, manifests, device, manual, replace, clips)
        package = (export_fused(write, path, config, audio_checkpoint, out, fuse_rule, at_fpr, shards, manifests,
                                device) if audio_checkpoint else write())
    threshold = package.get("fusion", package)["threshold"]
    click.echo(f"{out}: {WEIGHTS}, {CONFIG}, {CARD}" + (f", {SOUND_FOLDER}/ (sound model); fused ({fuse_rule}) "
                                                         if audio_checkpoint else "; ")
               + f"threshold {threshold['value']:.4f} ({describe(threshold)})")


if __name__ == "__main__":
    main()
