"""Writing a report's three files (report.md, report.json, report.png), each atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from ..errors import UsageError
from ..fileio import atomic_writer
from ..secrets import redact, redact_obj
from .figure import render_png
from .options import REPORT_JSON, REPORT_MD, REPORT_PNG, Report


def write_report(report: Report, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write report.md, report.json and report.png into ``out_dir`` (created), each atomically.
    The chart is rendered first, so a failure leaves no partial set of new files."""
    d = Path(out_dir)
    if d.exists() and not d.is_dir():
        raise UsageError(f"{d}: exists and is not a directory", hint="Give --out a directory.")
    return write_report_files(d, png=render_png(report), markdown=report.to_markdown(REPORT_PNG),
                              data=report.to_dict())


def write_report_files(out_dir: str | os.PathLike, *, png: bytes, markdown: str,
                       data: Mapping[str, Any]) -> dict[str, Path]:
    """report.png, report.json and report.md into ``out_dir`` (created), each atomically, the
    text through the one redaction (no key or URL credential in a file)."""
    d = Path(out_dir)
    if d.exists() and not d.is_dir():
        raise UsageError(f"{d}: exists and is not a directory", hint="Give --out a directory.")
    md = redact(markdown)
    js = json.dumps(redact_obj(dict(data)), indent=2, ensure_ascii=False) + "\n"
    paths = {"md": d / REPORT_MD, "json": d / REPORT_JSON, "png": d / REPORT_PNG}
    with atomic_writer(paths["png"], "wb") as f:
        f.write(png)
    with atomic_writer(paths["json"]) as f:
        f.write(js)
    with atomic_writer(paths["md"]) as f:
        f.write(md)
    return paths
