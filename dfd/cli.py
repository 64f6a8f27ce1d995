"""What every command shares: click settings, one logging setup, the common options, defaults read from the
config dataclasses, and one mapping from the toolkit's errors to exit codes and one-line messages."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Any, Callable

import click

from dfd.diskfull import is_full, one_line
from dfd.errors import USAGE, ToolkitError

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DEVICES = ("auto", "cpu", "cuda")


def command(**kwargs) -> Callable:
    """click.command with the toolkit's settings: -h/--help, defaults shown."""
    return click.command(context_settings=CONTEXT, **kwargs)


def setup_logging(verbose: bool = False, rank: int | None = None) -> None:
    """One format for every command; under torchrun, ranks other than 0 log warnings only, tagged with the rank."""
    level = logging.DEBUG if verbose else logging.INFO if not rank else logging.WARNING
    tag = f"[rank {rank}] " if rank else ""
    logging.basicConfig(level=level, format=LOG_FORMAT.replace("%(name)s", f"{tag}%(name)s"), datefmt="%H:%M:%S")


def default(cls: type, name: str) -> Any:
    """A dataclass field's default, so that a command's option and the config it builds say it once."""
    field = next(f for f in dataclasses.fields(cls) if f.name == name)
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def converter(parse: Callable[[str], Any]) -> Callable:
    """A click callback that parses a value, a ToolkitError becoming click's bad-parameter message."""
    def convert(ctx, param, value):
        if value is None:
            return None
        try:
            return parse(value)
        except ToolkitError as err:
            raise click.BadParameter(str(err), ctx=ctx, param=param) from err
    return convert


def verbose_option(fn: Callable) -> Callable:
    return click.option("-v", "--verbose", is_flag=True, help="Debug logging.")(fn)


def device_option(default: str = "auto", help: str = "auto: cuda where there is one, else the CPU.") -> Callable:
    return click.option("--device", type=click.Choice(DEVICES), default=default, help=help)


def workers_option(default: Any, help: str, show_default: Any = True) -> Callable:
    return click.option("--workers", type=click.IntRange(min=0), default=default, show_default=show_default,
                        help=help)


def threads_option(fn: Callable) -> Callable:
    """--threads (or DFD_THREADS): torch's CPU threads, applied once as the options are read (dfd.threads)."""
    from dfd import threads

    def apply(ctx, param, value):
        threads.apply(value)
        return value
    return click.option("--threads", type=click.IntRange(min=1), envvar=threads.ENV, default=None, expose_value=False,
                        callback=apply, is_eager=True, show_envvar=True,
                        show_default="OMP_NUM_THREADS if set, else the free cores (usable cores less the load)",
                        help="CPU threads for torch (loader workers: --workers).")(fn)


@contextlib.contextmanager
def reported(rerun: str = "rerun the same command"):
    """Run a command's body: a ToolkitError becomes its one-line message and exit code (2 with the usage line for
    errors of USAGE, else 1); a full disk, the line saying nothing is lost and how to continue (`rerun`)."""
    try:
        yield
    except click.ClickException:
        raise
    except OSError as err:
        if not is_full(err):
            raise
        raise click.ClickException(one_line(err, rerun)) from None
    except ToolkitError as err:
        if err.exit_code == USAGE:
            raise click.UsageError(str(err)) from None
        raise click.ClickException(str(err)) from None
