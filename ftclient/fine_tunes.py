"""What a backend hands over about the fine-tunes it already made (``ftc migrate``).

A hosted backend whose fine-tuned models can be moved away declares
``lists_fine_tunes = True`` and implements three calls:

* ``fine_tunes() -> list[PastFineTune]``: every fine-tuning job of the account, newest first;
* ``file_info(file_id) -> ProviderFile``: one uploaded file's metadata (``exists`` False
  when the provider no longer has it);
* ``download_file(file_id, dest, *, max_bytes) -> None``: the file's bytes into ``dest``
  (a path that does not exist yet); :class:`DownloadRefused` when the provider does not
  hand the file out.

These records are all a backend needs to import for it; :mod:`ftclient.migrate` does the rest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from .errors import FtcError

__all__ = ["ProviderFile", "PastFineTune", "DownloadRefused"]


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
