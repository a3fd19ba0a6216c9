"""A fake hosted backend for the job tests: the whole Backend protocol, offline.

Its "provider" keeps its state in a JSON file (``state_path``), locked with flock, so
that the provider's jobs survive the processes that talk to it: a test can kill -9 a
process in the middle of a submission and check, from another process, that resuming
never created a second job.

It performs only the provider calls of a submission (``upload_file``, ``file_state``,
``provider_quote``, ``create_job``, ``find_by_client_token``); the write-ahead log around
them is the core's own (``ftclient.jobs.create_once``), so the crash tests exercise the
code every backend runs.

Controls (constructor keyword arguments):

* ``block_at``: ``"upload"`` (upload request sent, the provider has not stored the file),
  ``"after_create"`` (the provider created the job, no answer recorded yet) or
  ``"watch"`` (the second status request): the process writes ``<marker_dir>/<point>``
  and then sleeps forever, for the test to kill it.
* ``steps``: training steps; each ``status`` call moves a job one phase on
  (validating_files, queued, running x steps, succeeded).
* ``fail_reason``: jobs end failed with this provider message.
* ``quote``: the provider's own price, passed to ``confirm`` before creating.
* ``bad_lines``: validation problems as ``[(line, code, message)]``.
* ``estimate_usd``: ftc's offline estimate.
* ``status_delay``: seconds each status request takes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from ftclient.backends import Checkpoint, JobEvent, JobState, JobStatus, to_datetime
from ftclient.submission import BackendBase

NETWORK = ("upload", "file_state", "create", "find_by_client_token", "status", "events", "checkpoints", "cancel", "result", "chat",
           "estimate_price")
SECRET = "sk-" "fake-SECRET-0123456789abcdef0123"


class FakeBackend(BackendBase):
    name = "fake"
    uploads_files = True
    reconcile_attempts = 1  # its job list never lags: one listing is an answer

    def __init__(self, *, state_path: str | os.PathLike | None = None, on_retry=None, block_at: str | None = None,
                 marker_dir: str | os.PathLike | None = None, steps: int = 3, fail_reason: str | None = None,
                 quote: float | None = None, bad_lines=None, estimate_usd: float = 1.25, status_delay: float = 0.0,
                 warnings=None):
        self.state_path = Path(state_path or os.environ["FAKE_PROVIDER_STATE"])
        self.on_retry = on_retry
        self.block_at = block_at
        self.marker_dir = Path(marker_dir) if marker_dir else self.state_path.parent
        self.steps = steps
        self.fail_reason = fail_reason
        self.quote = quote
        self.bad_lines = bad_lines or []
        self.estimate_usd = estimate_usd
        self.status_delay = status_delay
        self.warnings = list(warnings or [])

    # -- the provider's state ------------------------------------------------------------------

    @contextlib.contextmanager
    def _state(self):
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        with open(str(self.state_path) + ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                try:
                    data = json.loads(self.state_path.read_text())
                except (FileNotFoundError, ValueError):
                    data = {"files": {}, "jobs": {}, "calls": [], "seq": 0}
                yield data
                tmp = self.state_path.with_suffix(".tmp")
                tmp.write_text(json.dumps(data))
                os.replace(tmp, self.state_path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _call(self, name: str, **info: Any) -> None:
        with self._state() as s:
            s["calls"].append({"call": name, "pid": os.getpid(), **info})

    def _block(self, point: str) -> None:
        if self.block_at == point:
            self.marker_dir.mkdir(parents=True, exist_ok=True)
            (self.marker_dir / point).write_text(str(os.getpid()))
            while True:
                time.sleep(60)

    @staticmethod
    def provider_state(state_path) -> dict:
        try:
            return json.loads(Path(state_path).read_text())
        except FileNotFoundError:
            return {"files": {}, "jobs": {}, "calls": [], "seq": 0}

    def _phases(self) -> list[str]:
        return ["validating_files", "queued"] + ["running"] * self.steps + ["failed" if self.fail_reason else "succeeded"]

    # -- offline --------------------------------------------------------------------------------

    def preflight(self, spec, *, today=None):
        return list(self.warnings)

    def validate(self, spec, data_path):
        from ftclient.validation.common import ValidationResult

        n = sum(1 for line in open(data_path, encoding="utf-8") if line.strip())
        res = ValidationResult(path=str(data_path), provider=self.name, model=spec.model_for(self.name),
                               method=spec.method, examples=n, lines=n)
        for ln, code, msg in self.bad_lines:
            res.findings.error(ln, code, msg)
        return res

    def estimate(self, spec):
        from ftclient.cost import CostEstimate

        epochs = spec.hyperparameters.epochs
        n = sum(1 for line in open(spec.data.train, encoding="utf-8") if line.strip())
        return CostEstimate(
            model=f"{self.name}:{spec.model_for(self.name)}", provider=self.name, kind="hosted", method=spec.method,
            adapter=spec.adapter, examples=n, tokens_per_epoch=12345 // epochs, epochs=epochs, epochs_basis="given",
            billed_tokens=12345, cost_usd=self.estimate_usd, cost_before_minimum_usd=self.estimate_usd,
            min_charge_usd=0.0, min_charge_applied=False, token_count_basis="the fake backend's fixed count",
            token_count_exact=True, cost_exact=True, cost_basis="the fake backend's estimate_usd", price={})

    # -- the provider calls of a submission (the core's create_once records them) ------------

    def upload_file(self, path, purpose):
        self._block("upload")
        content = Path(path).read_bytes()
        return self._upload(hashlib.sha256(content).hexdigest(), len(content))

    def file_state(self, file_id):
        with self._state() as s:
            s["calls"].append({"call": "file_state", "pid": os.getpid()})
            return "processed" if file_id in s["files"] else "missing"

    def provider_quote(self, spec, *, training_file):
        if self.quote is None:
            return None
        self._call("estimate_price")
        return {"estimated_total_price": self.quote, "allowed_to_proceed": True}

    def create_job(self, spec, *, training_file, validation_file, client_token, job):
        pid = self._create(client_token, training_file, spec.model_for(self.name))
        self._block("after_create")
        return {"id": pid}

    def _upload(self, sha: str, n: int) -> str:
        with self._state() as s:
            s["calls"].append({"call": "upload", "pid": os.getpid()})
            s["seq"] += 1
            fid = f"file-{s['seq']}"
            s["files"][fid] = {"sha256": sha, "bytes": n}
            return fid

    def _create(self, token: str, file_id: str, model: str) -> str:
        with self._state() as s:
            s["calls"].append({"call": "create", "pid": os.getpid(), "token": token})
            s["seq"] += 1
            pid = f"fakejob-{s['seq']}"
            s["jobs"][pid] = {"client_token": token, "training_file": file_id, "model": model, "polls": 0,
                              "phase": "validating_files", "events": [], "cancelled": False,
                              "fail": self.fail_reason}
            self._event(s["jobs"][pid], "info", "job created", {})
            return pid

    @staticmethod
    def _event(j: dict, level: str, message: str, data: dict) -> None:
        j["events"].append({"id": f"ev-{len(j['events']) + 1}", "created_at": 1_700_000_000 + len(j["events"]),
                            "level": level, "message": message, "data": data})

    # -- queries ----------------------------------------------------------------------------------

    def find_by_client_token(self, client_token, *, since=None):
        with self._state() as s:
            s["calls"].append({"call": "find_by_client_token", "pid": os.getpid()})
            for pid, j in s["jobs"].items():
                if j["client_token"] == client_token:
                    return pid
        return None

    def status(self, provider_job_id):
        if self.status_delay:
            time.sleep(self.status_delay)
        with self._state() as s:
            s["calls"].append({"call": "status", "pid": os.getpid()})
            j = s["jobs"][provider_job_id]
            polls = j["polls"]
        if polls == 1:
            self._block("watch")
        with self._state() as s:
            j = s["jobs"][provider_job_id]
            phases = self._phases()
            j["polls"] += 1
            if j["cancelled"]:
                phase, step = "cancelled", None
            else:
                i = min(j["polls"] - 1, len(phases) - 1)
                phase = phases[i]
                step = max(0, min(self.steps, i - 1)) if i >= 2 else None
            if phase != j["phase"]:
                self._event(j, "error" if phase == "failed" else "info", f"state: {phase}", {})
                j["phase"] = phase
            loss = None
            if phase == "running":
                loss = round(2.0 / (step or 1), 3)
                self._event(j, "info", f"step {step}/{self.steps}: loss {loss}", {"step": step, "train_loss": loss})
            model = f"ft:{j['model']}:{provider_job_id}" if phase == "succeeded" else None
        error = None
        if phase == "failed":
            error = j["fail"]
        state = {"validating_files": JobState.VALIDATING_FILES, "queued": JobState.QUEUED, "running": JobState.RUNNING,
                 "succeeded": JobState.SUCCEEDED, "failed": JobState.FAILED, "cancelled": JobState.CANCELLED}[phase]
        return JobStatus(state, provider_state=phase, fine_tuned_model=model, error=error,
                         step=step if phase == "running" else (self.steps if phase == "succeeded" else None),
                         total_steps=self.steps, loss=loss, eta_seconds=30.0 if phase == "running" else None,
                         cost_so_far_usd=0.1 * (step or 0))

    def events(self, provider_job_id, after=None):
        with self._state() as s:
            s["calls"].append({"call": "events", "pid": os.getpid(), "after": after})
            evs = list(s["jobs"][provider_job_id]["events"])
        if after:
            ids = [e["id"] for e in evs]
            evs = evs[ids.index(after) + 1:] if after in ids else evs
        return [JobEvent(e["id"], to_datetime(e["created_at"]), e["level"], e["message"], e["data"]) for e in evs]

    def checkpoints(self, provider_job_id):
        self._call("checkpoints")
        return [Checkpoint(f"ckpt-{i}", step=i, model_ref=f"ft:ckpt:{provider_job_id}:{i}") for i in range(1, self.steps + 1)]

    def cancel(self, provider_job_id):
        with self._state() as s:
            s["calls"].append({"call": "cancel", "pid": os.getpid()})
            s["jobs"][provider_job_id]["cancelled"] = True
        return JobStatus(JobState.CANCELLED, provider_state="cancelled")

    def result(self, provider_job_id):
        self._call("result")
        with self._state() as s:
            j = s["jobs"][provider_job_id]
            return f"ft:{j['model']}:{provider_job_id}" if j["phase"] == "succeeded" else None

    def chat(self, model, messages, **kw):
        self._call("chat", model=model)
        return f"echo from {model}: {messages[-1]['content']}"


def network_calls(state_path) -> list[dict]:
    return [c for c in FakeBackend.provider_state(state_path)["calls"] if c["call"] in NETWORK]


def write_spec(directory, *, name: str = "fake-job", budget: float | None = None, rows: int = 6) -> Path:
    """A small ChatML training file and a job spec that points at it; returns the spec's path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    data = d / "train.jsonl"
    with open(data, "w", encoding="utf-8") as f:
        for i in range(rows):
            f.write(json.dumps({"messages": [{"role": "user", "content": f"question {i}"},
                                             {"role": "assistant", "content": f"answer {i}"}]}) + "\n")
    spec = d / "job.yaml"
    lines = [f"name: {name}", "base_model: fake-base", "data:", "  train: train.jsonl", "hyperparameters:", "  epochs: 2"]
    if budget is not None:
        lines.append(f"budget_usd: {budget}")
    spec.write_text("\n".join(lines) + "\n")
    return spec


def register(state_path, **kw) -> None:
    """Register FakeBackend as ``fake`` in this process, with these controls."""
    from ftclient.backends import register_backend

    register_backend("fake", lambda **extra: FakeBackend(state_path=state_path, **{**kw, **extra}), replace=True)


# ------------------------------------------------------------------ pytest fixtures
# Imported by the test modules that drive jobs through this fake backend.
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """FTC_HOME in tmp_path, instant polling, and the backend registry restored afterwards."""
    from ftclient import backends as B
    from ftclient import jobs as J

    before = dict(B._REGISTERED)
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(J, "DEFAULT_POLL", J.PollPolicy(initial=0, max_interval=0, sleep=lambda s: None))
    yield tmp_path / "home"
    B._REGISTERED.clear()
    B._REGISTERED.update(before)


@pytest.fixture
def prov(tmp_path):
    """The fake provider's state file; ``register(prov, ...)`` sets the controls."""
    return tmp_path / "provider.json"


@pytest.fixture
def spec(tmp_path):
    return write_spec(tmp_path / "job")
