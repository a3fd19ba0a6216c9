"""A local emulator of the hosted fine-tuning APIs (OpenAI, Together, Fireworks), for tests only.

    from emulator import ProviderEmulator, status, drop_after_processing, hang

    with ProviderEmulator("openai") as emu:
        client = openai.OpenAI(base_url=emu.base_url, api_key=emu.api_key, max_retries=0)
        emu.fail(r"/fine_tuning/jobs$", "POST", [status(429, headers={"Retry-After": "1"})])
        ...
        emu.check_responses()      # every JSON body sent validates against the official spec

It is a real HTTP/1.1 server (``ThreadingHTTPServer`` on 127.0.0.1, ephemeral port, in a
background thread), so the official SDKs run unmodified, with their own transports
(``httpx2`` for openai 3.x, ``httpx`` for together 3.x). Bodies are built to the shapes of
the official OpenAPI documents (tests/specs/); ``check_responses`` proves it.

Jobs advance one phase per ``retrieve`` (``advance="poll"``, the default) or by wall clock
(``advance="time"``, ``seconds_per_phase``), or explicitly with ``emu.advance(job_id)`` /
``emu.finish(job_id)``.

OpenAI:   validating_files -> queued -> running (N metric steps) -> succeeded | failed | cancelled
Together: pending -> queued -> running (N steps) -> compressing -> uploading -> completed
          | error (or user_error) | cancel_requested -> cancelled
Fireworks: its routes, states and strict SDK-type checks live in tests/emulator_fireworks.py
          (``ProviderEmulator("fireworks")``; the class mixes ``FireworksMixin`` in).

Account-level fault modes: ``emu.refuse_fine_tuning()`` (OpenAI) answers every create
the way OpenAI refuses organisations that may no longer start fine-tuning jobs (no
inference on a fine-tuned model in the past 60 days), in OpenAI's error shape.

An organisation's past (OpenAI): ``emu.add_fine_tune(model, status=..., created="2026-09-01",
training=b"...", validation=None, downloadable=False, n_epochs=..., suffix=...)`` stores a job
in its final (or given) state with its files, events and checkpoints; a final one never moves.
``GET /files/{id}/content`` hands out only ``downloadable`` seeded files (others, and every
"fine-tune" upload, get OpenAI's 400 "Not allowed to download files of purpose: fine-tune.").
``GET /models`` lists a few base models and every succeeded job's model;
``emu.shut_down(model, after=N)``: N more chat answers, then the model is gone (404
model_not_found for chat and ``GET /models/{model}``, and no longer listed).

See docs/testing-providers.md.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import itertools
import json
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP as _HTTP_POLICY
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from emulator_fireworks import FW_TERMINAL, FireworksMixin
from http_server import LocalHTTPServer

__all__ = [
    "ProviderEmulator",
    "Fault",
    "status",
    "drop_after_processing",
    "drop_before_processing",
    "hang",
    "RecordedRequest",
    "RecordedResponse",
]

# --------------------------------------------------------------------------- faults


@dataclass
class Fault:
    """One scripted answer. Build with status(), drop_after_processing(), hang()..."""

    kind: str  # "status" | "drop_after" | "drop_before" | "hang"
    code: int = 0
    headers: dict = field(default_factory=dict)
    body: Any = None  # None: the provider's error body for ``code``
    delay: float = 0.0

    def __repr__(self) -> str:
        return f"Fault({self.kind}{' ' + str(self.code) if self.code else ''})"


def status(code: int, headers: dict | None = None, body: Any = None, *, delay: float = 0.0) -> Fault:
    """Answer with this status (and the provider's error body unless ``body`` is given),
    without performing the request's action."""
    return Fault("status", code, dict(headers or {}), body, delay)


def drop_after_processing() -> Fault:
    """Perform the action (e.g. create the job), then close the connection without answering."""
    return Fault("drop_after")


def drop_before_processing() -> Fault:
    """Close the connection without answering and without performing the action."""
    return Fault("drop_before")


def hang() -> Fault:
    """Accept the request and never answer (until the emulator stops)."""
    return Fault("hang")


@dataclass
class _FaultRule:
    pattern: re.Pattern
    method: str
    queue: list


# --------------------------------------------------------------------------- records


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict
    headers: dict  # Authorization redacted
    body: Any  # parsed JSON, multipart fields, {"bytes": n} for raw uploads, or None
    fault: str | None = None


@dataclass
class RecordedResponse:
    method: str
    path: str
    status: int
    headers: dict
    body: Any  # parsed JSON or None
    spec_op: tuple | None  # (METHOD, path template in the spec) the body must match
    request: RecordedRequest | None = None


_STATUS_TEXT = {
    400: ("invalid_request_error", "Bad request."),
    401: ("invalid_request_error", "Incorrect API key provided."),
    403: ("permission_error", "You are not allowed to perform this request."),
    404: ("invalid_request_error", "Not found."),
    409: ("invalid_request_error", "Conflict."),
    429: ("rate_limit_error", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", "Bad gateway."),
    503: ("server_error", "The engine is currently overloaded, please try again later."),
}


class _ApiError(Exception):
    def __init__(self, code: int, message: str, *, type_: str | None = None, param: str | None = None,
                 err_code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.err_code = code, message, param, err_code
        self.type = type_ or _STATUS_TEXT.get(code, ("api_error", ""))[0]
        self.headers = headers or {}


_NO_BODY = object()


class _Binary(bytes):
    """A response body sent as application/octet-stream (not JSON, no schema check)."""


def _now() -> int:
    return int(time.time())


def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _short(n: int = 24) -> str:
    return uuid.uuid4().hex[:n]


def _epoch(when: Any) -> int:
    """Epoch seconds of an ISO date/datetime string, a date/datetime (naive = UTC) or a number."""
    if isinstance(when, bool):
        raise TypeError(f"not a time: {when!r}")
    if isinstance(when, (int, float)):
        return int(when)
    if isinstance(when, str):
        text = when.strip()
        when = _dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if isinstance(when, _dt.date) and not isinstance(when, _dt.datetime):
        when = _dt.datetime(when.year, when.month, when.day)
    if isinstance(when, _dt.datetime):
        return int((when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)).timestamp())
    raise TypeError(f"not a time: {when!r}")


#: What OpenAI's GET /models lists besides an organisation's fine-tuned models (owned_by "system").
OPENAI_BASE_MODELS = {
    "gpt-4o-mini-2024-07-18": 1721172717,
    "gpt-4o-2024-08-06": 1722814719,
    "gpt-4.1-2025-04-14": 1744316542,
    "gpt-4.1-mini-2025-04-14": 1744317547,
    "gpt-4.1-nano-2025-04-14": 1744321025,
    "gpt-3.5-turbo-0125": 1706048358,
}


# --------------------------------------------------------------------------- HTTP layer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 15  # idle keep-alive connections are closed after this
    server_version = "ftc-emulator/1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes
    wbufsize = 64 * 1024  # ...or rather as one: flushed in send()

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _dispatch(self) -> None:
        self.server.emulator._serve(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _dispatch

    def read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send(self, code: int, headers: dict, payload: bytes) -> None:
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)
        self.wfile.flush()


def _parse_multipart(content_type: str, raw: bytes) -> dict:
    msg = BytesParser(policy=_HTTP_POLICY).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + raw)
    out: dict[str, Any] = {}
    if not msg.is_multipart():
        return out
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            out[name] = {"filename": filename, "content_type": part.get_content_type(), "content": data}
        else:
            out[name] = data.decode("utf-8", "replace")
    return out


# --------------------------------------------------------------------------- emulator


def _parquet_rows_tokens(content: bytes) -> tuple[int, int | None]:
    """(rows, tokens) of a pre-tokenized Parquet file: tokens = the sum of the lengths of
    ``input_ids`` (None when pyarrow is missing or the file is not one)."""
    try:
        import io

        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(content), columns=["input_ids"])
        return table.num_rows, int(pc.sum(pc.list_value_length(table.column("input_ids"))).as_py() or 0)
    except Exception:  # not readable here: count nothing, as for an unknown file
        return 0, None


class ProviderEmulator(FireworksMixin):
    """A fake OpenAI, Together or Fireworks fine-tuning API on 127.0.0.1. Use as a context manager."""

    def __init__(self, provider: str = "openai", *, api_key: str | None = None, advance: str = "poll",
                 seconds_per_phase: float = 0.05, running_steps: int = 3, file_processing_delay: float = 0.0,
                 chat_reply: Callable[[list, str], str] | dict | None = None, organization: str = "org-emulator",
                 together_user: str = "emulator-user", account_id: str = "ftc-test"):
        if provider not in ("openai", "together", "fireworks"):
            raise ValueError("provider must be 'openai', 'together' or 'fireworks'")
        if advance not in ("poll", "time", "manual"):
            raise ValueError("advance must be 'poll', 'time' or 'manual'")
        self.provider = provider
        self.api_key = api_key or {"openai": "sk-test-emulator-0000", "together": "tg-test-emulator-0000",
                                   "fireworks": "fw-test-emulator-0000"}[provider]
        self.advance_mode = advance
        self.seconds_per_phase = seconds_per_phase
        self.running_steps = max(1, running_steps)
        self.file_processing_delay = file_processing_delay
        self.chat_reply = chat_reply
        self.organization = organization
        self.together_user = together_user
        self.account_id = account_id  # Fireworks: the one account of the key
        self.fine_tuning_refusal: tuple[int, str] | None = None  # see refuse_fine_tuning()
        self.shutdowns: dict[str, int] = {}  # model -> chat answers left before it is gone (see shut_down())
        self.model_archive: bytes | None = None  # Together: what GET /finetune/download hands out, when set
        self.requests: list[RecordedRequest] = []
        self.responses: list[RecordedResponse] = []
        self.jobs: dict[str, dict] = {}  # id -> internal job record (see _new_job)
        self.files: dict[str, dict] = {}  # id -> internal file record
        self._faults: list[_FaultRule] = []
        self.internal_errors: list[str] = []  # tracebacks of emulator bugs (answered as 500)
        self._job_failures: list[dict] = []
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server: LocalHTTPServer | None = None
        self._clock = itertools.count(1)
        self.port: int | None = None
        if provider == "fireworks":
            self._fw_init()
        self._routes = {"openai": self._openai_routes, "together": self._together_routes,
                        "fireworks": self._fw_routes}[provider]()

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> "ProviderEmulator":
        if self._server is None:
            self._server = LocalHTTPServer(_Handler)
            self._server.emulator = self  # type: ignore[attr-defined]
            self.port = self._server.port
            self._server.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases hung handlers
        if self._server is not None:
            self._server.close()
            self._server = None

    def __enter__(self) -> "ProviderEmulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What to pass as the SDK's base_url (OpenAI: with /v1; Together 3.x and Fireworks: without)."""
        return self.root_url + ("/v1" if self.provider == "openai" else "")

    @property
    def env(self) -> dict:
        """Environment variables that point the SDK at this emulator."""
        if self.provider == "openai":
            return {"OPENAI_BASE_URL": self.base_url, "OPENAI_API_KEY": self.api_key}
        if self.provider == "fireworks":
            return {"FIREWORKS_BASE_URL": self.base_url, "FIREWORKS_API_KEY": self.api_key,
                    "FIREWORKS_ACCOUNT_ID": self.account_id}
        return {"TOGETHER_BASE_URL": self.base_url, "TOGETHER_API_KEY": self.api_key}

    # ---------------------------------------------------------------- scripting

    def fail(self, path_regex: str, method: str = "*", responses: Fault | list[Fault] = ()) -> None:
        """The next len(responses) requests whose path matches ``path_regex`` (re.search on the
        path without query, e.g. r"/fine_tuning/jobs$") and ``method`` ("*" for any) get these
        answers, in order; later ones are served normally."""
        if isinstance(responses, Fault):
            responses = [responses]
        with self._lock:
            self._faults.append(_FaultRule(re.compile(path_regex), method.upper(), list(responses)))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def job_fails(self, reason: str, *, code: str = "invalid_training_file", param: str | None = "training_file",
                  together_status: str = "error") -> None:
        """The next job created ends failed with ``reason`` as the provider's error text.
        (Together: ``together_status`` may be "user_error", which the SDK knows but the
        published spec's FinetuneJobStatus does not list. Fireworks: ``code`` may be a
        google.rpc code name for ``status.code``; see emulator_fireworks.)"""
        with self._lock:
            self._job_failures.append({"message": reason, "code": code, "param": param,
                                       "together_status": together_status})

    #: OpenAI's words for the rule of 2026-07-02 (its deprecations page); the exact text and
    #: code of the API's refusal are not published, so the client must not depend on them.
    INACTIVE_ORG_MESSAGE = ("Creating fine-tuning jobs is no longer available to organizations without inference "
                            "on a fine-tuned model in the past 60 days.")

    def refuse_fine_tuning(self, status: int = 403, message: str | None = None) -> None:
        """OpenAI: from now on every ``POST /fine_tuning/jobs`` is refused with ``status`` and
        ``message`` (default: the inactive-organisation rule) in OpenAI's error shape; nothing
        is created. ``refuse_fine_tuning(0)`` turns it off."""
        with self._lock:
            self.fine_tuning_refusal = (status, message or self.INACTIVE_ORG_MESSAGE) if status else None

    #: The error of a job seeded as failed without one.
    SEEDED_JOB_ERROR = {"code": "server_error", "param": None,
                        "message": "The job failed due to an internal error. Please try again."}

    def add_fine_tune(self, model: str, *, training: bytes, status: str = "succeeded", created: Any = None,
                      validation: bytes | None = None, downloadable: bool = False,
                      n_epochs: int | str = "auto", learning_rate_multiplier: float | str = "auto",
                      batch_size: int | str = "auto", method: str = "supervised", suffix: str | None = None,
                      trained_tokens: int | None = None, error: dict | None = None) -> dict:
        """OpenAI: an organisation's past fine-tuning job, stored in ``jobs`` as if made through the
        API and returned in its wire form (``GET /fine_tuning/jobs/{id}``).

        ``created``: an ISO date/datetime string, a date/datetime (naive = UTC) or epoch seconds
        (default: now). The job is put in ``status`` at once, with the events, metrics and
        checkpoints of its way there; a final one (succeeded, failed, cancelled) finished an hour
        after ``created`` and never moves again; a seeded validating_files/queued/running job
        moves on from there like any other (its timeline restarts now). ``training`` and
        ``validation`` become processed "fine-tune" files (train.jsonl, valid.jsonl) created with
        the job; ``GET /files/{id}/content`` hands them out only when ``downloadable``.
        ``trained_tokens`` (succeeded jobs, when None): the whitespace-separated tokens of the
        training file times ``n_epochs`` ("auto" is 3). ``error`` (failed jobs):
        ``{"code", "message", "param"}``, default ``SEEDED_JOB_ERROR``; a code
        invalid_training_file / invalid_file_format fails it while validating files.
        """
        if self.provider != "openai":
            raise ValueError("add_fine_tune() seeds the OpenAI emulator only")
        if status not in ("validating_files", "queued", "running", "succeeded", "failed", "cancelled"):
            raise ValueError(f"not an OpenAI fine-tuning job status: {status!r}")
        if method not in ("supervised", "dpo"):
            raise ValueError(f"method must be 'supervised' or 'dpo', not {method!r}")
        if not model or not isinstance(training, (bytes, bytearray)) or not (
                validation is None or isinstance(validation, (bytes, bytearray))):
            raise TypeError("add_fine_tune() needs a model and training (and validation) as bytes")
        t0 = _now() if created is None else _epoch(created)
        with self._lock:
            file_ids: dict[str, str | None] = {}
            for key, name, content in (("training_file", "train.jsonl", training),
                                       ("validation_file", "valid.jsonl", validation)):
                file_ids[key] = None
                if content is not None:
                    fid = file_ids[key] = f"file-{_short(22)}"
                    self.files[fid] = {"id": fid, "bytes": len(content), "created_at": t0, "filename": name,
                                       "purpose": "fine-tune", "_content": bytes(content), "_ready_at": 0.0,
                                       "_downloadable": bool(downloadable)}
            hp: dict[str, Any] = {"batch_size": batch_size, "learning_rate_multiplier": learning_rate_multiplier,
                                  "n_epochs": n_epochs}
            if method == "dpo":
                hp["beta"] = "auto"
            failure = None
            if status == "failed":
                err = {**self.SEEDED_JOB_ERROR, **(error or {})}
                failure = {"code": err["code"], "message": err["message"], "param": err.get("param")}
            jid = f"ftjob-{_short(24)}"
            job = {"id": jid, "created_at": t0, "model": model, "training_file": file_ids["training_file"],
                   "validation_file": file_ids["validation_file"], "suffix": suffix, "seed": 42,
                   "method": {"type": method, method: {"hyperparameters": hp}}, "metadata": None,
                   "integrations": None, "_state": "validating_files", "_phase": 0, "_t0": time.time(),
                   "_events": [], "_checkpoints": [], "_failure": failure, "_step": 0, "fine_tuned_model": None,
                   "finished_at": None, "trained_tokens": None, "error": None, "result_files": [],
                   "_seeded": True}
            self.jobs[jid] = job
            self._oa_event(job, "info", f"Validating training file: {job['training_file']}")
            self._oa_event(job, "info", "Created fine-tuning job")
            target = "running" if status == "cancelled" else status
            while job["_state"] != target and not self._terminal(job):
                self._step(job)
            if status == "cancelled":
                job["_state"] = "cancelled"
                self._oa_event(job, "info", "Fine-tuning job cancelled")
            final = self._terminal(job)
            if trained_tokens is None and status in ("succeeded", "validating_files", "queued", "running"):
                words = len(bytes(training).decode("utf-8", "replace").split())
                epochs = self._oa_resolved_hp(job)["n_epochs"]
                trained_tokens = words * epochs if isinstance(epochs, int) else words
            job["_trained_tokens"] = trained_tokens  # also what a seeded running job ends with
            job["trained_tokens"] = trained_tokens if final else None
            job["finished_at"] = t0 + 3600 if final else None
            # Its past, spread over the hour (a final job) or a minute apart.
            past = sorted(job["_events"] + job["_checkpoints"], key=lambda e: e["_seq"])
            for i, ev in enumerate(past):
                ev["created_at"] = t0 + (3600 * i // max(1, len(past) - 1) if final else 60 * i)
            job["_phase"], job["_t0"] = 0, time.time()
            return copy.deepcopy(self._oa_job_wire(job))

    def shut_down(self, model: str, *, after: int = 0) -> None:
        """OpenAI: ``model`` answers ``after`` more chat completions, then it is gone: chat
        completions and ``GET /models/{model}`` answer 404 ``model_not_found``, and
        ``GET /models`` no longer lists it. The last call for a model wins."""
        if self.provider != "openai":
            raise ValueError("shut_down() is for the OpenAI emulator only")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ValueError(f"after must be an integer >= 0, not {after!r}")
        with self._lock:
            self.shutdowns[model] = after

    def advance(self, job_id: str | None = None, n: int = 1) -> None:
        """Move one job (or every job) n phases on."""
        with self._lock:
            for job in [self.jobs[self._job_key(job_id)]] if job_id else list(self.jobs.values()):
                for _ in range(n):
                    self._step(job)

    def finish(self, job_id: str | None = None) -> None:
        """Run a job (or every job) to its terminal state."""
        with self._lock:
            for job in [self.jobs[self._job_key(job_id)]] if job_id else list(self.jobs.values()):
                while not self._terminal(job):
                    self._step(job)

    def job(self, job_id: str) -> dict:
        """The job as the provider would send it now."""
        with self._lock:
            return copy.deepcopy(self._job_wire(self.jobs[self._job_key(job_id)]))

    def _job_key(self, job_id: str) -> str:
        """The key in ``jobs`` of a job id (Fireworks: a short id or the resource name)."""
        return self._fw_job_key(job_id) if self.provider == "fireworks" else job_id

    def requests_to(self, path_regex: str, method: str = "*") -> list[RecordedRequest]:
        rx = re.compile(path_regex)
        return [r for r in self.requests if rx.search(r.path) and method.upper() in ("*", r.method)]

    def check_responses(self) -> int:
        """Validate every JSON body this emulator sent against the official OpenAPI document
        (Fireworks: strictly against the fireworks SDK's own types, tests/fireworks_check.py).
        Raises AssertionError naming the first mismatch; returns how many were checked."""
        if self.provider == "fireworks":
            return self._fw_check_responses()  # against the fireworks SDK's own types
        import openapi_check as oc

        if self.internal_errors:
            raise AssertionError("the emulator itself failed:\n" + "\n".join(self.internal_errors))
        checked = 0
        with self._lock:
            sent = list(self.responses)
        for r in sent:
            if r.body is None:
                continue
            what = f"{r.method} {r.path} -> {r.status}"
            try:
                if r.spec_op and 200 <= r.status < 300:
                    oc.validate_response(self.provider, r.spec_op[0], r.spec_op[1], r.status, r.body)
                elif r.spec_op and oc.has_response_schema(self.provider, r.spec_op[0], r.spec_op[1], r.status):
                    oc.validate_response(self.provider, r.spec_op[0], r.spec_op[1], r.status, r.body)
                elif r.status >= 400:
                    oc.validate_error(self.provider, r.body)
                else:
                    raise AssertionError(f"{what}: the emulator sent a JSON body with no schema to check it against")
            except AssertionError as e:
                raise AssertionError(f"emulator response {what}:\n{e}") from None
            checked += 1
        return checked

    # ---------------------------------------------------------------- serving

    def _serve(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        path, query = split.path, parse_qs(split.query, keep_blank_values=True)
        method = h.command.upper()
        raw = h.read_body()
        headers = {k: ("Bearer ***" if k.lower() == "authorization" and v else v) for k, v in h.headers.items()}
        ctype = h.headers.get("Content-Type") or ""
        body: Any = None
        if raw:
            if ctype.startswith("application/json"):
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"_invalid_json": raw[:200].decode("utf-8", "replace")}
            elif ctype.startswith("multipart/form-data"):
                body = _parse_multipart(ctype, raw)
            else:
                body = {"bytes": len(raw)}
        req = RecordedRequest(method, path, query, headers, body)
        req._raw = raw  # type: ignore[attr-defined]
        req._auth = h.headers.get("Authorization")  # type: ignore[attr-defined]
        with self._lock:
            self.requests.append(req)
            fault = self._take_fault(method, path)
        if fault is not None:
            req.fault = fault.kind
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.kind == "hang":
            self._stopping.wait()
            h.close_connection = True
            return
        if fault is not None and fault.kind == "drop_before":
            h.close_connection = True
            return
        route = self._match(method, path)
        spec_op = route[2] if route else None
        if fault is not None and fault.kind == "status":
            body_out = fault.body if fault.body is not None else self._error_body(
                _ApiError(fault.code, _STATUS_TEXT.get(fault.code, ("api_error", f"Error {fault.code}."))[1]), path)
            self._respond(h, req, fault.code, body_out, fault.headers, spec_op)
            return
        try:
            if route is None:
                raise _ApiError(404, f"Invalid URL ({method} {path})", err_code="unknown_url")
            handler, params, _ = route
            if not getattr(handler, "_no_auth", False):
                self._check_auth(req._auth)  # type: ignore[attr-defined]
            with self._lock:
                result = handler(req, **params)
            code, out, extra = (result + ({},))[:3] if isinstance(result, tuple) else (200, result, {})
        except _ApiError as e:
            code, out, extra = e.status, self._error_body(e, path), e.headers
        except Exception as e:  # a bug in the emulator: answer 500 and make check_responses fail
            import traceback

            self.internal_errors.append(f"{method} {path}: {traceback.format_exc()}")
            code, out, extra = 500, self._error_body(_ApiError(500, f"emulator bug: {e!r}"), path), {}
        if fault is not None and fault.kind == "drop_after":
            h.close_connection = True
            return
        self._respond(h, req, code, out, extra, spec_op)

    def _respond(self, h: _Handler, req: RecordedRequest, code: int, out: Any, headers: dict,
                 spec_op: tuple | None) -> None:
        hdrs = {"x-request-id": f"req_{_short(16)}"}
        if out is _NO_BODY:
            payload, parsed = b"", None
        elif isinstance(out, _Binary):
            hdrs["Content-Type"] = "application/octet-stream"
            payload, parsed = bytes(out), None
        else:
            hdrs["Content-Type"] = "application/json"
            payload, parsed = json.dumps(out).encode(), out
        hdrs.update(headers)
        with self._lock:
            self.responses.append(RecordedResponse(req.method, req.path, code, hdrs, copy.deepcopy(parsed),
                                                   spec_op, req))
        try:
            h.send(code, hdrs, payload)
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            h.close_connection = True

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for rule in self._faults:
            if rule.queue and rule.method in ("*", method) and rule.pattern.search(path):
                return rule.queue.pop(0)
        return None

    def _match(self, method: str, path: str):
        for m, rx, handler, spec_template in self._routes:
            if m == method:
                mo = rx.fullmatch(path)
                if mo:
                    if isinstance(spec_template, str):
                        spec_template = (m, spec_template)
                    return handler, mo.groupdict(), spec_template
        return None

    def _check_auth(self, header: str | None) -> None:
        if self.provider == "fireworks":
            return self._fw_check_auth(header)
        if not header or not header.startswith("Bearer ") or not header[7:].strip():
            if self.provider == "openai":
                raise _ApiError(401, "You didn't provide an API key. You need to provide your API key in an "
                                     "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), "
                                     "or as the password field (with blank username) if you're accessing the API "
                                     "from your browser and are prompted for a username and password. You can "
                                     "obtain an API key from https://platform.openai.com/account/api-keys.",
                                type_="invalid_request_error")
            raise _ApiError(401, "Unauthorized: missing API key.", type_="invalid_request_error",
                            err_code="invalid_api_key")
        given = header[7:].strip()
        if given != self.api_key:
            masked = given[:3] + "*" * 8 + given[-4:] if len(given) > 8 else "***"
            if self.provider == "openai":
                raise _ApiError(401, f"Incorrect API key provided: {masked}. You can find your API key at "
                                     "https://platform.openai.com/account/api-keys.",
                                type_="invalid_request_error", err_code="invalid_api_key")
            raise _ApiError(401, "Invalid API key provided. You can find your API key at "
                                 "https://api.together.xyz/settings/api-keys.",
                            type_="invalid_request_error", err_code="invalid_api_key")

    def _error_body(self, e: _ApiError, path: str = "") -> dict:
        if self.provider == "fireworks":
            return self._fw_error_body(e, path)
        # OpenAI ErrorResponse: error{message,type,param,code} all required (param/code nullable).
        # Together ErrorData: error{message,type} required, param/code nullable strings.
        return {"error": {"message": e.message, "type": e.type, "param": e.param, "code": e.err_code}}

    # ---------------------------------------------------------------- shared helpers

    def _tick(self, job: dict, *, poll: bool = False) -> None:
        if self.advance_mode == "poll" and poll:
            self._step(job)
        elif self.advance_mode == "time":
            target = int((time.time() - job["_t0"]) / self.seconds_per_phase)
            while job["_phase"] < target and not self._terminal(job):
                self._step(job)

    def _terminal(self, job: dict) -> bool:
        return job["_state"] in ("succeeded", "failed", "cancelled", "completed", "error", "user_error") + FW_TERMINAL

    def _step(self, job: dict) -> None:
        """Advance one phase along the job's timeline, emitting events."""
        if self._terminal(job):
            return
        job["_phase"] += 1
        {"openai": self._openai_step, "together": self._together_step, "fireworks": self._fw_step}[self.provider](job)

    def _reply_text(self, messages: list, model: str) -> str:
        user = next((m.get("content") for m in reversed(messages or []) if m.get("role") == "user"), "") or ""
        if isinstance(user, list):
            user = " ".join(p.get("text", "") for p in user if isinstance(p, dict))
        if callable(self.chat_reply):
            return self.chat_reply(messages, model)
        if isinstance(self.chat_reply, dict):
            return self.chat_reply.get(user, self.chat_reply.get("*", user))
        return user

    @staticmethod
    def _paginate(items: list, query: dict, default_limit: int) -> tuple[list, bool]:
        after = (query.get("after") or [None])[0]
        try:
            limit = int((query.get("limit") or [default_limit])[0])
        except ValueError:
            raise _ApiError(400, "Invalid 'limit': expected an integer.", param="limit") from None
        if after:
            ids = [i["id"] for i in items]
            if after in ids:
                items = items[ids.index(after) + 1:]
        return items[:limit], len(items) > limit

    @staticmethod
    def _tokens(text: str) -> int:
        return max(1, len(str(text).split()))

    # ================================================================= OpenAI

    def _openai_routes(self):
        J = r"(?P<job_id>[^/]+)"
        return [
            ("POST", re.compile(r"/v1/files"), self._oa_file_create, "/files"),
            ("GET", re.compile(r"/v1/files"), self._oa_file_list, "/files"),
            ("GET", re.compile(r"/v1/files/(?P<file_id>[^/]+)"), self._oa_file_get, "/files/{file_id}"),
            ("GET", re.compile(r"/v1/files/(?P<file_id>[^/]+)/content"), self._oa_file_content,
             "/files/{file_id}/content"),  # routes are full matches: /files/{id} does not take this one
            ("DELETE", re.compile(r"/v1/files/(?P<file_id>[^/]+)"), self._oa_file_delete, "/files/{file_id}"),
            ("GET", re.compile(r"/v1/models"), self._oa_model_list, "/models"),
            ("GET", re.compile(r"/v1/models/(?P<model>[^/]+)"), self._oa_model_get, "/models/{model}"),
            ("POST", re.compile(r"/v1/fine_tuning/jobs"), self._oa_job_create, "/fine_tuning/jobs"),
            ("GET", re.compile(r"/v1/fine_tuning/jobs"), self._oa_job_list, "/fine_tuning/jobs"),
            ("GET", re.compile(rf"/v1/fine_tuning/jobs/{J}"), self._oa_job_get,
             "/fine_tuning/jobs/{fine_tuning_job_id}"),
            ("GET", re.compile(rf"/v1/fine_tuning/jobs/{J}/events"), self._oa_job_events,
             "/fine_tuning/jobs/{fine_tuning_job_id}/events"),
            ("GET", re.compile(rf"/v1/fine_tuning/jobs/{J}/checkpoints"), self._oa_job_checkpoints,
             "/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints"),
            ("POST", re.compile(rf"/v1/fine_tuning/jobs/{J}/cancel"), self._oa_job_cancel,
             "/fine_tuning/jobs/{fine_tuning_job_id}/cancel"),
            ("POST", re.compile(r"/v1/chat/completions"), self._oa_chat, "/chat/completions"),
        ]

    # files

    def _oa_file_wire(self, f: dict) -> dict:
        processed = time.time() >= f["_ready_at"]
        return {"id": f["id"], "object": "file", "bytes": f["bytes"], "created_at": f["created_at"],
                "filename": f["filename"], "purpose": f["purpose"],
                "status": "processed" if processed else "uploaded"}

    def _oa_file_create(self, req: RecordedRequest):
        form = req.body if isinstance(req.body, dict) else {}
        up = form.get("file")
        purpose = form.get("purpose")
        if not isinstance(up, dict):
            raise _ApiError(400, "'file' is a required property", param="file")
        if purpose not in ("assistants", "batch", "fine-tune", "vision", "user_data", "evals"):
            raise _ApiError(400, f"'{purpose}' is not one of ['fine-tune', 'assistants', 'batch', 'user_data',"
                                 " 'vision', 'evals'] - 'purpose'", param="purpose")
        content = up["content"]
        if purpose == "fine-tune":
            for n, line in enumerate(content.decode("utf-8", "replace").splitlines(), 1):
                if line.strip():
                    try:
                        json.loads(line)
                    except ValueError:
                        raise _ApiError(400, f"Invalid file format for Fine-Tuning API. Must be .jsonl "
                                             f"(line {n} is not JSON)", param="file") from None
        fid = f"file-{_short(22)}"
        f = {"id": fid, "bytes": len(content), "created_at": _now(), "filename": up["filename"],
             "purpose": purpose, "_content": content, "_ready_at": time.time() + self.file_processing_delay}
        self.files[fid] = f
        return self._oa_file_wire(f)

    def _oa_file_list(self, req: RecordedRequest):
        items = sorted(self.files.values(), key=lambda f: (f["created_at"], f["id"]))
        purpose = (req.query.get("purpose") or [None])[0]
        if purpose:
            items = [f for f in items if f["purpose"] == purpose]
        if (req.query.get("order") or ["desc"])[0] == "desc":
            items.reverse()
        page, more = self._paginate(items, req.query, 10000)
        data = [self._oa_file_wire(f) for f in page]
        # ListFilesResponse requires first_id/last_id as strings (not nullable) even when empty.
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else "",
                "last_id": data[-1]["id"] if data else "", "has_more": more}

    def _oa_get_file(self, file_id: str) -> dict:
        if file_id not in self.files:
            raise _ApiError(404, f"No such File object: {file_id}", param="id")
        return self.files[file_id]

    def _oa_file_get(self, req: RecordedRequest, file_id: str):
        return self._oa_file_wire(self._oa_get_file(file_id))

    def _oa_file_delete(self, req: RecordedRequest, file_id: str):
        self._oa_get_file(file_id)
        del self.files[file_id]
        return {"id": file_id, "object": "file", "deleted": True}

    #: Purposes whose uploads OpenAI does not hand back through GET /files/{id}/content.
    OPENAI_NO_DOWNLOAD = ("fine-tune", "assistants")

    def _oa_file_content(self, req: RecordedRequest, file_id: str):
        f = self._oa_get_file(file_id)
        if not f.get("_downloadable", f["purpose"] not in self.OPENAI_NO_DOWNLOAD):
            raise _ApiError(400, f"Not allowed to download files of purpose: {f['purpose']}.",
                            type_="invalid_request_error")
        return _Binary(f["_content"])

    # models

    def _oa_gone(self, model: str) -> bool:
        return self.shutdowns.get(model) == 0

    def _oa_models(self) -> dict[str, dict]:
        """id -> Model: the base models, then every succeeded job's fine-tuned model, less those shut down."""
        out = {m: {"id": m, "object": "model", "created": t, "owned_by": "system"}
               for m, t in OPENAI_BASE_MODELS.items()}
        for job in sorted(self.jobs.values(), key=lambda j: (j["created_at"], j["_t0"])):
            self._tick(job)
            m = job["fine_tuned_model"]
            if job["_state"] == "succeeded" and m:
                out[m] = {"id": m, "object": "model", "created": job["finished_at"], "owned_by": self.organization}
        return {m: w for m, w in out.items() if not self._oa_gone(m)}

    @staticmethod
    def _oa_model_not_found(model: str) -> _ApiError:
        return _ApiError(404, f"The model `{model}` does not exist or you do not have access to it.",
                         type_="invalid_request_error", err_code="model_not_found")

    def _oa_model_list(self, req: RecordedRequest):
        return {"object": "list", "data": list(self._oa_models().values())}

    def _oa_model_get(self, req: RecordedRequest, model: str):
        model = unquote(model)  # the SDK leaves ':' as it is, but quotes '/'
        found = self._oa_models().get(model)
        if found is None:
            raise self._oa_model_not_found(model)
        return found

    # jobs

    def _oa_job_create(self, req: RecordedRequest):
        b = req.body if isinstance(req.body, dict) else {}
        if self.fine_tuning_refusal is not None:
            code, message = self.fine_tuning_refusal
            raise _ApiError(code, message, type_="invalid_request_error")
        for key in ("model", "training_file"):
            if not b.get(key):
                raise _ApiError(400, f"Missing required parameter: '{key}'.", param=key,
                                err_code="missing_required_parameter")
        for key in ("training_file", "validation_file"):
            fid = b.get(key)
            if fid is None:
                continue
            f = self.files.get(fid)
            if f is None:
                raise _ApiError(400, f"invalid {key}: {fid}", param=key, err_code="invalid_request_error")
            if time.time() < f["_ready_at"]:
                raise _ApiError(400, f"File {fid} is not ready. Please wait until it is processed.", param=key,
                                err_code="file_not_ready")
        suffix = b.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
            raise _ApiError(400, "suffix must be a string of at most 64 characters.", param="suffix")
        method = copy.deepcopy(b.get("method")) or None
        legacy = b.get("hyperparameters") or {}
        if method is None:
            method = {"type": "supervised", "supervised": {"hyperparameters": dict(legacy)}}
        mtype = method.get("type")
        if mtype not in ("supervised", "dpo", "reinforcement"):
            raise _ApiError(400, f"Invalid method type: {mtype!r}", param="method.type")
        hp = method.setdefault(mtype, {}).setdefault("hyperparameters", {})
        for k in ("batch_size", "learning_rate_multiplier", "n_epochs") + (("beta",) if mtype == "dpo" else ()):
            hp.setdefault(k, legacy.get(k, "auto"))
        metadata = b.get("metadata")
        if metadata is not None and (not isinstance(metadata, dict) or len(metadata) > 16):
            raise _ApiError(400, "metadata must be an object with at most 16 string pairs.", param="metadata")
        now = _now()
        jid = f"ftjob-{_short(24)}"
        failure = self._job_failures.pop(0) if self._job_failures else None
        job = {"id": jid, "created_at": now, "model": b["model"], "training_file": b["training_file"],
               "validation_file": b.get("validation_file"), "suffix": suffix,
               "seed": b.get("seed") if isinstance(b.get("seed"), int) else 42, "method": method,
               "metadata": metadata, "integrations": b.get("integrations"), "_state": "validating_files",
               "_phase": 0, "_t0": time.time(), "_events": [], "_checkpoints": [], "_failure": failure,
               "_step": 0, "fine_tuned_model": None, "finished_at": None, "trained_tokens": None,
               "error": None, "result_files": []}
        self.jobs[jid] = job
        self._oa_event(job, "info", f"Validating training file: {b['training_file']}")
        self._oa_event(job, "info", "Created fine-tuning job")
        return self._job_wire(job)

    def _oa_event(self, job: dict, level: str, message: str, data: dict | None = None) -> None:
        ev = {"object": "fine_tuning.job.event", "id": f"ftevent-{_short(24)}", "created_at": _now(),
              "level": level, "message": message, "type": "metrics" if data else "message", "data": data or {},
              "_seq": next(self._clock)}
        job["_events"].append(ev)

    def _oa_resolved_hp(self, job: dict) -> dict:
        hp = job["method"][job["method"]["type"]]["hyperparameters"]
        auto = {"batch_size": 1, "learning_rate_multiplier": 1.8, "n_epochs": 3, "beta": 0.1}
        return {k: (auto[k] if v == "auto" else v) for k, v in hp.items()}

    def _openai_step(self, job: dict) -> None:
        st = job["_state"]
        fail = job["_failure"]
        if st == "validating_files":
            if fail and fail.get("code") in ("invalid_training_file", "invalid_file_format"):
                return self._oa_fail(job)
            job["_state"] = "queued"
            self._oa_event(job, "info", "Files validated, moving job to queued state")
        elif st == "queued":
            job["_state"] = "running"
            job["method"][job["method"]["type"]]["hyperparameters"] = self._oa_resolved_hp(job)
            self._oa_event(job, "info", "Fine-tuning job started")
        elif st == "running":
            if job["_step"] < self.running_steps:
                job["_step"] += 1
                s, total = job["_step"], self.running_steps
                loss = round(2.0 / (1 + s), 4)
                self._oa_event(job, "info", f"Step {s}/{total}: training loss={loss:.4f}",
                               {"step": s, "train_loss": loss, "total_steps": total,
                                "train_mean_token_accuracy": round(min(0.99, 0.4 + 0.15 * s), 4)})
                if s > total - 3:  # the last three steps keep a checkpoint, as OpenAI does
                    self._oa_checkpoint(job, s, loss)
                return
            if fail:
                return self._oa_fail(job)
            org = self.organization.removeprefix("org-")
            job["fine_tuned_model"] = ":".join(x for x in ("ft", job["model"], org, job["suffix"] or "",
                                                           job["id"].split("-")[1][:8]) if x is not None)
            job["_state"] = "succeeded"
            job["finished_at"] = _now()
            job["trained_tokens"] = job.get("_trained_tokens") or 1000 * self.running_steps
            job["result_files"] = [f"file-{_short(22)}"]
            self._oa_event(job, "info", f"New fine-tuned model created: {job['fine_tuned_model']}")
            self._oa_event(job, "info", "The job has successfully completed")

    def _oa_checkpoint(self, job: dict, step: int, loss: float) -> None:
        org = self.organization.removeprefix("org-")
        name = f"ft:{job['model']}:{org}:{job['suffix'] or ''}:{job['id'].split('-')[1][:8]}:ckpt-step-{step}"
        job["_checkpoints"].append({
            "object": "fine_tuning.job.checkpoint", "id": f"ftckpt_{_short(24)}", "created_at": _now(),
            "fine_tuned_model_checkpoint": name, "fine_tuning_job_id": job["id"], "step_number": step,
            "metrics": {"step": float(step), "train_loss": loss, "train_mean_token_accuracy": 0.5,
                        "valid_loss": loss * 1.1, "valid_mean_token_accuracy": 0.45,
                        "full_valid_loss": loss * 1.1, "full_valid_mean_token_accuracy": 0.45},
            "_seq": next(self._clock)})

    def _oa_fail(self, job: dict) -> None:
        f = job["_failure"]
        job["_state"] = "failed"
        job["finished_at"] = _now()
        job["error"] = {"code": f["code"], "message": f["message"], "param": f["param"]}
        self._oa_event(job, "error", f["message"])

    def _job_wire(self, job: dict) -> dict:
        if self.provider == "fireworks":
            return self._fw_job_wire(job)
        return self._oa_job_wire(job) if self.provider == "openai" else self._tg_job_wire(job)

    def _oa_job_wire(self, job: dict) -> dict:
        hp = job["method"][job["method"]["type"]]["hyperparameters"]
        return {
            "object": "fine_tuning.job", "id": job["id"], "created_at": job["created_at"], "error": job["error"],
            "fine_tuned_model": job["fine_tuned_model"], "finished_at": job["finished_at"],
            "hyperparameters": {k: hp[k] for k in ("batch_size", "learning_rate_multiplier", "n_epochs")},
            "model": job["model"], "organization_id": self.organization, "result_files": list(job["result_files"]),
            "status": job["_state"], "trained_tokens": job["trained_tokens"], "training_file": job["training_file"],
            "validation_file": job["validation_file"], "integrations": job["integrations"], "seed": job["seed"],
            "estimated_finish": None, "method": copy.deepcopy(job["method"]), "metadata": job["metadata"],
            "user_provided_suffix": job["suffix"],
        }

    def _oa_job(self, job_id: str) -> dict:
        if job_id not in self.jobs:
            raise _ApiError(404, f"Could not find fine tune job: {job_id}", param="fine_tuning_job_id",
                            err_code="fine_tune_not_found")
        return self.jobs[job_id]

    def _oa_job_get(self, req: RecordedRequest, job_id: str):
        job = self._oa_job(job_id)
        self._tick(job, poll=True)
        return self._oa_job_wire(job)

    def _oa_job_list(self, req: RecordedRequest):
        jobs = sorted(self.jobs.values(), key=lambda j: (j["created_at"], j["_t0"]), reverse=True)
        for j in jobs:
            self._tick(j)
        meta = {k[len("metadata["):-1]: v[0] for k, v in req.query.items()
                if k.startswith("metadata[") and k.endswith("]")}
        if meta:
            jobs = [j for j in jobs if j["metadata"] and all(j["metadata"].get(k) == v for k, v in meta.items())]
        elif (req.query.get("metadata") or [None])[0] == "null":
            jobs = [j for j in jobs if not j["metadata"]]
        page, more = self._paginate(jobs, req.query, 20)
        return {"object": "list", "data": [self._oa_job_wire(j) for j in page], "has_more": more}

    def _oa_job_events(self, req: RecordedRequest, job_id: str):
        job = self._oa_job(job_id)
        self._tick(job)
        evs = sorted(job["_events"], key=lambda e: e["_seq"], reverse=True)  # newest first, as OpenAI does
        page, more = self._paginate(evs, req.query, 20)
        return {"object": "list", "data": [{k: v for k, v in e.items() if k != "_seq"} for e in page],
                "has_more": more}

    def _oa_job_checkpoints(self, req: RecordedRequest, job_id: str):
        job = self._oa_job(job_id)
        self._tick(job)
        cps = sorted(job["_checkpoints"], key=lambda c: c["_seq"], reverse=True)
        page, more = self._paginate(cps, req.query, 10)
        data = [{k: v for k, v in c.items() if k != "_seq"} for c in page]
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": more}

    def _oa_job_cancel(self, req: RecordedRequest, job_id: str):
        job = self._oa_job(job_id)
        if self._terminal(job):
            raise _ApiError(400, f"Job {job_id} has already {job['_state']} and cannot be cancelled.",
                            param="fine_tuning_job_id")
        job["_state"] = "cancelled"
        job["finished_at"] = _now()
        self._oa_event(job, "info", "Fine-tuning job cancelled")
        return self._oa_job_wire(job)

    def _oa_chat(self, req: RecordedRequest):
        b = req.body if isinstance(req.body, dict) else {}
        model, messages = b.get("model"), b.get("messages")
        if not model or not isinstance(messages, list) or not messages:
            raise _ApiError(400, "Missing required parameter: 'messages'." if model else
                            "you must provide a model parameter", param="messages" if model else "model")
        if b.get("stream"):
            raise _ApiError(400, "The emulator does not stream.", param="stream")
        if self._oa_gone(model) or (
                model.startswith("ft:") and not any(j["fine_tuned_model"] == model for j in self.jobs.values())):
            raise self._oa_model_not_found(model)
        text = self._reply_text(messages, model)
        if model in self.shutdowns:
            self.shutdowns[model] -= 1  # one answer fewer before it is gone
        pt = sum(self._tokens(m.get("content") or "") for m in messages)
        ct = self._tokens(text)
        return {"id": f"chatcmpl-{_short(29)}", "object": "chat.completion", "created": _now(), "model": model,
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": text, "refusal": None,
                                         "annotations": []}}],
                "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
                "service_tier": "default", "system_fingerprint": "fp_emulator"}

    # ================================================================= Together

    def _together_routes(self):
        J = r"(?P<job_id>[^/]+)"
        F = r"(?P<file_id>[A-Za-z0-9][A-Za-z0-9._-]*)"
        return [
            # The SDK's upload protocol (together 3.x lib/resources/files.py), not in the published spec:
            # POST /v1/files (multipart: purpose, file_name, file_type, checksum) -> 302 Location +
            # X-Together-File-Id; PUT <Location> (raw bytes, no auth); POST /v1/files/{id}/preprocess
            # -> FileResponse (checked against GET /files/{id}).
            ("POST", re.compile(r"/v1/files"), self._tg_file_begin, None),
            ("PUT", re.compile(rf"/_upload/{F}"), self._tg_file_put, None),
            ("POST", re.compile(rf"/v1/files/{F}/preprocess"), self._tg_file_preprocess, ("GET", "/files/{id}")),
            # The published spec's single-request upload.
            ("POST", re.compile(r"/v1/files/upload"), self._tg_file_upload, "/files/upload"),
            ("GET", re.compile(r"/v1/files"), self._tg_file_list, "/files"),
            ("GET", re.compile(rf"/v1/files/{F}"), self._tg_file_get, "/files/{id}"),
            ("DELETE", re.compile(rf"/v1/files/{F}"), self._tg_file_delete, "/files/{id}"),
            ("GET", re.compile(r"/v1/fine-tunes/models/limits"), self._tg_limits, "/fine-tunes/models/limits"),
            ("GET", re.compile(r"/v1/fine-tunes/models/supported"), self._tg_supported,
             "/fine-tunes/models/supported"),
            ("POST", re.compile(r"/v1/fine-tunes/estimate-price"), self._tg_estimate, "/fine-tunes/estimate-price"),
            ("POST", re.compile(r"/v1/fine-tunes"), self._tg_job_create, "/fine-tunes"),
            ("GET", re.compile(r"/v1/fine-tunes"), self._tg_job_list, "/fine-tunes"),
            ("GET", re.compile(rf"/v1/fine-tunes/{J}"), self._tg_job_get, "/fine-tunes/{id}"),
            ("GET", re.compile(rf"/v1/fine-tunes/{J}/events"), self._tg_job_events, "/fine-tunes/{id}/events"),
            ("GET", re.compile(rf"/v1/fine-tunes/{J}/checkpoints"), self._tg_job_checkpoints,
             "/fine-tunes/{id}/checkpoints"),
            ("POST", re.compile(rf"/v1/fine-tunes/{J}/cancel"), self._tg_job_cancel, "/fine-tunes/{id}/cancel"),
            ("POST", re.compile(r"/v1/chat/completions"), self._tg_chat, "/chat/completions"),
            ("GET", re.compile(r"/v1/finetune/download"), self._tg_download, None),
        ]

    SUPPORTED_MODELS = (
        "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
        "meta-llama/Meta-Llama-3.1-70B-Instruct-Reference",
        "Qwen/Qwen2.5-7B-Instruct",
        "Qwen/Qwen2.5-14B-Instruct",
        "Qwen/Qwen3-8B",
        "meta-llama/Llama-3.2-1B-Instruct",
        "meta-llama/Llama-3.2-3B-Instruct",
        "mistralai/Mistral-Nemo-Instruct-2407",
    )

    # files

    def _tg_file_wire(self, f: dict) -> dict:
        return {"id": f["id"], "object": "file", "created_at": f["created_at"], "filename": f["filename"],
                "bytes": f["bytes"], "purpose": f["purpose"], "Processed": f["_processed"],
                "FileType": f["file_type"], "processing_status": "COMPLETED" if f["_processed"] else "PENDING",
                "LineCount": f["_lines"]}

    def _tg_new_file(self, name: str, purpose: str, file_type: str, content: bytes | None) -> dict:
        if purpose not in ("fine-tune", "eval", "eval-sample", "eval-output", "eval-summary", "batch-generated",
                           "batch-api"):
            raise _ApiError(400, f"Invalid purpose: {purpose}", param="purpose")
        if file_type not in ("jsonl", "csv", "parquet"):
            raise _ApiError(400, f"Invalid file type: {file_type}", param="file_type")
        fid = f"file-{uuid.uuid4()}"
        f = {"id": fid, "created_at": _now(), "filename": name, "purpose": purpose, "file_type": file_type,
             "bytes": 0, "_content": b"", "_processed": False, "_lines": 0}
        self.files[fid] = f
        if content is not None:
            self._tg_store(f, content)
        return f

    def _tg_store(self, f: dict, content: bytes) -> None:
        f["_content"] = content
        f["bytes"] = len(content)
        f["_lines"] = sum(1 for ln in content.splitlines() if ln.strip())
        if f["file_type"] == "parquet":  # pre-tokenized: its rows, and its tokens (the lengths of input_ids)
            f["_lines"], f["_tokens"] = _parquet_rows_tokens(content)
        f["_processed"] = True

    def _tg_file_begin(self, req: RecordedRequest):
        form = req.body if isinstance(req.body, dict) else {}
        name = form.get("file_name")
        if not name:
            raise _ApiError(400, "file_name is required", param="file_name")
        f = self._tg_new_file(name, form.get("purpose") or "fine-tune", form.get("file_type") or "jsonl", None)
        f["_checksum"] = form.get("checksum")
        f["_token"] = _short(16)
        return 302, _NO_BODY, {"Location": f"{self.root_url}/_upload/{f['id']}?token={f['_token']}",
                               "X-Together-File-Id": f["id"]}

    def _tg_file_put(self, req: RecordedRequest, file_id: str):
        f = self.files.get(file_id)
        if f is None or (req.query.get("token") or [None])[0] != f.get("_token"):
            raise _ApiError(403, "Request has expired or the signature does not match.")
        content = req._raw  # type: ignore[attr-defined]
        if f.get("_checksum"):
            f["_checksum_ok"] = f["_checksum"] in (hashlib.md5(content).hexdigest(),
                                                   hashlib.sha256(content).hexdigest())
        f["_content"], f["bytes"] = content, len(content)
        return 200, _NO_BODY

    _tg_file_put._no_auth = True  # presigned URL: no Authorization header

    def _tg_file_preprocess(self, req: RecordedRequest, file_id: str):
        f = self._tg_file(file_id)
        self._tg_store(f, f["_content"])
        return self._tg_file_wire(f)

    def _tg_file_upload(self, req: RecordedRequest):
        form = req.body if isinstance(req.body, dict) else {}
        up = form.get("file")
        if not isinstance(up, dict):
            raise _ApiError(400, "file is required", param="file")
        f = self._tg_new_file(form.get("file_name") or up["filename"], form.get("purpose") or "fine-tune",
                              form.get("file_type") or "jsonl", up["content"])
        return self._tg_file_wire(f)

    def _tg_file(self, file_id: str) -> dict:
        if file_id not in self.files:
            raise _ApiError(404, f"File {file_id} not found", type_="invalid_request_error", param="id")
        return self.files[file_id]

    def _tg_file_list(self, req: RecordedRequest):
        return {"data": [self._tg_file_wire(f) for f in sorted(self.files.values(), key=lambda f: f["created_at"])
                         if f["_processed"]]}

    def _tg_file_get(self, req: RecordedRequest, file_id: str):
        return self._tg_file_wire(self._tg_file(file_id))

    def _tg_file_delete(self, req: RecordedRequest, file_id: str):
        self._tg_file(file_id)
        del self.files[file_id]
        return {"id": file_id, "deleted": True}

    # models, price

    def _tg_model(self, name: str | None) -> str:
        if not name or name not in self.SUPPORTED_MODELS:
            raise _ApiError(404, f"Model {name} is not available for fine-tuning.", param="model",
                            err_code="model_not_available")
        return name

    def _tg_limits(self, req: RecordedRequest):
        name = self._tg_model((req.query.get("model_name") or [None])[0])
        return {"model_name": name, "max_num_epochs": 20, "max_num_evals": 100, "max_num_checkpoints": 20,
                "max_learning_rate": 1.0, "min_learning_rate": 1e-8, "supports_vision": False,
                "supports_tools": True, "supports_reasoning": False, "merge_output_lora": True,
                "supports_full_training": True, "default_gradient_accumulation_steps": 1,
                "max_seq_length_sft": 16384, "max_seq_length_dpo": 8192, "min_max_seq_length": 512,
                "full_training": {"max_batch_size": 32, "max_batch_size_dpo": 16, "min_batch_size": 8},
                "lora_training": {"max_batch_size": 128, "max_batch_size_dpo": 64, "min_batch_size": 8,
                                  "max_rank": 64, "default_rank": 64,
                                  "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                     "up_proj", "down_proj"]}}

    def _tg_supported(self, req: RecordedRequest):
        return {"models": list(self.SUPPORTED_MODELS)}

    def _tg_price(self, b: dict) -> tuple[float, int]:
        f = self.files.get(b.get("training_file") or "")
        tokens = f["_tokens"] if f and f.get("_tokens") else max(1, (f["bytes"] if f else 0) // 4)
        epochs = int(b.get("n_epochs") or 1)
        lora = (b.get("training_type") or {}).get("type", "Lora") == "Lora"
        per_m = 0.48 if lora else 0.54
        return round(tokens * epochs * per_m / 1e6 + 0.0, 6), tokens

    def _tg_estimate(self, req: RecordedRequest):
        b = req.body if isinstance(req.body, dict) else {}
        if not b.get("training_file"):
            raise _ApiError(400, "training_file is required", param="training_file")
        self._tg_file(b["training_file"])
        price, tokens = self._tg_price(b)
        return {"estimation_available": True, "estimated_total_price": price, "allowed_to_proceed": True,
                "user_limit": 100.0, "estimated_train_token_count": float(tokens * int(b.get("n_epochs") or 1)),
                "estimated_eval_token_count": 0.0}

    # jobs

    def _tg_job_create(self, req: RecordedRequest):
        b = req.body if isinstance(req.body, dict) else {}
        if not b.get("training_file"):
            raise _ApiError(400, "training_file is required", param="training_file")
        model = self._tg_model(b.get("model"))
        tf = self._tg_file(b["training_file"])
        if not tf["_processed"]:
            raise _ApiError(400, f"File {tf['id']} has not been processed yet.", param="training_file")
        if b.get("validation_file"):
            self._tg_file(b["validation_file"])
        suffix = b.get("suffix")
        if suffix is not None and len(suffix) > 40:
            raise _ApiError(400, "suffix must be at most 40 characters", param="suffix")
        limits = self._tg_limits(RecordedRequest("GET", "", {"model_name": [model]}, {}, None))
        ttype = b.get("training_type") or {"type": "Lora", "lora_r": 64, "lora_alpha": 128}
        if ttype.get("type") == "Lora":
            ttype = {**ttype, "lora_r": int(ttype.get("lora_r") or 64), "lora_alpha": int(ttype.get("lora_alpha") or 128)}
        bs = b.get("batch_size", "max")
        if bs == "max":
            bs = limits["lora_training" if ttype.get("type") == "Lora" else "full_training"]["max_batch_size"]
        now = time.time()
        jid = f"ft-{uuid.uuid4()}"
        short = jid[3:11]
        out_name = f"{self.together_user}/{model.split('/')[-1]}" + (f"-{suffix}" if suffix else "") + f"-{short}"
        failure = self._job_failures.pop(0) if self._job_failures else None
        price, tokens = self._tg_price(b)
        method = b.get("training_method") or {"method": "sft", "train_on_inputs": "auto"}
        job = {"id": jid, "model": model, "training_file": tf["id"], "validation_file": b.get("validation_file"),
               "suffix": suffix, "model_output_name": out_name, "created_at": now, "updated_at": now,
               "started_at": None, "n_epochs": int(b.get("n_epochs") or 1), "n_checkpoints": int(b.get("n_checkpoints") or 1),
               "n_evals": int(b.get("n_evals") or 0), "batch_size": int(bs),
               "learning_rate": float(b.get("learning_rate") or 1e-5),
               "lr_scheduler": b.get("lr_scheduler") or {"lr_scheduler_type": "linear",
                                                        "lr_scheduler_args": {"min_lr_ratio": 0.0}},
               "warmup_ratio": float(b.get("warmup_ratio") or 0.0), "max_grad_norm": float(b.get("max_grad_norm", 1.0)),
               "weight_decay": float(b.get("weight_decay") or 0.0), "training_method": method,
               "training_type": ttype, "random_seed": b.get("random_seed"), "packing": b.get("packing", True),
               "max_seq_length": b.get("max_seq_length"), "wandb_project_name": b.get("wandb_project_name"),
               "from_checkpoint": b.get("from_checkpoint"), "token_count": tokens,
               "total_price": int(round(price * 1e9)),  # spec: integer (nano-dollars in the real API)
               "param_count": 8_030_261_248, "epochs_completed": 0, "_state": "pending", "_phase": 0, "_t0": now,
               "_events": [], "_checkpoints": [], "_failure": failure, "_step": 0}
        self.jobs[jid] = job
        self._tg_event(job, "job_pending", "Fine tune request created")
        return self._tg_truncated(job)

    def _tg_event(self, job: dict, type_: str, message: str, *, level: str = "info", step: int = 0,
                  checkpoint_path: str = "", model_path: str = "") -> None:
        job["_events"].append({
            "object": "fine-tune-event", "created_at": _iso(time.time()), "level": level, "message": message,
            "type": type_, "param_count": job["param_count"], "token_count": job["token_count"],
            "total_steps": self.running_steps, "wandb_url": "", "step": step, "checkpoint_path": checkpoint_path,
            "model_path": model_path, "training_offset": 0, "hash": _short(16), "_seq": next(self._clock)})
        job["updated_at"] = time.time()

    def _together_step(self, job: dict) -> None:
        st, fail = job["_state"], job["_failure"]
        if st == "pending":
            job["_state"] = "queued"
            self._tg_event(job, "job_pending", "Job queued")
        elif st == "queued":
            job["_state"], job["started_at"] = "running", time.time()
            self._tg_event(job, "job_start", "Job started")
            self._tg_event(job, "training_start", "Training started")
        elif st == "running":
            if job["_step"] < self.running_steps:
                job["_step"] += 1
                s = job["_step"]
                loss = round(2.0 / (1 + s), 4)
                self._tg_event(job, "epoch_complete" if s == self.running_steps else "checkpoint_save",
                               f"Step {s}/{self.running_steps}: loss {loss}", step=s,
                               checkpoint_path=f"s3://emulator/{job['id']}/checkpoint-{s}")
                job["_checkpoints"].append({"step": s, "path": f"{job['id']}:{s}", "created_at": _iso(time.time()),
                                            "checkpoint_type": "Intermediate", "_seq": next(self._clock)})
                job["epochs_completed"] = min(job["n_epochs"], s)
                return
            if fail:
                job["_state"] = fail["together_status"]
                self._tg_event(job, "job_error", fail["message"], level="error")
                return
            job["_state"] = "compressing"
            self._tg_event(job, "training_complete", "Training completed")
            self._tg_event(job, "model_compressing", "Compressing output model")
        elif st == "compressing":
            job["_state"] = "uploading"
            self._tg_event(job, "model_compression_complete", "Model compression complete")
            self._tg_event(job, "model_uploading", "Uploading output model")
        elif st == "uploading":
            job["_state"] = "completed"
            job["epochs_completed"] = job["n_epochs"]
            self._tg_event(job, "model_upload_complete", "Model upload complete",
                           model_path=f"s3://emulator/{job['id']}/final")
            self._tg_event(job, "job_complete", f"Job finished. Model name: {job['model_output_name']}")
            job["_checkpoints"].append({"step": job["_step"], "path": job["model_output_name"],
                                        "created_at": _iso(time.time()), "checkpoint_type": "Final Merged",
                                        "_seq": next(self._clock)})
            job["_checkpoints"].append({"step": job["_step"], "path": job["model_output_name"] + "_adapter",
                                        "created_at": _iso(time.time()), "checkpoint_type": "Final Adapter",
                                        "_seq": next(self._clock)})
        elif st == "cancel_requested":
            job["_state"] = "cancelled"
            self._tg_event(job, "job_stopped", "Job cancelled")

    _TG_COMMON = ("id", "training_file", "validation_file", "model", "model_output_name", "n_epochs",
                  "n_checkpoints", "n_evals", "batch_size", "learning_rate", "lr_scheduler", "warmup_ratio",
                  "max_grad_norm", "weight_decay", "training_method", "training_type", "token_count",
                  "total_price", "wandb_project_name", "from_checkpoint")

    def _tg_base(self, job: dict) -> dict:
        out = {k: copy.deepcopy(job[k]) for k in self._TG_COMMON if job.get(k) is not None}
        out["status"] = job["_state"]
        out["created_at"] = _iso(job["created_at"])
        out["updated_at"] = _iso(job["updated_at"])
        if job["started_at"]:
            out["started_at"] = _iso(job["started_at"])
        out["events"] = [{k: v for k, v in e.items() if k != "_seq"} for e in job["_events"]]
        return out

    def _tg_truncated(self, job: dict) -> dict:
        out = self._tg_base(job)
        out.update({"user_id": self.together_user, "owner_address": "0x" + "0" * 40,
                    "packing": job["packing"], "random_seed": job["random_seed"]})
        if job["suffix"] is not None:
            out["suffix"] = job["suffix"]
        if job["max_seq_length"] is not None:
            out["max_seq_length"] = job["max_seq_length"]
        return out

    def _tg_job_wire(self, job: dict) -> dict:
        out = self._tg_base(job)
        out.update({"job_id": job["id"], "param_count": job["param_count"], "epochs_completed": job["epochs_completed"],
                    "queue_depth": 0 if job["_state"] != "queued" else 1,
                    "trainingfile_numlines": self.files[job["training_file"]]["_lines"]
                    if job["training_file"] in self.files else 0,
                    "trainingfile_size": self.files[job["training_file"]]["bytes"]
                    if job["training_file"] in self.files else 0,
                    "train_on_inputs": job["training_method"].get("train_on_inputs", "auto")
                    if job["training_method"].get("method") == "sft" else "auto"})
        if job["suffix"] is not None:
            out["suffix"] = job["suffix"]
        return out

    def _tg_job(self, job_id: str) -> dict:
        if job_id not in self.jobs:
            raise _ApiError(404, f"Fine-tune job {job_id} not found", param="id")
        return self.jobs[job_id]

    def _tg_job_get(self, req: RecordedRequest, job_id: str):
        job = self._tg_job(job_id)
        self._tick(job, poll=True)
        return self._tg_job_wire(job)

    def _tg_job_list(self, req: RecordedRequest):
        jobs = sorted(self.jobs.values(), key=lambda j: j["created_at"], reverse=True)
        for j in jobs:
            self._tick(j)
        return {"data": [self._tg_truncated(j) for j in jobs]}

    def _tg_job_events(self, req: RecordedRequest, job_id: str):
        job = self._tg_job(job_id)
        self._tick(job)
        return {"data": [{k: v for k, v in e.items() if k != "_seq"} for e in job["_events"]]}

    def _tg_job_checkpoints(self, req: RecordedRequest, job_id: str):
        job = self._tg_job(job_id)
        self._tick(job)
        cps = sorted(job["_checkpoints"], key=lambda c: c["_seq"], reverse=True)
        return {"data": [{k: v for k, v in c.items() if k != "_seq"} for c in cps]}

    def _tg_download(self, req: RecordedRequest):
        """The compressed model or checkpoint of a job (deterministic bytes, ~256 KiB, or the
        ``model_archive`` a test set)."""
        ft_id = (req.query.get("ft_id") or [None])[0]
        if not ft_id:
            raise _ApiError(400, "ft_id is required", param="ft_id")
        job = self._tg_job(ft_id)
        step = (req.query.get("checkpoint_step") or [None])[0]
        kind = (req.query.get("checkpoint") or [None])[0]
        if step is None and kind not in ("merged", "adapter", "model_output_path"):
            raise _ApiError(400, "checkpoint is required if checkpoint_step is not set", param="checkpoint")
        if step is not None:
            if not any(str(c["step"]) == str(step) for c in job["_checkpoints"]):
                raise _ApiError(404, f"no checkpoint at step {step} for {ft_id}", param="checkpoint_step")
        elif job["_state"] != "completed":
            raise _ApiError(400, f"Job {ft_id} is {job['_state']}; the model can be downloaded once it completed.")
        head = f"ftc-emulator archive {ft_id} {kind or ''} {step or ''}\n".encode()
        block = hashlib.sha256(head).digest() * 8192  # 256 KiB, deterministic
        if self.model_archive is not None:  # a real model archive a test made
            head, block = b"", self.model_archive
        return 200, _Binary(head + block), {"Content-Disposition": f'attachment; filename="{ft_id}.tar.zst"'}

    def _tg_job_cancel(self, req: RecordedRequest, job_id: str):
        job = self._tg_job(job_id)
        if self._terminal(job):
            raise _ApiError(400, f"Job {job_id} is already {job['_state']} and cannot be cancelled.", param="id")
        if job["_state"] != "cancel_requested":
            job["_state"] = "cancel_requested"
            self._tg_event(job, "cancel_requested", "Cancel requested")
        return self._tg_truncated(job)

    def _tg_chat(self, req: RecordedRequest):
        b = req.body if isinstance(req.body, dict) else {}
        model, messages = b.get("model"), b.get("messages")
        if not model:
            raise _ApiError(400, "model is required", param="model")
        if not isinstance(messages, list) or not messages:
            raise _ApiError(400, "messages is required", param="messages")
        if b.get("stream"):
            raise _ApiError(400, "The emulator does not stream.", param="stream")
        known = set(self.SUPPORTED_MODELS) | {j["model_output_name"] for j in self.jobs.values()
                                              if j["_state"] == "completed"}
        if model not in known:
            raise _ApiError(404, f"Unable to access model {model}. Please visit https://api.together.ai/models to "
                                 "view the list of supported models.", err_code="model_not_available")
        text = self._reply_text(messages, model)
        pt = sum(self._tokens(m.get("content") or "") for m in messages)
        ct = self._tokens(text)
        return {"id": _short(16), "object": "chat.completion", "created": _now(), "model": model, "prompt": [],
                "choices": [{"index": 0, "finish_reason": "eos", "seed": 42, "logprobs": None,
                             "message": {"role": "assistant", "content": text, "tool_calls": []}}],
                "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}}
