"""The one retry policy for every provider call (built on tenacity).

Every network call ftc makes to a hosted API goes through :func:`retry_call`, and
the SDKs' own retry loops are switched off (:func:`sdk_client_kwargs` gives
``max_retries=0``), so one policy decides, logs and shows every retry.

What is retried
---------------
* HTTP 429 (rate limit), 408 (request timeout), 5xx, and 409 when the provider says
  "in progress / locked, try again" (see :attr:`RetryPolicy.retry_409`);
* connection errors and connect / read timeouts.

Not retried: other 4xx (400, 404, 422, ...) -> :class:`RequestRejected`; 401/403 ->
:class:`AuthError` at once (exit 2; its message names the env var to set and never
holds the key); a 429 that says the quota or credit is spent -> :class:`RequestRejected`.

Idempotency
-----------
``retry_call(fn, idempotent=False)`` is for calls that create something (a job). A
failure after which the request *may* have reached the provider (a read timeout, a
dropped connection, a 5xx) is not retried blindly: :class:`AmbiguousResult` is raised
with the original error, and the caller reconciles (lists the provider's jobs and
looks for its client token) before trying again. Failures that certainly happened
before the request was sent (connection refused, connect timeout, no pooled
connection) and refusals (429, 408, a retryable 409) are retried for every call.

Waits
-----
Exponential backoff with full jitter: before retry *n* ftc waits a random time in
``[0, min(max_wait, base * 2**(n-1))]``. A ``Retry-After`` (seconds or HTTP-date) or
``retry-after-ms`` header from the server replaces that wait. No attempt starts
after ``deadline`` seconds; if the server asks for a wait that would pass the
deadline, ftc gives up at once and says so.

Classification needs no SDK import: it reads ``status_code``, ``response.headers``,
``body`` and the exception class names (``APIConnectionError``, ``APITimeoutError``,
``ConnectError``, ``ReadTimeout``, ...) along the ``__cause__`` chain, so it works for
``openai`` (httpx2), ``together`` (httpx) and plain ``httpx`` / ``httpx2`` errors.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Mapping, Optional, TypeVar

from .backends import available_backends, backend_attr
from .errors import ConfigError, FtcError, UsageError
from .secrets import env_var, redact

__all__ = [
    "RetryPolicy",
    "RetryEvent",
    "Decision",
    "ProviderError",
    "AuthError",
    "RequestRejected",
    "RetryExhausted",
    "AmbiguousResult",
    "retry_call",
    "async_retry_call",
    "classify",
    "parse_retry_after",
    "sdk_client_kwargs",
    "redact",
]

log = logging.getLogger("ftclient.retry")

T = TypeVar("T")


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long ftc retries one provider call.

    The defaults suit ordinary API calls (list, retrieve, create, cancel). For long
    uploads use e.g. ``replace(policy, deadline=900)``. ``sleep`` and ``clock`` are
    hooks for tests (a fake clock that ``sleep`` advances makes deadline tests instant).
    """

    max_attempts: int = 6
    """Attempts in all, the first included (1 = never retry)."""
    deadline: float = 120.0
    """Seconds from the first attempt after which no new attempt starts. One attempt
    itself is bounded by the client's timeout (see :func:`sdk_client_kwargs`)."""
    base: float = 0.5
    """Backoff window before the first retry, in seconds; it doubles for each retry."""
    max_wait: float = 30.0
    """Largest backoff window, in seconds (a server's ``Retry-After`` may ask for more;
    it is honoured up to the deadline)."""
    retry_409: bool | None = None
    """409 Conflict: ``None`` (default) retries only when the provider says so (header
    ``x-should-retry: true``, or an error code/message such as ``in_progress``,
    ``locked``, ``try again``) and not when it says the state is final (``already
    cancelled``, ``cannot be cancelled``, ``already exists``); ``True`` always retries;
    ``False`` never does."""
    respect_retry_after: bool = True
    """Wait as long as ``Retry-After`` / ``retry-after-ms`` ask (capped by the deadline)."""
    sleep: Callable[[float], None] = time.sleep
    """Called with the seconds to wait between attempts."""
    clock: Callable[[], float] = time.monotonic
    """Monotonic seconds, used for the deadline."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.deadline <= 0 or self.base < 0 or self.max_wait < 0:
            raise ValueError("deadline must be > 0 and base, max_wait >= 0")

    def with_(self, **changes: Any) -> "RetryPolicy":
        """A copy with some fields changed: ``policy.with_(max_attempts=3)``."""
        return replace(self, **changes)

    def backoff_window(self, retry_number: int) -> float:
        """Upper bound of the jittered wait before retry ``retry_number`` (1-based)."""
        return min(self.max_wait, self.base * 2.0 ** min(max(retry_number - 1, 0), 60))


DEFAULT_POLICY = RetryPolicy()


@dataclass(frozen=True)
class RetryEvent:
    """One retry about to happen; passed to ``on_retry`` and logged."""

    op: str
    provider: str
    attempt: int
    """The attempt that just failed (1-based)."""
    max_attempts: int
    wait: float
    """Seconds ftc will sleep before the next attempt."""
    reason: str
    """Why the attempt failed, secret-free (``HTTP 429 rate limited``, ``read timeout``)."""
    status_code: int | None
    elapsed: float
    """Seconds since the first attempt started."""
    server_wait: bool
    """True when ``wait`` came from the server's Retry-After / retry-after-ms."""

    def __str__(self) -> str:
        src = " (as the server asked)" if self.server_wait else ""
        return (f"{_display(self.provider)} {self.op}: attempt {self.attempt}/{self.max_attempts} failed "
                f"({self.reason}); retrying in {self.wait:.1f} s{src}")


# --------------------------------------------------------------------------- errors


class ProviderError(FtcError):
    """A provider call failed (exit 1). Subclasses say how; keyed by HTTP status.

    ``status_code``: the HTTP status if there was a response; ``request_id``: the
    provider's request id (quote it to their support); ``error``: the original
    exception (SDK or transport), or ``None`` where keeping it could leak a secret.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, *, provider: str = "", op: str = "",
                 status_code: int | None = None, request_id: str | None = None,
                 error: BaseException | None = None, reason: str = ""):
        super().__init__(message, hint)
        self.provider = provider
        self.op = op
        self.status_code = status_code
        self.request_id = request_id
        self.error = error
        self.reason = reason


class AuthError(ConfigError, ProviderError):
    """401/403: the API key is missing, wrong or lacks permission (exit 2).

    The message names the env var to set; it never holds the key, the Authorization
    header or the provider's echo of the key, and the SDK error is not kept.
    """

    def __init__(self, message: str, hint: str | None = None, *, key_env: str = "", **kw: Any):
        super().__init__(message, hint, **kw)
        self.key_env = key_env


class RequestRejected(ProviderError):
    """The provider refused the request and a retry would not help (400, 404, 422, a
    non-retryable 409, a spent quota, a 5xx marked ``x-should-retry: false``)."""


class RetryExhausted(ProviderError):
    """Every attempt failed with a retryable error, or the deadline came first."""

    def __init__(self, message: str, hint: str | None = None, *, attempts: int = 0, elapsed: float = 0.0, **kw: Any):
        super().__init__(message, hint, **kw)
        self.attempts = attempts
        self.elapsed = elapsed


class AmbiguousResult(ProviderError):
    """A non-idempotent call failed after its request may have reached the provider.

    The job may or may not exist. ``error`` is the original exception. Reconcile (list
    the provider's jobs, look for the client token) before submitting again.
    """


# --------------------------------------------------------------------------- classification

RETRY, AMBIGUOUS, AUTH, REJECT, RAISE = "retry", "ambiguous", "auth", "reject", "raise"


@dataclass(frozen=True)
class Decision:
    """What to do about one failed attempt.

    ``action``: ``retry``; ``ambiguous`` (non-idempotent, may have been applied);
    ``auth`` (401/403); ``reject`` (an HTTP refusal not worth retrying); ``raise``
    (not a provider error at all: re-raised unchanged).
    """

    action: str
    reason: str
    status_code: int | None = None
    retry_after: float | None = None
    maybe_sent: bool | None = None
    """For transport errors: whether the request may have reached the server."""


# Transport errors that certainly happened before the request left (httpx, httpx2,
# httpcore and builtins share these names). Checked on the outermost transport error.
_NOT_SENT = {
    "ConnectError": "connection failed",
    "ConnectTimeout": "connect timeout",
    "PoolTimeout": "no free connection in the pool",
    "ConnectionRefusedError": "connection refused",
}
_MAYBE_SENT = {
    "ReadTimeout": "read timeout",
    "WriteTimeout": "write timeout",
    "ReadError": "connection dropped while reading",
    "WriteError": "connection dropped while sending",
    "RemoteProtocolError": "server closed the connection",
    "CloseError": "connection close failed",
    "ProxyError": "proxy error",
    "ConnectionResetError": "connection reset",
    "BrokenPipeError": "connection broken",
    "ConnectionAbortedError": "connection aborted",
    "TimeoutException": "timeout",
    "TimeoutError": "timeout",
    "EndOfStream": "connection closed",
    "NetworkError": "network error",
    "TransportError": "transport error",
    "ConnectionError": "connection error",
}
# Client-side mistakes: never retried (bad base URL, bad request built locally).
_LOCAL = {"UnsupportedProtocol", "LocalProtocolError", "InvalidURL"}
_SDK_WRAPPERS = {"APITimeoutError": "timeout", "APIConnectionError": "connection error"}

# 409: strong "try again" words win over "final state" words, which win over weak ones
# ("already in progress" retries, "already cancelled" does not).
_409_RETRY = ("in_progress", "in progress", "lock", "try again", "concurrent", "being processed")
_409_FINAL = ("already", "cannot be", "can not be", "not allowed", "duplicate", "exists", "invalid state")
_409_WEAK = ("retry", "busy", "temporar", "reconcil")
_QUOTA_CODES = ("insufficient_quota", "billing_hard_limit_reached", "billing_not_active",
                "credit_balance", "insufficient_balance", "insufficient_funds")


def _mro_names(exc: BaseException) -> list[str]:
    return [c.__name__ for c in type(exc).__mro__]


def _chain(exc: BaseException, limit: int = 12) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(out) < limit and all(cur is not e for e in out):
        out.append(cur)
        cur = cur.__cause__ or (None if cur.__suppress_context__ else cur.__context__)
    return out


def _status_of(exc: BaseException) -> int | None:
    if isinstance(exc, FtcError):
        return None
    sc = getattr(exc, "status_code", None)
    if not isinstance(sc, int):
        sc = getattr(getattr(exc, "response", None), "status_code", None)
    return sc if isinstance(sc, int) and 400 <= sc <= 599 else None


def _headers_of(exc: BaseException) -> Any:
    return getattr(getattr(exc, "response", None), "headers", None) or {}


def _header(headers: Any, name: str) -> str | None:
    try:
        v = headers.get(name)
    except Exception:
        v = None
    if v is None and isinstance(headers, Mapping):
        for k, val in headers.items():
            if str(k).lower() == name:
                return str(val)
    return None if v is None else str(v)


def error_fields(exc: BaseException) -> dict[str, str]:
    """``code``, ``type``, ``message`` from the error body (OpenAI unwraps ``error``;
    Together keeps ``{"error": {...}}``); plain text bodies become ``message``."""
    body = getattr(exc, "body", None)
    if body is None:
        resp = getattr(exc, "response", None)
        try:
            import json

            body = json.loads(resp.text) if resp is not None else None
        except Exception:
            body = getattr(resp, "text", None) if resp is not None else None
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        body = body["error"]
    out: dict[str, str] = {}
    if isinstance(body, Mapping):
        for k in ("code", "type", "message"):
            v = body.get(k)
            if v is not None and not isinstance(v, (dict, list)):
                out[k] = str(v)
        if "message" not in out and isinstance(body.get("error"), str):
            out["message"] = body["error"]
        if "message" not in out and isinstance(body.get("detail"), str):  # FastAPI-style servers
            out["message"] = body["detail"]
    elif isinstance(body, str) and body.strip():
        out["message"] = body.strip()
    return out


def parse_retry_after(headers: Any, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds the server asks to wait, or ``None``.

    Reads ``retry-after-ms`` (milliseconds; OpenAI sends it), then ``Retry-After`` as
    seconds (floats allowed) or as an HTTP-date. A date in the past gives 0; garbage,
    negative and non-finite values are ignored.
    """
    if not headers:
        return None
    for name, div in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = _header(headers, name)
        if raw is None:
            continue
        try:
            v = float(raw.strip())
        except ValueError:
            continue
        if math.isfinite(v) and v >= 0:
            return v / div
    raw = _header(headers, "retry-after")
    if raw:
        try:
            import email.utils  # an HTTP date is rare: the mail parser is not loaded at start-up

            t = email.utils.parsedate_tz(raw)
            if t is not None:
                return max(0.0, float(email.utils.mktime_tz(t)) - now())
        except (TypeError, ValueError, OverflowError):
            return None
    return None


def _http_reason(status: int, fields: Mapping[str, str]) -> str:
    names = {400: "bad request", 404: "not found", 408: "request timeout", 409: "conflict", 413: "too large",
             422: "unprocessable", 429: "rate limited", 500: "internal server error", 502: "bad gateway",
             503: "service unavailable", 504: "gateway timeout"}
    r = f"HTTP {status} {names.get(status, 'server error' if status >= 500 else 'error')}"
    if fields.get("code"):
        r += f" ({redact(fields['code'])[:60]})"
    return r


def _retryable_409(exc: BaseException, headers: Any, fields: Mapping[str, str], setting: bool | None) -> bool:
    if setting is not None:
        return setting
    flag = (_header(headers, "x-should-retry") or "").strip().lower()
    if flag in ("true", "false"):
        return flag == "true"
    text = " ".join(fields.get(k, "") for k in ("code", "type", "message")).lower()
    if any(w in text for w in _409_RETRY):
        return True
    if any(w in text for w in _409_FINAL):
        return False
    return any(w in text for w in _409_WEAK)


def classify(exc: BaseException, *, idempotent: bool, retry_409: bool | None = None) -> Decision:
    """Decide what :func:`retry_call` does about ``exc`` (see the module docstring)."""
    status = _status_of(exc)
    if status is not None:
        headers = _headers_of(exc)
        fields = error_fields(exc)
        reason = _http_reason(status, fields)
        ra = parse_retry_after(headers)
        if status in (401, 403):
            return Decision(AUTH, reason, status)
        should = (_header(headers, "x-should-retry") or "").strip().lower()
        if status == 429:
            code = (fields.get("code", "") + " " + fields.get("type", "")).lower()
            if any(q in code for q in _QUOTA_CODES):
                return Decision(REJECT, reason + ": quota or credit spent", status)
            if should == "false":
                return Decision(REJECT, reason, status)
            return Decision(RETRY, reason, status, ra)
        if status == 408:
            return Decision(RETRY if should != "false" else REJECT, reason, status, ra)
        if status == 409:
            if _retryable_409(exc, headers, fields, retry_409):
                return Decision(RETRY, reason, status, ra)
            return Decision(REJECT, reason, status)
        if status >= 500:
            if should == "false":
                return Decision(REJECT, reason, status)
            # The server got the request; it may have acted on it before failing.
            return Decision(RETRY if idempotent else AMBIGUOUS, reason, status, ra, maybe_sent=True)
        return Decision(REJECT, reason, status)

    chain = _chain(exc)
    transport = None
    for e in chain:
        names = _mro_names(e)
        if any(n in _LOCAL for n in names):
            return Decision(RAISE, names[0])
        if any(n in _NOT_SENT or n in _MAYBE_SENT for n in names):
            transport = e
            break
    if transport is not None:
        names = _mro_names(transport)
        for n in names:
            if n in _NOT_SENT:
                # A builtin ConnectionRefusedError deeper down gives the better reason.
                deeper = [x for x in chain if isinstance(x, ConnectionRefusedError)]
                return Decision(RETRY, "connection refused" if deeper else _NOT_SENT[n], maybe_sent=False)
        reason = next(_MAYBE_SENT[n] for n in names if n in _MAYBE_SENT)
        return Decision(RETRY if idempotent else AMBIGUOUS, reason, maybe_sent=True)
    for n in _mro_names(exc):
        if n in _SDK_WRAPPERS:  # an SDK connection error without a cause: assume sent
            return Decision(RETRY if idempotent else AMBIGUOUS, _SDK_WRAPPERS[n], maybe_sent=True)
    return Decision(RAISE, type(exc).__name__)


# --------------------------------------------------------------------------- secrets
# One redaction for all of ftc, with one set of patterns: ftclient.secrets.redact (known key
# values, key shapes, Authorization values, URL credentials), imported above.


def _env_var(provider: str) -> str:
    try:
        return env_var(provider)
    except UsageError:
        return f"{provider.upper()}_API_KEY"


def _display(provider: str) -> str:
    """The provider's name for messages: its backend's ``display`` ("OpenAI"), else as given."""
    return backend_attr(provider, "display") or provider or "the provider"


def _provider_of(exc: BaseException) -> str:
    """The backend whose SDK raised ``exc`` (its ``sdk`` is the exception's package), or ""."""
    mod = type(exc).__module__.split(".")[0]
    return next((name for name in available_backends() if backend_attr(name, "sdk") == mod), "")


def _request_id(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    rid = getattr(exc, "request_id", None)
    if not rid:
        h = _headers_of(exc)
        rid = _header(h, "x-request-id") or _header(h, "request-id")
    return str(rid) if rid else None


# --------------------------------------------------------------------------- SDK clients


def sdk_client_kwargs(sdk: str = "openai", *, connect: float = 10.0, read: float = 60.0, write: float = 60.0,
                      pool: float = 10.0) -> dict[str, Any]:
    """Keyword arguments for ``openai.OpenAI(...)`` / ``together.Together(...)``.

    ``max_retries=0`` turns the SDK's own retry loop off (both SDKs otherwise retry
    408/409/429/5xx and every connection error and timeout twice, even for POSTs), so
    :func:`retry_call` is the only policy. ``timeout`` bounds one attempt: ``connect``,
    ``read`` (between bytes), ``write``, ``pool`` (waiting for a free connection),
    instead of the SDK defaults (OpenAI: 600 s, Together: 60 s).

    ``sdk``: ``"openai"`` (an ``httpx2.Timeout``: openai 3.x talks through httpx2; an
    ``httpx.Timeout`` where httpx2 is not installed, as with openai 1.x) or
    ``"together"`` / anything else (an ``httpx.Timeout``). The module is imported
    here, not at the top of this file.
    """
    import importlib

    mod = None
    if sdk == "openai":
        try:
            mod = importlib.import_module("httpx2")
        except ImportError:
            mod = None
    if mod is None:
        mod = importlib.import_module("httpx")
    return {"max_retries": 0, "timeout": mod.Timeout(connect=connect, read=read, write=write, pool=pool)}


# --------------------------------------------------------------------------- the loop


class _Retryable(Exception):
    """Internal: carries a retryable error and its decision through tenacity."""

    def __init__(self, error: BaseException, decision: Decision):
        super().__init__(decision.reason)
        self.error = error
        self.decision = decision


def retry_call(
    fn: Callable[[], T],
    *,
    op: str = "call",
    idempotent: bool,
    policy: RetryPolicy | None = None,
    provider: str | None = None,
    key_env: str | None = None,
    on_retry: Optional[Callable[[RetryEvent], None]] = None,
) -> T:
    """Call ``fn()`` under the retry policy and return its result.

    ``op``: what the call does, for messages (``"list jobs"``, ``"create job"``).
    ``idempotent``: False for calls that create something; then an ambiguous failure
    raises :class:`AmbiguousResult` instead of retrying. ``provider``: ``"openai"``,
    ``"together"``... (default: guessed from the exception's module). ``key_env``: the
    env var named in :class:`AuthError` (default: the backend's, ``secrets.env_var``). ``on_retry``:
    called with a :class:`RetryEvent` before each wait (the CLI shows it).

    Raises :class:`AuthError`, :class:`RequestRejected`, :class:`RetryExhausted`,
    :class:`AmbiguousResult`; any exception that is not a provider error (a bug,
    ``KeyboardInterrupt``) passes through unchanged.
    """
    import tenacity

    pol = policy or DEFAULT_POLICY
    hooks = _Hooks(pol, op=op, provider=provider, key_env=key_env, on_retry=on_retry, idempotent=idempotent)

    def attempt() -> T:
        try:
            return fn()
        except Exception as exc:
            hooks.failed(exc)
            raise  # pragma: no cover - failed() always raises

    retrying = tenacity.Retrying(
        sleep=lambda s: pol.sleep(float(s)),
        stop=hooks.stop,
        wait=hooks.wait,
        retry=tenacity.retry_if_exception_type(_Retryable),
        before_sleep=hooks.before_sleep,
        retry_error_callback=hooks.give_up,
        reraise=False,
    )
    return retrying(attempt)


def _raise_final(exc: BaseException, d: Decision, *, op: str, provider: str, key_env: str | None) -> None:
    name = _display(provider)
    rid = _request_id(exc)
    tail = f" (request id {rid})" if rid else ""
    if d.action == AUTH:
        env = key_env or (_env_var(provider) if provider else "the API key variable")
        if d.status_code == 401:
            msg = f"{name} rejected the API key (HTTP 401) during {op}. Set {env} to a valid key{tail}."
        else:
            # The provider's reason helps (region, model access), unless it echoes credentials.
            raw = error_fields(exc).get("message", "")
            detail = raw[:200] if redact(raw) == raw and "authorization" not in raw.lower() else ""
            msg = (f"{name} refused {op} (HTTP 403 permission denied) for the key in {env}"
                   + (f": {detail}" if detail else "") + f"{tail}.")
        hint = f"export {env}=<your key> (or store it with `ftc keys`), then run the command again."
        # `from None` and error=None: the SDK error holds the request and its Authorization header.
        raise AuthError(msg, hint, key_env=env, provider=provider, op=op, status_code=d.status_code,
                        request_id=rid, error=None, reason=d.reason) from None
    if d.action == AMBIGUOUS:
        msg = (f"{name} {op}: {d.reason} after the request may have reached {name}; it may or may not have "
               f"taken effect, so ftc did not retry it{tail}.")
        hint = ("Reconcile before submitting again: list the provider's jobs and look for this submission's "
                "client token.")
        raise AmbiguousResult(msg, hint, provider=provider, op=op, status_code=d.status_code, request_id=rid,
                              error=exc, reason=d.reason) from exc
    detail = redact(error_fields(exc).get("message", ""))[:300]
    msg = f"{name} rejected {op}: {d.reason}" + (f": {detail}" if detail else "") + tail
    hint = None
    if d.status_code == 429:
        hint = "Add credit or raise the quota in the provider's billing settings."
    elif d.status_code == 404:
        hint = "Check the id or model name."
    raise RequestRejected(msg, hint, provider=provider, op=op, status_code=d.status_code, request_id=rid,
                          error=exc, reason=d.reason) from exc


# --------------------------------------------------------------------------- the async loop


async def async_retry_call(
    fn: Callable[[], Awaitable[T]],
    *,
    op: str = "call",
    idempotent: bool,
    policy: RetryPolicy | None = None,
    provider: str | None = None,
    key_env: str | None = None,
    on_retry: Optional[Callable[[RetryEvent], None]] = None,
    sleep: Optional[Callable[[float], Awaitable[None]]] = None,
) -> T:
    """``await fn()`` under the retry policy: :func:`retry_call` for coroutines.

    The same classification (:func:`classify`), waits (full-jitter backoff, or the
    server's ``Retry-After`` / ``retry-after-ms``), attempt budget and deadline, the same
    :class:`RetryEvent` per retry and the same errors (:class:`AuthError`,
    :class:`RequestRejected`, :class:`RetryExhausted`, :class:`AmbiguousResult`).
    Built on ``tenacity.AsyncRetrying``; ``fn`` is called anew for every attempt, so it
    may take a rate-limiter slot each time.

    ``sleep``: the coroutine that waits between attempts. Default: ``asyncio.sleep``,
    or -- when ``policy.sleep`` is not ``time.sleep`` (a test's fake clock) --
    ``policy.sleep`` followed by ``asyncio.sleep(0)``. ``asyncio.CancelledError`` and
    ``KeyboardInterrupt`` pass through unchanged.
    """
    import asyncio

    import tenacity

    pol = policy or DEFAULT_POLICY
    hooks = _Hooks(pol, op=op, provider=provider, key_env=key_env, on_retry=on_retry, idempotent=idempotent)

    if sleep is None:
        if pol.sleep is time.sleep:
            sleep = asyncio.sleep
        else:
            async def sleep(seconds: float) -> None:
                pol.sleep(float(seconds))
                await asyncio.sleep(0)

    async def attempt() -> T:
        try:
            return await fn()
        except Exception as exc:
            hooks.failed(exc)
            raise  # pragma: no cover - failed() always raises

    retrying = tenacity.AsyncRetrying(
        sleep=sleep,
        stop=hooks.stop,
        wait=hooks.wait,
        retry=tenacity.retry_if_exception_type(_Retryable),
        before_sleep=hooks.before_sleep,
        retry_error_callback=hooks.give_up,
        reraise=False,
    )
    return await retrying(attempt)


class _Hooks:
    """The decisions of one retry loop, shared by :func:`retry_call` and :func:`async_retry_call`."""

    def __init__(self, pol: RetryPolicy, *, op: str, provider: str | None, key_env: str | None,
                 on_retry: Optional[Callable[[RetryEvent], None]], idempotent: bool):
        self.pol, self.op, self.provider, self.key_env = pol, op, provider, key_env
        self.on_retry, self.idempotent = on_retry, idempotent
        self.start = pol.clock()
        self.giving_up: dict[str, str] = {}

    def prov(self, exc: BaseException | None = None) -> str:
        return self.provider or (_provider_of(exc) if exc is not None else "")

    def failed(self, exc: Exception) -> None:
        """Classify a failed attempt: raise ``_Retryable``, the final error, or ``exc`` itself."""
        d = classify(exc, idempotent=self.idempotent, retry_409=self.pol.retry_409)
        if d.action == RETRY:
            raise _Retryable(exc, d) from exc
        if d.action == RAISE:
            raise exc
        _raise_final(exc, d, op=self.op, provider=self.prov(exc), key_env=self.key_env)

    def wait(self, rs: Any) -> float:
        import tenacity

        pol = self.pol
        d: Decision = rs.outcome.exception().decision
        remaining = pol.deadline - (pol.clock() - self.start)
        if pol.respect_retry_after and d.retry_after is not None and d.retry_after > 0:
            return d.retry_after
        w = tenacity.wait_random_exponential(multiplier=pol.base, max=pol.max_wait)(rs)
        return max(0.0, min(w, remaining))

    def stop(self, rs: Any) -> bool:
        pol = self.pol
        d: Decision = rs.outcome.exception().decision
        remaining = pol.deadline - (pol.clock() - self.start)
        if rs.attempt_number >= pol.max_attempts:
            self.giving_up["why"] = f"after {rs.attempt_number} attempts (the most allowed)"
            return True
        server_wait = pol.respect_retry_after and d.retry_after is not None and d.retry_after > 0
        if server_wait and rs.upcoming_sleep > remaining:
            self.giving_up["why"] = (f"the server asked to wait {rs.upcoming_sleep:.0f} s (Retry-After) but only "
                                     f"{max(remaining, 0):.0f} s of the {pol.deadline:.0f} s deadline remain, "
                                     f"so ftc gave up at once after {rs.attempt_number} attempt(s)")
            self.giving_up["hint"] = (f"Try again in {rs.upcoming_sleep:.0f} s, when the provider said it will "
                                      "take requests.")
            return True
        if remaining <= 0:
            self.giving_up["why"] = f"after {rs.attempt_number} attempt(s): the {pol.deadline:.0f} s deadline passed"
            return True
        return False

    def before_sleep(self, rs: Any) -> None:
        r: _Retryable = rs.outcome.exception()
        d = r.decision
        pol = self.pol
        ev = RetryEvent(op=self.op, provider=self.prov(r.error), attempt=rs.attempt_number,
                        max_attempts=pol.max_attempts, wait=float(rs.upcoming_sleep), reason=d.reason,
                        status_code=d.status_code, elapsed=pol.clock() - self.start,
                        server_wait=bool(pol.respect_retry_after and d.retry_after))
        log.info("%s", ev)
        if self.on_retry is not None:
            self.on_retry(ev)

    def give_up(self, rs: Any) -> Any:
        r: _Retryable = rs.outcome.exception()
        p = self.prov(r.error)
        elapsed = self.pol.clock() - self.start
        why = self.giving_up.get("why", f"after {rs.attempt_number} attempt(s)")
        rid = _request_id(r.error)
        msg = f"{_display(p)} {self.op} failed: {r.decision.reason}; {why} in {elapsed:.1f} s"
        if rid:
            msg += f" (request id {rid})"
        if "hint" in self.giving_up:
            hint = self.giving_up["hint"]
        elif r.decision.status_code is None:
            hint = ("Check the network and the provider's base URL (OPENAI_BASE_URL / TOGETHER_BASE_URL); "
                    "then run the command again.")
        else:
            hint = "The provider is overloaded or failing; try again later (its status page may say more)."
        raise RetryExhausted(msg, hint, provider=p, op=self.op, status_code=r.decision.status_code, request_id=rid,
                             error=r.error, reason=r.decision.reason, attempts=rs.attempt_number,
                             elapsed=elapsed) from r.error

