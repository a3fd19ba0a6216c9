"""The training cost and time of the job a fine-tuned option's model came from."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Mapping

from .format import finite_float
from .options import Option


def _parse_time(v: Any) -> _dt.datetime | None:
    if not v:
        return None
    try:
        t = _dt.datetime.fromisoformat(str(v).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


def add_training(o: Option, jobs: Mapping[str, Mapping[str, Any]]) -> None:
    """The training cost and time of ``o``'s job (from ``jobs``), or a caveat saying why they are unknown."""
    if not o.job_id:
        if o.fine_tuned:
            o.caveat("no_job", "fine-tuned, but the run names no ftc job: training cost and time unknown")
        return
    job = jobs.get(o.job_id)
    if job is None:
        o.caveat("no_job", f"job {o.job_id} is not in the job store: training cost and time unknown")
        return
    o.job_state = job.get("state")
    spent, est = finite_float(job.get("cost_so_far_usd")), finite_float(job.get("estimate_usd"))
    if spent is not None:
        o.training_cost_usd, o.training_cost_basis = spent, "cost reported for the job (cost_so_far_usd)"
    elif est is not None:
        o.training_cost_usd, o.training_cost_basis = est, "ftc's estimate before submission (estimate_usd)"
    result = job.get("result") if isinstance(job.get("result"), Mapping) else {}
    wall = finite_float(result.get("total_wall_s")) if result else None
    if wall is None and result:
        wall = finite_float(result.get("wall_s"))
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
