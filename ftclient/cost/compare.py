"""Every backend side by side: :func:`compare_costs`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..backends import get_backend
from ..budget import check_budget
from ..errors import UsageError
from ..paths import ftc_home
from ..prices import Catalogue
from .assumptions import ASSUMPTIONS, DEFAULT_QUERIES_PER_MONTH, Assumptions, catalogue_for, check_args, epochs_for
from .breakeven import break_even
from .counts import Counts
from .estimate import estimate_cost
from .local import estimate_local, is_local_ref
from .parquet import check_parquet, parquet_defaults
from .records import CompareRow, CostComparison
from .rows import hosted_row, local_row, self_row
from .selfhost import DEFAULT_SELF_HOST_MODEL, SelfHostModel, is_self_host, resolve_self_host_model


def _parse_models(models: str | Sequence[str] | None, cat: Catalogue) -> list[str]:
    if models is None:
        return cat.default_comparison()
    if isinstance(models, str):
        models = models.split(",")
    out = [m.strip() for m in models if m and m.strip()]
    if not out:
        raise UsageError("no models given", hint="e.g. --models openai:gpt-4.1-mini,modal:h100")
    return list(dict.fromkeys(out))


def compare_costs(
    path_or_records: str | os.PathLike | Iterable[dict],
    models: str | Sequence[str] | None = None,
    *,
    epochs: int | None = None,
    method: str = "sft",
    adapter: str = "lora",
    queries_per_month: int | None = None,
    tokens_per_query_in: int | None = None,
    tokens_per_query_out: int | None = None,
    gpu_prices: dict[str, float] | None = None,
    budget_usd: float | None = None,
    prices: Catalogue | str | os.PathLike | None = None,
    self_host_model: "str | SelfHostModel" = DEFAULT_SELF_HOST_MODEL,
    today=None,
    assumptions: Assumptions = ASSUMPTIONS,
    local_usd_per_hour: float | None = None,
    spec: Any = None,
) -> CostComparison:
    """Every backend side by side: training, inference per 1K queries and per month,
    break-even volume of self-hosting, budget check.

    A ``local:MODEL`` ref adds this machine's row: exact tokens and optimizer steps, the time
    of a cached calibration (``ftc cost estimate --calibrate``) or unknown, and its cost at
    ``local_usd_per_hour`` (or the ``spec``'s local price); see :func:`estimate_local`. Its
    serving cost is not estimated here: ``ftc eval`` measures it and ``ftc compare`` prices it."""
    method, adapter = check_args(epochs, method, adapter)
    q = DEFAULT_QUERIES_PER_MONTH if queries_per_month is None else queries_per_month
    if not isinstance(q, int) or isinstance(q, bool) or q < 0:
        raise UsageError(f"queries per month must be a whole number >= 0, not {queries_per_month!r}")
    for name, v in (("tokens per query in", tokens_per_query_in), ("tokens per query out", tokens_per_query_out)):
        if v is not None and (not isinstance(v, int) or v < 0):
            raise UsageError(f"{name} must be a whole number >= 0, not {v!r}")
    if budget_usd is not None:
        budget_usd = check_budget(budget_usd)
    cat = catalogue_for(prices, today)
    refs = _parse_models(models, cat)
    if models is None:  # the defaults: only models that can still be fine-tuned today
        refs = [r for r in refs if not (cat.has_model(r) and cat.model(r).training_closed())]
    not_compared: list[dict[str, str]] = []
    if models is None:  # a pre-tokenized Parquet file: the defaults that can train on it
        refs, not_compared = parquet_defaults(path_or_records, refs, cat, spec)
    for ref, usd in (gpu_prices or {}).items():
        if usd is None or usd < 0:
            raise UsageError(f"{ref}: GPU price must be >= 0")
        cat.set_gpu_price(ref, usd)
        if ref.lower() not in [r.lower() for r in refs]:
            refs.append(ref.lower())
    # Validate every ref before counting (fast failure with the closest names).
    for ref in refs:
        if is_local_ref(ref):
            local = get_backend(ref.partition(":")[0])
            local.resolve_model(local.model_name(ref))
        elif is_self_host(ref, cat):
            cat.gpu(ref)
        else:
            cat.model(ref)
    check_parquet(path_or_records, refs, cat, method)  # before it is read
    om = resolve_self_host_model(self_host_model, cat)
    counts = Counts.of(path_or_records)
    n = counts.n
    ep, ep_basis = epochs_for(epochs, n)
    rows: list[CompareRow] = []
    local_data: Path | None = None
    for ref in refs:
        if is_local_ref(ref):
            if local_data is None:
                local_data = _data_file(path_or_records, counts.records)
            est_l = estimate_local(local_data, ref, epochs=ep, method=method, adapter=adapter, spec=spec,
                                   usd_per_hour=local_usd_per_hour, prices=cat, today=today)
            rows.append(local_row(ref, est_l, budget_usd))
            continue
        est = estimate_cost(
            None, ref, epochs=ep, method=method, adapter=adapter, prices=cat,
            self_host_model=om, _counts=counts,
        )
        if est.kind == "hosted":
            rows.append(hosted_row(ref, est, cat.model(ref), counts, q, tokens_per_query_in, tokens_per_query_out, budget_usd))
        else:
            rows.append(self_row(ref, est, cat.gpu(ref), om, counts, q, tokens_per_query_in, tokens_per_query_out, budget_usd, assumptions))
    break_even(rows, q)
    tpq: dict[str, Any] = (
        {"input": tokens_per_query_in, "output": tokens_per_query_out, "basis": "given"}
        if tokens_per_query_in is not None and tokens_per_query_out is not None
        else {
            "input": tokens_per_query_in,
            "output": tokens_per_query_out,
            "basis": "per row, from the data: mean prompt tokens (messages before the last assistant "
            "one) and mean completion tokens (the last assistant message)"
            if counts.pretokenized is None else counts.pretokenized.query_basis,
        }
    )
    return CostComparison(
        rows=rows,
        examples=n,
        epochs=ep,
        epochs_basis=ep_basis,
        queries_per_month=q,
        tokens_per_query=tpq,
        budget_usd=budget_usd,
        self_host_model=om.name,
        self_host=om.to_dict(),
        assumptions=assumptions,
        catalogue_files=cat.files,
        not_compared=not_compared,
    )


def _data_file(path_or_records: Any, records: list[dict]) -> Path:
    """The data as a file (a local estimate is keyed by the file's sha256): the given path, or
    the records written once to a content-named file under ftc's cache."""
    if isinstance(path_or_records, (str, os.PathLike)):
        return Path(path_or_records)
    import hashlib

    text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in records)
    d = ftc_home() / "cache" / "compare-data"
    d.mkdir(parents=True, exist_ok=True)
    f = d / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.jsonl"
    if not f.is_file():
        tmp = f.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, f)
    return f
