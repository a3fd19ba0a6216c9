"""``ftc data``: prepare and validate training data."""

from __future__ import annotations

import click

from .lazy import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy_subcommands={
        "prepare": ("ftclient.cli.prepare_cmd:prepare", "Turn CSV/JSON/JSONL into clean ChatML train/eval JSONL."),
        "validate": ("ftclient.cli.validate_cmd:validate", "Check a JSONL file against a provider's rules."),
    },
)
def data() -> None:
    """Prepare and validate training data."""
