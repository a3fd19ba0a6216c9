"""The entry point :func:`evaluate`: the arguments checked, the run's id derived
(:func:`eval_run_id`) and recorded, the examples not answered yet asked (hosted or here),
and the summary stored with the run's final state."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..errors import FtcError, UsageError
from ..metrics import METRICS
from ..modelref import parse_model_ref
from ..store import opened
from ._common import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_TOKENS,
    HERE,
    Interrupted,
    _askable,
    _check_can_ask,
    _kind,
)
from ._examples import load_examples
from ._here import _run_local
from ._hosted import _run_coro, _run_hosted
from ._progress import EvalProgress, _Session
from ._replies import DEFAULT_MAX_REPLY_BYTES, DEFAULT_TIMEOUT_S
from ._summary import _summary

if TYPE_CHECKING:  # pragma: no cover
    from ..modelref import ModelRef
    from ..retry import RetryEvent, RetryPolicy
    from ..store import Store


def eval_run_id(canonical_ref: str, data_sha256: str, params: Mapping[str, Any]) -> str:
    """The deterministic id of an evaluation: same model, data and generation params -> same id."""
    blob = json.dumps({"model": canonical_ref, "data": data_sha256.lower(), "params": dict(params)},
                      sort_keys=True, ensure_ascii=False)
    return "eval-" + hashlib.sha256(blob.encode()).hexdigest()[:12]


def evaluate(
    model_ref: "str | ModelRef",
    data_path: "str | Path",
    *,
    metric: str = "exact",
    concurrency: int = DEFAULT_CONCURRENCY,
    max_examples: int | None = None,
    rpm: float | None = None,
    tpm: float | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    temperature: float = 0.0,
    batch_size: int = DEFAULT_BATCH_SIZE,
    store: "Store | None" = None,
    fresh: bool = False,
    on_progress: Callable[[EvalProgress], None] | None = None,
    on_retry: Callable[["RetryEvent"], None] | None = None,
    on_start: Callable[[dict], None] | None = None,
    gpu_price_per_hour: float | None = None,
    gpu: str | None = None,
    prices: Any = None,
    policy: "RetryPolicy | None" = None,
    device: str = "auto",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
) -> dict[str, Any]:
    """Evaluate ``model_ref`` on ``data_path``; returns the summary (also stored with the run).

    ``metric``: exact | f1 | json | contains | label (:mod:`ftclient.metrics`).
    ``concurrency``: requests in flight at once (hosted / openai-compatible).
    ``max_examples``: only the first N examples. ``rpm`` / ``tpm``: requests / tokens per
    minute to stay under. ``max_tokens``, ``temperature``: generation (local generation is
    greedy). ``batch_size``: local generation batch. ``fresh``: forget stored answers.
    ``on_progress(EvalProgress)``; ``on_retry(RetryEvent)``; ``on_start(info)`` with the
    run id, the model and how many examples are cached / to send.
    ``gpu_price_per_hour`` or ``gpu`` (a catalogue offer, ``runpod:a100-community``): the
    $/h for a self-hosted model's cost. ``prices``: a prices file or Catalogue.
    ``policy``: the retry policy (default: :class:`ftclient.retry.RetryPolicy`).
    ``timeout_s``: seconds one request may take, sending to the reply's last byte (a
    request that timed out is recorded as failed, not sent again). ``max_reply_bytes``:
    the largest reply body read (hosted and OpenAI-compatible models).

    Ctrl-C stores what was answered, marks the run ``interrupted`` and raises
    :class:`Interrupted` (exit 130); run it again to resume.
    """
    from ..metrics import score as _score

    metric = (metric or "").strip().lower()
    if metric not in METRICS:
        _score(metric, [], [])  # raises the UsageError with "did you mean"
    for name, value, low in (("concurrency", concurrency, 1), ("batch size", batch_size, 1),
                             ("max tokens", max_tokens, 1)):
        if not isinstance(value, int) or value < low:
            raise UsageError(f"{name} must be a whole number >= {low} (got {value!r})")
    if max_examples is not None and (not isinstance(max_examples, int) or max_examples < 1):
        raise UsageError(f"max examples must be a whole number >= 1 (got {max_examples!r})")
    for name, value in (("--rpm", rpm), ("--tpm", tpm), ("--gpu-price-per-hour", gpu_price_per_hour)):
        if value is not None and (not isinstance(value, (int, float)) or value <= 0 or not math.isfinite(value)):
            raise UsageError(f"{name} must be a positive number (got {value!r})")
    for name, value in (("--timeout", timeout_s), ("--max-reply-bytes", max_reply_bytes)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise UsageError(f"{name} must be a positive number (got {value!r})")
    if max_reply_bytes < 1024:
        raise UsageError(f"--max-reply-bytes must be at least 1024 (got {max_reply_bytes!r})")
    if not 0.0 <= float(temperature) <= 2.0:
        raise UsageError(f"temperature must be between 0 and 2 (got {temperature!r})")

    with opened(store) as st:
        ref = parse_model_ref(model_ref, store=st) if not hasattr(model_ref, "canonical") else model_ref
        kind = _kind(ref.backend)
        if kind is None:
            raise UsageError(f"ftc eval cannot ask {ref.backend} models yet",
                             hint=f"Supported: {', '.join(_askable())}.")
        _check_can_ask(ref)
        data = Path(data_path).expanduser()
        data = data.resolve() if data.exists() else data
        examples, sha = load_examples(data, max_examples)
        params = {"max_tokens": int(max_tokens), "temperature": float(temperature), "max_examples": max_examples}
        run_id = eval_run_id(ref.canonical, sha, params)
        st.put_eval_run(run_id, model_ref=ref.canonical, data_path=str(data), data_sha256=sha, params=params)
        run = st.restart_eval_run(run_id, fresh=fresh)
        previous = run.summary
        stored = st.eval_results(run_id)
        todo = [ex for ex in examples if ex.key not in stored or not stored[ex.key].ok]
        cached = len(examples) - len(todo)
        sess = _Session(progress=EvalProgress(run_id=run_id, total=len(examples), completed=cached, cached=cached),
                        on_progress=on_progress)
        if kind == HERE and float(temperature) != 0.0:
            sess.notes.append("local generation is greedy; temperature was ignored")
        if kind == HERE and (rpm or tpm):
            sess.notes.append("--rpm / --tpm apply to remote models; ignored for a local one")
        if on_start is not None:
            on_start({"run_id": run_id, "model_ref": ref.canonical, "examples": len(examples), "cached": cached,
                      "to_send": len(todo)})
        sess.tick()

        def finish(state: str, extra_note: str | None = None) -> dict[str, Any]:
            if extra_note:
                sess.notes.append(extra_note)
            summary = _summary(ref, run_id, data, sha, examples, st.eval_results(run_id), metric, sess,
                               previous=previous, concurrency=concurrency, batch_size=batch_size,
                               gpu_price_per_hour=gpu_price_per_hour, gpu=gpu, prices=prices)
            st.finish_eval_run(run_id, summary, state=state)
            return summary

        try:
            if todo:
                if kind == HERE:
                    _run_local(ref, todo, st, run_id, sess, batch_size=batch_size, max_tokens=max_tokens,
                               device=device)
                else:
                    _run_coro(_run_hosted(ref, todo, st, run_id, sess, concurrency=concurrency, rpm=rpm, tpm=tpm,
                                          max_tokens=max_tokens, temperature=float(temperature), policy=policy,
                                          on_retry=on_retry, timeout_s=float(timeout_s),
                                          max_reply_bytes=int(max_reply_bytes)))
        except KeyboardInterrupt:
            finish("interrupted", "interrupted; run the same command again to resume")
            raise Interrupted(f"interrupted: {sess.progress.done} of {len(examples)} examples stored in {run_id}",
                              hint="Run the same command again to resume where it stopped.") from None
        except FtcError as e:
            finish("interrupted", f"stopped: {e.message}")
            raise
        # Any failed example makes the run partial (exit 1 in the CLI); running it again retries them.
        return finish("partial" if any(not r.ok for r in st.eval_results(run_id).values()) else "complete")
