"""Where fine-tunes are migrated from: the records a migration source hands over, and how
the core finds the source through the backend registry.

A hosted backend whose fine-tuned models can be moved away declares
``lists_fine_tunes = True`` and implements three calls:

* ``fine_tunes() -> list[PastFineTune]``: every fine-tuning job of the account, newest first;
* ``file_info(file_id) -> ProviderFile``: one uploaded file's metadata (``exists`` False
  when the provider no longer has it);
* ``download_file(file_id, dest, *, max_bytes) -> None``: the file's bytes into ``dest``
  (a path that does not exist yet); :class:`DownloadRefused` when the provider does not
  hand the file out.

The core names no provider: ``ftc migrate`` asks the registry which backends declare the
flag, and a model reference's prefix (``openai:ft:...``) picks one of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ..errors import FtcError, UsageError

__all__ = ["ProviderFile", "PastFineTune", "DownloadRefused", "migration_sources", "source_backend",
           "split_model_ref"]


class DownloadRefused(FtcError):
    """The provider does not hand this file out (exit 1): the user's own copy is needed."""

    exit_code = 1


@dataclass(frozen=True)
class ProviderFile:
    """A file the provider holds: its id, name, size in bytes and upload time."""

    id: str
    filename: str | None = None
    bytes: int | None = None
    created_at: datetime | None = None
    purpose: str | None = None
    exists: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = self.created_at.isoformat() if self.created_at else None
        return d


@dataclass(frozen=True)
class PastFineTune:
    """One fine-tuning job of the account, as the provider reports it.

    ``hyperparameters``: the provider's resolved values (``n_epochs``, ``batch_size``,
    ``learning_rate_multiplier``; ``"auto"`` where it never resolved them).
    ``fine_tuned_model``: the model it produced (None unless it succeeded)."""

    source: str
    job_id: str
    status: str
    base_model: str
    fine_tuned_model: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    method: str = "supervised"
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    trained_tokens: int | None = None
    training_file: str | None = None
    validation_file: str | None = None
    suffix: str | None = None
    error: str | None = None


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
    from ..backends import available_backends

    out = []
    for name, ep in available_backends().items():
        try:
            factory = ep.load()
        except Exception:  # noqa: BLE001 - a backend that cannot load is no source
            continue
        if getattr(factory, "lists_fine_tunes", False):
            out.append(name)
    return out


def source_backend(name: str | None = None, *, client: Any = None) -> Any:
    """The backend to migrate from: ``name``, else the only installed source. UsageError
    when ``name`` is no source, or none (or several, without ``name``) are installed."""
    from ..backends import check_ready, get_backend

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
