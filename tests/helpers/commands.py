"""Running the project's modules (`python -m MODULE`) and the pipeline from the repository root."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .paths import REPO


def run_pipeline(videos: Path, out: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = ["python", "-m", "pipeline.run", "--videos", str(videos), "--shards", str(out / "shards"),
           "--manifests", str(out / "manifests"), "--workers", "2", *args]
    import sys
    cmd[0] = sys.executable
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"pipeline failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_module(module: str, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` from the repository root; `env` entries are added to (None: removed from) os.environ."""
    import sys

    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def pipeline_argv(videos: Path, out: Path, *args: str) -> list[str]:
    """The arguments `run_pipeline` passes to pipeline.run (outputs in OUT/shards and OUT/manifests)."""
    return ["--videos", str(videos), "--shards", str(out / "shards"), "--manifests", str(out / "manifests"),
            "--workers", "2", *args]
