"""The summary of a run (:data:`SUMMARY_KEYS`): the metrics, latency quantiles, tokens,
throughput, the cost per 1K queries (hosted: measured tokens x the catalogue's inference
price; self-hosted: measured throughput x GPU $/h) and the notes that qualify them."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ..errors import ConfigError
from ..metrics import score
from ..prices import Catalogue, load_catalogue
from ..store import failure_reasons
from ._common import HERE, HOSTED, _kind
from ._examples import Example
from ._progress import _now_iso, _Session

if TYPE_CHECKING:  # pragma: no cover
    from ..modelref import ModelRef
    from ..prices import Catalogue
    from ..store import EvalResult

#: The keys of a summary, in order (``ftc eval --json``; the report reads them).
SUMMARY_KEYS: tuple[str, ...] = (
    "run_id", "model_ref", "backend", "model", "job_id", "base_model", "fine_tuned", "data", "data_sha256",
    "examples", "completed", "failed", "metric", "metrics", "latency_s", "tokens", "cost_per_1k_queries_usd",
    "cost_basis", "throughput_qps", "wall_s", "started_at", "finished_at", "notes", "machine", "failures",
    "sessions",
)


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of an ascending list; 0.0 when empty."""
    if not sorted_values:
        return 0.0
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo))


def _catalogue(prices: Any) -> "Catalogue":
    if isinstance(prices, Catalogue):
        return prices
    return load_catalogue(prices)


def _cost(ref: "ModelRef", *, tin_q: float, tout_q: float, qps: float, completed: int,
          gpu_price_per_hour: float | None, gpu: str | None, prices: Any, concurrency: int,
          batch_size: int, device: str | None, notes: list[str]) -> tuple[float | None, str]:
    if completed == 0:
        return None, "nothing was answered, so nothing was measured"
    if _kind(ref.backend) == HOSTED:
        if gpu_price_per_hour is not None or gpu:
            notes.append("--gpu-price-per-hour / --gpu apply to self-hosted models; ignored for a hosted one")
        name = ref.base_model if ref.fine_tuned and ref.base_model else ref.model
        lookup = f"{ref.backend}:{name}"
        try:
            entry = _catalogue(prices).model(lookup)
        except ConfigError as e:
            return None, (f"{lookup} is not in the price catalogue ({e.message}); add it in a prices file "
                          "($FTC_PRICES) to price it")
        pin, pout = entry.inference_input_per_1m, entry.inference_output_per_1m
        if pin is None or pout is None:
            return None, f"the price catalogue has no inference price for {entry.ref}"
        cost = (tin_q * pin + tout_q * pout) / 1e6 * 1000
        kind = "fine-tuned model " if ref.fine_tuned else ""
        basis = (f"measured tokens per query ({tin_q:.1f} in, {tout_q:.1f} out) x the catalogue's {kind}inference "
                 f"price for {entry.ref} (${pin:g} in / ${pout:g} out per 1M tokens, as of {entry.as_of})")
        if entry.stale:
            notes.append(f"the catalogue price of {entry.ref} is older than the staleness limit (as of {entry.as_of})")
        if not ref.fine_tuned and entry.inference_is_fine_tuned:
            notes.append(f"the catalogue's {entry.provider} inference prices are those of fine-tuned models; the "
                         "base model is billed less, so this cost is an upper bound")
        if ref.fine_tuned and entry.serving == "dedicated" and entry.dedicated_endpoint_per_hour:
            per_1k = entry.dedicated_endpoint_per_hour / 3600.0 / qps * 1000 if qps > 0 else None
            extra = f" (at this run's {qps:.2f} queries/s: ${per_1k:.4g} per 1K queries)" if per_1k else ""
            notes.append(f"{ref.backend} serves this fine-tuned model on a dedicated endpoint billed "
                         f"${entry.dedicated_endpoint_per_hour:g}/h while it is on{extra}; the token price above "
                         "assumes serverless billing")
        return cost, basis
    # self-hosted: local or an OpenAI-compatible server
    if gpu_price_per_hour is not None:
        price, src = float(gpu_price_per_hour), "--gpu-price-per-hour"
    elif gpu:
        g = _catalogue(prices).gpu(gpu)
        price, src = g.usd_per_hour, f"the catalogue's price of {g.ref}, as of {g.as_of}"
    else:
        return None, ("self-hosted: cost = measured throughput x GPU $/h; give --gpu-price-per-hour "
                      "(or --gpu HOST:GPU from the catalogue) to price it")
    if qps <= 0:
        return None, "no throughput was measured in this session, so the GPU-hour cannot be spread over queries"
    cost = price * 1000.0 / (3600.0 * qps)
    basis = (f"measured throughput {qps:.3g} queries/s x ${price:g}/GPU-hour ({src}): one hour serves "
             f"{qps * 3600:,.0f} queries")
    if _kind(ref.backend) == HERE:
        notes.append(f"throughput measured here on {device or 'this machine'} with batch size {batch_size}; "
                     "the cost holds for a GPU that runs at least as fast")
    else:
        notes.append(f"throughput measured from this client at concurrency {concurrency}; a server kept busier "
                     "may serve more queries per hour")
    return cost, basis


def _summary(ref: "ModelRef", run_id: str, data: Path, sha: str, examples: list[Example],
             results: Mapping[str, "EvalResult"], metric: str, sess: _Session, *, previous: Mapping[str, Any] | None,
             concurrency: int, batch_size: int, gpu_price_per_hour: float | None, gpu: str | None,
             prices: Any) -> dict[str, Any]:
    notes = list(sess.notes)
    done = [(ex, results[ex.key]) for ex in examples if ex.key in results and results[ex.key].ok]
    failed = sum(1 for ex in examples if ex.key in results and not results[ex.key].ok)
    missing = len(examples) - len(done) - failed
    metrics = score(metric, [r.output or "" for _, r in done], [ex.reference for ex, _ in done])
    metrics["score"] = float(metrics.get("score", 0.0))
    failures = failure_reasons(results[ex.key].error for ex in examples if ex.key in results)
    if failed:
        notes.append(f"{failed} example(s) failed and are left out of the metrics; run again to retry them")
    # The sessions (ftc eval invocations) whose answers the figures rest on; answers stored
    # before sessions were counted (None) count as one earlier session.
    by_session: dict[Any, int] = {}
    for _, r in done:
        by_session[r.session] = by_session.get(r.session, 0) + 1
    sessions = len(by_session)
    if sessions > 1:
        latest = max((k for k in by_session if k is not None), default=None)
        notes.append(f"latency_s and tokens span {sessions} sessions of this run (it was resumed): "
                     f"{by_session.get(latest, 0)} answer(s) from the latest, "
                     f"{len(done) - by_session.get(latest, 0)} from earlier ones, possibly under another load "
                     "or server")
    if missing:
        notes.append(f"{missing} example(s) not answered yet; run the same command again to resume")
    lat = sorted(float(r.latency_s) for _, r in done if r.latency_s is not None)
    tin = sum(int(r.tokens_in or 0) for _, r in done)
    tout = sum(int(r.tokens_out or 0) for _, r in done)
    n = len(done)
    no_usage = sum(1 for _, r in done if r.tokens_in is None or r.tokens_out is None)
    if no_usage:
        notes.append(f"{no_usage} answer(s) came without token usage; counted as 0 tokens")
    if _kind(ref.backend) == HERE:
        notes.append(f"latency_s is per example: each batch's generation time / its size (batch size {batch_size}); "
                     "tokens are counted with the model's tokenizer")
    else:
        notes.append("latency_s is per request (the successful attempt, excluding waits for the rate limiter and "
                     "retries); tokens are the API's usage figures")
    cached = sess.progress.cached
    if sess.new_completed and sess.active_s > 0:
        qps = sess.new_completed / sess.active_s
        if cached:
            notes.append(f"resumed: {cached} stored answer(s) reused; throughput measured over the "
                         f"{sess.new_completed} answered in this session")
    else:
        qps = float((previous or {}).get("throughput_qps") or 0.0)
        if cached:
            notes.append(f"all {cached} answer(s) came from the store; throughput is the earlier session's")
    cost, basis = _cost(ref, tin_q=tin / n if n else 0.0, tout_q=tout / n if n else 0.0, qps=qps, completed=n,
                        gpu_price_per_hour=gpu_price_per_hour, gpu=gpu, prices=prices, concurrency=concurrency,
                        batch_size=batch_size, device=sess.device, notes=notes)
    summary = {
        "run_id": run_id,
        "model_ref": ref.canonical,
        "backend": ref.backend,
        "model": ref.model,
        "job_id": ref.job_id,
        "base_model": ref.base_model,
        "fine_tuned": bool(ref.fine_tuned),
        "data": str(data),
        "data_sha256": sha,
        "examples": len(examples),
        "completed": n,
        "failed": failed,
        "metric": metric,
        "metrics": metrics,
        "latency_s": {"p50": _quantile(lat, 0.5), "p95": _quantile(lat, 0.95),
                      "mean": float(sum(lat) / len(lat)) if lat else 0.0},
        "tokens": {"input": tin, "output": tout, "input_per_query": tin / n if n else 0.0,
                   "output_per_query": tout / n if n else 0.0},
        "cost_per_1k_queries_usd": None if cost is None else float(cost),
        "cost_basis": basis,
        "throughput_qps": float(qps),
        "wall_s": float(time.monotonic() - sess.t0),
        "started_at": sess.started_at,
        "finished_at": _now_iso(),
        "notes": notes,
        # measured in this session, else (all answers from the store) the session that measured them
        "machine": sess.machine() if sess.new_completed or not (previous or {}).get("machine")
        else previous["machine"],  # type: ignore[index]
        "failures": failures,
        "sessions": sessions,
    }
    assert tuple(summary) == SUMMARY_KEYS
    return summary
