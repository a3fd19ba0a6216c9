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

Several processes (``local.gpus > 1``): the worker keeps the lock and the job's final
state, and starts accelerate's launcher (``python -m accelerate.commands.launch
--multi_gpu --num_processes N ... -m ftclient.local_backend.worker --rank <job_dir>``,
rendezvous on a free local port, config in ``accelerate_config.json``) as its child. Rank
0 writes progress and events as above; the ranks stop together (see ``make_stop_sync``);
``ranks/`` holds their pids, rank 0's result and any rank's error. On Linux the launcher
and the ranks get a parent-death signal, so a kill -9 of the worker takes them along and
a restarted worker resumes from the last checkpoint as usual.

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

from ftclient.errors import FtcError

SPEC_FILE = "spec.json"
PROGRESS_FILE = "progress.json"
EVENTS_FILE = "events.jsonl"
RESULT_FILE = "result.json"
WORKER_FILE = "worker.json"
LOCK_FILE = "worker.lock"
CANCEL_FILE = "cancel.requested"
LOG_FILE = "train.log"
OUTPUT_DIR = "output"
MODULE = "ftclient.local_backend.worker"

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


def _error_text(e: BaseException) -> str:
    if isinstance(e, FtcError):
        return e.message + (f" -- {e.hint}" if getattr(e, "hint", None) else "")
    return f"{type(e).__name__}: {e}"


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
    launcher: dict[str, Any] = {}  # set while accelerate's launcher runs the ranks (several processes)

    def on_term(signum, frame):
        rep.stop_requested = True
        if launcher:  # the launch loop in _run_ranks passes the request on to the ranks
            return
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
        from .train import is_oom, make_plan, oom_error, train

        quiet_offline_libraries()
        spec = parse_spec(read_json(job_dir / SPEC_FILE) or {}, source=str(job_dir / SPEC_FILE))
        ckpt = last_checkpoint_step(output)
        print(f"{now_iso()} worker {os.getpid()} starting" +
              (f", resuming from checkpoint-{ckpt}" if ckpt is not None else ""), flush=True)
        plan = make_plan(spec)
        if plan.num_processes > 1:
            return _run_ranks(job_dir, rep, plan, launcher, t0)
        try:
            res = train(spec, output_dir=output, resume=ckpt is not None, callbacks=[make_callback(rep)], plan=plan)
        except Exception as e:
            if is_oom(e):
                raise oom_error(make_plan(spec)) from e
            raise
    except BaseException as e:
        traceback.print_exc()
        msg = _error_text(e)
        rep.update(state="failed", error=msg)
        rep.event(f"training failed: {msg}", level="error", type="failed")
        return 1
    return _finish(job_dir, rep, res.to_dict(), time.monotonic() - t0)


def _finish(job_dir: Path, rep: Reporter, res: dict[str, Any], wall: float) -> int:
    """The job's final state from a ``TrainResult.to_dict()``: cancelled (stopped early,
    checkpoint kept) or succeeded (result.json written)."""
    if not res["completed"]:
        last = res.get("last_checkpoint")
        rep.update(state="cancelled", step=res["steps"])
        rep.event(f"cancelled at step {res['steps']}/{res['max_steps']}; checkpoint "
                  f"{Path(last).name if last else '(none)'} kept", type="cancelled", step=res["steps"])
        return 0
    started = rep.progress.get("started_at")
    total_wall = None
    if started:
        total_wall = (datetime.now(timezone.utc) - datetime.fromisoformat(started)).total_seconds()
    write_json(job_dir / RESULT_FILE, {
        "adapter_dir": str(res["model_dir"]), "model_dir": str(res["model_dir"]),
        "merged_dir": str(res["merged_dir"]) if res.get("merged_dir") else None,
        "final_loss": res["final_loss"], "train_loss": res["train_loss"], "eval_loss": res["eval_loss"],
        "steps": res["steps"], "tokens_seen": res["tokens_seen"], "wall_s": wall, "total_wall_s": total_wall,
        "resumed_from": str(res["resumed_from"]) if res.get("resumed_from") else None, "finished_at": now_iso(),
        **({"processes": res["plan"].get("num_processes")} if (res.get("plan") or {}).get("num_processes", 1) > 1
           else {}),
    })
    final_loss = res["final_loss"]
    rep.update(state="succeeded", step=res["steps"], total_steps=res["max_steps"], loss=final_loss, eta_seconds=0)
    rep.event(f"training succeeded: {res['steps']} steps, final loss "
              f"{final_loss if final_loss is None else round(final_loss, 4)}; adapter in {res['model_dir']}",
              type="succeeded", model_dir=str(res["model_dir"]))
    return 0


# ----------------------------------------------------------------------------- several processes
#
# The worker above holds the job lock and owns the job's final state. With local.gpus > 1
# it starts accelerate's launcher (torchrun underneath) as a child; the launcher starts one
# rank per GPU (or CPU process), each ``python -m ftclient.local_backend.worker --rank
# <job_dir>``. Rank 0 reports progress and events like a single-process worker and leaves
# its TrainResult in ranks/outcome.json; a rank that fails leaves ranks/rank-<n>.error.json.
# A stop request (SIGTERM to the worker) becomes the file stop.requested; every rank looks
# for it after each optimizer step and the ranks agree on it with an all_reduce, so all of
# them stop after the same step and save one checkpoint there.

RANKS_DIR = "ranks"
OUTCOME_FILE = "outcome.json"
STOP_FILE = "stop.requested"
ACCELERATE_CONFIG_FILE = "accelerate_config.json"
WORKER_PID_ENV = "FTC_WORKER_PID"
PARENT_PID_ENV = "FTC_LAUNCHER_PID"


def module_command(python: str, *args: str) -> list[str]:
    """``python -P -m ftclient.local_backend.worker ARGS``: the worker, whatever the current directory.

    ``python -m`` puts the current directory first on ``sys.path``; started from a source
    checkout, its ``ftclient/`` folder (the core alone, without this package) would shadow
    the installed one. ``-P`` (Python 3.11+) leaves the current directory off the path,
    and the environment's ``PYTHONSAFEPATH`` (see :func:`child_env`) does the same for the
    processes accelerate starts."""
    return [python, "-P", "-m", MODULE, *args]


def child_env(base: dict[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment of a process ftc starts: no current directory on its import path
    (``PYTHONSAFEPATH``, inherited by every process it starts in turn)."""
    env = dict(os.environ if base is None else base)
    env["PYTHONSAFEPATH"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    """A TCP port nobody listens on now (the ranks' rendezvous; two jobs never share one)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_config(plan: Any, port: int) -> dict[str, Any]:
    """A complete accelerate config (so a user's own ``accelerate config`` default is not read).

    ``MULTI_GPU`` is accelerate's launcher that runs torchrun; CPU ranks then join a gloo
    process group because the Trainer runs them with ``use_cpu``."""
    return {
        "compute_environment": "LOCAL_MACHINE", "distributed_type": "MULTI_GPU",
        "mixed_precision": {"bf16": "bf16", "fp16": "fp16"}.get(plan.precision, "no"),
        "use_cpu": False, "debug": False, "num_processes": plan.num_processes, "num_machines": 1,
        "machine_rank": 0, "gpu_ids": "all", "main_process_ip": "127.0.0.1", "main_process_port": port,
        "rdzv_backend": "static", "same_network": True, "enable_cpu_affinity": False,
    }


def launch_command(job_dir: Path, plan: Any, port: int, config_file: Path, *, threads: int) -> list[str]:
    """``python -m accelerate.commands.launch ... -m ftclient.local_backend.worker --rank <job_dir>``."""
    cfg = accelerate_config(plan, port)
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config_file),
            "--multi_gpu", "--num_processes", str(plan.num_processes), "--num_machines", "1",
            "--machine_rank", "0", "--main_process_ip", "127.0.0.1", "--main_process_port", str(port),
            "--mixed_precision", cfg["mixed_precision"], "--dynamo_backend", "no",
            "--num_cpu_threads_per_process", str(threads),
            "--module", MODULE, "--rank", str(job_dir)]


def _threads_per_rank(n: int) -> int:
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 1) // max(1, n))


def _pids(job_dir: Path) -> list[int]:
    out = []
    for p in (job_dir / RANKS_DIR).glob("rank-*.pid"):
        try:
            out.append(int(p.read_text().strip()))
        except (OSError, ValueError):
            pass
    return out


def _kill_ranks(job_dir: Path, proc: Any) -> None:
    """SIGKILL the launcher and every rank (before training there is nothing to save)."""
    try:
        proc.kill()
    except ProcessLookupError:  # pragma: no cover
        pass
    proc.wait()
    pids = _pids(job_dir)  # the ranks also die with the launcher (parent-death signal) on Linux
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _exists(p)]
        time.sleep(0.05)


def _exists(pid: int) -> bool:
    from ftclient.store import pid_running  # (a killed process not reaped yet counts as gone)

    return pid_running(pid) is not False


def _run_ranks(job_dir: Path, rep: Reporter, plan: Any, launcher: dict[str, Any], t0: float) -> int:
    """Run the ranks through accelerate's launcher and map their outcome onto the job."""
    import shutil
    import subprocess

    ranks = job_dir / RANKS_DIR
    shutil.rmtree(ranks, ignore_errors=True)
    ranks.mkdir()
    (job_dir / STOP_FILE).unlink(missing_ok=True)
    port = free_port()
    config_file = job_dir / ACCELERATE_CONFIG_FILE
    write_json(config_file, accelerate_config(plan, port))
    threads = _threads_per_rank(plan.num_processes)
    cmd = launch_command(job_dir, plan, port, config_file, threads=threads)
    env = child_env(**{WORKER_PID_ENV: str(os.getpid()), "OMP_NUM_THREADS": str(threads)})
    print(f"{now_iso()} launching {plan.num_processes} training processes ({plan.describe_processes()}), "
          f"rendezvous on 127.0.0.1:{port}: {' '.join(cmd)}", flush=True)
    rep.event(f"launching {plan.num_processes} training processes: {plan.describe_processes()}", type="launched",
              processes=plan.num_processes, distributed=plan.distributed, device=plan.device, port=port)
    launcher["active"] = True
    if rep.stop_requested:  # SIGTERM between the plan and here
        rep.update(state="cancelled")
        rep.event("cancelled before training started", type="cancelled")
        return 0
    # the launcher gets a parent-death signal (via --exec-child): a worker killed with -9 takes its ranks along
    proc = subprocess.Popen(module_command(sys.executable, "--exec-child", "--", *cmd),
                            stdin=subprocess.DEVNULL, env=env, close_fds=True)
    launcher["proc"] = proc
    stop_sent = False
    while proc.poll() is None:
        if rep.stop_requested and not stop_sent:
            stop_sent = True
            state = (read_json(job_dir / PROGRESS_FILE) or {}).get("state")
            if state == "running":
                print(f"{now_iso()} SIGTERM: the {plan.num_processes} training processes stop after this step "
                      "(a checkpoint is saved)", flush=True)
                write_json(job_dir / STOP_FILE, {"requested_at": now_iso()})
            else:  # not in the training loop yet: nothing to save
                print(f"{now_iso()} SIGTERM before training started: stopping the training processes", flush=True)
                _kill_ranks(job_dir, proc)
                rep.progress.update(read_json(job_dir / PROGRESS_FILE) or {}, pid=os.getpid())
                rep.update(state="cancelled")
                rep.event("cancelled before training started", type="cancelled")
                return 0
        time.sleep(0.1)
    rc = proc.returncode
    print(f"{now_iso()} the launcher exited with code {rc}", flush=True)
    rep.progress.update(read_json(job_dir / PROGRESS_FILE) or {}, pid=os.getpid())
    outcome = read_json(ranks / OUTCOME_FILE)
    if outcome is not None:
        return _finish(job_dir, rep, outcome, time.monotonic() - t0)
    errors = [e for e in (read_json(p) for p in ranks.glob("rank-*.error.json")) if e and e.get("error")]
    errors.sort(key=lambda e: (e.get("at") or 0, e.get("rank") or 0))
    if errors:
        msg = errors[0]["error"]
    else:
        msg = (f"the {plan.num_processes} training processes stopped without a result (launcher exit code {rc}); "
               f"see {job_dir / LOG_FILE}")
    rep.update(state="failed", error=msg)
    rep.event(f"training failed: {msg}", level="error", type="failed")
    return 1


def _die_with_parent(expected_parent: int | None) -> None:
    """Linux: have the kernel SIGKILL this process when its parent dies (no orphaned ranks
    after a kill -9 of the worker). Exits at once if the parent is already gone."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
            return
    except (OSError, AttributeError):  # pragma: no cover
        return
    if expected_parent is not None and os.getppid() != expected_parent:
        os._exit(1)


def make_stop_sync(job_dir: Path, stop: dict[str, bool], rank: int):
    """After each optimizer step all ranks agree whether to stop (SIGTERM or stop.requested
    on any rank): an all_reduce(MAX) of one number on the process group's device."""
    import torch
    import torch.distributed as dist
    from transformers import TrainerCallback

    class StopSync(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            if dist.is_available() and dist.is_initialized():
                from accelerate.state import AcceleratorState

                kind = getattr(AcceleratorState().distributed_type, "value", "?")
                model = kw.get("model")
                print(f"{now_iso()} rank {dist.get_rank()}: world size {dist.get_world_size()}, "
                      f"backend {dist.get_backend()}, {kind}, device {args.device}, model {type(model).__name__}, "
                      f"step {state.global_step}/{state.max_steps}", flush=True)
            return control

        def on_step_end(self, args, state, control, **kw):
            wanted = stop["flag"] or (job_dir / STOP_FILE).exists()
            if dist.is_available() and dist.is_initialized():
                t = torch.tensor([1.0 if wanted else 0.0], device=args.device)
                dist.all_reduce(t, op=dist.ReduceOp.MAX)
                wanted = bool(t.item() > 0)
            if wanted and not control.should_training_stop:
                if rank == 0:
                    print(f"{now_iso()} all ranks stop after step {state.global_step} (a checkpoint is saved)",
                          flush=True)
                control.should_training_stop = True
            return control

    return StopSync()


def _use_own_gpu() -> None:
    """On CUDA, make this rank's GPU (LOCAL_RANK) the current device before anything touches
    CUDA, so no rank creates its context on GPU 0."""
    import torch

    local = os.environ.get("LOCAL_RANK", "")
    if local.isdigit() and torch.cuda.is_available() and int(local) < torch.cuda.device_count():
        torch.cuda.set_device(int(local))


def run_rank(job_dir: Path) -> int:
    """One training process of a multi-process run (started by accelerate's launcher)."""
    job_dir = Path(job_dir)
    parent = os.environ.get(PARENT_PID_ENV, "")
    _die_with_parent(int(parent) if parent.isdigit() else None)
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    ranks = job_dir / RANKS_DIR
    ranks.mkdir(exist_ok=True)
    (ranks / f"rank-{rank}.pid").write_text(f"{os.getpid()}\n", encoding="utf-8")
    stop = {"flag": False}

    def on_term(signum, frame):
        stop["flag"] = True  # acted on after the next step, by all ranks together

    signal.signal(signal.SIGTERM, on_term)
    print(f"{now_iso()} rank {rank} of {world} (local rank {os.environ.get('LOCAL_RANK', '?')}), "
          f"pid {os.getpid()}, starting", flush=True)
    try:
        from ftclient.spec import parse_spec

        from .models import quiet_offline_libraries
        from .train import is_oom, make_plan, oom_error, train

        quiet_offline_libraries()
        _use_own_gpu()
        spec = parse_spec(read_json(job_dir / SPEC_FILE) or {}, source=str(job_dir / SPEC_FILE))
        plan = make_plan(spec)
        output = job_dir / OUTPUT_DIR
        ckpt = last_checkpoint_step(output)
        callbacks = [make_stop_sync(job_dir, stop, rank)]
        if rank == 0:
            rep = Reporter(job_dir)
            worker_pid = os.environ.get(WORKER_PID_ENV, "")
            rep.progress["pid"] = int(worker_pid) if worker_pid.isdigit() else os.getpid()
            callbacks.append(make_callback(rep))
        try:
            res = train(spec, output_dir=output, resume=ckpt is not None, callbacks=callbacks, plan=plan)
        except Exception as e:
            if is_oom(e):
                raise oom_error(plan) from e
            raise
    except BaseException as e:
        traceback.print_exc()
        write_json(ranks / f"rank-{rank}.error.json", {"rank": rank, "error": _error_text(e), "at": time.time()})
        return _exit_now(1)
    if rank == 0:
        write_json(ranks / OUTCOME_FILE, res.to_dict())
    print(f"{now_iso()} rank {rank} done: step {res.steps}/{res.max_steps}", flush=True)
    return _exit_now(0)


def _exit_now(code: int) -> int:
    """End a rank without the interpreter's teardown (seconds with torch/transformers loaded);
    everything it writes is already on disk, written atomically."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def exec_child(cmd: list[str]) -> int:
    """Become ``cmd`` (execv) with a parent-death signal set, so it dies with the worker."""
    os.environ[PARENT_PID_ENV] = str(os.getpid())  # the ranks' parent: this pid, after the exec
    _die_with_parent(int(os.environ[WORKER_PID_ENV]) if os.environ.get(WORKER_PID_ENV, "").isdigit() else None)
    os.execv(cmd[0], cmd)
    return 127  # pragma: no cover


USAGE = ("usage: python -m ftclient.local_backend.worker <job_dir>\n"
         "       python -m ftclient.local_backend.worker --rank <job_dir>   (one process of a multi-process run)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--rank":
        return run_rank(Path(argv[1]))
    if len(argv) >= 3 and argv[:2] == ["--exec-child", "--"]:
        return exec_child(argv[2:])
    if len(argv) != 1 or argv[0].startswith("--"):
        print(USAGE, file=sys.stderr)
        return 2
    return run(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main())
