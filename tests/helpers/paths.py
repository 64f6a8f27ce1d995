"""Paths the tests compute once: the repository root and the read-only sample data beside the checkout."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # tests/helpers/paths.py -> the repository root
SHARED_DATA = REPO.parent / "shared" / "data"
