"""`dfd COMMAND`: every command of the toolkit under one name, as git, yolo or accelerate group theirs.

Commands are imported only when run (the listing does not load torch); each is also `python -m MODULE`."""
from __future__ import annotations

import importlib

import click

from dfd.cli import CONTEXT

# name -> (module whose `main` is the command, one line for the listing), in the order data flows
COMMANDS = {
    "shards": ("pipeline.run", "Decode videos once into frame shards and a Parquet manifest."),
    "faces": ("pipeline.faces", "Detect, track and crop faces of the frame shards into face shards."),
    "verify": ("pipeline.verify", "Check shards and manifests against each other (sizes, checksums, JPEGs)."),
    "resplit": ("pipeline.resplit", "Move whole groups between train and val without decoding again."),
    "merge": ("pipeline.merge", "Join the manifests of --part K/N runs into one."),
    "train": ("train.run", "Fine-tune a detector on the shards in stages (one-cycle, LR finder)."),
    "explain": ("train.explain", "Val predictions, top losses, Grad-CAM and the report of a run."),
    "evaluate": ("train.evaluate", "Metrics of a checkpoint or an ensemble on a sharded split or face images."),
    "predict": ("train.predict", "Score videos or a sharded split; writes a Kaggle submission."),
    "benchmark": ("train.benchmark", "Every checkpoint on every test set: the cross-dataset AUC table."),
    "compare": ("train.compare", "One page comparing runs: metrics, losses, ROC curves."),
    "export": ("train.export", "Package a checkpoint: safetensors weights, config.json, a model card."),
    "check": ("train.check", "One verdict per video, with a page that shows why."),
    "zoo": ("train.zoo_command", "Published detectors: list, fetch and import them into model packages."),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use; the listing reads COMMANDS."""

    def list_commands(self, ctx) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx, name: str):
        if name not in COMMANDS:
            return None
        cmd = importlib.import_module(COMMANDS[name][0]).main
        cmd.name = name  # the usage line says `dfd NAME`, not the function's name
        return cmd

    def format_commands(self, ctx, formatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_, text) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.version_option(package_name="deepfake-toolkit")
def main() -> None:
    """Deepfake-video detection: decode once into shards, then train, explain, evaluate and predict.

    `dfd COMMAND --help` for a command's options."""
