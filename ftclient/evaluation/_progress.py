"""How far a call of :func:`~ftclient.evaluation.evaluate` is: :class:`EvalProgress` (what
``on_progress`` receives) and what this call did, as opposed to what the store holds (the
answers it added, its time answering, its notes, the machine and its load)."""

from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class EvalProgress:
    """Passed to ``on_progress`` after every stored answer (and once at the start)."""

    run_id: str
    total: int
    completed: int = 0
    """Answered, cached ones included."""
    failed: int = 0
    cached: int = 0
    """Answers reused from an earlier run of the same evaluation."""
    sent: int = 0
    """Examples answered (or failed) in this session."""
    retries: int = 0
    rate_limited: int = 0
    """Retries caused by HTTP 429."""
    elapsed_s: float = 0.0

    @property
    def done(self) -> int:
        return self.completed + self.failed

    @property
    def rate_qps(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class _Session:
    """What this call of :func:`evaluate` did (as opposed to what the store holds)."""

    progress: EvalProgress
    on_progress: Callable[[EvalProgress], None] | None
    t0: float = field(default_factory=time.monotonic)
    started_at: str = field(default_factory=_now_iso)
    new_completed: int = 0
    active_s: float = 0.0
    """Seconds spent answering (hosted: first request to last answer; local: generation)."""
    notes: list[str] = field(default_factory=list)
    device: str | None = None
    load_start: float | None = field(default_factory=lambda: _load_1m())
    """The 1-minute load average when the evaluation started (the machine's load before it)."""
    load_max: float | None = None

    def tick(self) -> None:
        self.progress.elapsed_s = time.monotonic() - self.t0
        load = _load_1m()
        if load is not None and (self.load_max is None or load > self.load_max):
            self.load_max = load
        if self.on_progress is not None:
            self.on_progress(self.progress)

    def machine(self) -> dict[str, Any]:
        """Where latency and throughput were measured: the device, the CPUs and their load."""
        end = _load_1m()
        peak = max((x for x in (self.load_start, self.load_max, end) if x is not None), default=None)
        return {"device": self.device, "cpu_count": os.cpu_count(),
                "load_avg_1m": {"start": self.load_start, "max": peak, "end": end}}


def _load_1m() -> float | None:
    """The 1-minute load average (runnable processes), or None where the OS has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None
