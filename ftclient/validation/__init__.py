"""Check a JSONL training file against a provider's rules, streaming.

>>> from ftclient.validation import validate_file
>>> r = validate_file("data/train.jsonl", "together")
>>> r.ok, r.examples, r.errors[:3]

Every problem is a :class:`Problem` ``(line, code, message)`` with a 1-based line
(0 for the whole file) and a stable code; docs/validation.md lists the rules and
codes of each provider.
"""

from __future__ import annotations

from .common import MAX_STORED_PROBLEMS, Problem, TokenStats, ValidationResult
from .engine import METHODS, PROVIDERS, validate_file

__all__ = [
    "MAX_STORED_PROBLEMS",
    "METHODS",
    "PROVIDERS",
    "Problem",
    "TokenStats",
    "ValidationResult",
    "validate_file",
]
