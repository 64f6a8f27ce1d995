"""Issue 28 item 10: torch's CPU threads come from the cores free to the process (its affinity and cgroup quota, less
the load average), or from the user (--threads, DFD_THREADS, OMP_NUM_THREADS), set once as a command reads its
options; loader workers default to the free cores too."""
from __future__ import annotations

import os

import pytest
import torch
from click.testing import CliRunner

from dfd import threads
from train import export, run


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    before = torch.get_num_threads()
    for name in (threads.ENV, threads.OMP, "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch
    torch.set_num_threads(before)
    os.environ.pop(threads.OMP, None)  # apply() set it: monkeypatch restores what was there before


def _export(*args: str, env: dict | None = None) -> int:
    """The real `dfd export` command line (refused: no such checkpoint), then torch's threads in this process."""
    torch.set_num_threads(7)
    result = CliRunner().invoke(export.main, [*args, "--checkpoint", "no-such.pt", "--out", "x"], env=env)
    assert result.exit_code != 0 and "no-such.pt" in result.output, result.output
    return torch.get_num_threads()


def test_the_user_says_how_many(clean):
    assert _export("--threads", "3") == 3
    assert _export(env={threads.ENV: "2"}) == 2
    clean.setenv(threads.OMP, "5")
    assert _export() == 5
    assert _export("--threads", "1") == 1  # the option wins over the environment


def test_by_default_the_free_cores(clean):
    clean.setattr(os, "sched_getaffinity", lambda pid: set(range(12)))
    clean.setattr(os, "getloadavg", lambda: (6.4, 1.0, 1.0))
    usable = threads.usable_cores()  # the 12 of the affinity, or fewer where a cgroup quota says so
    assert 1 <= usable <= 12
    expected = max(1, usable - 6)
    assert threads.free_cores() == expected and _export() == expected
    assert os.environ[threads.OMP] == str(expected)  # what the processes it starts read
    assert run.default_workers() == max(1, min(8, expected))
    clean.delenv(threads.OMP)
    clean.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun's processes share them
    assert threads.resolve()[0] == max(1, expected // 2)
    clean.setattr(os, "getloadavg", lambda: (40.0, 1.0, 1.0))  # a machine busier than its cores: one thread
    assert threads.free_cores() == 1
