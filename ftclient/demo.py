"""The demo: the whole path on a bundled real sample, offline, on a CPU.

Stages: prepare the bundled BANKING77 sample -> validate it for every backend ->
compare the cost of fine-tuning and serving on every backend. Each stage is one call
of the public API; ``run_demo`` returns what each produced and writes it under
``out_dir``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Optional

SYSTEM_PROMPT = "Route the customer's message to one intent. Answer with the intent name only."
PROVIDERS = ("openai", "together", "local")
STAGES = ("prepare", "validate", "cost")


def sample_path() -> Path:
    """The bundled BANKING77 sample (CC BY 4.0; see resources/BANKING77_LICENSE.md)."""
    return Path(str(resources.files("ftclient") / "resources" / "banking77_sample.csv"))


@dataclass
class DemoResult:
    out_dir: Path
    prepare: Any = None
    validation: dict[str, Any] = field(default_factory=dict)
    comparison: Any = None
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "prepare": self.prepare.to_dict() if self.prepare is not None else None,
            "validation": {k: v.to_dict() for k, v in self.validation.items()},
            "cost": self.comparison.to_dict() if self.comparison is not None else None,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "files": {
                "train": str(self.out_dir / "data" / "train.jsonl"),
                "eval": str(self.out_dir / "data" / "eval.jsonl"),
                "prepare_report": str(self.out_dir / "data" / "report.json"),
                "cost_json": str(self.out_dir / "cost.json"),
                "cost_plot": str(self.out_dir / "cost.png"),
            },
        }


def run_demo(
    out_dir: str | Path = "ftc-demo",
    *,
    epochs: int = 3,
    queries_per_month: int = 100_000,
    on_stage: Optional[Callable[[str, str], None]] = None,
) -> DemoResult:
    """Run every stage; ``on_stage(stage, state)`` is called with state 'start' or 'done'."""
    from .cost import compare_costs
    from .data.prepare import prepare
    from .fileio import write_json_atomic
    from .plot import plot_comparison
    from .validation import validate_file

    out = Path(out_dir)
    result = DemoResult(out_dir=out)
    notify = on_stage or (lambda stage, state: None)

    def stage(name: str):
        notify(name, "start")
        return time.perf_counter()

    t = stage("prepare")
    result.prepare = prepare(sample_path(), out / "data", system=SYSTEM_PROMPT, input_col="text",
                             output_col="category", seed=42)
    result.seconds["prepare"] = time.perf_counter() - t
    notify("prepare", "done")

    t = stage("validate")
    train = out / "data" / "train.jsonl"
    for provider in PROVIDERS:
        result.validation[provider] = validate_file(train, provider)
    result.seconds["validate"] = time.perf_counter() - t
    notify("validate", "done")

    t = stage("cost")
    result.comparison = compare_costs(train, epochs=epochs, queries_per_month=queries_per_month)
    write_json_atomic(out / "cost.json", result.comparison.to_dict())
    plot_comparison(result.comparison, out / "cost.png")
    result.seconds["cost"] = time.perf_counter() - t
    notify("cost", "done")

    write_json_atomic(out / "demo.json", result.to_dict())
    return result
