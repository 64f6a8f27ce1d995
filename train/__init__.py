"""The trainer: shards + manifest -> streams -> model -> stages -> metrics, checkpoints, explanations, reports.

The environment is set here once, before any submodule imports albumentations or matplotlib."""
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations otherwise checks PyPI at import
os.environ.setdefault("MPLBACKEND", "Agg")              # figures are written to files: no display
