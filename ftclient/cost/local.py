"""Training on this machine (``NAME:MODEL`` of a backend that trains here, e.g. ``local:default``):
what the run costs is its wall time on this machine x what an hour of it costs you.

Tokens with the model's own tokenizer; time from a calibration on this machine (a few real
training steps, ``ftc cost estimate ... --calibrate``, the backend's ``calibrate``), or
unknown; cost = hours x the $/h you give. Nothing here imports torch.
"""

from __future__ import annotations

import math
import os
from typing import Any

from ..backends import get_backend, here_backend, normalize_name, trains_here
from ..errors import ConfigError, UsageError
from ..prices import Catalogue
from .assumptions import catalogue_for
from .records import LocalCostEstimate

def is_local_ref(model_ref: str | None) -> bool:
    """Whether ``model_ref`` (``NAME:MODEL``) names a model of a backend that trains on this
    machine (:func:`ftclient.backends.trains_here`)."""
    if not isinstance(model_ref, str) or ":" not in model_ref:
        return False
    return trains_here(normalize_name(model_ref.partition(":")[0]))


def here_backend_of(model_ref: str | None = None) -> str:
    """The backend that trains ``model_ref`` on this machine: the one its prefix names, else
    the installed backend that trains here; ConfigError when there is none."""
    if is_local_ref(model_ref):
        return normalize_name(str(model_ref).partition(":")[0])
    here = here_backend()
    if here is None:
        raise ConfigError("no installed backend trains on this machine",
                          hint="Install the training stack as the README says, then run the same command again.")
    return here


def local_gpu_price(
    *,
    usd_per_hour: float | None = None,
    spec: Any = None,
    prices: Catalogue | str | os.PathLike | None = None,
    today=None,
    backend: str | None = None,
) -> dict[str, Any] | None:
    """What an hour of local training costs, or None (your own machine, no price given).

    In order: ``usd_per_hour`` (``--gpu-price-per-hour``); the ``gpu_price_per_hour`` of the
    spec's block of ``backend`` (default: the backend that trains here, e.g. ``local:``); that
    block's ``gpu``, priced from the catalogue: a
    ``HOST:GPU`` offer (``runpod:rtx4090-community``), or a GPU name (``rtx4090``: the
    cheapest offer of that GPU). A price you give is billed by the exact duration; a
    catalogue offer bills as :func:`~ftclient.cost.selfhost.self_host_training` bills it
    (hourly instances in whole hours).
    """
    if usd_per_hour is not None:
        if usd_per_hour < 0:
            raise UsageError(f"GPU price must be >= 0, not {usd_per_hour!r}")
        return {"usd_per_hour": float(usd_per_hour), "billing": "exact", "source": "given (--gpu-price-per-hour)"}
    if spec is None:
        return None
    block = backend or here_backend_of()
    loc = getattr(spec, block, None)
    if loc is None:
        return None
    if getattr(loc, "gpu_price_per_hour", None) is not None:
        return {"usd_per_hour": float(loc.gpu_price_per_hour), "billing": "exact",
                "source": f"{block}.gpu_price_per_hour in the spec"}
    if not getattr(loc, "gpu", None):
        return None
    cat = catalogue_for(prices, today)
    ref = loc.gpu.strip().lower()
    if ":" in ref:
        gpu = cat.gpu(ref)
    else:
        offers = []
        for r in cat.gpu_refs():
            g = cat.gpu(r)
            if (g.spec is not None and g.spec.name == ref) or g.gpu == ref or g.gpu.startswith(ref + "-"):
                offers.append(g)
        if not offers:
            raise ConfigError(
                f"{block}.gpu {loc.gpu!r}: no offer of that GPU in the price catalogue",
                hint=f"Give {block}.gpu_price_per_hour (or --gpu-price-per-hour), or a HOST:GPU offer, e.g. "
                + ", ".join(cat.gpu_refs()[:3]) + ".",
            )
        gpu = min(offers, key=lambda g: g.usd_per_hour)
    prov = gpu.provenance()
    return {**prov, "price_page": prov.get("source"), "usd_per_hour": gpu.usd_per_hour, "billing": gpu.billing,
            "offer": gpu.ref, "source": f"{gpu.ref} in the price catalogue ({block}.gpu {loc.gpu!r})"}


def local_training_cost(seconds: float, price: dict[str, Any]) -> dict[str, Any]:
    """Cost of ``seconds`` of local training at ``price`` (see :func:`local_gpu_price`):
    hours x $/h; an hourly catalogue offer bills whole hours."""
    hours = max(seconds, 0.0) / 3600.0
    usd = float(price["usd_per_hour"])
    billing = price.get("billing", "exact")
    billed = math.ceil(hours) if billing == "hourly" and hours > 0 else hours
    cost = billed * usd
    how = f"{hours:.4g} h" if billed == hours else f"{hours:.4g} h, billed as {billed:g} h (hourly offer)"
    return {"hours": hours, "billed_hours": billed, "usd_per_hour": usd, "billing": billing, "cost_usd": cost,
            "basis": f"{how} x ${usd:g}/h ({price.get('source', 'given')})"}


def estimate_local(
    path: str | os.PathLike,
    model_ref: str,
    *,
    epochs: int | None = None,
    method: str | None = None,
    adapter: str | None = None,
    batch_size: int | None = None,
    max_seq_len: int | None = None,
    spec: Any = None,
    usd_per_hour: float | None = None,
    prices: Catalogue | str | os.PathLike | None = None,
    today=None,
) -> LocalCostEstimate:
    """Training estimate of a run on this machine (``local:default``, ``local:PATH``), offline:
    asked of the backend the reference names (its ``estimate_file``), see there."""
    backend = get_backend(here_backend_of(model_ref))
    return backend.estimate_file(path, model_ref, epochs=epochs, method=method, adapter=adapter,
                                 batch_size=batch_size, max_seq_len=max_seq_len, spec=spec,
                                 usd_per_hour=usd_per_hour, prices=prices, today=today)
