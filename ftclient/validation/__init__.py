"""Check a JSONL training file against a provider's rules, streaming.

>>> from ftclient.validation import validate_file
>>> r = validate_file("data/train.jsonl", "together")
>>> r.ok, r.examples, r.errors[:3]

Every problem is a :class:`Problem` ``(line, code, message)`` with a 1-based line
(0 for the whole file) and a stable code; docs/validation.md lists the rules and
codes of each provider. The rules themselves are the backends': each hands the registry a
:class:`DataChecker` (``Backend.data_checker(model, method)``); this package streams the
file and runs it.
"""

from __future__ import annotations

from .common import MAX_STORED_PROBLEMS, DataChecker, Problem, TokenSetup, TokenStats, ValidationResult
from .engine import METHODS, check_provider, checkable_backends, validate_file

__all__ = [
    "MAX_STORED_PROBLEMS",
    "METHODS",
    "DataChecker",
    "TokenSetup",
    "check_provider",
    "checkable_backends",
    "Problem",
    "TokenStats",
    "ValidationResult",
    "validate_file",
]
