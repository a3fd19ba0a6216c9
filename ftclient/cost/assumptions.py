"""The assumptions behind the estimates, the default epochs, and the price catalogue they read.

:class:`Assumptions` holds the assumed figures of the self-hosting model (all shown in the
output); without ``epochs``, the OpenAI cookbook's default-epochs heuristic
(:func:`default_epochs`) sets the number of passes.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import UsageError
from ..prices import Catalogue, load_catalogue

# OpenAI cookbook 'Chat_finetuning_data_prep': default epochs heuristic.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

DEFAULT_QUERIES_PER_MONTH = 100_000


@dataclass(frozen=True)
class Assumptions:
    """The assumed figures of the self-hosting model (all shown in the output)."""

    flops_per_param_token_full: float = 6.0  # forward 2 + backward 4
    flops_per_param_token_lora: float = 4.0  # no weight gradients for the frozen base
    train_mfu: float = 0.35  # achieved / peak dense bf16 FLOP/s when training
    qlora_mfu_factor: float = 0.75  # 4-bit dequantisation overhead
    setup_hours: float = 0.25  # start, download weights, load, save the adapter
    prefill_mfu: float = 0.5  # prompt processing, compute-bound
    decode_batch: int = 32  # concurrent sequences when serving
    decode_bw_efficiency: float = 0.6  # achieved / peak memory bandwidth
    decode_mfu_cap: float = 0.5  # decode can't beat compute either
    serve_bytes_per_param: float = 2.0  # bf16 weights
    # Serverless (per-second) GPUs: a container stays up this long after its last
    # request before it scales to zero, and each cold start bills its start-up time.
    serverless_scaledown_s: float = 60.0
    serverless_cold_start_s: float = 30.0
    train_bytes_per_param: dict = field(
        default_factory=lambda: {"full": 16.0, "lora": 2.0, "qlora": 0.6}
    )  # weights(+grads+Adam for full); + 20% and 2 GB for activations
    default_queries_per_month: int = DEFAULT_QUERIES_PER_MONTH

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


ASSUMPTIONS = Assumptions()


def default_epochs(n_examples: int) -> int:
    """The cookbook's default-epochs heuristic (what OpenAI's ``auto`` approximates)."""
    n = TARGET_EPOCHS
    if n_examples <= 0:
        return n
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        n = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    elif n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        n = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return n


def epochs_for(epochs: int | None, n: int) -> tuple[int, str]:
    if epochs is not None:
        return epochs, "given"
    e = default_epochs(n)
    return e, (
        f"default: OpenAI cookbook heuristic ({TARGET_EPOCHS} epochs, raised to reach "
        f"{MIN_TARGET_EXAMPLES} or lowered to stay under {MAX_TARGET_EXAMPLES} example passes)"
    )


def check_args(epochs: int | None, method: str, adapter: str) -> tuple[str, str]:
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1):
        raise UsageError(f"epochs must be a whole number >= 1, not {epochs!r}")
    m, a = method.lower(), adapter.lower()
    if m not in ("sft", "dpo"):
        raise UsageError(f"unknown method {method!r}", hint="Use sft or dpo.")
    if a not in ("lora", "qlora", "full"):
        raise UsageError(f"unknown adapter {adapter!r}", hint="Use lora, qlora or full.")
    return m, a


def catalogue_for(prices: Catalogue | str | os.PathLike | None, today) -> Catalogue:
    """``prices`` when it is a Catalogue, else the catalogue loaded from that file (None: the bundled one)."""
    if isinstance(prices, Catalogue):
        return prices
    return load_catalogue(prices, today=today)

