"""``ftc eval``: evaluate a model on held-out data; list and show evaluation runs.

    ftc eval MODEL_REF --data eval.jsonl [--metric label] [--json]   (short for `ftc eval run ...`)
    ftc eval list [--json]
    ftc eval show RUN [--json]

``eval`` is a group whose default command is ``run``: anything that is not ``list``,
``show`` or ``run`` is taken as the model reference of ``run``. Exit codes: 0 every example
answered (state ``complete``), 1 any example failed (state ``partial``; a warning groups the
reasons; the same command retries only the failed ones), 2 usage, 130 interrupted (the
answers so far are stored; the same command resumes).
"""

from __future__ import annotations

from typing import Any

import click

from .params import POSITIVE_PRICE

_SUBCOMMANDS = ("run", "list", "show")


class _EvalGroup(click.Group):
    """A group whose first argument, unless it names a subcommand, starts ``run``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


def _esc(text: Any) -> str:
    from rich.markup import escape

    from ..secrets import redact
    from .output import safe_text

    return escape(safe_text(redact("" if text is None else str(text))))


def _emit(obj: Any) -> None:
    from .jobs_cmd import emit

    emit(obj)


@click.group(cls=_EvalGroup)
def eval_() -> None:
    """Evaluate a model on held-out chat data: quality, latency, tokens, cost per 1K queries.

    \b
    MODEL_REF is one of:
      local:JOB_ID | local:PATH | local:default     a local job's model, a model dir, a base model
      openai:MODEL | together:MODEL                 e.g. openai:ft:gpt-4o-mini-2024-07-18:acme::x1
      openai-compatible:BASE_URL#MODEL              Ollama, vLLM, TGI: http://127.0.0.1:11434/v1#llama3.2
      JOB_ID                                        a finished ftc job (any backend)

    \b
    Examples:
      ftc eval ftc-20261122-a3f9c2 --data data/eval.jsonl --metric label
      ftc eval openai:gpt-4o-mini --data data/eval.jsonl --rpm 500 --json
      ftc eval local:default --data data/eval.jsonl --batch-size 16 --gpu-price-per-hour 0.34
      ftc eval list
      ftc eval show eval-3f9a

    Running the same evaluation again resumes it: stored answers are reused and only
    missing (or failed) examples are sent; --fresh starts over.
    """


@eval_.command("run")
@click.argument("model_ref")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False),
              help="Evaluation data: ChatML JSONL (eval.jsonl from `ftc data prepare`).")
@click.option("--metric", type=click.Choice(["exact", "f1", "json", "contains", "label"], case_sensitive=False),
              default="exact", show_default=True, help="How answers are scored (see docs/eval.md).")
@click.option("--concurrency", type=click.IntRange(min=1), default=8, show_default=True,
              help="Requests in flight at once (hosted and OpenAI-compatible models).")
@click.option("--max-examples", type=click.IntRange(min=1), default=None, help="Only the first N examples.")
@click.option("--rpm", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stay under this many requests per minute.")
@click.option("--tpm", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Stay under this many tokens per minute (prompt estimate + --max-tokens per request).")
@click.option("--max-tokens", type=click.IntRange(min=1), default=128, show_default=True,
              help="Longest answer, in tokens.")
@click.option("--temperature", type=click.FloatRange(0, 2), default=0.0, show_default=True,
              help="Sampling temperature for remote models (local generation is greedy).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
              help="Local models: examples generated per batch.")
@click.option("--gpu-price-per-hour", type=POSITIVE_PRICE, default=None,
              help="Self-hosted models: USD per GPU-hour, for the cost per 1K queries.")
@click.option("--gpu", default=None, help="Self-hosted models: a GPU offer from the price catalogue "
              "(e.g. runpod:a100-community) whose $/h prices the run.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True, max=86400), default=120.0,
              show_default=True, envvar="FTC_EVAL_TIMEOUT", show_envvar=True,
              help="Seconds one request may take, from sending to the reply's last byte (hosted and "
              "OpenAI-compatible models). A request that timed out is not sent again; it is recorded as failed.")
@click.option("--max-reply-bytes", type=click.IntRange(min=1024), default=4 * 1024 * 1024, show_default=True,
              envvar="FTC_EVAL_MAX_REPLY_BYTES", show_envvar=True,
              help="Largest reply body read from a server; a larger reply fails that example.")
@click.option("--fresh", is_flag=True, help="Forget stored answers of this evaluation and start over.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def run_cmd(model_ref, data_path, metric, concurrency, max_examples, rpm, tpm, max_tokens, temperature, batch_size,
            gpu_price_per_hour, gpu, timeout_s, max_reply_bytes, fresh, as_json) -> None:
    """Evaluate MODEL_REF on --data (the default command of `ftc eval`)."""
    from ..evaluation import evaluate
    from .output import err, warn

    bar_state: dict[str, Any] = {}

    def on_start(info: dict) -> None:
        err.print(f"[dim]{info['run_id']}: {_esc(info['model_ref'])}, {info['examples']} examples "
                  f"({info['cached']} stored, {info['to_send']} to ask)[/dim]", highlight=False)
        bar_state["info"] = info

    with _progress_bar() as bar:
        def on_progress(p: Any) -> None:
            if "task" not in bar_state:
                bar_state["task"] = bar.add_task("eval", total=p.total, completed=p.done, failed=0, rate="",
                                                 retries="")
            rate = f"{p.rate_qps:.1f} q/s" if p.sent else ""
            retries = f"{p.retries} retries ({p.rate_limited} x 429)" if p.retries else ""
            bar.update(bar_state["task"], completed=p.done, failed=p.failed, rate=rate, retries=retries)

        summary = evaluate(model_ref, data_path, metric=metric.lower(), concurrency=concurrency,
                           max_examples=max_examples, rpm=rpm, tpm=tpm, max_tokens=max_tokens,
                           temperature=temperature, batch_size=batch_size, fresh=fresh, on_progress=on_progress,
                           on_start=on_start, gpu_price_per_hour=gpu_price_per_hour, gpu=gpu, timeout_s=timeout_s,
                           max_reply_bytes=max_reply_bytes)
    if as_json:
        _emit(summary)
    else:
        render_summary(summary)
    if summary["failed"]:
        # The run is partial: exit 1, and the same command retries only the failed examples.
        warn(f"{summary['failed']} of {summary['examples']} examples failed (left out of the metrics; the run "
             f"is partial). {_failures_line(summary)}. Run the same command again to retry only them")
        raise click.exceptions.Exit(1)


@eval_.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the newest N runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON.")
def list_cmd(limit, as_json) -> None:
    """List evaluation runs, newest first."""
    runs = _runs(limit)
    if as_json:
        _emit([r.to_dict() for r in runs])
        return
    from rich.table import Table

    from .output import info, out

    if not runs:
        info("No evaluation runs yet. Start one with `ftc eval MODEL_REF --data eval.jsonl`.")
        return
    rows = []
    for r in runs:
        s = r.summary or {}
        score = s.get("metrics", {}).get("score") if s.get("completed") else None
        cost = s.get("cost_per_1k_queries_usd")
        rows.append({"run": r.id, "state": _state(r.state), "model": _esc(r.model_ref),
                     "data": _esc(_short_path(r.data_path)), "metric": _esc(s.get("metric", "")),
                     "score": "" if score is None else f"{score:.3f}",
                     "answered": f"{s['completed']}/{s['examples']}" if "examples" in s else "",
                     "cost / 1K": "" if cost is None else _usd(cost),
                     "updated": r.updated_at[:16].replace("T", " ")})
    cols = _list_columns(out.width, rows)
    t = Table(title="Evaluation runs", title_justify="left")
    for col, width in cols.items():
        flex = col == _LIST_FLEX
        t.add_column(col, no_wrap=not flex, min_width=width, overflow="fold", ratio=1 if flex else None)
    for row in rows:
        t.add_row(*(row[c] for c in cols))
    left_out = [c for c in _LIST_COLUMNS if c not in cols]
    if left_out:
        t.caption = f"{', '.join(left_out)} left out to fit {out.width} columns; `ftc eval list --json` has them all"
        t.caption_justify = "left"
    out.print(t)


#: ``ftc eval list``'s columns. Each keeps its whole text on one line, except the model,
#: which takes the room left (at least ``_LIST_FLEX_MIN`` characters) and folds.
_LIST_COLUMNS = ("run", "state", "model", "score", "answered", "metric", "updated", "cost / 1K", "data")
_LIST_FLEX = "model"
_LIST_FLEX_MIN = 16
#: When the terminal is too narrow for every column, these are left out first (in this order).
_LIST_DROP_ORDER = ("data", "cost / 1K", "updated", "metric")


def _list_columns(width: int, rows: list[dict]) -> dict[str, int]:
    """The columns of ``ftc eval list`` that fit ``width`` characters, each with its minimum
    width: a kept column shows its whole text (the model at least 16 characters, folded);
    when they do not all fit, less important columns are left out first."""
    def need(col: str) -> int:
        if col == _LIST_FLEX:
            return _LIST_FLEX_MIN
        return max([len(col)] + [len(_plain(r[col])) for r in rows])

    cols = {c: need(c) for c in _LIST_COLUMNS}
    for drop in _LIST_DROP_ORDER:
        if sum(cols.values()) + 3 * len(cols) + 1 <= width:
            break
        del cols[drop]
    return cols


def _plain(markup: str) -> str:
    from rich.text import Text

    return Text.from_markup(markup).plain


@eval_.command("show")
@click.argument("run")
@click.option("--json", "as_json", is_flag=True, help="Print the run's summary (the `ftc eval --json` shape).")
def show_cmd(run, as_json) -> None:
    """Show one evaluation run (its id or a unique prefix)."""
    from ..errors import UsageError
    from ..store import Store
    from .output import info

    with Store() as st:
        r = st.get_eval_run(run)
        stored = st.eval_results(r.id)
    if r.summary is None:
        if as_json:
            raise UsageError(f"{r.id} has no summary yet ({len(stored)} answers stored, state {r.state})",
                             hint=f"Finish it: run `ftc eval {r.model_ref} --data {r.data_path}` again.")
        info(f"{r.id}: {r.state}, {len(stored)} answers stored, no summary yet. "
             f"Finish it with `ftc eval {_esc(r.model_ref)} --data {_esc(r.data_path)}`.")
        return
    summary = dict(r.summary)
    if "failures" not in summary:  # a summary written before failure reasons were grouped
        from ..store import failure_reasons

        summary["failures"] = failure_reasons(x.error for x in stored.values())
    if as_json:
        _emit(summary)
        return
    render_summary(summary, state=r.state)


# --------------------------------------------------------------------------- rendering


def _runs(limit: int | None) -> list:
    from ..paths import store_path
    from ..store import Store

    if not store_path().exists():
        return []
    with Store() as st:
        return st.list_eval_runs(limit=limit)


def _progress_bar():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .output import err

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[red]{task.fields[failed]} failed[/red]"),
        TextColumn("{task.fields[rate]}"),
        TextColumn("[dim]{task.fields[retries]}[/dim]"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


_STATE_STYLE = {"running": "blue", "complete": "green", "partial": "red", "interrupted": "yellow"}


def _state(state: str) -> str:
    return f"[{_STATE_STYLE.get(state, 'white')}]{state}[/]"


def _usd(v: float) -> str:
    return f"${v:,.4f}" if v < 1 else f"${v:,.2f}"


def _short_path(p: str) -> str:
    from pathlib import Path

    parts = Path(p).parts
    return str(Path(*parts[-2:])) if len(parts) > 2 else p


def _failures_line(s: dict) -> str:
    """``"38 failed: 30 x read timeout after 60 s; 8 x HTTP 400: ..."``, as plain text."""
    from ..secrets import redact
    from ..store import format_failures

    return redact(format_failures(s.get("failures"), s.get("failed") or 0))


def _secs(v: float) -> str:
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"


def render_summary(s: dict, *, state: str | None = None) -> None:
    """The human view of a summary: one table, per-label figures for ``label``, the notes."""
    from rich.table import Table

    from .output import err, out

    m = s.get("metrics") or {}
    title = f"Evaluation {s['run_id']}" + (f" ({state})" if state else "")
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    kind = "fine-tuned" if s.get("fine_tuned") else "base"
    model = _esc(s["model_ref"]) + f" [dim]({kind}" + (f", job {_esc(s['job_id'])}" if s.get("job_id") else "") \
        + (f", from {_esc(s['base_model'])}" if s.get("fine_tuned") and s.get("base_model") else "") + ")[/dim]"
    t.add_row("model", model)
    t.add_row("data", f"{_esc(_short_path(s['data']))} [dim]({s['examples']} examples)[/dim]")
    failed = f", [red]{s['failed']} failed[/red]" if s.get("failed") else ""
    t.add_row("answered", f"{s['completed']}/{s['examples']}{failed}")
    if s.get("failed"):
        groups = s.get("failures") or []
        t.add_row("why failed", "\n".join(f"{int(g.get('count') or 0)} x {_esc(g.get('reason'))}" for g in groups)
                  or "[dim]no reason recorded[/dim]")
    score = f"[bold]{m.get('score', 0.0):.3f}[/bold] ({_esc(s['metric'])})"
    if s["metric"] == "label":
        score += f"  accuracy {m.get('accuracy', 0.0):.3f}, macro-F1 {m.get('macro_f1', 0.0):.3f}"
    elif s["metric"] == "json" and "valid_json" in m:
        score += f"  valid JSON {m['valid_json']:.3f}"
    t.add_row("score", score)
    lat = s.get("latency_s") or {}
    sessions = int(s.get("sessions") or 0)
    t.add_row("latency", f"p50 {_secs(lat.get('p50', 0.0))}, p95 {_secs(lat.get('p95', 0.0))}, "
                         f"mean {_secs(lat.get('mean', 0.0))}"
              + (f" [yellow](from {sessions} sessions: the run was resumed)[/yellow]" if sessions > 1 else ""))
    tok = s.get("tokens") or {}
    t.add_row("tokens / query", f"{tok.get('input_per_query', 0.0):.1f} in, {tok.get('output_per_query', 0.0):.1f} out "
                                f"[dim]({tok.get('input', 0):,} / {tok.get('output', 0):,} in all)[/dim]")
    t.add_row("throughput", f"{s.get('throughput_qps', 0.0):.2f} queries/s")
    cost = s.get("cost_per_1k_queries_usd")
    t.add_row("cost / 1K queries", (_usd(cost) if cost is not None else "[dim]n/a[/dim]")
              + f"\n[dim]{_esc(s.get('cost_basis', ''))}[/dim]")
    t.add_row("wall time", f"{s.get('wall_s', 0.0):.1f} s")
    out.print(t)
    if s["metric"] == "label" and m.get("per_label"):
        pl = Table(title="Per label", title_justify="left")
        for col in ("label", "precision", "recall", "F1", "support"):
            pl.add_column(col, justify="left" if col == "label" else "right")
        for lab, v in m["per_label"].items():
            pl.add_row(_esc(lab), f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"]))
        out.print(pl)
        conf = m.get("confusion") or {}
        labels = conf.get("labels") or []
        if 0 < len(labels) <= 12:
            ct = Table(title="Confusion (rows: reference, columns: prediction)", title_justify="left")
            ct.add_column("")
            for c in conf.get("columns") or labels + ["(other)"]:
                ct.add_column(_esc(c), justify="right")
            for lab, row in zip(labels, conf.get("matrix") or []):
                ct.add_row(_esc(lab), *[str(v) if v else "[dim]0[/dim]" for v in row])
            out.print(ct)
    for note in s.get("notes") or []:
        err.print(f"[dim]note: {_esc(note)}[/dim]", highlight=False)
