"""The comparison report: eval runs side by side, with a recommendation for a volume.

    report = build_report([run.summary for run in runs], queries_per_month=10_000)
    write_report(report, "report/")     # report.md, report.json, report.png

Each eval run (the summary dict ``ftc eval`` stores) becomes one *option*: its score,
latency, cost per 1K queries and cost per month at the user's volume, the training cost
and time of the job its model came from, and the caveats that change the answer. How the
figures are made is told in docs/compare.md and in the module that makes each:

* :mod:`~ftclient.report.options`: the :class:`Option` and :class:`Report` records;
* :mod:`~ftclient.report.build`: :func:`build_report` from eval summaries (and the jobs they name);
* :mod:`~ftclient.report.pricing`: hosted options, per token or on a dedicated endpoint, and the
  hosted options not evaluated; :mod:`~ftclient.report.plans`: the ways a self-hosted model is served;
* :mod:`~ftclient.report.training`: the training cost and time of each option's job;
* :mod:`~ftclient.report.caveats`: lifecycle (retirement) and measurement caveats;
* :mod:`~ftclient.report.recommend`: the rule (:func:`pick`), the recommendation, the Wilson
  interval of a score, break-even volumes and the winner by volume;
* :mod:`~ftclient.report.markdown`, :mod:`~ftclient.report.figure` and :mod:`~ftclient.report.write`:
  report.md, report.png (matplotlib, imported only by :func:`render_png` / :func:`write_report`)
  and the files; :mod:`~ftclient.report.format`: the text formatters they and ``ftc compare`` share.
"""

from __future__ import annotations

from .build import DEFAULT_QUERIES_PER_MONTH, build_report, job_infos
from .figure import render_figure, render_png
from .options import REPORT_JSON, REPORT_MD, REPORT_PNG, Option, Report
from .plans import DEFAULT_SELF_HOST_GPU, WAYS
from .recommend import DEFAULT_TOLERANCE, PROPORTION_METRICS, RULE, pick, wilson_interval
from .write import write_report, write_report_files

__all__ = [
    "DEFAULT_QUERIES_PER_MONTH",
    "DEFAULT_SELF_HOST_GPU",
    "DEFAULT_TOLERANCE",
    "PROPORTION_METRICS",
    "REPORT_JSON",
    "REPORT_MD",
    "REPORT_PNG",
    "RULE",
    "WAYS",
    "Option",
    "Report",
    "build_report",
    "job_infos",
    "pick",
    "render_figure",
    "render_png",
    "wilson_interval",
    "write_report",
    "write_report_files",
]
