"""The price catalogue: model training/inference prices and GPU-hour prices.

The catalogue is the core's file (``resources/prices.yaml``: providers without a backend of
their own, open models, GPUs, CPUs), with each installed backend's own entries merged over
it (the YAML file its class names in ``price_catalogue``, see :func:`backend_catalogues`),
and a user file given by ``--prices FILE`` or ``$FTC_PRICES`` merged over all of them, entry
by entry and field by field. Every entry carries ``source`` and ``as_of``; an entry older than
:data:`STALE_AFTER_DAYS` (relative to ``today``, a parameter for tests) is ``stale``.

    cat = load_catalogue()
    m = cat.model("openai:gpt-4.1-mini")       # ModelEntry
    m.training_price(method="sft", adapter="lora")
    g = cat.gpu("runpod", "a100-community")    # GpuEntry

Dates a provider sets for a model are data: ``train_cutoff`` (the first day new fine-tuning
jobs are refused) and ``inference_shutdown`` (the first day its fine-tuned models no longer
answer); :meth:`ModelEntry.training_closed` / :meth:`ModelEntry.shut_down` read them
against ``today``.

A provider that prices fine-tuning by model size has a size tier (``tiers.<provider>``);
with ``prices_unlisted: true`` there, a model of that provider that the catalogue does not
list is priced by that tier from its parameter count: a catalogue entry or open model with
the same name, else the size in the name (``Llama-3.2-3B`` -> 3B, ``Qwen2.5-0.5B`` -> 0.5B,
``8x7B`` -> 56B). Without a known size, :meth:`Catalogue.model` raises ConfigError.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .backends import available_backends, normalize_name, owner_of
from .errors import ConfigError

CATALOGUE_FILE = Path(__file__).parent / "resources" / "prices.yaml"
#: The host of the user's own GPUs, priced per session (``--gpu-price own:rtx4090=0.25``).
OWN_GPU_HOST = "own"
STALE_AFTER_DAYS = 90
HOURS_PER_MONTH = 730.0  # 8,760 h / 12


def _date(v: Any, where: str) -> _dt.date | None:
    if v is None:
        return None
    if isinstance(v, _dt.datetime):
        return v.date()
    if isinstance(v, _dt.date):
        return v
    try:
        return _dt.date.fromisoformat(str(v))
    except ValueError:
        raise ConfigError(f"{where}: {v!r} is not a date (YYYY-MM-DD)") from None


def _num(v: Any, where: str, *, allow_none: bool = True) -> float | None:
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{where}: {v!r} is not a number")
    if v < 0:
        raise ConfigError(f"{where}: {v!r} is negative")
    return float(v)


@dataclass
class Priced:
    """Fields every catalogue entry has."""

    key: str
    source: str | None
    as_of: _dt.date | None
    today: _dt.date
    verified: bool = False
    note: str | None = None

    @property
    def age_days(self) -> int | None:
        return None if self.as_of is None else (self.today - self.as_of).days

    @property
    def stale(self) -> bool:
        """No date, or older than STALE_AFTER_DAYS."""
        return self.as_of is None or (self.today - self.as_of).days > STALE_AFTER_DAYS

    def provenance(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "stale": self.stale,
            "verified": self.verified,
            **({"note": self.note} if self.note else {}),
        }


@dataclass
class ModelEntry(Priced):
    provider: str = ""
    name: str = ""
    training_per_1m: float | None = None  # flat price (OpenAI); else from the tier
    tier: dict | None = None  # {"levels": [...], ...} for Together / Fireworks
    inference_input_per_1m: float | None = None
    inference_output_per_1m: float | None = None
    max_example_tokens: int | None = None
    params_b: float | None = None
    hf_id: str | None = None
    serving: str = "serverless"  # or "dedicated"
    dedicated_endpoint_per_hour: float | None = None
    dedicated_gpu: str | None = None
    min_charge_usd: float = 0.0
    train_cutoff: _dt.date | None = None  # new fine-tuning jobs refused from this day on
    inference_shutdown: _dt.date | None = None  # fine-tuned models stop answering from this day on
    encoding: str | None = None
    #: The inference prices are those of the model's fine-tuned versions (``inference_for:
    #: fine-tuned`` in the catalogue): the base model itself is billed less.
    inference_is_fine_tuned: bool = False
    listed: bool = True  # False: not in the catalogue, priced by its provider's size tier
    params_basis: str | None = None  # where params_b comes from, for a model not listed

    @property
    def ref(self) -> str:
        return f"{self.provider}:{self.name}"

    def training_closed(self, today: _dt.date | None = None) -> bool:
        """Whether the provider refuses new fine-tuning jobs for this model on ``today``."""
        t = today or self.today
        return self.train_cutoff is not None and t >= self.train_cutoff

    def shut_down(self, today: _dt.date | None = None) -> bool:
        """Whether this model's fine-tuned models no longer answer on ``today``."""
        t = today or self.today
        return self.inference_shutdown is not None and t >= self.inference_shutdown

    def retirement_text(self, today: _dt.date | None = None) -> str | None:
        """One phrase with the retirement dates as of ``today`` (past or coming), or None."""
        t = today or self.today
        parts = []
        if self.train_cutoff:
            d = self.train_cutoff.isoformat()
            parts.append(f"new fine-tuning jobs ended on {d}" if self.training_closed(t)
                         else f"new fine-tuning jobs end on {d} ({(self.train_cutoff - t).days} days left)")
        if self.inference_shutdown:
            d = self.inference_shutdown.isoformat()
            parts.append(f"fine-tuned models were shut down on {d} and no longer answer" if self.shut_down(t)
                         else f"fine-tuned models shut down on {d}")
        return "; ".join(parts) or None

    def training_price(self, method: str = "sft", adapter: str = "lora") -> float:
        """USD per 1M training tokens for this method (sft|dpo) and adapter (lora|qlora|full)."""
        method = method.lower()
        if method not in ("sft", "dpo"):
            raise ConfigError(f"unknown method {method!r}", hint="Use sft or dpo.")
        ad = {"qlora": "lora"}.get(adapter.lower(), adapter.lower())
        if ad not in ("lora", "full"):
            raise ConfigError(f"unknown adapter {adapter!r}", hint="Use lora, qlora or full.")
        if self.training_per_1m is not None:
            return self.training_per_1m
        if not self.tier or self.params_b is None:
            raise ConfigError(f"{self.ref}: no training price in the catalogue")
        for level in self.tier.get("levels", []):
            if self.params_b <= float(level["max_params_b"]):
                try:
                    return float(level[method][ad])
                except (KeyError, TypeError):
                    raise ConfigError(f"{self.ref}: the catalogue has no {method}/{ad} price") from None
        raise ConfigError(
            f"{self.ref}: {self.params_b}B parameters is above the largest priced tier",
            hint="Add a tier in a --prices file.",
        )

    def tier_label(self) -> str | None:
        if not self.tier or self.params_b is None:
            return None
        lo = 0.0
        for level in self.tier.get("levels", []):
            hi = float(level["max_params_b"])
            if self.params_b <= hi:
                return f"{lo:g}-{hi:g}B" if lo else f"up to {hi:g}B"
            lo = hi + 0.1
        return None

    def tier_basis(self, method: str = "sft", adapter: str = "lora") -> str | None:
        """How a size-tier price was chosen, e.g. ``size tier 3B (up to 16B; size read from
        the name) x published per-token price (SFT, LoRA)``; None without a tier."""
        label = self.tier_label()
        if label is None:
            return None
        where = f"; {self.params_basis}" if self.params_basis else ""
        ad = {"qlora": "LoRA", "lora": "LoRA", "full": "full"}.get(adapter.lower(), adapter)
        return f"size tier {self.params_b:g}B ({label}{where}) x published per-token price ({method.upper()}, {ad})"

    def caveats(self, today: _dt.date | None = None) -> list[str]:
        t = today or self.today
        out = []
        retired = self.retirement_text(t)
        if retired:
            out.append(("retired: " if self.training_closed(t) or self.shut_down(t) else "") + retired)
        if not self.listed:
            out.append(f"not in ftc's price catalogue: priced by {self.provider}'s size tier "
                       f"({self.params_basis or 'size given'}); no inference price")
        if self.serving == "dedicated":
            out.append("LoRA model served on a dedicated endpoint (billed per hour while on)")
        if self.stale:
            out.append(f"price older than {STALE_AFTER_DAYS} days (as_of {self.as_of})")
        return out


@dataclass
class GpuSpec:
    name: str
    bf16_tflops: float
    memory_gb: float
    mem_bw_gbps: float
    source: str | None = None


@dataclass
class GpuEntry(Priced):
    host: str = ""
    gpu: str = ""  # the key of the GPU offer at this host, e.g. a100-community
    usd_per_hour: float = 0.0
    billing: str = "hourly"  # per_second | hourly
    spec: GpuSpec | None = None

    @property
    def ref(self) -> str:
        return f"{self.host}:{self.gpu}"

    @property
    def serverless(self) -> bool:
        return self.billing in ("per_second", "serverless")


@dataclass
class OpenModel(Priced):
    params_b: float = 0.0
    hf_id: str | None = None


@dataclass
class CpuEntry(Priced):
    """A CPU instance offer (``cpus.<host>:<type>``): serving a small model without a GPU."""

    host: str = ""
    instance: str = ""
    vcpus: int = 0
    memory_gb: float = 0.0
    arch: str | None = None
    usd_per_hour: float = 0.0
    billing: str = "hourly"

    @property
    def ref(self) -> str:
        return f"{self.host}:{self.instance}"


@dataclass
class Catalogue:
    data: dict
    today: _dt.date
    files: list[str] = field(default_factory=list)
    #: Installed backends whose class was not imported to look for a price catalogue (the
    #: folder of their module holds no YAML file): asked only when one of their models is
    #: looked up and not found (:meth:`model`).
    unasked: tuple[str, ...] = field(default=(), repr=False)

    # ------------------------------------------------------------------ models
    def model_refs(self) -> list[str]:
        return sorted(self.data.get("models", {}))

    def default_comparison(self) -> list[str]:
        """What ``ftc cost compare`` compares when given no models: the model entries marked
        ``compare: default`` (in the order the catalogue files list them: the core's, each
        backend's, the user's), then the GPU offers so marked. A user's file turns one off
        with ``compare: none``."""
        return [key for section in ("models", "gpus") for key, d in self.data.get(section, {}).items()
                if isinstance(d, dict) and d.get("compare") == "default"]

    def providers(self) -> frozenset[str]:
        """Every provider the catalogue prices: the prefix of each model entry
        (``together`` of ``together:...``), the host of each GPU offer (``runpod`` of
        ``runpod:a100-community``) and ``own`` (the user's GPUs), lower case."""
        return frozenset({OWN_GPU_HOST} | {normalize_name(key.partition(":")[0]) for section in ("models", "gpus")
                                           for key in self.data.get(section, {}) if ":" in key})

    def model(self, ref: str) -> ModelEntry:
        """The entry of a hosted model, e.g. ``openai:gpt-4.1-mini``; ConfigError with
        the closest names when unknown. ``ft:`` prefixes and snapshot dates are accepted.

        A model the catalogue does not list, of a provider whose size tier has
        ``prices_unlisted: true``, is priced by that tier from its parameter count
        (:meth:`params_of`); ConfigError when the count is unknown."""
        models = self.data.get("models", {})
        try:
            key = self._resolve(ref, models)
        except ConfigError as e:
            if self.unasked:
                _check_unasked(ref, self.unasked)
            return self._unlisted(ref, e)
        d = models[key]
        provider, _, name = key.partition(":")
        where = f"prices: models.{key}"
        tier = None
        if d.get("tier"):
            tier = self.data.get("tiers", {}).get(d["tier"])
            if tier is None:
                raise ConfigError(f"{where}: unknown tier {d['tier']!r}")
        inf = d.get("inference") or {}
        tier_src = tier or {}
        min_charge = d.get("min_charge_usd", tier_src.get("min_charge_usd", 0.0))
        return ModelEntry(
            key=key,
            provider=provider,
            name=name,
            source=d.get("source") or tier_src.get("source"),
            as_of=_date(d.get("as_of") or tier_src.get("as_of"), where),
            today=self.today,
            verified=bool(d.get("verified", False)),
            note=d.get("note"),
            training_per_1m=_num(d.get("training_per_1m"), f"{where}.training_per_1m"),
            tier=tier,
            inference_input_per_1m=_num(inf.get("input_per_1m"), f"{where}.inference.input_per_1m"),
            inference_output_per_1m=_num(inf.get("output_per_1m"), f"{where}.inference.output_per_1m"),
            max_example_tokens=int(d["max_example_tokens"]) if d.get("max_example_tokens") else None,
            params_b=_num(d.get("params_b"), f"{where}.params_b"),
            hf_id=d.get("hf_id"),
            serving=d.get("serving", "serverless"),
            dedicated_endpoint_per_hour=_num(d.get("dedicated_endpoint_per_hour"), f"{where}.dedicated_endpoint_per_hour"),
            dedicated_gpu=d.get("dedicated_gpu"),
            min_charge_usd=_num(min_charge, f"{where}.min_charge_usd") or 0.0,
            train_cutoff=_date(d.get("train_cutoff"), where),
            inference_shutdown=_date(d.get("inference_shutdown"), where),
            encoding=d.get("encoding"),
            inference_is_fine_tuned=d.get("inference_for") == "fine-tuned",
        )

    def has_model(self, ref: str) -> bool:
        """Whether :meth:`model` has an entry for ``ref`` (listed, or priced by size tier)."""
        try:
            self.model(ref)
            return True
        except ConfigError:
            return False

    def _unlisted(self, ref: str, unknown: ConfigError) -> ModelEntry:
        """An entry for a model the catalogue does not list, priced by its provider's size
        tier; re-raises ``unknown`` when the provider has no such tier."""
        provider, sep, name = ref.strip().partition(":")
        tier = self.data.get("tiers", {}).get(provider.lower()) if sep and name else None
        if not isinstance(tier, dict) or not tier.get("prices_unlisted"):
            raise unknown
        provider = provider.lower()
        size = self.params_of(provider, name)
        if size is None:
            raise ConfigError(
                f"{ref!r} is not in the price catalogue and its size is unknown, so ftc cannot price it "
                f"({provider} prices fine-tuning by model size)",
                hint=f"ftc reads the size from the name (e.g. 8B, 0.5B, 70B); this one has none. Give it in a "
                     f"prices file (--prices FILE or $FTC_PRICES): models: {{'{provider}:{name}': "
                     f"{{tier: {provider}, params_b: SIZE_IN_BILLIONS}}}}.",
            )
        params_b, basis = size
        where = f"prices: tiers.{provider}"
        extra = tier.get("unlisted") or {}
        return ModelEntry(
            key=f"{provider}:{name}",
            provider=provider,
            name=name,
            source=tier.get("source"),
            as_of=_date(tier.get("as_of"), where),
            today=self.today,
            verified=bool(tier.get("verified", False)),
            note=f"not listed in ftc's catalogue: priced by the {provider} size tier ({basis})",
            tier=tier,
            params_b=params_b,
            hf_id=name if "/" in name else None,
            serving=extra.get("serving", "serverless"),
            min_charge_usd=_num(tier.get("min_charge_usd", 0.0), f"{where}.min_charge_usd") or 0.0,
            listed=False,
            params_basis=basis,
        )

    def params_of(self, provider: str, name: str) -> tuple[float, str] | None:
        """(billions of parameters, where the figure comes from) for a model name: a
        catalogue entry or open model of the same name first, else the size in the name."""
        low = name.strip().lower()
        tail = low.rsplit("/", 1)[-1]
        for key, d in self.data.get("models", {}).items():
            p = d.get("params_b") if isinstance(d, dict) else None
            if not isinstance(p, (int, float)) or isinstance(p, bool):
                continue
            names = {key.partition(":")[2].lower(), str(d.get("hf_id") or "").lower()}
            if low in names or tail in {n.rsplit("/", 1)[-1] for n in names if n}:
                return float(p), f"{p:g}B from the catalogue entry {key}"
        for key, d in self.data.get("open_models", {}).items():
            p = d.get("params_b") if isinstance(d, dict) else None
            hf = str(d.get("hf_id") or "").lower()
            if isinstance(p, (int, float)) and not isinstance(p, bool) and (
                    low in (key.lower(), hf) or (hf and tail == hf.rsplit("/", 1)[-1])):
                return float(p), f"{p:g}B from the catalogue's open model {key}"
        return params_from_name(name)

    def _resolve(self, ref: str, models: dict) -> str:
        r = ref.strip()
        if r in models:
            return r
        low = {k.lower(): k for k in models}
        if r.lower() in low:
            return low[r.lower()]
        provider, sep, name = r.partition(":")
        if not sep:
            provider, name = owner_of(r) or "", r
        # ft:gpt-4o-mini-2024-07-18:org::id -> gpt-4o-mini; snapshot dates dropped.
        if name.startswith("ft:"):
            name = name.split(":")[1]
        base = re.sub(r"-\d{4}-\d{2}-\d{2}$", "", name)
        if f"{provider}:{base}".lower() in low:
            return low[f"{provider}:{base}".lower()]
        # A model whose catalogue key is a path (``org/name``, ``accounts/x/models/name``)
        # given by its short name (the last path part).
        tails = {k.rsplit("/", 1)[-1].lower(): k for k in models if k.startswith(provider + ":")}
        if base.lower() in tails:
            return tails[base.lower()]
        close = difflib.get_close_matches(r, list(models), n=3, cutoff=0.4)
        hint = (
            f"Did you mean {', '.join(close)}?" if close else f"Known models: {', '.join(sorted(models))}"
        ) + " Add others in a prices file (--prices FILE or $FTC_PRICES)."
        raise ConfigError(f"unknown model {ref!r} in the price catalogue", hint=hint)

    # -------------------------------------------------------------------- GPUs
    def gpu_refs(self) -> list[str]:
        return sorted(self.data.get("gpus", {}))

    def gpu(self, host: str, gpu: str | None = None) -> GpuEntry:
        """The GPU offer ``host:gpu`` (``gpu("runpod", "a100-community")`` or
        ``gpu("runpod:a100-community")``); ConfigError with the closest names."""
        ref = host if gpu is None else f"{host}:{gpu}"
        gpus = self.data.get("gpus", {})
        key = ref.lower()
        if key not in gpus:
            close = difflib.get_close_matches(key, list(gpus), n=3, cutoff=0.4)
            hint = (f"Did you mean {', '.join(close)}?" if close else f"Known GPUs: {', '.join(sorted(gpus))}")
            if key.startswith(OWN_GPU_HOST + ":"):
                hint = "Set your own GPU's price: --gpu-price own:GPU=USD_PER_HOUR (GPU one of: " + ", ".join(
                    sorted(self.data.get("gpu_specs", {}))
                ) + ")."
            raise ConfigError(f"unknown GPU offer {ref!r} in the price catalogue", hint=hint)
        d = gpus[key]
        h, _, g = key.partition(":")
        where = f"prices: gpus.{key}"
        spec_name = d.get("gpu") or _spec_name(g, self.data.get("gpu_specs", {}))
        return GpuEntry(
            key=key,
            host=h,
            gpu=g,
            source=d.get("source"),
            as_of=_date(d.get("as_of"), where),
            today=self.today,
            verified=bool(d.get("verified", False)),
            note=d.get("note"),
            usd_per_hour=_num(d.get("usd_per_hour"), f"{where}.usd_per_hour", allow_none=False) or 0.0,
            billing=d.get("billing", "hourly"),
            spec=self.gpu_spec(spec_name) if spec_name else None,
        )

    def gpu_spec(self, name: str) -> GpuSpec:
        specs = self.data.get("gpu_specs", {})
        d = specs.get(name.lower())
        if d is None:
            close = difflib.get_close_matches(name.lower(), list(specs), n=3, cutoff=0.4)
            raise ConfigError(
                f"unknown GPU {name!r}",
                hint=(f"Did you mean {', '.join(close)}?" if close else f"Known: {', '.join(sorted(specs))}"),
            )
        where = f"prices: gpu_specs.{name}"
        return GpuSpec(
            name=name.lower(),
            bf16_tflops=_num(d.get("bf16_tflops"), f"{where}.bf16_tflops", allow_none=False) or 0.0,
            memory_gb=_num(d.get("memory_gb"), f"{where}.memory_gb", allow_none=False) or 0.0,
            mem_bw_gbps=_num(d.get("mem_bw_gbps"), f"{where}.mem_bw_gbps", allow_none=False) or 0.0,
            source=d.get("source"),
        )

    def set_gpu_price(self, ref: str, usd_per_hour: float) -> None:
        """Price a GPU offer (e.g. ``own:rtx4090``) for this session."""
        key = ref.lower()
        host, sep, g = key.partition(":")
        if not sep or not g:
            raise ConfigError(f"{ref!r}: give HOST:GPU, e.g. own:rtx4090")
        entry = dict(self.data.setdefault("gpus", {}).get(key, {}))
        entry["usd_per_hour"] = float(usd_per_hour)
        if host == OWN_GPU_HOST:
            entry.setdefault("billing", "hourly")
            entry.setdefault("source", "user (--gpu-price)")
            entry.setdefault("as_of", self.today)
            entry.setdefault("verified", True)
            self.gpu_spec(entry.get("gpu") or _spec_name(g, self.data.get("gpu_specs", {})) or g)
        else:
            entry["source"] = "user (--gpu-price)"
            entry["as_of"] = self.today
        self.data["gpus"][key] = entry

    # -------------------------------------------------------------------- CPUs
    def cpu_refs(self) -> list[str]:
        return sorted(self.data.get("cpus") or {})

    def cpu(self, ref: str) -> CpuEntry:
        """The CPU instance offer ``host:type`` (``aws:m7g.large``); ConfigError with the closest names."""
        cpus = self.data.get("cpus") or {}
        key = ref.lower()
        if key not in cpus:
            close = difflib.get_close_matches(key, list(cpus), n=3, cutoff=0.4)
            raise ConfigError(f"unknown CPU offer {ref!r} in the price catalogue",
                              hint=f"Did you mean {', '.join(close)}?" if close else f"Known: {', '.join(sorted(cpus))}")
        d = cpus[key]
        h, _, inst = key.partition(":")
        where = f"prices: cpus.{key}"
        return CpuEntry(
            key=key, host=h, instance=inst, source=d.get("source"), as_of=_date(d.get("as_of"), where),
            today=self.today, verified=bool(d.get("verified", False)), note=d.get("note"),
            vcpus=int(_num(d.get("vcpus"), f"{where}.vcpus", allow_none=False) or 0),
            memory_gb=_num(d.get("memory_gb"), f"{where}.memory_gb") or 0.0, arch=d.get("arch"),
            usd_per_hour=_num(d.get("usd_per_hour"), f"{where}.usd_per_hour", allow_none=False) or 0.0,
            billing=d.get("billing", "hourly"),
        )

    # ------------------------------------------------------------- open models
    def open_model_for(self, name: str) -> OpenModel | None:
        """The open model whose key or HF id is ``name``, or whose HF id ends in the model name of
        a path, a ``.gguf`` file or a converted GGUF folder (``SmolLM2-135M-Instruct.Q4_1``);
        None when the catalogue has none."""
        low = str(name).lower().rstrip("/")
        tail = low.rsplit("/", 1)[-1].removesuffix(".gguf").split(".")[0]
        for key, d in (self.data.get("open_models") or {}).items():
            hf = str(d.get("hf_id") or "").lower()
            if low in (key, hf) or (hf and tail == hf.rsplit("/", 1)[-1]):
                return self.open_model(key)
        return None

    def open_model(self, name: str) -> OpenModel:
        oms = self.data.get("open_models", {})
        key = name.lower()
        if key not in oms:
            close = difflib.get_close_matches(key, list(oms), n=3, cutoff=0.4)
            raise ConfigError(
                f"unknown open model {name!r}",
                hint=(f"Did you mean {', '.join(close)}?" if close else f"Known: {', '.join(sorted(oms))}"),
            )
        d = oms[key]
        where = f"prices: open_models.{key}"
        return OpenModel(
            key=key,
            source=d.get("source"),
            as_of=_date(d.get("as_of"), where),
            today=self.today,
            verified=True,
            params_b=_num(d.get("params_b"), f"{where}.params_b", allow_none=False) or 0.0,
            hf_id=d.get("hf_id"),
        )


_SIZE_IN_NAME = re.compile(r"(?<![A-Za-z0-9.])(?:(\d+)x)?(\d+(?:\.\d+)?)([bm])(?![a-z0-9])", re.IGNORECASE)


def params_from_name(name: str) -> tuple[float, str] | None:
    """(billions of parameters, basis) from a model name's size, or None: ``Llama-3.2-3B``
    -> 3, ``Qwen2.5-0.5B`` -> 0.5, ``SmolLM2-135M`` -> 0.135, ``Mixtral-8x7B`` -> 56 (all
    experts counted: an upper bound). An active-parameter part (``Qwen3-30B-A3B``) is not a
    size; with several sizes, the largest."""
    tail = name.strip().rsplit("/", 1)[-1]
    best: tuple[float, str] | None = None
    for m in _SIZE_IN_NAME.finditer(tail):
        experts, num, unit = m.group(1), float(m.group(2)), m.group(3).lower()
        b = num / 1000.0 if unit == "m" else num
        if experts:
            b *= int(experts)
        if b <= 0:
            continue
        text = m.group(0)
        basis = (f"{text} read from the name, counted as {b:g}B (all experts)" if experts
                 else f"{text} read from the name")
        if best is None or b > best[0]:
            best = (b, basis)
    return best


def _spec_name(offer: str, specs: dict) -> str | None:
    """GPU spec key of an offer name: 'a100-community' -> 'a100-80gb', 'rtx4090-secure' -> 'rtx4090'."""
    if offer in specs:
        return offer
    for suffix in ("-secure", "-community", "-spot", "-pcie", "-sxm"):
        if offer.endswith(suffix):
            offer = offer[: -len(suffix)]
    if offer in specs:
        return offer
    for k in sorted(specs, key=len, reverse=True):
        if k.startswith(offer) or offer.startswith(k.split("-")[0]):
            return k
    return None


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: prices file not found", hint="Check --prices / $FTC_PRICES.") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the prices file ({e})") from None
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a prices file must be a mapping (models:, gpus:, tiers:, ...)")
    unknown = set(data) - {"version", "models", "tiers", "gpus", "gpu_specs", "open_models", "cpus"}
    if unknown:
        valid = ["models", "tiers", "gpus", "gpu_specs", "open_models", "cpus"]
        k = sorted(unknown)[0]
        close = difflib.get_close_matches(k, valid, n=1)
        raise ConfigError(
            f"{path}: unknown section {k!r}",
            hint=f"Did you mean {close[0]!r}?" if close else f"Sections: {', '.join(valid)}",
        )
    return data


# ------------------------------------------------------------- backend catalogues

BACKEND_SECTIONS = ("version", "models", "tiers")
"""The sections of a backend's own catalogue file (the rest is the core's or the user's)."""

_YAML_SUFFIXES = (".yaml", ".yml")


class PriceCatalogueError(ConfigError):
    """A backend's own price catalogue cannot be used (exit 2): the file its class names in
    ``price_catalogue`` is missing or unreadable, is not valid YAML, does not follow the
    catalogue's layout, or prices a model of another backend. Names the backend and the file."""

    def __init__(self, backend: str, path: Any, problem: str, hint: str | None = None):
        self.backend, self.path = backend, str(path)
        super().__init__(
            f"the {backend} backend's price catalogue {path}: {problem}",
            hint=hint or (f"The file comes with the {backend} backend (its class's price_catalogue): reinstall "
                          "the backend or report this to its author. Meanwhile a --prices file can price "
                          "its models."),
        )


#: {module: True when its folder holds no YAML file}, found without importing the module.
_NO_YAML: dict[str, bool] = {}


def _module_of(ep: Any) -> str:
    """The module a registry entry names (``ftclient.providers.openai`` of
    ``ftclient.providers.openai:OpenAIBackend``)."""
    return str(getattr(ep, "value", "") or "").partition(":")[0].strip()


def _ships_no_yaml(module: str) -> bool:
    """Whether the folder of ``module`` (found without importing it) holds no YAML file; False
    when that cannot be told (the backend is then asked)."""
    hit = _NO_YAML.get(module)
    if hit is None:
        import importlib.util

        hit = False
        try:
            spec = importlib.util.find_spec(module)  # imports the parent packages only
        except Exception:  # noqa: BLE001 - a backend that cannot be found is asked (and skipped) below
            spec = None
        origin = getattr(spec, "origin", None) if spec is not None and getattr(spec, "has_location", False) else None
        if origin:
            try:
                with os.scandir(os.path.dirname(origin)) as entries:
                    hit = not any(e.name.lower().endswith(_YAML_SUFFIXES) for e in entries)
            except OSError:
                hit = False
        _NO_YAML[module] = hit
    return hit


def _declared_file(name: str, ep: Any) -> Path | None:
    """The catalogue file backend ``name``'s class names in ``price_catalogue``, or None when
    it names none (or the backend cannot load: a backend that cannot load declares nothing)."""
    try:
        factory = ep.load()
    except Exception:  # noqa: BLE001 - the registry's rule (backends.backend_attr)
        return None
    declared = getattr(factory, "price_catalogue", None)
    if not declared:
        return None
    module = _module_of(ep) or getattr(factory, "__module__", "")
    if not isinstance(declared, (str, os.PathLike)):
        raise PriceCatalogueError(name, repr(declared), "price_catalogue must name a YAML file",
                                  hint="Give a file name beside the backend's module, e.g. price_catalogue = "
                                       "\"prices.yaml\".")
    path = Path(declared)
    if not path.is_absolute():
        if len(path.parts) != 1 or not path.name.lower().endswith(_YAML_SUFFIXES):
            raise PriceCatalogueError(
                name, declared, "price_catalogue must be a .yaml file beside the backend's module (a file name, "
                "no folder) or an absolute path", hint=f"Ship the file in the folder of {module} and name it there.")
        mod = sys.modules.get(module)
        where = getattr(mod, "__file__", None)
        if not where:
            raise PriceCatalogueError(name, declared, f"the folder of the backend's module {module!r} is not known",
                                      hint="Give an absolute path, or install the backend as a package.")
        path = Path(where).parent / path
    return path


def backend_catalogues(*, ask_all: bool = False) -> tuple[list[tuple[str, Path]], tuple[str, ...]]:
    """``([(backend, catalogue file), ...], unasked)``: the price catalogue of every installed or
    registered backend whose class names one in ``price_catalogue``, by backend name.

    The file is a YAML file beside the module the backend's entry point names (a file name,
    e.g. ``prices.yaml``), or an absolute path. A backend whose module is not imported yet and
    whose module's folder holds no YAML file at all is not imported to ask (so listing prices
    never loads a backend that ships none); it is in ``unasked`` (``ask_all`` asks it anyway)."""
    found: list[tuple[str, Path]] = []
    unasked: list[str] = []
    for name, ep in available_backends().items():
        module = _module_of(ep)
        if not ask_all and module and module not in sys.modules and _ships_no_yaml(module):
            unasked.append(name)
            continue
        path = _declared_file(name, ep)
        if path is not None:
            found.append((name, path))
    return found, tuple(unasked)


def _check_unasked(ref: str, unasked: tuple[str, ...]) -> None:
    """For a model that is not in the catalogue, of a backend that was not asked for a catalogue
    (its module's folder holds no YAML file): raise the error for the catalogue it declares."""
    provider = normalize_name(ref.partition(":")[0]) if ":" in ref else ""
    if provider not in unasked:
        return
    ep = available_backends().get(provider)
    path = _declared_file(provider, ep) if ep is not None else None
    if path is None:
        return
    _backend_entries(provider, path)  # missing, unreadable or wrong: that error
    raise PriceCatalogueError(provider, path, f"it is not in the folder of {_module_of(ep)}, where ftc looks for a "
                              "backend's catalogue before importing the backend",
                              hint="Ship the catalogue beside the module the entry point names.")


#: {file: ((mtime_ns, size), checked entries)}: each backend file is read and checked once per
#: process (again when it changes).
_BACKEND_CACHE: dict[str, tuple[tuple[int, int], dict]] = {}


def _backend_entries(name: str, path: Path) -> dict:
    """Backend ``name``'s catalogue at ``path``: read, checked, cached. PriceCatalogueError
    (naming the backend and the file) when it cannot be used."""
    try:
        st = path.stat()
    except OSError:
        raise PriceCatalogueError(name, path, "the file is not there") from None
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _BACKEND_CACHE.get(str(path))
    if hit is not None and hit[0] == stamp:
        return hit[1]
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PriceCatalogueError(name, path, f"cannot be read ({e})") from None
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as e:
        raise PriceCatalogueError(name, path, f"not valid YAML ({str(e).splitlines()[0]})") from None
    entries = _check_backend_data(name, path, data)
    _BACKEND_CACHE[str(path)] = (stamp, entries)
    return entries


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


def _check_backend_data(name: str, path: Path, data: Any) -> dict:
    """The ``models`` and ``tiers`` of a backend's file, checked: the layout, keys that are the
    backend's own, and every model entry readable (numbers, dates, its tier)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PriceCatalogueError(name, path, "a backend's catalogue is a mapping (version:, models:, tiers:), "
                                  f"not {type(data).__name__}")
    for k in data:
        if k not in BACKEND_SECTIONS:
            raise PriceCatalogueError(name, path, f"unknown section {k!r}: a backend's catalogue has only "
                                      + ", ".join(f"{s}:" for s in BACKEND_SECTIONS)
                                      + " (GPUs, CPUs and open models are the core's and the user's)")
    version = data.get("version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise PriceCatalogueError(name, path, f"version: {version!r} is not a whole number")
    out: dict = {}
    for section in ("models", "tiers"):
        part = data.get(section)
        if part is None:
            continue
        if not isinstance(part, dict):
            raise PriceCatalogueError(name, path, f"{section}: must be a mapping, not {type(part).__name__}")
        for key, entry in part.items():
            if not isinstance(entry, dict):
                raise PriceCatalogueError(name, path, f"{section}.{key}: must be a mapping of fields")
        out[section] = part
    for key in out.get("models", {}):
        prefix, sep, model = str(key).partition(":")
        if not sep or not model.strip() or normalize_name(prefix) != name:
            raise PriceCatalogueError(
                name, path, f"models.{key}: a backend prices only its own models (keys {name}:MODEL)",
                hint=f"Key the entry {name}:MODEL; another provider's prices belong in its own backend or a "
                     "--prices file.")
    for key, tier in out.get("tiers", {}).items():
        k = normalize_name(key)
        if k != name and not k.startswith(name + "_"):
            raise PriceCatalogueError(name, path, f"tiers.{key}: a backend's size tiers are named after it "
                                      f"({name}, or {name}-...)")
        levels = tier.get("levels", [])
        if not isinstance(levels, list) or not all(isinstance(lv, dict) and _is_num(lv.get("max_params_b"))
                                                   for lv in levels):
            raise PriceCatalogueError(name, path, f"tiers.{key}.levels: a list of mappings, each with a number "
                                      "max_params_b")
        for i, lv in enumerate(levels):
            for method in ("sft", "dpo"):
                prices = lv.get(method, {})
                if not isinstance(prices, dict) or not all(_is_num(v) for v in prices.values()):
                    raise PriceCatalogueError(name, path, f"tiers.{key}.levels[{i}].{method}: USD per 1M tokens "
                                              "by adapter, e.g. {lora: 0.48, full: 0.54}")
    if out.get("models"):
        core = _core()
        check = Catalogue(data={"models": out["models"], "tiers": {**core.get("tiers", {}), **out.get("tiers", {})}},
                          today=_dt.date.today())
        for key in out["models"]:
            try:
                check.model(key)
            except ConfigError as e:
                raise PriceCatalogueError(name, path, e.message.removeprefix("prices: ")) from None
    return out


_base_cache: dict | None = None


def _core() -> dict:
    """The core file's entries, read once per process."""
    global _base_cache
    if _base_cache is None:
        _base_cache = _read_yaml(CATALOGUE_FILE)
    return _base_cache


def load_catalogue(user_file: str | os.PathLike | None = None, *, today: _dt.date | None = None) -> Catalogue:
    """The bundled catalogue (the core's file, then each backend's own, by backend name), merged
    with ``user_file`` (or ``$FTC_PRICES``) if given.

    ``today`` (default: the current date) decides which entries are stale. A backend catalogue
    that cannot be used raises :class:`PriceCatalogueError` (exit 2).
    """
    import copy

    merged = _core()
    files = [str(CATALOGUE_FILE)]
    found, unasked = backend_catalogues()
    for name, path in found:
        merged = _merge(merged, _backend_entries(name, path))
        files.append(str(path))
    data = copy.deepcopy(merged)
    user = user_file if user_file is not None else os.environ.get("FTC_PRICES") or None
    if user:
        over = _read_yaml(Path(user))
        data = _merge(data, over)
        files.append(str(user))
    return Catalogue(data=data, today=today or _dt.date.today(), files=files, unasked=unasked)
