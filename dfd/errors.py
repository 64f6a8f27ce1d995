"""The one base class of every error a user can cause, and how a command reports it."""
from __future__ import annotations

USAGE = 2    # the command cannot start as asked (a setting, a folder, a lock): click's usage-error code
FAILED = 1   # the command started and could not finish (bad data, a broken checkpoint)


class ToolkitError(Exception):
    """An error a user can act on: its message names the file or setting and the reason, on one line.

    `exit_code` says how the command line reports it: USAGE (2, printed with the command's usage line) for a
    setting, path or lock that stops a command before it starts, FAILED (1) for everything else."""

    exit_code = FAILED


class UsageProblem(ToolkitError):
    """A base for errors that mean the command was asked for something it cannot do (exit 2)."""

    exit_code = USAGE
