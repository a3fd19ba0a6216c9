"""ftclient: one provider-neutral spec for preparing data, estimating cost and fine-tuning.

The Python API mirrors the CLI (see the README's "Python API"):

* spec: :class:`JobSpec`, :func:`load_spec`
* data: :func:`prepare`, :func:`validate_file`
* tokens and cost: :func:`count_tokens`, :func:`estimate_cost`, :func:`compare_costs`,
  :func:`load_catalogue`; :class:`CostEstimate` (what ``estimate_cost`` and every backend's
  ``estimate(spec)`` return) and :class:`LocalCostEstimate` (a local run's, with its time)
* jobs: :func:`submit`, :func:`watch`, :func:`resume`, :func:`chat`, :func:`get_backend`,
  :class:`Store`
* evaluation and the report: :func:`parse_model_ref`, :func:`evaluate`, :func:`build_report`,
  :func:`write_report`, :func:`run_demo`
* a fine-tuned model out of ftc: :func:`export_model` (adapter, merged, GGUF, Ollama, vLLM), and
  :func:`serve_model` (an OpenAI-compatible server of a model on this machine)
* moving a hosted fine-tune to an open model: :func:`scan_fine_tunes`,
  :func:`capture_answers`, :func:`plan_migration`, :func:`migration_report`,
  :func:`write_migration_report`
* the errors to catch: :class:`FtcError` (every error ftc reports, with ``message``,
  ``hint`` and ``exit_code``) and its subclasses :class:`DataError`, :class:`UsageError`,
  :class:`SpecError`, :class:`ConfigError`, :class:`BudgetExceeded`, :class:`Declined`,
  :class:`Interrupted`, :class:`ProviderError`, :class:`AuthError`,
  :class:`RequestRejected`, :class:`RetryExhausted`, :class:`AmbiguousResult`,
  :class:`StoreError`, :class:`DuplicateSubmission`, :class:`KeyFormatError`,
  :class:`DownloadRefused`, :class:`PriceCatalogueError`.

The names are imported lazily, on first use, so that ``import ftclient`` stays fast and
never pulls heavy libraries (torch, transformers, the provider SDKs, matplotlib). Type
checkers and IDEs see them through the imports under ``TYPE_CHECKING`` below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Each public name -> the module that defines it.
_API: dict[str, str] = {
    # spec
    "JobSpec": "ftclient.spec",
    "load_spec": "ftclient.spec",
    # data
    "prepare": "ftclient.data.prepare",
    "validate_file": "ftclient.validation",
    # tokens and cost
    "count_tokens": "ftclient.tokens",
    "estimate_cost": "ftclient.cost",
    "compare_costs": "ftclient.cost",
    "CostEstimate": "ftclient.cost",
    "LocalCostEstimate": "ftclient.cost",
    "load_catalogue": "ftclient.prices",
    # jobs
    "submit": "ftclient.jobs",
    "watch": "ftclient.jobs",
    "resume": "ftclient.jobs",
    "chat": "ftclient.jobs",
    "get_backend": "ftclient.backends",
    "BackendBase": "ftclient.submission",
    "Store": "ftclient.store",
    # evaluation and the report
    "parse_model_ref": "ftclient.modelref",
    "evaluate": "ftclient.evaluation",
    "build_report": "ftclient.report",
    "write_report": "ftclient.report",
    "run_demo": "ftclient.demo",
    "export_model": "ftclient.export",
    "serve_model": "ftclient.serve",
    # moving a hosted fine-tune to an open model
    "scan_fine_tunes": "ftclient.migrate",
    "capture_answers": "ftclient.migrate",
    "plan_migration": "ftclient.migrate",
    "migration_report": "ftclient.migrate",
    "write_migration_report": "ftclient.migrate",
    # errors
    "FtcError": "ftclient.errors",
    "DataError": "ftclient.errors",
    "UsageError": "ftclient.errors",
    "SpecError": "ftclient.errors",
    "ConfigError": "ftclient.errors",
    "BudgetExceeded": "ftclient.errors",
    "Interrupted": "ftclient.errors",
    "Declined": "ftclient.submission",
    "ProviderError": "ftclient.retry",
    "AuthError": "ftclient.retry",
    "RequestRejected": "ftclient.retry",
    "RetryExhausted": "ftclient.retry",
    "AmbiguousResult": "ftclient.retry",
    "StoreError": "ftclient.store",
    "DuplicateSubmission": "ftclient.store",
    "KeyFormatError": "ftclient.secrets",
    "DownloadRefused": "ftclient.migrate",
    "PriceCatalogueError": "ftclient.prices",
}

if TYPE_CHECKING:  # pragma: no cover - what type checkers and IDEs read; keep in step with _API
    from .backends import get_backend as get_backend
    from .submission import BackendBase as BackendBase
    from .cost import CostEstimate as CostEstimate
    from .cost import LocalCostEstimate as LocalCostEstimate
    from .cost import compare_costs as compare_costs
    from .cost import estimate_cost as estimate_cost
    from .data.prepare import prepare as prepare
    from .demo import run_demo as run_demo
    from .errors import BudgetExceeded as BudgetExceeded
    from .errors import ConfigError as ConfigError
    from .errors import DataError as DataError
    from .errors import FtcError as FtcError
    from .errors import Interrupted as Interrupted
    from .errors import SpecError as SpecError
    from .errors import UsageError as UsageError
    from .evaluation import evaluate as evaluate
    from .export import export_model as export_model
    from .serve import serve_model as serve_model
    from .submission import Declined as Declined
    from .jobs import chat as chat
    from .jobs import resume as resume
    from .jobs import submit as submit
    from .jobs import watch as watch
    from .migrate import DownloadRefused as DownloadRefused
    from .migrate import capture_answers as capture_answers
    from .migrate import migration_report as migration_report
    from .migrate import plan_migration as plan_migration
    from .migrate import scan_fine_tunes as scan_fine_tunes
    from .migrate import write_migration_report as write_migration_report
    from .modelref import parse_model_ref as parse_model_ref
    from .prices import PriceCatalogueError as PriceCatalogueError
    from .prices import load_catalogue as load_catalogue
    from .report import build_report as build_report
    from .report import write_report as write_report
    from .retry import AmbiguousResult as AmbiguousResult
    from .retry import AuthError as AuthError
    from .retry import ProviderError as ProviderError
    from .retry import RequestRejected as RequestRejected
    from .retry import RetryExhausted as RetryExhausted
    from .secrets import KeyFormatError as KeyFormatError
    from .spec import JobSpec as JobSpec
    from .spec import load_spec as load_spec
    from .store import DuplicateSubmission as DuplicateSubmission
    from .store import Store as Store
    from .store import StoreError as StoreError
    from .tokens import count_tokens as count_tokens
    from .validation import validate_file as validate_file

# A literal list, so that static analysers read it (tests check it matches _API).
__all__ = [
    "__version__",
    "JobSpec", "load_spec",
    "prepare", "validate_file",
    "count_tokens", "estimate_cost", "compare_costs", "load_catalogue", "CostEstimate", "LocalCostEstimate",
    "submit", "watch", "resume", "chat", "get_backend", "BackendBase", "Store",
    "parse_model_ref", "evaluate", "build_report", "write_report", "run_demo", "export_model",
    "serve_model",
    "scan_fine_tunes", "capture_answers", "plan_migration", "migration_report", "write_migration_report",
    "FtcError", "DataError", "UsageError", "SpecError", "ConfigError", "BudgetExceeded", "Interrupted",
    "Declined", "ProviderError", "AuthError", "RequestRejected", "RetryExhausted", "AmbiguousResult",
    "StoreError", "DuplicateSubmission", "KeyFormatError", "DownloadRefused",
    "PriceCatalogueError",
]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'ftclient' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    # The public names and the module's own dunders; not the helpers of this file.
    return sorted(set(__all__) | {k for k in globals() if k.startswith("__") and k.endswith("__")})
