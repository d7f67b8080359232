"""One error policy for every ``astrollama`` command.

* :class:`InputError` (a ``ValueError``): something that came from outside is wrong: a recipe, a
  DeepSpeed config, a shard, an e-print, a question file, a command-line value. Its message is ONE
  line, ``<file>: <field>: <problem>`` (or ``<option>: <problem>`` for a command-line value). The
  CLI prints it and exits 2; nothing half-written is left behind.
* :class:`EnvironmentFault`: the machine failed (disk full, I/O error, a killed worker). Retryable:
  never recorded as a terminal per-paper failure; the CLI prints one line naming the path and
  exits 1.

Every area's own error class (``RecipeError``, ``AICError``, ``EvalInputError``, ...) subclasses
:class:`InputError`, so ``astrollama.cli.main`` handles them all in one place.
"""

from __future__ import annotations

import errno
import os

EXIT_INPUT = 2  # bad input: fix the named file/field and rerun
EXIT_ENVIRONMENT = 1  # the machine failed (disk full, I/O): free space / retry, the rerun resumes

# errno values that describe the machine, not the input: retry, never a terminal "failed" record
ENVIRONMENT_ERRNOS = frozenset(
    e
    for e in (
        errno.ENOSPC,
        errno.EIO,
        errno.EDQUOT,
        errno.EFBIG,
        errno.EROFS,
        errno.ENOMEM,
        errno.EMFILE,
        errno.ENFILE,
        errno.ESTALE,
        errno.EAGAIN,
        errno.ETIMEDOUT,
    )
)


class InputError(ValueError):
    """Bad input from outside; the message names the file and field in one line."""


class EnvironmentFault(RuntimeError):
    """The environment failed (ENOSPC, EIO, a killed worker): retryable, exit 1."""


def is_environment_error(exc: BaseException) -> bool:
    """True for OS errors that are the machine's fault (disk full, I/O error, quota, ...)."""
    return isinstance(exc, EnvironmentFault) or (isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS)


def one_line(text: object) -> str:
    """Collapse a message to one line (messages may quote input that holds newlines)."""
    return " ".join(str(text).split())


def describe_os_error(exc: OSError) -> str:
    """``<path>: <strerror>`` for an OSError, naming the file even where Python's str() does not."""
    path = exc.filename or ""
    what = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
    return one_line(f"{path}: {what}" if path else what)
