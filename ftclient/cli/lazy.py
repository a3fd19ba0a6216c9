"""A click group whose subcommands are imported only when they are used.

``ftc --help`` lists every command from the short help strings given here, without
importing the modules behind them, so the CLI starts fast.
"""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """Subcommands given as ``{"name": ("package.module:attr", "short help")}``."""

    def __init__(self, *args, lazy_subcommands: dict[str, tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_subcommands))

    def get_command(self, ctx: click.Context, cmd_name: str):
        if cmd_name in self.lazy_subcommands:
            return self._load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy_subcommands:
                rows.append((name, self.lazy_subcommands[name][1]))
            else:
                cmd = super().get_command(ctx, name)
                if cmd is not None and not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        # Suggest the closest command on a typo, as for unknown spec keys.
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as e:
            import difflib

            if args and not args[0].startswith("-"):
                close = difflib.get_close_matches(args[0], self.list_commands(ctx), n=1)
                if close:
                    raise click.UsageError(f"{e.message} Did you mean '{close[0]}'?", ctx) from None
            raise

    def _load(self, cmd_name: str) -> click.Command:
        target, _ = self.lazy_subcommands[cmd_name]
        module_name, attr = target.split(":")
        cmd = getattr(importlib.import_module(module_name), attr)
        if not isinstance(cmd, click.Command):  # pragma: no cover - programming error
            raise TypeError(f"{target} is not a click command")
        return cmd
