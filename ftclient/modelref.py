"""Model references: one syntax for "the model to ask", used by ``ftc eval`` (and others).

    local:JOB_ID                  a finished local job: its adapter (or model) directory
    local:PATH                    an adapter / full model directory, a .gguf file, or any
                                  base model ref local training accepts (local:default,
                                  an HF id in the local cache)
    openai:MODEL                  e.g. openai:gpt-4o-mini, openai:ft:gpt-4o-mini-2024-07-18:acme::x1
    together:MODEL                e.g. together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference
    openai-compatible:URL#MODEL   any OpenAI-compatible server (Ollama, vLLM, TGI...):
                                  openai-compatible:http://127.0.0.1:11434/v1#llama3.2
    JOB_ID                        a finished ftc job of any backend: its fine-tuned model
                                  (an id, a unique prefix, or the provider's job id)

:func:`parse_model_ref` turns the text into a :class:`ModelRef` whose ``canonical`` string
names the model the same way whichever spelling was used (a bare hosted job id becomes
``openai:ft:...``; a local path becomes absolute), so evaluation runs of one model are
found again. Malformed references, unknown and unfinished jobs end in a
:class:`~ftclient.errors.UsageError` with a hint ("did you mean ...").

Nothing heavy is imported here: a local path is checked on disk, and only a bare base
model name (``local:owner/name``) asks ``ftclient.local_backend.models.resolve_model``.
"""

from __future__ import annotations

import contextlib
import difflib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from .backends import available_backends, backends_offering, example_refs, get_backend, here_backend, offers
from .errors import FtcError, UsageError
from .paths import store_path
from .secrets import REDACTED, redact
from .store import opened

if TYPE_CHECKING:  # pragma: no cover
    from .store import Job, Store

__all__ = ["ModelRef", "COMPATIBLE", "schemes", "parse_model_ref", "finished_model", "did_you_mean", "job_ids",
           "existing_store"]

#: The reference prefix of any OpenAI-compatible server (a protocol, not a backend).
COMPATIBLE = "openai-compatible"


def schemes() -> list[str]:
    """The reference prefixes: every installed backend, and ``openai-compatible``."""
    return [*available_backends(), COMPATIBLE]


def _examples() -> str:
    """Model references for a hint: each installed backend's examples, an OpenAI-compatible
    server, a job id."""
    return ", ".join([*example_refs(), f"{COMPATIBLE}:http://127.0.0.1:11434/v1#llama3.2", "or an ftc job id"])


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference.

    ``backend``: local | openai | together | openai-compatible. ``model``: what to load
    (local: a directory, a .gguf file or a base model ref such as ``default``) or to
    send as ``model`` (hosted). ``base_url``: the server of an openai-compatible model
    (else None: the SDK's default or OPENAI_BASE_URL / TOGETHER_BASE_URL). ``job_id``:
    the ftc job that produced the model, when known. ``base_model``: the model it was
    fine-tuned from -- or the model itself when it is not a fine-tune; None when
    unknown (openai-compatible). ``canonical``: the normalised reference.

    Credentials in an openai-compatible URL (``http://user:pw@host/v1``, ``?key=``,
    ``?token=``, ``?api_key=``) are never part of ``canonical`` or ``base_url``: both show
    ``[REDACTED]`` in their place, so whatever prints or stores the reference (and the eval
    run id made from it) never holds the secret, and the same reference given again names
    the same run. The URL as given lives only in memory, in ``connect_url`` (not shown by
    ``repr``, not in :meth:`to_dict`), for the requests: :meth:`connection`.
    """

    backend: str
    model: str
    canonical: str
    base_url: str | None = None
    job_id: str | None = None
    base_model: str | None = None
    fine_tuned: bool = False
    connect_url: str | None = field(default=None, repr=False, compare=False)

    @property
    def hosted(self) -> bool:
        """Whether a provider's API answers it (not this machine, not an OpenAI-compatible server)."""
        return offers(self.backend, "async_chat_client")

    def connection(self) -> tuple[str | None, dict[str, str]]:
        """The base URL to send requests to and the query parameters every request carries
        (a ``?key=`` the server wants), credentials included; for the HTTP client only."""
        url = self.connect_url or self.base_url
        if not url:
            return url, {}
        parts = urlsplit(url)
        if not parts.query:
            return url, {}
        return urlunsplit(parts._replace(query="")), dict(parse_qsl(parts.query, keep_blank_values=True))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("connect_url", None)
        return d

    def __str__(self) -> str:
        return self.canonical


# --------------------------------------------------------------------------- the store


@contextlib.contextmanager
def existing_store(store: "Store | None") -> Iterator["Store | None"]:
    """The given store, else the default one if it exists (never creates one)."""
    if store is None and not store_path().exists():
        yield None
        return
    with opened(store) as s:
        yield s


def job_ids(store: "Store | None") -> list[str]:
    if store is None:
        return []
    try:
        return [j.id for j in store.list_jobs(limit=None)]
    except FtcError:
        return []


def did_you_mean(word: str, choices: list[str], *, n: int = 3) -> str:
    close = difflib.get_close_matches(word, choices, n=n, cutoff=0.6)
    return f"Did you mean {', '.join(close)}? " if close else ""


def _find_job(text: str, store: "Store | None") -> "Job":
    if store is None:
        raise UsageError(f"no job {text!r} (no job has been submitted yet)",
                         hint=f"Give a model reference such as {_examples()}.")
    try:
        return store.get_job(text)
    except UsageError as e:
        if "matches" in e.message and "jobs:" in e.message:  # ambiguous prefix
            raise
        hint = did_you_mean(text, job_ids(store))
        hint += ("List jobs with `ftc jobs list`; for a model id, name its backend ("
                 + ", ".join(f"{name}:MODEL" for name in available_backends()) + ").")
        raise UsageError(f"no job matches {text!r}", hint=hint) from None


def finished_model(job: "Job", store: "Store", *, refresh: bool) -> str:
    """The fine-tuned model of a finished job (asking its backend once if the store lacks it)."""
    model = job.fine_tuned_model
    if not model and refresh and job.state == "succeeded" and job.provider_job_id:
        try:
            model = get_backend(job.backend).result(job.provider_job_id)
        except FtcError:
            model = None
        if model:
            store.update_state(job.id, job.state, fine_tuned_model=model)
    if not model:
        if job.is_final:
            why = f"it ended {job.state}" + (f": {job.error}" if job.error else "")
            hint = f"Evaluate another job, or a base model (e.g. {', '.join(example_refs())})."
        else:
            why = f"it is {job.state}"
            hint = f"Wait for it to finish: `ftc jobs watch {job.id}`."
        raise UsageError(f"{job.id} has no fine-tuned model to evaluate ({why})", hint=hint)
    return model


# --------------------------------------------------------------------------- hosted


def _hosted_ref(backend: str, model: str, store: "Store | None", plugin: Any) -> ModelRef:
    if not model or model.strip() != model or any(c.isspace() for c in model):
        example = getattr(plugin, "example_model", None) or "MODEL"
        raise UsageError(f"{backend}: needs a model name without spaces", hint=f"e.g. {backend}:{example}")
    job = None
    if store is not None:  # a model an ftc job produced: remember the job and its base
        with contextlib.suppress(FtcError):
            for j in store.list_jobs(backend=backend, limit=None):
                if j.fine_tuned_model == model:
                    job = j
                    break
    if job is not None:
        return ModelRef(backend, model, f"{backend}:{model}", job_id=job.id, base_model=job.model, fine_tuned=True)
    tuned_from = getattr(plugin, "fine_tuned_base", None)
    if callable(tuned_from):  # the provider's fine-tuned model names say their base
        tuned, base = tuned_from(model)
        if tuned:
            return ModelRef(backend, model, f"{backend}:{model}", base_model=base, fine_tuned=True)
    return ModelRef(backend, model, f"{backend}:{model}", base_model=model, fine_tuned=False)


def _fine_tune_owners(model: str) -> list[str]:
    """The backends whose fine-tuned model names look like ``model``."""
    out = []
    for name in backends_offering("fine_tuned_base"):
        try:
            if get_backend(name).fine_tuned_base(model)[0]:
                out.append(name)
        except FtcError:
            continue
    return out


def _parse_compatible(rest: str) -> ModelRef:
    example = "openai-compatible:http://127.0.0.1:11434/v1#llama3.2"
    url, sep, model = rest.partition("#")
    if not sep or not model.strip():
        raise UsageError(_redact_url(f"openai-compatible:{rest}") + ": no model after '#'",
                         hint=f"Write the server's base URL, '#', then the model: {example}")
    url, model = url.strip(), model.strip()
    if "[REDACTED]" in url:
        raise UsageError(f"openai-compatible:{url}#{model}: the URL's credentials were redacted",
                         hint="ftc never stores a URL's password or key: give the reference with its "
                              "credentials again (the same reference resumes the same run).")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. a bad [IPv6] host
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"openai-compatible: {_redact_url(url)!r} is not an http(s) URL",
                         hint=f"Give the server's base URL (up to /v1): {example}")
    base = url.rstrip("/")
    shown = _redact_url(base)
    return ModelRef(COMPATIBLE, model, f"{COMPATIBLE}:{shown}#{model}", base_url=shown,
                    connect_url=base if shown != base else None)


def _redact_url(url: str) -> str:
    """``url`` with its userinfo and credential-like query values replaced by [REDACTED]."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = REDACTED + "@" + netloc.rpartition("@")[2]
    # ?key=, ?token=, ?api_key= ... : the one redaction's query-string patterns
    return redact(urlunsplit(parts._replace(netloc=netloc)))


# --------------------------------------------------------------------------- entry point


def parse_model_ref(text: str, *, store: "Store | None" = None, refresh: bool = True) -> ModelRef:
    """Parse a model reference (see the module docstring).

    ``store``: the job store to look jobs up in (default: ftc's own, when it exists; it
    is never created here). ``refresh``: for a succeeded job whose fine-tuned model the
    store does not know yet, ask its backend once (like ``ftc chat``).
    """
    if isinstance(text, ModelRef):
        return text
    ref = (text or "").strip()
    if not ref:
        raise UsageError("give a model reference", hint=f"e.g. {_examples()}.")
    head, sep, rest = ref.partition(":")
    scheme = head.lower()
    known = schemes()
    with existing_store(store) as st:
        if sep and scheme in known:
            rest = rest.strip()
            if scheme == COMPATIBLE:
                return _parse_compatible(rest)
            plugin = get_backend(scheme)
            own = getattr(plugin, "parse_model_ref", None)
            if callable(own):  # a backend with references of its own (paths, its jobs)
                return own(rest, st, refresh=refresh)
            return _hosted_ref(scheme, rest, st, plugin)
        if sep and not (len(head) == 1 and head.isalpha()):  # not a bare Windows drive letter
            owners = _fine_tune_owners(ref)
            if owners:
                raise UsageError(f"{ref!r}: name the backend of a fine-tuned model",
                                 hint="Did you mean " + " or ".join(f"{o}:{ref}" for o in owners) + "?")
            close = difflib.get_close_matches(scheme, known, n=1, cutoff=0.5)
            hint = (f"Did you mean {close[0]}:{rest}? " if close else "") + f"Backends: {', '.join(known)}."
            raise UsageError(f"unknown backend {head!r} in model reference {ref!r}", hint=hint)
        if Path(ref).expanduser().exists():
            raise UsageError(f"{ref!r} is a path: say which backend loads it",
                             hint=f"Did you mean {here_backend() or 'NAME'}:{ref}?")
        job = _find_job(ref, st)
        plugin = get_backend(job.backend)
        own = getattr(plugin, "job_model_ref", None)
        if callable(own):  # a job whose model lives here
            return own(job, st, refresh=refresh)
        model = finished_model(job, st, refresh=refresh)  # type: ignore[arg-type]
        return ModelRef(job.backend, model, f"{job.backend}:{model}", job_id=job.id, base_model=job.model,
                        fine_tuned=True)
