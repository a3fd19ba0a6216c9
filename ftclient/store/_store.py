"""The job store, :class:`Store`, assembled from one mixin per concept: the connection
(:mod:`~ftclient.store.base`), jobs, workers and write-ahead operations, events, uploads and
evaluation runs."""

from __future__ import annotations

import contextlib
from typing import Iterator

from .evals import EvalsMixin
from .events import EventsMixin
from .jobs import JobsMixin
from .operations import OperationsMixin
from .uploads import UploadsMixin


class Store(OperationsMixin, JobsMixin, EventsMixin, UploadsMixin, EvalsMixin):
    """The job store. One SQLite connection per object; safe to use from several processes.

    ``Store()`` opens ``ftclient.paths.store_path()``; ``Store(path)`` any file. The schema is
    migrated to the latest version on open. Use as a context manager or call :meth:`close`.
    """


@contextlib.contextmanager
def opened(store: Store | None = None) -> Iterator[Store]:
    """``store`` itself (left open), or a new :class:`Store` on the default path, closed afterwards."""
    if store is not None:
        yield store
        return
    s = Store()
    try:
        yield s
    finally:
        s.close()
