"""The shared half of every hosted backend (OpenAI, Together, ...).

:class:`HostedBackend` implements what does not depend on the provider: uploading a file
once per content (sha256, recorded in the job store), waiting until the provider has
processed it, and creating the job exactly once (write-ahead operation, client token,
reconcile before any second create). A provider module subclasses it and implements a
handful of small hooks, each one HTTP call (or one listing) wide:

====================  =====================================================================
hook                  what it does
====================  =====================================================================
``_make_client``      the SDK client (``get_key(self.name)`` + ``sdk_client_kwargs(self.sdk)``)
``_upload``           upload one file, return the provider's file id
``_file_state``       ``"processed"``, ``"pending"``, ``"error"`` or ``"missing"``
``_file_error``       (optional) the provider's reason for a file in ``"error"``
``_create_request``   the create request as a JSON-able dict (stored write-ahead; no secrets)
``_create``           create the job from that request, return the raw job (a dict)
``_find_job``         the id of the job carrying ``client_token``, or None
``_check_model``      (optional) before any upload: refuse a model the provider does not train
``_provider_estimate``(optional) the provider's own price estimate, passed to ``confirm``
``_raw_state``        (optional) the neutral state of a raw job (default: ``queued``)
====================  =====================================================================

Every call goes through :meth:`HostedBackend._call` (``ftclient.retry.retry_call`` with
this backend's policy), so the one retry policy applies; the create is the only call made
with ``idempotent=False``. See docs/providers.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from ftclient.backends import JobState, ProgressCallback, SubmitResult, to_datetime
from ftclient.errors import DataError, FtcError, SpecError
from ftclient.retry import DEFAULT_POLICY, AmbiguousResult, ProviderError, RetryPolicy, retry_call

__all__ = ["HostedBackend", "SubmitCancelled", "sha256_file"]

log = logging.getLogger("ftclient.providers")

#: How far before the create operation's start a reconciling listing looks (clock skew
#: between this machine and the provider, and the time the request spent in flight).
RECONCILE_MARGIN = timedelta(minutes=15)


class SubmitCancelled(FtcError):
    """``confirm`` said no: nothing was created at the provider (exit 1)."""

    exit_code = 1


def sha256_file(path: Path, chunk: int = 1 << 20) -> tuple[str, int]:
    """(hex sha256, size in bytes) of a file, read in chunks."""
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


class HostedBackend:
    """Base class of the hosted backends: uploads, write-ahead create, reconciliation.

    ``client``: an SDK client to use (tests pass one pointed at the emulator); by default
    one is built on first use from the key (``get_key``) with the SDK's own retries off.
    ``policy``: the retry policy for every call. ``on_retry``: called with each
    ``RetryEvent``. ``catalogue``: the price catalogue (retirement dates, estimates).
    ``today``: the date preflight checks against (tests). ``sleep``: used for the waits of
    this class (file processing, reconciliation), not for the policy's retries.
    ``file_poll_s`` / ``file_timeout_s``: first poll interval and total wait for the
    provider to process an uploaded file.
    """

    name: str = ""
    key_env: str = ""
    sdk: str = ""
    display: str = ""
    #: The ftclient extra that installs the SDK (``pip install "ftclient[hosted]"``).
    install_extra: str = "hosted"

    #: Reconciliation listings after an ambiguous create (a provider's job list can lag).
    reconcile_attempts: int = 3
    #: Seconds before the second reconciliation listing; doubles each time.
    reconcile_wait_s: float = 2.0
    #: Creates one submit() call may send in all (the first and at most one more after a
    #: reconciliation that found nothing).
    max_creates: int = 2

    def __init__(self, *, client: Any = None, policy: RetryPolicy | None = None,
                 on_retry: Callable[[Any], None] | None = None, catalogue: Any = None,
                 today: date | None = None, sleep: Callable[[float], None] = time.sleep,
                 file_poll_s: float = 2.0, file_timeout_s: float = 600):
        self._client = client
        self.policy = policy or DEFAULT_POLICY
        self.on_retry = on_retry
        self._catalogue = catalogue
        self.today = today
        self.sleep = sleep
        self.file_poll_s = float(file_poll_s)
        self.file_timeout_s = float(file_timeout_s)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # ------------------------------------------------------------------ plumbing

    @property
    def requires(self) -> tuple[str, ...]:
        """The modules this backend imports when it works: its SDK (checked before a job is recorded)."""
        return (self.sdk,) if self.sdk else ()

    def needs_key(self) -> bool:
        """A key is read only when the client is built here (not for a client passed in)."""
        return self._client is None

    @property
    def client(self) -> Any:
        """The SDK client, built on first use (so constructing a backend needs no key)."""
        if self._client is None:
            self._client = self._make_client()
        return self._client

    @property
    def catalogue(self) -> Any:
        if self._catalogue is None:
            from ftclient.prices import load_catalogue

            self._catalogue = load_catalogue(today=self.today)
        return self._catalogue

    def _today(self) -> date:
        return self.today or date.today()

    @property
    def _display(self) -> str:
        return self.display or self.name.capitalize()

    def _call(self, op: str, fn: Callable[[], Any], *, idempotent: bool = True) -> Any:
        """``fn()`` under the retry policy (``idempotent=False`` only for creates)."""
        return retry_call(fn, op=op, idempotent=idempotent, policy=self.policy, provider=self.name,
                          key_env=self.key_env or None, on_retry=self.on_retry)

    def _chat_text(self, op: str, send: Callable[[], Any], *, hint: str) -> str:
        """The text of one chat reply. ``send()`` opens the SDK's streaming response
        (``...with_streaming_response.create(...)``); its body is read as ``ftc eval`` reads a
        reply: at most ``DEFAULT_MAX_REPLY_BYTES``, within ``DEFAULT_TIMEOUT_S`` as a whole, then
        checked by :func:`ftclient.evaluation.parse_reply`. A reply that is too large, too slow
        or no chat completion (an HTML page, invalid UTF-8, ``"choices": []``) is a
        ProviderError, never an empty answer, and never held in memory whole."""
        from ftclient.evaluation import DEFAULT_MAX_REPLY_BYTES, DEFAULT_TIMEOUT_S, BadReply, parse_reply

        def read() -> bytes:
            t0, body = time.monotonic(), bytearray()
            with send() as resp:
                for chunk in resp.iter_bytes():
                    body += chunk
                    if len(body) > DEFAULT_MAX_REPLY_BYTES:
                        raise BadReply(f"the reply is larger than {DEFAULT_MAX_REPLY_BYTES:,} bytes")
                    if time.monotonic() - t0 > DEFAULT_TIMEOUT_S:
                        raise BadReply(f"no complete reply within {DEFAULT_TIMEOUT_S:g} s")
            return bytes(body)

        try:
            return parse_reply(self._call(op, read))["text"]
        except BadReply as e:
            raise ProviderError(f"{self._display} {op}: {e.reason}", hint, provider=self.name, op=op,
                                reason=e.reason) from None

    # ------------------------------------------------------------------ hooks

    def _make_client(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _upload(self, path: Path, purpose: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _file_state(self, file_id: str) -> str:  # pragma: no cover - abstract
        """``processed``, ``pending``, ``error`` or ``missing`` (404 / deleted)."""
        raise NotImplementedError

    def _file_error(self, file_id: str) -> str | None:
        """The provider's reason for a file in state ``error`` (after ``_file_state``)."""
        return None

    def _create_request(self, spec: Any, *, training_file: str, validation_file: str | None,
                        client_token: str, job: Any) -> dict:
        """The create request, JSON-able, without secrets; recorded before it is sent."""
        req = {"model": spec.model_for(self.name), "training_file": training_file, "client_token": client_token}
        if validation_file:
            req["validation_file"] = validation_file
        return req

    def _create(self, spec: Any, *, training_file: str, validation_file: str | None, client_token: str,
                job: Any) -> dict:  # pragma: no cover - abstract
        """Create the job (one request) and return the raw job; must attach ``client_token``."""
        raise NotImplementedError

    def _find_job(self, client_token: str, *, since: datetime | None) -> str | None:  # pragma: no cover
        raise NotImplementedError

    def _check_model(self, spec: Any) -> None:
        """Before anything is uploaded: raise (e.g. SpecError) when the provider does not
        fine-tune ``spec``'s model. Its requests go through :meth:`_call`. Default: no check."""
        return None

    def _provider_estimate(self, spec: Any, *, training_file: str) -> dict | None:
        """The provider's own estimate before creating (Together's estimate-price); None if none."""
        return None

    def _raw_state(self, raw: Mapping[str, Any]) -> JobState | None:
        """The neutral state of a raw job as ``_create`` returned it (None: let the store decide)."""
        return None

    # ------------------------------------------------------------------ offline checks

    def validate(self, spec: Any, data_path: Any) -> Any:
        """Check a data file against this provider's rules (offline)."""
        from ftclient.validation import validate_file

        return validate_file(data_path, self.name, model=spec.model_for(self.name), method=spec.method)

    def estimate(self, spec: Any) -> Any:
        """The catalogue's training-cost estimate for ``spec`` (offline)."""
        from ftclient.cost import estimate_cost

        return estimate_cost(spec.data.train, f"{self.name}:{spec.model_for(self.name)}",
                             epochs=spec.hyperparameters.epochs, method=spec.method, adapter=spec.adapter,
                             prices=self.catalogue, today=self.today)

    def retirement(self, spec: Any) -> tuple[date | None, date | None]:
        """(the date new fine-tuning jobs end, the date fine-tuned models shut down) for
        ``spec``'s model, from the price catalogue (``train_cutoff``,
        ``inference_shutdown``); (None, None) when it has neither."""
        ref = f"{self.name}:{spec.model_for(self.name)}"
        cat = self.catalogue
        try:
            entry = cat.model(ref)
        except FtcError:  # not in the catalogue: no dates known
            return None, None
        return entry.train_cutoff, entry.inference_shutdown

    def _retirement_check(self, spec: Any, today: date | None = None) -> list[str]:
        """Warnings before the catalogue's ``train_cutoff``; on or after it, SpecError (exit 2)
        before any request. ``inference_shutdown`` is said in the past tense once passed."""
        t = today or self._today()
        cutoff, shutdown = self.retirement(spec)
        model = spec.model_for(self.name)
        tail = ""
        if shutdown is not None:
            tail = (f"; fine-tuned {model} models were shut down on {shutdown.isoformat()} and no longer answer"
                    if t >= shutdown else f"; fine-tuned {model} models stop serving on {shutdown.isoformat()}")
        if cutoff is not None and t >= cutoff:
            raise SpecError(
                f"{self._display} no longer accepts new fine-tuning jobs for {model}: they ended on "
                f"{cutoff.isoformat()} (today is {t.isoformat()}){tail}. Nothing was sent.",
                hint="Choose another model or backend (`ftc cost compare` lists them), e.g. --backend together "
                     "or --backend local.",
            )
        out = []
        if cutoff is not None:
            days = (cutoff - t).days
            out.append(f"{self._display} accepts new fine-tuning jobs for {model} only until {cutoff.isoformat()} "
                       f"({days} day{'s' if days != 1 else ''} left){tail}: plan a move to another backend.")
        elif shutdown is not None:
            out.append(f"Fine-tuned {model} models " + ("were shut down on " if t >= shutdown else "stop serving on ")
                       + f"{shutdown.isoformat()}.")
        return out

    def preflight(self, spec: Any, *, today: date | None = None) -> list[str]:
        """Offline checks before anything is sent: warnings; FtcError when refused."""
        return self._retirement_check(spec, today)

    # ------------------------------------------------------------------ uploads

    def ensure_uploaded(self, path: Any, *, store: Any, job: Any = None, purpose: str = "fine-tune",
                        on_progress: ProgressCallback | None = None) -> str:
        """The provider's id of ``path``'s content, uploading it only if needed, once processed.

        A file whose sha256 the store has seen for this provider and purpose is reused
        while the provider still has it; one it lost (404, deleted) is uploaded again.
        The upload is recorded write-ahead (an ``upload`` operation) and retried freely
        (a duplicate file costs nothing). Then waits until the provider has processed it;
        a file the provider rejects raises DataError with the provider's reason.
        """
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no such file", hint="Check data.train / data.eval in the job spec.")
        sha, size = sha256_file(path)
        job_id = getattr(job, "id", None)
        if job_id is not None:
            self._settle_open_uploads(store, job_id, sha)
        # One upload per content, also across processes: the first uploads, the others
        # wait for it and reuse its file (a killed uploader's lock ends with it).
        lock = getattr(store, "upload_lock", None)
        held = (lock(self.name, sha, purpose, on_wait=lambda: _say(
                    on_progress, f"another ftc process is uploading the same content as {path.name}; waiting for it"))
                if lock is not None else contextlib.nullcontext())
        with held:
            fid, upload_id, processed = self._upload_once(path, sha, size, purpose, store=store, job_id=job_id,
                                                          on_progress=on_progress)
        if not processed:
            self._wait_processed(fid, path, store=store, job=job, upload_id=upload_id, on_progress=on_progress)
        return fid

    def _upload_once(self, path: Path, sha: str, size: int, purpose: str, *, store: Any, job_id: str | None,
                     on_progress: ProgressCallback | None) -> tuple[str, int, bool]:
        """The recorded upload of this content if the provider still has it, else a new one:
        ``(file id, upload row id, whether the provider has processed it)``."""
        up = store.find_upload(self.name, sha, purpose)
        if up is not None and up.provider_file_id and up.status not in ("failed", "deleted"):
            fid = up.provider_file_id
            state = self._call(f"check file {fid}", lambda: self._file_state(fid))
            if state == "missing":
                _say(on_progress, f"{self._display} no longer has {path.name} ({fid}); uploading it again")
                store.set_upload_status(up.id, "deleted", verified=True)
            elif state == "error":
                _say(on_progress, f"{self._display} marked the earlier upload of {path.name} ({fid}) as failed; "
                                  "uploading it again")
                store.set_upload_status(up.id, "failed", verified=True)
            else:
                store.set_upload_status(up.id, "processed" if state == "processed" else "uploaded", verified=True)
                _say(on_progress, f"{path.name}: same content already uploaded to {self._display} as {fid}; reusing it",
                     1.0)
                return fid, up.id, state == "processed"

        _say(on_progress, f"uploading {path.name} ({size:,} bytes) to {self._display}", 0.0)
        op = store.begin_operation(job_id, "upload", {"file": path.name, "sha256": sha, "bytes": size,
                                                      "purpose": purpose, "provider": self.name})
        store.mark_sent(op.id)
        try:
            fid = self._call(f"upload {path.name}", lambda: self._upload(path, purpose), idempotent=True)
        except BaseException as e:
            # A repeated upload is harmless, so even an uncertain one counts as not done.
            store.fail_operation(op.id, e if isinstance(e, Exception) else "interrupted", ambiguous=False)
            raise
        rec = store.record_upload(self.name, sha, bytes=size, provider_file_id=fid, purpose=purpose,
                                  status="uploaded", filename=path.name)
        store.finish_operation(op.id, {"id": fid, "sha256": sha, "bytes": size})
        _say(on_progress, f"uploaded {path.name} as {fid}", 1.0)
        return fid, rec.id, False

    def _settle_open_uploads(self, store: Any, job_id: str, sha: str) -> None:
        """Close the upload operations of this content a killed process left open: the upload
        is simply done again (a duplicate file is harmless), so they count as not done."""
        for op in store.operations(job_id, "upload"):
            req = op.request if isinstance(getattr(op, "request", None), Mapping) else {}
            if op.is_open and req.get("sha256") == sha and req.get("provider", self.name) == self.name:
                store.fail_operation(op.id, "interrupted before it finished; uploaded again", ambiguous=False)

    def _wait_processed(self, fid: str, path: Path, *, store: Any, job: Any, upload_id: int,
                        on_progress: ProgressCallback | None) -> None:
        waited = 0.0
        start = time.monotonic()
        delay = max(self.file_poll_s, 0.0)
        said = False
        while True:
            state = self._call(f"check file {fid}", lambda: self._file_state(fid))
            if state == "processed":
                store.set_upload_status(upload_id, "processed", verified=True)
                return
            if state == "error":
                store.set_upload_status(upload_id, "failed", verified=True)
                reason = self._file_error(fid) or "no reason given"
                raise DataError(f"{self._display} rejected {path.name} ({fid}): {reason}",
                                hint=f"Fix the file (`ftc data validate {path} --provider {self.name}`) and submit again.")
            if state == "missing":
                store.set_upload_status(upload_id, "deleted", verified=True)
                raise FtcError(f"{self._display} lost {path.name} ({fid}) while processing it",
                               hint="Submit again: ftc uploads the file anew.")
            elapsed = max(waited, time.monotonic() - start)
            if elapsed >= self.file_timeout_s:
                raise FtcError(f"{self._display} had not processed {path.name} ({fid}) after {elapsed:.0f} s",
                               hint="Submit again later: the upload is reused, nothing is sent twice.")
            if not said:
                _say(on_progress, f"waiting for {self._display} to process {path.name}")
                said = True
            if job is not None:
                store.heartbeat(job.id)
            w = min(delay, max(self.file_timeout_s - elapsed, 0.0))
            self.sleep(w)
            waited += w
            delay = min(max(delay * 1.5, 0.5), 30.0)

    # ------------------------------------------------------------------ weights

    download_refusal = "it does not offer downloads of fine-tuned weights"

    def download(self, provider_job_id: str, dest: Path, *, checkpoint: str = "adapter", step: int | None = None,
                 on_progress: ProgressCallback | None = None) -> Path:
        """Save the job's model or a checkpoint to ``dest`` (atomically), where the provider
        allows it. This base refuses; a provider that offers downloads overrides it."""
        from ftclient.errors import UsageError

        raise UsageError(f"cannot download {provider_job_id} from {self._display}: {self.download_refusal}",
                         hint="Use the model through the provider's API, e.g. `ftc chat JOB PROMPT`.")

    # ------------------------------------------------------------------ reconciliation

    def find_by_client_token(self, client_token: str, *, since: datetime | None = None) -> str | None:
        """The provider job id of the job created with ``client_token``, if any."""
        return self._call("find job by client token", lambda: self._find_job(client_token, since=since))

    def _reconcile(self, job: Any, store: Any, since: datetime | None,
                   on_progress: ProgressCallback | None) -> tuple[str | None, bool]:
        """(provider job id or None, checked). ``checked`` is False when the listing itself
        failed, so "not found" could not be established."""
        wait = self.reconcile_wait_s
        for attempt in range(1, self.reconcile_attempts + 1):
            _say(on_progress, f"looking for {job.id} among {self._display}'s jobs "
                              f"(attempt {attempt}/{self.reconcile_attempts})")
            try:
                found = self.find_by_client_token(job.client_token, since=since)
            except ProviderError as e:
                if isinstance(e, FtcError) and getattr(e, "status_code", None) in (401, 403):
                    raise
                log.warning("reconcile %s: listing jobs failed: %s", job.id, e)
                return None, False
            if found:
                return found, True
            if attempt < self.reconcile_attempts:
                store.heartbeat(job.id)
                self.sleep(wait)
                wait *= 2
        return None, True

    @staticmethod
    def _since(op: Any) -> datetime | None:
        started = to_datetime(getattr(op, "started_at", None))
        return started - RECONCILE_MARGIN if started else None

    # ------------------------------------------------------------------ submit

    def submit(self, spec: Any, *, job: Any, store: Any, on_progress: ProgressCallback | None = None,
               confirm: Callable[[dict], bool] | None = None) -> SubmitResult:
        """Upload the data and create the job exactly once; safe to call again after a crash.

        1. A job the store already knows at the provider is returned as is.
        2. An earlier create left open (crash, ambiguous failure) is reconciled by the
           job's client token first: found -> recorded and returned; not found -> settled
           as failed, and a new create may go.
        3. Training (and eval) files are uploaded once per content (:meth:`ensure_uploaded`).
        4. ``confirm(provider_estimate)``: False -> the job is ``cancelled``, nothing created.
        5. The create is recorded write-ahead, sent once; an ambiguous failure is
           reconciled (a few listings); only a definite "not found" allows one more create.
           Otherwise the job stays ``submit_unknown`` and AmbiguousResult tells the user to
           run ``ftc jobs resume``.
        """
        job = store.get_job(job.id)
        if job.provider_job_id:
            return SubmitResult(job.provider_job_id, state=_neutral(job.state))

        for op in store.operations(job.id, "create"):
            if not op.is_open:
                continue
            _say(on_progress, f"an earlier create of {job.id} has no recorded answer ({op.state}); "
                              f"reconciling with {self._display}")
            found, checked = self._reconcile(job, store, self._since(op), on_progress)
            if found:
                return self._adopt(job, store, op, found, on_progress)
            if not checked:
                raise self._unknown_error(job, "its jobs could not be listed to check")
            store.fail_operation(op.id, f"reconciled: no {self._display} job carries this client token",
                                 ambiguous=False)

        self._retirement_check(spec)  # a retired model is refused before any request
        self._check_model(spec)  # a model the provider does not train: refused before any upload

        train = self.ensure_uploaded(spec.data.train, store=store, job=job, on_progress=on_progress)
        valid = None
        if getattr(spec.data, "eval", None):
            valid = self.ensure_uploaded(spec.data.eval, store=store, job=job, on_progress=on_progress)

        est = self._provider_estimate(spec, training_file=train)
        if est is not None and confirm is not None and not confirm(est):
            store.update_state(job.id, "cancelled", error="not confirmed: the provider's estimate was declined")
            raise SubmitCancelled(f"{job.id}: not submitted; nothing was created at {self._display}",
                                  hint="The provider's estimate was declined; files uploaded stay reusable.")

        kw = dict(training_file=train, validation_file=valid, client_token=job.client_token, job=job)
        request = self._create_request(spec, **kw)
        creates = 0
        while True:
            op = store.begin_operation(job.id, "create", request, client_token=job.client_token)
            creates += 1
            store.mark_sent(op.id)
            _say(on_progress, f"creating the fine-tuning job at {self._display}")
            try:
                raw = self._call("create fine-tuning job", lambda: self._create(spec, **kw), idempotent=False)
            except AmbiguousResult as e:
                store.fail_operation(op.id, e, ambiguous=True)
                _say(on_progress, f"the create call's outcome is unknown ({e.reason or e}); "
                                  f"reconciling with {self._display}")
                found, checked = self._reconcile(job, store, self._since(op), on_progress)
                if found:
                    return self._adopt(job, store, op, found, on_progress)
                if checked and creates < self.max_creates:
                    store.fail_operation(op.id, f"reconciled: no {self._display} job carries this client token",
                                         ambiguous=False)
                    continue
                raise self._unknown_error(job, "its jobs could not be listed to check" if not checked else
                                          f"none was found after {creates} create attempt(s)", cause=e) from e
            except ProviderError as e:  # a definite refusal: nothing was created
                store.fail_operation(op.id, e, ambiguous=False)
                raise
            # Anything else (an interrupt, a bug) leaves the operation `sent`: resume reconciles.
            if not isinstance(raw, Mapping) or not raw.get("id"):
                raise FtcError(f"{self._display} answered the create without a job id")
            pid = str(raw["id"])
            st = self._raw_state(raw)
            store.finish_operation(op.id, dict(raw), provider_job_id=pid, state=st)
            _say(on_progress, f"created {pid} at {self._display}", 1.0)
            return SubmitResult(pid, state=st or JobState.QUEUED, raw=dict(raw))

    def _adopt(self, job: Any, store: Any, op: Any, found: str, on_progress: ProgressCallback | None) -> SubmitResult:
        """Record a job found by reconciliation as the answer to create operation ``op``."""
        store.finish_operation(op.id, {"id": found, "reconciled": True}, provider_job_id=found)
        _say(on_progress, f"{job.id} exists at {self._display} as {found}", 1.0)
        job = store.get_job(job.id)
        return SubmitResult(found, state=_neutral(job.state), raw={"id": found, "reconciled": True})

    def _unknown_error(self, job: Any, why: str, cause: ProviderError | None = None) -> AmbiguousResult:
        return AmbiguousResult(
            f"{job.id}: it is not known whether {self._display} created the job ({why}); "
            f"it stays submit_unknown and nothing more was sent",
            f"Run `ftc jobs resume {job.id}` later: it looks for the job by its client token before "
            "creating anything.",
            provider=self.name, op="create fine-tuning job",
            status_code=getattr(cause, "status_code", None), request_id=getattr(cause, "request_id", None),
            error=getattr(cause, "error", None), reason=getattr(cause, "reason", "") or why,
        )


def _neutral(state: Any) -> JobState:
    try:
        return JobState(str(state))
    except ValueError:
        return JobState.PENDING


def epoch(dt: datetime | None) -> float | None:
    """Unix seconds of ``dt`` (naive = UTC), or None."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()
