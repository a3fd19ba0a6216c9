"""Fine-tuning cost: one estimate, and every backend side by side. Offline.

``estimate_cost(data, "openai:gpt-4.1-mini", epochs=3)`` -> :class:`CostEstimate`
``compare_costs(data, models=None, queries_per_month=...)`` -> :class:`CostComparison`

How each figure is made is told in docs/cost.md and in the module that makes it:

* :mod:`~ftclient.cost.assumptions`: the assumed figures (:class:`Assumptions`), the
  cookbook's default epochs (:func:`default_epochs`), the price catalogue an estimate reads;
* :mod:`~ftclient.cost.hosted`: hosted training, billed tokens x price per 1M (a size tier's
  price where the provider prices by model size, a minimum charge where the catalogue gives one);
* :mod:`~ftclient.cost.selfhost`: the self-hosted model's size (:func:`resolve_self_host_model`),
  training GPU-hours from a FLOPs model and serving GPU-seconds per query from a throughput model;
* :mod:`~ftclient.cost.counts`: the data's token counts, once per tokenizer;
* :mod:`~ftclient.cost.records`: :class:`CostEstimate`, :class:`LocalCostEstimate`,
  :class:`CompareRow` and :class:`CostComparison`;
* :mod:`~ftclient.cost.estimate`: :func:`estimate_cost`;
* :mod:`~ftclient.cost.local`: local training (``local:MODEL``, :func:`estimate_local`): time from
  a calibration on this machine, or unknown; cost = hours x the $/h you give;
* :mod:`~ftclient.cost.compare`: :func:`compare_costs`, with its rows (:mod:`~ftclient.cost.rows`:
  hosted per token or on a dedicated endpoint, self-hosted per second or always on, this
  machine) and the backends that can train on a pre-tokenized Parquet file
  (:mod:`~ftclient.cost.parquet`);
* :mod:`~ftclient.cost.breakeven`: the monthly query volume above which a self-hosted row's
  inference costs less than the cheapest per-token hosted option, or "never", and the hours a
  scale-to-zero GPU bills.
"""

from __future__ import annotations

from .assumptions import (
    ASSUMPTIONS,
    DEFAULT_QUERIES_PER_MONTH,
    MAX_DEFAULT_EPOCHS,
    MAX_TARGET_EXAMPLES,
    MIN_DEFAULT_EPOCHS,
    MIN_TARGET_EXAMPLES,
    TARGET_EPOCHS,
    Assumptions,
    catalogue_for,
    check_args,
    default_epochs,
    epochs_for,
)
from .breakeven import break_even_monthly, break_even_volume, serverless_gpu_hours
from .compare import compare_costs
from .estimate import estimate_cost
from .local import estimate_local, here_backend_of, is_local_ref, local_gpu_price, local_training_cost
from .records import CompareRow, CostComparison, CostEstimate, LocalCostEstimate
from .selfhost import (
    DEFAULT_SELF_HOST_MODEL,
    SelfHostModel,
    resolve_self_host_model,
    self_host_inference,
)

__all__ = [
    "ASSUMPTIONS",
    "DEFAULT_QUERIES_PER_MONTH",
    "DEFAULT_SELF_HOST_MODEL",
    "MAX_DEFAULT_EPOCHS",
    "MAX_TARGET_EXAMPLES",
    "MIN_DEFAULT_EPOCHS",
    "MIN_TARGET_EXAMPLES",
    "TARGET_EPOCHS",
    "Assumptions",
    "CompareRow",
    "CostComparison",
    "CostEstimate",
    "LocalCostEstimate",
    "SelfHostModel",
    "break_even_monthly",
    "break_even_volume",
    "catalogue_for",
    "check_args",
    "compare_costs",
    "default_epochs",
    "epochs_for",
    "estimate_cost",
    "estimate_local",
    "here_backend_of",
    "is_local_ref",
    "local_gpu_price",
    "local_training_cost",
    "resolve_self_host_model",
    "self_host_inference",
    "serverless_gpu_hours",
]
