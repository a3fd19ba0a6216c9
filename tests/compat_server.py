"""A small OpenAI-compatible chat-completions server on 127.0.0.1, for eval tests and benchmarks.

    from compat_server import CompatServer, status, drop

    with CompatServer(answer={"I lost my card": "lost_card"}, rpm=600, window_s=1.0, latency=0.05) as srv:
        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key=srv.api_key, max_retries=0)
        srv.fail(status(500), drop())          # the next two chat requests fail, then normal answers
        ...
        srv.requests, srv.rate_limited, srv.max_in_flight
        srv.check_responses()                  # every JSON body sent validates against the OpenAI spec

It is a real HTTP/1.1 server (``ThreadingHTTPServer``, one thread per connection), so the
official SDKs run unmodified. It answers ``POST /v1/chat/completions`` (and
``/chat/completions``, for a base URL without ``/v1``) with a ``chat.completion`` whose text
comes from ``answer``: a function ``(messages, model) -> str``, a dict from the last user
message to the reply, or None (echo the last user message). ``usage`` counts tokens as
``ceil(chars / 4)`` per message plus 3 per message and 3 for the reply priming.

Rate limits, like a provider's: at most ``rpm`` requests and ``tpm`` tokens per minute,
enforced over a sliding window of ``window_s`` seconds (the limits are scaled to it:
``window_s=1`` with ``rpm=600`` admits 10 requests in any second, the way providers
quantise per-minute limits). A request is charged at admission: its prompt tokens plus its
``max_tokens`` (or, without one, the reply's tokens), as OpenAI counts it. Over a limit ->
429 with ``retry-after-ms`` / ``Retry-After`` (until the window has room) and
``x-ratelimit-*`` headers, and the request is not admitted.

Faults: :meth:`CompatServer.fail` queues scripted answers for the next requests
(:func:`status` -- an HTTP error with the OpenAI error body --, :func:`drop` -- close the
connection without answering --, and hostile replies: :func:`raw` exact bytes (an HTML page,
invalid UTF-8), :func:`endless` a chunked body that never ends, :func:`huge` a chat
completion of N bytes, :func:`patched` a completion with fields replaced (``choices=[]``),
:func:`slow` a normal answer after a delay); ``when=`` applies a fault only to requests whose last user
message satisfies a predicate. ``latency`` (+ up to ``jitter``) seconds pass before each
admitted request is answered.

Counters: ``requests`` (chat requests received), ``ok``, ``rate_limited`` (429s from the
limiter), ``faults``, ``max_in_flight``; ``admitted`` holds (monotonic time, tokens charged)
per admitted request, ``answered`` (monotonic time, status) per answer sent, ``prompts``
the last user message of every request received and ``bodies`` every request body.
"""

from __future__ import annotations

import collections
import json
import math
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable

from http_server import LocalHTTPServer

__all__ = ["CompatServer", "Fault", "status", "drop", "raw", "endless", "huge", "patched", "slow", "count_tokens",
           "prompt_tokens"]


# --------------------------------------------------------------------------- faults


@dataclass
class Fault:
    kind: str  # "status" | "drop" | "raw" | "endless" | "huge" | "patch" | "slow"
    code: int = 0
    headers: dict = field(default_factory=dict)
    message: str = ""
    body: bytes = b""
    size: int = 0
    patch: dict = field(default_factory=dict)
    seconds: float = 0.0
    when: Callable[[str], bool] | None = None
    times: int = 1


def status(code: int, headers: dict | None = None, message: str | None = None) -> Fault:
    """Answer the request with this HTTP status and an OpenAI error body."""
    return Fault("status", code, dict(headers or {}), message or _REASONS.get(code, "error"))


def drop() -> Fault:
    """Read the request, then close the connection without answering."""
    return Fault("drop")


def raw(body: "bytes | str", code: int = 200, content_type: str = "application/json") -> Fault:
    """Answer with exactly these bytes (an HTML page, invalid UTF-8, broken JSON...)."""
    data = body.encode() if isinstance(body, str) else bytes(body)
    return Fault("raw", code, {"Content-Type": content_type}, body=data)


def endless(code: int = 200) -> Fault:
    """Answer with a chunked body that never ends (until the client hangs up)."""
    return Fault("endless", code)


def huge(nbytes: int, *, chunked: bool = True) -> Fault:
    """Answer with a well-formed chat completion of about ``nbytes`` bytes (the answer is
    that long), sent chunked (no Content-Length) or with its length."""
    return Fault("huge", 200, {"chunked": "1" if chunked else ""}, size=int(nbytes))


def patched(**fields: Any) -> Fault:
    """Answer normally, with these top-level fields of the completion replaced
    (``patched(choices=[])``, ``patched(usage={"completion_tokens": 1e308})``)."""
    return Fault("patch", 200, patch=dict(fields))


def slow(seconds: float) -> Fault:
    """Answer normally after ``seconds``."""
    return Fault("slow", 200, seconds=float(seconds))


_REASONS = {400: "Invalid request.", 401: "Incorrect API key provided.", 404: "The model does not exist.",
            429: "Rate limit reached.", 500: "The server had an error while processing your request.",
            502: "Bad gateway.", 503: "The engine is currently overloaded, please try again later."}
_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
          429: "requests"}


# --------------------------------------------------------------------------- tokens


def count_tokens(text: str) -> int:
    """The server's token count of one text: ``ceil(chars / 4)``."""
    return math.ceil(len(text or "") / 4)


def _content(c: Any) -> str:
    if isinstance(c, str):
        return c
    if isinstance(c, list):
        return "".join(p.get("text", "") for p in c if isinstance(p, dict))
    return ""


def prompt_tokens(messages: list) -> int:
    return sum(count_tokens(_content(m.get("content"))) + 3 for m in messages if isinstance(m, dict)) + 3


def _last_user(messages: list) -> str:
    for m in reversed(messages or []):
        if isinstance(m, dict) and m.get("role") == "user":
            return _content(m.get("content"))
    return ""


# --------------------------------------------------------------------------- the server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *a: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.server.owner._serve(self)  # type: ignore[attr-defined]

    def do_GET(self) -> None:  # noqa: N802
        self.server.owner._serve(self)  # type: ignore[attr-defined]


class CompatServer:
    """See the module docstring. Use as a context manager, or call :meth:`close`."""

    def __init__(self, answer: Callable[[list, str], str] | dict | None = None, *, rpm: float | None = None,
                 tpm: float | None = None, window_s: float = 60.0, latency: float = 0.0, jitter: float = 0.0,
                 api_key: str | None = None, seed: int = 0):
        self.answer = answer
        self.rpm, self.tpm, self.window_s = rpm, tpm, float(window_s)
        self.latency, self.jitter = float(latency), float(jitter)
        self.api_key = api_key or ("sk-" + "compat-" + uuid.uuid4().hex)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._window: collections.deque[tuple[float, int]] = collections.deque()
        self.reset_counters()
        self._httpd = LocalHTTPServer(_Handler)
        self._httpd.owner = self  # type: ignore[attr-defined]
        self.port = self._httpd.port
        self._httpd.start()

    # ---------------------------------------------------------------- control

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        """The base URL without ``/v1`` (what the together SDK wants)."""
        return f"http://127.0.0.1:{self.port}"

    def reset_counters(self) -> None:
        with getattr(self, "_lock", threading.Lock()):
            self.requests = 0
            self.ok = 0
            self.rate_limited = 0
            self.faults = 0
            self.in_flight = 0
            self.max_in_flight = 0
            self.admitted: list[tuple[float, int]] = []
            self.prompts: list[str] = []
            self.bodies: list[dict] = []
            self.sent: list[tuple[int, Any]] = []  # (status, JSON body) of every answer
            self.answered: list[tuple[float, int]] = []  # (monotonic time, status) of every answer
            self.errors: list[str] = []
            self.hostile_bytes = 0  # body bytes sent by endless / huge replies
            self.hung_up = 0  # endless / huge replies the client stopped reading

    def fail(self, *faults: Fault, when: Callable[[str], bool] | None = None, times: int = 1) -> "CompatServer":
        """Queue faults for the next requests (each ``times`` times; with ``when``, only for
        requests whose last user message satisfies it)."""
        with self._lock:
            for f in faults:
                f.when, f.times = when, times
                self._faults.append(f)
        return self

    def close(self) -> None:
        self._httpd.close()

    def __enter__(self) -> "CompatServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def max_in_window(self, window_s: float | None = None, *, tokens: bool = False) -> float:
        """The most requests (or tokens) admitted in any sliding window of ``window_s``
        seconds (default: the server's own window)."""
        w = self.window_s if window_s is None else window_s
        with self._lock:
            adm = list(self.admitted)
        best, j, acc = 0.0, 0, 0.0
        for i, (t, n) in enumerate(adm):
            acc += n if tokens else 1
            while adm[j][0] <= t - w:
                acc -= adm[j][1] if tokens else 1
                j += 1
            best = max(best, acc)
        return best

    def check_responses(self) -> int:
        """Validate every JSON body sent against the official OpenAI document; returns how many."""
        import openapi_check as oc

        if self.errors:
            raise AssertionError("the compat server itself failed:\n" + "\n".join(self.errors))
        with self._lock:
            sent = list(self.sent)
        for code, body in sent:
            try:
                if code == 200:
                    oc.validate_response("openai", "POST", "/chat/completions", 200, body)
                else:
                    oc.validate_error("openai", body)
            except AssertionError as e:
                raise AssertionError(f"compat server response {code}:\n{e}") from None
        return len(sent)

    # ---------------------------------------------------------------- serving

    def _take_fault(self, prompt: str) -> Fault | None:
        for i, f in enumerate(self._faults):
            if f.when is None or f.when(prompt):
                f.times -= 1
                if f.times <= 0:
                    self._faults.pop(i)
                return f
        return None

    def _reply(self, h: _Handler, code: int, body: Any, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("x-request-id", "req_" + uuid.uuid4().hex[:16])
        for k, v in (headers or {}).items():
            h.send_header(k, str(v))
        h.end_headers()
        h.wfile.write(data)
        with self._lock:
            self.sent.append((code, body))
            self.answered.append((time.monotonic(), code))

    def _error(self, h: _Handler, code: int, message: str, headers: dict | None = None,
               err_code: str | None = None) -> None:
        body = {"error": {"message": message, "type": _TYPES.get(code, "server_error"), "param": None,
                          "code": err_code}}
        self._reply(h, code, body, headers)

    def _admit(self, charge: int) -> tuple[bool, float, dict]:
        """Under the lock: admit a request costing ``charge`` tokens, or say how long to wait."""
        now = time.monotonic()
        w = self._window
        while w and w[0][0] <= now - self.window_s:
            w.popleft()
        scale = self.window_s / 60.0
        req_cap = None if self.rpm is None else max(1, int(self.rpm * scale))
        tok_cap = None if self.tpm is None else max(1, int(self.tpm * scale))
        used_tokens = sum(n for _, n in w)
        headers = {}
        if req_cap is not None:
            headers["x-ratelimit-limit-requests"] = int(self.rpm)
            headers["x-ratelimit-remaining-requests"] = max(0, req_cap - len(w) - 1)
        if tok_cap is not None:
            headers["x-ratelimit-limit-tokens"] = int(self.tpm)
            headers["x-ratelimit-remaining-tokens"] = max(0, tok_cap - used_tokens - charge)
        wait = 0.0
        if req_cap is not None and len(w) >= req_cap:
            wait = max(wait, w[len(w) - req_cap][0] + self.window_s - now)
        if tok_cap is not None and used_tokens + charge > tok_cap:
            need, acc = used_tokens + charge - tok_cap, 0
            for t, n in w:
                acc += n
                if acc >= need:
                    wait = max(wait, t + self.window_s - now)
                    break
        if wait > 0:
            return False, wait, headers
        w.append((now, charge))
        self.admitted.append((now, charge))
        return True, 0.0, headers

    def _serve(self, h: _Handler) -> None:
        try:
            self._serve_inner(h)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # noqa: BLE001 - recorded, the test fails on check_responses
            with self._lock:
                self.errors.append(f"{type(e).__name__}: {e}")
            try:
                self._error(h, 500, "compat server bug")
            except OSError:
                pass

    def _serve_inner(self, h: _Handler) -> None:
        n = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(n) if n else b""
        path = h.path.split("?")[0].rstrip("/")
        if h.command != "POST" or path not in ("/v1/chat/completions", "/chat/completions"):
            self._error(h, 404, f"Invalid URL ({h.command} {h.path})", err_code="unknown_url")
            return
        auth = h.headers.get("Authorization") or ""
        if auth != f"Bearer {self.api_key}":
            self._error(h, 401, "Incorrect API key provided.", err_code="invalid_api_key")
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._error(h, 400, "We could not parse the JSON body of your request.")
            return
        messages, model = body.get("messages"), body.get("model")
        if not model or not isinstance(messages, list) or not messages:
            self._error(h, 400, "you must provide a model parameter" if not model
                        else "Missing required parameter: 'messages'.")
            return
        prompt = _last_user(messages)
        with self._lock:
            self.requests += 1
            self.prompts.append(prompt)
            self.bodies.append(body)
            fault = self._take_fault(prompt)
            if fault is not None:
                self.faults += 1
        if fault is not None:
            if fault.kind == "drop":
                h.close_connection = True
                try:
                    h.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if fault.kind == "status":
                self._error(h, fault.code, fault.message, fault.headers,
                            err_code="rate_limit_exceeded" if fault.code == 429 else None)
                return
            if fault.kind in ("raw", "endless", "huge"):
                self._hostile(h, fault, model, messages)
                return
            if fault.kind == "slow":
                time.sleep(fault.seconds)
        patch = fault.patch if fault is not None and fault.kind == "patch" else {}

        text = self._answer(messages, model)
        pt, ct = prompt_tokens(messages), count_tokens(text)
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(max_tokens, int) and max_tokens > 0 and ct > max_tokens:
            text = text[: max_tokens * 4]
            ct = count_tokens(text)
        charge = pt + (max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else ct)
        with self._lock:
            admitted, wait, rl_headers = self._admit(charge)
            if not admitted:
                self.rate_limited += 1
            else:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if not admitted:
            ms = max(1, math.ceil(wait * 1000))
            hdr = {**rl_headers, "retry-after-ms": ms, "Retry-After": max(1, math.ceil(wait))}
            self._error(h, 429, f"Rate limit reached for {model}: please try again in {ms}ms.", hdr,
                        err_code="rate_limit_exceeded")
            return
        try:
            delay = self.latency + (self._rng.random() * self.jitter if self.jitter else 0.0)
            if delay > 0:
                time.sleep(delay)
            out = {
                "id": "chatcmpl-" + uuid.uuid4().hex[:24],
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": text, "refusal": None,
                                         "annotations": []}}],
                "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
                "service_tier": "default",
                "system_fingerprint": "fp_compat",
            }
            if patch:
                out.update(patch)
                self._send_bytes(h, 200, json.dumps(out).encode(), {"Content-Type": "application/json"})
                return
            self._reply(h, 200, out, rl_headers)
            with self._lock:
                self.ok += 1
        finally:
            with self._lock:
                self.in_flight -= 1

    def _send_bytes(self, h: _Handler, code: int, data: bytes, headers: dict) -> None:
        h.send_response(code)
        for k, v in headers.items():
            h.send_header(k, str(v))
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        with self._lock:
            self.answered.append((time.monotonic(), code))

    def _hostile(self, h: _Handler, fault: Fault, model: str, messages: list) -> None:
        """The misbehaving replies: exact bytes, an endless or a huge body."""
        if fault.kind == "raw":
            self._send_bytes(h, fault.code, fault.body, fault.headers)
            return
        h.close_connection = True
        h.send_response(fault.code)
        h.send_header("Content-Type", "application/json")
        chunked = fault.kind == "endless" or bool(fault.headers.get("chunked"))
        if fault.kind == "huge":
            head = json.dumps({"id": "chatcmpl-huge", "object": "chat.completion", "created": int(time.time()),
                               "model": model, "choices": [{"index": 0, "finish_reason": "length",
                                                            "message": {"role": "assistant", "content": ""}}]})
            pre, post = head.split('"content": ""')
            pre = (pre + '"content": "').encode()
            post = ('"' + post).encode()
            fill = max(0, fault.size - len(pre) - len(post))
        else:
            pre, post, fill = b'{"choices": [{"message": {"content": "', b"", -1
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(len(pre) + fill + len(post)))
        h.end_headers()

        def put(data: bytes) -> None:
            if chunked:
                h.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
            else:
                h.wfile.write(data)

        block = b"a" * 65536
        try:
            put(pre)
            sent = 0
            while fill < 0 or sent < fill:
                n = len(block) if fill < 0 else min(len(block), fill - sent)
                put(block[:n])
                sent += n
                with self._lock:
                    self.hostile_bytes += n
            if post:
                put(post)
            if chunked:
                h.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client hung up: what a capped client does
            with self._lock:
                self.hung_up += 1

    def _answer(self, messages: list, model: str) -> str:
        a = self.answer
        if a is None:
            return _last_user(messages)
        if isinstance(a, dict):
            return str(a.get(_last_user(messages), ""))
        return str(a(messages, model))
