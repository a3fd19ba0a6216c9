"""The backend protocol, the neutral job states and the backend registry.

A backend (OpenAI, Together, local PEFT/TRL, a third party's) is one class that
implements :class:`Backend`. Backends register under the entry-point group
``ftclient.backends``::

    [project.entry-points."ftclient.backends"]
    openai = "ftclient.providers.openai:OpenAIBackend"

or in-process with :func:`register_backend` (tests, notebooks). Entry points are
loaded only by :func:`get_backend`, so ``import ftclient.backends`` (and listing the
backends) never imports an SDK or torch.

Every backend reports the same :class:`JobState`; each provider module maps its own
states onto it with :func:`map_state`.
"""

from __future__ import annotations

import difflib
import logging
import os
import sys
import warnings
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timezone
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Protocol, Sequence, runtime_checkable

from .errors import ConfigError, FtcError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from .cost import CostEstimate
    from .spec import JobSpec
    from .validation.common import ValidationResult

__all__ = [
    "JobState",
    "FINAL_STATES",
    "UnknownStateWarning",
    "map_state",
    "SubmitResult",
    "JobStatus",
    "JobEvent",
    "Checkpoint",
    "Backend",
    "display_name",
    "ProgressCallback",
    "ENTRY_POINT_GROUP",
    "available_backends",
    "backend_attr",
    "lazy_attr",
    "backends_offering",
    "offers",
    "owner_of",
    "here_backend",
    "example_refs",
    "default_model_of",
    "trains_here",
    "normalize_name",
    "get_backend",
    "register_backend",
    "installed_entry_points",
    "unregister_backend",
    "to_datetime",
    "readiness",
    "check_ready",
    "missing_requirements",
    "missing_key",
    "require_modules",
    "install_line",
]

log = logging.getLogger("ftclient.backends")

ENTRY_POINT_GROUP = "ftclient.backends"


# --------------------------------------------------------------------------- states


class JobState(str, Enum):
    """One neutral job state for every backend, hosted or local."""

    PENDING = "pending"
    """Accepted by ftc or the provider, nothing started yet."""
    VALIDATING_FILES = "validating_files"
    """The provider is checking the uploaded data."""
    QUEUED = "queued"
    """Waiting for capacity."""
    RUNNING = "running"
    """Training."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUBMIT_UNKNOWN = "submit_unknown"
    """The create call failed ambiguously (see ``ftclient.retry.AmbiguousResult``): the
    job may exist. Reconcile with the provider's job list before submitting again."""

    def __str__(self) -> str:
        return self.value

    @property
    def final(self) -> bool:
        """True for states a job never leaves."""
        return self in FINAL_STATES


FINAL_STATES = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})


class UnknownStateWarning(UserWarning):
    """A provider reported a state ftc does not know (it was mapped to a neutral one)."""


def normalize_name(s: str) -> str:
    """A backend's or a state's name as the registry keys it: lower case, ``-`` and spaces as ``_``."""
    return str(s).strip().lower().replace("-", "_").replace(" ", "_")



def map_state(provider_state: str | None, mapping: Mapping[str, JobState], *, provider: str = "",
              unknown: JobState = JobState.PENDING) -> JobState:
    """Map a provider's job state onto :class:`JobState`.

    ``mapping`` keys are matched case-insensitively (``-`` and spaces count as ``_``);
    a state already named like a neutral one maps to it. Anything else becomes
    ``unknown`` (default ``pending``: not final, so watchers keep polling) with an
    :class:`UnknownStateWarning` that names the state, so a new provider state is
    noticed rather than guessed at.
    """
    key = normalize_name(provider_state or "")
    table = {normalize_name(k): v for k, v in mapping.items()}
    if key in table:
        return JobState(table[key])
    try:
        return JobState(key)
    except ValueError:
        pass
    msg = f"{provider or 'provider'} reported an unknown job state {provider_state!r}; treating it as {unknown.value!r}"
    warnings.warn(msg, UnknownStateWarning, stacklevel=2)
    log.warning("%s", msg)
    return unknown


# --------------------------------------------------------------------------- records


def to_datetime(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from unix seconds (OpenAI), an ISO string
    (Together), a datetime, or ``None``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    s = str(value).strip()
    try:
        return to_datetime(float(s))
    except ValueError:
        pass
    dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


class _Record:
    """``to_dict()`` for JSON output; ``raw`` (the provider's object) is left out
    unless asked for, so provider fields never reach output by accident."""

    def to_dict(self, *, raw: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            if f.name == "raw" and not raw:
                continue
            v = getattr(self, f.name)
            if isinstance(v, Enum):
                v = v.value
            elif isinstance(v, datetime):
                v = v.isoformat()
            out[f.name] = v
        return out


@dataclass
class SubmitResult(_Record):
    """What ``Backend.submit`` returns."""

    provider_job_id: str
    state: JobState = JobState.PENDING
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobStatus(_Record):
    """A job's state and progress as reported by its backend. Unknown values are None."""

    state: JobState
    provider_state: str | None = None
    """The provider's own word for the state (``validating_files``, ``Running``...)."""
    fine_tuned_model: str | None = None
    """The model id to call once the job succeeded."""
    error: str | None = None
    """The provider's own reason for a failure, as it gave it."""
    trained_tokens: int | None = None
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    eta_seconds: float | None = None
    cost_so_far_usd: float | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def progress(self) -> float | None:
        """``step / total_steps`` in [0, 1], or None when either is unknown."""
        if self.step is None or not self.total_steps:
            return None
        return max(0.0, min(1.0, self.step / self.total_steps))


@dataclass
class JobEvent(_Record):
    """One line of a job's event log."""

    id: str
    created_at: datetime | None = None
    level: str = "info"
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Checkpoint(_Record):
    """An intermediate (or final) model saved during training."""

    id: str
    step: int | None = None
    created_at: datetime | None = None
    model_ref: str | None = None
    """What to pass to ``chat`` / ``ftc eval`` to use this checkpoint."""
    metrics: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- protocol

ProgressCallback = Callable[[str, Optional[float]], None]
"""``on_progress(message, fraction)``: fraction in [0, 1], or None when unknown."""


@runtime_checkable
class Backend(Protocol):
    """One way to fine-tune: a hosted API or the local trainer.

    Every network call a hosted backend makes goes through
    ``ftclient.retry.retry_call`` (``idempotent=False`` for job creation), and SDK
    clients are built with ``ftclient.retry.sdk_client_kwargs()``.
    """

    name: str
    """The registry name (``openai``, ``together``, ``local``)."""

    def validate(self, spec: "JobSpec", data_path: "str | os.PathLike[str]") -> "ValidationResult":
        """Check ``data_path`` against this backend's rules for ``spec`` (offline)."""
        ...

    def estimate(self, spec: "JobSpec") -> "CostEstimate":
        """Estimate the training cost of ``spec`` (offline)."""
        ...

    def preflight(self, spec: "JobSpec", *, today: "date | None" = None) -> list[str]:
        """Checks that need no network, run before anything is sent: returns warnings,
        raises an ``FtcError`` when the backend will not take this job (e.g. OpenAI
        after its fine-tuning retirement date)."""
        ...

    # -- the provider calls the core's write-ahead create (ftclient.jobs.create_once) asks for.
    # ftclient.submission.BackendBase has a default for each but create_job and find_by_client_token.

    uploads_files: bool
    """Whether the data files are uploaded before the create (False: the backend reads them
    in place, so nothing is uploaded and the plan lists no uploads)."""

    def check_submit(self, spec: "JobSpec") -> None:
        """Before anything is uploaded or created: raise an ``FtcError`` when the provider
        will not take this job (e.g. a model it does not fine-tune). May make requests."""
        ...

    def upload_file(self, path: "Path", purpose: str) -> str:
        """Upload one file (one request, retried by the backend's policy); the provider's file id."""
        ...

    def file_state(self, file_id: str) -> str:
        """``processed``, ``pending``, ``error`` or ``missing`` (404 / deleted)."""
        ...

    def file_error(self, file_id: str) -> str | None:
        """The provider's reason for a file in state ``error``."""
        ...

    def provider_quote(self, spec: "JobSpec", *, training_file: str | None) -> Mapping[str, Any] | None:
        """The provider's own price before creating (passed to ``confirm``), or None."""
        ...

    def create_request(self, spec: "JobSpec", *, training_file: str | None, validation_file: str | None,
                       client_token: str, job: Any) -> dict[str, Any]:
        """The create request, JSON-able and without secrets: recorded before it is sent."""
        ...

    def create_job(self, spec: "JobSpec", *, training_file: str | None, validation_file: str | None,
                   client_token: str, job: Any) -> Mapping[str, Any]:
        """Create the job (sent once) and return the provider's job with its ``id``; the job
        must carry ``client_token`` so that :meth:`find_by_client_token` finds it. Raise
        ``ftclient.retry.AmbiguousResult`` when the outcome is unknown and a
        ``ProviderError`` when the provider definitely refused."""
        ...

    def job_state(self, raw: Mapping[str, Any]) -> JobState | None:
        """The neutral state of a job as :meth:`create_job` returned it (None: not known)."""
        ...

    def find_by_client_token(self, client_token: str, *, since: "datetime | None" = None) -> str | None:
        """The provider job id of the job created with ``client_token``, if any."""
        ...

    def status(self, provider_job_id: str) -> JobStatus:
        """The job's current state and progress."""
        ...

    def events(self, provider_job_id: str, after: str | None = None) -> list[JobEvent]:
        """Events oldest first; only those after event id ``after`` if given."""
        ...

    def checkpoints(self, provider_job_id: str) -> list[Checkpoint]:
        """Saved checkpoints, oldest first (empty if the backend keeps none)."""
        ...

    def cancel(self, provider_job_id: str) -> JobStatus:
        """Ask the backend to stop the job; returns the state after asking."""
        ...

    def result(self, provider_job_id: str) -> str | None:
        """The fine-tuned model id once the job succeeded, else None."""
        ...

    def chat(self, model: str, messages: Sequence[Mapping[str, Any]], **kw: Any) -> str:
        """One chat completion from ``model`` (a base or fine-tuned model); the text."""
        ...


PROTOCOL_METHODS = tuple(m for m in vars(Backend) if not m.startswith("_") and callable(vars(Backend)[m]))
"""The methods a backend implements (``name`` is an attribute).

Optional, looked up with ``getattr`` by :func:`ftclient.jobs.plan`: ``describe_run(spec) ->
[(what, value), ...]`` -- rows about the run for the plan table (the local backend's device,
precision, batch, checkpoints).

Optional, what the backend needs to run (checked by :func:`missing_requirements` and
:func:`missing_key` before anything is recorded; see :func:`readiness`):

* ``requires``: the top-level modules it imports when it works (``("openai",)``), found
  with ``importlib.util.find_spec`` (nothing is imported);
* ``install_extra``: the ftclient extra that installs them (``"hosted"``), for the
  install line ``pip install "ftclient[hosted]"``;
* ``key_env``: the environment variable of its API key (empty or absent: no key), and
  ``key_name``: the name the key is stored under (``ftc keys set NAME``; default ``name``);
* ``needs_key()``: False when this instance needs no key after all (e.g. built with a
  ready client); default: it needs one when ``key_env`` is set."""


def display_name(backend: Any) -> str:
    """How messages name ``backend``: its ``display`` (``OpenAI``), else its name capitalised."""
    return getattr(backend, "display", "") or str(getattr(backend, "name", "") or "the backend").capitalize()


# --------------------------------------------------------------------------- requirements


def _module_missing(module: str) -> bool:
    """True when ``module`` cannot be found (nothing is imported; a parent package may be)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module) is None
    except (ImportError, ValueError):  # a parent missing, a blocked import, a broken __spec__
        return True


def install_line(extra: str | None, modules: Sequence[str] = ()) -> str:
    """``pip install "ftclient[EXTRA]"``, or ``pip install MODULES`` when there is no extra."""
    if extra:
        return f'pip install "ftclient[{extra}]"'
    return "pip install " + " ".join(modules)


def _and(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def require_modules(modules: Sequence[str], *, extra: str | None, who: str) -> None:
    """Raise ConfigError (exit 2) with the install line when one of ``modules`` is missing.

    ``who`` names what needs them (``the openai backend``)."""
    missing = [m for m in modules if _module_missing(m)]
    if missing:
        line = install_line(extra, missing)
        raise ConfigError(f"{who} needs {_and(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
                          f"installed: {line}",
                          hint=f"Install it with `{line}` and run the same command again.")


def missing_requirements(backend: Any) -> ConfigError | None:
    """The error for a backend whose ``requires`` modules are not installed, else None."""
    mods = tuple(getattr(backend, "requires", None) or ())
    if not mods:
        return None
    name = getattr(backend, "name", "") or "this"
    try:
        require_modules(mods, extra=getattr(backend, "install_extra", None), who=f"the {name} backend")
    except ConfigError as e:
        return e
    return None


def missing_key(backend: Any) -> ConfigError | None:
    """The error for a backend that needs an API key and has none (environment or key file),
    or whose key cannot be one (a line break, a space, a non-ASCII character), else None."""
    var = getattr(backend, "key_env", "") or ""
    if not var:
        return None
    needs = getattr(backend, "needs_key", None)
    if callable(needs) and not needs():
        return None
    from .secrets import check_key

    key_name = getattr(backend, "key_name", None) or getattr(backend, "name", "")
    try:
        if check_key(key_name, var=var) is not None:  # its shape too: never send a broken header
            return None
    except ConfigError as e:  # a key that cannot be one: named by its variable or file, never shown
        return e
    return ConfigError(f"no API key for {key_name}: set {var} or run `ftc keys set {key_name}`",
                       hint=f"export {var}=... (or `ftc keys set {key_name}`, which asks for it and keeps it "
                            "in a 0600 file), then run the same command again.")


def readiness(backend: Any, *, key: bool = True) -> list[ConfigError]:
    """What stops ``backend`` from working here: a missing SDK or training stack first,
    then (with ``key``) a missing API key. Empty when nothing is missing. Offline; imports
    nothing."""
    problems = [e for e in (missing_requirements(backend), missing_key(backend) if key else None) if e]
    return problems


def check_ready(backend: Any, *, key: bool = True) -> None:
    """Raise the first of :func:`readiness`'s problems (ConfigError, exit 2)."""
    problems = readiness(backend, key=key)
    if problems:
        raise problems[0]


# --------------------------------------------------------------------------- registry

BackendFactory = Callable[..., Backend]


class _Registered:
    """An in-process registration; looks like an ``EntryPoint`` (name, value, group, load)."""

    def __init__(self, name: str, factory: BackendFactory):
        self.name = name
        self.group = ENTRY_POINT_GROUP
        self._factory = factory
        mod = getattr(factory, "__module__", "?")
        self.value = f"{mod}:{getattr(factory, '__qualname__', repr(factory))}"

    def load(self) -> BackendFactory:
        return self._factory

    def __repr__(self) -> str:
        return f"<registered backend {self.name}={self.value}>"


_REGISTERED: dict[str, _Registered] = {}


def register_backend(name: str, factory: BackendFactory, *, replace: bool = False) -> None:
    """Register ``factory`` (a Backend class or a function returning one) as ``name``.

    In-process registrations take precedence over installed entry points of the same
    name. Registering a name twice raises ``ValueError`` unless ``replace=True``.
    """
    key = normalize_name(name)
    if not key:
        raise ValueError("backend name must not be empty")
    if key in _REGISTERED and not replace:
        raise ValueError(f"backend {key!r} is already registered (pass replace=True to replace it)")
    _REGISTERED[key] = _Registered(key, factory)


def unregister_backend(name: str) -> None:
    """Forget an in-process registration (no error if there is none)."""
    _REGISTERED.pop(normalize_name(name), None)


class _Declared:
    """An entry point an installed distribution declares in its ``entry_points.txt``; looks like
    ``importlib.metadata.EntryPoint`` (name, value, group, load)."""

    def __init__(self, name: str, value: str, group: str, dist: str):
        self.name, self.value, self.group, self.dist = name, value, group, dist

    def load(self) -> Any:
        """The object ``module:attr.attr`` names, imported (as ``EntryPoint.load`` does)."""
        import importlib

        module, _, attrs = self.value.partition(":")
        obj = importlib.import_module(module.strip())
        for attr in filter(None, attrs.split("[", 1)[0].strip().split(".")):
            obj = getattr(obj, attr)
        return obj

    def __repr__(self) -> str:
        return f"<installed backend {self.name}={self.value} ({self.dist})>"


_DIST_SUFFIXES = (".dist-info", ".egg-info")


def _dist_name(folder: str) -> str:
    """The normalized distribution name of a ``NAME-VERSION.dist-info`` / ``NAME.egg-info`` folder."""
    base = folder[: -len(".dist-info")] if folder.endswith(".dist-info") else folder[: -len(".egg-info")]
    return base.split("-", 1)[0].lower().replace(".", "_")


def _group_entries(text: str, group: str) -> list[tuple[str, str]]:
    """``[(name, value)]`` of the ``[group]`` section of an ``entry_points.txt``."""
    out: list[tuple[str, str]] = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == group and "=" in line:
            name, _, value = line.partition("=")
            out.append((name.strip(), value.strip()))
    return out


def installed_entry_points(group: str = ENTRY_POINT_GROUP) -> list[Any]:
    """The entry points of ``group`` that the installed distributions declare, in ``sys.path``
    order, the first distribution of a name winning (as ``importlib.metadata`` finds them).

    Read from the ``entry_points.txt`` of each ``*.dist-info`` / ``*.egg-info`` folder on
    ``sys.path``, without importing ``importlib.metadata`` (about 30 ms in a fresh process,
    where ``ftc --help`` takes about 50 ms in all); a ``sys.path`` entry that is a file (a zip)
    is left to ``importlib.metadata``, as is everything when one is there."""
    entries = [p or "." for p in sys.path]
    if any(os.path.isfile(p) for p in entries):
        import importlib.metadata

        return list(importlib.metadata.entry_points(group=group))
    out: list[Any] = []
    seen: set[str] = set()
    for folder in entries:
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(_DIST_SUFFIXES))
        except OSError:
            continue
        for n in names:
            dist = _dist_name(n)
            if dist in seen:
                continue
            seen.add(dist)
            try:
                with open(os.path.join(folder, n, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError):
                continue
            out.extend(_Declared(name, value, group, dist) for name, value in _group_entries(text, group))
    return out


#: The installed entry points, read once per process: scanning every installed distribution
#: costs milliseconds, and the core asks the registry many times per command. Keyed by the
#: scanning function itself and the path, so a test that replaces either is read afresh.
_EP_CACHE: dict[tuple, dict[str, Any]] = {}


def _entry_points() -> dict[str, Any]:
    key = (installed_entry_points, tuple(sys.path))
    hit = _EP_CACHE.get(key)
    if hit is not None:
        return dict(hit)
    found = _scan_entry_points()
    _EP_CACHE.clear()
    _EP_CACHE[key] = found
    return dict(found)


def _scan_entry_points() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for ep in installed_entry_points(ENTRY_POINT_GROUP):
        key = normalize_name(ep.name)
        if key in found:
            if found[key].value != ep.value:
                log.warning("two installed backends are named %r (%s and %s); using the first",
                            key, found[key].value, ep.value)
            continue
        found[key] = ep
    return found


def available_backends() -> dict[str, Any]:
    """``{name: EntryPoint}`` for every installed or registered backend, sorted by name.

    Nothing is imported: call ``.load()`` on a value (or :func:`get_backend`) for that.
    """
    found = _entry_points()
    found.update(_REGISTERED)
    return dict(sorted(found.items()))


class lazy_attr:  # noqa: N801 - used like a function in a class body
    """A class attribute imported on first use: ``options = lazy_attr(".options:OpenAIOptions",
    __package__)``. Reading the registry for one hook then never imports what another needs
    (a spec options model pulls pydantic and the spec module)."""

    def __init__(self, target: str, package: str | None = None):
        self.target, self.package = target, package
        self._value: Any = None

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if self._value is None:
            import importlib

            module, _, attr = self.target.partition(":")
            self._value = getattr(importlib.import_module(module, self.package), attr)
        return self._value


def backend_attr(name: str, attr: str, default: Any = None) -> Any:
    """Attribute ``attr`` of backend ``name``'s class (``default`` when the backend is not
    installed, cannot load or has none), read without building the backend."""
    ep = available_backends().get(normalize_name(name or ""))
    if ep is None:
        return default
    try:
        factory = ep.load()
    except Exception:  # noqa: BLE001 - a backend that cannot load declares nothing
        return default
    return getattr(factory, attr, default)


def offers(name: str, hook: str) -> bool:
    """Whether backend ``name`` is installed and its class has ``hook`` (a method or a true
    attribute): which stages a backend takes part in, asked without building it."""
    return bool(backend_attr(name, hook))


def backends_offering(hook: str) -> list[str]:
    """The installed backends that have ``hook`` (see :func:`offers`), sorted by name."""
    return [name for name in available_backends() if offers(name, hook)]


def trains_here(name: str) -> bool:
    """Whether backend ``name`` trains on this machine (its class says ``trains_here = True``):
    its references (``NAME:MODEL``) are this machine's rows in the cost comparison, priced
    at what an hour of this machine costs."""
    return bool(backend_attr(name, "trains_here", False))


def here_backend() -> str | None:
    """The installed backend that trains on this machine (the first, by name, whose class
    says ``trains_here = True``), or None."""
    return next((name for name in available_backends() if trains_here(name)), None)


def default_model_of(name: str | None) -> str | None:
    """The Hugging Face id of the model backend ``name`` trains for ``base_model: default``
    (its class's ``default_model_hf_id``), or None when it has no such default."""
    return backend_attr(name or "", "default_model_hf_id") or None


def example_refs() -> list[str]:
    """Model references for examples in messages, from every installed backend: its class's
    ``example_refs`` (e.g. ``local:default``), else ``NAME:EXAMPLE_MODEL``."""
    out: list[str] = []
    for name in available_backends():
        refs = backend_attr(name, "example_refs")
        model = backend_attr(name, "example_model")
        if refs:
            out.extend(str(r) for r in refs)
        elif model:
            out.append(f"{name}:{model}")
    return out


def owner_of(model: str) -> str | None:
    """The installed backend that claims a model name given without ``PROVIDER:``
    (``gpt-4.1-mini`` is OpenAI's): the first, by name, whose class says so through
    ``owns_model_name(model)``. None when none does. Backend classes are imported only here,
    so only a bare name pays for it."""
    for name in backends_offering("owns_model_name"):
        try:
            if backend_attr(name, "owns_model_name")(model):
                return name
        except Exception:  # noqa: BLE001 - a backend's faulty hook claims nothing
            log.warning("backend %s: owns_model_name(%r) failed", name, model)
    return None


def get_backend(name: str, **kwargs: Any) -> Backend:
    """Load the backend ``name`` and build it with ``kwargs``.

    A name that is not there raises ``UsageError`` naming the closest one. A backend
    that cannot be imported (its SDK is missing) or does not implement
    :class:`Backend` raises ``ConfigError``.
    """
    key = normalize_name(name)
    found = available_backends()
    ep = found.get(key)
    if ep is None:
        names = list(found)
        close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
        if close:
            hint = f"Did you mean {close[0]!r}? Available: {', '.join(names)}."
        elif names:
            hint = f"Available: {', '.join(names)}."
        else:
            hint = "No backend is installed; install ftclient with its extras, e.g. pip install 'ftclient[hosted]'."
        raise UsageError(f"unknown backend {name!r}", hint)
    try:
        factory = ep.load()
    except ImportError as e:
        missing = getattr(e, "name", None) or str(e)
        raise ConfigError(
            f"backend {key!r} could not be loaded: {type(e).__name__}: {e}",
            f"Install what it needs (missing: {missing}), e.g. pip install 'ftclient[hosted]' or 'ftclient[local]'.",
        ) from e
    except Exception as e:
        raise ConfigError(f"backend {key!r} ({ep.value}) failed to load: {type(e).__name__}: {e}",
                          "Run again with --debug for the traceback, and report it to the backend's author.") from e
    try:
        backend = factory(**kwargs)
    except FtcError:
        raise
    except TypeError as e:
        raise ConfigError(f"backend {key!r} does not accept these options: {e}") from e
    if not isinstance(backend, Backend):
        missing_attrs = [m for m in ("name", *PROTOCOL_METHODS) if not hasattr(backend, m)]
        raise ConfigError(f"backend {key!r} ({ep.value}) does not implement the Backend protocol "
                          f"(missing: {', '.join(missing_attrs)})")
    from .secrets import cover_loggers

    cover_loggers((getattr(backend, "sdk", "") or "", *(getattr(backend, "loggers", ()) or ())))
    return backend
