"""The ``fireworks:`` block of a job spec (Fireworks' own options)."""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from ftclient.spec import StrictModel

__all__ = ["FireworksOptions"]


class FireworksOptions(StrictModel):
    """Options for Fireworks fine-tuning."""

    model: Optional[str] = Field(
        default=None, description="a Fireworks model, e.g. accounts/fireworks/models/llama-v3p1-8b-instruct "
                                  "(or its short name llama-v3p1-8b-instruct)")
    output_model: Optional[str] = Field(
        default=None, max_length=63, description="the id of the fine-tuned model (default: from the spec's name)")
    max_context_length: Optional[int] = Field(default=None, ge=1, description="tokens per example in training")
    early_stop: bool = False
    is_turbo: bool = False
