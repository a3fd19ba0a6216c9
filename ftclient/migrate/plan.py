"""``ftc migrate plan``: one costed job spec per replacement candidate.

For each backend named with ``--to``, a spec that trains on the fine-tune's own training
data (the provider's copy where it hands it out, else the user's copy, checked by size),
with the job's epochs, batch size and learning-rate multiplier translated, and a base
model chosen from the price catalogue:

* a backend the catalogue prices per token (hosted): its cheapest fine-tunable model of
  the original's size class (``mini``/``nano`` models: up to 16B parameters; the others:
  16B to 100B), cheapest training first, then cheapest inference;
* a backend that trains open weights itself (``local``): the smallest of the catalogue's
  open models in that size class.

``--base BACKEND=MODEL`` overrides the choice. Each candidate's training cost and $ per 1K
queries are printed beside what the fine-tune costs today.
"""

from __future__ import annotations

import datetime as _dt
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ..backends import available_backends, get_backend
from ..cost import compare_costs, default_epochs
from ..errors import ConfigError, FtcError, UsageError
from ..fileio import count_records, sha256_file, write_json_atomic, write_text_atomic
from ..prices import load_catalogue
from ..spec import parse_spec
from .files import check_own_copy
from .scan import FineTuneReport, find_fine_tune
from .source import ProviderFile

__all__ = ["Candidate", "MigrationPlan", "plan_migration", "choose_base", "DEFAULT_SELF_HOST_GPU"]

#: The always-on GPU offer a self-trained candidate's training and serving are priced on.
DEFAULT_SELF_HOST_GPU = "runpod:rtx4090-community"

_SMALL = re.compile(r"mini|nano|small|haiku|flash", re.IGNORECASE)
_BANDS = {"small": (0.0, 16.0), "large": (16.0, 100.0)}


@dataclass
class Candidate:
    backend: str
    base_model: str
    choice: str  # why this base model
    spec: str  # the spec file
    hyperparameters: dict[str, Any]
    translation: list[str]
    training_usd: float | None
    training_basis: str
    per_1k_usd: float | None
    monthly_usd: float | None
    inference_basis: str
    train_command: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class MigrationPlan:
    model: str
    source: str
    base_model: str
    job_id: str
    out_dir: str
    data: dict[str, Any]
    queries_per_month: int
    current: dict[str, Any]
    candidates: list[Candidate]
    shutdown: str | None
    days_left: int | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = dict(vars(self))
        d["candidates"] = [c.to_dict() for c in self.candidates]
        return d


def _size_class(base_model: str) -> str:
    return "small" if _SMALL.search(base_model) else "large"


def choose_base(backend: str, original: str, cat: Any) -> tuple[str, str]:
    """(model, why) for ``backend``: see the module docstring. ConfigError when the catalogue
    has nothing for it."""
    size = _size_class(original)
    lo, hi = _BANDS[size]
    hosted = []
    for key in cat.model_refs():
        provider, _, name = key.partition(":")
        if provider != backend:
            continue
        e = cat.model(key)
        if e.params_b is None or not (lo < e.params_b <= hi) or e.training_closed():
            continue
        try:
            train = e.training_price("sft", "lora")
        except ConfigError:
            continue
        infer = (e.inference_input_per_1m or 0.0) + (e.inference_output_per_1m or 0.0)
        hosted.append((train, infer, name, e.params_b))
    band = f"{lo:g}B-{hi:g}B" if lo else f"up to {hi:g}B"
    if hosted:
        train, infer, name, params = min(hosted)
        return name, (f"the catalogue's cheapest {backend} model of {band} parameters ({params:g}B; "
                      f"${train:g}/1M training tokens, ${infer:g}/1M in+out), the size class of {original}")
    if any(k.partition(":")[0] == backend for k in cat.model_refs()):
        raise ConfigError(f"the price catalogue has no {backend} model of {band} parameters to replace {original}",
                          hint=f"Choose one with --base {backend}=MODEL.")
    opens = []
    for key, d in (cat.data.get("open_models") or {}).items():
        p = float(d.get("params_b") or 0)
        if max(lo, 1.0) < p <= hi and d.get("hf_id"):
            opens.append((p, key, d["hf_id"]))
    if not opens:
        raise ConfigError(f"the price catalogue has no open model of {band} parameters to replace {original}",
                          hint=f"Choose one with --base {backend}=MODEL.")
    p, key, hf = min(opens)
    return hf, (f"the catalogue's smallest open model of {band} parameters ({key}, {p:g}B), "
                f"the size class of {original}")


def _translate(ft: FineTuneReport, backend_obj: Any, n_examples: int, method: str,
               adapter: str) -> tuple[dict[str, Any], list[str]]:
    hp = ft.fine_tune.hyperparameters
    out: dict[str, Any] = {}
    why: list[str] = []
    n_epochs = hp.get("n_epochs")
    if isinstance(n_epochs, int) and not isinstance(n_epochs, bool) and n_epochs >= 1:
        out["epochs"] = n_epochs
        why.append(f"epochs {n_epochs}: the original job's n_epochs")
    else:
        out["epochs"] = default_epochs(n_examples)
        why.append(f"epochs {out['epochs']}: the original job's n_epochs was {n_epochs!r}; the heuristic OpenAI's "
                   f"'auto' follows for {n_examples} examples")
    bs = hp.get("batch_size")
    if bs is not None:
        why.append(f"batch_size: the backend's default (the original {bs!r} was sized for OpenAI's own training "
                   "setup; other backends have their own limits, e.g. Together's minimum of 8)")
    m = hp.get("learning_rate_multiplier")
    default_lr = getattr(backend_obj, "default_learning_rate", None)
    base_lr = default_lr(method, adapter) if callable(default_lr) else None
    if isinstance(m, (int, float)) and not isinstance(m, bool) and m > 0 and base_lr:
        lr = min(base_lr * 4, max(base_lr / 10, base_lr * float(m)))
        out["learning_rate"] = float(f"{lr:.3g}")
        why.append(f"learning_rate {out['learning_rate']:g}: the backend's default {base_lr:g} x the original "
                   f"learning_rate_multiplier {m:g} (OpenAI's multiplier scales a base rate it does not publish; "
                   "this keeps the same ratio to each backend's default, kept within 1/10 to 4x of it)")
    else:
        out["learning_rate"] = None
        why.append(f"learning_rate: the backend's default (the original multiplier was {m!r})")
    return out, why


def _spec_name(ft: FineTuneReport, backend: str) -> str:
    stem = ft.fine_tune.suffix or ft.fine_tune.job_id
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{stem}-{backend}").strip("-._")
    return (name or f"migrated-{backend}")[:64]


def _spec_text(ft: FineTuneReport, backend: str, base: str, hp: dict[str, Any], data_rel: str,
               eval_rel: str | None, method: str, why: list[str], choice: str) -> str:
    doc: dict[str, Any] = {
        "name": _spec_name(ft, backend),
        "base_model": base,
        "method": method,
        "adapter": "lora",
        "data": {"train": data_rel, **({"eval": eval_rel} if eval_rel else {})},
        "hyperparameters": {k: v for k, v in hp.items() if v is not None},
        backend: {"model": base},
    }
    try:
        parse_spec(doc, source=f"{backend} spec")
    except FtcError:
        doc.pop(backend)  # a backend whose block has no model option takes base_model
        parse_spec(doc, source=f"{backend} spec")
    head = [f"# Replacement of {ft.ref} (job {ft.fine_tune.job_id}), written by `ftc migrate plan`.",
            f"# Base model: {choice}."]
    head += [f"# {w}." for w in why]
    head.append(f"# Train it with: ftc train <this file> --backend {backend}")
    return "\n".join(head) + "\n" + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def _training_data(ft: FineTuneReport, training_data: str | Path | None, allow_different: bool) -> tuple[Path, str]:
    t = ft.training
    if training_data is not None:
        if t is None:
            p = Path(training_data).expanduser()
            if not p.is_file():
                raise UsageError(f"{p}: no such file")
            return p, f"your copy {p.name} (the job names no training file to check it against)"
        info = ProviderFile(id=t.id, filename=t.filename, bytes=t.bytes, exists=t.exists)
        p = check_own_copy(training_data, info, what="training file", allow_different=allow_different)
        same = t.bytes is not None and p.stat().st_size == t.bytes
        return p, (f"your copy {p.name}, " + (f"{t.bytes:,} bytes like {t.id}" if same else
                                              f"NOT the size of {t.id} (--allow-different-data)"))
    if t is not None and t.local_copy:
        return Path(t.local_copy), f"{t.id} ({t.filename or 'training file'}), downloaded from {ft.fine_tune.source}"
    why = t.refusal if t is not None and t.refusal else "the job names no training file"
    raise UsageError(f"the training data of {ft.model} cannot be downloaded: {why}",
                     hint=f"Give your own copy with --training-data FILE (checked against the {t.bytes:,} bytes "
                          f"of {t.id})." if t is not None and t.bytes else
                          "Give your own copy with --training-data FILE.")


def _costs(train: Path, ref: str, *, epochs: int, q: int, prices: Any, self_host_model: str | None,
           gpu: str) -> tuple[Any, str | None]:
    try:
        if self_host_model is None:
            rows = compare_costs(train, [ref], epochs=epochs, queries_per_month=q, prices=prices).rows
        else:
            rows = compare_costs(train, [gpu], epochs=epochs, queries_per_month=q, prices=prices,
                                 self_host_model=self_host_model).rows
        return (rows[0] if rows else None), None
    except FtcError as e:
        return None, e.message


def plan_migration(model: str, to: Sequence[str], out_dir: str | Path, *, training_data: str | Path | None = None,
                   allow_different_data: bool = False, base: Mapping[str, str] | None = None,
                   queries_per_month: int = 10_000, self_host_gpu: str = DEFAULT_SELF_HOST_GPU, prices: Any = None,
                   today: _dt.date | None = None, client: Any = None) -> MigrationPlan:
    """Write ``out_dir/data/``, one ``out_dir/<backend>/job.yaml`` per backend in ``to`` and
    ``out_dir/plan.json``; return the plan (see the module docstring)."""
    backends = [b.strip().lower() for b in to if b and b.strip()]
    if not backends:
        raise UsageError("name at least one backend to move to", hint="e.g. --to local,together")
    known = available_backends()
    for b in backends:
        if b not in known:
            raise UsageError(f"unknown backend {b!r}", hint=f"Installed: {', '.join(known)}.")
    base = {k.strip().lower(): v.strip() for k, v in (base or {}).items()}
    for k in base:
        if k not in backends:
            raise UsageError(f"--base {k}=...: {k} is not among --to {','.join(backends)}")
    if not isinstance(queries_per_month, int) or queries_per_month < 0:
        raise UsageError(f"--queries-per-month must be a whole number >= 0, not {queries_per_month!r}")
    today = today or _dt.date.today()
    cat = prices if hasattr(prices, "model") else load_catalogue(prices, today=today)
    ft = find_fine_tune(model, today=today, prices=cat, client=client)
    if ft.model is None:
        raise UsageError(f"job {ft.fine_tune.job_id} ({ft.fine_tune.status}) produced no model to replace")
    method = "dpo" if ft.fine_tune.method == "dpo" else "sft"
    notes: list[str] = []
    if ft.fine_tune.method not in ("supervised", "dpo"):
        notes.append(f"the original job used {ft.fine_tune.method!r} fine-tuning; the replacements use supervised "
                     "fine-tuning on the same data")
    src, origin = _training_data(ft, training_data, allow_different_data)
    # every choice is made (and can fail) before anything is written
    choices = []
    for b in backends:
        chosen, choice = ((base[b], f"{base[b]} (given with --base)") if b in base
                          else choose_base(b, ft.fine_tune.base_model, cat))
        choices.append((b, chosen, choice, get_backend(b)))
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a directory", hint="Give --out a directory.")
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    train = data_dir / "train.jsonl"
    if not (train.is_file() and sha256_file(train) == sha256_file(src)):
        tmp = data_dir / ".train.jsonl.part"
        shutil.copyfile(src, tmp)
        tmp.replace(train)
    eval_rel = None
    v = ft.validation
    if v is not None and v.local_copy:
        ev = data_dir / "eval.jsonl"
        shutil.copyfile(v.local_copy, data_dir / ".eval.jsonl.part")
        (data_dir / ".eval.jsonl.part").replace(ev)
        eval_rel = "../data/eval.jsonl"
    n = count_records(train)
    data = {"train": str(train), "origin": origin, "sha256": sha256_file(train), "bytes": train.stat().st_size,
            "examples": n, "eval": str(data_dir / "eval.jsonl") if eval_rel else None}
    q = queries_per_month
    epochs_now = ft.fine_tune.hyperparameters.get("n_epochs")
    cur_row, cur_err = _costs(train, f"{ft.fine_tune.source}:{ft.fine_tune.base_model}",
                              epochs=epochs_now if isinstance(epochs_now, int) else default_epochs(n), q=q,
                              prices=cat, self_host_model=None, gpu=self_host_gpu)
    current = {"ref": ft.ref, "per_1k_usd": cur_row.inference_per_1k_usd if cur_row else None,
               "monthly_usd": cur_row.inference_monthly_usd if cur_row else None,
               "basis": cur_row.inference_basis if cur_row else (cur_err or "not priced")}
    candidates = []
    for b, chosen, choice, backend_obj in choices:
        hp, why = _translate(ft, backend_obj, n, method, "lora")
        folder = out / b
        folder.mkdir(parents=True, exist_ok=True)
        spec_path = folder / "job.yaml"
        write_text_atomic(spec_path, _spec_text(ft, b, chosen, hp, "../data/train.jsonl", eval_rel, method, why,
                                                choice))
        hosted = any(k.partition(":")[0] == b for k in cat.model_refs())
        row, err = _costs(train, f"{b}:{chosen}", epochs=hp["epochs"], q=q, prices=cat,
                          self_host_model=None if hosted else chosen, gpu=self_host_gpu)
        cand_notes = [] if row is None else list(row.caveats)
        if err:
            cand_notes.append(f"not priced: {err}")
        candidates.append(Candidate(
            backend=b, base_model=chosen, choice=choice, spec=str(spec_path), hyperparameters=hp, translation=why,
            training_usd=row.training_cost_usd if row else None,
            training_basis=(row.training_basis if row else "unknown") + ("" if hosted else
                                                                         f" (priced on {self_host_gpu})"),
            per_1k_usd=row.inference_per_1k_usd if row else None,
            monthly_usd=row.inference_monthly_usd if row else None,
            inference_basis=(row.inference_basis if row else "unknown"),
            train_command=f"ftc train {spec_path} --backend {b}", notes=cand_notes))
    plan = MigrationPlan(model=ft.model, source=ft.fine_tune.source, base_model=ft.fine_tune.base_model,
                         job_id=ft.fine_tune.job_id, out_dir=str(out), data=data, queries_per_month=q,
                         current=current, candidates=candidates,
                         shutdown=ft.shutdown.isoformat() if ft.shutdown else None, days_left=ft.days_left,
                         notes=notes)
    write_json_atomic(out / "plan.json", plan.to_dict())
    return plan
