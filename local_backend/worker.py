"""The local training worker: ``python -m ftclient.local_backend.worker <job_dir>``.

Started by :class:`ftclient.local_backend.backend.LocalBackend` in its own session (so a
Ctrl-C on ``ftc`` never stops training), with stdout/stderr appended to
``<job_dir>/train.log``. It reads ``<job_dir>/spec.json``, runs
``train(spec, output_dir=<job_dir>/output, resume=<a checkpoint exists>)`` and reports
through files in the job directory, each written atomically:

* ``progress.json`` -- every step: state, step, total_steps, loss, tokens_per_s,
  eta_seconds, started_at, updated_at, pid (and ``error`` once it failed);
* ``events.jsonl`` -- one JSON object per line, appended;
* ``result.json`` -- on success: the adapter directory, final loss, wall time.

SIGTERM stops training after the current step, saves a checkpoint there and ends the
job ``cancelled``. Only one worker runs per job directory: the first thing a worker does
is take an exclusive ``flock`` on ``<job_dir>/worker.lock`` (held until it exits, released
by the kernel even on kill -9); a second worker exits at once with code 3.

torch/transformers are imported only after the lock is held.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SPEC_FILE = "spec.json"
PROGRESS_FILE = "progress.json"
EVENTS_FILE = "events.jsonl"
RESULT_FILE = "result.json"
WORKER_FILE = "worker.json"
LOCK_FILE = "worker.lock"
CANCEL_FILE = "cancel.requested"
LOG_FILE = "train.log"
OUTPUT_DIR = "output"

EXIT_LOCKED = 3
"""Exit code of a worker that found another worker on the same job directory."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def write_json(path: Path, data: Any, *, sync: bool = True) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temp file + rename); ``sync=False``
    skips the fsync (progress.json, written every step: a kill never leaves it torn)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, default=str)
        if sync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def append_event(job_dir: Path, message: str, *, level: str = "info", **data: Any) -> None:
    """Append one event line (a single ``write`` on an O_APPEND file: lines never interleave)."""
    line = json.dumps({"created_at": now_iso(), "level": level, "message": message, "data": data},
                      default=str) + "\n"
    fd = os.open(job_dir / EVENTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def try_lock(job_dir: Path) -> int | None:
    """An fd holding the exclusive worker lock of ``job_dir``, or None when another process holds it."""
    import fcntl

    fd = os.open(job_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def last_checkpoint_step(output_dir: Path) -> int | None:
    steps = []
    if output_dir.is_dir():
        for p in output_dir.glob("checkpoint-*"):
            tail = p.name.rsplit("-", 1)[-1]
            if p.is_dir() and tail.isdigit():
                steps.append(int(tail))
    return max(steps) if steps else None


class Reporter:
    """Writes progress.json and events.jsonl for one worker session."""

    def __init__(self, job_dir: Path):
        self.job_dir = job_dir
        old = read_json(job_dir / PROGRESS_FILE) or {}
        self.progress: dict[str, Any] = {
            "state": "queued", "step": old.get("step"), "total_steps": old.get("total_steps"),
            "loss": old.get("loss"), "tokens_per_s": None, "eta_seconds": None,
            "started_at": old.get("started_at") or now_iso(), "session_started_at": now_iso(),
            "updated_at": now_iso(), "pid": os.getpid(), "error": None,
        }
        self.stop_requested = False

    def update(self, **fields: Any) -> None:
        self.progress.update(fields, updated_at=now_iso())
        final = self.progress.get("state") in ("succeeded", "failed", "cancelled")
        write_json(self.job_dir / PROGRESS_FILE, self.progress, sync=final)

    def event(self, message: str, **kw: Any) -> None:
        append_event(self.job_dir, message, **kw)


def make_callback(rep: Reporter):
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def __init__(self) -> None:
            self.t0 = time.monotonic()
            self.first_step: int | None = None
            self.tokens0 = 0

        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.monotonic()
            self.first_step = state.global_step
            self.tokens0 = int(state.num_input_tokens_seen or 0)
            rep.update(state="running", step=state.global_step, total_steps=state.max_steps)
            if state.global_step:
                rep.event(f"training resumed at step {state.global_step}/{state.max_steps}",
                          step=state.global_step, total_steps=state.max_steps, type="resumed")
            else:
                rep.event(f"training started: {state.max_steps} steps", step=0, total_steps=state.max_steps,
                          type="started")
            return self._maybe_stop(control)

        def _maybe_stop(self, control):
            if rep.stop_requested:
                control.should_training_stop = True
            return control

        def on_step_end(self, args, state, control, **kw):
            elapsed = time.monotonic() - self.t0
            done = state.global_step - (self.first_step or 0)
            tokens = int(state.num_input_tokens_seen or 0) - self.tokens0
            eta = (state.max_steps - state.global_step) * elapsed / done if done > 0 else None
            loss = next((h["loss"] for h in reversed(state.log_history) if "loss" in h), rep.progress.get("loss"))
            rep.update(state="running", step=state.global_step, total_steps=state.max_steps, loss=loss,
                       tokens_per_s=tokens / elapsed if elapsed > 0 else None, eta_seconds=eta,
                       tokens_seen=int(state.num_input_tokens_seen or 0))
            return self._maybe_stop(control)

        def on_log(self, args, state, control, logs=None, **kw):
            logs = dict(logs or {})
            if "loss" in logs:
                rep.event(f"step {state.global_step}/{state.max_steps}: loss {logs['loss']:.4f}", type="metrics",
                          step=state.global_step, total_steps=state.max_steps,
                          **{k: v for k, v in logs.items() if isinstance(v, (int, float))})
            elif "eval_loss" in logs:
                rep.event(f"step {state.global_step}: eval loss {logs['eval_loss']:.4f}", type="eval",
                          step=state.global_step, eval_loss=logs["eval_loss"])
            return control

        def on_save(self, args, state, control, **kw):
            rep.event(f"checkpoint saved at step {state.global_step}", type="checkpoint", step=state.global_step,
                      path=str(Path(args.output_dir) / f"checkpoint-{state.global_step}"))
            return control

    return ProgressCallback()


def run(job_dir: Path) -> int:
    job_dir = Path(job_dir)
    lock = try_lock(job_dir)
    deadline = time.monotonic() + 2.0  # status() probes the lock for an instant now and then
    while lock is None and time.monotonic() < deadline:
        time.sleep(0.05)
        lock = try_lock(job_dir)
    if lock is None:
        print(f"{now_iso()} another worker holds {job_dir / LOCK_FILE}; exiting", flush=True)
        return EXIT_LOCKED
    os.write(lock, f"{os.getpid()}\n".encode())
    rep = Reporter(job_dir)
    if (job_dir / CANCEL_FILE).exists():
        rep.update(state="cancelled", error=None)
        rep.event("cancelled before training started", type="cancelled")
        return 0

    def on_term(signum, frame):
        rep.stop_requested = True
        print(f"{now_iso()} SIGTERM: stopping after this step (a checkpoint is saved)", flush=True)
        if rep.progress.get("state") != "running":  # not in the training loop yet: nothing to save
            rep.update(state="cancelled")
            rep.event("cancelled before training started", type="cancelled")
            os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    rep.update(state="queued")
    output = job_dir / OUTPUT_DIR
    t0 = time.monotonic()
    try:
        from ftclient.spec import parse_spec

        from .models import quiet_offline_libraries
        from .train import is_oom, oom_error, train

        quiet_offline_libraries()
        spec = parse_spec(read_json(job_dir / SPEC_FILE) or {}, source=str(job_dir / SPEC_FILE))
        ckpt = last_checkpoint_step(output)
        print(f"{now_iso()} worker {os.getpid()} starting" +
              (f", resuming from checkpoint-{ckpt}" if ckpt is not None else ""), flush=True)
        try:
            res = train(spec, output_dir=output, resume=ckpt is not None, callbacks=[make_callback(rep)])
        except Exception as e:
            if is_oom(e):
                from .train import make_plan

                raise oom_error(make_plan(spec)) from e
            raise
    except BaseException as e:
        from ftclient.errors import FtcError

        traceback.print_exc()
        if isinstance(e, FtcError):
            msg = e.message + (f" -- {e.hint}" if getattr(e, "hint", None) else "")
        else:
            msg = f"{type(e).__name__}: {e}"
        rep.update(state="failed", error=msg)
        rep.event(f"training failed: {msg}", level="error", type="failed")
        return 1
    wall = time.monotonic() - t0
    if not res.completed:
        rep.update(state="cancelled", step=res.steps)
        rep.event(f"cancelled at step {res.steps}/{res.max_steps}; checkpoint "
                  f"{res.last_checkpoint.name if res.last_checkpoint else '(none)'} kept", type="cancelled",
                  step=res.steps)
        return 0
    started = rep.progress.get("started_at")
    total_wall = None
    if started:
        total_wall = (datetime.now(timezone.utc) - datetime.fromisoformat(started)).total_seconds()
    write_json(job_dir / RESULT_FILE, {
        "adapter_dir": str(res.model_dir), "model_dir": str(res.model_dir),
        "merged_dir": str(res.merged_dir) if res.merged_dir else None,
        "final_loss": res.final_loss, "train_loss": res.train_loss, "eval_loss": res.eval_loss,
        "steps": res.steps, "tokens_seen": res.tokens_seen, "wall_s": wall, "total_wall_s": total_wall,
        "resumed_from": str(res.resumed_from) if res.resumed_from else None, "finished_at": now_iso(),
    })
    rep.update(state="succeeded", step=res.steps, total_steps=res.max_steps, loss=res.final_loss, eta_seconds=0)
    rep.event(f"training succeeded: {res.steps} steps, final loss "
              f"{res.final_loss if res.final_loss is None else round(res.final_loss, 4)}; adapter in {res.model_dir}",
              type="succeeded", model_dir=str(res.model_dir))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m ftclient.local_backend.worker <job_dir>", file=sys.stderr)
        return 2
    return run(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main())
