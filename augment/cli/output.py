"""How commands end: the project's errors as one clear line and an exit status, JSON printing."""

from __future__ import annotations

import functools
import json
import sys

import click

from augment.config import ConfigError


def fail(message: str, code: int) -> None:
    """Print ``Error: message`` to stderr and exit with ``code``."""
    from augment.names import printable

    # A message quotes names and paths from files received from others: with
    # their control characters escaped it stays one line and cannot drive the terminal.
    click.echo(f"Error: {printable(message)}", err=True)
    sys.exit(code)


def file_name(ctx, param, value):
    """Click callback of an option that becomes part of a file name (``export --name``,
    ``edit --attribute``): one safe path component (``augment.names``), else a usage
    error naming the flag (exit 2) before anything is written."""
    from augment.names import problem, shown

    why = problem(value) if value else None
    if why is not None:
        raise click.BadParameter(f"{shown(value)} cannot be a file name: {why}")
    return value


def echo_json(info) -> None:
    click.echo(json.dumps(info, indent=2))


def friendly_errors(func):
    """Turn the project's own exceptions into one clear line and an exit status."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from augment.checkpoint import CheckpointError
        from augment.data.errors import DatasetError
        from augment.lock import WorkdirBusy
        from augment.manifest import ManifestError
        from augment.pipeline import PipelineError

        try:
            return func(*args, **kwargs)
        except (ConfigError, WorkdirBusy) as e:
            fail(str(e), 2)
        except (DatasetError, ManifestError, PipelineError, CheckpointError) as e:
            fail(str(e), 1)
        except BrokenPipeError:
            raise  # the reader went away (``augment stages | head``): click exits quietly
        except OSError as e:  # full disk, no permission: the environment, not a bug; work done so far is kept
            fail(f"I/O error: {e}", 1)
        except KeyboardInterrupt:
            fail("interrupted; finished stages are kept and a rerun resumes the interrupted one", 130)

    return wrapper
