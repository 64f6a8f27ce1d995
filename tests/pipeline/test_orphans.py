"""Every pool the toolkit starts dies with its parent and never keeps its lock: the decode pool, the faces pool
(tests/pipeline/stages/test_faces_stage.py kills the faces stage itself), and DataLoader workers, after SIGKILL of the parent
alone (the OOM killer, a Slurm preemption)."""
from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from helpers.paths import REPO

PARENT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import torch
    from torch.utils.data import IterableDataset
    from pipeline.stages.frames.build import start_pool
    from pipeline.spec import FaceCrop
    from pipeline.stages.faces.stage import start_pool as faces_pool
    from pipeline.ffmpeg.locate import find_ffmpeg
    from pipeline.core.manifest import lock
    from train.data.streams import make_loader

    class Slow(IterableDataset):
        def __iter__(self):
            import os
            yield torch.tensor([os.getpid()])
            time.sleep(600)
            yield torch.tensor([0])

    with lock(Path(sys.argv[1]), "faces"):
        pools = [start_pool(2, find_ffmpeg()), faces_pool(1, FaceCrop(), "cpu")]
        for pool in pools:
            pool.submit(time.sleep, 600)
        pids = [p for pool in pools for p in pool._processes]
        loader = iter(make_loader(Slow(), 1))
        pids.append(int(next(loader)[0]))
        print(" ".join(map(str, pids)), flush=True)
        time.sleep(600)
""")


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_pools_die_with_their_parent_and_free_the_lock(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    pids: list[int] = []
    try:
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert len(pids) >= 3, "the parent did not start its pools"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        orphans = [p for p in pids if _alive(p)]
        with open(tmp_path / ".lock-faces", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if a worker kept the lock
    finally:
        for p in pids:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not orphans, f"workers outlived their parent: {orphans}"
