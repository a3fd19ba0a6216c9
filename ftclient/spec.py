"""The job spec: one provider-neutral description of a fine-tuning job.

A spec is a YAML file validated by the pydantic models below. Options are grouped
by concern (``data``, ``hyperparameters``, ``lora``) and by backend (``openai``,
``together``, ``fireworks``, ``local``); every backend reads the same top-level
fields and only its own block. Unknown keys are rejected with the closest valid
key suggested, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .errors import SpecError

Method = Literal["sft", "dpo"]
Adapter = Literal["lora", "qlora", "full"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """Training data: ChatML JSONL as written by ``ftc data prepare``."""

    train: Path = Field(description="Training JSONL, relative to the spec file.")
    eval: Optional[Path] = Field(default=None, description="Held-out JSONL for validation loss and evaluation.")


class LoraConfig(_Strict):
    """LoRA adapter shape (also used by QLoRA)."""

    r: int = Field(default=16, ge=1, le=1024, description="Rank of the update matrices.")
    alpha: int = Field(default=32, ge=1, description="Scaling numerator (scale = alpha / r).")
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: Union[Literal["all-linear"], list[str]] = Field(
        default="all-linear", description="'all-linear' or a list of module names, e.g. [q_proj, v_proj]."
    )


class Hyperparameters(_Strict):
    """Training hyperparameters shared by every backend; ``None`` means the backend's default."""

    epochs: int = Field(default=3, ge=1, le=100)
    learning_rate: Optional[float] = Field(default=None, gt=0, lt=1)
    batch_size: Optional[int] = Field(default=None, ge=1, le=4096)
    max_seq_len: int = Field(default=2048, ge=32, le=262144)
    seed: int = Field(default=42, ge=0)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    dpo_beta: float = Field(default=0.1, gt=0, le=10, description="DPO temperature (method: dpo only).")


class OpenAIOptions(_Strict):
    """Options for OpenAI fine-tuning."""

    model: Optional[str] = Field(default=None, description="Base model, e.g. gpt-4.1-mini-2025-04-14.")
    suffix: Optional[str] = Field(default=None, max_length=64)
    learning_rate_multiplier: Optional[float] = Field(default=None, gt=0)
    metadata: dict[str, str] = Field(default_factory=dict)


class TogetherOptions(_Strict):
    """Options for Together fine-tuning."""

    model: Optional[str] = Field(default=None, description="e.g. meta-llama/Meta-Llama-3.1-8B-Instruct-Reference")
    suffix: Optional[str] = Field(default=None, max_length=64)
    n_checkpoints: int = Field(default=1, ge=1)
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    train_on_inputs: Union[bool, Literal["auto"]] = "auto"
    n_evals: Optional[int] = Field(default=None, ge=0, description="Evaluations on the eval file during training.")


class FireworksOptions(_Strict):
    """Options for Fireworks fine-tuning."""

    model: Optional[str] = None


class LocalOptions(_Strict):
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


class JobSpec(_Strict):
    """A fine-tuning job, the same for every backend."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    base_model: str = Field(default="default", description="'default' is SmolLM2-135M-Instruct for local runs.")
    method: Method = "sft"
    adapter: Adapter = "lora"
    data: DataConfig
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    budget_usd: Optional[float] = Field(default=None, ge=0, allow_inf_nan=False,
                                        description="Refuse to start above this many USD: a finite number, 0 or more.")
    openai: OpenAIOptions = Field(default_factory=OpenAIOptions)
    together: TogetherOptions = Field(default_factory=TogetherOptions)
    fireworks: FireworksOptions = Field(default_factory=FireworksOptions)
    local: LocalOptions = Field(default_factory=LocalOptions)

    @field_validator("base_model")
    @classmethod
    def _base_model_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v.strip()

    def model_for(self, backend: str) -> str:
        """The base model a backend should use: its own block's ``model``, else ``base_model``."""
        block = getattr(self, backend, None)
        own = getattr(block, "model", None) if block is not None else None
        return own or self.base_model

    def resolve_paths(self, base_dir: Path) -> "JobSpec":
        """Return a copy whose relative paths (data, DeepSpeed config, and a model given as a
        path) are resolved against ``base_dir``."""
        data = self.data.model_copy(
            update={
                "train": _resolve(self.data.train, base_dir),
                "eval": _resolve(self.data.eval, base_dir) if self.data.eval else None,
            }
        )
        update: dict[str, Any] = {"data": data}
        local: dict[str, Any] = {}
        if self.local.deepspeed_config is not None:
            local["deepspeed_config"] = _resolve(self.local.deepspeed_config, base_dir)
        if self.local.model and (m := _model_path(self.local.model, base_dir)) is not None:
            local["model"] = m
        if local:
            update["local"] = self.local.model_copy(update=local)
        if (m := _model_path(self.base_model, base_dir)) is not None:
            update["base_model"] = m
        return self.model_copy(update=update)


def _resolve(p: Path, base_dir: Path) -> Path:
    p = Path(os.path.expanduser(str(p)))
    return p if p.is_absolute() else (base_dir / p)


def _model_path(ref: str, base_dir: Path) -> str | None:
    """A model reference that is a relative path, resolved against ``base_dir`` (the spec's
    folder); None for anything else ('default', an HF id, a hosted model name, an absolute
    path). A path is written as one (./m, ../m, ~/m, *.gguf) or exists next to the spec."""
    if ref == "default":
        return None
    p = Path(os.path.expanduser(ref))
    if p.is_absolute():
        return str(p) if ref.startswith("~") else None
    if ref.startswith((".", "~")) or ref.lower().endswith(".gguf") or (base_dir / p).exists():
        return str(base_dir / p)
    return None


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class that holds the field at ``loc`` (for suggestions)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return None
        ann = current.model_fields[part].annotation
        current = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return current


def _format_errors(e: ValidationError, source: str) -> str:
    lines = []
    for err in e.errors():
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            parent = _model_at(JobSpec, loc[:-1])
            valid = sorted(parent.model_fields) if parent else []
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
            msg = f"unknown key '{where}'"
            if close:
                prefix = ".".join(str(p) for p in loc[:-1])
                msg += f"; did you mean '{prefix + '.' if prefix else ''}{close[0]}'?"
            elif valid:
                msg += f"; valid keys here: {', '.join(valid)}"
        elif err["type"] == "missing":
            msg = f"missing required key '{where}'"
        else:
            msg = f"{where}: {err['msg']}"
            if "input" in err and not isinstance(err["input"], (dict, list)):
                msg += f" (got {err['input']!r})"
        lines.append(msg)
    return f"{source}: invalid spec:\n  " + "\n  ".join(lines)


def parse_spec(data: Any, source: str = "spec", base_dir: Path | None = None) -> JobSpec:
    """Validate a mapping as a JobSpec; errors become one SpecError listing every problem."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec must be a YAML mapping, got {type(data).__name__}",
                        hint="Start from `ftc spec init`.")
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError(_format_errors(e, source), hint="See `ftc spec init` for a commented example.") from None
    return spec.resolve_paths(base_dir) if base_dir is not None else spec


def load_spec(path: str | os.PathLike) -> JobSpec:
    """Load and validate a YAML spec file; data paths are resolved relative to it."""
    import yaml

    from .fileio import open_text

    p = Path(path)
    try:
        with open_text(p) as f:
            data = yaml.safe_load(f)
    except UnicodeDecodeError:
        raise SpecError(f"{p}: not valid UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise SpecError(f"{p}: not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise SpecError(f"{p}: nested too deeply to be a spec",
                        hint="See `ftc spec init` for a commented example.") from None
    except ValueError as e:  # a value YAML cannot build: a number of 5000 digits, a date such as 2026-13-45
        what = "a number has too many digits" if "digits" in str(e) else str(e)
        raise SpecError(f"{p}: not a valid spec: {what}",
                        hint="Fix that value (epochs: 3, budget_usd: 25); see `ftc spec init` for a commented example.") from None
    if data is None:
        raise SpecError(f"{p}: the spec is empty", hint="Start from `ftc spec init`.")
    return parse_spec(data, source=str(p), base_dir=p.resolve().parent)


EXAMPLE_SPEC = """\
# ftclient job spec. Check it with `ftc spec check job.yaml`.
# Every backend reads the top-level fields; each backend block holds its own options.

name: support-intents            # letters, digits, . _ -
base_model: default              # local runs: 'default' = SmolLM2-135M-Instruct, or an HF id / path
method: sft                      # sft | dpo
adapter: lora                    # lora | qlora (CUDA only) | full

data:
  train: data/train.jsonl        # written by `ftc data prepare`; relative to this file
  eval: data/eval.jsonl          # optional

hyperparameters:
  epochs: 3
  learning_rate: null            # null = the backend's default
  batch_size: null               # null = the backend's default
  max_seq_len: 2048
  seed: 42
  dpo_beta: 0.1                  # method: dpo only
  lora:
    r: 16
    alpha: 32
    dropout: 0.05
    target_modules: all-linear   # or a list, e.g. [q_proj, v_proj]

budget_usd: 25                   # refuse to start a job whose estimate is above this

openai:
  model: gpt-4.1-mini-2025-04-14
  suffix: support-intents

together:
  model: meta-llama/Meta-Llama-3.1-8B-Instruct-Reference
  suffix: support-intents

local:
  device: auto                   # auto | cuda | mps | cpu
  precision: auto                # auto | bf16 | fp16 | fp32
  packing: true
  gradient_checkpointing: false
  checkpoint_every: 50
  gpus: 1                        # processes: one per GPU (on a CPU device: CPU processes over gloo)
  distributed: ddp               # ddp | fsdp | deepspeed (with deepspeed_config: ds.json), used when gpus > 1
  gpu: null                      # for cost figures, e.g. h100, rtx4090
  gpu_price_per_hour: null       # your own GPU's price
"""
