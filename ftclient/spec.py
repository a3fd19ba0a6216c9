"""The job spec: one provider-neutral description of a fine-tuning job.

A spec is a YAML file validated by the pydantic models below. Options are grouped
by concern (``data``, ``hyperparameters``, ``lora``) and by backend: each installed backend
brings its own block (its ``options`` model, e.g. ``openai``, ``together``, ``local``);
every backend reads the same top-level fields and only its own block. Unknown keys are
rejected with the closest valid key suggested, so a typo never silently falls back to a
default.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from .backends import available_backends, backend_attr
from .errors import SpecError
from .fileio import open_text

if TYPE_CHECKING:  # pragma: no cover - for type checkers, a spec is a BaseJobSpec with blocks
    JobSpec = Any

Method = Literal["sft", "dpo"]
Adapter = Literal["lora", "qlora", "full"]


class StrictModel(BaseModel):
    """A spec block: unknown keys are refused, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(StrictModel):
    """Training data: ChatML JSONL as written by ``ftc data prepare``."""

    train: Path = Field(description="Training JSONL, relative to the spec file.")
    eval: Optional[Path] = Field(default=None, description="Held-out JSONL for validation loss and evaluation.")


class LoraConfig(StrictModel):
    """LoRA adapter shape (also used by QLoRA)."""

    r: int = Field(default=16, ge=1, le=1024, description="Rank of the update matrices.")
    alpha: int = Field(default=32, ge=1, description="Scaling numerator (scale = alpha / r).")
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0)
    target_modules: Union[Literal["all-linear"], list[str]] = Field(
        default="all-linear", description="'all-linear' or a list of module names, e.g. [q_proj, v_proj]."
    )


class Hyperparameters(StrictModel):
    """Training hyperparameters shared by every backend; ``None`` means the backend's default."""

    epochs: int = Field(default=3, ge=1, le=100)
    learning_rate: Optional[float] = Field(default=None, gt=0, lt=1)
    batch_size: Optional[int] = Field(default=None, ge=1, le=4096)
    max_seq_len: int = Field(default=2048, ge=32, le=262144)
    seed: int = Field(default=42, ge=0)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    dpo_beta: float = Field(default=0.1, gt=0, le=10, description="DPO temperature (method: dpo only).")


class BaseJobSpec(StrictModel):
    """A fine-tuning job, the same for every backend: the fields every backend reads. The
    class :data:`JobSpec` adds one options block per installed backend (its ``options``
    model), built from the registry (:func:`spec_model`)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    base_model: str = Field(default="default", description="'default' is SmolLM2-135M-Instruct for local runs.")
    method: Method = "sft"
    adapter: Adapter = "lora"
    data: DataConfig
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    budget_usd: Optional[float] = Field(default=None, ge=0, allow_inf_nan=False,
                                        description="Refuse to start above this many USD: a finite number, 0 or more.")

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

    def resolve_paths(self, base_dir: Path) -> "BaseJobSpec":
        """Return a copy whose relative paths (data, a model given as a path, and those of each
        backend's block: its ``resolve_paths(base_dir)``) are resolved against ``base_dir``."""
        data = self.data.model_copy(
            update={
                "train": resolve_path(self.data.train, base_dir),
                "eval": resolve_path(self.data.eval, base_dir) if self.data.eval else None,
            }
        )
        update: dict[str, Any] = {"data": data}
        for name in type(self).model_fields:
            block = getattr(self, name)
            if isinstance(block, BaseModel) and callable(getattr(block, "resolve_paths", None)):
                update[name] = block.resolve_paths(base_dir)
        if (m := model_path(self.base_model, base_dir)) is not None:
            update["base_model"] = m
        return self.model_copy(update=update)


def resolve_path(p: Path, base_dir: Path) -> Path:
    """``p`` (``~`` expanded) against ``base_dir`` unless it is absolute."""
    p = Path(os.path.expanduser(str(p)))
    return p if p.is_absolute() else (base_dir / p)


def model_path(ref: str, base_dir: Path) -> str | None:
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


_models: dict[tuple, type[BaseJobSpec]] = {}


def option_blocks() -> dict[str, type[BaseModel]]:
    """``{backend: its spec options model}`` for every installed backend that has one (its
    ``options`` attribute), read from the registry without building a backend."""
    out: dict[str, type[BaseModel]] = {}
    for name in available_backends():
        opts = backend_attr(name, "options")
        if isinstance(opts, type) and issubclass(opts, BaseModel) and name.isidentifier() \
                and name not in BaseJobSpec.model_fields:
            out[name] = opts
    return out


def spec_model() -> type[BaseJobSpec]:
    """The job spec model of the installed backends: :class:`BaseJobSpec` plus one optional
    block per backend (its ``options``; every field has a default). Built once per set of
    backends."""
    blocks = option_blocks()
    key = tuple((name, id(opts)) for name, opts in blocks.items())
    model = _models.get(key)
    if model is None:
        fields: dict[str, Any] = {name: (opts, Field(default_factory=opts)) for name, opts in blocks.items()}
        model = create_model("JobSpec", __base__=BaseJobSpec, __module__=__name__, **fields)
        _models[key] = model
    return model


def __getattr__(name: str) -> Any:
    # ``JobSpec``: the spec model of the installed backends, built on first use.
    if name == "JobSpec":
        return spec_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
            parent = _model_at(spec_model(), loc[:-1])
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


def parse_spec(data: Any, source: str = "spec", base_dir: Path | None = None) -> "JobSpec":
    """Validate a mapping as a JobSpec; errors become one SpecError listing every problem."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a spec must be a YAML mapping, got {type(data).__name__}",
                        hint="Start from `ftc spec init`.")
    try:
        spec = spec_model().model_validate(data)
    except ValidationError as e:
        raise SpecError(_format_errors(e, source), hint="See `ftc spec init` for a commented example.") from None
    return spec.resolve_paths(base_dir) if base_dir is not None else spec


def load_spec(path: str | os.PathLike) -> "JobSpec":
    """Load and validate a YAML spec file; data paths are resolved relative to it."""
    import yaml

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


_EXAMPLE_HEAD = """\
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
"""


def example_spec() -> str:
    """The commented example spec ``ftc spec init`` writes: the fields every backend reads, then
    the block of each installed backend that gives an example (its class's ``spec_example``,
    YAML text), by backend name."""
    blocks = [backend_attr(name, "spec_example") for name in available_backends()]
    return _EXAMPLE_HEAD + "".join("\n" + str(b).strip("\n") + "\n" for b in blocks if b)
