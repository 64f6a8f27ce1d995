"""A full disk (or quota) as one line: what was being written, that nothing is lost, what to do.

Writers wrap their writes in `writing(what)`; an ENOSPC/EDQUOT there becomes DiskFullError(what), which the
command-line entry points print as one line instead of a traceback. Every writer in this project writes to a
temporary name and renames it only when complete, so a failed write never replaces good data.
"""
from __future__ import annotations

import contextlib
import errno
import os

from dfd.errors import ToolkitError

FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(ToolkitError, OSError):
    """No space left while writing `what` (picklable: it crosses the decode pool)."""

    def __init__(self, what: str, reason: str = "No space left on device"):
        super().__init__(errno.ENOSPC, reason)
        self.what, self.reason = what, reason

    def __reduce__(self):
        return (DiskFullError, (self.what, self.reason))

    def __str__(self) -> str:
        return f"no space left on device while writing {self.what} ({self.reason})"


def is_full(exc: BaseException) -> bool:
    """ENOSPC or EDQUOT, also where pyarrow reports it only in the message."""
    return isinstance(exc, OSError) and (exc.errno in FULL or "No space left on device" in str(exc)
                                         or "Disk quota exceeded" in str(exc))


@contextlib.contextmanager
def writing(what, cleanup=None):
    """Turn a full-disk OSError inside the block into DiskFullError(what); `cleanup` (a path) is removed then."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as exc:
        if not is_full(exc):
            raise
        if cleanup is not None:
            with contextlib.suppress(OSError):
                os.remove(cleanup)
        raise DiskFullError(str(what), exc.strerror or str(exc)) from exc


def one_line(exc: OSError, rerun: str) -> str:
    """The message a command prints for a full disk: `rerun` says how to continue."""
    what = exc.what if isinstance(exc, DiskFullError) else (exc.filename or "its output")
    return (f"no space left on device while writing {what}; nothing already written is lost "
            f"(finished files are complete, the unfinished one was discarded): free some space and {rerun}")
