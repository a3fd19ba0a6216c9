"""What the parts of :mod:`ftclient.jobs` share: the backend a job runs on, and the error
Ctrl-C ends in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..backends import check_ready, get_backend
from ..errors import Interrupted as _Interrupted

if TYPE_CHECKING:  # pragma: no cover
    from ..backends import Backend

__all__ = ["Interrupted", "backend_named"]


class Interrupted(_Interrupted):
    """Ctrl-C while ftc was submitting or watching; the job itself is left as it is (exit 130)."""

    exit_code = 130


def backend_named(name: str, on_retry: Callable | None, *, ready: bool = True) -> "Backend":
    """The backend ``name``; with ``ready``, a ConfigError (exit 2, the install line) when
    what it imports to work (its SDK, the training stack) is not installed."""
    be = get_backend(name, on_retry=on_retry) if on_retry is not None else get_backend(name)
    if ready:
        check_ready(be, key=False)  # a missing key is the backend's own ConfigError when it needs one
    return be
