"""Building the report from eval summaries: each eval run (the summary dict ``ftc eval`` stores)
becomes one option: its score, latency, cost per 1K queries and cost per month at the user's
volume, the training cost and time of the job its model came from, and the caveats that change
the answer.

Runs scored with different metrics are refused (:class:`ftclient.errors.UsageError`);
runs evaluated on different data are compared, under a loud warning.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import re
from typing import Any, Mapping, Sequence

from ..backends import default_model_of
from ..cost import catalogue_for
from ..errors import ConfigError, UsageError
from ..paths import STORE_FILE, ftc_home, job_dir
from ..prices import Catalogue
from ..secrets import redact
from ..store import Store, format_failures
from .caveats import lifecycle_caveats, machine_caveats, sample_caveat
from .format import finite_float
from .options import Option, Report, is_hosted, runs_here
from .plans import DEFAULT_SELF_HOST_GPU
from .pricing import not_compared_hosted, price_option
from .recommend import (DEFAULT_TOLERANCE, PROPORTION_METRICS, RULE, break_even, recommend, wilson_interval,
                        winner_by_volume)
from .training import add_training

#: The volume a report is priced at unless ``queries_per_month`` says otherwise.
DEFAULT_QUERIES_PER_MONTH = 10_000


def build_report(
    runs: Sequence[Mapping[str, Any]],
    *,
    jobs: Mapping[str, Mapping[str, Any]] | None = None,
    queries_per_month: int = DEFAULT_QUERIES_PER_MONTH,
    prices: Any = None,
    today: _dt.date | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    self_host_gpu: str = DEFAULT_SELF_HOST_GPU,
    gpu_price_per_hour: float | None = None,
    store: Any = None,
    costs: Any = None,
) -> Report:
    """Compare eval runs (their summary dicts, as :func:`ftclient.evaluate` returns them) at
    ``queries_per_month``.

    The training cost and time of a fine-tuned model come from the job its run names. By
    default those jobs are read from the job store (``store``, else the one under
    ``FTC_HOME``; see :func:`job_infos`). ``jobs`` gives them instead: a job id -> that job's
    fields (``ftclient.store.Job.to_dict()``: backend, state, estimate_usd, cost_so_far_usd,
    created_at, finished_at, ...) plus, for a local job, ``result`` (its ``result.json``:
    ``wall_s``, ``total_wall_s``); ``jobs={}`` looks nothing up. ``prices``: a
    Catalogue or a prices file (default: the bundled catalogue, $FTC_PRICES). ``today``
    decides which retirement dates have passed. ``self_host_gpu`` is the always-on GPU offer
    among the ways self-hosted serving is priced (with the catalogue's per-second GPUs and CPU
    instances); ``gpu_price_per_hour`` overrides its price. ``costs``: the cost comparison of the
    same data (:func:`ftclient.cost.compare_costs`, or its ``to_dict()``), whose hosted rows that
    were not evaluated are listed as not compared with their cost per 1K queries (without it,
    the catalogue's per-token hosts are priced at the eval's tokens per query).
    """
    if not runs:
        raise UsageError("no eval runs to compare", hint="Give at least one eval run id or job id.")
    if isinstance(queries_per_month, bool) or not isinstance(queries_per_month, int) or queries_per_month < 1:
        raise UsageError(f"queries per month must be a whole number >= 1, not {queries_per_month!r}")
    if not (isinstance(tolerance, (int, float)) and 0 <= tolerance < 1):
        raise UsageError(f"tolerance must be >= 0 and < 1 (a score difference), not {tolerance!r}")
    if gpu_price_per_hour is not None and gpu_price_per_hour < 0:
        raise UsageError(f"GPU price must be >= 0, not {gpu_price_per_hour!r}")
    cat = catalogue_for(prices, today)
    today = today or cat.today
    if gpu_price_per_hour is not None:
        cat = Catalogue(data=copy.deepcopy(cat.data), today=cat.today, files=list(cat.files))  # not the caller's
        cat.set_gpu_price(self_host_gpu, gpu_price_per_hour)
    gpu = cat.gpu(self_host_gpu)
    if gpu.spec is None:
        raise ConfigError(f"{gpu.ref}: no GPU spec in the catalogue", hint="Add it under gpu_specs.")

    summaries = [_check_summary(r, i) for i, r in enumerate(runs)]
    if jobs is None:
        jobs = _stored_jobs(summaries, store)
    warnings: list[dict[str, str]] = []
    seen: dict[str, int] = {}
    unique = []
    for s in summaries:
        if s["run_id"] in seen:
            warnings.append({"kind": "duplicate_run", "text": f"run {s['run_id']} was given twice; it is shown once"})
            continue
        seen[s["run_id"]] = 1
        unique.append(s)
    summaries = unique

    metrics = sorted({s["metric"] for s in summaries})
    if len(metrics) > 1:
        which = "; ".join(f"{m}: {', '.join(s['run_id'] for s in summaries if s['metric'] == m)}" for m in metrics)
        raise UsageError(
            f"the runs were scored with different metrics ({which}); their scores cannot be ranked",
            hint="Compare runs evaluated with the same metric (re-run `ftc eval` with the same --metric).",
        )
    warnings.extend(_data_warnings(summaries))

    names = _names(summaries)
    options = []
    for s, name in zip(summaries, names):
        o = _option(s, name)
        price_option(o, cat, gpu, queries_per_month)
        add_training(o, jobs)
        lifecycle_caveats(o, cat, today)
        if o.failed:
            why = format_failures(s.get("failures"), o.failed) if s.get("failures") else f"{o.failed} failed"
            o.caveat("failed_examples", f"{o.failed} of {o.examples} examples failed (no reply; the run is partial: "
                                        f"{why}): its score and latency rest on the {o.completed} completed; "
                                        "the same `ftc eval` command retries the failed ones")
        sessions = s.get("sessions")
        if isinstance(sessions, int) and not isinstance(sessions, bool) and sessions > 1:
            o.caveat("latency_sessions", f"its latency and token figures span {sessions} sessions of the run "
                                         "(it was resumed), possibly under another load or server; its throughput "
                                         "is the latest session's")
        if o.score is None:
            o.eligible = False
            o.caveat("no_score", "the run has no score; it is left out of the recommendation")
        sample_caveat(o, tolerance)
        machine_caveats(o)
        options.append(o)

    q = queries_per_month
    rule = RULE.format(metric=metrics[0], tol=tolerance, points=round(tolerance * 100, 6), q=q)
    not_compared = not_compared_hosted(options, cat, q, costs, today)
    rec = recommend(options, q, tolerance, metrics[0], not_compared)
    data_w = [w for w in warnings if w["kind"] in ("different_data", "different_examples")]
    rec["comparable"] = not data_w
    if data_w and rec.get("recommended"):
        rec["caveats"] = [dict(w) for w in data_w] + rec.get("caveats", [])
        rec["text"] = "NOT COMPARABLE (the runs were not evaluated on the same examples): " + rec["text"]
    be = break_even(options, q, tolerance, not_compared)
    wbv = winner_by_volume(options, tolerance)
    if rec.get("recommended") and wbv:
        rec["changes_with_volume"] = len(wbv) > 1
    return Report(
        options=options,
        queries_per_month=q,
        metric=metrics[0],
        tolerance=float(tolerance),
        rule=rule,
        recommendation=rec,
        break_even=be,
        winner_by_volume=wbv,
        warnings=warnings,
        self_host={
            "gpu": gpu.ref,
            "usd_per_hour": gpu.usd_per_hour,
            "billing": gpu.billing,
            "price": gpu.provenance(),
            "per_second_gpus": [r for r in cat.gpu_refs() if cat.gpu(r).serverless],
            "cpu_instances": cat.cpu_refs() if hasattr(cat, "cpu_refs") else [],
        },
        price_files=list(cat.files),
        today=today,
        not_compared=not_compared,
    )


_REQUIRED = ("run_id", "backend", "metric", "metrics")


def job_infos(store: Any, summaries: list[dict]) -> dict[str, dict]:
    """For each job a run names: the job's fields, plus a local job's result.json as ``result``."""
    out: dict[str, dict] = {}
    for s in summaries:
        jid = s.get("job_id")
        if not jid or jid in out:
            continue
        try:
            job = store.get_job(jid)
        except UsageError:
            continue  # the report notes the missing job
        d = job.to_dict()
        d.pop("spec", None)
        if runs_here(job.backend):
            try:
                res = json.loads((job_dir(job.id) / "result.json").read_text(encoding="utf-8"))
                if isinstance(res, dict):
                    d["result"] = res
            except (OSError, ValueError, UsageError):
                pass
        out[jid] = d
    return out


def _stored_jobs(summaries: list[dict], store: Any) -> dict[str, dict]:
    """:func:`job_infos` for the jobs the runs name, from ``store`` or the default job store
    (not created when it does not exist yet: then no job is known)."""
    if not any(s.get("job_id") for s in summaries):
        return {}
    if store is not None:
        return job_infos(store, summaries)
    path = ftc_home(create=False) / STORE_FILE
    if not path.is_file():
        return {}
    with Store(path) as st:
        return job_infos(st, summaries)


def _check_summary(r: Mapping[str, Any], i: int) -> dict[str, Any]:
    if not isinstance(r, Mapping):
        raise UsageError(f"run {i + 1}: not an eval summary (a mapping), but {type(r).__name__}")
    missing = [k for k in _REQUIRED if k not in r]
    if missing:
        raise UsageError(f"run {r.get('run_id', i + 1)}: the eval summary lacks {', '.join(missing)}",
                         hint="Was it written by this version of `ftc eval`?")
    return dict(r)


def _data_warnings(summaries: list[dict]) -> list[dict[str, str]]:
    out = []
    shas = {}
    for s in summaries:
        shas.setdefault(s.get("data_sha256") or "?", []).append(s["run_id"])
    if len(shas) > 1:
        groups = "; ".join(f"{sha[:12]}: {', '.join(ids)}" for sha, ids in shas.items())
        out.append({"kind": "different_data", "text": (
            "THE RUNS WERE EVALUATED ON DIFFERENT DATA (data sha256 " + groups + "): their scores are not "
            "comparable, and neither is the recommendation. Evaluate every model on the same file.")})
    else:
        counts = {}
        for s in summaries:
            counts.setdefault(s.get("examples"), []).append(s["run_id"])
        if len(counts) > 1:
            groups = "; ".join(f"{n} examples: {', '.join(ids)}" for n, ids in counts.items())
            out.append({"kind": "different_examples", "text": (
                f"the runs used the same file but different numbers of examples ({groups}): the scores are "
                "not measured on the same examples")})
    return out


#: A quantisation tag at the end of a served model's or a GGUF file's name (``.Q4_1``,
#: ``-q4_K_M``, ``:Q8_0``, ``.f16``), written the same way whatever separator it came with.
_QUANT = re.compile(r"[.\-_:]((?:I?Q\d(?:_[A-Za-z0-9]+)*)|(?:B?F(?:16|32))|(?:fp16|int[48]))$", re.IGNORECASE)


def _short(name: str | None) -> str:
    """The model part of an option's name, derived the same way for every backend: the last
    path component, without an OpenAI snapshot date, ``.gguf``, ``-GGUF``, Ollama's
    ``:latest``; a quantisation tag becomes `` (Q4_1)``. So one model reads the same whether
    a local run or a server named it (``local:SmolLM2-135M-Instruct``,
    ``openai-compatible:SmolLM2-135M-Instruct (Q4_1)``)."""
    if not name:
        return "?"
    n = str(name)
    if n.startswith("ft:"):  # ft:gpt-4o-mini-2024-07-18:org::id
        n = n.split(":")[1]
    n = n.rstrip("/").rsplit("/", 1)[-1]
    n = re.sub(r"-\d{4}-\d{2}-\d{2}$", "", n) or n  # OpenAI snapshot dates
    n = re.sub(r"\.gguf$", "", n, flags=re.IGNORECASE)
    n = re.sub(r":latest$", "", n)
    quant = None
    m = _QUANT.search(n)
    if m and m.start() > 0:
        quant, n = m.group(1).upper(), n[:m.start()]
    n = re.sub(r"-GGUF$", "", n, flags=re.IGNORECASE) or n
    return n + (f" ({quant})" if quant else "")


def _names(summaries: list[dict]) -> list[str]:
    out = []
    for s in summaries:
        base = s.get("base_model") or s.get("model")
        shown = base if s.get("fine_tuned") else (s.get("model") or base)
        if runs_here(str(s.get("backend"))) and shown in (None, "", "default"):
            shown = default_model_of(str(s.get("backend"))) or shown
        n = f"{s.get('backend')}:{_short(shown)}"
        out.append(n + (" fine-tuned" if s.get("fine_tuned") else ""))
    for n in set(out):
        if out.count(n) > 1:
            out = [f"{x} #{str(s['run_id']).removeprefix('eval-')[:8]}" if x == n else x
                   for x, s in zip(out, summaries)]
    return out


def _option(s: dict, name: str) -> Option:
    metrics = dict(s.get("metrics") or {})
    backend = str(s.get("backend") or "?")
    score = finite_float(metrics.get("score"))
    n = metrics.get("n") if isinstance(metrics.get("n"), int) else int(s.get("completed") or 0)
    ci = None
    if score is not None and n > 0 and str(s["metric"]) in PROPORTION_METRICS:
        ci = wilson_interval(round(score * n), n)
    return Option(
        score_n=n or None,
        score_ci95=ci,
        machine=dict(s.get("machine") or {}),
        name=name,
        run_id=str(s["run_id"]),
        model_ref=redact(str(s.get("model_ref") or s.get("model") or "")),  # never a URL's credentials
        backend=backend,
        model=str(s.get("model") or ""),
        kind="hosted" if is_hosted(backend) else "self-hosted",
        fine_tuned=bool(s.get("fine_tuned")),
        base_model=s.get("base_model"),
        job_id=s.get("job_id"),
        data=str(s.get("data") or ""),
        data_sha256=str(s.get("data_sha256") or ""),
        examples=int(s.get("examples") or 0),
        completed=int(s.get("completed") or 0),
        failed=int(s.get("failed") or 0),
        metric=str(s["metric"]),
        score=score,
        metrics=metrics,
        latency_s=dict(s.get("latency_s") or {}),
        tokens=dict(s.get("tokens") or {}),
        throughput_qps=finite_float(s.get("throughput_qps")),
        eval_cost_per_1k_usd=finite_float(s.get("cost_per_1k_queries_usd")),
        eval_cost_basis=str(s.get("cost_basis") or ""),
    )
