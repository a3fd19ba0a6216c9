"""The comparison report: eval runs side by side, with a recommendation for a volume.

    report = build_report([run.summary for run in runs], queries_per_month=10_000)
    write_report(report, "report/")     # report.md, report.json, report.png

Each eval run (the summary dict ``ftc eval`` stores) becomes one *option*: its score,
latency, cost per 1K queries and cost per month at the user's volume, the training cost
and time of the job its model came from, and the caveats that change the answer.

How the figures are made (also in docs/compare.md):

* **Hosted, per token**: the eval's cost per 1K queries (measured tokens x catalogue
  prices); when the eval has none, the report prices the eval's tokens per query with
  the catalogue. Monthly = volume x cost per query.
* **Hosted, dedicated endpoint**: a fine-tuned model at a host whose catalogue entry says
  ``serving: dedicated`` (Together serves fine-tuned LoRA models only on a dedicated
  endpoint) costs the endpoint's hours, always on: ``dedicated_endpoint_per_hour x 730``
  a month, whatever the volume (capacity assumed sufficient, as in ``ftc cost compare``).
* **Self-hosted** (a ``local`` run): every way to serve it that can be priced, and the option
  costs the cheapest at each volume (:data:`WAYS`): the always-on GPU offer ``self_host_gpu``
  (default :data:`DEFAULT_SELF_HOST_GPU`; more GPUs once one is full), each per-second GPU of
  the catalogue (busy time and idle windows, :func:`ftclient.cost.serverless_gpu_hours`) --
  GPU-seconds per query from ``ftclient.cost``'s throughput model (the model's parameter
  count, the eval's tokens per query) -- and, when the eval ran on a CPU, each CPU instance of
  the catalogue (``cpus``) at the throughput the eval measured, scaled to its vCPUs. Each way
  states how busy the volume keeps what it bills. A model the catalogue does not know and
  whose size cannot be read: 1 / the throughput measured by the eval, on ``self_host_gpu``.
* **Not compared**: hosted options that were not evaluated (their score is unknown), with
  their cost: the cost comparison's hosted rows (``costs``) or the catalogue's per-token hosts.
* **Score**: its 95% Wilson interval when it is a share of examples (:func:`wilson_interval`).
* **Break-even** between the best cloud and the best self-hosted option (each picked by
  the rule below among its kind): :func:`ftclient.cost.break_even_volume` /
  :func:`ftclient.cost.break_even_monthly` when the cloud option is priced per token and the
  self-hosted one has one way of serving; otherwise the volumes where the two monthly cost
  curves cross, found numerically.

The rule (:data:`RULE`): the highest score wins; options within ``tolerance`` of the best
score count as tied, and a tie goes to the option with the lowest monthly inference cost
at the volume (options without a cost figure last, then the higher score). Training cost
is one-off: shown beside each option, not part of the ranking.

Runs scored with different metrics are refused (:class:`ftclient.errors.UsageError`);
runs evaluated on different data are compared, under a loud warning.

matplotlib is imported only by :func:`render_png` / :func:`write_report`.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .budget import format_usd
from .errors import ConfigError, UsageError

DEFAULT_QUERIES_PER_MONTH = 10_000
DEFAULT_TOLERANCE = 0.02
DEFAULT_SELF_HOST_GPU = "runpod:rtx4090-community"
#: Backends whose models a provider serves; the others (local, openai-compatible) are self-hosted.
HOSTED_BACKENDS = ("openai", "together")
#: The local backend's ``default`` base model (see ftclient.local_backend.models).
LOCAL_DEFAULT_MODEL_HF_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"

RULE = (
    "highest {metric} wins; options within {tol:g} of the best score ({points:g} points) count as tied, "
    "and a tie goes to the lowest monthly inference cost at {q:,} queries/month (options without a cost "
    "figure last); training is a one-off cost, shown but not ranked"
)

# Volumes scanned for crossings of monthly cost curves (queries per month).
_SCAN_LO, _SCAN_HI, _SCAN_STEPS_PER_DECADE = 1.0, 1e12, 24

REPORT_MD, REPORT_JSON, REPORT_PNG = "report.md", "report.json", "report.png"


# ------------------------------------------------------------------------------ options
@dataclass
class Option:
    """One eval run, priced at the report's volume."""

    name: str
    run_id: str
    model_ref: str
    backend: str
    model: str
    kind: str  # hosted | self-hosted
    fine_tuned: bool
    base_model: str | None
    job_id: str | None
    data: str
    data_sha256: str
    examples: int
    completed: int
    failed: int
    metric: str
    score: float | None
    metrics: dict[str, Any]
    latency_s: dict[str, Any]
    tokens: dict[str, Any]
    throughput_qps: float | None
    eval_cost_per_1k_usd: float | None
    eval_cost_basis: str
    serving: str = "unknown"
    cost_per_1k_usd: float | None = None  # at the report's volume
    monthly_usd: float | None = None  # at the report's volume
    cost_basis: str = ""
    catalogue_model: str | None = None
    training_cost_usd: float | None = None
    training_cost_basis: str | None = None
    training_time_s: float | None = None
    training_time_basis: str | None = None
    job_state: str | None = None
    eligible: bool = True
    caveats: list[dict[str, str]] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)  # where the eval measured latency and throughput
    not_compared: list[dict[str, Any]] = field(default_factory=list)  # serving ways not priced, and why
    score_n: int | None = None  # examples the score rests on
    score_ci95: tuple[float, float] | None = None  # Wilson interval of a share-of-examples score
    # the cost model: monthly cost at a volume
    _per_query: float | None = field(default=None, repr=False)  # linear part (per token or busy time)
    _fixed_monthly: float | None = field(default=None, repr=False)  # per GPU / endpoint
    _capacity: float | None = field(default=None, repr=False)  # queries per GPU-month (hourly GPU)
    _monthly_fn: Callable[[float], float] | None = field(default=None, repr=False, compare=False)
    _plans: list["_Plan"] = field(default_factory=list, repr=False, compare=False)  # self-hosted serving ways
    _q: int = field(default=0, repr=False)  # the report's volume

    @property
    def has_cost(self) -> bool:
        return self._monthly_fn is not None

    def monthly_cost(self, queries_per_month: float) -> float | None:
        """Monthly inference cost in USD at this volume (None without a cost model)."""
        return None if self._monthly_fn is None else self._monthly_fn(queries_per_month)

    def caveat(self, kind: str, text: str) -> None:
        self.caveats.append({"kind": kind, "text": text})

    def plans_at(self, v: float) -> list[dict[str, Any]]:
        """A self-hosted option's serving ways at volume ``v``, cheapest first (empty for a hosted one)."""
        return sorted((p.at(v) for p in self._plans), key=lambda d: (d["monthly_usd"], d["way"], d["offer"]))

    def plan_at(self, v: float) -> dict[str, Any] | None:
        """The cheapest serving way at volume ``v`` (what the option's cost is), or None."""
        plans = self.plans_at(v)
        return plans[0] if plans else None

    def caveat_kinds(self) -> list[str]:
        return [c["kind"] for c in self.caveats]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "run_id": self.run_id,
            "model_ref": self.model_ref,
            "backend": self.backend,
            "model": self.model,
            "kind": self.kind,
            "fine_tuned": self.fine_tuned,
            "base_model": self.base_model,
            "job_id": self.job_id,
            "data": self.data,
            "data_sha256": self.data_sha256,
            "examples": self.examples,
            "completed": self.completed,
            "failed": self.failed,
            "metric": self.metric,
            "score": self.score,
            "metrics": self.metrics,
            "latency_s": self.latency_s,
            "tokens": self.tokens,
            "throughput_qps": self.throughput_qps,
            "eval_cost_per_1k_queries_usd": self.eval_cost_per_1k_usd,
            "eval_cost_basis": self.eval_cost_basis,
            "serving": self.serving,
            "cost_per_1k_queries_usd": _round(self.cost_per_1k_usd, 6),
            "monthly_inference_usd": _round(self.monthly_usd, 4),
            "cost_basis": self.cost_basis,
            "catalogue_model": self.catalogue_model,
            "training": {
                "job_id": self.job_id,
                "job_state": self.job_state,
                "cost_usd": _round(self.training_cost_usd, 4),
                "cost_basis": self.training_cost_basis,
                "time_s": _round(self.training_time_s, 1),
                "time_basis": self.training_time_basis,
            },
            "eligible": self.eligible,
            "caveats": list(self.caveats),
            "score_n": self.score_n,
            "score_ci95": None if self.score_ci95 is None else [round(x, 6) for x in self.score_ci95],
            "machine": self.machine,
            "serving_plans": [_plan_dict(d) for d in self.plans_at(self._q)] if self._plans else [],
            "serving_not_compared": list(self.not_compared),
        }


def _round(v: float | None, n: int) -> float | None:
    return None if v is None else round(float(v), n)


def _plan_dict(d: dict[str, Any]) -> dict[str, Any]:
    """A serving way's figures for report.json (money to 1/100 cent, shares to 8 places)."""
    out = dict(d)
    for k, n in (("monthly_usd", 4), ("cost_per_1k_queries_usd", 6), ("billed_hours", 4),
                 ("capacity_queries_per_month", 0)):
        if isinstance(out.get(k), float):
            out[k] = round(out[k], n) if n else round(out[k])
    for k in ("utilisation", "busy_s_per_query"):  # tiny shares: 6 significant digits
        if isinstance(out.get(k), float):
            out[k] = float(f"{out[k]:.6g}")
    return out


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% for the default z)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z / den * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return (lo, hi)


#: Metrics whose score is the share of examples answered right (a binomial proportion).
PROPORTION_METRICS = ("exact", "contains", "json", "label")


# ------------------------------------------------------------------------------- report
@dataclass
class Report:
    options: list[Option]
    queries_per_month: int
    metric: str
    tolerance: float
    rule: str
    recommendation: dict[str, Any]
    break_even: dict[str, Any]
    winner_by_volume: list[dict[str, Any]]
    warnings: list[dict[str, str]]
    self_host: dict[str, Any]
    price_files: list[str]
    today: _dt.date
    not_compared: list[dict[str, Any]] = field(default_factory=list)  # hosted options not evaluated

    @property
    def comparable(self) -> bool:
        return not any(w["kind"] in ("different_data", "different_examples") for w in self.warnings)

    def option(self, name_or_run: str) -> Option:
        for o in self.options:
            if name_or_run in (o.name, o.run_id):
                return o
        raise KeyError(name_or_run)

    def to_dict(self) -> dict[str, Any]:
        return {
            "report": "ftc compare",
            "date": self.today.isoformat(),
            "queries_per_month": self.queries_per_month,
            "metric": self.metric,
            "tolerance": self.tolerance,
            "rule": self.rule,
            "comparable": self.comparable,
            "warnings": list(self.warnings),
            "recommendation": self.recommendation,
            "break_even": self.break_even,
            "winner_by_volume": self.winner_by_volume,
            "self_host": self.self_host,
            "not_compared": list(self.not_compared),
            "options": [o.to_dict() for o in self.options],
            "price_files": [Path(p).name for p in self.price_files],
        }

    def to_markdown(self, image: str | None = REPORT_PNG) -> str:
        return _markdown(self, image)


# ------------------------------------------------------------------------------- build
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
    from .cost import _catalogue

    if not runs:
        raise UsageError("no eval runs to compare", hint="Give at least one eval run id or job id.")
    if isinstance(queries_per_month, bool) or not isinstance(queries_per_month, int) or queries_per_month < 1:
        raise UsageError(f"queries per month must be a whole number >= 1, not {queries_per_month!r}")
    if not (isinstance(tolerance, (int, float)) and 0 <= tolerance < 1):
        raise UsageError(f"tolerance must be >= 0 and < 1 (a score difference), not {tolerance!r}")
    if gpu_price_per_hour is not None and gpu_price_per_hour < 0:
        raise UsageError(f"GPU price must be >= 0, not {gpu_price_per_hour!r}")
    cat = _catalogue(prices, today)
    today = today or cat.today
    if gpu_price_per_hour is not None:
        import copy

        from .prices import Catalogue

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
        _price(o, cat, gpu, queries_per_month)
        _training(o, jobs)
        _lifecycle(o, cat, today)
        if o.failed:
            from .store import format_failures

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
        _sample_caveat(o, tolerance)
        _machine_caveats(o)
        options.append(o)

    q = queries_per_month
    rule = RULE.format(metric=metrics[0], tol=tolerance, points=round(tolerance * 100, 6), q=q)
    not_compared = _not_compared_hosted(options, cat, q, costs, today)
    rec = _recommend(options, q, tolerance, metrics[0], not_compared)
    data_w = [w for w in warnings if w["kind"] in ("different_data", "different_examples")]
    rec["comparable"] = not data_w
    if data_w and rec.get("recommended"):
        rec["caveats"] = [dict(w) for w in data_w] + rec.get("caveats", [])
        rec["text"] = "NOT COMPARABLE (the runs were not evaluated on the same examples): " + rec["text"]
    be = _break_even(options, q, tolerance, not_compared)
    wbv = _winner_by_volume(options, tolerance)
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
    import json

    from .errors import UsageError
    from .paths import job_dir

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
        if job.backend == "local":
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
    from .paths import STORE_FILE, ftc_home
    from .store import Store

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


def _short_ref(ref: str) -> str:
    """``fireworks:accounts/fireworks/models/llama-v3p1-8b-instruct`` -> ``fireworks:llama-v3p1-8b-instruct``."""
    provider, _, name = ref.partition(":")
    return f"{provider}:{name.rstrip('/').rsplit('/', 1)[-1]}"


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
        if s.get("backend") == "local" and shown in (None, "", "default"):
            shown = LOCAL_DEFAULT_MODEL_HF_ID
        n = f"{s.get('backend')}:{_short(shown)}"
        out.append(n + (" fine-tuned" if s.get("fine_tuned") else ""))
    for n in set(out):
        if out.count(n) > 1:
            out = [f"{x} #{str(s['run_id']).removeprefix('eval-')[:8]}" if x == n else x
                   for x, s in zip(out, summaries)]
    return out


def _float(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _redact(text: str) -> str:
    from .secrets import redact

    return redact(text)


def _option(s: dict, name: str) -> Option:
    metrics = dict(s.get("metrics") or {})
    backend = str(s.get("backend") or "?")
    score = _float(metrics.get("score"))
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
        model_ref=_redact(str(s.get("model_ref") or s.get("model") or "")),  # never a URL's credentials
        backend=backend,
        model=str(s.get("model") or ""),
        kind="hosted" if backend in HOSTED_BACKENDS else "self-hosted",
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
        throughput_qps=_float(s.get("throughput_qps")),
        eval_cost_per_1k_usd=_float(s.get("cost_per_1k_queries_usd")),
        eval_cost_basis=str(s.get("cost_basis") or ""),
    )


# ------------------------------------------------------------------------------ pricing
def _catalogue_model(o: Option, cat) -> Any:
    """The catalogue entry of the hosted model a run used (its base model first), or None."""
    cands = []
    if o.backend in ("openai", "together"):
        for x in (o.base_model, o.model):
            if x:
                cands.append(x if x.startswith(o.backend + ":") else f"{o.backend}:{x}")
    if ":" in o.model_ref:
        cands.append(o.model_ref)
    for c in cands:
        if cat.has_model(c):
            return cat.model(c)
    return None


def _open_model(o: Option, cat) -> Any:
    """The catalogue's open model (parameter count) of a local run's base model, or None."""
    base = o.base_model or o.model
    if o.backend == "local" and base in (None, "", "default"):
        base = LOCAL_DEFAULT_MODEL_HF_ID
    return cat.open_model_for(base) if base else None


def _price(o: Option, cat, gpu, q: int) -> None:
    o._q = q
    if o.kind == "self-hosted":
        _price_self(o, cat, gpu, q)
    else:
        _price_hosted(o, cat, q)
    if o.has_cost:
        o.monthly_usd = o.monthly_cost(q)
        o.cost_per_1k_usd = o.monthly_usd / q * 1000 if o.monthly_usd is not None else None
    else:
        o.caveat("no_cost", "no cost figure: the eval gave none and the catalogue does not price this model; "
                            "it ranks after every priced option")


def _price_hosted(o: Option, cat, q: int) -> None:
    from .prices import HOURS_PER_MONTH

    entry = _catalogue_model(o, cat)
    o.catalogue_model = entry.ref if entry is not None else None
    if entry is not None and o.fine_tuned and entry.serving == "dedicated":
        per_hour = entry.dedicated_endpoint_per_hour
        per_token = ""
        if o.eval_cost_per_1k_usd is not None:
            per_token = f" instead of the per-token ${o.eval_cost_per_1k_usd:.4f} per 1K queries the eval measured"
        if per_hour is None:
            o.serving = "dedicated endpoint (price unknown)"
            o.caveat("dedicated_endpoint", f"{entry.provider} has no serverless inference for fine-tuned LoRA models: "
                                           "it needs a dedicated endpoint, whose price the catalogue lacks; no cost figure")
            return
        fixed = per_hour * HOURS_PER_MONTH
        o.serving = "dedicated endpoint, always on"
        o._fixed_monthly = fixed
        o._monthly_fn = lambda v, _f=fixed: _f
        o.cost_basis = (f"dedicated endpoint ${per_hour:g}/h x {HOURS_PER_MONTH:g} h/month = ${fixed:,.2f}/month "
                        "at any volume (capacity assumed sufficient)")
        o.caveat("dedicated_endpoint", (
            f"{entry.provider} has no serverless inference for fine-tuned LoRA models: serving this one needs a "
            f"dedicated endpoint (${per_hour:g}/h, ${fixed:,.0f}/month always on), i.e. "
            f"${fixed / q * 1000:,.4f} per 1K queries at {q:,} queries/month{per_token}"))
        return
    per_1k = o.eval_cost_per_1k_usd
    basis = f"per token, from the eval: {o.eval_cost_basis}" if o.eval_cost_basis else "per token, from the eval"
    if per_1k is None and entry is not None:
        tin, tout = _float(o.tokens.get("input_per_query")), _float(o.tokens.get("output_per_query"))
        pi, po = entry.inference_input_per_1m, entry.inference_output_per_1m
        if tin is not None and tout is not None and pi is not None and po is not None:
            per_1k = (tin * pi + tout * po) / 1e6 * 1000
            basis = (f"per token, priced by the report: {tin:.1f} input x ${pi:g}/1M + {tout:.1f} output tokens x "
                     f"${po:g}/1M per query ({entry.ref}, catalogue as of {entry.as_of})")
    if per_1k is None:
        return
    per_q = per_1k / 1000
    o.serving = "serverless, per token"
    o._per_query = per_q
    o._fixed_monthly = 0.0
    o._monthly_fn = lambda v, _p=per_q: v * _p
    o.cost_basis = basis


class _Plan:
    """One way to serve a self-hosted model: its monthly cost at a volume, and the figures behind it."""

    def __init__(self, way: str, offer: str, usd_per_hour: float, billing: str,
                 at: Callable[[float], dict[str, Any]]):
        self.way, self.offer, self.usd_per_hour, self.billing, self._at = way, offer, usd_per_hour, billing, at

    def monthly(self, v: float) -> float:
        return float(self._at(v)["monthly_usd"])

    def at(self, v: float) -> dict[str, Any]:
        d = self._at(v)
        return {"way": self.way, "offer": self.offer, "usd_per_hour": self.usd_per_hour, "billing": self.billing,
                **d, "cost_per_1k_queries_usd": d["monthly_usd"] / v * 1000 if v else None}


#: The ways of serving a self-hosted model that the report compares (``serving_plans[].way``).
WAYS = {
    "gpu_always_on": "GPU instance, always on",
    "gpu_per_second": "GPU billed per second, scales to zero",
    "cpu_always_on": "CPU instance, always on",
}


def _pct(x: float) -> str:
    """A share as a percentage with two significant digits below 10% (0.0020%, 0.35%, 3.5%, 42.0%)."""
    p = float(x) * 100
    if p <= 0:
        return "0%"
    if p >= 10:
        return f"{p:.1f}%"
    return f"{p:.{max(1, 1 - math.floor(math.log10(p)))}f}%"


def _gpu_plan(gpu, gpu_s: float, how: str) -> _Plan:
    """An offer of the catalogue's ``gpus``: hourly (always on, one more GPU each time one is full)
    or per second (busy time and idle windows, :func:`ftclient.cost.serverless_gpu_hours`)."""
    from .cost import ASSUMPTIONS, serverless_gpu_hours
    from .prices import HOURS_PER_MONTH

    price, month_s = gpu.usd_per_hour, HOURS_PER_MONTH * 3600.0
    if gpu.serverless:
        a = ASSUMPTIONS

        def at(v: float) -> dict[str, Any]:
            hours = serverless_gpu_hours(v, gpu_s)
            busy_h = v * gpu_s / 3600.0
            monthly = hours * price
            return {"units": 1, "monthly_usd": monthly, "billed_hours": hours, "busy_s_per_query": gpu_s,
                    "utilisation": busy_h / hours if hours else 0.0, "capacity_queries_per_month": None,
                    "serving": f"{gpu.ref}, GPU billed per second, scales to zero ({hours:,.1f} GPU-h/month billed)",
                    "basis": (f"{hours:,.1f} billed GPU-h x ${price:g}/h = ${monthly:,.2f}/month: busy "
                              f"{busy_h * 3600:,.0f} s ({v:,.0f} queries x {gpu_s * 1000:.3g} GPU-ms, {how}) plus "
                              f"idle windows -- queries arriving at random, a container stays up "
                              f"{a.serverless_scaledown_s:g} s after each request and each cold start bills "
                              f"{a.serverless_cold_start_s:g} s (ftclient.cost.serverless_gpu_hours)")}

        return _Plan("gpu_per_second", gpu.ref, price, gpu.billing, at)
    cap = month_s / gpu_s if gpu_s > 0 else float("inf")

    def at_hourly(v: float) -> dict[str, Any]:
        n = max(1, math.ceil(v / cap)) if v > 0 else 1
        monthly = n * price * HOURS_PER_MONTH
        util = v * gpu_s / (n * month_s)
        return {"units": n, "monthly_usd": monthly, "billed_hours": n * HOURS_PER_MONTH, "busy_s_per_query": gpu_s,
                "utilisation": util, "capacity_queries_per_month": cap,
                "serving": f"{gpu.ref} always on ({n} GPU{'s' if n > 1 else ''}, {_pct(util)} busy)",
                "basis": (f"{n} x ${price:g}/h x {HOURS_PER_MONTH:g} h = ${monthly:,.2f}/month; one GPU serves up to "
                          f"{cap:,.0f} queries/month at {gpu_s * 1000:.3g} GPU-ms each ({how}); {v:,.0f} queries "
                          f"keep {'them' if n > 1 else 'it'} {_pct(util)} busy")}

    return _Plan("gpu_always_on", gpu.ref, price, gpu.billing, at_hourly)


def _cpu_plan(cpu, qps: float, cpus: int, device: str) -> _Plan:
    """A CPU instance of the catalogue's ``cpus``, always on, at the throughput the eval measured on
    this machine's CPUs, scaled to the instance's vCPUs (never above the measured figure)."""
    from .prices import HOURS_PER_MONTH

    price, month_s = cpu.usd_per_hour, HOURS_PER_MONTH * 3600.0
    scale = min(1.0, cpu.vcpus / cpus) if cpus else 1.0
    cap_qps = qps * scale
    cap = cap_qps * month_s

    def at(v: float) -> dict[str, Any]:
        n = max(1, math.ceil(v / cap)) if v > 0 else 1
        monthly = n * price * HOURS_PER_MONTH
        util = v / (n * cap)
        scaled = (f"scaled to its {cpu.vcpus} vCPUs ({cpu.vcpus}/{cpus}): {cap_qps:.3g} queries/s" if scale < 1
                  else f"kept at that rate on its {cpu.vcpus} vCPUs")
        return {"units": n, "monthly_usd": monthly, "billed_hours": n * HOURS_PER_MONTH,
                "busy_s_per_query": 1.0 / cap_qps, "utilisation": util, "capacity_queries_per_month": cap,
                "serving": (f"CPU: {cpu.ref} always on ({n} instance{'s' if n > 1 else ''}, {cpu.vcpus} vCPUs, "
                            f"{_pct(util)} busy)"),
                "basis": (f"{n} x ${price:g}/h x {HOURS_PER_MONTH:g} h = ${monthly:,.2f}/month; the eval measured "
                          f"{qps:.3g} queries/s on this machine's {cpus} CPUs, {scaled} = {cap:,.0f} "
                          f"queries/month per instance (throughput assumed proportional to vCPUs, never above the "
                          f"measured); {v:,.0f} queries keep {'them' if n > 1 else 'it'} {_pct(util)} busy")}

    return _Plan("cpu_always_on", cpu.ref, price, cpu.billing, at)


def _model_size(o: Option, cat) -> tuple[float, str, str | None] | None:
    """(billions of parameters, where that came from, catalogue key or None) of a local run's
    base model: the catalogue's open model, else its files on this machine or its name."""
    from .cost import resolve_self_host_model

    om = _open_model(o, cat)
    if om is not None:
        return om.params_b, f"{om.key}, {om.params_b:g}B params (price catalogue)", om.key
    base = o.base_model or o.model
    if not base:
        return None
    try:
        m = resolve_self_host_model(str(base), cat)
    except ConfigError:
        return None
    return m.params_b, f"{m.name}, {m.params_b:g}B params ({m.params_basis})", None


def _price_self(o: Option, cat, gpu, q: int) -> None:
    """Every way to serve a self-hosted model the report can price: the always-on GPU offer
    (``self_host_gpu``), each per-second GPU offer of the catalogue, and CPU instances at the
    throughput the eval measured when it ran on a CPU. The option costs its cheapest way at each
    volume; the ways it could not price are listed with the reason."""
    from .cost import ASSUMPTIONS, _self_host_inference

    plans: list[_Plan] = []
    tin, tout = _float(o.tokens.get("input_per_query")), _float(o.tokens.get("output_per_query"))
    size = _model_size(o, cat) if o.backend == "local" else None
    machine = o.machine or {}
    device = str(machine.get("device") or "")
    cpus = int(machine.get("cpu_count") or 0)
    if size is not None and tin is not None and tout is not None:
        params_b, size_basis, key = size
        o.catalogue_model = key
        gpus = [gpu] + [cat.gpu(r) for r in cat.gpu_refs() if r != gpu.ref and cat.gpu(r).serverless]
        for g in gpus:
            if g.spec is None:
                continue
            inf = _self_host_inference(params_b, g, tin, tout, ASSUMPTIONS)
            if not inf["fits"]:
                if g is gpu:
                    o.caveat("gpu_too_small", f"the model's weights do not fit {gpu.ref}'s memory for serving")
                o.not_compared.append({"way": "gpu_per_second" if g.serverless else "gpu_always_on", "offer": g.ref,
                                       "why": f"the model's bf16 weights do not fit its {g.spec.memory_gb:g} GB"})
                continue
            how = (f"throughput model: {size_basis}; {tin:.0f} prompt tokens at {inf['prefill_tokens_per_s']:,.0f} "
                   f"tok/s + {tout:.0f} completion tokens at {inf['decode_tokens_per_s']:,.0f} tok/s")
            plans.append(_gpu_plan(g, inf["gpu_seconds_per_query"], how))
    elif o.throughput_qps:
        gpu_s = 1.0 / o.throughput_qps
        how = f"1 / the {o.throughput_qps:.3g} queries/s the eval measured"
        if o.backend == "local":
            o.caveat("measured_throughput", (
                "the model's size is unknown (no catalogue entry, no files on this machine, no size in its name): "
                f"its GPU serving cost uses the throughput the eval measured on the evaluating machine "
                f"({o.throughput_qps:.2f} queries/s), not a {gpu.ref} figure"))
            o.not_compared.append({"way": "gpu_per_second", "offer": None,
                                   "why": "the model's size is unknown, so the GPU throughput model cannot price it"})
        else:
            o.caveat("measured_throughput", (
                f"serving cost from the throughput the eval measured against this server ({o.throughput_qps:.2f} "
                f"queries/s at the eval's concurrency) at {gpu.ref}'s ${gpu.usd_per_hour:g}/h: give --gpu-price "
                "with the server's real price per hour"))
            o.not_compared.append({"way": "gpu_per_second, cpu_always_on", "offer": None,
                                   "why": "the server's hardware is unknown: only its measured throughput on the "
                                          "--self-host-gpu offer is priced"})
        plans.append(_gpu_plan(gpu, gpu_s, how))
    if o.backend == "local":
        cpu_refs = cat.cpu_refs() if hasattr(cat, "cpu_refs") else []
        if not machine:
            why = "the eval did not record where it ran (a run by an older ftc): no CPU throughput to price"
        elif not device.startswith("cpu"):
            why = f"the eval ran on {device or 'an unknown device'}, so no CPU throughput was measured"
        elif not o.throughput_qps:
            why = "the eval measured no throughput"
        elif not cpu_refs:
            why = "the price catalogue has no CPU instance (cpus:)"
        else:
            why = ""
            need_gb = (size[0] * 4 * 1.2 + 1.0) if size is not None else 0.0  # fp32 weights + runtime
            for ref in cpu_refs:
                c = cat.cpu(ref)
                if c.memory_gb and c.memory_gb < need_gb:
                    o.not_compared.append({"way": "cpu_always_on", "offer": c.ref,
                                           "why": f"{c.memory_gb:g} GB of memory, the model needs ~{need_gb:.1f} GB"})
                    continue
                plans.append(_cpu_plan(c, float(o.throughput_qps), cpus or c.vcpus, device))
                if c.stale:
                    o.caveat("stale_price", f"the {c.ref} price is older than 90 days (as_of {c.as_of})")
        if why:
            o.not_compared.append({"way": "cpu_always_on", "offer": None, "why": why})
    if not plans:
        o.serving = f"self-hosted on {gpu.ref} (throughput unknown)"
        return
    o._plans = plans
    o._monthly_fn = lambda v, _p=plans: min(p.monthly(v) for p in _p)
    best = o.plan_at(q)
    o.serving = best["serving"]
    o.cost_basis = "estimated: " + best["basis"]
    if len(plans) == 1:  # the cost model's parts, for the break-even formulas
        pl = plans[0].at(q)
        o._per_query = pl["busy_s_per_query"] / 3600.0 * plans[0].usd_per_hour
        if plans[0].way == "gpu_always_on":
            o._fixed_monthly = plans[0].usd_per_hour * _hours_per_month()
            o._capacity = pl["capacity_queries_per_month"]
        else:
            o._fixed_monthly = 0.0
    if gpu.stale:
        o.caveat("stale_price", f"the {gpu.ref} price is older than 90 days (as_of {gpu.as_of})")


def _hours_per_month() -> float:
    from .prices import HOURS_PER_MONTH

    return HOURS_PER_MONTH


# ----------------------------------------------------------------------------- training
def _parse_time(v: Any) -> _dt.datetime | None:
    if not v:
        return None
    try:
        t = _dt.datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


def _training(o: Option, jobs: Mapping[str, Mapping[str, Any]]) -> None:
    if not o.job_id:
        if o.fine_tuned:
            o.caveat("no_job", "fine-tuned, but the run names no ftc job: training cost and time unknown")
        return
    job = jobs.get(o.job_id)
    if job is None:
        o.caveat("no_job", f"job {o.job_id} is not in the job store: training cost and time unknown")
        return
    o.job_state = job.get("state")
    spent, est = _float(job.get("cost_so_far_usd")), _float(job.get("estimate_usd"))
    if spent is not None:
        o.training_cost_usd, o.training_cost_basis = spent, "cost reported for the job (cost_so_far_usd)"
    elif est is not None:
        o.training_cost_usd, o.training_cost_basis = est, "ftc's estimate before submission (estimate_usd)"
    result = job.get("result") if isinstance(job.get("result"), Mapping) else {}
    wall = _float(result.get("total_wall_s")) if result else None
    if wall is None and result:
        wall = _float(result.get("wall_s"))
        basis = "training wall time of the last session (result.json wall_s)"
    else:
        basis = "training wall time, all sessions (result.json total_wall_s)"
    if wall is not None:
        o.training_time_s, o.training_time_basis = wall, basis
    else:
        t0, t1 = _parse_time(job.get("created_at")), _parse_time(job.get("finished_at"))
        if t0 and t1 and t1 >= t0:
            o.training_time_s = (t1 - t0).total_seconds()
            o.training_time_basis = "from submission to finish (includes time queued at the provider)"
    if o.job_state and o.job_state != "succeeded":
        o.caveat("job_not_succeeded", f"job {o.job_id} is {o.job_state}, not succeeded")


# ---------------------------------------------------------------------------- lifecycle
def _lifecycle(o: Option, cat, today: _dt.date) -> None:
    if o.kind != "hosted":
        return
    entry = _catalogue_model(o, cat)
    if entry is None:
        return
    if entry.inference_shutdown and o.fine_tuned:
        d = entry.inference_shutdown
        if today >= d:
            o.eligible = False
            o.caveat("retired", f"{entry.provider} shut fine-tuned {entry.name} models down on {d.isoformat()}: "
                                "this option is left out of the recommendation")
        else:
            o.caveat("retirement", f"{entry.provider} shuts fine-tuned {entry.name} models down on {d.isoformat()} "
                                   f"({(d - today).days} days from {today.isoformat()}): plan to move off it")
    if entry.train_cutoff:
        d = entry.train_cutoff
        when = "ended" if today >= d else "end"
        what = "retraining it (new data, new labels)" if o.fine_tuned else "fine-tuning it"
        o.caveat("retirement", f"new {entry.provider} fine-tuning jobs on {entry.name} {when} {d.isoformat()}: "
                               f"{what} " + ("is no longer possible" if today >= d else "will not be possible after that"))
    if entry.stale:
        o.caveat("stale_price", f"the {entry.ref} price is older than 90 days (as_of {entry.as_of})")


# ---------------------------------------------------------------- what the measurements rest on
def _ci_text(o: Option) -> str | None:
    """``48 examples: 89.6% (95% CI 77.8-95.5%)`` for a share-of-examples score, else None."""
    if o.score_ci95 is None or o.score is None or not o.score_n:
        return None
    lo, hi = o.score_ci95
    return f"{o.score_n} examples: {o.score * 100:.1f}% (95% CI {lo * 100:.1f}-{hi * 100:.1f}%)"


def _sample_caveat(o: Option, tol: float) -> None:
    """The score rests on a sample: its 95% interval, a caveat when that is wider than the tie tolerance."""
    if o.score is None or not o.score_n:
        return
    text = _ci_text(o)
    if text is not None:
        lo, hi = o.score_ci95  # type: ignore[misc]
        half = (hi - lo) / 2
        if half > tol:
            o.caveat("sample_size", (
                f"{text}: the interval is {half * 100:.1f} points either side, wider than the {tol * 100:g}-point "
                "tie tolerance, so scores closer than that are not told apart by this sample; evaluate more "
                "examples to settle the ranking"))
    elif o.score_n < 100:
        o.caveat("sample_size", f"only {o.score_n} examples: the mean {o.metric} score {o.score:.3f} may move by "
                                "several points on other examples")


def _machine_caveats(o: Option) -> None:
    """Where latency and throughput were measured: on a CPU, on a loaded machine, or not recorded."""
    m = o.machine
    if not m:
        if o.backend == "local":
            o.caveat("machine_unknown", "the eval did not record where it measured latency and throughput (device, "
                                        "CPUs, load): it was written by an older ftc; evaluate again for those figures")
        return
    device = str(m.get("device") or "")
    cpus = m.get("cpu_count")
    load = m.get("load_avg_1m") or {}
    if o.backend == "local" and device.startswith("cpu"):
        o.caveat("latency_cpu", (
            f"latency and throughput were measured on this machine's CPU ({cpus} CPUs), not on a GPU: a GPU answers "
            "faster than the latency shown; the GPU serving costs use the throughput model, the CPU serving cost "
            "this measurement"))
    peak, start = _float(load.get("max")), _float(load.get("start"))
    if isinstance(cpus, int) and cpus > 0 and peak is not None and peak > cpus:
        at_start = f", {start:.2f} when it started" if start is not None else ""
        o.caveat("machine_load", (
            f"the machine was loaded while the eval ran (1-minute load average up to {peak:.2f} on {cpus} CPUs"
            f"{at_start}): more work was ready to run than there were CPUs, so the latency is longer and the "
            "throughput lower than on a quiet machine; measure again on a quiet one for firm figures"))


def _not_compared_hosted(options: list[Option], cat, q: int, costs: Any, today: _dt.date) -> list[dict[str, Any]]:
    """Hosted options that were not evaluated, so their score is unknown: the cost stage's hosted
    rows (``costs``), else the catalogue's per-token hosts priced at the eval's tokens per query."""
    evaluated = {o.catalogue_model for o in options if o.catalogue_model} | {o.model_ref for o in options}
    why = "not evaluated: its score on this data is unknown"
    out: list[dict[str, Any]] = []
    if costs is not None:
        d = costs.to_dict() if hasattr(costs, "to_dict") else dict(costs)
        for r in d.get("rows") or []:
            if r.get("kind") != "hosted" or r.get("model") in evaluated:
                continue
            if r.get("serving") == "shut down" or "(retired)" in str(r.get("label") or ""):
                continue  # it can no longer be fine-tuned or served
            per_1k, serving = _float(r.get("inference_per_1k_usd")), str(r.get("serving") or "")
            monthly = None
            if per_1k is not None and "per token" in serving:
                monthly = per_1k * q / 1000
            elif _float(r.get("inference_monthly_usd")) is not None:  # a flat monthly cost (dedicated endpoint)
                monthly = float(r["inference_monthly_usd"])
                per_1k = monthly / q * 1000
            out.append({"name": r.get("label") or r.get("model"), "model": r.get("model"), "serving": serving,
                        "cost_per_1k_queries_usd": _round(per_1k, 6), "monthly_usd": _round(monthly, 4),
                        "why": why, "basis": "the cost stage (ftc cost compare): " + str(r.get("inference_basis"))})
    else:
        toks = next(((_float(o.tokens.get("input_per_query")), _float(o.tokens.get("output_per_query")), o.name)
                     for o in options if _float(o.tokens.get("input_per_query"))), None)
        for ref in cat.model_refs():
            e = cat.model(ref)
            if e.ref in evaluated or e.serving != "serverless":
                continue
            if (e.inference_shutdown and today >= e.inference_shutdown) or (e.train_cutoff and today >= e.train_cutoff):
                continue  # it can no longer be fine-tuned or served
            pi, po = e.inference_input_per_1m, e.inference_output_per_1m
            per_1k = monthly = None
            basis = "no token count from the evals to price it with"
            if toks is not None and toks[1] is not None and pi is not None and po is not None:
                per_1k = (toks[0] * pi + toks[1] * po) / 1e6 * 1000
                monthly = per_1k * q / 1000
                basis = (f"estimated: {toks[0]:.1f} input x ${pi:g}/1M + {toks[1]:.1f} output tokens x ${po:g}/1M per "
                         f"query (the tokens {toks[2]}'s eval counted with its own tokenizer; catalogue as of "
                         f"{e.as_of})")
            out.append({"name": _short_ref(e.ref), "model": e.ref, "serving": "serverless, per token",
                        "cost_per_1k_queries_usd": _round(per_1k, 6), "monthly_usd": _round(monthly, 4),
                        "why": why, "basis": basis})
    out.sort(key=lambda x: (x["monthly_usd"] is None, x["monthly_usd"] or 0.0, str(x["name"])))
    return out


# ------------------------------------------------------------------------ recommendation
def _rank_key(o: Option, q: float):
    c = o.monthly_cost(q)
    return (c is None, c if c is not None else 0.0, -(o.score or 0.0), o.name)


def pick(options: Sequence[Option], q: float, tolerance: float) -> tuple[Option | None, list[Option]]:
    """The rule: (winner, options meeting the bar) among eligible options at volume ``q``."""
    elig = [o for o in options if o.eligible and o.score is not None]
    if not elig:
        return None, []
    best = max(o.score for o in elig)  # type: ignore[type-var]
    bar = [o for o in elig if o.score >= best - tolerance - 1e-12]  # type: ignore[operator]
    return min(bar, key=lambda o: _rank_key(o, q)), bar


def _money(v: float | None) -> str:
    return format_usd(v)


def _per_1k(v: float | None) -> str:
    """A cost per 1K queries, always to 1/100 cent, so that per 1K x volume / 1000 = per month as shown."""
    return "-" if v is None else f"${v:,.4f}"


def _points(d: float) -> str:
    return f"{d * 100:.1f} points"


def _recommend(options: list[Option], q: int, tol: float, metric: str,
               not_compared: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    winner, bar = pick(options, q, tol)
    if winner is None:
        return {"recommended": None, "text": "no option can be recommended: none has a score and is still served"}
    if all((o.score or 0.0) <= 0.0 for o in bar):  # the best score is 0: every option scored 0
        names = ", ".join(o.name for o in options if o.eligible and o.score is not None)
        return {"recommended": None, "no_correct_answer": True, "text": (
            f"No option answered any example right: every score is {0.0:.3f} ({metric}; {names}). Nothing is "
            "recommended on score: check the model references, the prompt format and the metric. The costs "
            "below compare price only.")}
    elig = [o for o in options if o.eligible and o.score is not None]
    most = max(elig, key=lambda o: (o.score, -(_rank_key(o, q)[1]), o.name))
    priced = [o for o in elig if o.has_cost]
    cheapest = min(priced, key=lambda o: _rank_key(o, q)) if priced else None
    others = sorted((o for o in bar if o is not winner and o is not most), key=lambda o: _rank_key(o, q))
    alt = others[0] if others else None
    best = most.score or 0.0
    ci = _ci_text(winner)
    lines = [
        f"At {q:,} queries/month, **{winner.name}** wins: score {winner.score:.3f} ({metric}; "
        f"{'the best' if winner.score == best else _points(best - (winner.score or 0)) + ' below the best'}), "
        f"{_money(winner.monthly_usd)}/month inference ({_per_1k(winner.cost_per_1k_usd)} per 1K queries"
        + (f", served on {winner.plan_at(q)['serving']}" if winner._plans else "") + ")."  # type: ignore[index]
    ]
    if ci:
        lines.append(f"Its score rests on {ci}.")
    plans = winner.plans_at(q)
    seen_ways = {plans[0]["way"]} if plans else set()
    others_ways = []
    for p in plans[1:]:  # the cheapest of each other way
        if p["way"] not in seen_ways:
            seen_ways.add(p["way"])
            others_ways.append(p)
    if others_ways:
        lines.append("Other ways to serve it at this volume: " + "; ".join(
            f"{WAYS[p['way']]} ({p['offer']}) {_money(p['monthly_usd'])}/month, {_pct(p['utilisation'])} of the "
            f"billed {'GPU' if p['way'].startswith('gpu') else 'CPU'} time busy" for p in others_ways) + ".")
    if winner.not_compared:
        lines.append("Not priced for it: " + "; ".join(
            f"{WAYS.get(x['way'], x['way'])}{' ' + x['offer'] if x.get('offer') else ''}: {x['why']}"
            for x in winner.not_compared) + ".")
    if most is not winner:
        lines.append(f"The most accurate, {most.name} ({most.score:.3f}), is within the tolerance and costs "
                     f"{_money(most.monthly_usd)}/month.")
    if cheapest is not None and cheapest is not winner:
        lines.append(f"The cheapest overall, {cheapest.name}, costs {_money(cheapest.monthly_usd)}/month but scores "
                     f"{_points(best - (cheapest.score or 0))} below the best.")
    if alt is not None:
        lines.append(f"Next choice meeting the bar: {alt.name} ({alt.score:.3f}, {_money(alt.monthly_usd)}/month).")
    priced_nc = [x for x in not_compared if x.get("monthly_usd") is not None]
    if not_compared:
        shown = priced_nc[:4] or list(not_compared)[:4]
        more = len(not_compared) - len(shown)
        lines.append("Not compared (not evaluated, so their scores are unknown): " + "; ".join(
            f"{x['name']}" + (f" {_per_1k(x['cost_per_1k_queries_usd'])} per 1K queries = "
                              f"{_money(x['monthly_usd'])}/month" if x.get("monthly_usd") is not None else "")
            for x in shown) + (f"; and {more} more" if more > 0 else "") + ".")
    changing = [dict(c, option=winner.name, text=f"{winner.name}: {c['text']}")
                for c in winner.caveats if c["kind"] in _ANSWER_CHANGING]
    w_month = winner.monthly_usd
    for o in bar:
        # An option that the per-token price the eval measured would have made the winner,
        # but that needs a dedicated endpoint.
        if o is winner or "dedicated_endpoint" not in o.caveat_kinds() or o.eval_cost_per_1k_usd is None:
            continue
        per_token_month = o.eval_cost_per_1k_usd / 1000 * q
        if w_month is None or per_token_month < w_month:
            changing.append({"kind": "dedicated_endpoint", "option": o.name, "text": (
                f"{o.name} would win at the per-token price the eval measured ({_money(per_token_month)}/month), "
                f"but its host serves fine-tuned LoRA models only on a dedicated endpoint: {_money(o.monthly_usd)}/month")})
    cheaper_nc = [x for x in priced_nc if w_month is not None and x["monthly_usd"] < w_month]
    if cheaper_nc:
        changing.append({"kind": "not_evaluated", "option": None, "text": (
            f"{len(cheaper_nc)} hosted option(s) that were not evaluated cost less than {winner.name} at this "
            "volume: " + ", ".join(f"{x['name']} {_money(x['monthly_usd'])}/month" for x in cheaper_nc)
            + f"; one of them would win if a model fine-tuned there scored within {tol * 100:g} points of the best: "
            "evaluate it to know")})
    for o in options:
        if not o.eligible and "retired" in o.caveat_kinds() and o.score is not None and o.score >= best - tol:
            changing.append({"kind": "retired", "option": o.name, "text": (
                f"{o.name} ({o.score:.3f}) would meet the bar but is left out: "
                + "; ".join(c["text"] for c in o.caveats if c["kind"] == "retired"))})
    return {
        "recommended": winner.name,
        "run_id": winner.run_id,
        "score": winner.score,
        "monthly_inference_usd": _round(winner.monthly_usd, 4),
        "cost_per_1k_queries_usd": _round(winner.cost_per_1k_usd, 6),
        "score_ci95": None if winner.score_ci95 is None else [round(x, 6) for x in winner.score_ci95],
        "serving": winner.serving,
        "serving_plans": [_plan_dict(p) for p in plans],
        "bar": {"best_score": best, "min_score": best - tol, "meeting": [o.name for o in bar]},
        "cheapest_meeting_bar": winner.name,
        "most_accurate": most.name,
        "cheapest_overall": cheapest.name if cheapest else None,
        "next_choice": alt.name if alt else None,
        "caveats": changing,
        "excluded": [{"name": o.name, "why": "; ".join(c["text"] for c in o.caveats if c["kind"] in ("retired", "no_score"))}
                     for o in options if not o.eligible],
        "text": " ".join(lines),
    }


_ANSWER_CHANGING = ("dedicated_endpoint", "retirement", "retired", "failed_examples", "no_cost", "job_not_succeeded",
                    "sample_size", "machine_load",
                    "measured_throughput", "gpu_too_small")


# ---------------------------------------------------------------------------- break-even
def _scan(f: Callable[[float], float], lo: float = _SCAN_LO, hi: float = _SCAN_HI) -> list[float]:
    """Volumes where ``f`` (a difference of two monthly costs) changes sign: a log grid,
    each change refined by bisection to half a query. Each result is the volume where the sign changes."""
    n = int(round(math.log10(hi / lo) * _SCAN_STEPS_PER_DECADE))
    xs = [lo * (hi / lo) ** (i / n) for i in range(n + 1)]
    out = []
    prev = f(xs[0]) < 0
    for a, b in zip(xs, xs[1:]):
        cur = f(b) < 0
        if cur != prev:
            x0, x1 = a, b
            while x1 - x0 > 0.25 and x1 / x0 > 1 + 1e-12:
                mid = math.sqrt(x0 * x1)
                if (f(mid) < 0) == prev:
                    x0 = mid
                else:
                    x1 = mid
            out.append((x0 + x1) / 2)
        prev = cur
    return out


def _break_even(options: list[Option], q: int, tol: float,
                not_compared: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    from .cost import break_even_monthly, break_even_volume

    cloud, _ = pick([o for o in options if o.kind == "hosted" and o.has_cost], q, tol)
    own, _ = pick([o for o in options if o.kind == "self-hosted" and o.has_cost], q, tol)
    res: dict[str, Any] = {"cloud": cloud.name if cloud else None, "self_hosted": own.name if own else None,
                           "queries_per_month": None, "direction": None, "method": None}
    if cloud is None or own is None:
        missing = "cloud (hosted)" if cloud is None else "self-hosted (local)"
        res["text"] = f"no break-even: the comparison has no priced {missing} option that can be recommended"
        per_token = [x for x in not_compared if "per token" in str(x.get("serving"))
                     and x.get("cost_per_1k_queries_usd") is not None]
        if cloud is None and own is not None and per_token:
            ref = min(per_token, key=lambda x: x["cost_per_1k_queries_usd"])
            res["reference"] = _reference_break_even(own, ref)
            res["text"] += "; " + res["reference"]["text"]
        return res
    res["scores"] = {cloud.name: cloud.score, own.name: own.score}
    assert cloud._monthly_fn is not None and own._monthly_fn is not None
    fc, fs = cloud._monthly_fn, own._monthly_fn
    per_token = cloud._per_query is not None and cloud._fixed_monthly == 0.0
    own_way = "its cheapest serving way at each volume" if len(own._plans) > 1 else (own.plan_at(q) or {}).get(
        "offer") or "its serving"
    if per_token and len(own._plans) == 1 and own._per_query is not None:
        h = cloud._per_query or 0.0
        if own._capacity is not None:
            be = break_even_volume(h, own._per_query or 0.0, own._fixed_monthly or 0.0, own._capacity)
            res["method"] = "ftclient.cost.break_even_volume (always-on instance vs per-token)"
        else:
            be = break_even_monthly(h, fs)
            res["method"] = "ftclient.cost.break_even_monthly (per-second GPU vs per-token)"
        if be == "never":
            res["direction"] = "never"
            res["text"] = (f"self-hosting ({own.name}) never costs less than {cloud.name} "
                           f"({_per_1k(h * 1000)} per 1K queries) at any volume one instance can serve")
        elif be == 0:
            res["queries_per_month"] = 0
            res["direction"] = "self-hosted cheaper at any volume"
            res["text"] = f"self-hosting ({own.name}) costs less than {cloud.name} at any volume"
        else:
            res["queries_per_month"] = round(float(be))
            res["direction"] = "self-hosted cheaper above"
            res["text"] = (f"above ~{float(be):,.0f} queries/month, self-hosting ({own.name}, {own_way}) costs less "
                           f"than {cloud.name} ({_per_1k(h * 1000)} per 1K queries); below it, {cloud.name} is "
                           f"cheaper")
    else:
        xs = _scan(lambda v: fs(v) - fc(v))
        res["method"] = ("crossings of the two monthly cost curves (the self-hosted one: its cheapest serving way at "
                         "each volume), scanned from 1 to 1e12 queries/month")
        res["crossings"] = [round(x) for x in xs]
        how = f"{cloud.name}: {cloud.serving}" + ("" if per_token else f", {_money(fc(q))}/month at {q:,}")
        if not xs:
            cheaper_own = fs(1.0) < fc(1.0)
            res["direction"] = "self-hosted cheaper at any volume" if cheaper_own else "never"
            res["queries_per_month"] = 0 if cheaper_own else None
            res["text"] = (f"{'self-hosting (' + own.name + ')' if cheaper_own else cloud.name} costs less at every "
                           f"volume from 1 to 1e12 queries/month ({how})")
        else:
            below = fs(1.0) < fc(1.0)
            res["queries_per_month"] = round(xs[0])
            res["direction"] = "self-hosted cheaper below" if below else "self-hosted cheaper above"
            spans = []
            edges = [0.0] + xs + [None]
            own_cheaper = below
            for a, b in zip(edges, edges[1:]):
                if own_cheaper:
                    spans.append(f"below ~{b:,.0f}" if a == 0 else (f"from ~{a:,.0f} to ~{b:,.0f}" if b
                                                                     else f"above ~{a:,.0f}"))
                own_cheaper = not own_cheaper
            res["text"] = (f"self-hosting ({own.name}, {own_way}) costs less than {cloud.name} "
                           + " and ".join(spans) + f" queries/month, {cloud.name} elsewhere ({how}); at {q:,}, "
                           + (own.name if fs(q) < fc(q) else cloud.name) + " is cheaper")
    v = res["queries_per_month"]
    if isinstance(v, (int, float)) and v > 0:
        way = own.plan_at(v) or {}
        res["at_break_even"] = {"queries_per_month": v, "cloud_monthly_usd": round(fc(v), 4),
                                "self_hosted_monthly_usd": round(fs(v), 4), "self_hosted_way": way.get("offer")}
        res["text"] += (f" (at ~{v:,} queries/month: {cloud.name} {_money(fc(v))}/month, {own.name} "
                        f"{_money(fs(v))}/month on {way.get('offer')})")
    if (own.score or 0) < (cloud.score or 0) - tol:
        res["text"] += (f" -- but {own.name} scores {_points((cloud.score or 0) - (own.score or 0))} below "
                        f"{cloud.name}")
    return res


def _reference_break_even(own: Option, ref: Mapping[str, Any]) -> dict[str, Any]:
    """Where a self-hosted option's cheapest serving crosses a per-token price that was not
    evaluated (for scale only: that host's score is unknown)."""
    h = float(ref["cost_per_1k_queries_usd"]) / 1000
    assert own._monthly_fn is not None
    fs = own._monthly_fn
    xs = _scan(lambda v: fs(v) - v * h)
    out: dict[str, Any] = {"against": ref["name"], "cost_per_1k_queries_usd": ref["cost_per_1k_queries_usd"],
                           "crossings": [round(x) for x in xs], "queries_per_month": None}
    head = f"for scale, against the cheapest per-token price not evaluated ({ref['name']}, {_per_1k(h * 1000)} per 1K queries)"
    if not xs:
        cheaper = fs(1.0) < h
        out["queries_per_month"] = 0 if cheaper else None
        out["text"] = head + (f": {own.name} costs less at every volume" if cheaper
                              else f": {own.name} costs more at every volume up to 1e12 queries/month")
        return out
    v = round(xs[0])
    way = own.plan_at(v) or {}
    out["queries_per_month"] = v
    out["self_hosted_way"] = way.get("offer")
    out["text"] = (head + f": self-hosting {own.name} ({way.get('offer')}) costs less above ~{v:,} queries/month, "
                   f"where both cost ~{_money(fs(v))}/month")
    return out


def _winner_by_volume(options: list[Option], tol: float) -> list[dict[str, Any]]:
    """The rule's winner from 100 to 1e10 queries/month: ranges of volume and their winner."""
    lo, hi = 100.0, 1e10
    _, bar = pick(options, lo, tol)  # the bar does not depend on volume
    if all((o.score or 0.0) <= 0.0 for o in bar):
        return []  # every option scored 0: no winner on score at any volume
    priced = [o for o in bar if o.has_cost]
    if not priced:
        return []
    if len(priced) == 1:
        return [{"from": 0, "to": None, "winner": priced[0].name}]

    def winner(v: float) -> Option:
        return min(priced, key=lambda o: _rank_key(o, v))

    n = int(round(math.log10(hi / lo) * _SCAN_STEPS_PER_DECADE))
    xs = [lo * (hi / lo) ** (i / n) for i in range(n + 1)]
    ranges = [{"from": 0, "to": None, "winner": winner(lo).name}]
    for a, b in zip(xs, xs[1:]):
        wb = winner(b)
        if wb.name != ranges[-1]["winner"]:
            x0, x1 = a, b
            wa = ranges[-1]["winner"]
            while x1 - x0 > 0.25 and x1 / x0 > 1 + 1e-12:
                mid = math.sqrt(x0 * x1)
                if winner(mid).name == wa:
                    x0 = mid
                else:
                    x1 = mid
            v = round((x0 + x1) / 2)
            ranges[-1]["to"] = v
            ranges.append({"from": v, "to": None, "winner": wb.name})
    return ranges


# ------------------------------------------------------------------------------ markdown
def _md(s: Any) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _dur(s: float | None) -> str:
    if s is None:
        return "-"
    s = float(s)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def _ms(v: Any) -> str:
    f = _float(v)
    return "-" if f is None else (f"{f * 1000:.0f} ms" if f < 10 else f"{f:.1f} s")


def _markdown(r: Report, image: str | None) -> str:
    o0 = r.options[0]
    q = r.queries_per_month
    L: list[str] = ["# ftc comparison report", ""]
    data = ("the same data" if r.comparable else "DIFFERENT data") + (
        f" (`{_md(Path(o0.data).name)}`, sha256 `{o0.data_sha256[:12]}`, {o0.examples:,} examples)" if r.comparable else "")
    L.append(f"{len(r.options)} option{'s' if len(r.options) != 1 else ''} scored by `{r.metric}` on {data}; "
             f"volume **{q:,} queries/month**; prices as of the catalogue; {r.today.isoformat()}.")
    L.append("")
    for w in r.warnings:
        L.append(f"> **WARNING:** {_md(w['text'])}" if w["kind"] in ("different_data", "different_examples")
                 else f"> Note: {_md(w['text'])}")
        L.append("")
    rec = r.recommendation
    L += ["## Recommendation", ""]
    L.append(rec["text"])
    L.append("")
    L.append(f"Rule: {r.rule}.")
    L.append("")
    if rec.get("caveats"):
        L.append("Caveats that change the answer:")
        L.append("")
        L += [f"- {_md(c['text'])}" for c in rec["caveats"]]
        L.append("")
    for x in rec.get("excluded") or []:
        L.append(f"- Left out: {_md(x['name'])}: {_md(x['why'])}")
    if rec.get("excluded"):
        L.append("")
    if len(r.winner_by_volume) > 1:
        parts = []
        for w in r.winner_by_volume:
            span = (f"up to ~{w['to']:,}" if w["from"] == 0 else
                    f"~{w['from']:,} to ~{w['to']:,}" if w["to"] else f"from ~{w['from']:,}")
            parts.append(f"{span}: {w['winner']}")
        L.append("The winner changes with volume (queries/month): " + "; ".join(parts) + ".")
        L.append("")
    L.append(f"Break-even, cloud vs self-hosting: {r.break_even['text']}.")
    L.append("")
    L += ["## Options", ""]
    L.append("| option | score (" + _md(r.metric) + ") | 95% CI | per 1K queries | per month | latency p50 | p95 | "
             "training | training time | serving |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for o in r.options:
        mark = " (winner)" if o.name == rec.get("recommended") else ("" if o.eligible else " (left out)")
        ci = "-" if o.score_ci95 is None else f"{o.score_ci95[0] * 100:.1f}-{o.score_ci95[1] * 100:.1f}%"
        L.append("| " + " | ".join([
            _md(o.name) + mark,
            "-" if o.score is None else f"{o.score:.3f}" + (f" (n={o.score_n})" if o.score_n else ""),
            ci,
            _per_1k(o.cost_per_1k_usd), _money(o.monthly_usd),
            _ms(o.latency_s.get("p50")), _ms(o.latency_s.get("p95")),
            _money(o.training_cost_usd) if o.training_cost_usd is not None else "-",
            _dur(o.training_time_s),
            _md(o.serving),
        ]) + " |")
    L.append("")
    L.append(f"Per month = per 1K queries x {q:,} / 1,000. The 95% CI is the Wilson interval of the share of "
             "examples answered right (n examples).")
    L.append("")
    if image:
        L += [f"![{_md(r.metric)} against cost per 1K queries, and latency]({image})", ""]
    own = [o for o in r.options if o._plans or o.not_compared]
    if own:
        L += ["## Serving the self-hosted models", ""]
        L.append(f"Each self-hosted option costs its cheapest way of serving at {q:,} queries/month; every way "
                 "priced is listed (busy = the share of the billed time that answering takes).")
        L.append("")
        for o in own:
            L.append(f"**{_md(o.name)}**")
            L.append("")
            if o._plans:
                L.append("| way | offer | per month | per 1K queries | units | busy | how |")
                L.append("|---|---|---:|---:|---:|---:|---|")
                for i, p in enumerate(o.plans_at(q)):
                    L.append("| " + " | ".join([
                        WAYS[p["way"]] + (" (chosen)" if i == 0 else ""), _md(p["offer"]), _money(p["monthly_usd"]),
                        _per_1k(p["cost_per_1k_queries_usd"]), str(p["units"]), _pct(p["utilisation"]),
                        _md(p["basis"])]) + " |")
                L.append("")
            for x in o.not_compared:
                L.append(f"- Not priced: {WAYS.get(x['way'], x['way'])}"
                         + (f" {_md(x['offer'])}" if x.get("offer") else "") + f": {_md(x['why'])}")
            if o.not_compared:
                L.append("")
    if r.not_compared:
        L += ["## Not compared", ""]
        L.append("Hosted options that were not evaluated on this data: their cost is known, their score is not, so "
                 "the rule cannot rank them. Evaluate one (`ftc eval PROVIDER:MODEL --data EVAL.jsonl`) to compare it.")
        L.append("")
        L.append("| option | serving | per 1K queries | per month | why | how |")
        L.append("|---|---|---:|---:|---|---|")
        for x in r.not_compared:
            L.append("| " + " | ".join([_md(x["name"]), _md(x["serving"]), _per_1k(x["cost_per_1k_queries_usd"]),
                                         _money(x["monthly_usd"]), _md(x["why"]), _md(x["basis"])]) + " |")
        L.append("")
    L += ["## Break-even between cloud and self-hosting", ""]
    be = r.break_even
    L.append(f"{be['text']}.")
    if be.get("method"):
        L.append("")
        sh = r.self_host
        ways = [f"{sh['gpu']} at ${sh['usd_per_hour']:g}/h ({sh['billing']})"]
        if sh.get("per_second_gpus"):
            ways.append("per-second GPUs " + ", ".join(sh["per_second_gpus"]))
        if sh.get("cpu_instances"):
            ways.append("CPU instances " + ", ".join(sh["cpu_instances"]) + " (when the eval ran on a CPU)")
        L.append(f"Method: {be['method']}. Self-hosting priced on: {'; '.join(ways)}.")
    L.append("")
    L += ["## Caveats", ""]
    any_c = False
    for o in r.options:
        if o.caveats:
            any_c = True
            L.append(f"**{_md(o.name)}**")
            L.append("")
            L += [f"- {_md(c['text'])}" for c in o.caveats]
            L.append("")
    if r.not_compared:
        any_c = True
        L.append(f"**Not compared**: {len(r.not_compared)} hosted option(s) were not evaluated (see above); a cheaper "
                 "one may meet the bar.")
        L.append("")
    if not any_c:
        L += ["None.", ""]
    L += ["## How each figure is made", ""]
    for o in r.options:
        L.append(f"- **{_md(o.name)}** (run `{o.run_id}`, model `{_md(o.model)}`): cost: {_md(o.cost_basis or 'none')}"
                 + (f"; training: {_md(o.training_cost_basis)}" if o.training_cost_basis else "")
                 + (f"; time: {_md(o.training_time_basis)}" if o.training_time_basis else "")
                 + (f"; {o.failed} failed" if o.failed else "") + ".")
    L.append("")
    L.append("Latency is what the eval measured from the evaluating machine (network included for hosted "
             "options; a local run's latency is that machine's, not the GPU priced for self-hosting).")
    L.append("")
    return "\n".join(L)


# --------------------------------------------------------------------------------- chart
def render_png(r: Report) -> bytes:
    """Two panels: score against cost per 1K queries (log x when the spread is wide), and
    latency p50/p95 per option."""
    import io

    fig = render_figure(r)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _place_labels(fig: Any, ax: Any, labels: list[Any], gap_px: float = 2.0) -> None:
    """Move the point labels of ``ax`` (annotations offset in points from their point) up or
    down, one at a time in the order given, until none overlaps a label placed before it: the
    nearest free place below wins, else the nearest above, inside the axes where it can be. A
    label that moved is drawn again there with a thin line to its point (a simple greedy
    placement; no extra dependency)."""
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    ax_box = ax.get_window_extent(renderer)
    placed: list[Any] = []
    px_to_pt = 72.0 / fig.dpi
    for ann in labels:
        ann.update_positions(renderer)
        box = Text.get_window_extent(ann, renderer)  # the text alone, without any arrow
        step = box.height + gap_px
        dx, dy = ann.xyann
        best = None
        # labels come top-down: the nearest free place below keeps their order; above if none
        span = len(labels) + 1
        for shift in [0.0] + [-k * step for k in range(1, span)] + [k * step for k in range(1, span)]:
            cand = box.translated(0, shift)
            if any(cand.overlaps(b) for b in placed):
                continue
            inside = cand.y0 >= ax_box.y0 and cand.y1 <= ax_box.y1
            if inside or best is None:
                best = (shift, cand)
            if inside:
                break
        shift, cand = best  # type: ignore[misc]
        if shift:  # drawn again where it goes, with a line to its point
            ax.annotate(ann.get_text(), ann.xy, textcoords="offset points", xytext=(dx, dy + shift * px_to_pt),
                        ha=ann.get_ha(), fontsize=ann.get_fontsize(),
                        arrowprops={"arrowstyle": "-", "color": "#888888", "lw": 0.6, "shrinkA": 0, "shrinkB": 3})
            ann.remove()
        placed.append(cand)


def render_figure(r: Report) -> Any:
    """The matplotlib Figure behind :func:`render_png` (Agg), labels placed apart."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    opts = r.options
    n = len(opts)
    winner = r.recommendation.get("recommended")
    fig = Figure(figsize=(11, 5.2 + 0.42 * n), dpi=110)
    ax1, ax2 = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 0.9 + 0.32 * n]})
    color = {"hosted": "#4C72B0", "self-hosted": "#DD8452"}
    pts = [o for o in opts if o.cost_per_1k_usd is not None and o.score is not None]
    xs = [float(o.cost_per_1k_usd) for o in pts]  # type: ignore[arg-type]
    pos = [x for x in xs if x > 0]
    log = bool(pos) and len(pos) == len(xs) and max(pos) / min(pos) > 20
    best = r.recommendation.get("bar", {}).get("best_score")
    if best is not None:
        ax1.axhspan(best - r.tolerance, best, color="#55A868", alpha=0.15, zorder=0,
                    label=f"within {r.tolerance:g} of the best")
    if log:
        ax1.set_xscale("log")
        x_lo, x_hi = min(pos) / 3, max(pos) * 3
    else:
        x_lo, x_hi = 0.0, (max(xs) * 1.15 if xs and max(xs) > 0 else 1.0)
    ax1.set_xlim(x_lo, x_hi)

    def right_half(x: float) -> bool:
        if log:
            return math.log(x / x_lo) / math.log(x_hi / x_lo) > 0.55
        return (x - x_lo) / (x_hi - x_lo) > 0.55

    labels = []
    for o in pts:
        x = float(o.cost_per_1k_usd)  # type: ignore[arg-type]
        ax1.scatter(x, o.score, s=160 if o.name == winner else 70, color=color.get(o.kind, "grey"),
                    marker="*" if o.name == winner else ("o" if o.eligible else "x"), zorder=3)
        left = right_half(x)
        labels.append(ax1.annotate(o.name + (" (recommended)" if o.name == winner else ""), (x, o.score),
                                   textcoords="offset points", xytext=(-7 if left else 7, 5),
                                   ha="right" if left else "left", fontsize=8))
    scores = [float(o.score) for o in pts]  # type: ignore[arg-type]
    if scores:
        lo_y, hi_y = min(scores + ([best - r.tolerance] if best is not None else [])), max(scores)
        pad = max(0.02, (hi_y - lo_y) * 0.12)
        ax1.set_ylim(lo_y - pad, hi_y + pad)
    ax1.set_xlabel(f"inference cost per 1K queries at {r.queries_per_month:,} queries/month "
                   f"(USD{', log scale' if log else ''})")
    ax1.set_ylabel(f"score ({r.metric})")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=k) for k, c in color.items()
               if any(o.kind == k for o in pts)]
    if best is not None:
        from matplotlib.patches import Patch

        handles.append(Patch(color="#55A868", alpha=0.3, label=f"within {r.tolerance:g} of the best (tied)"))
    if handles:
        ax1.legend(handles=handles, fontsize=8, loc="best")
    missing = [o.name for o in opts if o not in pts]
    title = "score against inference cost"
    if missing:
        title += f" (not shown, no cost figure: {', '.join(missing)})"
    ax1.set_title(title, fontsize=9)
    ax1.grid(alpha=0.3)
    ys = list(range(n))[::-1]
    p50 = [_float(o.latency_s.get("p50")) or 0.0 for o in opts]
    p95 = [_float(o.latency_s.get("p95")) or 0.0 for o in opts]
    h = 0.38
    ax2.barh([y + h / 2 for y in ys], p50, height=h, color="#4C72B0", label="p50")
    ax2.barh([y - h / 2 for y in ys], p95, height=h, color="#C44E52", label="p95")
    ax2.set_yticks(ys)
    ax2.set_yticklabels([o.name for o in opts], fontsize=8)
    top = max(p50 + p95) if max(p50 + p95, default=0) > 0 else 1.0
    ax2.set_xlim(0, top * 1.2)
    for y, a, b in zip(ys, p50, p95):
        ax2.text(a + top * 0.01, y + h / 2, f"{a:.2f} s", va="center", fontsize=7)
        ax2.text(b + top * 0.01, y - h / 2, f"{b:.2f} s", va="center", fontsize=7)
    ax2.set_xlabel("latency per query, seconds, as the eval measured it")
    ax2.set_title("latency p50 / p95", fontsize=9)
    ax2.legend(fontsize=8, loc="lower right")
    ax2.grid(axis="x", alpha=0.3)
    title = (f"ftc compare: recommended at {r.queries_per_month:,} queries/month: "
             f"{r.recommendation.get('recommended') or 'none'}")
    if not r.comparable:
        title += "\nNOT COMPARABLE: the runs were not evaluated on the same examples"
    fig.suptitle(title, fontsize=11, color="black" if r.comparable else "#C44E52")
    fig.tight_layout()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)  # a renderer to measure the labels with
    # The winner's label first (it stays by its point), then from the top down.
    labels.sort(key=lambda a: (not a.get_text().endswith("(recommended)"), -a.xy[1], a.xy[0]))
    _place_labels(fig, ax1, labels)
    return fig


def write_report(report: Report, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write report.md, report.json and report.png into ``out_dir`` (created), each atomically.
    The chart is rendered first, so a failure leaves no partial set of new files."""
    d = Path(out_dir)
    if d.exists() and not d.is_dir():
        raise UsageError(f"{d}: exists and is not a directory", hint="Give --out a directory.")
    return write_report_files(d, png=render_png(report), markdown=report.to_markdown(REPORT_PNG),
                              data=report.to_dict())


def write_report_files(out_dir: str | os.PathLike, *, png: bytes, markdown: str,
                       data: Mapping[str, Any]) -> dict[str, Path]:
    """report.png, report.json and report.md into ``out_dir`` (created), each atomically, the
    text through the one redaction (no key or URL credential in a file)."""
    from .fileio import atomic_writer
    from .secrets import redact, redact_obj

    d = Path(out_dir)
    if d.exists() and not d.is_dir():
        raise UsageError(f"{d}: exists and is not a directory", hint="Give --out a directory.")
    md = redact(markdown)
    js = json.dumps(redact_obj(dict(data)), indent=2, ensure_ascii=False) + "\n"
    paths = {"md": d / REPORT_MD, "json": d / REPORT_JSON, "png": d / REPORT_PNG}
    with atomic_writer(paths["png"], "wb") as f:
        f.write(png)
    with atomic_writer(paths["json"]) as f:
        f.write(js)
    with atomic_writer(paths["md"]) as f:
        f.write(md)
    return paths


__all__ = [
    "DEFAULT_QUERIES_PER_MONTH",
    "DEFAULT_SELF_HOST_GPU",
    "DEFAULT_TOLERANCE",
    "PROPORTION_METRICS",
    "WAYS",
    "Option",
    "Report",
    "build_report",
    "pick",
    "render_png",
    "wilson_interval",
    "write_report",
    "write_report_files",
]
