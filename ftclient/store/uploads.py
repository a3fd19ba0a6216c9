"""Uploaded files, by content: which file of which content a provider already holds (so it
is uploaded once), and the cross-process lock held while uploading it."""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import Callable, Iterator

from ..errors import UsageError
from .base import StoreBase
from .clock import now_iso
from .records import UPLOAD_STATUSES, Upload, from_row


class UploadsMixin(StoreBase):
    """The uploads of :class:`ftclient.store.Store`."""

    def find_upload(self, provider: str, sha256: str, purpose: str = "fine-tune") -> Upload | None:
        """The upload of this content to this provider, if one was recorded."""
        rows = self._read(
            "SELECT * FROM uploads WHERE provider = ? AND sha256 = ? AND purpose = ?", (provider, sha256.lower(), purpose)
        )
        return from_row(Upload, rows[0]) if rows else None

    def record_upload(
        self,
        provider: str,
        sha256: str,
        *,
        bytes: int,
        provider_file_id: str | None,
        purpose: str = "fine-tune",
        status: str = "uploaded",
        filename: str | None = None,
    ) -> Upload:
        """Record (or update) the upload of a file's content to a provider."""
        if status not in UPLOAD_STATUSES:
            raise ValueError(f"not an upload status: {status!r} (one of {', '.join(UPLOAD_STATUSES)})")
        sha = sha256.lower()
        with self._write() as c:
            c.execute(
                "INSERT INTO uploads (provider, sha256, purpose, bytes, filename, provider_file_id, status, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (provider, sha256, purpose) DO UPDATE SET bytes = excluded.bytes,"
                " filename = COALESCE(excluded.filename, filename),"
                " provider_file_id = COALESCE(excluded.provider_file_id, provider_file_id),"
                " status = excluded.status",
                (provider, sha, purpose, int(bytes), filename, provider_file_id, status, now_iso()),
            )
        found = self.find_upload(provider, sha, purpose)
        assert found is not None
        return found

    @contextlib.contextmanager
    def upload_lock(self, provider: str, sha256: str, purpose: str = "fine-tune", *,
                    on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the right to upload this content to this provider, across processes.

        Whoever holds it looks up :meth:`find_upload`, uploads only if nothing usable is
        recorded, and records the result before letting go; the others wait (``on_wait``
        is called once first) and then find that upload. It is an exclusive ``flock`` on a
        small file in ``locks/`` next to the store, so the lock of a killed process ends
        with it. Where files cannot be locked (or the folder cannot be written) there is
        no lock: the upload is then merely done once per process, as before.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        key = hashlib.sha256(f"{provider}\0{sha256.lower()}\0{purpose}".encode()).hexdigest()[:32]
        path = self.path.parent / "locks" / f"upload-{key}.lock"
        try:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except OSError:
            yield
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(fd, fcntl.LOCK_EX)  # Ctrl-C still interrupts the wait
            yield
        finally:
            os.close(fd)  # releases the lock

    def set_upload_status(self, upload_id: int, status: str, *, verified: bool = False) -> Upload:
        """Change an upload's status; ``verified`` records that the provider still has it now."""
        if status not in UPLOAD_STATUSES:
            raise ValueError(f"not an upload status: {status!r} (one of {', '.join(UPLOAD_STATUSES)})")
        with self._write() as c:
            c.execute(
                "UPDATE uploads SET status = ?, verified_at = CASE WHEN ? THEN ? ELSE verified_at END WHERE id = ?",
                (status, 1 if verified else 0, now_iso(), upload_id),
            )
        rows = self._read("SELECT * FROM uploads WHERE id = ?", (upload_id,))
        if not rows:
            raise UsageError(f"no upload {upload_id} in the store")
        return from_row(Upload, rows[0])
