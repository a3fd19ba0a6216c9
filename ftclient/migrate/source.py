"""Where fine-tunes are migrated from: how the core finds the source through the backend registry.

A source is a backend that declares ``lists_fine_tunes = True`` (its calls and records:
:mod:`ftclient.fine_tunes`). The core names no provider: ``ftc migrate`` asks the registry
which backends declare the flag, and a model reference's prefix (``openai:ft:...``) picks
one of them.
"""

from __future__ import annotations

from typing import Any

from ..backends import backends_offering, check_ready, get_backend
from ..errors import UsageError
from ..fine_tunes import DownloadRefused, PastFineTune, ProviderFile

__all__ = ["ProviderFile", "PastFineTune", "DownloadRefused", "migration_sources", "source_backend",
           "split_model_ref"]


def split_model_ref(text: str, sources: list[str]) -> tuple[str | None, str]:
    """(source, model) of ``openai:ft:...``-style text: a known source's prefix is split off;
    anything else is a bare model id (source None)."""
    text = (text or "").strip()
    head, sep, rest = text.partition(":")
    if sep and head.lower() in sources and rest:
        return head.lower(), rest
    return None, text


def migration_sources() -> list[str]:
    """The names of the installed backends that can list their fine-tunes (nothing is
    built; a backend whose module cannot be imported is left out)."""
    return backends_offering("lists_fine_tunes")


def source_backend(name: str | None = None, *, client: Any = None) -> Any:
    """The backend to migrate from: ``name``, else the only installed source. UsageError
    when ``name`` is no source, or none (or several, without ``name``) are installed."""
    sources = migration_sources()
    if name is None:
        if len(sources) != 1:
            raise UsageError("no installed backend can list its fine-tunes" if not sources else
                             f"several backends can list their fine-tunes ({', '.join(sources)}): say which",
                             hint="Install ftclient with its hosted extra: pip install 'ftclient[hosted]'"
                             if not sources else "Give the model with its prefix, e.g. openai:ft:...")
        name = sources[0]
    if name.lower() not in sources:
        raise UsageError(f"{name!r} has no fine-tunes to migrate from ftc's point of view",
                         hint=f"Sources: {', '.join(sources) or 'none installed'}.")
    backend = get_backend(name, **({"client": client} if client is not None else {}))
    check_ready(backend)
    return backend
