"""The shared half of every hosted backend (OpenAI, Together, ...).

The write-ahead create (uploads once per content, the create recorded before it is sent,
reconciliation by client token) is the core's :func:`ftclient.jobs.create_once`; it asks a
backend for the provider calls of :class:`ftclient.submission.BackendBase`.
:class:`HostedBackend` performs those calls under the one retry policy, the retirement
checks of the price catalogue, and the chat reply reading. A provider module subclasses it
and implements a handful of small hooks, each one HTTP call (or one listing) wide:

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

import logging
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

from ftclient.backends import JobState, ProgressCallback
from ftclient.errors import FtcError, SpecError, UsageError
from ftclient.retry import DEFAULT_POLICY, ProviderError, RetryPolicy, retry_call
from ftclient.submission import BackendBase

__all__ = ["HostedBackend", "as_dict"]

log = logging.getLogger("ftclient.providers")

class HostedBackend(BackendBase):
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

    #: The data files are uploaded before the create.
    uploads_files: bool = True

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

    # ------------------------------------------------------------------ the provider calls of a submission

    def check_submit(self, spec: Any) -> None:
        """A retired model, or one the provider does not train: refused before any upload."""
        self._retirement_check(spec)
        self._check_model(spec)

    def upload_file(self, path: Path, purpose: str) -> str:
        return self._call(f"upload {path.name}", lambda: self._upload(path, purpose), idempotent=True)

    def file_state(self, file_id: str) -> str:
        return self._call(f"check file {file_id}", lambda: self._file_state(file_id))

    def file_error(self, file_id: str) -> str | None:
        return self._file_error(file_id)

    def provider_quote(self, spec: Any, *, training_file: str | None) -> dict | None:
        return self._provider_estimate(spec, training_file=training_file) if training_file else None

    def create_request(self, spec: Any, *, training_file: str | None, validation_file: str | None,
                       client_token: str, job: Any) -> dict:
        return self._create_request(spec, training_file=training_file, validation_file=validation_file,
                                    client_token=client_token, job=job)

    def create_job(self, spec: Any, *, training_file: str | None, validation_file: str | None, client_token: str,
                   job: Any) -> dict:
        return self._call("create fine-tuning job", lambda: self._create(
            spec, training_file=training_file, validation_file=validation_file, client_token=client_token, job=job),
            idempotent=False)

    def job_state(self, raw: Mapping[str, Any]) -> JobState | None:
        return self._raw_state(raw)

    # ------------------------------------------------------------------ weights

    download_refusal = "it does not offer downloads of fine-tuned weights"

    def download(self, provider_job_id: str, dest: Path, *, checkpoint: str = "adapter", step: int | None = None,
                 on_progress: ProgressCallback | None = None) -> Path:
        """Save the job's model or a checkpoint to ``dest`` (atomically), where the provider
        allows it. This base refuses; a provider that offers downloads overrides it."""
        raise UsageError(f"cannot download {provider_job_id} from {self._display}: {self.download_refusal}",
                         hint="Use the model through the provider's API, e.g. `ftc chat JOB PROMPT`.")

    # ------------------------------------------------------------------ reconciliation

    def find_by_client_token(self, client_token: str, *, since: datetime | None = None) -> str | None:
        """The provider job id of the job created with ``client_token``, if any."""
        return self._call("find job by client token", lambda: self._find_job(client_token, since=since))


def as_dict(obj: Any) -> dict[str, Any]:
    """An SDK object (a Stainless or pydantic model) as the JSON the API sent, with its wire
    names (``model_output_name``, ``outputModel``), or a mapping as a dict."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        try:
            return to_dict(mode="json")
        except TypeError:  # pragma: no cover - other to_dict signatures
            return to_dict()
    dump = getattr(obj, "model_dump", None)
    if callable(dump):
        return dump(mode="json", by_alias=True, exclude_none=True)
    return dict(vars(obj))  # pragma: no cover


def epoch(dt: datetime | None) -> float | None:
    """Unix seconds of ``dt`` (naive = UTC), or None."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()
