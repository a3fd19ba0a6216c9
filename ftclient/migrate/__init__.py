"""``ftc migrate``: move a hosted fine-tune to an open model before its provider shuts it down.

1. :func:`scan_fine_tunes`: the account's fine-tunes, their data and the days they have left;
2. :func:`capture_answers`: the model's answers to a set of prompts, kept as an eval run;
3. :func:`plan_migration`: one costed job spec per replacement candidate;
4. train them as any job (``ftc train``);
5. :func:`migration_report`: each candidate's agreement with the captured answers, accuracy,
   latency and cost, and a recommendation (:func:`write_migration_report` writes it).
"""

from __future__ import annotations

from .capture import CaptureEstimate, CaptureRecord, capture_answers, estimate_capture, load_capture
from .plan import Candidate, MigrationPlan, choose_base, plan_migration
from .report import (
    DEFAULT_MIN_AGREEMENT,
    CandidateResult,
    MigrationReport,
    agreement,
    migration_report,
    pick_metric,
    write_migration_report,
)
from .scan import FileReport, FineTuneReport, ScanResult, find_fine_tune, scan_fine_tunes
from .source import DownloadRefused, PastFineTune, ProviderFile, migration_sources

__all__ = [
    "scan_fine_tunes", "find_fine_tune", "ScanResult", "FineTuneReport", "FileReport",
    "capture_answers", "estimate_capture", "load_capture", "CaptureEstimate", "CaptureRecord",
    "plan_migration", "choose_base", "MigrationPlan", "Candidate",
    "migration_report", "write_migration_report", "pick_metric", "agreement", "MigrationReport", "CandidateResult",
    "DEFAULT_MIN_AGREEMENT", "PastFineTune", "ProviderFile", "DownloadRefused", "migration_sources",
]
