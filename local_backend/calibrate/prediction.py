"""The whole run predicted from a few measured steps (a pure function of the measurements).

**Predicted** wall time = setup (imports + model load + trainer build + start) + the measured
warm-up and the other measured steps + the rest of the run + saves x one save + evaluations x
one evaluation + the final save + the trainer's finish. The rest of the run, for SFT: the
remaining positions fed x the steady seconds per position -- a padded batch costs what its
positions cost, so batches with longer rows, and a short last batch, are priced as they are
(on 2 CPU cores, seconds per position varied half as much from step to step as seconds per
token); for DPO (whose batches are padded in parts): the remaining steps x the steady seconds
per step. The calibration runs the same first batches as the real run (same seed), which can
be longer or shorter than the average: that is why the rest is not simply steps x s/step.

A :class:`Calibration` keeps the measurements, so other epochs, checkpoint intervals and
prices are re-predicted from them (:meth:`Calibration.for_run`); steady steps whose cost per
position varies more than :data:`NOISY_SPREAD` (:func:`steady_spread`) mean the machine was busy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional

from .counts import DataCounts, checkpoint_saves, count_optimizer_steps, evaluations, micro_batches_per_epoch

SCHEMA = 1
NOISY_SPREAD = 1.5  # steady steps whose cost per position varies more than this: the machine was busy


@dataclass
class Measurements:
    """What the short run measured on this machine (seconds)."""

    imports_s: float
    imports_measured: bool  # False: the libraries were already imported in this process
    model_load_s: float
    trainer_build_s: float
    trainer_start_s: float
    step_seconds: list[float]
    step_tokens: list[int]
    warmup_steps: int
    checkpoint_save_s: Optional[float]
    eval_s: Optional[float]
    final_save_s: float
    finish_s: float
    conversion_s: Optional[float] = None  # one-time GGUF conversion (not part of later runs)
    step_positions: list[int] = field(default_factory=list)  # token positions fed (padding included)

    @property
    def steady(self) -> tuple[list[float], list[int]]:
        w = self.warmup_used
        return self.step_seconds[w:], self.step_tokens[w:]

    @property
    def warmup_used(self) -> int:
        """Warm-up steps actually set apart (all but one when the run was shorter)."""
        return max(0, min(self.warmup_steps, len(self.step_seconds) - 1))

    @property
    def seconds_per_step(self) -> float:
        t, _ = self.steady
        return sum(t) / len(t) if t else 0.0

    @property
    def tokens_per_step(self) -> float:
        _, x = self.steady
        return sum(x) / len(x) if x else 0.0

    @property
    def seconds_per_token(self) -> Optional[float]:
        t, x = self.steady
        return sum(t) / sum(x) if t and sum(x) > 0 else None

    @property
    def seconds_per_position(self) -> Optional[float]:
        """Steady seconds per token position fed (padding included): what a padded batch costs."""
        if len(self.step_positions) != len(self.step_seconds):
            return None
        w = self.warmup_used
        t, x = self.step_seconds[w:], self.step_positions[w:]
        return sum(t) / sum(x) if t and sum(x) > 0 else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        spt = self.seconds_per_token
        d.update(seconds_per_step=self.seconds_per_step, tokens_per_step=self.tokens_per_step,
                 tokens_per_second=(1.0 / spt) if spt else None, seconds_per_position=self.seconds_per_position,
                 warmup_used=self.warmup_used)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Measurements":
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class Prediction:
    """The full run's wall time, in parts that add up to ``total_s``."""

    optimizer_steps: int
    tokens: int
    checkpoint_saves: int
    evaluations: int
    setup_s: float
    warmup_s: float
    steps_s: float
    checkpoints_s: float
    evaluations_s: float
    final_save_s: float
    finish_s: float
    total_s: float
    steps_basis: str

    @property
    def hours(self) -> float:
        return self.total_s / 3600.0

    def parts(self) -> dict[str, float]:
        return {"setup_s": self.setup_s, "warmup_s": self.warmup_s, "steps_s": self.steps_s,
                "checkpoints_s": self.checkpoints_s, "evaluations_s": self.evaluations_s,
                "final_save_s": self.final_save_s, "finish_s": self.finish_s}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hours"] = self.hours
        return d


@dataclass
class Settings:
    """The run's settings that the prediction needs (from the plan)."""

    method: str
    adapter: str
    base_model: str
    device: str
    precision: str
    model_dtype: str
    batch_size: int
    gradient_accumulation_steps: int
    epochs: int
    max_seq_len: int
    packing: bool
    gradient_checkpointing: bool
    save_steps: int
    drop_last: bool = False
    has_eval: bool = False
    lora_r: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Settings":
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


def predict(m: Measurements, counts: DataCounts, s: Settings) -> Prediction:
    """The full run's wall time from the measurements (a pure function: re-run for other epochs
    or checkpoint intervals)."""
    steps = count_optimizer_steps(counts.rows, s.batch_size, s.gradient_accumulation_steps, s.epochs,
                                  drop_last=s.drop_last)
    keep = 1.0
    if s.drop_last and counts.rows:
        keep = micro_batches_per_epoch(counts.rows, s.batch_size, drop_last=True) * s.batch_size / counts.rows
    tokens = round(counts.tokens_per_epoch * s.epochs * keep)
    k = len(m.step_seconds)
    w = m.warmup_used
    setup = m.imports_s + m.model_load_s + m.trainer_build_s + m.trainer_start_s
    warmup = sum(m.step_seconds[:min(w, steps)])
    spt = m.seconds_per_token
    spp = m.seconds_per_position
    if steps <= k:
        rest = sum(m.step_seconds[w:steps]) if steps > w else 0.0
        basis = f"all {steps} steps measured"
    elif s.method == "sft" and spp is not None and counts.positions_per_epoch:
        remaining = max(counts.positions_per_epoch * s.epochs - sum(m.step_positions), 0.0)
        rest = sum(m.step_seconds[w:]) + remaining * spp
        basis = (f"{k - w} measured steps + the remaining ~{remaining:,.0f} token positions fed (padding "
                 f"included) x {spp * 1000:.3g} ms/position (steady: {m.seconds_per_step:.3g} s/step at "
                 f"{m.tokens_per_step:,.0f} tokens/step)")
    elif s.method == "sft" and spt is not None and tokens > 0:
        remaining_tokens = max(tokens - sum(m.step_tokens), 0)
        rest = sum(m.step_seconds[w:]) + remaining_tokens * spt
        basis = (f"{k - w} measured steps + the remaining {remaining_tokens:,} tokens x {spt * 1000:.3g} ms/token "
                 f"(steady: {m.seconds_per_step:.3g} s/step at {m.tokens_per_step:,.0f} tokens/step)")
    else:
        rest = sum(m.step_seconds[w:]) + (steps - k) * m.seconds_per_step
        basis = f"{k - w} measured steps + the remaining {steps - k} steps x {m.seconds_per_step:.3g} s/step (steady)"
    saves = checkpoint_saves(steps, s.save_steps)
    evals = evaluations(steps, s.save_steps, s.has_eval)
    ckpt = saves * (m.checkpoint_save_s or 0.0)
    ev = evals * (m.eval_s or 0.0)
    total = setup + warmup + rest + ckpt + ev + m.final_save_s + m.finish_s
    return Prediction(optimizer_steps=steps, tokens=tokens, checkpoint_saves=saves, evaluations=evals,
                      setup_s=setup, warmup_s=warmup, steps_s=rest, checkpoints_s=ckpt, evaluations_s=ev,
                      final_save_s=m.final_save_s, finish_s=m.finish_s, total_s=total, steps_basis=basis)


@dataclass
class Calibration:
    """A calibrated estimate of one local training run on this machine."""

    key: str
    created_at: str
    model: str
    model_source: str
    data: str
    device: str
    device_name: str
    precision: str
    settings: Settings
    counts: DataCounts
    measured: Measurements
    prediction: Prediction
    calibration_steps: int
    calibration_wall_s: float
    price: Optional[dict[str, Any]] = None
    cost: Optional[dict[str, Any]] = None
    notes: list[str] = field(default_factory=list)

    @property
    def cost_usd(self) -> Optional[float]:
        return None if self.cost is None else self.cost.get("cost_usd")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "key": self.key, "created_at": self.created_at, "model": self.model,
            "model_source": self.model_source, "data": self.data, "device": self.device,
            "device_name": self.device_name, "precision": self.precision, "settings": self.settings.to_dict(),
            "counts": self.counts.to_dict(), "measured": self.measured.to_dict(),
            "prediction": self.prediction.to_dict(), "calibration_steps": self.calibration_steps,
            "calibration_wall_s": self.calibration_wall_s, "price": self.price, "cost": self.cost,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        settings = Settings.from_dict(d["settings"])
        counts = DataCounts(**d["counts"])
        measured = Measurements.from_dict(d["measured"])
        return cls(key=d["key"], created_at=d["created_at"], model=d["model"], model_source=d["model_source"],
                   data=d["data"], device=d["device"], device_name=d["device_name"], precision=d["precision"],
                   settings=settings, counts=counts, measured=measured, prediction=predict(measured, counts, settings),
                   calibration_steps=d["calibration_steps"], calibration_wall_s=d["calibration_wall_s"],
                   price=d.get("price"), cost=d.get("cost"), notes=list(d.get("notes") or []))

    def for_run(self, *, epochs: Optional[int] = None, save_steps: Optional[int] = None,
                price: Optional[dict[str, Any]] = None) -> "Calibration":
        """The same measurements, predicted for other epochs / checkpoint interval / price."""
        s = replace(self.settings, epochs=epochs or self.settings.epochs, save_steps=save_steps or self.settings.save_steps)
        pred = predict(self.measured, self.counts, s)
        return replace(self, settings=s, prediction=pred, price=price, cost=run_cost(pred.total_s, price))


def run_cost(seconds: float, price: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
    if not price:
        return None
    from ftclient.cost import local_training_cost

    return local_training_cost(seconds, price)


def steady_spread(m: Measurements) -> Optional[float]:
    """max / min of the steady steps' seconds per position fed (per step without positions)."""
    w = m.warmup_used
    t = m.step_seconds[w:]
    if len(t) < 3:
        return None
    x = m.step_positions[w:] if len(m.step_positions) == len(m.step_seconds) else [1] * len(t)
    per = [a / b for a, b in zip(t, x) if b > 0 and a > 0]
    return max(per) / min(per) if len(per) >= 3 else None


def at_fastest_rate(m: Measurements) -> Optional[Measurements]:
    """The measurements with every steady step at the fastest steady rate (per position fed)."""
    w = m.warmup_used
    if len(m.step_positions) != len(m.step_seconds) or len(m.step_seconds) - w < 1:
        return None
    rate = min(t / x for t, x in zip(m.step_seconds[w:], m.step_positions[w:]) if x > 0)
    secs = m.step_seconds[:w] + [rate * x for x in m.step_positions[w:]]
    return replace(m, step_seconds=secs)
