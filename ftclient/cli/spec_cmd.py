"""``ftc spec``: write a commented example spec, or check one."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import UsageError
from . import output


@click.group()
def spec() -> None:
    """Write or check a job spec (YAML)."""


@spec.command("init")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), default="job.yaml", required=False)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: Path, force: bool) -> None:
    """Write a commented example spec to PATH (default: job.yaml)."""
    from ..fileio import write_text_atomic
    from ..spec import example_spec

    if path.exists() and not force:
        raise UsageError(f"{path}: already exists", hint="Use --force to overwrite it.")
    write_text_atomic(path, example_spec())
    output.info(f"wrote {path}; check it with `ftc spec check {path}`")


@spec.command("check")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the validated spec as JSON.")
def check(path: Path, as_json: bool) -> None:
    """Validate the spec at PATH; print what it resolves to."""
    from ..spec import load_spec

    job = load_spec(path)
    missing = [str(p) for p in (job.data.train, job.data.eval) if p is not None and not p.exists()]
    if as_json:
        output.emit_json({"ok": True, "spec": job.model_dump(mode="json"), "missing_files": missing})
    else:
        output.out.print("[green]ok[/green] " + output.esc(f"{path}: {job.name} ({job.method}, {job.adapter}, base {job.base_model})"),
                         highlight=False)
        for m in missing:
            output.warn(f"data file not found yet: {m}")
