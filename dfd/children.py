"""Worker processes that die with their parent and never hold its locks.

A process killed with SIGKILL (`kill -9`, the OOM killer, a Slurm preemption) runs no cleanup: its pool workers
would live on as orphans, and a forked worker holds every open file description of its parent, flock'ed lock files
included, so the next run would be refused. Every pool the toolkit starts (the decode pool, the faces pool,
DataLoader workers) calls `die_with_parent` first in the child:

- on Linux, prctl(PR_SET_PDEATHSIG, SIGKILL): the kernel kills the worker the moment its parent dies;
- everywhere, a daemon thread that polls os.getppid() (a dead parent re-parents the worker) and exits at once;
- lock files registered with `hold_lock` are closed in every forked child (os.register_at_fork), so a worker never
  keeps a lock alive (a flock lives as long as any descriptor of its open file; spawned children inherit none, the
  files being opened non-inheritable).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
WATCH_SECONDS = 0.5  # how often the portable watchdog looks at the parent

_LOCK_FDS: set[int] = set()


def hold_lock(fd: int) -> None:
    """Register a lock file's descriptor: forked children close it before anything else runs."""
    _LOCK_FDS.add(fd)


def release_lock(fd: int) -> None:
    _LOCK_FDS.discard(fd)


def _close_locks_in_child() -> None:
    for fd in list(_LOCK_FDS):
        try:
            os.close(fd)  # closes the child's descriptor only: the parent's lock stands
        except OSError:
            pass
    _LOCK_FDS.clear()


os.register_at_fork(after_in_child=_close_locks_in_child)


def _pdeathsig() -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux only); False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    event = threading.Event()
    while not event.wait(WATCH_SECONDS):
        if os.getppid() != parent:
            os._exit(1)


def die_with_parent(parent: int | None = None) -> None:
    """Called first in a worker: the worker ends as soon as `parent` (default: its parent now) is gone."""
    parent = os.getppid() if parent is None else parent
    _close_locks_in_child()
    _pdeathsig()
    if os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="parent-watch", daemon=True).start()


def dataloader_worker_init(parent: int, worker_id: int) -> None:
    """`worker_init_fn` for torch DataLoaders: functools.partial(dataloader_worker_init, os.getpid())."""
    die_with_parent(parent)
