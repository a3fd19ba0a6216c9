"""Creating a job exactly once: the write-ahead operation log, in the core, and
:class:`BackendBase`, the defaults of the provider calls it asks a backend for.

:func:`create_once` is the one implementation of "upload the data, then create the job,
and never create it twice" for every backend, hosted or local. A backend performs only the
provider calls it is asked for (the hooks of :class:`BackendBase`:
``check_submit``, ``upload_file``, ``file_state``, ``provider_quote``, ``create_request``,
``create_job``, ``find_by_client_token``); this module records each of them in the store
before it is sent and settles it after:

1. A job the store already knows at the provider is returned as is.
2. An earlier create left open (a crash, an ambiguous failure) is reconciled by the job's
   client token first: found -> recorded and returned; not found -> settled as failed, and
   a new create may go.
3. The training (and eval) files are uploaded once per content (:func:`ensure_uploaded`):
   a file the store has seen for this provider and purpose is reused while the provider
   still has it. Uploads are retried freely (a duplicate file costs nothing).
4. ``confirm(provider_quote)``: False -> the job is ``cancelled``, nothing created.
5. The create is recorded write-ahead (``begin_operation`` -> ``mark_sent`` ->
   ``finish_operation`` / ``fail_operation``) and sent once; an ambiguous failure is
   reconciled (a few listings); only a definite "not found" allows one more create.
   Otherwise the job stays ``submit_unknown`` and ``AmbiguousResult`` tells the user to run
   ``ftc jobs resume``. Anything else (an interrupt, a bug) leaves the operation ``sent``,
   for the next resume to reconcile.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .backends import JobState, ProgressCallback, SubmitResult, display_name, to_datetime
from .errors import DataError, FtcError
from .retry import AmbiguousResult, ProviderError

if TYPE_CHECKING:  # pragma: no cover
    from .backends import Backend
    from .spec import JobSpec
    from .store import Job, Store

__all__ = ["BackendBase", "Declined", "create_once", "ensure_uploaded", "file_digest", "RECONCILE_MARGIN"]

log = logging.getLogger("ftclient.jobs")

#: How far before the create operation's start a reconciling listing looks (clock skew
#: between this machine and the provider, and the time the request spent in flight).
RECONCILE_MARGIN = timedelta(minutes=15)


class Declined(FtcError):
    """The submission was not confirmed (the provider's quote was refused); nothing was created."""

    exit_code = 1


def file_digest(path: Path, chunk: int = 1 << 20) -> tuple[str, int]:
    """(hex sha256, size in bytes) of a file, read in chunks."""
    import hashlib  # OpenSSL's bindings (about 3 ms) only when a file is submitted, not when a backend is read

    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
            n += len(b)
    return h.hexdigest(), n


def _say(on_progress: ProgressCallback | None, message: str, fraction: float | None = None) -> None:
    log.info("%s", message)
    if on_progress is not None:
        on_progress(message, fraction)


def _neutral(state: Any) -> JobState:
    try:
        return JobState(str(state))
    except ValueError:
        return JobState.PENDING


# --------------------------------------------------------------------------- uploads


def ensure_uploaded(be: "Backend", path: Any, *, store: "Store", job: "Job | None" = None,
                    purpose: str | None = None, on_progress: ProgressCallback | None = None) -> str:
    """The provider's id of ``path``'s content, uploading it through ``be`` only if needed,
    once the provider has processed it.

    A file whose sha256 the store has seen for this backend and purpose is reused while the
    provider still has it; one it lost (404, deleted) is uploaded again. The upload is
    recorded write-ahead (an ``upload`` operation). Then waits until the provider has
    processed it; a file the provider rejects raises DataError with the provider's reason.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file", hint="Check data.train / data.eval in the job spec.")
    purpose = purpose or be.upload_purpose
    sha, size = file_digest(path)
    job_id = getattr(job, "id", None)
    if job_id is not None:
        _settle_open_uploads(be, store, job_id, sha)
    # One upload per content, also across processes: the first uploads, the others wait
    # for it and reuse its file (a killed uploader's lock ends with it).
    with store.upload_lock(be.name, sha, purpose, on_wait=lambda: _say(
            on_progress, f"another ftc process is uploading the same content as {path.name}; waiting for it")):
        fid, upload_id, processed = _upload_once(be, path, sha, size, purpose, store=store, job_id=job_id,
                                                 on_progress=on_progress)
    if not processed:
        _wait_processed(be, fid, path, store=store, job=job, upload_id=upload_id, on_progress=on_progress)
    return fid


def _upload_once(be: "Backend", path: Path, sha: str, size: int, purpose: str, *, store: "Store",
                 job_id: str | None, on_progress: ProgressCallback | None) -> tuple[str, int, bool]:
    """The recorded upload of this content if the provider still has it, else a new one:
    ``(file id, upload row id, whether the provider has processed it)``."""
    shown = display_name(be)
    up = store.find_upload(be.name, sha, purpose)
    if up is not None and up.provider_file_id and up.status not in ("failed", "deleted"):
        fid = up.provider_file_id
        state = be.file_state(fid)
        if state == "missing":
            _say(on_progress, f"{shown} no longer has {path.name} ({fid}); uploading it again")
            store.set_upload_status(up.id, "deleted", verified=True)
        elif state == "error":
            _say(on_progress, f"{shown} marked the earlier upload of {path.name} ({fid}) as failed; uploading it again")
            store.set_upload_status(up.id, "failed", verified=True)
        else:
            store.set_upload_status(up.id, "processed" if state == "processed" else "uploaded", verified=True)
            _say(on_progress, f"{path.name}: same content already uploaded to {shown} as {fid}; reusing it", 1.0)
            return fid, up.id, state == "processed"

    _say(on_progress, f"uploading {path.name} ({size:,} bytes) to {shown}", 0.0)
    op = store.begin_operation(job_id, "upload", {"file": path.name, "sha256": sha, "bytes": size,
                                                  "purpose": purpose, "provider": be.name})
    store.mark_sent(op.id)
    try:
        fid = be.upload_file(path, purpose)
    except BaseException as e:
        # A repeated upload is harmless, so even an uncertain one counts as not done.
        store.fail_operation(op.id, e if isinstance(e, Exception) else "interrupted", ambiguous=False)
        raise
    rec = store.record_upload(be.name, sha, bytes=size, provider_file_id=fid, purpose=purpose,
                              status="uploaded", filename=path.name)
    store.finish_operation(op.id, {"id": fid, "sha256": sha, "bytes": size})
    _say(on_progress, f"uploaded {path.name} as {fid}", 1.0)
    return fid, rec.id, False


def _settle_open_uploads(be: "Backend", store: "Store", job_id: str, sha: str) -> None:
    """Close the upload operations of this content a killed process left open: the upload
    is simply done again (a duplicate file is harmless), so they count as not done."""
    for op in store.operations(job_id, "upload"):
        req = op.request if isinstance(getattr(op, "request", None), Mapping) else {}
        if op.is_open and req.get("sha256") == sha and req.get("provider", be.name) == be.name:
            store.fail_operation(op.id, "interrupted before it finished; uploaded again", ambiguous=False)


def _wait_processed(be: "Backend", fid: str, path: Path, *, store: "Store", job: "Job | None", upload_id: int,
                    on_progress: ProgressCallback | None) -> None:
    shown = display_name(be)
    timeout = float(be.file_timeout_s)
    waited = 0.0
    start = time.monotonic()
    delay = max(float(be.file_poll_s), 0.0)
    said = False
    while True:
        state = be.file_state(fid)
        if state == "processed":
            store.set_upload_status(upload_id, "processed", verified=True)
            return
        if state == "error":
            store.set_upload_status(upload_id, "failed", verified=True)
            reason = be.file_error(fid) or "no reason given"
            raise DataError(f"{shown} rejected {path.name} ({fid}): {reason}",
                            hint=f"Fix the file (`ftc data validate {path} --provider {be.name}`) and submit again.")
        if state == "missing":
            store.set_upload_status(upload_id, "deleted", verified=True)
            raise FtcError(f"{shown} lost {path.name} ({fid}) while processing it",
                           hint="Submit again: ftc uploads the file anew.")
        elapsed = max(waited, time.monotonic() - start)
        if elapsed >= timeout:
            raise FtcError(f"{shown} had not processed {path.name} ({fid}) after {elapsed:.0f} s",
                           hint="Submit again later: the upload is reused, nothing is sent twice.")
        if not said:
            _say(on_progress, f"waiting for {shown} to process {path.name}")
            said = True
        if job is not None:
            store.heartbeat(job.id)
        w = min(delay, max(timeout - elapsed, 0.0))
        be.sleep(w)
        waited += w
        delay = min(max(delay * 1.5, 0.5), 30.0)


# --------------------------------------------------------------------------- the create


def _since(op: Any) -> datetime | None:
    started = to_datetime(getattr(op, "started_at", None))
    return started - RECONCILE_MARGIN if started else None


def _reconcile(be: "Backend", job: "Job", store: "Store", since: datetime | None,
               on_progress: ProgressCallback | None) -> tuple[str | None, bool]:
    """(provider job id or None, checked). ``checked`` is False when the listing itself
    failed, so "not found" could not be established."""
    attempts = max(1, int(be.reconcile_attempts))
    wait = float(be.reconcile_wait_s)
    for attempt in range(1, attempts + 1):
        _say(on_progress, f"looking for {job.id} among {display_name(be)}'s jobs (attempt {attempt}/{attempts})")
        try:
            found = be.find_by_client_token(job.client_token, since=since)
        except ProviderError as e:
            if getattr(e, "status_code", None) in (401, 403):
                raise
            log.warning("reconcile %s: listing jobs failed: %s", job.id, e)
            return None, False
        if found:
            return found, True
        if attempt < attempts:
            store.heartbeat(job.id)
            be.sleep(wait)
            wait *= 2
    return None, True


def _adopt(be: "Backend", job: "Job", store: "Store", op: Any, found: str,
           on_progress: ProgressCallback | None) -> SubmitResult:
    """Record a job found by reconciliation as the answer to create operation ``op``."""
    store.finish_operation(op.id, {"id": found, "reconciled": True}, provider_job_id=found)
    _say(on_progress, f"{job.id} exists at {display_name(be)} as {found}", 1.0)
    job = store.get_job(job.id)
    return SubmitResult(found, state=_neutral(job.state), raw={"id": found, "reconciled": True})


def _unknown_error(be: "Backend", job: "Job", why: str, cause: ProviderError | None = None) -> AmbiguousResult:
    shown = display_name(be)
    return AmbiguousResult(
        f"{job.id}: it is not known whether {shown} created the job ({why}); "
        f"it stays submit_unknown and nothing more was sent",
        f"Run `ftc jobs resume {job.id}` later: it looks for the job by its client token before creating anything.",
        provider=be.name, op="create fine-tuning job",
        status_code=getattr(cause, "status_code", None), request_id=getattr(cause, "request_id", None),
        error=getattr(cause, "error", None), reason=getattr(cause, "reason", "") or why,
    )


def create_once(be: "Backend", spec: Any, *, job: "Job", store: "Store", on_progress: ProgressCallback | None = None,
                confirm: Callable[[dict], bool] | None = None) -> SubmitResult:
    """Upload the data and create the job exactly once through ``be``; safe to call again
    after a crash (see the module's docstring for the steps)."""
    shown = display_name(be)
    job = store.get_job(job.id)
    if job.provider_job_id:
        return SubmitResult(job.provider_job_id, state=_neutral(job.state))

    for op in store.operations(job.id, "create"):
        if not op.is_open:
            continue
        _say(on_progress, f"an earlier create of {job.id} has no recorded answer ({op.state}); reconciling with {shown}")
        found, checked = _reconcile(be, job, store, _since(op), on_progress)
        if found:
            return _adopt(be, job, store, op, found, on_progress)
        if not checked:
            raise _unknown_error(be, job, "its jobs could not be listed to check")
        store.fail_operation(op.id, f"reconciled: no {shown} job carries this client token", ambiguous=False)

    be.check_submit(spec)  # e.g. a retired model, or one the provider does not train: before any upload

    train = valid = None
    if be.uploads_files:
        train = ensure_uploaded(be, spec.data.train, store=store, job=job, on_progress=on_progress)
        if getattr(spec.data, "eval", None):
            valid = ensure_uploaded(be, spec.data.eval, store=store, job=job, on_progress=on_progress)

    quote = be.provider_quote(spec, training_file=train)
    if quote is not None and confirm is not None and not confirm(quote):
        store.update_state(job.id, "cancelled", error="not confirmed: the provider's estimate was declined")
        raise Declined(f"{job.id}: not submitted; nothing was created at {shown}",
                              hint="The provider's estimate was declined; files uploaded stay reusable.")

    kw = dict(training_file=train, validation_file=valid, client_token=job.client_token, job=job)
    request = be.create_request(spec, **kw)
    creates = 0
    while True:
        op = store.begin_operation(job.id, "create", request, client_token=job.client_token)
        creates += 1
        store.mark_sent(op.id)
        _say(on_progress, f"creating the fine-tuning job at {shown}")
        try:
            raw = be.create_job(spec, **kw)
        except AmbiguousResult as e:
            store.fail_operation(op.id, e, ambiguous=True)
            _say(on_progress, f"the create call's outcome is unknown ({e.reason or e}); reconciling with {shown}")
            found, checked = _reconcile(be, job, store, _since(op), on_progress)
            if found:
                return _adopt(be, job, store, op, found, on_progress)
            if checked and creates < max(1, int(be.max_creates)):
                store.fail_operation(op.id, f"reconciled: no {shown} job carries this client token", ambiguous=False)
                continue
            raise _unknown_error(be, job, "its jobs could not be listed to check" if not checked else
                                 f"none was found after {creates} create attempt(s)", cause=e) from e
        except ProviderError as e:  # a definite refusal: nothing was created
            store.fail_operation(op.id, e, ambiguous=False)
            raise
        # Anything else (an interrupt, a bug) leaves the operation `sent`: resume reconciles.
        if not isinstance(raw, Mapping) or not raw.get("id"):
            raise FtcError(f"{shown} answered the create without a job id")
        pid = str(raw["id"])
        st = be.job_state(raw)
        store.finish_operation(op.id, dict(raw), provider_job_id=pid, state=st)
        _say(on_progress, f"created {pid} at {shown}", 1.0)
        return SubmitResult(pid, state=st or JobState.QUEUED, raw=dict(raw))


# --------------------------------------------------------------------------- the backend's side


class BackendBase:
    """Defaults for the parts of :class:`Backend` most backends share; subclass it.

    A subclass implements ``name``, the offline checks (``validate``, ``estimate``,
    ``preflight``), ``create_job`` and ``find_by_client_token``, and the job queries. The
    write-ahead create itself (uploads once per content, the create recorded before it is
    sent, reconciliation after a crash or an ambiguous answer) is the core's
    :func:`create_once`, which calls the hooks below; :meth:`submit` runs it.
    """

    name: str = ""
    display: str = ""
    #: Whether the data files are uploaded before the create (a backend that reads them in
    #: place, or takes them inside the create request, says False).
    uploads_files: bool = False
    #: The purpose uploads are made and looked up under.
    upload_purpose: str = "fine-tune"
    #: Reconciliation listings after an ambiguous create (a provider's job list can lag).
    reconcile_attempts: int = 3
    #: Seconds before the second reconciliation listing; doubles each time.
    reconcile_wait_s: float = 2.0
    #: Creates one submission may send in all (the first and at most one more after a
    #: reconciliation that found nothing).
    max_creates: int = 2
    #: First poll interval and total wait for the provider to process an uploaded file.
    file_poll_s: float = 2.0
    file_timeout_s: float = 600.0

    def sleep(self, seconds: float) -> None:
        """How the core's waits (file processing, reconciliation) sleep; tests replace it."""
        time.sleep(seconds)

    def check_submit(self, spec: "JobSpec") -> None:
        return None

    def upload_file(self, path: "Path", purpose: str) -> str:
        raise NotImplementedError(f"{type(self).__name__} uploads no files (uploads_files is False)")

    def file_state(self, file_id: str) -> str:
        return "processed"

    def file_error(self, file_id: str) -> str | None:
        return None

    def provider_quote(self, spec: "JobSpec", *, training_file: str | None) -> Mapping[str, Any] | None:
        return None

    def create_request(self, spec: "JobSpec", *, training_file: str | None, validation_file: str | None,
                       client_token: str, job: Any) -> dict[str, Any]:
        req: dict[str, Any] = {"model": spec.model_for(self.name), "client_token": client_token}
        if training_file:
            req["training_file"] = training_file
        if validation_file:
            req["validation_file"] = validation_file
        return req

    def job_state(self, raw: Mapping[str, Any]) -> JobState | None:
        return None

    def submit(self, spec: "JobSpec", *, job: Any, store: Any, on_progress: ProgressCallback | None = None,
               confirm: Callable[[dict], bool] | None = None) -> SubmitResult:
        """Upload the data and create the job exactly once (:func:`create_once`)."""
        return create_once(self, spec, job=job, store=store, on_progress=on_progress, confirm=confirm)

    def ensure_uploaded(self, path: Any, *, store: Any, job: Any = None, purpose: str | None = None,
                        on_progress: ProgressCallback | None = None) -> str:
        """The provider's id of ``path``'s content, uploaded once (:func:`ensure_uploaded`)."""
        return ensure_uploaded(self, path, store=store, job=job, purpose=purpose, on_progress=on_progress)
