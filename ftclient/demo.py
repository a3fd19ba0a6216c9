"""The demo: the whole path on a bundled real sample, offline, on a CPU.

Stages, each one call of the public API:

1. ``prepare``  the bundled BANKING77 sample (six intents) -> ChatML train/eval JSONL
2. ``validate`` the training file for every backend
3. ``cost``     fine-tuning and serving cost on every backend, offline
4. ``train``    a LoRA SFT of the default model of the backend that trains on this machine
                (the local backend's SmolLM2-135M-Instruct) as a tracked job (the same path
                as ``ftc train job.yaml --backend local``)
5. ``eval``     the base model and the fine-tuned one on the held-out messages
                (and, with ``with_backends``, hosted models through their APIs)
6. ``report``   the comparison report (report.md, report.json, report.png)

``run_demo`` returns what each produced and writes it under ``out_dir``. It is
resumable: a second run in the same directory reuses the finished training job and the
stored eval results, and picks up a training job that was interrupted.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from .backends import backend_attr, backends_offering, get_backend, here_backend, install_line, offers
from .cost import compare_costs, here_backend_of
from .data.prepare import prepare
from .errors import ConfigError, FtcError, UsageError
from .evaluation import evaluate
from .fileio import atomic_writer, write_json_atomic
from .jobs import PollPolicy
from .plot import plot_comparison
from .report import build_report, job_infos, write_report
from .secrets import KeyFormatError, env_var, get_key
from .store import Store
from .validation import checkable_backends, validate_file

INTENTS = ("card_arrival", "cash_withdrawal_charge", "exchange_rate", "lost_or_stolen_card", "pin_blocked",
           "top_up_failed")
SYSTEM_PROMPT = ("Route the customer's message to one intent. Answer with the intent name only, one of: "
                 + ", ".join(INTENTS) + ".")
STAGES = ("prepare", "validate", "cost", "train", "eval", "report")
OFFLINE_STAGES = ("prepare", "validate", "cost")
STATE_FILE = "demo_state.json"


@dataclass(frozen=True)
class DemoSettings:
    """How much the demo trains and evaluates."""

    train_examples: Optional[int]  # None: the whole train split
    eval_examples: Optional[int]  # None: the whole eval split
    epochs: int
    batch_size: int = 8
    learning_rate: float = 4e-4
    max_seq_len: int = 256
    checkpoint_every: int = 10
    max_tokens: int = 12

    @classmethod
    def full(cls) -> "DemoSettings":
        return cls(train_examples=None, eval_examples=None, epochs=1)

    @classmethod
    def fast(cls) -> "DemoSettings":
        """A smoke run of every stage (a few steps): the numbers mean little."""
        return cls(train_examples=32, eval_examples=12, epochs=1, checkpoint_every=2, max_tokens=8)


def sample_path() -> Path:
    """The bundled BANKING77 sample (CC BY 4.0; see resources/BANKING77_LICENSE.md)."""
    return Path(str(resources.files("ftclient") / "resources" / "banking77_sample.csv"))


@dataclass
class DemoResult:
    out_dir: Path
    prepare: Any = None
    validation: dict[str, Any] = field(default_factory=dict)
    comparison: Any = None
    job: Any = None
    evals: list[dict] = field(default_factory=list)
    report: Any = None
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def files(self) -> dict[str, str]:
        out = self.out_dir
        files = {
            "train": out / "data" / "train.jsonl",
            "eval": out / "data" / "eval.jsonl",
            "prepare_report": out / "data" / "report.json",
            "cost_json": out / "cost.json",
            "cost_plot": out / "cost.png",
        }
        if self.job is not None:
            files["spec"] = out / "job.yaml"
        if self.report is not None:
            files.update(report_md=out / "report" / "report.md", report_json=out / "report" / "report.json",
                         report_png=out / "report" / "report.png")
        return {k: str(v) for k, v in files.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "prepare": self.prepare.to_dict() if self.prepare is not None else None,
            "validation": {k: v.to_dict() for k, v in self.validation.items()},
            "cost": self.comparison.to_dict() if self.comparison is not None else None,
            "job": self.job.to_dict() if self.job is not None else None,
            "evals": self.evals,
            "report": self.report.to_dict() if self.report is not None else None,
            "skipped": self.skipped,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "files": self.files(),
        }


def hosted_models() -> dict[str, str]:
    """``{backend: model}``: the hosted model each ``--with`` backend is evaluated with (its
    ``example_model``, zero-shot): every installed backend that answers through an API
    (``async_chat_client``) and names an example model."""
    out = {}
    for name in backends_offering("async_chat_client"):
        model = backend_attr(name, "example_model")
        if model:
            out[name] = str(model)
    return out


def local_training_available() -> Optional[str]:
    """None when training on this machine can run here, else what is missing (and how to
    install it)."""
    import importlib.util

    here = here_backend()
    if here is None:
        return "no installed backend trains on this machine"
    missing = [m for m in backend_attr(here, "requires", ()) if importlib.util.find_spec(m) is None]
    if missing:
        line = install_line(backend_attr(here, "install_extra"), missing)
        return (f"training on this machine needs {', '.join(missing)}: install them with "
                f"`pip install torch==2.13.0 && {line}`")
    return get_backend(here).default_model_problem() if offers(here, "default_model_problem") else None


def _subset(src: Path, dst: Path, n: Optional[int]) -> Path:
    """The first ``n`` records of ``src`` (the split is already shuffled and stratified)."""
    if n is None:
        return src
    lines = [ln for ln in src.read_text(encoding="utf-8").splitlines() if ln.strip()][:n]
    with atomic_writer(dst) as f:
        f.write("\n".join(lines) + "\n")
    return dst


def demo_spec(train: Path, settings: DemoSettings) -> dict[str, Any]:
    """The job spec the demo trains with (written to ``job.yaml``)."""
    return {
        "name": "banking77-demo",
        "base_model": "default",
        "method": "sft",
        "adapter": "lora",
        "data": {"train": str(train.resolve())},
        "hyperparameters": {"epochs": settings.epochs, "batch_size": settings.batch_size,
                            "learning_rate": settings.learning_rate, "max_seq_len": settings.max_seq_len,
                            "seed": 42},
        here_backend_of(): {"device": "auto", "checkpoint_every": settings.checkpoint_every},
    }


def _read_state(out: Path) -> dict[str, Any]:
    try:
        return json.loads((out / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_state(out: Path, state: dict[str, Any]) -> None:
    write_json_atomic(out / STATE_FILE, state)


def _train(out: Path, spec: dict[str, Any], store: Any, on_progress: Callable) -> Any:
    """Submit the local job (or reuse / resume the one an earlier run started) and watch it."""
    from . import jobs as J

    poll = PollPolicy(initial=1.0, factor=1.0, max_interval=1.0)
    state = _read_state(out)
    job = None
    if state.get("job_id") and state.get("spec") == spec:
        try:
            job = store.get_job(state["job_id"])
        except Exception:  # noqa: BLE001 - gone from this store: train again
            job = None
        if job is not None and job.state in ("failed", "cancelled", "submit_unknown"):
            job = None
    if job is None:
        job = J.submit(spec, here_backend_of(), store=store)
        _write_state(out, {**state, "job_id": job.id, "spec": spec})

    def on_update(u: Any) -> None:
        j = u.job
        on_progress("train", j.step or 0, j.total_steps, f"step {j.step or 0}/{j.total_steps or '?'}"
                    + (f", loss {j.loss:.3f}" if j.loss is not None else ""))

    if job.state != "succeeded":
        J.watch(job.id, store=store, poll=poll, on_update=on_update)
    job = store.get_job(job.id)
    if job.state != "succeeded":
        raise FtcError(f"the demo's training job {job.id} ended {job.state}: {job.error or 'no reason given'}",
                       hint=f"See `ftc jobs show {job.id}` and its log; run `ftc demo` again to retry.")
    return job


def _check_hosted(with_backends: Sequence[str]) -> list[str]:
    """The hosted backends to add, checked before anything long starts (a key for each)."""
    out = []
    known = hosted_models() if with_backends else {}
    for b in with_backends:
        if b not in known:
            raise UsageError(f"--with {b}: not a hosted backend the demo knows",
                             hint=f"Use one or more of: {', '.join(known) or 'none is installed'}.")
        try:
            get_key(b)
        except KeyFormatError:
            raise  # a key that cannot be one: its own message, naming the variable or the file
        except ConfigError:
            raise ConfigError(f"--with {b} needs an API key for {b}",
                              hint=f"Set {env_var(b)} or run `ftc keys set {b}`.") from None
        if b not in out:
            out.append(b)
    return out


def run_demo(
    out_dir: str | Path = "ftc-demo",
    *,
    epochs: Optional[int] = None,
    queries_per_month: int = 100_000,
    fast: bool = False,
    offline_only: bool = False,
    with_backends: Sequence[str] = (),
    price_per_hour: Optional[float] = None,
    store: Any = None,
    on_stage: Optional[Callable[[str, str], None]] = None,
    on_progress: Optional[Callable[[str, int, Optional[int], str], None]] = None,
) -> DemoResult:
    """Run every stage; ``on_stage(stage, state)`` is called with 'start', 'done' or 'skipped';
    ``on_progress(stage, completed, total, text)`` follows training and evaluation.

    ``offline_only`` stops after the cost comparison (as does a machine without the local
    training extras; the reason is in ``result.skipped``). ``price_per_hour``: the $/h of
    the machine that serves the local models, for their cost per 1K queries."""
    settings = DemoSettings.fast() if fast else DemoSettings.full()
    if epochs is not None:
        settings = DemoSettings(**{**settings.__dict__, "epochs": epochs})
    hosted = _check_hosted(with_backends)
    out = Path(out_dir)
    result = DemoResult(out_dir=out)
    notify = on_stage or (lambda stage, state: None)
    progress = on_progress or (lambda *a: None)

    def stage(name: str) -> float:
        notify(name, "start")
        return time.perf_counter()

    def done(name: str, t: float) -> None:
        result.seconds[name] = time.perf_counter() - t
        notify(name, "done")

    t = stage("prepare")
    result.prepare = prepare(sample_path(), out / "data", system=SYSTEM_PROMPT, input_col="text",
                             output_col="category", seed=42)
    done("prepare", t)

    t = stage("validate")
    train = out / "data" / "train.jsonl"
    for provider in checkable_backends():  # every installed backend's rules
        result.validation[provider] = validate_file(train, provider)
    done("validate", t)

    t = stage("cost")
    # the self-hosted rows price the model the demo trains (the default model of the backend
    # that trains here: SmolLM2-135M-Instruct)
    result.comparison = compare_costs(train, epochs=settings.epochs, queries_per_month=queries_per_month,
                                      self_host_model="default")
    write_json_atomic(out / "cost.json", result.comparison.to_dict())
    plot_comparison(result.comparison, out / "cost.png")
    done("cost", t)

    missing = "skipped (--offline)" if offline_only else local_training_available()
    if missing:
        for s in STAGES[len(OFFLINE_STAGES):]:
            result.skipped[s] = missing
            notify(s, "skipped")
        write_json_atomic(out / "demo.json", result.to_dict())
        return result

    own_store = store is None
    st = Store() if own_store else store
    try:
        t = stage("train")
        train_file = _subset(train, out / "data" / "train_demo.jsonl", settings.train_examples)
        spec = demo_spec(train_file, settings)
        import yaml

        with atomic_writer(out / "job.yaml") as f:
            yaml.safe_dump(spec, f, sort_keys=False)
        result.job = _train(out, spec, st, progress)
        done("train", t)

        t = stage("eval")
        evals = out / "data" / "eval.jsonl"
        here = here_backend_of()
        models = hosted_models()
        refs = [f"{here}:default", f"{here}:{result.job.id}"] + [f"{b}:{models[b]}" for b in hosted]
        for ref in refs:
            def on_eval(p: Any, ref: str = ref) -> None:
                progress("eval", p.done, p.total, ref)

            result.evals.append(evaluate(ref, evals, metric="label", max_examples=settings.eval_examples,
                                         max_tokens=settings.max_tokens, store=st, on_progress=on_eval,
                                         gpu_price_per_hour=price_per_hour if ref.startswith(f"{here}:") else None))
        done("eval", t)

        t = stage("report")
        jobs = job_infos(st, result.evals)
        result.report = build_report(result.evals, jobs=jobs, queries_per_month=queries_per_month,
                                     costs=result.comparison)
        write_report(result.report, out / "report")
        done("report", t)
    finally:
        if own_store:
            st.close()
    write_json_atomic(out / "demo.json", result.to_dict())
    return result
