"""The retry policy, driven through the real openai (httpx2) and together (httpx) SDKs.

A tiny HTTP server on 127.0.0.1 plays scripted responses and counts the requests it
sees, so every test proves what went over the wire: how many attempts, and that the
SDKs did not retry on their own.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler

import pytest

from http_server import LocalHTTPServer
from ftclient.errors import FtcError
from ftclient.retry import (
    AMBIGUOUS,
    RAISE,
    RETRY,
    REJECT,
    AmbiguousResult,
    AuthError,
    RequestRejected,
    RetryExhausted,
    RetryPolicy,
    classify,
    parse_retry_after,
    redact,
    retry_call,
    sdk_client_kwargs,
)

openai = pytest.importorskip("openai")
together = pytest.importorskip("together")

KEY = "sk-test-" + "A1b2C3d4" * 6
HANG = object()


# --------------------------------------------------------------------------- the server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, delayed ACK adds ~40 ms each
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _handle(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        srv: "_Server" = self.server  # type: ignore[assignment]
        srv.record(self.command, self.path, self.headers)
        r = srv.next_response()
        if r is HANG:  # accept, read the request, never answer
            srv.stop.wait(10)
            self.close_connection = True
            return
        status, headers, body = r
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _handle

    def log_message(self, *a):  # quiet
        pass


class _Server(LocalHTTPServer):
    def __init__(self, port: int = 0):
        super().__init__(_Handler, port)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str, dict]] = []
        self.responses: list = [(200, {}, {})]
        self.start()

    def script(self, *responses) -> "_Server":
        """Responses in order; the last one repeats."""
        self.responses = list(responses)
        return self

    def next_response(self):
        with self.lock:
            return self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]

    def record(self, method, path, headers) -> None:
        with self.lock:
            self.requests.append((method, path, {k.lower(): v for k, v in headers.items()}))

    @property
    def count(self) -> int:
        return len(self.requests)

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        super().close(timeout)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
              "OPENAI_BASE_URL", "TOGETHER_BASE_URL"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def server():
    servers: list[_Server] = []

    def start(port: int = 0) -> _Server:
        s = _Server(port)
        servers.append(s)
        return s

    start.first = None  # type: ignore[attr-defined]
    s = start()
    s.start = start  # type: ignore[attr-defined]
    yield s
    for x in servers:
        x.close()


class Sleeper:
    """The policy's sleep hook: records waits and advances a fake clock instead of sleeping."""

    def __init__(self, then=None):
        self.waits: list[float] = []
        self.offset = 0.0
        self.then = then

    def __call__(self, s: float) -> None:
        self.waits.append(s)
        self.offset += s
        if self.then:
            self.then()
            self.then = None

    def clock(self) -> float:
        return time.monotonic() + self.offset


def policy(sleeper: Sleeper, **kw) -> RetryPolicy:
    return RetryPolicy(sleep=sleeper, clock=sleeper.clock, **kw)


# --------------------------------------------------------------------------- the SDKs

SDKS = ["openai", "together"]

LIST_OK = {"openai": {"object": "list", "data": [], "has_more": False}, "together": {"data": []}}
POST_OK = {
    "openai": {"id": "ftjob-1", "object": "fine_tuning.job", "status": "queued", "model": "gpt-4.1-mini-2025-04-14",
               "training_file": "file-abc", "created_at": 1760000000},
    "together": {"id": "ft-123", "status": "cancelled"},
}


_CLIENTS: dict = {}


@pytest.fixture(autouse=True)
def _fresh_clients():
    yield
    for c in _CLIENTS.values():
        c.close()
    _CLIENTS.clear()


def client(sdk: str, port: int, *, read: float = 2.0, connect: float = 1.0, ours: bool = True):
    """One real SDK client per test and settings (reused across retries, as in real use)."""
    key = (sdk, port, read, connect, ours)
    if key not in _CLIENTS:
        kw = sdk_client_kwargs(sdk, connect=connect, read=read, write=2.0, pool=1.0) if ours else {}
        if sdk == "openai":
            _CLIENTS[key] = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, **kw)
        else:
            _CLIENTS[key] = together.Together(base_url=f"http://127.0.0.1:{port}", api_key=KEY, **kw)
    return _CLIENTS[key]


def list_jobs(c, sdk):
    return c.fine_tuning.jobs.list() if sdk == "openai" else c.fine_tuning.list()


def post(c, sdk):
    """A single-request POST: OpenAI job creation; Together job cancel (its create is
    several requests: model limits, price estimate, then the POST)."""
    if sdk == "openai":
        return c.fine_tuning.jobs.create(model="gpt-4.1-mini-2025-04-14", training_file="file-abc")
    return c.fine_tuning.cancel("ft-123")


def err_body(message: str, code: str | None = None, typ: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": typ, "param": None, "code": code}}


def assert_no_sdk_retries(srv: _Server) -> None:
    assert [h.get("x-stainless-retry-count") for _, _, h in srv.requests] == ["0"] * srv.count


# --------------------------------------------------------------------------- SDK retries are off


@pytest.mark.parametrize("sdk", SDKS)
def test_sdk_retries_by_itself_unless_turned_off(server, sdk):
    # The SDK's default client retries a 500 twice on its own (3 requests for one call)...
    server.script((500, {"retry-after-ms": "1"}, err_body("boom", typ="server_error")))
    with pytest.raises(Exception) as ei:
        list_jobs(client(sdk, server.port, ours=False), sdk)
    assert type(ei.value).__name__ == "InternalServerError"
    assert server.count == 3
    assert [h["x-stainless-retry-count"] for _, _, h in server.requests] == ["0", "1", "2"]
    # ...and with sdk_client_kwargs() it sends exactly one.
    server.requests.clear()
    with pytest.raises(Exception):
        list_jobs(client(sdk, server.port), sdk)
    assert server.count == 1


@pytest.mark.parametrize("sdk", SDKS)
def test_sdk_client_kwargs(sdk):
    kw = sdk_client_kwargs(sdk, connect=3, read=7)
    assert kw["max_retries"] == 0
    import httpx
    import httpx2

    # (openai relabels httpx2.Timeout's __module__ as "openai", so check the class itself)
    assert type(kw["timeout"]) is (httpx2.Timeout if sdk == "openai" else httpx.Timeout)
    c = client(sdk, 9)
    assert c.max_retries == 0
    t = sdk_client_kwargs(sdk)["timeout"]
    assert (t.connect, t.read, t.write, t.pool) == (10.0, 60.0, 60.0, 10.0)


# --------------------------------------------------------------------------- 429 and Retry-After


@pytest.mark.parametrize("sdk", SDKS)
def test_429_retry_after_seconds_then_success(server, sdk):
    server.script((429, {"Retry-After": "2"}, err_body("Rate limit reached", "rate_limit_exceeded")),
                  (200, {}, LIST_OK[sdk]))
    sl = Sleeper()
    page = retry_call(lambda: list_jobs(client(sdk, server.port), sdk), op="list jobs", idempotent=True,
                      policy=policy(sl), provider=sdk)
    assert page.data == []
    assert sl.waits == [2.0]
    assert server.count == 2
    assert_no_sdk_retries(server)


def test_retry_after_http_date(server):
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    server.script((429, {"Retry-After": when}, err_body("slow down")), (200, {}, LIST_OK["openai"]))
    sl = Sleeper()
    retry_call(lambda: list_jobs(client("openai", server.port), "openai"), idempotent=True, policy=policy(sl))
    assert len(sl.waits) == 1 and 28.0 <= sl.waits[0] <= 30.5
    assert server.count == 2


@pytest.mark.parametrize("sdk", SDKS)
def test_retry_after_ms_wins_over_retry_after(server, sdk):
    server.script((429, {"retry-after-ms": "1500", "Retry-After": "7"}, err_body("slow down")),
                  (200, {}, LIST_OK[sdk]))
    sl = Sleeper()
    retry_call(lambda: list_jobs(client(sdk, server.port), sdk), idempotent=True, policy=policy(sl))
    assert sl.waits == [1.5]


def test_429_is_safe_to_retry_for_job_creation(server):
    server.script((429, {"Retry-After": "1"}, err_body("Rate limit reached", "rate_limit_exceeded")),
                  (200, {}, POST_OK["openai"]))
    sl = Sleeper()
    job = retry_call(lambda: post(client("openai", server.port), "openai"), op="create job", idempotent=False,
                     policy=policy(sl))
    assert job.id == "ftjob-1" and server.count == 2 and sl.waits == [1.0]


def test_429_quota_spent_is_not_retried(server):
    server.script((429, {}, err_body("You exceeded your current quota", "insufficient_quota", "insufficient_quota")))
    sl = Sleeper()
    with pytest.raises(RequestRejected) as ei:
        retry_call(lambda: list_jobs(client("openai", server.port), "openai"), idempotent=True, policy=policy(sl),
                   provider="openai")
    assert server.count == 1 and sl.waits == []
    assert "quota" in ei.value.message and ei.value.hint and ei.value.exit_code == 1


def test_retry_after_longer_than_deadline_gives_up_at_once(server):
    server.script((429, {"Retry-After": "300"}, err_body("slow down")), (200, {}, LIST_OK["openai"]))
    sl = Sleeper()
    with pytest.raises(RetryExhausted) as ei:
        retry_call(lambda: list_jobs(client("openai", server.port), "openai"), op="list jobs", idempotent=True,
                   policy=policy(sl, deadline=120), provider="openai")
    assert sl.waits == [] and server.count == 1
    msg = ei.value.message
    assert "300 s" in msg and "deadline" in msg and "gave up at once" in msg


def test_retry_after_is_honoured_until_the_deadline(server):
    server.script((503, {"Retry-After": "50"}, err_body("overloaded", typ="server_error")))
    sl = Sleeper()
    with pytest.raises(RetryExhausted) as ei:
        retry_call(lambda: list_jobs(client("openai", server.port), "openai"), idempotent=True,
                   policy=policy(sl, deadline=60))
    assert sl.waits == [50.0] and server.count == 2  # 50 s fits, the next 50 s would not
    assert ei.value.attempts == 2 and ei.value.status_code == 503


# --------------------------------------------------------------------------- 5xx, deadline


@pytest.mark.parametrize("sdk", SDKS)
def test_500_beyond_the_budget(server, sdk):
    server.script((500, {"x-request-id": "req_42"}, err_body("The server had an error", typ="server_error")))
    sl = Sleeper()
    with pytest.raises(RetryExhausted) as ei:
        retry_call(lambda: list_jobs(client(sdk, server.port), sdk), op="list jobs", idempotent=True,
                   policy=policy(sl, max_attempts=4, base=0.5, max_wait=30), provider=sdk)
    e = ei.value
    assert server.count == 4 and e.attempts == 4 and len(sl.waits) == 3
    assert_no_sdk_retries(server)
    # full jitter: wait n is in [0, base * 2**(n-1)]
    for n, w in enumerate(sl.waits, 1):
        assert 0 <= w <= 0.5 * 2 ** (n - 1)
    assert "HTTP 500" in e.message and "4 attempts" in e.message and "list jobs" in e.message
    assert e.status_code == 500 and e.exit_code == 1 and e.hint
    assert type(e.error).__name__ == "InternalServerError" and e.__cause__ is e.error
    assert isinstance(e, FtcError)


def test_backoff_window_is_capped():
    p = RetryPolicy(base=0.5, max_wait=30)
    assert [p.backoff_window(n) for n in (1, 2, 3, 7, 8, 50)] == [0.5, 1.0, 2.0, 30.0, 30.0, 30.0]


def test_deadline_is_honoured(server):
    server.script((500, {}, err_body("boom", typ="server_error")))
    sl = Sleeper()
    with pytest.raises(RetryExhausted) as ei:
        retry_call(lambda: list_jobs(client("openai", server.port), "openai"), idempotent=True,
                   policy=policy(sl, deadline=10, max_attempts=200, base=1, max_wait=4))
    assert "deadline" in ei.value.message
    assert sum(sl.waits) <= 10.0 + 1e-9
    assert server.count == len(sl.waits) + 1 < 200


@pytest.mark.parametrize("sdk", SDKS)
def test_5xx_on_job_creation_is_ambiguous(server, sdk):
    server.script((502, {}, err_body("bad gateway", typ="server_error")), (200, {}, POST_OK[sdk]))
    sl = Sleeper()
    with pytest.raises(AmbiguousResult) as ei:
        retry_call(lambda: post(client(sdk, server.port), sdk), op="create job", idempotent=False, policy=policy(sl))
    assert server.count == 1 and sl.waits == []
    assert ei.value.status_code == 502 and ei.value.error is not None


def test_x_should_retry_false_is_obeyed(server):
    server.script((503, {"x-should-retry": "false"}, err_body("down for maintenance", typ="server_error")))
    with pytest.raises(RequestRejected):
        retry_call(lambda: list_jobs(client("openai", server.port), "openai"), idempotent=True,
                   policy=policy(Sleeper()))
    assert server.count == 1


# --------------------------------------------------------------------------- 4xx


@pytest.mark.parametrize("sdk", SDKS)
@pytest.mark.parametrize("status", [400, 404, 422])
def test_other_4xx_not_retried(server, sdk, status):
    server.script((status, {"x-request-id": "req_7"}, err_body("no such job: ftjob-9", "not_found")))
    sl = Sleeper()
    with pytest.raises(RequestRejected) as ei:
        retry_call(lambda: list_jobs(client(sdk, server.port), sdk), op="retrieve job", idempotent=True,
                   policy=policy(sl), provider=sdk)
    assert server.count == 1 and sl.waits == []
    e = ei.value
    assert e.status_code == status and f"HTTP {status}" in e.message and "no such job" in e.message
    assert "req_7" in e.message and e.request_id == "req_7"
    assert e.error is not None and getattr(e.error, "status_code", None) == status


@pytest.mark.parametrize("sdk", SDKS)
@pytest.mark.parametrize("status", [401, 403])
def test_401_403_end_with_auth_error_naming_the_env_var(server, sdk, status):
    server.script((status, {}, err_body(f"Incorrect API key provided: {KEY}. Authorization: Bearer {KEY}",
                                        "invalid_api_key")))
    sl = Sleeper()
    env = "OPENAI_API_KEY" if sdk == "openai" else "TOGETHER_API_KEY"
    with pytest.raises(AuthError) as ei:
        retry_call(lambda: list_jobs(client(sdk, server.port), sdk), op="list jobs", idempotent=True,
                   policy=policy(sl), provider=sdk, key_env=env)
    e = ei.value
    assert server.count == 1 and sl.waits == []
    assert e.exit_code == 2 and env in e.message and e.key_env == env
    text = " ".join([e.message, e.hint or "", str(e), repr(e), repr(e.args)])
    assert KEY not in text and KEY[:12] not in text and "Bearer" not in text and "Authorization" not in text
    assert e.error is None and e.__cause__ is None and e.__suppress_context__


def test_auth_error_env_var_defaults_from_provider(server):
    server.script((401, {}, err_body("bad key", "invalid_api_key")))
    with pytest.raises(AuthError) as ei:
        retry_call(lambda: list_jobs(client("together", server.port), "together"), idempotent=True,
                   policy=policy(Sleeper()))
    assert "TOGETHER_API_KEY" in ei.value.message


@pytest.mark.parametrize(
    "body,headers,setting,retried",
    [
        (err_body("Another operation is in progress on this job; try again", "job_in_progress"), {}, None, True),
        (err_body("Job ftjob-1 is already cancelled", "conflict"), {}, None, False),
        (err_body("conflict"), {"x-should-retry": "true"}, None, True),
        (err_body("Another operation is in progress", "job_in_progress"), {}, False, False),
        (err_body("Job ftjob-1 is already cancelled", "conflict"), {}, True, True),
    ],
)
def test_409_retried_only_when_it_means_try_again(server, body, headers, setting, retried):
    server.script((409, headers, body), (200, {}, LIST_OK["openai"]))
    sl = Sleeper()
    call = lambda: retry_call(lambda: list_jobs(client("openai", server.port), "openai"), idempotent=True,  # noqa: E731
                              policy=policy(sl, retry_409=setting))
    if retried:
        call()
        assert server.count == 2
    else:
        with pytest.raises(RequestRejected):
            call()
        assert server.count == 1


# --------------------------------------------------------------------------- timeouts, connections


@pytest.mark.parametrize("sdk", SDKS)
def test_hung_connection_is_retried_for_a_get(server, sdk):
    server.script(HANG, (200, {}, LIST_OK[sdk]))
    sl = Sleeper()
    events = []
    page = retry_call(lambda: list_jobs(client(sdk, server.port, read=0.3), sdk), idempotent=True,
                      policy=policy(sl), on_retry=events.append)
    assert page.data == [] and server.count == 2
    assert [e.reason for e in events] == ["read timeout"]


@pytest.mark.parametrize("sdk", SDKS)
def test_hung_connection_on_job_creation_is_ambiguous(server, sdk):
    server.script(HANG, (200, {}, POST_OK[sdk]))
    sl = Sleeper()
    with pytest.raises(AmbiguousResult) as ei:
        retry_call(lambda: post(client(sdk, server.port, read=0.3), sdk), op="create job", idempotent=False,
                   policy=policy(sl), provider=sdk)
    time.sleep(0.1)
    assert server.count == 1 and server.requests[0][0] == "POST" and sl.waits == []
    e = ei.value
    assert type(e.error).__name__ == "APITimeoutError" and e.reason == "read timeout"
    assert "may or may not" in e.message and "client token" in (e.hint or "")
    assert e.exit_code == 1


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("sdk", SDKS)
def test_connection_refused_is_retried_even_for_job_creation(server, sdk):
    port = _free_port()
    started = []

    def start_server():  # the server comes up during the first wait
        started.append(server.start(port).script((200, {}, POST_OK[sdk])))

    sl = Sleeper(then=start_server)
    events = []
    job = retry_call(lambda: post(client(sdk, port), sdk), op="create job", idempotent=False, policy=policy(sl),
                     on_retry=events.append)
    assert job.id == POST_OK[sdk]["id"]
    assert started[0].count == 1 and len(sl.waits) == 1
    assert events[0].reason in ("connection refused", "connection failed") and events[0].status_code is None


@pytest.mark.parametrize("sdk", SDKS)
def test_connection_refused_beyond_the_budget(sdk):
    port = _free_port()
    sl = Sleeper()
    with pytest.raises(RetryExhausted) as ei:
        retry_call(lambda: list_jobs(client(sdk, port), sdk), op="list jobs", idempotent=False,
                   policy=policy(sl, max_attempts=3), provider=sdk)
    assert len(sl.waits) == 2 and ei.value.attempts == 3 and ei.value.status_code is None
    assert "BASE_URL" in (ei.value.hint or "")


# --------------------------------------------------------------------------- logging, callback


def test_each_retry_is_logged_and_reported(server, caplog):
    server.script((429, {"Retry-After": "1"}, err_body("slow")), (503, {}, err_body("down", typ="server_error")),
                  (200, {}, LIST_OK["openai"]))
    sl = Sleeper()
    events = []
    with caplog.at_level(logging.INFO, logger="ftclient.retry"):
        retry_call(lambda: list_jobs(client("openai", server.port), "openai"), op="list jobs", idempotent=True,
                   policy=policy(sl, max_attempts=5), provider="openai", on_retry=events.append)
    assert [(e.attempt, e.status_code, e.server_wait) for e in events] == [(1, 429, True), (2, 503, False)]
    assert events[0].wait == 1.0 and events[1].wait == sl.waits[1]
    lines = [r.getMessage() for r in caplog.records if r.name == "ftclient.retry"]
    assert len(lines) == 2
    assert "attempt 1/5" in lines[0] and "HTTP 429" in lines[0] and "retrying in 1.0 s" in lines[0]
    assert all(KEY not in line for line in lines)


# --------------------------------------------------------------------------- classification without SDKs


def test_classify_plain_httpx_and_httpx2_errors():
    import httpx
    import httpx2

    for mod in (httpx, httpx2):
        req = mod.Request("POST", "http://127.0.0.1/v1/fine_tuning/jobs")
        assert classify(mod.ConnectError("refused", request=req), idempotent=False).action == RETRY
        assert classify(mod.ConnectTimeout("slow", request=req), idempotent=False).action == RETRY
        assert classify(mod.PoolTimeout("busy", request=req), idempotent=False).action == RETRY
        d = classify(mod.ReadTimeout("hung", request=req), idempotent=False)
        assert (d.action, d.reason, d.maybe_sent) == (AMBIGUOUS, "read timeout", True)
        assert classify(mod.ReadTimeout("hung", request=req), idempotent=True).action == RETRY
        assert classify(mod.RemoteProtocolError("closed", request=req), idempotent=False).action == AMBIGUOUS
        assert classify(mod.UnsupportedProtocol("ftp://", request=req), idempotent=True).action == RAISE
        for status, idem, action in [(503, True, RETRY), (503, False, AMBIGUOUS), (404, True, REJECT),
                                     (429, False, RETRY), (408, False, RETRY)]:
            resp = mod.Response(status, request=req, headers={"Retry-After": "3"})
            d = classify(mod.HTTPStatusError("x", request=req, response=resp), idempotent=idem)
            assert (d.action, d.status_code) == (action, status)
            if action == RETRY:
                assert d.retry_after == 3.0
    assert classify(ConnectionRefusedError(), idempotent=False).action == RETRY
    assert classify(ConnectionResetError(), idempotent=False).action == AMBIGUOUS
    assert classify(ValueError("bug"), idempotent=True).action == RAISE


def test_non_provider_errors_pass_through_unchanged():
    calls = []

    def boom():
        calls.append(1)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        retry_call(boom, idempotent=True, policy=policy(Sleeper()))
    assert calls == [1]


def test_a_nested_ftc_error_is_not_reclassified():
    def inner():
        raise RequestRejected("nope", status_code=503)

    with pytest.raises(RequestRejected):
        retry_call(inner, idempotent=True, policy=policy(Sleeper()))


def test_parse_retry_after():
    now = lambda: 1_000_000.0  # noqa: E731
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "junk", "retry-after": "9"}) == 9.0
    date = email.utils.formatdate(1_000_042.0, usegmt=True)
    assert parse_retry_after({"Retry-After": date}, now=now) == 42.0
    past = email.utils.formatdate(999_000.0, usegmt=True)
    assert parse_retry_after({"Retry-After": past}, now=now) == 0.0
    for bad in ({}, None, {"Retry-After": "soon"}, {"Retry-After": "-3"}, {"Retry-After": "nan"}):
        assert parse_retry_after(bad) is None


def test_redact():
    from ftclient import secrets

    assert redact is secrets.redact  # one redaction, one set of patterns (tested in test_secrets*)
    s = redact(f"key {KEY} Authorization: Bearer abc.def token=0123456789abcdef0123456789abcdef0123 api_key=xyz12")
    assert KEY not in s and "abc.def" not in s and "0123456789abcdef0123456789abcdef0123" not in s
    assert "xyz12" not in s


def test_policy_validation():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    assert RetryPolicy().with_(max_attempts=2).max_attempts == 2
    p = RetryPolicy()
    assert (p.max_attempts, p.deadline, p.base, p.max_wait, p.retry_409) == (6, 120.0, 0.5, 30.0, None)


def test_import_is_light():
    code = ("import sys, ftclient.retry, ftclient.backends; "
            "bad = [m for m in ('openai', 'together', 'httpx', 'httpx2', 'tenacity') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert p.returncode == 0, p.stdout + p.stderr
