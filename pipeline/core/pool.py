"""The pipeline's one process pool: workers that die with the process that started them (dfd.children)."""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import sys
from typing import Callable

from dfd.children import die_with_parent


def process_pool(workers: int, fork: bool = True, initializer: Callable | None = None,
                 initargs: tuple = ()) -> cf.ProcessPoolExecutor:
    """`workers` processes, forked on Linux where `fork` (no re-import per worker; never once the orchestrator has
    threads, or CUDA) else spawned; each first ties itself to this process, then runs `initializer(*initargs)`."""
    method = "fork" if fork and sys.platform == "linux" else "spawn"
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method),
                                  initializer=_start_worker, initargs=(os.getpid(), initializer, initargs))


def _start_worker(parent: int, initializer: Callable | None, initargs: tuple) -> None:
    die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)
