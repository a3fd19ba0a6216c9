"""Caveats on an option: its model's lifecycle at the host (retirement dates, fine-tunes shut
down, stale prices), and what its measurements rest on (the sample behind the score, the machine
behind the latency and throughput)."""

from __future__ import annotations

import datetime as _dt

from .format import ci_text, finite_float
from .options import Option, runs_here
from .pricing import catalogue_entry


def lifecycle_caveats(o: Option, cat, today: _dt.date) -> None:
    """A hosted option's retirement dates (a retired fine-tune is left out) and stale prices, as of ``today``."""
    if o.kind != "hosted":
        return
    entry = catalogue_entry(o, cat)
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


def sample_caveat(o: Option, tol: float) -> None:
    """The score rests on a sample: its 95% interval, a caveat when that is wider than the tie tolerance."""
    if o.score is None or not o.score_n:
        return
    text = ci_text(o)
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


def machine_caveats(o: Option) -> None:
    """Where latency and throughput were measured: on a CPU, on a loaded machine, or not recorded."""
    m = o.machine
    if not m:
        if runs_here(o.backend):
            o.caveat("machine_unknown", "the eval did not record where it measured latency and throughput (device, "
                                        "CPUs, load): it was written by an older ftc; evaluate again for those figures")
        return
    device = str(m.get("device") or "")
    cpus = m.get("cpu_count")
    load = m.get("load_avg_1m") or {}
    if runs_here(o.backend) and device.startswith("cpu"):
        o.caveat("latency_cpu", (
            f"latency and throughput were measured on this machine's CPU ({cpus} CPUs), not on a GPU: a GPU answers "
            "faster than the latency shown; the GPU serving costs use the throughput model, the CPU serving cost "
            "this measurement"))
    peak, start = finite_float(load.get("max")), finite_float(load.get("start"))
    if isinstance(cpus, int) and cpus > 0 and peak is not None and peak > cpus:
        at_start = f", {start:.2f} when it started" if start is not None else ""
        o.caveat("machine_load", (
            f"the machine was loaded while the eval ran (1-minute load average up to {peak:.2f} on {cpus} CPUs"
            f"{at_start}): more work was ready to run than there were CPUs, so the latency is longer and the "
            "throughput lower than on a quiet machine; measure again on a quiet one for firm figures"))
