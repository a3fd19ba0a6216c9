"""A job's provider events, each stored once (by its provider id, or one derived from its
content), redacted, in the order the provider dated them."""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Mapping

from ..errors import UsageError
from ..secrets import redact, redact_json
from .base import StoreBase
from .clock import now_iso, to_iso
from .records import Event, from_row


class EventsMixin(StoreBase):
    """The events of :class:`ftclient.store.Store`."""

    def add_events(self, job_id: str, events: Iterable[Any], *, cursor: str | None = None) -> int:
        """Store a job's provider events; ones already stored (same ``provider_event_id``) are
        skipped. Returns how many were new. ``cursor`` (the provider's pagination position)
        is saved as ``last_event_cursor`` in the same transaction.

        Each event is a mapping or object with ``provider_event_id`` (or ``id``),
        ``created_at`` (ISO text, datetime or epoch seconds), ``level``, ``message``, ``data``.
        An event without an id gets one derived from its content.
        """
        rows = []
        for ev in events:
            get = ev.get if isinstance(ev, Mapping) else (lambda k, d=None, _e=ev: getattr(_e, k, d))
            eid = get("provider_event_id") or get("id")
            created = to_iso(get("created_at"))
            level = str(getattr(get("level") or "info", "value", get("level") or "info"))
            message = redact(get("message") or "")
            data = get("data")
            data_json = None if data is None else redact_json(data)
            if not eid:
                eid = "sha1:" + hashlib.sha1(f"{created}\x00{level}\x00{message}\x00{data_json}".encode()).hexdigest()
            rows.append((job_id, str(eid), created, level, message, data_json))
        with self._write() as c:
            if c.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
                raise UsageError(f"no job {job_id!r} in the store")
            before = c.total_changes
            c.executemany(
                "INSERT OR IGNORE INTO events (job_id, provider_event_id, created_at, level, message, data_json)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            new = c.total_changes - before
            if cursor is not None:
                c.execute("UPDATE jobs SET last_event_cursor = ?, updated_at = ? WHERE id = ?", (cursor, now_iso(), job_id))
        return new

    def list_events(self, job_id: str, *, after: int | None = None, limit: int | None = None) -> list[Event]:
        """A job's events in the order the provider dated them (then as stored); ``after``
        is an event row id, for following new events."""
        sql, params = "SELECT * FROM events WHERE job_id = ?", [job_id]
        if after is not None:
            sql += " AND id > ?"
            params.append(after)
        sql += " ORDER BY created_at, id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [from_row(Event, r) for r in self._read(sql, params)]
