"""OpenAI fine-tuning through the official ``openai`` SDK (3.x, HTTP via httpx2).

``OpenAIBackend`` maps the neutral job spec onto ``POST /v1/fine_tuning/jobs``:

* ``model``: ``spec.model_for("openai")``;
* ``method``: ``{"type": "supervised", "supervised": {"hyperparameters": {...}}}`` or
  ``{"type": "dpo", "dpo": {"hyperparameters": {..., "beta": dpo_beta}}}`` with
  ``n_epochs`` (``hyperparameters.epochs``), ``batch_size``, and
  ``learning_rate_multiplier`` (``openai.learning_rate_multiplier``: OpenAI takes a
  multiplier of its own base rate, not a learning rate);
* ``suffix``, ``seed``, ``validation_file``;
* ``metadata``: the spec's ``openai.metadata`` plus ``ftc_client_token`` and ``ftc_job_id``,
  by which an ambiguous create is found again (``GET /fine_tuning/jobs?metadata[k]=v``).

OpenAI picks the training method (LoRA or full) itself: an ``adapter`` in the spec is
only noted in preflight. New fine-tuning jobs for the models in the price catalogue end
on their ``train_cutoff`` (2027-01-06; gpt-4.1-nano's ended on 2026-10-23, when its
fine-tuned models were shut down too); preflight warns before and refuses after (exit 2),
without any request.

Since 2026-07-02 (:data:`INACTIVE_RULE_SINCE`) OpenAI refuses new jobs from organisations
that have not run inference on a fine-tuned model in the last 60 days. ftc cannot see
that from here: preflight warns, and a create OpenAI refuses for this reason (an HTTP 4xx
whose message says so, :func:`refused_as_inactive`) ends in one :class:`FineTuningUnavailable`
(exit 2, no retry) naming the other backends. The SDK is imported only when a client is built.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

from ftclient.backends import Checkpoint, JobEvent, JobState, JobStatus, lazy_attr, map_state, to_datetime
from ftclient.errors import SpecError
from ftclient.fine_tunes import DownloadRefused, PastFineTune, ProviderFile
from ftclient.retry import RequestRejected, sdk_client_kwargs
from ftclient.secrets import get_key
from ftclient.tokens import OpenAICounter

from .._hosted import HostedBackend, epoch
from .validation import OpenAIChecker

__all__ = ["OpenAIBackend", "OPENAI_STATES", "CLIENT_TOKEN_KEY", "JOB_ID_KEY", "FineTuningUnavailable",
           "refused_as_inactive", "INACTIVE_RULE_SINCE", "INACTIVE_DAYS"]

log = logging.getLogger("ftclient.providers.openai")

#: The metadata keys ftc attaches to every job it creates.
CLIENT_TOKEN_KEY = "ftc_client_token"
JOB_ID_KEY = "ftc_job_id"

#: OpenAI's job states -> neutral states. The documented ones (FineTuningJob.status), and
#: those of the pause/resume endpoints (a paused job waits, like a queued one).
OPENAI_STATES: dict[str, JobState] = {
    "validating_files": JobState.VALIDATING_FILES,
    "queued": JobState.QUEUED,
    "running": JobState.RUNNING,
    "succeeded": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
    "cancelling": JobState.RUNNING,
    "pausing": JobState.RUNNING,
    "paused": JobState.QUEUED,
    "resuming": JobState.QUEUED,
}

# Limits of CreateFineTuningJobRequest (official OpenAPI document).
MAX_EPOCHS = 50
MAX_BATCH = 256
MAX_BETA = 2.0
MAX_METADATA = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_SEED = 2147483647


#: From this day on OpenAI refuses new fine-tuning jobs from organisations that have not run
#: inference on a fine-tuned model in the last INACTIVE_DAYS days (OpenAI's deprecations page:
#: "Creating fine-tuning jobs no longer available to organizations without inference on a
#: fine-tuned model in the past 60 days", 2026-07-02).
INACTIVE_RULE_SINCE = date(2026, 7, 2)
INACTIVE_DAYS = 60

#: What OpenAI's refusal of a create says when the organisation may not fine-tune (any more).
#: The exact code is not documented, so the message decides; statuses 400, 403 and 422 only.
_INACTIVE_TEXT = re.compile(
    r"\b60 days\b|inference on (a|any) fine-tuned model|fine-tun\w* (is|are) no longer (available|accessible)"
    r"|no longer (available|accessible) to (your |this )?organi[sz]ation|wind(ing)? down"
    r"|not (available|eligible|enabled) (to|for) (your |this )?organi[sz]ation",
    re.IGNORECASE)
_INACTIVE_STATUSES = (400, 403, 422)

ALTERNATIVES = "`ftc train SPEC --backend together` (or `--backend local` on your own GPU or CPU)"


class FineTuningUnavailable(RequestRejected):
    """OpenAI refused to create the job because the organisation may not start fine-tuning
    jobs (no fine-tuned-model inference in the last 60 days, or never fine-tuned). Nothing
    was created; a retry would not help (exit 2)."""

    exit_code = 2


def _error_text(e: BaseException) -> tuple[str, str]:
    """(message, code) of an SDK error, from its body (OpenAI unwraps ``error``) or message."""
    body = getattr(e, "body", None)
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        body = body["error"]
    msg = code = ""
    if isinstance(body, Mapping):
        msg = str(body.get("message") or "")
        code = str(body.get("code") or "")
    return (msg or str(getattr(e, "message", "") or "")), code


def refused_as_inactive(e: BaseException) -> bool:
    """Whether ``e`` (an SDK error from ``POST /fine_tuning/jobs``) is OpenAI refusing new
    fine-tuning jobs to this organisation (inactive for 60 days, or never fine-tuned)."""
    if _status_code(e) not in _INACTIVE_STATUSES:
        return False
    msg, code = _error_text(e)
    return bool(_INACTIVE_TEXT.search(msg) or _INACTIVE_TEXT.search(code.replace("_", " ")))


def _dump(obj: Any) -> dict:
    """An SDK model (or a dict) as a plain dict."""
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    for meth in ("to_dict", "model_dump"):
        f = getattr(obj, meth, None)
        if f is not None:
            try:
                return f(mode="json") if meth == "model_dump" else f()
            except TypeError:
                return f()
    return dict(vars(obj))


def _status_code(e: BaseException) -> int | None:
    sc = getattr(e, "status_code", None)
    return sc if isinstance(sc, int) else None


class OpenAIBackend(HostedBackend):
    """OpenAI's fine-tuning API as an ftc backend (see the module docstring)."""

    name = "openai"
    #: The ``openai:`` block of a job spec.
    options = lazy_attr(".options:OpenAIOptions", __package__)
    #: Its block in the commented example spec of ``ftc spec init``.
    spec_example = """\
openai:
  model: gpt-4.1-mini-2025-04-14
  suffix: support-intents
"""
    key_env = "OPENAI_API_KEY"
    sdk = "openai"
    display = "OpenAI"
    #: Its models' prices: ``prices.yaml`` beside this module, merged into ftc's price
    #: catalogue.
    price_catalogue = "prices.yaml"

    def __init__(self, **kw: Any):
        super().__init__(**kw)
        self._file_errors: dict[str, str] = {}

    # ------------------------------------------------------------------ client

    def _make_client(self) -> Any:
        import openai

        # The base URL is the SDK's own default or OPENAI_BASE_URL.
        return openai.OpenAI(api_key=get_key(self.name), **sdk_client_kwargs(self.sdk))

    # ------------------------------------------------------------------ offline checks

    @staticmethod
    def data_checker(model: str | None, method: str | None) -> Any:
        """OpenAI's rules for a training file (``ftc data validate --provider openai``)."""
        return OpenAIChecker(model, method)

    def preflight(self, spec: Any, *, today: date | None = None) -> list[str]:
        warnings = self._retirement_check(spec, today)
        if (today or self._today()) >= INACTIVE_RULE_SINCE:
            warnings.append(
                f"Since {INACTIVE_RULE_SINCE.isoformat()} OpenAI refuses new fine-tuning jobs from organisations that "
                f"have not run inference on a fine-tuned model in the last {INACTIVE_DAYS} days: if yours has not, "
                f"the create will be refused after the upload (nothing is billed); then use {ALTERNATIVES}.")
        hp = spec.hyperparameters
        if spec.adapter != "lora" or "adapter" in getattr(spec, "model_fields_set", ()):
            warnings.append(f"OpenAI does not expose LoRA or full fine-tuning: adapter {spec.adapter!r} is "
                            "ignored and OpenAI chooses the method itself.")
        if hp.learning_rate is not None and spec.openai.learning_rate_multiplier is None:
            warnings.append(f"OpenAI takes a learning-rate multiplier, not a rate: hyperparameters.learning_rate "
                            f"({hp.learning_rate:g}) is ignored; set openai.learning_rate_multiplier "
                            "(default: OpenAI's auto).")
        if hp.epochs > MAX_EPOCHS:
            raise SpecError(f"hyperparameters.epochs: OpenAI allows at most {MAX_EPOCHS} epochs, not {hp.epochs}")
        if hp.batch_size is not None and hp.batch_size > MAX_BATCH:
            raise SpecError(f"hyperparameters.batch_size: OpenAI allows at most {MAX_BATCH}, not {hp.batch_size}")
        if spec.method == "dpo" and hp.dpo_beta > MAX_BETA:
            raise SpecError(f"hyperparameters.dpo_beta: OpenAI allows at most {MAX_BETA:g}, not {hp.dpo_beta:g}")
        if hp.seed > MAX_SEED:
            raise SpecError(f"hyperparameters.seed: OpenAI allows at most {MAX_SEED}")
        meta = dict(spec.openai.metadata)
        reserved = [k for k in meta if k in (CLIENT_TOKEN_KEY, JOB_ID_KEY)]
        if reserved:
            raise SpecError(f"openai.metadata: {', '.join(reserved)} is set by ftc itself; remove it")
        if len(meta) + 2 > MAX_METADATA:
            raise SpecError(f"openai.metadata: at most {MAX_METADATA - 2} pairs (OpenAI allows {MAX_METADATA} and "
                            f"ftc uses 2), not {len(meta)}")
        for k, v in meta.items():
            if len(k) > MAX_METADATA_KEY or len(str(v)) > MAX_METADATA_VALUE:
                raise SpecError(f"openai.metadata.{k[:40]}: keys are at most {MAX_METADATA_KEY} characters, "
                                f"values at most {MAX_METADATA_VALUE}")
        if "max_seq_len" in getattr(hp, "model_fields_set", ()):
            warnings.append("OpenAI sets the context length itself: hyperparameters.max_seq_len is used only "
                            "to validate the data.")
        return warnings

    # ------------------------------------------------------------------ files

    def _upload(self, path: Path, purpose: str) -> str:
        with open(path, "rb") as f:
            return self.client.files.create(file=f, purpose=purpose).id

    def _file_state(self, file_id: str) -> str:
        try:
            f = self.client.files.retrieve(file_id)
        except Exception as e:
            if _status_code(e) == 404:
                return "missing"
            raise
        status = getattr(f, "status", None)
        if status == "processed":
            return "processed"
        if status == "error":
            self._file_errors[file_id] = getattr(f, "status_details", None) or "the file could not be processed"
            return "error"
        if status == "deleted":
            return "missing"
        return "pending"  # uploaded

    def _file_error(self, file_id: str) -> str | None:
        return self._file_errors.get(file_id)

    # ------------------------------------------------------------------ create

    def _create_request(self, spec: Any, *, training_file: str, validation_file: str | None,
                        client_token: str, job: Any) -> dict:
        hp_spec = spec.hyperparameters
        hp: dict[str, Any] = {"n_epochs": hp_spec.epochs}
        if hp_spec.batch_size is not None:
            hp["batch_size"] = hp_spec.batch_size
        if spec.openai.learning_rate_multiplier is not None:
            hp["learning_rate_multiplier"] = spec.openai.learning_rate_multiplier
        if spec.method == "dpo":
            hp["beta"] = hp_spec.dpo_beta
            method = {"type": "dpo", "dpo": {"hyperparameters": hp}}
        else:
            method = {"type": "supervised", "supervised": {"hyperparameters": hp}}
        metadata = {str(k): str(v) for k, v in spec.openai.metadata.items()}
        metadata[CLIENT_TOKEN_KEY] = client_token
        metadata[JOB_ID_KEY] = getattr(job, "id", "") or ""
        req: dict[str, Any] = {"model": spec.model_for(self.name), "training_file": training_file,
                               "method": method, "seed": hp_spec.seed, "metadata": metadata}
        if validation_file:
            req["validation_file"] = validation_file
        if spec.openai.suffix:
            req["suffix"] = spec.openai.suffix
        return req

    def _create(self, spec: Any, *, training_file: str, validation_file: str | None, client_token: str,
                job: Any) -> dict:
        req = self._create_request(spec, training_file=training_file, validation_file=validation_file,
                                   client_token=client_token, job=job)
        try:
            return _dump(self.client.fine_tuning.jobs.create(**req))
        except Exception as e:
            if not refused_as_inactive(e):
                raise
            said, _ = _error_text(e)
            rid = getattr(e, "request_id", None)
            # `from None`: the SDK error holds the request (and its Authorization header).
            raise FineTuningUnavailable(
                f"OpenAI refused to create the fine-tuning job: it takes new jobs only from organisations that ran "
                f"inference on a fine-tuned model in the last {INACTIVE_DAYS} days (since "
                f"{INACTIVE_RULE_SINCE.isoformat()}), and it does not count yours among them"
                + (f' (OpenAI: "{said[:300]}")' if said else "") + ". No job was created and nothing was billed.",
                hint=f"Train elsewhere: {ALTERNATIVES}; `ftc cost compare` prices them.",
                provider=self.name, op="create fine-tuning job", status_code=_status_code(e),
                request_id=rid if isinstance(rid, str) else None, reason="fine-tuning not available",
            ) from None

    def _raw_state(self, raw: Mapping[str, Any]) -> JobState | None:
        st = raw.get("status")
        return map_state(st, OPENAI_STATES, provider=self.name) if st else None

    def _find_job(self, client_token: str, *, since: datetime | None) -> str | None:
        cutoff = epoch(since)
        # The metadata filter returns only the matching jobs; the check below also works
        # where a server ignores it (then it pages back until `since`).
        for j in self.client.fine_tuning.jobs.list(metadata={CLIENT_TOKEN_KEY: client_token}, limit=100):
            meta = getattr(j, "metadata", None) or {}
            if meta.get(CLIENT_TOKEN_KEY) == client_token:
                return j.id
            if cutoff is not None and (getattr(j, "created_at", None) or 0) < cutoff:
                break
        return None

    # ------------------------------------------------------------------ jobs

    def _retrieve(self, provider_job_id: str) -> dict:
        return _dump(self._call(f"get job {provider_job_id}",
                                lambda: self.client.fine_tuning.jobs.retrieve(provider_job_id)))

    def _to_status(self, raw: dict, *, metrics: Mapping[str, Any] | None = None) -> JobStatus:
        state = map_state(raw.get("status"), OPENAI_STATES, provider=self.name)
        err = raw.get("error") or {}
        error = None
        if isinstance(err, Mapping) and (err.get("message") or err.get("code")):
            error = err.get("message") or err.get("code")
        eta = None
        fin = raw.get("estimated_finish")
        if fin and not state.final:
            eta = max(0.0, float(fin) - time.time())
        m = metrics or {}
        step = m.get("step")
        total = m.get("total_steps")
        loss = m.get("train_loss")
        return JobStatus(
            state=state, provider_state=raw.get("status"), fine_tuned_model=raw.get("fine_tuned_model"),
            error=error, trained_tokens=raw.get("trained_tokens"),
            step=int(step) if isinstance(step, (int, float)) else None,
            total_steps=int(total) if isinstance(total, (int, float)) else None,
            loss=float(loss) if isinstance(loss, (int, float)) else None, eta_seconds=eta, raw=raw)

    def _latest_metrics(self, provider_job_id: str) -> dict:
        """The newest metrics event's data (step, total_steps, train_loss), or {}."""
        page = self._call(f"list events of {provider_job_id}",
                          lambda: self.client.fine_tuning.jobs.list_events(provider_job_id, limit=50))
        for e in getattr(page, "data", []) or []:  # newest first
            data = _dump(getattr(e, "data", None)) if getattr(e, "data", None) is not None else {}
            if getattr(e, "type", None) == "metrics" or "step" in data:
                return data
        return {}

    def status(self, provider_job_id: str) -> JobStatus:
        raw = self._retrieve(provider_job_id)
        metrics = self._latest_metrics(provider_job_id) if raw.get("status") == "running" else None
        return self._to_status(raw, metrics=metrics)

    def events(self, provider_job_id: str, after: str | None = None) -> list[JobEvent]:
        """Events oldest first; with ``after``, only those newer than that event id.

        OpenAI lists newest first and its ``after`` cursor pages towards *older* events, so
        this pages from the newest until it meets ``after`` (or the start)."""

        def fetch() -> list[Any]:
            out = []
            for e in self.client.fine_tuning.jobs.list_events(provider_job_id, limit=100):
                if after is not None and e.id == after:
                    break
                out.append(e)
            return out

        evs = self._call(f"list events of {provider_job_id}", fetch)
        out = []
        for e in reversed(evs):
            data = _dump(e.data) if getattr(e, "data", None) is not None else {}
            if getattr(e, "type", None):
                data = {**data, "type": e.type}
            out.append(JobEvent(id=e.id, created_at=to_datetime(e.created_at), level=e.level or "info",
                                message=e.message or "", data=data))
        return out

    def checkpoints(self, provider_job_id: str) -> list[Checkpoint]:
        cps = self._call(f"list checkpoints of {provider_job_id}",
                         lambda: list(self.client.fine_tuning.jobs.checkpoints.list(provider_job_id, limit=100)))
        out = []
        for c in reversed(cps):  # the API lists newest first
            metrics = {k: float(v) for k, v in _dump(getattr(c, "metrics", None)).items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool)}
            out.append(Checkpoint(id=c.id, step=c.step_number, created_at=to_datetime(c.created_at),
                                  model_ref=c.fine_tuned_model_checkpoint, metrics=metrics))
        return out

    def cancel(self, provider_job_id: str) -> JobStatus:
        try:
            raw = _dump(self._call(f"cancel job {provider_job_id}",
                                   lambda: self.client.fine_tuning.jobs.cancel(provider_job_id)))
        except RequestRejected as e:
            if e.status_code in (400, 409):  # already finished: report where it is
                st = self.status(provider_job_id)
                if st.final:
                    return st
            raise
        return self._to_status(raw)

    def pause(self, provider_job_id: str) -> JobStatus:
        """Pause a running job (OpenAI only); ``resume`` continues it."""
        return self._to_status(_dump(self._call(f"pause job {provider_job_id}",
                                                lambda: self.client.fine_tuning.jobs.pause(provider_job_id))))

    def resume(self, provider_job_id: str) -> JobStatus:
        return self._to_status(_dump(self._call(f"resume job {provider_job_id}",
                                                lambda: self.client.fine_tuning.jobs.resume(provider_job_id))))

    def result(self, provider_job_id: str) -> str | None:
        raw = self._retrieve(provider_job_id)
        return raw.get("fine_tuned_model") if raw.get("status") == "succeeded" else None

    download_refusal = "OpenAI keeps fine-tuned weights on its side and serves them only through its API"

    #: A model name for examples in messages.
    example_model = "gpt-4.1-mini"

    @staticmethod
    def token_counter(name: str, *, tokenizer: str | None = None) -> Any:
        """OpenAI's exact count (tiktoken and the cookbook's per-message formula)."""
        return OpenAICounter(name)
    #: What OpenAI's keys start with (``ftc keys set`` warns about a likely mix-up).
    key_prefixes = ("sk-",)

    @staticmethod
    def owns_model_name(model: str) -> bool:
        """Whether a model name given without ``openai:`` is OpenAI's (gpt-*, o1/o3/o4*, ft:...)."""
        return model.strip().lower().startswith(("gpt-", "o1", "o3", "o4", "ft:", "chatgpt"))

    @staticmethod
    def fine_tuned_base(model: str) -> tuple[bool, str | None]:
        """(whether ``model`` is a fine-tuned model, its base): OpenAI names them
        ``ft:BASE:ORG:SUFFIX:ID``."""
        if not model.startswith("ft:"):
            return False, None
        parts = model.split(":")
        return True, (parts[1] if len(parts) > 1 and parts[1] else None)

    #: The request field that bounds a reply's length (the Chat Completions API's current name).
    chat_token_param = "max_completion_tokens"

    def async_chat_client(self, *, timeout_s: float, max_reply_bytes: int, concurrency: int) -> Any:
        """The openai SDK's async client for ``ftc eval``: replies read through a transport that
        stops at ``max_reply_bytes``; the base URL is the SDK's default or OPENAI_BASE_URL."""
        import openai

        from ftclient.evaluation import capped_http_client, openai_http_module, request_timeouts

        http = capped_http_client(openai, openai_http_module(), max_reply_bytes=max_reply_bytes,
                                  connections=concurrency)
        return openai.AsyncOpenAI(api_key=get_key(self.name), http_client=http,
                                  **sdk_client_kwargs(self.sdk, **request_timeouts(timeout_s)))

    # ------------------------------------------------------------------ migration source

    #: ``ftc migrate`` can list this account's fine-tunes (see ftclient.migrate.source).
    lists_fine_tunes = True

    def fine_tunes(self) -> list[PastFineTune]:
        """Every fine-tuning job of the organisation, newest first (all pages)."""
        jobs = self._call("list fine-tuning jobs", lambda: list(self.client.fine_tuning.jobs.list(limit=100)))
        out = []
        for j in jobs:
            raw = _dump(j)
            method = raw.get("method") if isinstance(raw.get("method"), Mapping) else {}
            mtype = str(method.get("type") or "supervised")
            hp = dict(raw.get("hyperparameters") or {})
            block = method.get(mtype) if isinstance(method.get(mtype), Mapping) else {}
            hp.update({k: v for k, v in dict(block.get("hyperparameters") or {}).items() if v is not None})
            err = raw.get("error") if isinstance(raw.get("error"), Mapping) else {}
            out.append(PastFineTune(
                source=self.name, job_id=str(raw.get("id")), status=str(raw.get("status") or ""),
                base_model=str(raw.get("model") or ""), fine_tuned_model=raw.get("fine_tuned_model"),
                created_at=to_datetime(raw.get("created_at")), finished_at=to_datetime(raw.get("finished_at")),
                method=mtype, hyperparameters=hp,
                trained_tokens=raw.get("trained_tokens") if isinstance(raw.get("trained_tokens"), int) else None,
                training_file=raw.get("training_file"), validation_file=raw.get("validation_file"),
                suffix=raw.get("user_provided_suffix"),
                error=(err.get("message") or err.get("code")) if err else None))
        return out

    def file_info(self, file_id: str) -> ProviderFile:
        """The metadata of an uploaded file (``exists`` False once OpenAI no longer has it)."""
        try:
            f = _dump(self._call(f"get file {file_id}", lambda: self.client.files.retrieve(file_id)))
        except RequestRejected as e:
            if e.status_code == 404:
                return ProviderFile(id=file_id, exists=False)
            raise
        size = f.get("bytes")
        return ProviderFile(id=file_id, filename=f.get("filename"), bytes=size if isinstance(size, int) else None,
                            created_at=to_datetime(f.get("created_at")), purpose=f.get("purpose"),
                            exists=f.get("status") != "deleted")

    def download_file(self, file_id: str, dest: Path, *, max_bytes: int) -> None:
        """The file's bytes into ``dest`` (streamed; at most ``max_bytes``). OpenAI does not
        hand out files uploaded for fine-tuning: that refusal is a DownloadRefused."""
        def fetch() -> None:
            n = 0
            with self.client.with_streaming_response.files.content(file_id) as resp, open(dest, "wb") as out:
                for chunk in resp.iter_bytes():
                    n += len(chunk)
                    if n > max_bytes:
                        raise DownloadRefused(f"OpenAI file {file_id} is larger than {max_bytes:,} bytes; not downloaded")
                    out.write(chunk)

        try:
            self._call(f"download file {file_id}", fetch)
        except RequestRejected as e:
            if e.status_code in (400, 403, 404):
                msg, _ = _error_text(e.error) if e.error is not None else ("", "")
                why = msg or e.message
                raise DownloadRefused(f"OpenAI does not hand out file {file_id}: {why}",
                                      hint="Use your own copy of the file.") from None
            raise

    def chat(self, model: str, messages: Sequence[Mapping[str, Any]], **kw: Any) -> str:
        """One chat completion; its text. The reply's body is checked as ``ftc eval`` checks
        it (:func:`ftclient.evaluation.parse_reply`): one that is no chat completion (an HTML
        page, invalid UTF-8, ``"choices": []``) is a ProviderError, not an empty answer."""
        return self._chat_text(f"chat with {model}", lambda: self.client.chat.completions.with_streaming_response.create(
            model=model, messages=[dict(m) for m in messages], **kw),
            hint="The reply was not a chat completion; check the base URL (OPENAI_BASE_URL) or try again.")
