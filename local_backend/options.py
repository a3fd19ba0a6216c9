"""The ``local:`` block of a job spec (local training with PEFT/TRL)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from ftclient.spec import StrictModel, model_path, resolve_path

__all__ = ["LocalOptions"]


class LocalOptions(StrictModel):
    """Options for local training with PEFT/TRL."""

    model: Optional[str] = Field(default=None, description="HF model id or local path; default: base_model.")
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    packing: bool = True
    gradient_checkpointing: bool = False
    gradient_accumulation_steps: int = Field(default=1, ge=1)
    checkpoint_every: int = Field(default=50, ge=1, description="Save a checkpoint every N steps.")
    gpus: int = Field(default=1, ge=1, le=1024, description=(
        "Processes to train with, one per GPU on cuda (launched through accelerate). On a CPU device: "
        "that many CPU processes talking over gloo (slow; meant for trying the multi-process path)."))
    distributed: Literal["ddp", "fsdp", "deepspeed"] = Field(default="ddp", description=(
        "How several processes share the work (gpus > 1): ddp (a full copy of the model per GPU), "
        "fsdp (weights, gradients and optimizer state sharded), deepspeed (needs deepspeed_config)."))
    deepspeed_config: Optional[Path] = Field(default=None, description=(
        "DeepSpeed JSON config (distributed: deepspeed), relative to the spec file."))
    gpu: Optional[str] = Field(default=None, description="GPU name for cost figures, e.g. h100, rtx4090.")
    gpu_price_per_hour: Optional[float] = Field(default=None, ge=0, description="Your own GPU's $/h.")
    output_dir: Optional[Path] = None

    @model_validator(mode="after")
    def _deepspeed_needs_its_config(self) -> "LocalOptions":
        if self.distributed == "deepspeed" and self.deepspeed_config is None:
            raise PydanticCustomError(
                "deepspeed_config_missing",
                "deepspeed_config is required with distributed: deepspeed (the path of a DeepSpeed JSON file)")
        return self

    def resolve_paths(self, base_dir: Path) -> "LocalOptions":
        """A copy whose DeepSpeed config and model given as a path are resolved against the
        spec's folder (called by ``BaseJobSpec.resolve_paths``)."""
        update: dict[str, object] = {}
        if self.deepspeed_config is not None:
            update["deepspeed_config"] = resolve_path(self.deepspeed_config, base_dir)
        if self.model and (m := model_path(self.model, base_dir)) is not None:
            update["model"] = m
        return self.model_copy(update=update) if update else self
