"""The store's timestamps: ISO 8601 text in UTC with microseconds, so that they sort as
text."""

from __future__ import annotations

import datetime as _dt
from typing import Any


def now_iso() -> str:
    """Now, as the store writes it."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def iso_ago(seconds: float) -> str:
    """The time ``seconds`` ago, as the store writes it."""
    return (_dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def to_iso(value: Any) -> str:
    """A provider's timestamp (ISO text, datetime or epoch seconds; now when empty) as text."""
    if value is None or value == "":
        return now_iso()
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value.astimezone(_dt.timezone.utc).isoformat(timespec="microseconds")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _dt.datetime.fromtimestamp(float(value), _dt.timezone.utc).isoformat(timespec="microseconds")
    return str(value)


def age_s(iso: str | None) -> float:
    """Seconds since the timestamp ``iso``; infinite when there is none or it cannot be read."""
    if not iso:
        return float("inf")
    try:
        t = _dt.datetime.fromisoformat(iso)
    except ValueError:
        return float("inf")
    return (_dt.datetime.now(_dt.timezone.utc) - t).total_seconds()
