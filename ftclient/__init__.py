"""ftclient: one provider-neutral spec for preparing data, estimating cost and fine-tuning.

The Python API mirrors the CLI; names are imported lazily so that ``import ftclient``
stays fast and never pulls heavy libraries.
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = {
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
    "load_catalogue": "ftclient.prices",
    # jobs
    "submit": "ftclient.jobs",
    "watch": "ftclient.jobs",
    "resume": "ftclient.jobs",
    "chat": "ftclient.jobs",
    "get_backend": "ftclient.backends",
    "Store": "ftclient.store",
    # evaluation and the report
    "parse_model_ref": "ftclient.modelref",
    "evaluate": "ftclient.evaluate",
    "build_report": "ftclient.report",
    "write_report": "ftclient.report",
    "run_demo": "ftclient.demo",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'ftclient' has no attribute {name!r}")
