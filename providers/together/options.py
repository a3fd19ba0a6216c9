"""The ``together:`` block of a job spec (Together's own options)."""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field

from ftclient.spec import StrictModel

__all__ = ["TogetherOptions"]


class TogetherOptions(StrictModel):
    """Options for Together fine-tuning."""

    model: Optional[str] = Field(default=None, description="e.g. meta-llama/Meta-Llama-3.1-8B-Instruct-Reference")
    suffix: Optional[str] = Field(default=None, max_length=64)
    n_checkpoints: int = Field(default=1, ge=1)
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    train_on_inputs: Union[bool, Literal["auto"]] = "auto"
    n_evals: Optional[int] = Field(default=None, ge=0, description="Evaluations on the eval file during training.")
