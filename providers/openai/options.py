"""The ``openai:`` block of a job spec (OpenAI's own options)."""

from __future__ import annotations

from typing import Optional

from pydantic import Field

from ftclient.spec import StrictModel

__all__ = ["OpenAIOptions"]


class OpenAIOptions(StrictModel):
    """Options for OpenAI fine-tuning."""

    model: Optional[str] = Field(default=None, description="Base model, e.g. gpt-4.1-mini-2025-04-14.")
    suffix: Optional[str] = Field(default=None, max_length=64)
    learning_rate_multiplier: Optional[float] = Field(default=None, gt=0)
    metadata: dict[str, str] = Field(default_factory=dict)
