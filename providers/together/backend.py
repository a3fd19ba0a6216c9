"""Together AI fine-tuning as an ftc backend.

``TogetherBackend`` maps the provider-neutral :class:`~ftclient.spec.JobSpec` onto
Together's fine-tuning API through the official ``together`` SDK (3.x, over ``httpx``).
The shared submit flow (sha256 upload dedupe, write-ahead create, reconciliation after
an ambiguous create) lives in :class:`ftclient.providers._hosted.HostedBackend`; this
module supplies Together's hooks and the read-side calls (status, events, checkpoints,
cancel, result, chat).

Everything that turns a spec into a request, or a Together object into a neutral record,
is a plain module-level function (``create_arguments``, ``job_status``, ``job_event``,
``job_checkpoint``, ``suffix_for``, ``matches_token``...) so it can be tested without a
client. The ``together`` SDK is imported only when a client is built or a request is
made, so importing this module (and listing the backends) stays fast.

Facts this module relies on (together 3.1.1, checked in its source):

* ``fine_tuning.create()`` sends **three** requests: ``GET /v1/fine-tunes/models/limits``
  (skipped when ``model_limits=`` is passed), ``POST /v1/fine-tunes/estimate-price``
  (always, even with ``model_limits=``), then ``POST /v1/fine-tunes``. ftc therefore does
  not call ``create()``: it fetches the limits and the estimate with their own idempotent
  calls, builds the request body with the SDK's own ``create_finetune_request`` (which
  runs the SDK's client-side checks against the limits), and sends only
  ``POST /v1/fine-tunes`` as the one non-idempotent call.
* Together jobs have no metadata field: the client token travels in ``suffix``
  (``<suffix or spec name>-<token[:8]>``, at most 40 characters), which Together copies
  into ``model_output_name`` (``<user>/<model>-<suffix>-<id8>``).
* Event objects have no id; their ``hash`` is used (or a digest of the event when absent).
* A LoRA fine-tuned model on Together is served from a **dedicated endpoint** billed per
  hour while it is on (the price catalogue says which models and at what rate).
* Together fine-tunes many more models than ftc's catalogue lists. Before anything is
  uploaded, ``GET /v1/fine-tunes/models/limits?model_name=...`` (the SDK's
  ``fine_tuning.model_limits``) is asked for the spec's model; a 404 there means Together
  does not fine-tune it, and ``GET /v1/fine-tunes/models/supported`` (no SDK method in
  3.1.1: the client's low-level ``get``) gives the closest names for the message. Both go
  through ftc's retry policy. A model the catalogue does not list is priced offline by
  Together's published size tier from its parameter count (``ftclient.prices``); with no
  known size, ftc has no figure of its own and the budget applies to Together's quote.
* Together charges no minimum (docs.together.ai/docs/fine-tuning/pricing).
"""

from __future__ import annotations

import difflib
import logging
import re
import warnings
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ftclient.backends import (
    Checkpoint,
    JobEvent,
    JobState,
    JobStatus,
    lazy_attr,
    map_state,
    to_datetime,
)
from ftclient.errors import ConfigError, SpecError
from ftclient.fileio import atomic_writer
from ftclient.retry import ProviderError, RequestRejected, sdk_client_kwargs
from ftclient.secrets import get_key

from .._hosted import HostedBackend, as_dict
from .validation import TogetherChecker

if TYPE_CHECKING:  # pragma: no cover
    from ftclient.cost import CostEstimate
    from ftclient.spec import JobSpec

__all__ = [
    "TogetherBackend",
    "TogetherJobStatus",
    "TOGETHER_STATES",
    "SUFFIX_MAX",
    "TOKEN_CHARS",
    "create_arguments",
    "suffix_for",
    "token_tag",
    "matches_token",
    "job_status",
    "job_event",
    "job_events",
    "job_checkpoint",
    "failure_reason",
    "find_in_jobs",
    "as_dict",
]

log = logging.getLogger("ftclient.providers.together")

PROVIDER = "together"
KEY_ENV = "TOGETHER_API_KEY"

#: Together's documented limit on ``suffix`` (SDK docstring: "Up to 40 character suffix";
#: the published OpenAPI document gives no maximum).
SUFFIX_MAX = 40
#: How many hex characters of the client token go into the suffix (32 bits: a collision
#: between two of one user's jobs with the same base suffix is about 1 in 4 billion).
TOKEN_CHARS = 8

#: Together's job states (``FinetuneJobStatus`` in the OpenAPI document, plus the SDK's
#: ``user_error``) onto the neutral ones. ``compressing`` and ``uploading`` come after
#: training but before the model can be called, so the job is still ``running``;
#: ``cancel_requested`` is not final either (it becomes ``cancelled``), and the job may
#: still be using GPUs, so it also reads as ``running`` (``provider_state`` says which).
TOGETHER_STATES: dict[str, JobState] = {
    "pending": JobState.PENDING,
    "queued": JobState.QUEUED,
    "running": JobState.RUNNING,
    "compressing": JobState.RUNNING,
    "uploading": JobState.RUNNING,
    "cancel_requested": JobState.RUNNING,
    "completed": JobState.SUCCEEDED,
    "error": JobState.FAILED,
    "user_error": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}

DEDICATED_NOTE = ("A LoRA fine-tuned model on Together is served from a dedicated endpoint, billed per hour "
                  "while it is on{rate}; start one in the Together console (or `together endpoints create`) "
                  "before calling the model, and stop it when done.")


# --------------------------------------------------------------------------- helpers


def _clean_suffix(text: str) -> str:
    """Letters, digits and single dashes (the characters every Together model name takes)."""
    s = re.sub(r"[^A-Za-z0-9-]+", "-", text or "")
    return re.sub(r"-{2,}", "-", s).strip("-")


def token_tag(client_token: str) -> str:
    """The part of the client token that goes into the suffix (lowercase hex)."""
    tag = re.sub(r"[^0-9a-f]", "", (client_token or "").lower())[:TOKEN_CHARS]
    if len(tag) < TOKEN_CHARS:
        raise ValueError(f"client token {client_token!r} has fewer than {TOKEN_CHARS} hex digits")
    return tag


def suffix_for(spec: "JobSpec", client_token: str) -> str:
    """``<suffix or spec name>-<token[:8]>``, cleaned and cut to fit ``SUFFIX_MAX``."""
    tag = token_tag(client_token)
    base = _clean_suffix(spec.together.suffix or spec.name)
    room = SUFFIX_MAX - len(tag) - 1
    base = base[:room].rstrip("-")
    return f"{base}-{tag}" if base else tag


def matches_token(job: Mapping[str, Any], client_token: str) -> bool:
    """Whether a Together job (dict) carries this client token in its suffix or output name."""
    tag = token_tag(client_token)
    rx = re.compile(rf"(?:^|[-/]){re.escape(tag)}(?:-|$)", re.IGNORECASE)
    suffix = job.get("suffix") or ""
    if suffix and rx.search(suffix):
        return True
    out = job.get("model_output_name") or job.get("output_name") or ""
    return bool(out and rx.search(out))


def find_in_jobs(jobs: Sequence[Mapping[str, Any]], client_token: str, *, since: Any = None,
                 remembered: tuple[str, str] | None = None, training_file: str | None = None,
                 model: str | None = None) -> str | None:
    """The id of the job in ``jobs`` (Together job dicts) created with ``client_token``.

    1. Jobs whose ``suffix`` or ``model_output_name`` carries ``token[:8]``: the oldest.
    2. Else, among jobs with neither a suffix nor an output name (so a name that cannot be
       checked), the one with this ``training_file`` (+ ``model``) created at or after
       ``since`` -- only when exactly one qualifies; ``remembered`` = (training_file, model)
       fills in what the caller does not know.
    """
    hits = [j for j in jobs if matches_token(j, client_token)]
    if hits:
        if len(hits) > 1:
            log.warning("together: %d jobs carry client token %s...; using the oldest",
                        len(hits), token_tag(client_token))
        hits = sorted(hits, key=lambda j: _created(j) or datetime.max.replace(tzinfo=timezone.utc))
        return str(hits[0]["id"])
    if remembered and not training_file:
        training_file, model = remembered
    since_dt = to_datetime(since) if since is not None else None
    if not training_file or since_dt is None:
        return None
    cands = [j for j in jobs
             if not j.get("suffix") and not j.get("model_output_name")
             and j.get("training_file") == training_file and (model is None or j.get("model") == model)
             and (_created(j) is not None and _created(j) >= since_dt)]
    return str(cands[0]["id"]) if len(cands) == 1 else None


def _created(j: Mapping[str, Any]) -> datetime | None:
    try:
        return to_datetime(j.get("created_at"))
    except ValueError:
        return None


def _file_state_of(f: Mapping[str, Any]) -> str:
    """``processed`` | ``pending`` | ``error`` from a Together ``FileResponse`` (dict)."""
    st = str(f.get("processing_status") or "").upper()
    if st in ("FAILED", "INVALID_FORMAT", "ERROR"):
        return "error"
    if st == "COMPLETED" or (not st and f.get("Processed", True)):
        return "processed"
    return "pending"


def _lora_modules(target: Any) -> str:
    if isinstance(target, str):
        return target
    return ",".join(str(m) for m in target)


def create_arguments(spec: "JobSpec", *, training_file: str, validation_file: str | None = None,
                     client_token: str) -> dict[str, Any]:
    """Keyword arguments for together's ``create_finetune_request`` / ``fine_tuning.create``.

    Mapping (spec -> Together):

    ============================  ================================================
    ``together.model``/base_model ``model``
    ``method: sft``               ``training_method="sft"``, ``train_on_inputs``
    ``method: dpo``               ``training_method="dpo"``, ``dpo_beta``
    ``adapter: lora``             ``lora=True``, ``lora_r``, ``lora_alpha``,
                                  ``lora_dropout``, ``lora_trainable_modules``
    ``adapter: qlora``            same as lora (Together has no QLoRA; preflight warns)
    ``adapter: full``             ``lora=False`` (``training_type: Full``)
    ``epochs``                    ``n_epochs``
    ``learning_rate``             ``learning_rate`` (omitted when null: Together's 1e-5)
    ``batch_size``                ``batch_size`` (``"max"`` when null)
    ``seed``                      ``random_seed``
    ``max_seq_len``               ``max_seq_length``, only when set in the spec
    ``together.n_checkpoints``    ``n_checkpoints``
    ``together.warmup_ratio``     ``warmup_ratio``
    ``together.n_evals``          ``n_evals`` (when the spec has it); otherwise one
                                  evaluation per epoch when there is a validation file
    ``together.suffix`` or name   ``suffix`` = ``<that>-<client token[:8]>``
    ============================  ================================================
    """
    hp = spec.hyperparameters
    tg = spec.together
    args: dict[str, Any] = {
        "model": spec.model_for(PROVIDER),
        "training_file": training_file,
        "n_epochs": int(hp.epochs),
        "n_checkpoints": int(tg.n_checkpoints),
        "warmup_ratio": float(tg.warmup_ratio),
        "batch_size": int(hp.batch_size) if hp.batch_size else "max",
        "random_seed": int(hp.seed),
        "suffix": suffix_for(spec, client_token),
        "training_method": spec.method,
    }
    if hp.learning_rate is not None:
        args["learning_rate"] = float(hp.learning_rate)
    if "max_seq_len" in hp.model_fields_set:
        args["max_seq_length"] = int(hp.max_seq_len)
    if spec.method == "sft":
        args["train_on_inputs"] = tg.train_on_inputs
    else:
        args["dpo_beta"] = float(hp.dpo_beta)
    if spec.adapter in ("lora", "qlora"):
        lora = hp.lora
        args.update(lora=True, lora_r=int(lora.r), lora_alpha=int(lora.alpha), lora_dropout=float(lora.dropout),
                    lora_trainable_modules=_lora_modules(lora.target_modules))
    else:
        args["lora"] = False
    if validation_file:
        args["validation_file"] = validation_file
        n_evals = getattr(tg, "n_evals", None)
        args["n_evals"] = int(n_evals) if n_evals is not None else max(1, int(hp.epochs))
    return args


# --------------------------------------------------------------------------- read side


@dataclass
class TogetherJobStatus(JobStatus):
    """:class:`JobStatus` plus how the fine-tuned model is served."""

    serving_note: str | None = None
    """Set when the model needs a dedicated endpoint to be called (LoRA models on Together)."""


def _level(value: Any) -> str:
    v = str(value or "info").lower()
    if "error" in v:
        return "error"
    if "warn" in v:
        return "warning"
    return "info"


def _event_id(e: Mapping[str, Any]) -> str:
    h = e.get("hash")
    if h:
        return str(h)
    import hashlib  # OpenSSL's bindings (about 3 ms) only for events, not when the class is read

    basis = "|".join(str(e.get(k, "")) for k in ("created_at", "type", "step", "message"))
    return "tg-" + hashlib.sha256(basis.encode()).hexdigest()[:16]


_LOSS = re.compile(r"\bloss\b[^0-9-]{0,3}(-?[0-9]*\.?[0-9]+(?:e-?[0-9]+)?)", re.IGNORECASE)


def job_event(e: Mapping[str, Any]) -> JobEvent:
    """One Together ``FineTuneEvent`` (dict) as a :class:`JobEvent`."""
    data = {k: e[k] for k in ("type", "step", "total_steps", "checkpoint_path", "model_path", "token_count",
                              "param_count", "wandb_url") if e.get(k) not in (None, "")}
    m = _LOSS.search(e.get("message") or "")
    if m:
        try:
            data["loss"] = float(m.group(1))
        except ValueError:  # pragma: no cover
            pass
    try:
        created = to_datetime(e.get("created_at"))
    except ValueError:
        created = None
    return JobEvent(id=_event_id(e), created_at=created, level=_level(e.get("level")),
                    message=str(e.get("message") or e.get("type") or ""), data=data)


def job_events(raw_events: Sequence[Mapping[str, Any]], after: str | None = None) -> list[JobEvent]:
    """Together's events, oldest first; only those after event id ``after`` when it is among
    them (Together's events endpoint has no cursor: it always returns the whole list)."""
    evs = [job_event(e) for e in raw_events]
    # Stable sort by time: Together sends them oldest first; keep that order for equal stamps.
    evs = [ev for _, ev in sorted(enumerate(evs), key=lambda p: (p[1].created_at is None,
                                                                 p[1].created_at or datetime.min, p[0]))]
    if after is not None:
        ids = [ev.id for ev in evs]
        if after in ids:
            evs = evs[ids.index(after) + 1:]
    return evs


def failure_reason(raw_events: Sequence[Mapping[str, Any]]) -> str | None:
    """Together's own reason for a failed job: the last ``job_error`` event's message
    (else the last error-level event's)."""
    chosen = None
    for e in raw_events:
        if e.get("type") == "job_error":
            chosen = e
    if chosen is None:
        for e in raw_events:
            if _level(e.get("level")) == "error":
                chosen = e
    return (chosen.get("message") or None) if chosen else None


def _progress(raw_events: Sequence[Mapping[str, Any]]) -> tuple[int | None, int | None, float | None]:
    step = total = None
    loss = None
    for e in raw_events:
        if e.get("step"):
            step = int(e["step"])
            if e.get("total_steps"):
                total = int(e["total_steps"])
            m = _LOSS.search(e.get("message") or "")
            if m:
                try:
                    loss = float(m.group(1))
                except ValueError:  # pragma: no cover
                    pass
    return step, total, loss


def job_status(job: Mapping[str, Any], events: Sequence[Mapping[str, Any]] | None = None, *,
               serving_note: str | None = None) -> TogetherJobStatus:
    """A Together job (dict, as ``GET /fine-tunes/{id}`` sends it) as a neutral status.

    ``events``: the job's events when fetched separately (default: the job's ``events``).
    """
    provider_state = job.get("status")
    state = map_state(provider_state, TOGETHER_STATES, provider=PROVIDER)
    evs = list(events if events is not None else (job.get("events") or []))
    step, total, loss = _progress(evs)
    if state is JobState.SUCCEEDED and total and step is not None:
        step = max(step, total)
    eta = None
    prog = job.get("progress") or {}
    if isinstance(prog, Mapping) and prog.get("estimate_available") and prog.get("seconds_remaining") is not None:
        eta = float(prog["seconds_remaining"])
    error = None
    if state is JobState.FAILED:
        error = failure_reason(evs) or f"Together reported the job as {provider_state!r} without a reason"
    out = job.get("model_output_name") or job.get("output_name")
    return TogetherJobStatus(
        state=state,
        provider_state=str(provider_state) if provider_state is not None else None,
        fine_tuned_model=out if state is JobState.SUCCEEDED else None,
        error=error,
        trained_tokens=int(job["token_count"]) if job.get("token_count") and state is JobState.SUCCEEDED else None,
        step=step,
        total_steps=total,
        loss=loss,
        eta_seconds=eta,
        raw=dict(job),
        serving_note=serving_note if state is JobState.SUCCEEDED else None,
    )


def job_checkpoint(cp: Mapping[str, Any], job_id: str) -> Checkpoint:
    """One Together ``FineTuneCheckpoint`` (dict) as a :class:`Checkpoint`.

    ``id`` and ``model_ref`` are Together's ``path``: ``<job>:<step>`` for an intermediate
    checkpoint (what ``from_checkpoint`` takes), the output model's name for the final
    merged one (what ``chat`` calls), ``<name>_adapter`` for the final adapter.
    """
    step = cp.get("step")
    path = cp.get("path") or f"{job_id}:{step}"
    try:
        created = to_datetime(cp.get("created_at"))
    except ValueError:
        created = None
    return Checkpoint(id=str(path), step=int(step) if step is not None else None, created_at=created,
                      model_ref=str(path), metrics={})


def _closest_hint(model: str, supported: Sequence[str]) -> str:
    """The supported names closest to ``model`` (whole name, then its last part), for a hint."""
    if not supported:
        return "Together's list of supported models could not be read; check the name on together.ai."
    by_tail: dict[str, str] = {}
    for m in supported:
        by_tail.setdefault(m.rsplit("/", 1)[-1].lower(), m)
    close = difflib.get_close_matches(model, list(supported), n=3, cutoff=0.5)
    for t in difflib.get_close_matches(model.rsplit("/", 1)[-1].lower(), list(by_tail), n=3, cutoff=0.5):
        if by_tail[t] not in close:
            close.append(by_tail[t])
    close = close[:3]
    if close:
        return f"Did you mean {', '.join(close)}? Set together.model (or base_model) in the spec."
    return f"Together fine-tunes e.g. {', '.join(sorted(supported)[:5])}; set together.model (or base_model)."


# --------------------------------------------------------------------------- backend


class TogetherBackend(HostedBackend):
    """Fine-tuning on Together AI (``ftc train --backend together``)."""

    name = PROVIDER
    key_env = KEY_ENV
    sdk = "together"
    #: The ``together:`` block of a job spec.
    options = lazy_attr(".options:TogetherOptions", __package__)
    #: Its block in the commented example spec of ``ftc spec init``.
    spec_example = """\
together:
  model: meta-llama/Meta-Llama-3.1-8B-Instruct-Reference
  suffix: support-intents
"""
    display = "Together"
    #: Its models' prices (and size tier): ``prices.yaml`` beside this module, merged into
    #: ftc's price catalogue.
    price_catalogue = "prices.yaml"

    #: The learning rate Together trains with when the request names none.
    DEFAULT_LEARNING_RATE = 1e-5

    def default_learning_rate(self, method: str = "sft", adapter: str = "lora") -> float | None:
        """The learning rate a spec without one trains with (Together's own default)."""
        return self.DEFAULT_LEARNING_RATE

    # ------------------------------------------------------------------ offline

    @staticmethod
    def data_checker(model: str | None, method: str | None) -> Any:
        """Together's rules for a training file (``ftc data validate --provider together``)."""
        return TogetherChecker(model, method)

    #: Its fine-tuned weights can be downloaded (``ftc jobs download``), then exported.
    downloads_weights = True
    #: What ``ftc eval`` adds when Together does not serve a model (a LoRA fine-tune needs its endpoint).
    undeployed_hint = DEDICATED_NOTE.format(rate="")
    #: The request field that bounds a reply's length.
    chat_token_param = "max_tokens"
    #: A model name for examples in messages.
    example_model = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"

    def async_chat_client(self, *, timeout_s: float, max_reply_bytes: int, concurrency: int) -> Any:
        """The together SDK's async client for ``ftc eval``: replies read through a transport that
        stops at ``max_reply_bytes``; the base URL is the SDK's default or TOGETHER_BASE_URL."""
        import httpx
        import together

        from ftclient.evaluation import capped_http_client, request_timeouts

        http = capped_http_client(together, httpx, max_reply_bytes=max_reply_bytes, connections=concurrency)
        return together.AsyncTogether(api_key=get_key(self.name), http_client=http,
                                      **sdk_client_kwargs(self.sdk, **request_timeouts(timeout_s)))

    def preflight(self, spec: "JobSpec", *, today: date | None = None) -> list[str]:
        """Checks before anything is sent. Raises ``SpecError`` for a job Together will not
        take; returns warnings (qlora submitted as LoRA, dedicated-endpoint serving, a model
        ftc's catalogue does not know)."""
        warns: list[str] = list(super().preflight(spec, today=today))
        model = spec.model_for(PROVIDER)
        if model == "default":
            raise SpecError("together: no base model: base_model is 'default' (the local SmolLM2 model), "
                            "which Together does not fine-tune",
                            hint="Set together.model (or base_model), e.g. "
                                 "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference.")
        if spec.method not in ("sft", "dpo"):  # pragma: no cover - the spec allows only these
            raise SpecError(f"together: method {spec.method!r} is not supported", hint="Use sft or dpo.")
        if spec.adapter == "qlora":
            warns.append("together has no QLoRA: adapter 'qlora' is submitted as LoRA with the same r, alpha, "
                         "dropout and target modules (Together trains the adapter on its own GPUs, so the "
                         "4-bit memory saving has no use there; billed at the LoRA price)")
        if spec.method != "sft" and spec.together.train_on_inputs != "auto":
            warns.append("together.train_on_inputs applies to SFT only; it is ignored for DPO")
        entry = self._catalogue_entry(model)
        why = self._unpriced_reason(model, spec.method, spec.adapter)
        if why is not None:
            listed = "is not in ftc's price catalogue and " if entry is None else ""
            warns.append(f"together model {model!r} {listed}cannot be priced by ftc ({why}): no estimate of "
                         "ftc's own; the budget applies to Together's quote, asked before the job is created. "
                         "Together checks the model name before anything is uploaded")
        if entry is not None:
            note = self._serving_note(model, spec.adapter)
            if note:
                warns.append(note)
        if spec.data.eval is not None and getattr(spec.together, "n_evals", None) is None:
            warns.append(f"together: evaluating on {spec.data.eval.name} once per epoch "
                         f"(n_evals={max(1, spec.hyperparameters.epochs)})")
        return warns

    # ------------------------------------------------------------------ catalogue

    def _catalogue_entry(self, model: str) -> Any:
        """The price catalogue's entry for a Together model (listed, or priced by its size
        tier), or None when it cannot price it."""
        try:
            return self.catalogue.model(f"{PROVIDER}:{model}")
        except ConfigError:
            return None

    def _unpriced_reason(self, model: str, method: str = "sft", adapter: str = "lora") -> str | None:
        """Why ftc's catalogue cannot price training ``model`` this way, or None when it can."""
        try:
            self.catalogue.model(f"{PROVIDER}:{model}").training_price(method, adapter)
        except ConfigError as e:
            return "its size is unknown" if "size is unknown" in e.message else e.message
        return None

    def estimate(self, spec: "JobSpec") -> "CostEstimate":
        """The catalogue's estimate (a listed model, or one priced by Together's size tier from
        its parameter count); for a model ftc cannot price (no known size, no tier that
        large), a :class:`~ftclient.cost.CostEstimate` of the tokens without a figure
        (``cost_usd`` None): the budget then applies to Together's own quote, asked before the
        job is created."""
        model = spec.model_for(PROVIDER)
        why = self._unpriced_reason(model, spec.method, spec.adapter)
        if why is None:
            return super().estimate(spec)
        from ftclient.cost import CostEstimate, epochs_for
        from ftclient.cost.counts import Counts
        from ftclient.tokens import get_counter

        ref = f"{PROVIDER}:{model}"
        counts = Counts.of(spec.data.train)  # a pre-tokenized Parquet file: its own exact counts
        counter = counts.pretokenized if counts.pretokenized is not None else get_counter(ref)
        per_epoch = int(sum(counts.split(counter)[0]))
        epochs, epochs_basis = epochs_for(spec.hyperparameters.epochs, counts.n)
        return CostEstimate(
            model=ref, provider=PROVIDER, kind="hosted", method=spec.method, adapter=spec.adapter,
            examples=counts.n, tokens_per_epoch=per_epoch, epochs=epochs, epochs_basis=epochs_basis,
            billed_tokens=per_epoch * epochs, cost_usd=None, cost_before_minimum_usd=None, min_charge_usd=0.0,
            min_charge_applied=False, token_count_basis=counter.basis, token_count_exact=bool(counter.exact),
            cost_exact=False, cost_basis=f"unknown: ftc cannot price {model} ({why})", price={},
            caveats=[f"ftc cannot price {model} ({why}): the budget applies to Together's own quote "
                     "(estimate-price), asked before the job is created"])

    def describe_run(self, spec: "JobSpec") -> list[tuple[str, str]]:
        """Plan rows: how the training price was found (listed model or size tier) and that
        Together's own quote is checked against the budget too."""
        model = spec.model_for(PROVIDER)
        why = self._unpriced_reason(model, spec.method, spec.adapter)
        if why is not None:
            basis = f"unknown to ftc ({why})"
        else:
            entry = self.catalogue.model(f"{PROVIDER}:{model}")
            price = entry.training_price(spec.method, spec.adapter)
            how = entry.tier_basis(spec.method, spec.adapter) or "the catalogue's price"
            basis = f"${price:g} per 1M tokens: {how}" + ("" if entry.listed else "; model not listed in ftc's catalogue")
        return [("price", basis),
                ("provider quote", "Together's estimate-price, after the upload; the budget applies to it too")]

    def _serving_note(self, model: str, adapter: str = "lora") -> str | None:
        if adapter == "full":
            return None
        entry = self._catalogue_entry(model)
        if entry is not None and entry.serving != "dedicated":
            return None
        rate = ""
        if entry is not None and entry.dedicated_endpoint_per_hour:
            gpu = f" ({entry.dedicated_gpu})" if entry.dedicated_gpu else ""
            rate = f" (about ${entry.dedicated_endpoint_per_hour:g}/h{gpu} per ftc's catalogue)"
        return DEDICATED_NOTE.format(rate=rate)

    # ------------------------------------------------------------------ client

    def _make_client(self) -> Any:
        """``together.Together`` with ftc's key, retries off and per-attempt timeouts; the
        base URL comes from ``TOGETHER_BASE_URL`` (without ``/v1``) as the SDK reads it."""
        import together

        return together.Together(api_key=get_key(PROVIDER), **sdk_client_kwargs("together"))

    # ------------------------------------------------------------------ hooks for HostedBackend
    #
    # The base wraps _upload, _file_state, _create and _find_job in its own _call (the one
    # retry policy); they make their request(s) directly. _create_request, _file_error and
    # _provider_estimate are called unwrapped, so they wrap their own calls.

    def _upload(self, path: Path, purpose: str = "fine-tune") -> str:
        """The SDK's upload (``POST /v1/files`` -> 302, ``PUT`` the bytes, ``POST
        .../preprocess``). ``check=False``: ftc validated the file already, with the same
        rules and exact line numbers (docs/validation.md)."""
        resp = self.client.files.upload(file=Path(path), purpose=purpose, check=False)
        return str(as_dict(resp)["id"])

    def _file_state(self, file_id: str) -> str:
        """``processed`` | ``pending`` | ``error`` | ``missing`` (404) for an uploaded file."""
        try:
            f = as_dict(self.client.files.retrieve(file_id))
        except Exception as e:
            if getattr(e, "status_code", None) == 404:
                return "missing"
            raise
        return _file_state_of(f)

    def _file_error(self, file_id: str) -> str | None:
        """Together's reason for a file it would not process (its validation report)."""
        f = as_dict(self._call(f"check file {file_id}", lambda: self.client.files.retrieve(file_id)))
        rep = f.get("validation_report")
        if isinstance(rep, Mapping):
            for k in ("message", "error", "detail", "errors"):
                if rep.get(k):
                    return str(rep[k])[:500]
            return str(rep)[:500]
        st = f.get("processing_status")
        return f"processing status {st}" if st else None

    def _model_limits(self, model: str) -> Any:
        """``GET /v1/fine-tunes/models/limits`` for ``model``: one idempotent call, cached."""
        cache: dict[str, Any] = self.__dict__.setdefault("_tg_limits", {})
        if model not in cache:
            cache[model] = self._call("get model limits",
                                      lambda: self.client.fine_tuning.model_limits(model_name=model))
        return cache[model]

    def supported_models(self) -> list[str]:
        """The models Together fine-tunes (``GET /v1/fine-tunes/models/supported``), cached.
        The together 3.1.1 SDK has no method for it: its client's own ``get`` sends it, with
        the SDK's auth and base URL, under ftc's retry policy."""
        if "_tg_supported" not in self.__dict__:
            raw = as_dict(self._call("list supported models",
                                     lambda: self.client.get("/v1/fine-tunes/models/supported", cast_to=object)))
            models = raw.get("models")
            self.__dict__["_tg_supported"] = [str(m) for m in models] if isinstance(models, list) else []
        return list(self.__dict__["_tg_supported"])

    def _check_model(self, spec: "JobSpec") -> None:
        """Before any upload: Together's limits for the model (needed for the request anyway,
        then cached). A 404 (or 400) there means Together does not fine-tune it: SpecError with
        the closest names from Together's list of supported models. Then the SDK's own checks of
        the job against those limits (batch size, sequence length, LoRA rank...), so a job
        Together would refuse uploads nothing."""
        model = spec.model_for(PROVIDER)
        try:
            self._model_limits(model)
            self._build_request(create_arguments(spec, training_file="file-not-uploaded-yet",
                                                 client_token="0" * TOKEN_CHARS))
        except RequestRejected as e:
            if e.status_code not in (400, 404, 422):
                raise
            try:
                supported = self.supported_models()
            except RequestRejected:
                supported = []
            if model in supported:  # listed, yet no limits: report Together's own refusal
                raise
            raise SpecError(
                f"together does not fine-tune {model!r}: it is not among the {len(supported)} models Together "
                "lists as supported for fine-tuning (GET /fine-tunes/models/supported); nothing was uploaded",
                hint=_closest_hint(model, supported),
            ) from None

    def _build_request(self, args: Mapping[str, Any]) -> tuple[dict[str, Any], Any, Any]:
        """The create body as the SDK's own ``create_finetune_request`` builds it (it checks
        batch size, LoRA rank, sequence length... against the model's limits), plus the
        estimate-price ``training_type`` and ``training_method`` it derives. Sends nothing
        but the (idempotent, cached) limits request. A value the SDK refuses: SpecError."""
        from together.lib.resources.fine_tuning import create_finetune_request

        limits = self._model_limits(str(args["model"]))
        try:
            req, ttype, tmethod = create_finetune_request(model_limits=limits, **args)
        except ValueError as e:
            raise SpecError(f"together will not take this job: {e}",
                            hint=f"Change the spec (these are Together's limits for {args['model']}); "
                                 "nothing was sent.") from None
        return req.model_dump(exclude_none=True), ttype, tmethod

    def _provider_estimate(self, spec: "JobSpec", *, training_file: str) -> dict[str, Any] | None:
        """Together's own estimate (``POST /v1/fine-tunes/estimate-price``) for this job.

        Returns ``{"provider", "source", "cost_usd", "allowed_to_proceed", "user_limit_usd",
        "train_tokens", "eval_tokens", "raw"}``, or None when Together has no estimate.
        Building the request here also runs the SDK's checks against the model's limits, so
        a job Together would refuse fails before anything is created."""
        args = create_arguments(spec, training_file=training_file, client_token="0" * TOKEN_CHARS)
        _, ttype, tmethod = self._build_request(args)
        kw: dict[str, Any] = {"training_file": training_file, "model": args["model"], "n_epochs": args["n_epochs"],
                              "training_method": tmethod}
        if ttype is not None:
            kw["training_type"] = ttype
        raw = as_dict(self._call("estimate price", lambda: self.client.fine_tuning.estimate_price(**kw)))
        if raw.get("estimation_available") is False or raw.get("estimated_total_price") is None:
            return None

        def num(k: str) -> float | None:
            v = raw.get(k)
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

        return {
            "provider": PROVIDER,
            "source": "Together estimate-price",
            "cost_usd": num("estimated_total_price"),
            "allowed_to_proceed": raw.get("allowed_to_proceed"),
            "user_limit_usd": num("user_limit"),
            "train_tokens": num("estimated_train_token_count"),
            "eval_tokens": num("estimated_eval_token_count"),
            "raw": raw,
        }

    def _create_request(self, spec: "JobSpec", *, training_file: str, validation_file: str | None,
                        client_token: str, job: Any = None) -> dict[str, Any]:
        """The exact ``POST /v1/fine-tunes`` body (recorded write-ahead by the base)."""
        args = create_arguments(spec, training_file=training_file, validation_file=validation_file,
                                client_token=client_token)
        return self._build_request(args)[0]

    def _create(self, spec: "JobSpec", *, training_file: str, validation_file: str | None, client_token: str,
                job: Any = None) -> dict[str, Any]:
        """``POST /v1/fine-tunes``: the one request the base sends non-idempotently. The
        client token rides in ``suffix`` (and so in ``model_output_name``)."""
        args = create_arguments(spec, training_file=training_file, validation_file=validation_file,
                                client_token=client_token)
        try:
            body, _, _ = self._build_request(args)  # limits cached by _create_request: no request
        except ProviderError as e:
            # The limits GET failed (after its own retries): the create was never sent. Cut the
            # cause chain so the caller's non-idempotent policy does not read a timeout in it
            # as an ambiguous create.
            raise e from None
        self.__dict__.setdefault("_tg_created", {})[token_tag(client_token)] = (training_file, args["model"])
        out = as_dict(self.client.post("/v1/fine-tunes", body=body, cast_to=object))
        if not matches_token(out, client_token):
            log.warning("together: created job %s does not echo the suffix %r", out.get("id"), args["suffix"])
        return out

    def _raw_state(self, raw: Mapping[str, Any]) -> JobState | None:
        """The neutral state of the job ``_create`` returned (Together says ``pending``)."""
        if not raw.get("status"):
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return map_state(str(raw["status"]), TOGETHER_STATES, provider=PROVIDER)

    def _find_job(self, client_token: str, *, since: datetime | None = None, training_file: str | None = None,
                  model: str | None = None) -> str | None:
        """The id of the Together job created with ``client_token``: one whose ``suffix`` or
        ``model_output_name`` carries ``token[:8]`` (the oldest, if several do). Jobs that
        carry neither (no suffix echoed) match by ``training_file`` + ``model`` +
        ``created_at >= since``, and only when exactly one does; ``training_file`` and
        ``model`` default to those of this process's create with that token. One listing
        (``GET /v1/fine-tunes``, which returns every job: no paging)."""
        jobs = [as_dict(j) for j in as_dict(self.client.fine_tuning.list()).get("data") or []]
        return find_in_jobs(jobs, client_token, since=since,
                            remembered=self.__dict__.get("_tg_created", {}).get(token_tag(client_token)),
                            training_file=training_file, model=model)

    # ------------------------------------------------------------------ read side

    def _retrieve(self, provider_job_id: str) -> dict[str, Any]:
        return as_dict(self._call("get job", lambda: self.client.fine_tuning.retrieve(provider_job_id)))

    def _raw_events(self, provider_job_id: str) -> list[dict[str, Any]]:
        resp = as_dict(self._call("list events", lambda: self.client.fine_tuning.list_events(provider_job_id)))
        return [as_dict(e) for e in resp.get("data") or []]

    def _status_of(self, job: dict[str, Any]) -> TogetherJobStatus:
        events = job.get("events")
        if not events or (str(job.get("status")) in ("error", "user_error") and failure_reason(events) is None):
            if str(job.get("status")) in ("error", "user_error"):
                events = self._raw_events(str(job.get("id")))
        ttype = (job.get("training_type") or {}).get("type") if isinstance(job.get("training_type"), Mapping) else None
        note = None
        if ttype != "Full" and job.get("model"):
            note = self._serving_note(str(job["model"]))
        return job_status(job, events, serving_note=note)

    def status(self, provider_job_id: str) -> JobStatus:
        """``GET /v1/fine-tunes/{id}`` as a neutral status; a failed job's ``error`` is
        Together's own reason (its ``job_error`` event)."""
        return self._status_of(self._retrieve(provider_job_id))

    def events(self, provider_job_id: str, after: str | None = None) -> list[JobEvent]:
        """Events oldest first; those after event id ``after`` (Together's event ``hash``)."""
        return job_events(self._raw_events(provider_job_id), after=after)

    def checkpoints(self, provider_job_id: str) -> list[Checkpoint]:
        """Intermediate and final checkpoints, oldest first."""
        resp = as_dict(self._call("list checkpoints",
                                  lambda: self.client.fine_tuning.list_checkpoints(provider_job_id)))
        cps = [as_dict(c) for c in resp.get("data") or []]
        # Together lists them newest first; sort by step, then time, keeping its order for ties reversed.
        cps = list(reversed(cps))
        cps.sort(key=lambda c: (int(c.get("step") or 0), str(c.get("created_at") or "")))
        return [job_checkpoint(c, provider_job_id) for c in cps]

    def cancel(self, provider_job_id: str) -> JobStatus:
        """``POST /v1/fine-tunes/{id}/cancel``. Together answers ``cancel_requested`` (read
        as ``running``: not final until it says ``cancelled``). A job that already ended
        is not an error: its final status is returned."""
        try:
            raw = as_dict(self._call("cancel job", lambda: self.client.fine_tuning.cancel(provider_job_id)))
        except RequestRejected as e:
            if e.status_code in (400, 409):
                st = self.status(provider_job_id)
                if st.final:
                    return st
            raise
        return job_status(raw, raw.get("events") or [])

    def result(self, provider_job_id: str) -> str | None:
        """The output model's name (``model_output_name``) once the job completed."""
        return self.status(provider_job_id).fine_tuned_model

    def download(self, provider_job_id: str, dest: Path, *, checkpoint: str = "adapter", step: int | None = None,
                 on_progress: Any = None) -> Path:
        """Stream the job's model (``checkpoint``: adapter | merged) or the checkpoint at
        ``step`` (``GET /v1/finetune/download``) into ``dest``, written atomically: an
        interrupted download leaves no partial file, and a retry starts it again."""
        if checkpoint not in ("adapter", "merged"):
            raise ConfigError(f"unknown checkpoint type {checkpoint!r}", hint="Use adapter or merged.")
        params: dict[str, Any] = {"ft_id": provider_job_id}
        if step is not None:
            params["checkpoint_step"] = int(step)
        else:
            params["checkpoint"] = checkpoint
        dest = Path(dest)

        def fetch() -> int:
            done = 0
            with self.client.fine_tuning.with_streaming_response.content(**params) as resp:
                total = int(resp.headers.get("content-length") or 0) or None
                with atomic_writer(dest, "wb") as f:
                    for chunk in resp.iter_bytes(1 << 20):
                        f.write(chunk)
                        done += len(chunk)
                        if on_progress is not None:
                            on_progress(f"downloading {provider_job_id}", done / total if total else None)
            return done

        size = self._call("download model", fetch, idempotent=True)
        log.info("downloaded %s (%d bytes) to %s", provider_job_id, size, dest)
        return dest

    def chat(self, model: str, messages: Sequence[Mapping[str, Any]], **kw: Any) -> str:
        """One ``chat.completions.create`` call; the reply's text. A LoRA model needs its
        dedicated endpoint running (see the status's ``serving_note``)."""
        msgs = [dict(m) for m in messages]
        return self._chat_text(f"chat with {model}", lambda: self.client.chat.completions.with_streaming_response.create(
            model=model, messages=msgs, **kw),
            hint="The reply was not a chat completion; check TOGETHER_BASE_URL or try again.")
