"""The errors a user can cause, each with a hint and an exit code.

Exit codes (see the README): 0 ok, 1 the data or job is at fault, 2 usage or
configuration, 130 interrupted. The CLI prints ``message`` and ``hint`` and exits
with ``exit_code``; a traceback is shown only with ``--debug``.
"""

from __future__ import annotations


class FtcError(Exception):
    """Base class of every error ftc reports to the user without a traceback."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class DataError(FtcError):
    """The input data cannot be read or is not usable (exit 1)."""

    exit_code = 1


class UsageError(FtcError):
    """Bad arguments, a missing file, an unwritable output (exit 2)."""

    exit_code = 2


class SpecError(UsageError):
    """The job spec is invalid (exit 2)."""


class ConfigError(UsageError):
    """Configuration such as a price file or a model name is wrong (exit 2)."""


class BudgetExceeded(FtcError):
    """The estimate is above the budget; nothing was sent (exit 1)."""

    exit_code = 1


class Interrupted(FtcError):
    """Ctrl-C stopped a submission, a watch or an evaluation; what was done is recorded and
    the same call (or ``ftc jobs resume``) picks it up again (exit 130)."""

    exit_code = 130
