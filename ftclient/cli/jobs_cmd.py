"""``ftc jobs``: list, show, watch, events, checkpoints, cancel and resume fine-tuning jobs.

Also the renderers ``ftc train`` shares: the live watch view and the retry lines.
Exit codes: a job that ended failed or cancelled -> 1 (watch, resume).
"""

from __future__ import annotations

import contextlib
import functools
import time
from typing import Any, Callable, Iterator

import click

from .params import BUDGET

_STATE_STYLE = {
    "pending": "white",
    "validating_files": "cyan",
    "queued": "cyan",
    "running": "blue",
    "succeeded": "bold green",
    "failed": "bold red",
    "cancelled": "yellow",
    "submit_unknown": "magenta",
}


def state_text(state: Any) -> str:
    s = str(getattr(state, "value", state))
    return f"[{_STATE_STYLE.get(s, 'white')}]{_esc(s)}[/]"


def _esc(text: Any) -> str:
    from rich.markup import escape

    from ..secrets import redact

    return escape(redact("" if text is None else str(text)))


@contextlib.contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """SIGTERM (``kill``, a service manager, a container stop) stops like Ctrl-C: the same
    message, the same resume hint, exit 130. Only in the main thread (where signals go)."""
    import signal
    import threading

    if not hasattr(signal, "SIGTERM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old if old is not None else signal.SIG_DFL)


def stops_on_sigterm(f: Callable) -> Callable:
    """Decorator: run the command under :func:`sigterm_as_ctrl_c`."""

    @functools.wraps(f)
    def run(*args: Any, **kwargs: Any) -> Any:
        with sigterm_as_ctrl_c():
            return f(*args, **kwargs)

    return run


def emit(obj: Any) -> None:
    """``--json`` output, with anything shaped like a key redacted (a provider may echo one)."""
    from ..secrets import redact_obj
    from .output import emit_json

    emit_json(redact_obj(obj))


def show_retry(ev: Any) -> None:
    """``on_retry``: one dim line per retry, on stderr."""
    from .output import err

    who = f"{getattr(ev, 'provider', '') or ''} {getattr(ev, 'op', '') or ''}".strip()
    why = getattr(ev, "reason", "")
    wait = getattr(ev, "wait", 0.0) or 0.0
    src = " (as the server asked)" if getattr(ev, "server_wait", False) else ""
    err.print(f"[dim]retry: {_esc(who)}: attempt {ev.attempt}/{ev.max_attempts} failed ({_esc(why)}); "
              f"retrying in {wait:.1f} s{src}[/dim]", highlight=False)


def _fmt_eta(seconds: Any) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _event_line(ev: Any) -> str:
    when = getattr(ev, "created_at", None)
    when = when.isoformat(timespec="seconds") if hasattr(when, "isoformat") else (str(when or "")[:19])
    level = getattr(ev, "level", "info")
    style = {"error": "red", "warning": "yellow", "warn": "yellow"}.get(str(level), "dim")
    return f"[{style}]{_esc(when)} {_esc(level)}[/] {_esc(getattr(ev, 'message', ''))}"


class WatchView:
    """The live view of ``ftc jobs watch`` / ``ftc train``: state, step/total, loss, ETA,
    cost so far and the last events, on stderr. Without a terminal it prints one line per
    state change and per new event instead."""

    def __init__(self, job: Any, *, last_events: int = 6):
        from .output import err

        self.job = job
        self.console = err
        self.live_mode = err.is_terminal
        self.last: list[str] = []
        self.n_events = last_events
        self.status = None
        self.update_info: Any = None
        self.started = time.monotonic()
        self._live = None
        self._last_state = None

    def __enter__(self) -> "WatchView":
        if self.live_mode:
            from rich.live import Live

            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(*exc)

    def __call__(self, u: Any) -> None:
        self.job, self.status, self.update_info = u.job, u.status, u
        lines = [_event_line(e) for e in u.new_events]
        self.last = (self.last + lines)[-self.n_events:]
        if self._live is not None:
            self._live.update(self._render())
            return
        s = u.status
        state = str(getattr(s.state, "value", s.state))
        if state != self._last_state:
            self._last_state = state
            extra = f" ({_esc(s.provider_state)})" if s.provider_state and s.provider_state != state else ""
            self.console.print(f"{self.job.id}: {state_text(state)}{extra}", highlight=False)
        for line in lines:
            self.console.print(f"  {line}", highlight=False)

    def _render(self):
        from rich.console import Group
        from rich.panel import Panel
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        j, s = self.job, self.status
        t = Table.grid(padding=(0, 2))
        t.add_column(style="bold")
        t.add_column()
        t.add_row("job", f"{j.id}  [dim]{_esc(j.backend)} {_esc(j.provider_job_id or '')}[/dim]")
        if s is None:
            t.add_row("state", state_text(j.state))
        else:
            extra = f" [dim]({_esc(s.provider_state)})[/dim]" if s.provider_state and s.provider_state != s.state.value else ""
            t.add_row("state", state_text(s.state) + extra)
            if s.step is not None:
                frac = s.progress
                bar = ProgressBar(total=1.0, completed=frac or 0.0, width=30)
                row = Table.grid(padding=(0, 1))
                row.add_row(bar, f"{s.step if s.step is not None else '?'}/{s.total_steps or '?'}")
                t.add_row("step", row)
            if s.loss is not None:
                t.add_row("loss", f"{s.loss:.4f}")
            if s.eta_seconds is not None and not s.final:
                t.add_row("ETA", _fmt_eta(s.eta_seconds))
            if s.cost_so_far_usd is not None:
                t.add_row("cost so far", f"${s.cost_so_far_usd:,.2f}")
            if s.fine_tuned_model:
                t.add_row("model", _esc(s.fine_tuned_model))
            if s.error:
                t.add_row("[red]error[/red]", _esc(s.error))
        u = self.update_info
        if u is not None:
            nxt = f", next in {u.next_poll_in:.0f} s" if u.next_poll_in else ""
            t.add_row("watching", f"[dim]{_fmt_eta(time.monotonic() - self.started)}, {u.polls} polls{nxt}; Ctrl-C stops watching, not the job[/dim]")
        parts: list[Any] = [t]
        if self.last:
            parts.append("")
            parts.extend(self.last)
        return Panel(Group(*parts), title="fine-tuning", title_align="left", border_style="dim")


def watch_job(job_id: str, *, as_json: bool, on_retry=show_retry) -> int:
    """Watch with the live view; print the outcome; the exit code (1 if failed/cancelled)."""
    from .. import jobs
    from ..store import Store

    with Store() as st:
        job = st.get_job(job_id)
        with WatchView(job) as view:
            status = jobs.watch(job.id, on_update=view, store=st, on_retry=on_retry)
        job = st.get_job(job.id)
    return finish_report(job, status, as_json=as_json)


def finish_report(job: Any, status: Any, *, as_json: bool) -> int:
    from .output import err, out

    code = 0 if job.state == "succeeded" else (1 if job.state in ("failed", "cancelled") else 0)
    if as_json:
        emit({"job": job.to_dict(), "status": status.to_dict() if status is not None else None})
        return code
    if job.state == "succeeded":
        out.print(f"{job.id} [bold green]succeeded[/]: {_esc(job.fine_tuned_model or '(no model id)')}", highlight=False)
        err.print(f"[dim]Try it: ftc chat {job.id} 'your prompt'[/dim]", highlight=False)
    elif job.state == "failed":
        reason = (status.error if status is not None and status.error else None) or job.error or "no reason given"
        err.print(f"[bold red]{job.id} failed at {_esc(job.backend)}:[/] {_esc(reason)}", highlight=False)
    elif job.state == "cancelled":
        err.print(f"{job.id} was [yellow]cancelled[/]", highlight=False)
    else:
        out.print(f"{job.id}: {state_text(job.state)}", highlight=False)
    return code


# --------------------------------------------------------------------------- commands


@click.group()
def jobs() -> None:
    """List, watch and manage fine-tuning jobs (the job store under FTC_HOME).

    \b
    JOB is an ftc job id, a unique prefix of it (or of its random part), or the
    provider's job id.
    """


def _json_option(f):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(f)


@jobs.command("list")
@click.option("--backend", default=None, help="Only this backend's jobs.")
@click.option("--state", "states", multiple=True, help="Only jobs in this state (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@_json_option
def list_cmd(backend, states, limit, as_json) -> None:
    """Jobs in the store, newest first (no network)."""
    from .. import jobs as J
    from ..errors import UsageError
    from ..store import STATES
    from .output import info, out

    bad = [s for s in states if s not in STATES]
    if bad:
        raise UsageError(f"unknown state {bad[0]!r}", hint=f"One of: {', '.join(STATES)}.")
    rows = J.list_jobs(backend=backend, states=list(states) or None, limit=limit)
    if as_json:
        emit([j.to_dict() for j in rows])
        return
    if not rows:
        info("no jobs yet; start one with `ftc train JOB.yaml --backend ...`")
        return
    from rich.table import Table

    t = Table(title="Jobs", title_justify="left")
    for col in ("id", "backend", "state", "model", "fine-tuned model", "created", "estimate"):
        t.add_column(col, no_wrap=col in ("id", "state"))
    for j in rows:
        t.add_row(_esc(j.id), _esc(j.backend), state_text(j.state), _esc(j.model or ""), _esc(j.fine_tuned_model or ""),
                  _esc(j.created_at[:16].replace("T", " ")), f"${j.estimate_usd:,.2f}" if j.estimate_usd is not None else "")
    out.print(t)


@jobs.command("show")
@click.argument("job")
@click.option("--no-refresh", is_flag=True, help="Only what the store knows; no request to the provider.")
@_json_option
def show_cmd(job, no_refresh, as_json) -> None:
    """One job: the store's record, its current status and its last events."""
    from .. import jobs as J
    from .output import out, warn

    view = J.show(job, refresh_status=not no_refresh, on_retry=show_retry)
    if as_json:
        emit(view.to_dict())
        return
    if view.refresh_error:
        warn(f"could not refresh the status: {_esc(view.refresh_error)}", markup=True)
    from rich.table import Table

    j, s = view.job, view.status
    t = Table(title=f"Job {_esc(j.id)}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("backend", _esc(j.backend))
    t.add_row("provider job", _esc(j.provider_job_id or "(not created yet)"))
    t.add_row("state", state_text(j.state) + (f" [dim]({_esc(s.provider_state)})[/dim]" if s is not None and s.provider_state else ""))
    t.add_row("base model", _esc(j.model or ""))
    if j.fine_tuned_model:
        t.add_row("fine-tuned model", _esc(j.fine_tuned_model))
    if s is not None and s.step is not None:
        t.add_row("step", f"{s.step if s.step is not None else '?'}/{s.total_steps or '?'}")
    if s is not None and s.loss is not None:
        t.add_row("loss", f"{s.loss:.4f}")
    if j.estimate_usd is not None:
        t.add_row("estimate", f"${j.estimate_usd:,.2f}")
    t.add_row("created", _esc(j.created_at))
    if j.finished_at:
        t.add_row("finished", _esc(j.finished_at))
    if j.error:
        t.add_row("[red]error[/red]", _esc(j.error))
    open_ops = [o for o in view.operations if o.is_open]
    if open_ops:
        t.add_row("[yellow]unsettled[/yellow]", _esc(", ".join(f"{o.kind} ({o.state})" for o in open_ops))
                  + " - run `ftc jobs resume`")
    out.print(t)
    if view.events:
        out.print("[bold]last events[/bold]")
        for e in view.events:
            out.print("  " + _event_line(e), highlight=False)


@jobs.command("watch")
@click.argument("job")
@_json_option
@click.pass_context
@stops_on_sigterm
def watch_cmd(ctx, job, as_json) -> None:
    """Follow a job live until it ends (Ctrl-C stops watching, not the job).

    Exit 1 when the job ended failed or cancelled.
    """
    ctx.exit(watch_job(job, as_json=as_json))


@jobs.command("events")
@click.argument("job")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the last N events.")
@click.option("--no-refresh", is_flag=True, help="Only the stored events; no request to the provider.")
@_json_option
def events_cmd(job, limit, no_refresh, as_json) -> None:
    """A job's events, oldest first (new ones are fetched and stored)."""
    from .. import jobs as J
    from .output import info, out

    evs = J.events(job, refresh_events=not no_refresh, limit=limit, on_retry=show_retry)
    if as_json:
        emit([e.to_dict() for e in evs])
        return
    if not evs:
        info("no events yet")
    for e in evs:
        out.print(_event_line(e), highlight=False)


@jobs.command("checkpoints")
@click.argument("job")
@_json_option
def checkpoints_cmd(job, as_json) -> None:
    """The checkpoints the provider keeps for a job."""
    from .. import jobs as J
    from .output import info, out

    cps = J.checkpoints(job, on_retry=show_retry)
    if as_json:
        emit([c.to_dict() for c in cps])
        return
    if not cps:
        info("no checkpoints")
        return
    from rich.table import Table

    t = Table(title="Checkpoints", title_justify="left")
    for col in ("id", "step", "model ref", "metrics"):
        t.add_column(col)
    for c in cps:
        metrics = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in (c.metrics or {}).items())
        t.add_row(_esc(c.id), "" if c.step is None else str(c.step), _esc(c.model_ref or ""), _esc(metrics))
    out.print(t)


@jobs.command("download")
@click.argument("job")
@click.option("--checkpoint", type=click.Choice(["adapter", "merged"]), default="adapter", show_default=True,
              help="The LoRA adapter alone, or the base model with the adapter merged in.")
@click.option("--step", type=click.IntRange(min=0), default=None, help="A checkpoint's step instead of the final model.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Where to save it (default: the job's directory under FTC_HOME).")
@_json_option
def download_cmd(job, checkpoint, step, out_path, as_json) -> None:
    """Download a job's model or a checkpoint, where the provider allows it (Together)."""
    from .. import jobs as J
    from ..errors import UsageError
    from .output import out, progress

    if out_path == "":
        raise UsageError("--out is empty", hint="Give a file name, or leave --out out for the default place.")

    with progress(enabled=not as_json) as bar:
        task = bar.add_task(f"downloading {job}", total=None)

        def on_progress(_msg, fraction):
            if fraction is not None:
                bar.update(task, total=1.0, completed=fraction)

        path = J.download(job, out_path, checkpoint=checkpoint, step=step, on_progress=on_progress,
                          on_retry=show_retry)
    size = path.stat().st_size
    if as_json:
        emit({"path": str(path), "bytes": size, "checkpoint": checkpoint, "step": step})
        return
    out.print(f"saved {_esc(path)} ({size:,} bytes)", highlight=False)
    if step is None:
        out.print(f"export it: ftc export {_esc(job)} --format merged|gguf|ollama|vllm --out DIR "
                  "(ftc unpacks the archive)", highlight=False)


@jobs.command("cancel")
@click.argument("job")
@_json_option
def cancel_cmd(job, as_json) -> None:
    """Ask the provider to stop a job (a job never sent is cancelled here)."""
    from .. import jobs as J
    from .output import info, out

    before = None
    from ..store import Store

    with Store() as st:
        before = st.get_job(job)
        after = J.cancel(before.id, store=st, on_retry=show_retry)
    if as_json:
        emit({"job": after.to_dict(), "was": before.state})
        return
    if before.is_final:
        info(f"{before.id} already {before.state}; nothing to cancel")
        return
    if after.state == "cancelled":
        out.print(f"{after.id} [yellow]cancelled[/]", highlight=False)
    else:
        out.print(f"{after.id}: cancel requested; it is {state_text(after.state)}", highlight=False)
        info(f"Follow it with `ftc jobs watch {after.id}`.")


@jobs.command("resume")
@click.argument("job", required=False)
@click.option("--detach", is_flag=True, help="Settle and submit what was left, but do not watch the jobs.")
@click.option("--budget", type=BUDGET, default=None,
              help="Budget in USD for a provider's quote (default: each spec's budget_usd).")
@click.option("--reopen", is_flag=True,
              help="Continue JOB although it was cancelled (local jobs: from the last checkpoint).")
@_json_option
@click.pass_context
@stops_on_sigterm
def resume_cmd(ctx, job, detach, budget, reopen, as_json) -> None:
    """Finish what interrupted ftc processes left: every unfinished job, or JOB.

    Uncertain submissions are reconciled with the provider (never a second job), jobs
    recorded but never sent are submitted, and running jobs are watched to their end.
    A job another live ftc process works on is skipped. Exit 1 when a job ended failed.
    With --reopen, a cancelled local JOB continues from its last checkpoint.
    """
    from .. import jobs as J
    from .output import err, info

    view_holder: dict[str, Any] = {}

    def on_update(u):
        v = view_holder.get(u.job.id)
        if v is None:
            if view_holder:
                for old in view_holder.values():
                    old.__exit__(None, None, None)
                view_holder.clear()
            v = view_holder[u.job.id] = WatchView(u.job).__enter__()
        v(u)

    def on_outcome(o):
        if as_json:
            return
        style = {"error": "red", "skipped": "dim"}.get(o.action, "")
        detail = f": {_esc(o.detail)}" if o.detail else ""
        msg = f"{o.job_id or '-'} {o.action}{detail}" + (f" -> {state_text(o.state)}" if o.state else "")
        err.print(f"[{style}]{msg}[/]" if style else msg, highlight=False)

    try:
        outcomes = J.resume(job, watch_jobs=not detach, budget=budget, on_update=on_update, on_retry=show_retry,
                            on_outcome=on_outcome, confirm=None, reopen=reopen)
    finally:
        for v in view_holder.values():
            v.__exit__(None, None, None)
    failed = [o for o in outcomes if o.action == "error" or (o.action == "watched" and o.state in ("failed", "cancelled"))]
    if as_json:
        emit({"outcomes": [o.to_dict() for o in outcomes]})
    elif not outcomes:
        info("nothing to resume")
    else:
        for o in outcomes:
            if o.action == "watched" and o.job is not None:
                finish_report(o.job, None, as_json=False)
    ctx.exit(1 if failed else 0)
