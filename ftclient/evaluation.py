"""Evaluate a model on held-out chat data: quality, latency, tokens, throughput, cost per 1K queries.

    from ftclient.evaluation import evaluate
    summary = evaluate("openai:gpt-4o-mini", "data/eval.jsonl", metric="label", rpm=500)

The Python API behind ``ftc eval`` (docs/eval.md). Steps:

1. The model reference is parsed (:mod:`ftclient.modelref`), the data read: ChatML JSONL
   as ``ftc data prepare`` writes it; for each record the prompt is every message before
   the last assistant message and the reference is that message's content.
2. The run's id is derived from (canonical model ref, data sha256, generation params:
   ``max_tokens``, ``temperature``, ``max_examples``), so running the same evaluation
   again finds its stored results (:class:`ftclient.store.Store`, tables ``eval_runs`` /
   ``eval_results``) and sends only the examples not answered yet (failed ones are sent
   again); ``fresh=True`` starts over. Every answer is stored as it arrives, so an
   interrupted run (Ctrl-C, kill) resumes where it stopped. The metric is not part of the
   id: scoring the same outputs with another metric sends nothing.
3. Hosted and OpenAI-compatible models are asked concurrently from one asyncio loop:
   ``openai.AsyncOpenAI`` (openai, openai-compatible) or the together SDK's own
   ``AsyncTogether``, SDK retries off (``max_retries=0``), every call under
   :func:`ftclient.retry.async_retry_call` (the same classification as every other
   provider call: 429 / 5xx / dropped connections are retried, ``Retry-After`` honoured).
   At most ``concurrency`` requests are in flight (an ``asyncio.Semaphore``), and
   :class:`RateGate` paces them under ``rpm`` requests and ``tpm`` tokens per minute
   (``aiolimiter`` leaky buckets) and, when a 429 arrives, pauses every request -- not
   only the one that got it -- for the wait the retry policy chose. Each request is bounded
   as a whole by ``timeout_s`` and its reply body by ``max_reply_bytes`` (a transport that
   counts bytes as they arrive); a request that timed out is not sent again. A reply is
   checked by :func:`parse_reply` before anything is stored: one that is no chat
   completion is a failure (sent once more, then recorded with its reason), never an empty
   answer. Nothing listening, or the first requests all failing the same way, stop the
   run with one message (docs/eval.md, "Slow, broken and hostile servers").
4. Local models are loaded once (``load_for_inference``) and answered in batches by the
   local backend's batched greedy ``generate``; latency is per example (batch time /
   batch size) and tokens are counted with the model's tokenizer.
5. The summary (:func:`evaluate`'s return value, stored with the run and printed by
   ``ftc eval --json``) has the shape documented in docs/eval.md.

Nothing heavy is imported at module import: the SDKs, aiolimiter and torch load inside
the functions that use them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .errors import ConfigError, DataError, FtcError, UsageError
from .errors import Interrupted as _Interrupted

if TYPE_CHECKING:  # pragma: no cover
    from .modelref import ModelRef
    from .prices import Catalogue
    from .retry import RetryEvent, RetryPolicy
    from .store import EvalResult, Store

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_MAX_REPLY_BYTES",
    "MAX_ANSWER_CHARS",
    "BadReply",
    "parse_reply",
    "RATE_SAFETY",
    "SUMMARY_KEYS",
    "Example",
    "EvalProgress",
    "Interrupted",
    "RateGate",
    "load_examples",
    "eval_run_id",
    "estimate_tokens",
    "evaluate",
]

#: Reply length bound when none is given (labels and short answers fit well within it).
DEFAULT_MAX_TOKENS = 128
DEFAULT_CONCURRENCY = 8
DEFAULT_BATCH_SIZE = 8
#: Seconds one request may take from sending to the last byte of its reply (``--timeout``).
DEFAULT_TIMEOUT_S = 120.0
#: The largest reply body read from a server (``--max-reply-bytes``); the rest is not read.
DEFAULT_MAX_REPLY_BYTES = 4 * 1024 * 1024
#: Answers longer than this many characters are cut to it before they are stored and scored.
MAX_ANSWER_CHARS = 64 * 1024
#: The run stops when its first this-many requests all failed for the same reason.
FAIL_FAST_AFTER = 5
#: Token counts above this in a reply's ``usage`` are not believed (and not stored).
_MAX_USAGE_TOKENS = 10**9
#: The rate limiter paces at this share of --rpm / --tpm, so timing jitter between this
#: client and the server's clock does not push a window over the provider's limit.
RATE_SAFETY = 0.97

#: The keys of a summary, in order (``ftc eval --json``; the report reads them).
SUMMARY_KEYS: tuple[str, ...] = (
    "run_id", "model_ref", "backend", "model", "job_id", "base_model", "fine_tuned", "data", "data_sha256",
    "examples", "completed", "failed", "metric", "metrics", "latency_s", "tokens", "cost_per_1k_queries_usd",
    "cost_basis", "throughput_qps", "wall_s", "started_at", "finished_at", "notes", "machine", "failures",
    "sessions",
)

#: Any OpenAI-compatible server (Ollama, vLLM, TGI...), asked through the openai SDK: a
#: protocol, not a backend of the registry.
COMPATIBLE = "openai-compatible"
COMPATIBLE_KEY_ENV = "OPENAI_COMPATIBLE_API_KEY"

HOSTED, HERE, SERVER = "hosted", "here", "server"


def _kind(backend: str) -> str | None:
    """How ``ftc eval`` asks a model of ``backend``: ``hosted`` (the backend's async chat
    client, priced per token from the catalogue), ``here`` (the backend loads the model on
    this machine: ``load_generator``), ``server`` (an OpenAI-compatible server); None when
    it cannot ask it. Asked of the registry: nothing is built."""
    from .backends import offers

    if backend == COMPATIBLE:
        return SERVER
    if offers(backend, "async_chat_client"):
        return HOSTED
    if offers(backend, "load_generator"):
        return HERE
    return None


def _askable() -> list[str]:
    from .backends import available_backends

    return [b for b in available_backends() if _kind(b) is not None] + [COMPATIBLE]


class Interrupted(_Interrupted):
    """The evaluation was interrupted; what was answered is stored (exit 130)."""

    exit_code = 130


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Example:
    """One evaluation example: ``messages`` (the prompt) and the ``reference`` answer."""

    idx: int
    key: str
    messages: list
    reference: str
    line: int = 0


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(str(p.get("text", "")) if isinstance(p, Mapping) else str(p) for p in content)
    return str(content)


def load_examples(path: "str | Path", max_examples: int | None = None) -> tuple[list[Example], str]:
    """The examples of a ChatML JSONL file (the first ``max_examples``) and the file's sha256.

    A record is ``{"messages": [...]}`` with at least one assistant message that has a
    message before it; the last assistant message is the reference, the messages before
    it the prompt. Blank lines are skipped; anything else is a DataError naming the line.
    """
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"{p}: no such file", hint="Write eval.jsonl with `ftc data prepare ... --out-dir data/`.")
    raw = p.read_bytes()
    sha = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    out: list[Example] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if max_examples is not None and len(out) >= max_examples:
            break
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise DataError(f"{p}: line {lineno}: not JSON ({e.msg})") from None
        msgs = rec.get("messages") if isinstance(rec, dict) else None
        if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
            raise DataError(f"{p}: line {lineno}: not a chat example (no \"messages\" list)",
                            hint="Evaluation data is ChatML JSONL: {\"messages\": [..., {\"role\": \"assistant\", ...}]}.")
        last = max((i for i, m in enumerate(msgs) if m.get("role") == "assistant"), default=None)
        if last is None or last == 0:
            raise DataError(f"{p}: line {lineno}: no assistant message after the prompt to compare with",
                            hint="Each record needs the expected answer as its last assistant message.")
        prompt = [{"role": str(m.get("role")), "content": _text(m.get("content"))} for m in msgs[:last]]
        reference = _text(msgs[last].get("content"))
        digest = hashlib.sha256(json.dumps([prompt, reference], ensure_ascii=False, sort_keys=True).encode()).hexdigest()
        key = digest[:16]
        n = seen.get(key, 0)
        seen[key] = n + 1
        if n:
            key = f"{key}~{n}"  # the same example twice: two keys
        out.append(Example(idx=len(out), key=key, messages=prompt, reference=reference, line=lineno))
    if not out:
        raise DataError(f"{p}: no examples", hint="Write eval.jsonl with `ftc data prepare`.")
    return out, sha


def eval_run_id(canonical_ref: str, data_sha256: str, params: Mapping[str, Any]) -> str:
    """The deterministic id of an evaluation: same model, data and generation params -> same id."""
    blob = json.dumps({"model": canonical_ref, "data": data_sha256.lower(), "params": dict(params)},
                      sort_keys=True, ensure_ascii=False)
    return "eval-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def estimate_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """A request's prompt tokens as a rate limiter counts them before sending: about four
    characters per token, plus 4 per message and 3 for the reply's priming (providers'
    own limiters estimate the same way; the answer's ``usage`` gives the real figure)."""
    return sum(math.ceil(len(_text(m.get("content"))) / 4) + 4 for m in messages) + 3


# --------------------------------------------------------------------------- progress


@dataclass
class EvalProgress:
    """Passed to ``on_progress`` after every stored answer (and once at the start)."""

    run_id: str
    total: int
    completed: int = 0
    """Answered, cached ones included."""
    failed: int = 0
    cached: int = 0
    """Answers reused from an earlier run of the same evaluation."""
    sent: int = 0
    """Examples answered (or failed) in this session."""
    retries: int = 0
    rate_limited: int = 0
    """Retries caused by HTTP 429."""
    elapsed_s: float = 0.0

    @property
    def done(self) -> int:
        return self.completed + self.failed

    @property
    def rate_qps(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


# --------------------------------------------------------------------------- rate limits


class RateGate:
    """Requests-per-minute and tokens-per-minute limits for one evaluation's requests.

    Two ``aiolimiter.AsyncLimiter`` leaky buckets: one of capacity 1 that lets one request
    through every ``60 / (rpm * RATE_SAFETY)`` seconds (an even pace, never a burst a
    provider's per-second quantisation would refuse), and one for tokens whose capacity
    is the largest single request (``max_charge``), draining at ``tpm * RATE_SAFETY`` per
    minute. A request is charged its estimated prompt tokens plus ``max_tokens``, as the
    providers count it. :meth:`pause` (called on every 429) holds every request back until
    the wait is over, so one refusal slows the whole run, not just the request that got it.
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None, *, max_charge: int = 1,
                 safety: float = RATE_SAFETY):
        from aiolimiter import AsyncLimiter

        self.rpm, self.tpm = rpm, tpm
        self.requests = AsyncLimiter(1, 60.0 / (rpm * safety)) if rpm else None
        cap = max(1, int(max_charge))
        self.tokens = AsyncLimiter(cap, cap * 60.0 / (tpm * safety)) if tpm else None
        self._resume_at = 0.0
        self.pauses = 0

    def pause(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` from now (longer pauses win)."""
        if seconds <= 0:
            return
        now = asyncio.get_running_loop().time()
        self._resume_at = max(self._resume_at, now + seconds)
        self.pauses += 1

    async def _paused(self) -> None:
        loop = asyncio.get_running_loop()
        while (wait := self._resume_at - loop.time()) > 0:
            await asyncio.sleep(wait)

    async def acquire(self, tokens: int = 0) -> None:
        """Wait for a pause to end and for room under both limits."""
        await self._paused()
        if self.requests is not None:
            await self.requests.acquire()
        if self.tokens is not None and tokens > 0:
            await self.tokens.acquire(min(float(tokens), self.tokens.max_rate))
        await self._paused()  # a 429 that came in while this one waited for its slot


# --------------------------------------------------------------------------- helpers


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _opened(store: "Store | None") -> "contextlib.AbstractContextManager[Store]":
    from .store import opened

    return opened(store)


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of an ascending list; 0.0 when empty."""
    if not sorted_values:
        return 0.0
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def _run_coro(coro: Any) -> Any:
    """``asyncio.run`` -- in a worker thread when this thread already runs a loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@dataclass
class _Session:
    """What this call of :func:`evaluate` did (as opposed to what the store holds)."""

    progress: EvalProgress
    on_progress: Callable[[EvalProgress], None] | None
    t0: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=_now_iso)
    new_completed: int = 0
    active_s: float = 0.0
    """Seconds spent answering (hosted: first request to last answer; local: generation)."""
    notes: list[str] = field(default_factory=list)
    device: str | None = None
    load_start: float | None = field(default_factory=lambda: _load_1m())
    """The 1-minute load average when the evaluation started (the machine's load before it)."""
    load_max: float | None = None

    def tick(self) -> None:
        self.progress.elapsed_s = time.monotonic() - self.t0
        load = _load_1m()
        if load is not None and (self.load_max is None or load > self.load_max):
            self.load_max = load
        if self.on_progress is not None:
            self.on_progress(self.progress)

    def machine(self) -> dict[str, Any]:
        """Where latency and throughput were measured: the device, the CPUs and their load."""
        end = _load_1m()
        peak = max((x for x in (self.load_start, self.load_max, end) if x is not None), default=None)
        return {"device": self.device, "cpu_count": os.cpu_count(),
                "load_avg_1m": {"start": self.load_start, "max": peak, "end": end}}


def _load_1m() -> float | None:
    """The 1-minute load average (runnable processes), or None where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


# --------------------------------------------------------------------------- hosted


def _check_can_ask(ref: "ModelRef") -> None:
    """Before the run is recorded: what asking ``ref`` needs is here (the backend's SDK or
    training stack, its API key), else a ConfigError (exit 2) with the install line or the
    key's variable. The backend declares both (``ftclient.backends.readiness``)."""
    from .backends import available_backends, check_ready, get_backend, require_modules

    if ref.backend in available_backends():
        check_ready(get_backend(ref.backend))
    elif ref.backend == COMPATIBLE:  # asked through the openai SDK; a key is optional
        require_modules(("openai",), extra="hosted", who="ftc eval of an OpenAI-compatible server")
        from .secrets import check_key

        check_key(COMPATIBLE)  # but one that is set must be usable (exit 2, never shown)


class BadReply(Exception):
    """A server's reply that is no chat completion (not UTF-8, not JSON, no ``choices``...):
    the request failed, it is never scored. ``reason`` says what was wrong, briefly."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _ReplyTooLarge(Exception):
    """Raised while reading a reply body past ``--max-reply-bytes`` (the rest is not read)."""

    def __init__(self, limit: int):
        super().__init__(f"reply larger than {limit:,} bytes")
        self.limit = limit


class _NoResend(Exception):
    """A request that failed in a way a resend would not mend or could make worse (a reply
    that did not come in time, one too large): recorded as failed at once."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _CannotConnect(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def capped_http_client(sdk_module: Any, http_module: Any, *, max_reply_bytes: int, connections: int) -> Any:
    """The SDK's own async HTTP client (``DefaultAsyncHttpxClient``) over a transport that
    counts the bytes of every reply body as they arrive and stops reading at
    ``max_reply_bytes`` (a ``Content-Length`` over the limit stops it before reading), so
    an endless or huge reply -- error replies included, which the SDKs read whole -- costs
    at most that much memory."""
    limit = int(max_reply_bytes)

    class _CappedStream(http_module.AsyncByteStream):
        def __init__(self, inner: Any):
            self._inner = inner

        async def __aiter__(self) -> Any:
            n = 0
            async for chunk in self._inner:
                n += len(chunk)
                if n > limit:
                    raise _ReplyTooLarge(limit)
                yield chunk

        async def aclose(self) -> None:
            await self._inner.aclose()

    class _CappedTransport(http_module.AsyncBaseTransport):
        def __init__(self) -> None:
            n = max(10, connections + 2)
            self._inner = http_module.AsyncHTTPTransport(
                limits=http_module.Limits(max_connections=n, max_keepalive_connections=n))

        async def handle_async_request(self, request: Any) -> Any:
            resp = await self._inner.handle_async_request(request)
            size = str(resp.headers.get("content-length") or "").strip()
            if size.isdigit() and int(size) > limit:
                await resp.aclose()
                raise _ReplyTooLarge(limit)
            return http_module.Response(status_code=resp.status_code, headers=resp.headers,
                                        stream=_CappedStream(resp.stream), extensions=resp.extensions,
                                        request=request)

        async def aclose(self) -> None:
            await self._inner.aclose()

    return sdk_module.DefaultAsyncHttpxClient(transport=_CappedTransport())


def request_timeouts(timeout_s: float) -> dict[str, float]:
    """The SDK transport's read and write timeouts for requests bounded by ``timeout_s`` as a
    whole (asyncio, in ``_run_hosted``): they only back that bound up."""
    return {"read": timeout_s + 5.0, "write": timeout_s + 5.0}


def openai_http_module() -> Any:
    """The HTTP library the installed openai SDK talks through (httpx2 for openai 3.x, else httpx)."""
    import importlib

    try:
        return importlib.import_module("httpx2")
    except ImportError:  # openai 1.x talks through httpx
        return importlib.import_module("httpx")


def _async_client(ref: "ModelRef", *, timeout_s: float = DEFAULT_TIMEOUT_S,
                  max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES, concurrency: int = DEFAULT_CONCURRENCY) -> Any:
    """The async chat client that asks ``ref``: its backend's (``async_chat_client``), or for
    an OpenAI-compatible server the openai SDK pointed at the server."""
    if ref.backend != COMPATIBLE:
        from .backends import get_backend

        return get_backend(ref.backend).async_chat_client(timeout_s=timeout_s, max_reply_bytes=max_reply_bytes,
                                                          concurrency=concurrency)
    import openai

    from .retry import sdk_client_kwargs
    from .secrets import KeyFormatError, get_key

    http = capped_http_client(openai, openai_http_module(), max_reply_bytes=max_reply_bytes, connections=concurrency)
    try:
        key = get_key(COMPATIBLE)
    except KeyFormatError:
        raise
    except ConfigError:
        key = "unused"  # most self-hosted servers (Ollama, vLLM) ask for no key
    # The URL as given (its credentials too) exists only here, in memory; ref.base_url is redacted.
    base_url, query = ref.connection()
    return openai.AsyncOpenAI(api_key=key, base_url=base_url, default_query=query or None, http_client=http,
                              **sdk_client_kwargs("openai", **request_timeouts(timeout_s)))


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _clean_text(text: str) -> str:
    """``text`` with lone surrogates (``"\\ud800"`` is valid JSON) replaced by U+FFFD, so
    it can be stored and printed as UTF-8; surrogate pairs become their character."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _count(value: Any) -> int | None:
    """A token count from ``usage``: a whole number in [0, 1e9], else None (not believed)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= _MAX_USAGE_TOKENS:
        return value
    return None


def _snippet(text: str, n: int = 60) -> str:
    s = " ".join(text.split())
    return s[:n] + ("..." if len(s) > n else "")


def parse_reply(body: "bytes | str | Mapping[str, Any]", *, max_chars: int = MAX_ANSWER_CHARS) -> dict[str, Any]:
    """Check a chat-completion reply body and take what an evaluation stores from it.

    Returns ``{"text", "tokens_in", "tokens_out", "cut", "bad_usage"}``: the first
    choice's message content (cut to ``max_chars`` characters; ``cut`` is how many were
    dropped), the ``usage`` token counts (None when absent; ``bad_usage`` True when they
    were present but not whole numbers in [0, 1e9], then None too). Raises
    :class:`BadReply` when the body is not UTF-8, not JSON, or not a chat completion
    (no ``choices`` list with a ``message``, content neither text nor content parts).
    """
    if isinstance(body, (bytes, bytearray)):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadReply(f"the reply is not UTF-8 text ({e.reason} at byte {e.start})") from None
    else:
        text = body if isinstance(body, str) else None
    if text is not None:
        if not text.strip():
            raise BadReply("the reply was empty")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:
            head = text.lstrip()[:200].lower()
            if head.startswith("<") or "<html" in head:
                raise BadReply(f"the reply is an HTML page, not JSON ({_snippet(text)!r})") from None
            msg = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deep"
            raise BadReply(f"the reply is not JSON ({msg}: {_snippet(text)!r})") from None
    else:
        data = body
    if not isinstance(data, Mapping):
        raise BadReply(f"the reply is JSON but not a chat completion (a {type(data).__name__}, not an object)")
    choices = data.get("choices")
    if not isinstance(choices, list):
        what = "no \"choices\"" if choices is None else f"\"choices\" is a {type(choices).__name__}, not a list"
        raise BadReply(f"the reply is not a chat completion ({what})")
    if not choices:
        raise BadReply("the reply has no answer (\"choices\" is empty)")
    first = choices[0]
    message = first.get("message") if isinstance(first, Mapping) else None
    if not isinstance(message, Mapping):
        raise BadReply("the reply is not a chat completion (its first choice has no \"message\" object)")
    content = message.get("content")
    if content is None:
        answer = ""  # a refusal or a tool call: an answer, an empty one
    elif isinstance(content, str):
        answer = content
    elif isinstance(content, list) and all(isinstance(p, (Mapping, str)) for p in content):
        answer = "".join(p if isinstance(p, str) else str(p.get("text") or "") for p in content)
    else:
        raise BadReply(f"the reply's message content is a {type(content).__name__}, not text")
    answer = _clean_text(answer)
    cut = max(0, len(answer) - max_chars)
    if cut:
        answer = answer[:max_chars]
    usage = data.get("usage")
    tin = tout = None
    bad_usage = False
    if isinstance(usage, Mapping):
        raw_in, raw_out = usage.get("prompt_tokens"), usage.get("completion_tokens")
        tin, tout = _count(raw_in), _count(raw_out)
        bad_usage = (raw_in is not None and tin is None) or (raw_out is not None and tout is None)
        if bad_usage:
            tin = tout = None  # one bad figure: neither is believed
    elif usage is not None:
        bad_usage = True
    return {"text": answer, "tokens_in": tin, "tokens_out": tout, "cut": cut, "bad_usage": bad_usage}


def _reply_body(raw: Any) -> bytes:
    """The body bytes of an SDK raw response (openai's and together's shapes)."""
    http = getattr(raw, "http_response", None)
    content = getattr(http, "content", None) if http is not None else getattr(raw, "content", None)
    if isinstance(content, (bytes, bytearray)):
        return bytes(content)
    raise BadReply("the reply body could not be read")


def _find(exc: BaseException, kind: type) -> Any:
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 12:
        if isinstance(cur, kind):
            return cur
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return None


def _short_reason(e: BaseException) -> str:
    """A failure's short, secret-free reason, for grouping (``HTTP 500 internal server error``)."""
    from .secrets import redact

    r = getattr(e, "reason", "") or getattr(e, "message", "") or str(e)
    return redact(" ".join(str(r).split()))[:200]


def _with_server_text(e: BaseException) -> str:
    """A provider error's message with the server's own words added when the message lacks
    them (a retried 5xx says only "HTTP 500 ... after 6 attempts")."""
    from .retry import _error_fields
    from .secrets import redact

    message = getattr(e, "message", "") or str(e)
    cause = getattr(e, "error", None)
    said = " ".join(str(_error_fields(cause).get("message", "")).split()) if cause is not None else ""
    if said and said not in message:
        message += f"; the server said: {redact(said)[:300]}"
    return message


def _where(ref: "ModelRef", client: Any) -> str:
    from .secrets import redact

    url = ref.base_url if ref.backend == COMPATIBLE and ref.base_url else str(getattr(client, "base_url", ""))
    return redact(url) or ref.backend


async def _run_hosted(ref: "ModelRef", todo: list[Example], st: "Store", run_id: str, sess: _Session, *,
                      concurrency: int, rpm: float | None, tpm: float | None, max_tokens: int,
                      temperature: float, policy: "RetryPolicy | None",
                      on_retry: Callable[["RetryEvent"], None] | None,
                      timeout_s: float = DEFAULT_TIMEOUT_S,
                      max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES) -> None:
    from .retry import AuthError, ProviderError, RequestRejected, async_retry_call, classify

    charges = {ex.key: estimate_tokens(ex.messages) + max_tokens for ex in todo}
    biggest = max(charges.values(), default=1)
    if tpm and biggest > tpm * RATE_SAFETY:
        raise UsageError(f"one request needs about {biggest} tokens (prompt + --max-tokens {max_tokens}), "
                         f"more than --tpm {tpm:g} allows in a minute",
                         hint="Raise --tpm or lower --max-tokens.")
    gate = RateGate(rpm, tpm, max_charge=biggest)
    sem = asyncio.Semaphore(concurrency)
    abort: list[BaseException] = []
    prog = sess.progress
    provider = ref.backend
    if ref.backend == COMPATIBLE:
        key_env, token_kw = COMPATIBLE_KEY_ENV, "max_tokens"  # what most servers read
    else:
        from .backends import get_backend

        backend = get_backend(ref.backend)
        key_env = getattr(backend, "key_env", None) or None
        token_kw = getattr(backend, "chat_token_param", "max_tokens")
    loop = asyncio.get_running_loop()
    first_send: list[float] = []
    outcomes: list[str | None] = []  # in the order requests ended: None = answered, else the reason
    first_error: list[str] = []
    counts = {"cut": 0, "bad_usage": 0, "timed_out": 0, "too_large": 0, "bad_reply": 0}
    op = f"chat with {ref.model}"

    def retried(ev: "RetryEvent") -> None:
        prog.retries += 1
        if ev.status_code == 429:
            prog.rate_limited += 1
            gate.pause(ev.wait)  # everyone waits, not only this request
        if on_retry is not None:
            on_retry(ev)

    async with _async_client(ref, timeout_s=timeout_s, max_reply_bytes=max_reply_bytes,
                             concurrency=concurrency) as client:
        where = _where(ref, client)

        def failed(ex: Example, message: str, reason: str) -> None:
            from .textsafe import safe_text

            # the server's words, stored and later printed: no terminal escape sequences in them
            message, reason = safe_text(message), safe_text(reason)
            st.save_eval_result(run_id, idx=ex.idx, example_key=ex.key, output=None, latency_s=None,
                                tokens_in=None, tokens_out=None, error=message[:500])
            prog.failed += 1
            outcomes.append(reason)
            if not first_error:
                first_error.append(message[:300])

        async def one(ex: Example) -> None:
            timing: dict[str, float] = {}

            async def call() -> Any:
                await gate.acquire(charges[ex.key])
                t = time.perf_counter()
                if not first_send:
                    first_send.append(loop.time())
                try:
                    raw = await asyncio.wait_for(client.chat.completions.with_raw_response.create(
                        model=ref.model, messages=ex.messages, temperature=temperature, **{token_kw: max_tokens}),
                        timeout_s)
                except asyncio.TimeoutError:
                    counts["timed_out"] += 1
                    raise _NoResend(f"no complete reply within {timeout_s:g} s (--timeout)") from None
                except Exception as e:  # noqa: BLE001 - classified here, else by the retry policy
                    big = _find(e, _ReplyTooLarge)
                    if big is not None:
                        counts["too_large"] += 1
                        raise _NoResend(f"the reply was larger than {big.limit:,} bytes (--max-reply-bytes); "
                                        "the rest was not read") from None
                    d = classify(e, idempotent=True)
                    if d.status_code is None and d.reason in ("read timeout", "timeout"):
                        counts["timed_out"] += 1
                        raise _NoResend(f"no complete reply within {timeout_s:g} s (--timeout)") from None
                    if (d.status_code is None and d.reason in ("connection refused", "connection failed")
                            and not any(o is None for o in outcomes)):
                        # Nothing answered yet: a server that is not there (the run stops at once).
                        refused = _find(e, ConnectionRefusedError)
                        why = "connection refused (nothing listens there)" if refused is not None else d.reason
                        if refused is None:
                            os_err = _find(e, OSError)
                            if os_err is not None and getattr(os_err, "strerror", None):
                                why += f" ({os_err.strerror})"
                        raise _CannotConnect(why) from None
                    raise
                body = _reply_body(raw)
                timing["latency"] = time.perf_counter() - t
                return body

            result = None
            for attempt in (1, 2):
                try:
                    body = await async_retry_call(call, op=op, idempotent=True, policy=policy,
                                                  provider=provider, key_env=key_env, on_retry=retried)
                    result = parse_reply(body)
                    break
                except BadReply as b:
                    # A proxy's error page or a broken reply may be a passing fault: sent once more.
                    if attempt == 1:
                        prog.retries += 1
                        await asyncio.sleep(0.2)
                        continue
                    counts["bad_reply"] += 1
                    failed(ex, f"{op}: {b.reason}; sent twice", b.reason)
                except _NoResend as e:
                    failed(ex, f"{op}: {e.reason}", e.reason)
                except _CannotConnect as e:
                    abort.append(ProviderError(
                        f"cannot connect to {where}: {e.reason}",
                        "Start the server (or check the URL in the model reference), then run the same "
                        "command again.", provider=provider, op=op, reason=e.reason))
                    return
                except AuthError as e:
                    abort.append(e)
                    return
                except RequestRejected as e:
                    if e.status_code == 404:  # no such model: every example would fail the same way
                        abort.append(e)
                        return
                    failed(ex, e.message, _short_reason(e))
                except ProviderError as e:
                    failed(ex, _with_server_text(e), _short_reason(e))
                break
            if result is not None:
                if result["cut"]:
                    counts["cut"] += 1
                if result["bad_usage"]:
                    counts["bad_usage"] += 1
                st.save_eval_result(run_id, idx=ex.idx, example_key=ex.key, output=result["text"],
                                    latency_s=timing.get("latency"), tokens_in=result["tokens_in"],
                                    tokens_out=result["tokens_out"])
                prog.completed += 1
                sess.new_completed += 1
                outcomes.append(None)
            prog.sent += 1
            sess.active_s = loop.time() - first_send[0] if first_send else 0.0
            head = outcomes[:FAIL_FAST_AFTER]
            if (not abort and len(todo) > FAIL_FAST_AFTER and len(head) == FAIL_FAST_AFTER
                    and len(outcomes) == FAIL_FAST_AFTER and None not in head and len(set(head)) == 1):
                abort.append(ProviderError(
                    f"stopped: the first {FAIL_FAST_AFTER} requests to {where} all failed the same way: "
                    f"{first_error[0] if first_error else head[0]}",
                    "Fix the cause (the server's message is stored with each failed example: "
                    "`ftc eval show`), then run the same command again; answered examples are kept.",
                    provider=provider, op=op, reason=head[0] or ""))
            sess.tick()

        tasks: set[asyncio.Task] = set()

        def done(t: asyncio.Task) -> None:
            tasks.discard(t)
            sem.release()

        try:
            for ex in todo:
                await sem.acquire()
                if abort:
                    sem.release()
                    break
                task = asyncio.create_task(one(ex))
                tasks.add(task)
                task.add_done_callback(done)
            while tasks:
                await asyncio.gather(*list(tasks))
        finally:
            for t in list(tasks):
                t.cancel()
    if gate.pauses:
        sess.notes.append(f"{prog.rate_limited} request(s) got HTTP 429; each paused every request for the "
                          "wait the server asked (or the backoff)")
    if counts["cut"]:
        sess.notes.append(f"{counts['cut']} answer(s) were longer than {MAX_ANSWER_CHARS:,} characters and were "
                          "cut to that length before they were stored and scored")
    if counts["bad_usage"]:
        sess.notes.append(f"{counts['bad_usage']} reply(ies) gave token usage that is not a whole number in "
                          "[0, 1e9]; those figures were ignored")
    if counts["timed_out"]:
        sess.notes.append(f"{counts['timed_out']} request(s) got no complete reply within {timeout_s:g} s "
                          "(--timeout) and were not sent again; for a slow server raise --timeout or lower "
                          "--concurrency")
    if counts["too_large"]:
        sess.notes.append(f"{counts['too_large']} reply(ies) were larger than {max_reply_bytes:,} bytes "
                          "(--max-reply-bytes) and were not read to the end")
    if counts["bad_reply"]:
        sess.notes.append(f"{counts['bad_reply']} reply(ies) were not a chat completion (twice each) and "
                          "count as failed, not as answers")
    if abort:
        raise abort[0]


# --------------------------------------------------------------------------- local


def _run_local(ref: "ModelRef", todo: list[Example], st: "Store", run_id: str, sess: _Session, *,
               batch_size: int, max_tokens: int, device: str) -> None:
    from .backends import get_backend

    t = time.perf_counter()
    gen = get_backend(ref.backend).load_generator(ref.model, device=device)
    load_s = time.perf_counter() - t
    sess.device = gen.device or sess.device
    sess.notes.append(f"model loaded in {load_s:.1f} s on {sess.device or device} (counted in wall_s, "
                      "not in throughput)")
    prog = sess.progress

    for i in range(0, len(todo), batch_size):
        chunk = todo[i:i + batch_size]
        t = time.perf_counter()
        outs = gen.generate([ex.messages for ex in chunk], max_new_tokens=max_tokens)
        dt = time.perf_counter() - t
        sess.active_s += dt
        for ex, g in zip(chunk, outs):
            st.save_eval_result(run_id, idx=ex.idx, example_key=ex.key, output=g.text, latency_s=dt / len(chunk),
                                tokens_in=g.prompt_tokens, tokens_out=g.completion_tokens)
            prog.completed += 1
            prog.sent += 1
            sess.new_completed += 1
        sess.tick()


# --------------------------------------------------------------------------- cost


def _catalogue(prices: Any) -> "Catalogue":
    from .prices import Catalogue, load_catalogue

    if isinstance(prices, Catalogue):
        return prices
    return load_catalogue(prices)


def _cost(ref: "ModelRef", *, tin_q: float, tout_q: float, qps: float, completed: int,
          gpu_price_per_hour: float | None, gpu: str | None, prices: Any, concurrency: int,
          batch_size: int, device: str | None, notes: list[str]) -> tuple[float | None, str]:
    if completed == 0:
        return None, "nothing was answered, so nothing was measured"
    if _kind(ref.backend) == HOSTED:
        if gpu_price_per_hour is not None or gpu:
            notes.append("--gpu-price-per-hour / --gpu apply to self-hosted models; ignored for a hosted one")
        name = ref.base_model if ref.fine_tuned and ref.base_model else ref.model
        lookup = f"{ref.backend}:{name}"
        try:
            entry = _catalogue(prices).model(lookup)
        except ConfigError as e:
            return None, (f"{lookup} is not in the price catalogue ({e.message}); add it in a prices file "
                          "($FTC_PRICES) to price it")
        pin, pout = entry.inference_input_per_1m, entry.inference_output_per_1m
        if pin is None or pout is None:
            return None, f"the price catalogue has no inference price for {entry.ref}"
        cost = (tin_q * pin + tout_q * pout) / 1e6 * 1000
        kind = "fine-tuned model " if ref.fine_tuned else ""
        basis = (f"measured tokens per query ({tin_q:.1f} in, {tout_q:.1f} out) x the catalogue's {kind}inference "
                 f"price for {entry.ref} (${pin:g} in / ${pout:g} out per 1M tokens, as of {entry.as_of})")
        if entry.stale:
            notes.append(f"the catalogue price of {entry.ref} is older than the staleness limit (as of {entry.as_of})")
        if not ref.fine_tuned and entry.inference_is_fine_tuned:
            notes.append(f"the catalogue's {entry.provider} inference prices are those of fine-tuned models; the "
                         "base model is billed less, so this cost is an upper bound")
        if ref.fine_tuned and entry.serving == "dedicated" and entry.dedicated_endpoint_per_hour:
            per_1k = entry.dedicated_endpoint_per_hour / 3600.0 / qps * 1000 if qps > 0 else None
            extra = f" (at this run's {qps:.2f} queries/s: ${per_1k:.4g} per 1K queries)" if per_1k else ""
            notes.append(f"{ref.backend} serves this fine-tuned model on a dedicated endpoint billed "
                         f"${entry.dedicated_endpoint_per_hour:g}/h while it is on{extra}; the token price above "
                         "assumes serverless billing")
        return cost, basis
    # self-hosted: local or an OpenAI-compatible server
    if gpu_price_per_hour is not None:
        price, src = float(gpu_price_per_hour), "--gpu-price-per-hour"
    elif gpu:
        g = _catalogue(prices).gpu(gpu)
        price, src = g.usd_per_hour, f"the catalogue's price of {g.ref}, as of {g.as_of}"
    else:
        return None, ("self-hosted: cost = measured throughput x GPU $/h; give --gpu-price-per-hour "
                      "(or --gpu HOST:GPU from the catalogue) to price it")
    if qps <= 0:
        return None, "no throughput was measured in this session, so the GPU-hour cannot be spread over queries"
    cost = price * 1000.0 / (3600.0 * qps)
    basis = (f"measured throughput {qps:.3g} queries/s x ${price:g}/GPU-hour ({src}): one hour serves "
             f"{qps * 3600:,.0f} queries")
    if _kind(ref.backend) == HERE:
        notes.append(f"throughput measured here on {device or 'this machine'} with batch size {batch_size}; "
                     "the cost holds for a GPU that runs at least as fast")
    else:
        notes.append(f"throughput measured from this client at concurrency {concurrency}; a server kept busier "
                     "may serve more queries per hour")
    return cost, basis


# --------------------------------------------------------------------------- the summary


def _summary(ref: "ModelRef", run_id: str, data: Path, sha: str, examples: list[Example],
             results: Mapping[str, "EvalResult"], metric: str, sess: _Session, *, previous: Mapping[str, Any] | None,
             concurrency: int, batch_size: int, gpu_price_per_hour: float | None, gpu: str | None,
             prices: Any) -> dict[str, Any]:
    from .metrics import score

    notes = list(sess.notes)
    done = [(ex, results[ex.key]) for ex in examples if ex.key in results and results[ex.key].ok]
    failed = sum(1 for ex in examples if ex.key in results and not results[ex.key].ok)
    missing = len(examples) - len(done) - failed
    metrics = score(metric, [r.output or "" for _, r in done], [ex.reference for ex, _ in done])
    metrics["score"] = float(metrics.get("score", 0.0))
    from .store import failure_reasons

    failures = failure_reasons(results[ex.key].error for ex in examples if ex.key in results)
    if failed:
        notes.append(f"{failed} example(s) failed and are left out of the metrics; run again to retry them")
    # The sessions (ftc eval invocations) whose answers the figures rest on; answers stored
    # before sessions were counted (None) count as one earlier session.
    by_session: dict[Any, int] = {}
    for _, r in done:
        by_session[r.session] = by_session.get(r.session, 0) + 1
    sessions = len(by_session)
    if sessions > 1:
        latest = max((k for k in by_session if k is not None), default=None)
        notes.append(f"latency_s and tokens span {sessions} sessions of this run (it was resumed): "
                     f"{by_session.get(latest, 0)} answer(s) from the latest, "
                     f"{len(done) - by_session.get(latest, 0)} from earlier ones, possibly under another load "
                     "or server")
    if missing:
        notes.append(f"{missing} example(s) not answered yet; run the same command again to resume")
    lat = sorted(float(r.latency_s) for _, r in done if r.latency_s is not None)
    tin = sum(int(r.tokens_in or 0) for _, r in done)
    tout = sum(int(r.tokens_out or 0) for _, r in done)
    n = len(done)
    no_usage = sum(1 for _, r in done if r.tokens_in is None or r.tokens_out is None)
    if no_usage:
        notes.append(f"{no_usage} answer(s) came without token usage; counted as 0 tokens")
    if _kind(ref.backend) == HERE:
        notes.append(f"latency_s is per example: each batch's generation time / its size (batch size {batch_size}); "
                     "tokens are counted with the model's tokenizer")
    else:
        notes.append("latency_s is per request (the successful attempt, excluding waits for the rate limiter and "
                     "retries); tokens are the API's usage figures")
    cached = sess.progress.cached
    if sess.new_completed and sess.active_s > 0:
        qps = sess.new_completed / sess.active_s
        if cached:
            notes.append(f"resumed: {cached} stored answer(s) reused; throughput measured over the "
                         f"{sess.new_completed} answered in this session")
    else:
        qps = float((previous or {}).get("throughput_qps") or 0.0)
        if cached:
            notes.append(f"all {cached} answer(s) came from the store; throughput is the earlier session's")
    cost, basis = _cost(ref, tin_q=tin / n if n else 0.0, tout_q=tout / n if n else 0.0, qps=qps, completed=n,
                        gpu_price_per_hour=gpu_price_per_hour, gpu=gpu, prices=prices, concurrency=concurrency,
                        batch_size=batch_size, device=sess.device, notes=notes)
    summary = {
        "run_id": run_id,
        "model_ref": ref.canonical,
        "backend": ref.backend,
        "model": ref.model,
        "job_id": ref.job_id,
        "base_model": ref.base_model,
        "fine_tuned": bool(ref.fine_tuned),
        "data": str(data),
        "data_sha256": sha,
        "examples": len(examples),
        "completed": n,
        "failed": failed,
        "metric": metric,
        "metrics": metrics,
        "latency_s": {"p50": _quantile(lat, 0.5), "p95": _quantile(lat, 0.95),
                      "mean": float(sum(lat) / len(lat)) if lat else 0.0},
        "tokens": {"input": tin, "output": tout, "input_per_query": tin / n if n else 0.0,
                   "output_per_query": tout / n if n else 0.0},
        "cost_per_1k_queries_usd": None if cost is None else float(cost),
        "cost_basis": basis,
        "throughput_qps": float(qps),
        "wall_s": float(time.monotonic() - sess.t0),
        "started_at": sess.started_at,
        "finished_at": _now_iso(),
        "notes": notes,
        # measured in this session, else (all answers from the store) the session that measured them
        "machine": sess.machine() if sess.new_completed or not (previous or {}).get("machine")
        else previous["machine"],  # type: ignore[index]
        "failures": failures,
        "sessions": sessions,
    }
    assert tuple(summary) == SUMMARY_KEYS
    return summary


# --------------------------------------------------------------------------- entry point


def evaluate(
    model_ref: "str | ModelRef",
    data_path: "str | Path",
    *,
    metric: str = "exact",
    concurrency: int = DEFAULT_CONCURRENCY,
    max_examples: int | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    temperature: float = 0.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    store: "Store | None" = None,
    fresh: bool = False,
    on_progress: Callable[[EvalProgress], None] | None = None,
    on_retry: Callable[["RetryEvent"], None] | None = None,
    on_start: Callable[[dict], None] | None = None,
    gpu_price_per_hour: float | None = None,
    gpu: str | None = None,
    prices: Any = None,
    policy: "RetryPolicy | None" = None,
    device: str = "auto",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
) -> dict[str, Any]:
    """Evaluate ``model_ref`` on ``data_path``; returns the summary (also stored with the run).

    ``metric``: exact | f1 | json | contains | label (:mod:`ftclient.metrics`).
    ``concurrency``: requests in flight at once (hosted / openai-compatible).
    ``max_examples``: only the first N examples. ``rpm`` / ``tpm``: requests / tokens per
    minute to stay under. ``max_tokens``, ``temperature``: generation (local generation is
    greedy). ``batch_size``: local generation batch. ``fresh``: forget stored answers.
    ``on_progress(EvalProgress)``; ``on_retry(RetryEvent)``; ``on_start(info)`` with the
    run id, the model and how many examples are cached / to send.
    ``gpu_price_per_hour`` or ``gpu`` (a catalogue offer, ``runpod:a100-community``): the
    $/h for a self-hosted model's cost. ``prices``: a prices file or Catalogue.
    ``policy``: the retry policy (default: :class:`ftclient.retry.RetryPolicy`).
    ``timeout_s``: seconds one request may take, sending to the reply's last byte (a
    request that timed out is recorded as failed, not sent again). ``max_reply_bytes``:
    the largest reply body read (hosted and OpenAI-compatible models).

    Ctrl-C stores what was answered, marks the run ``interrupted`` and raises
    :class:`Interrupted` (exit 130); run it again to resume.
    """
    from .metrics import METRICS
    from .metrics import score as _score
    from .modelref import parse_model_ref

    metric = (metric or "").strip().lower()
    if metric not in METRICS:
        _score(metric, [], [])  # raises the UsageError with "did you mean"
    for name, value, low in (("concurrency", concurrency, 1), ("batch size", batch_size, 1),
                             ("max tokens", max_tokens, 1)):
        if not isinstance(value, int) or value < low:
            raise UsageError(f"{name} must be a whole number >= {low} (got {value!r})")
    if max_examples is not None and (not isinstance(max_examples, int) or max_examples < 1):
        raise UsageError(f"max examples must be a whole number >= 1 (got {max_examples!r})")
    for name, value in (("--rpm", rpm), ("--tpm", tpm), ("--gpu-price-per-hour", gpu_price_per_hour)):
        if value is not None and (not isinstance(value, (int, float)) or value <= 0 or not math.isfinite(value)):
            raise UsageError(f"{name} must be a positive number (got {value!r})")
    for name, value in (("--timeout", timeout_s), ("--max-reply-bytes", max_reply_bytes)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise UsageError(f"{name} must be a positive number (got {value!r})")
    if max_reply_bytes < 1024:
        raise UsageError(f"--max-reply-bytes must be at least 1024 (got {max_reply_bytes!r})")
    if not 0.0 <= float(temperature) <= 2.0:
        raise UsageError(f"temperature must be between 0 and 2 (got {temperature!r})")

    with _opened(store) as st:
        ref = parse_model_ref(model_ref, store=st) if not hasattr(model_ref, "canonical") else model_ref
        kind = _kind(ref.backend)
        if kind is None:
            raise UsageError(f"ftc eval cannot ask {ref.backend} models yet",
                             hint=f"Supported: {', '.join(_askable())}.")
        _check_can_ask(ref)
        data = Path(data_path).expanduser()
        data = data.resolve() if data.exists() else data
        examples, sha = load_examples(data, max_examples)
        params = {"max_tokens": int(max_tokens), "temperature": float(temperature), "max_examples": max_examples}
        run_id = eval_run_id(ref.canonical, sha, params)
        st.put_eval_run(run_id, model_ref=ref.canonical, data_path=str(data), data_sha256=sha, params=params)
        run = st.restart_eval_run(run_id, fresh=fresh)
        previous = run.summary
        stored = st.eval_results(run_id)
        todo = [ex for ex in examples if ex.key not in stored or not stored[ex.key].ok]
        cached = len(examples) - len(todo)
        sess = _Session(progress=EvalProgress(run_id=run_id, total=len(examples), completed=cached, cached=cached),
                        on_progress=on_progress)
        if kind == HERE and float(temperature) != 0.0:
            sess.notes.append("local generation is greedy; temperature was ignored")
        if kind == HERE and (rpm or tpm):
            sess.notes.append("--rpm / --tpm apply to remote models; ignored for a local one")
        if on_start is not None:
            on_start({"run_id": run_id, "model_ref": ref.canonical, "examples": len(examples), "cached": cached,
                      "to_send": len(todo)})
        sess.tick()

        def finish(state: str, extra_note: str | None = None) -> dict[str, Any]:
            if extra_note:
                sess.notes.append(extra_note)
            summary = _summary(ref, run_id, data, sha, examples, st.eval_results(run_id), metric, sess,
                               previous=previous, concurrency=concurrency, batch_size=batch_size,
                               gpu_price_per_hour=gpu_price_per_hour, gpu=gpu, prices=prices)
            st.finish_eval_run(run_id, summary, state=state)
            return summary

        try:
            if todo:
                if kind == HERE:
                    _run_local(ref, todo, st, run_id, sess, batch_size=batch_size, max_tokens=max_tokens,
                               device=device)
                else:
                    _run_coro(_run_hosted(ref, todo, st, run_id, sess, concurrency=concurrency, rpm=rpm, tpm=tpm,
                                          max_tokens=max_tokens, temperature=float(temperature), policy=policy,
                                          on_retry=on_retry, timeout_s=float(timeout_s),
                                          max_reply_bytes=int(max_reply_bytes)))
        except KeyboardInterrupt:
            finish("interrupted", "interrupted; run the same command again to resume")
            raise Interrupted(f"interrupted: {sess.progress.done} of {len(examples)} examples stored in {run_id}",
                              hint="Run the same command again to resume where it stopped.") from None
        except FtcError as e:
            finish("interrupted", f"stopped: {e.message}")
            raise
        # Any failed example makes the run partial (exit 1 in the CLI); running it again retries them.
        return finish("partial" if any(not r.ok for r in st.eval_results(run_id).values()) else "complete")
