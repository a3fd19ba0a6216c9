"""Rendering for the CLI: rich tables for people, ``--json`` for programs.

Results go to stdout; messages, warnings and progress bars go to stderr, so that
``ftc ... --json | jq`` always gets clean JSON.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any, Iterator

from rich.console import Console, ConsoleDimensions

#: The width tables are laid out at when the output is not a terminal (a pipe, a file, a
#: log): wide enough that no name is wrapped or cropped; a table is only as wide as its
#: content, so nothing is padded to this width.
PIPE_WIDTH = 4096


class _Console(Console):
    """A rich Console that, writing to something that is not a terminal, lays tables out at
    :data:`PIPE_WIDTH` instead of 80 columns, so names are never split mid-word or cut in a
    pipe or a log. ``COLUMNS`` set in the environment still wins; a terminal keeps its own
    width."""

    def _size(self) -> ConsoleDimensions:
        dims = Console.size.fget(self)  # type: ignore[attr-defined]
        if self._width is None and not self.is_terminal and not self._environ.get("COLUMNS", "").isdigit():
            return ConsoleDimensions(PIPE_WIDTH, dims.height)
        return dims

    size = property(_size, Console.size.fset)  # type: ignore[assignment,attr-defined]


# stdout for results, stderr for everything else.
out = _Console(soft_wrap=False)
err = _Console(stderr=True)


def emit_json(obj: Any) -> None:
    """Print ``obj`` as JSON on stdout (no rich markup, no wrapping)."""
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, default=_default) + "\n")
    sys.stdout.flush()


def _default(o: Any) -> Any:
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    if hasattr(o, "to_dict"):
        return o.to_dict()
    if hasattr(o, "__fspath__"):
        return str(o)
    if isinstance(o, (set, frozenset)):
        return sorted(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def duration(seconds) -> str:
    """A duration for people: 4.20 s, 42.0 s, 7m 05s, 2h 03m; "unknown" for None."""
    if seconds is None:
        return "unknown"
    s = float(seconds)
    if s < 10:
        return f"{s:.2f} s"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(round(s), 60)
    if m < 60:
        return f"{m}m {sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


from ..textsafe import safe_text  # noqa: E402,F401 - model and provider text for the terminal (re-exported)


def esc(text: Any) -> str:
    """``text`` as rich shows it literally: brackets in a path, a label, a model name or a
    provider's message are text, never markup (``[/bold]`` neither styles nor crashes).
    Everything from the user, the data or a provider goes through this (or a ``Text``)."""
    from rich.markup import escape

    return escape("" if text is None else str(text))


def warn(message: str, *, markup: bool = False) -> None:
    """A warning on stderr; ``message`` is plain text unless ``markup=True``."""
    err.print(f"[yellow]warning:[/yellow] {message if markup else esc(message)}", highlight=False)


def info(message: str, *, markup: bool = False) -> None:
    """A message on stderr; ``message`` is plain text unless ``markup=True``."""
    err.print(message if markup else esc(message), highlight=False)


class _Hidden:
    """What :func:`progress` yields when nothing is shown (``--json``, stderr not a terminal):
    the calls of a ``rich.progress.Progress`` that the commands make, doing nothing, so that
    rich's progress module (about 15 ms to import) is not imported for a bar no one sees."""

    disable = True
    console = err

    def __init__(self) -> None:
        self._tasks = 0

    def add_task(self, *_: Any, **__: Any) -> int:
        self._tasks += 1
        return self._tasks

    def update(self, *_: Any, **__: Any) -> None:
        return None

    advance = remove_task = update

    def start(self) -> None:
        return None

    stop = start


@contextmanager
def progress(enabled: bool = True) -> Iterator[Any]:
    """A rich progress display on stderr; hidden when stderr is no terminal or not enabled.

    Yields a ``rich.progress.Progress``; use ``add_task`` / ``update`` / ``advance``.
    """
    if not (enabled and err.is_terminal):
        yield _Hidden()
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", style="progress.description", markup=False),  # plain text
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=False,  # enabled, on a terminal: see above
    )
    with bar:
        yield bar
