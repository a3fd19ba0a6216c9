"""``ftc migrate capture``: record a fine-tuned model's answers before its provider shuts it down.

The answers are stored as a normal evaluation run (``ftc eval``: rate-limited, resumable,
cached), of a copy of the prompts kept under ``$FTC_HOME/migrate/captures``, so they stay
the yardstick of every replacement after the provider is gone. The prompts are the
``--data`` file, else the job's validation file, else a held-out slice of its training
file (where the provider hands those out). Before anything is sent the cost is shown (the
prompts' tokens x the fine-tuned model's inference price) and the budget applied.
"""

from __future__ import annotations

import collections
import datetime as _dt
import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ..budget import check_budget, within_budget
from ..errors import BudgetExceeded, DataError, UsageError
from ..evaluation import DEFAULT_MAX_TOKENS, eval_run_id, evaluate, load_examples
from ..fileio import count_records, write_json_atomic
from ..paths import ftc_home
from ..retry import RequestRejected
from ..store import Store
from ..tokens import get_counter
from .scan import SHUT_DOWN, FineTuneReport, find_fine_tune

__all__ = ["CaptureEstimate", "CaptureRecord", "capture_answers", "prompts_for", "estimate_capture", "load_capture",
           "capture_dir", "HOLDOUT_FRACTION", "HOLDOUT_MAX"]

#: The share of the training file used as prompts when nothing else is there, and its cap.
HOLDOUT_FRACTION = 0.1
HOLDOUT_MAX = 200

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class CaptureEstimate:
    """What a capture will send and cost: ``usd`` None when the price is not known."""

    examples: int
    cached: int
    to_send: int
    prompt_tokens: int
    output_tokens: int
    usd: float | None
    basis: str

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class CaptureRecord:
    """The capture of one model: the eval run holding its answers and the prompts asked."""

    model: str
    ref: str
    source: str
    base_model: str
    job_id: str
    run_id: str
    prompts: str
    prompts_sha256: str
    origin: str
    captured_at: str
    shutdown: str | None
    examples: int
    answered: int
    failed: int
    state: str
    estimate: dict[str, Any] = field(default_factory=dict)
    max_examples: int | None = None  # only the first N prompts were asked (--max-examples)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def capture_dir(model: str) -> Path:
    """The folder of one model's capture (its prompts and its record)."""
    return ftc_home() / "migrate" / "captures" / _SAFE.sub("_", model).strip("_")


def load_capture(model: str) -> CaptureRecord:
    """The stored capture of ``model`` (``ft:...``, with or without its source prefix)."""
    for name in (model, model.partition(":")[2]):
        p = capture_dir(name) / "capture.json" if name else None
        if p is not None and p.is_file():
            try:
                return CaptureRecord(**json.loads(p.read_text(encoding="utf-8")))
            except (ValueError, TypeError) as e:
                raise DataError(f"{p}: not a capture record ({e})",
                                hint="Run `ftc migrate capture` for this model again.") from None
    raise UsageError(f"no capture of {model!r} yet",
                     hint=f"Run `ftc migrate capture {model}` first (before the provider shuts the model down).")


def _copy_prompts(lines: Iterable[str], model: str) -> Path:
    """A copy of the prompts under the capture folder, named by its content: streamed into a
    temporary file while hashed, then renamed (never a partial copy under the final name)."""
    folder = capture_dir(model)
    folder.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=".prompts-", suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            for line in lines:
                h.update(line.encode("utf-8"))
                out.write(line)
        dest = folder / f"prompts-{h.hexdigest()[:12]}.jsonl"
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def _lines(path: Path) -> Iterator[str]:
    """The non-blank lines of a text file, each ending in a newline (read as it goes)."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            for line in f:
                if line.strip():
                    yield line if line.endswith("\n") else line + "\n"
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason})") from None


def _last_lines(path: Path, n: int) -> Iterator[str]:
    """The last ``n`` non-blank lines (at most ``n`` held in memory)."""
    return iter(collections.deque(_lines(path), maxlen=n))


def prompts_for(report: FineTuneReport, data: str | Path | None, *, holdout: float = HOLDOUT_FRACTION,
                holdout_max: int = HOLDOUT_MAX) -> tuple[Path, str]:
    """(prompts file, where they came from) for a capture of ``report``'s model."""
    model = report.model or report.fine_tune.job_id
    if data is not None:
        p = Path(data).expanduser()
        if not p.is_file():
            raise UsageError(f"{p}: no such file", hint="Give an eval file in ChatML JSONL (--data FILE).")
        return _copy_prompts(_lines(p), model), f"--data {p.name}"
    v = report.validation
    if v is not None and v.local_copy:
        return _copy_prompts(_lines(Path(v.local_copy)), model), f"the job's validation file {v.id}"
    t = report.training
    if t is not None and t.local_copy:
        total = count_records(Path(t.local_copy))
        n = max(1, min(holdout_max, round(total * holdout)))
        return (_copy_prompts(_last_lines(Path(t.local_copy), n), model),
                f"the last {n} example(s) of the training file {t.id} (the model saw them in training)")
    why = "; ".join(x.refusal for x in (v, t) if x is not None and x.refusal) or "it has no files to download"
    raise UsageError(f"no prompts to capture with: the provider does not hand out this job's files ({why})",
                     hint="Give your own eval file with --data FILE (ChatML JSONL: the prompts and, where you "
                          "have them, the right answers).")


def estimate_capture(report: FineTuneReport, prompts: Path, *, cached_keys: set[str] | None = None,
                     max_examples: int | None = None) -> CaptureEstimate:
    """Tokens and cost of asking the model every prompt not answered yet. Output tokens are
    estimated by the reference answers' length."""
    examples, _ = load_examples(prompts, max_examples)
    cached = cached_keys or set()
    todo = [ex for ex in examples if ex.key not in cached]
    ft = report.fine_tune
    counter = get_counter(f"{ft.source}:{ft.base_model}")
    records = [{"messages": [*ex.messages, {"role": "assistant", "content": ex.reference}]} for ex in todo]
    _, prompt, completion = counter.count_split(records) if records else ([], [], [])
    pin, pout = sum(prompt), sum(completion)
    if report.inference_per_1m is None:
        usd, basis = None, f"{ft.base_model} has no inference price in the catalogue"
    else:
        i, o = report.inference_per_1m
        usd = pin / 1e6 * i + pout / 1e6 * o
        basis = (f"{pin:,} prompt tokens x ${i:g}/1M + about {pout:,} answer tokens (the reference answers' "
                 f"length) x ${o:g}/1M, fine-tuned {ft.base_model} prices")
    return CaptureEstimate(examples=len(examples), cached=len(examples) - len(todo), to_send=len(todo),
                           prompt_tokens=pin, output_tokens=pout, usd=usd, basis=basis)


def capture_answers(model: str, data: str | Path | None = None, *, budget_usd: float | None = None,
            confirm: Callable[[CaptureEstimate], bool] | None = None, metric: str = "exact",
            max_examples: int | None = None, concurrency: int = 4, rpm: float | None = None,
            tpm: float | None = None, max_tokens: int | None = None, holdout: float = HOLDOUT_FRACTION,
            today: _dt.date | None = None, prices: Any = None, client: Any = None, store: Any = None,
            on_estimate: Callable[[CaptureEstimate, Path, str], None] | None = None,
            on_progress: Callable[[Any], None] | None = None, on_retry: Callable[[Any], None] | None = None,
            ) -> CaptureRecord:
    """Ask fine-tuned ``model`` every prompt and keep its answers (see the module docstring).

    ``budget_usd``: refuse (BudgetExceeded, nothing sent) when the estimate is above it.
    ``confirm(estimate)``: asked before sending; False stops with nothing sent.
    ``max_tokens``: the longest answer asked for (default: twice the longest reference
    answer's tokens, at least 64). A model that stops answering in the middle (the
    provider shut it down) ends the capture with what was saved: the record says so."""
    budget_usd = check_budget(budget_usd, "--budget")
    report = find_fine_tune(model, today=today, prices=prices, client=client)
    if report.state == SHUT_DOWN:
        raise UsageError(f"{report.model} was shut down on {report.shutdown}: it can no longer be asked",
                         hint="Use its own training data's answers as the yardstick: ftc migrate plan, then "
                              "ftc eval each replacement.")
    if report.model is None:
        raise UsageError(f"job {report.fine_tune.job_id} ({report.fine_tune.status}) produced no model to capture")
    prompts, origin = prompts_for(report, data, holdout=holdout)
    examples, sha = load_examples(prompts, max_examples)
    if max_tokens is None:
        counter = get_counter(f"{report.fine_tune.source}:{report.fine_tune.base_model}")
        longest = max((counter.count_record({"messages": [{"role": "assistant", "content": ex.reference}]})
                       for ex in examples), default=0)
        max_tokens = min(DEFAULT_MAX_TOKENS * 8, max(64, 2 * longest))
    own_store = store is None
    st = Store() if own_store else store
    try:
        params = {"max_tokens": int(max_tokens), "temperature": 0.0, "max_examples": max_examples}
        run_id = eval_run_id(report.ref or "", sha, params)
        cached = {k for k, r in st.eval_results(run_id).items() if r.ok}
        est = estimate_capture(report, prompts, cached_keys=cached, max_examples=max_examples)
        if on_estimate is not None:
            on_estimate(est, prompts, origin)
        if est.to_send and within_budget(est.usd, budget_usd) is False:
            raise BudgetExceeded(f"the capture would cost about ${est.usd:,.2f}, above the budget ${budget_usd:,.2f}; "
                                 "nothing was sent",
                                 hint="Raise --budget, or capture fewer prompts (--max-examples N).")
        if est.to_send and confirm is not None and not confirm(est):
            raise UsageError("capture not started: nothing was sent")
        notes: list[str] = []
        state = "complete"
        try:
            summary = evaluate(report.ref or "", prompts, metric=metric, concurrency=concurrency,
                               max_examples=max_examples, rpm=rpm, tpm=tpm, max_tokens=int(max_tokens),
                               temperature=0.0, store=st, prices=prices, on_progress=on_progress,
                               on_retry=on_retry)
            answered, failed = summary["completed"], summary["failed"]
            if failed:
                state = "partial"
                notes.append(f"{failed} prompt(s) failed; run the same capture again to retry them")
        except RequestRejected as e:
            if e.status_code != 404:
                raise
            results = st.eval_results(run_id)
            answered = sum(1 for r in results.values() if r.ok)
            failed = len(examples) - answered
            state = "model gone"
            notes.append(f"the provider stopped answering for {report.model} (404: {e.message}) after "
                         f"{answered} of {len(examples)} answer(s); those are saved and are the yardstick now")
        record = CaptureRecord(
            model=report.model, ref=report.ref or "", source=report.fine_tune.source,
            base_model=report.fine_tune.base_model, job_id=report.fine_tune.job_id, run_id=run_id,
            prompts=str(prompts), prompts_sha256=sha, origin=origin,
            captured_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            shutdown=report.shutdown.isoformat() if report.shutdown else None, examples=len(examples),
            answered=answered, failed=failed, state=state, estimate=est.to_dict(), notes=notes,
            max_examples=max_examples)
        write_json_atomic(capture_dir(report.model) / "capture.json", record.to_dict())
        return record
    finally:
        if own_store:
            st.close()
