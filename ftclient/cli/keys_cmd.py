"""``ftc keys``: store, list and remove provider API keys (kept in a 0600 file).

Keys are read from a hidden prompt or stdin, never from the command line (where they would
land in the shell history and the process list), and are never printed: listings show a
fingerprint with at most the last four characters.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

import click

from ..errors import UsageError
from . import output



@contextlib.contextmanager
def _writing_keys(path) -> Iterator[None]:
    """Writing the key file on a full or read-only FTC_HOME: one message naming the file
    (the key itself is never in it), exit 1 or 2; the old key file is left as it was."""
    from ..fileio import write_error

    try:
        yield
    except OSError as e:
        mapped = write_error(path, e, hint=f"Make {path.parent} writable (or free space there), or set FTC_HOME to "
                                          "another directory; the stored keys were not changed.")
        if mapped is None:
            raise UsageError(f"{path}: cannot write the key file ({e.strerror or type(e).__name__})",
                             hint="Check FTC_HOME: it must be a writable directory.") from None
        raise mapped from None


@click.group()
def keys() -> None:
    """Store provider API keys (file mode 0600).

    \b
    A key in the environment (OPENAI_API_KEY, TOGETHER_API_KEY, FIREWORKS_API_KEY,
    MISTRAL_API_KEY) wins over the stored one.
    """


@keys.command("set")
@click.argument("provider")
@click.option("--from-env", is_flag=True, help="Copy the key from the provider's environment variable.")
def set_cmd(provider: str, from_env: bool) -> None:
    """Store PROVIDER's API key, read from a hidden prompt (or stdin when piped)."""
    from .. import secrets

    provider = provider.strip().lower()
    var = secrets.env_var(provider)
    if from_env:
        key = os.environ.get(var, "").strip()
        if not key:
            raise UsageError(f"{var} is not set", hint=f"Export {var} first, or run `ftc keys set {provider}` and paste the key.")
    else:
        stdin = sys.stdin
        if stdin is not None and stdin.isatty():
            key = click.prompt(f"{provider} API key", hide_input=True, default="", show_default=False)
        else:
            key = stdin.read() if stdin is not None else ""
        key = key.strip()
        if not key:
            raise UsageError("no key given; nothing stored", hint=f"Paste the key at the prompt, or pipe it: `ftc keys set {provider} < file`.")
    if "\n" in key:
        raise UsageError("the key spans several lines; give only the key")
    where = f"the environment variable {var}" if from_env else "the key given"
    secrets.check_key_value(key, provider=provider, where=where,
                            hint="Give only the key itself (one line, printable ASCII, no spaces); nothing was stored.")
    with _writing_keys(secrets.keys_file()):
        path = secrets.set_key(provider, key)
    from ..backends import backend_attr

    expected = backend_attr(provider, "key_prefixes")  # what its keys usually start with
    if expected and not key.startswith(expected):
        output.warn(f"{provider} keys usually start with {' or '.join(expected)}; check that this is the right key")
    output.info(f"stored the {provider} key ({secrets.fingerprint(key)}) in {path}")
    if not from_env and os.environ.get(var, "").strip():
        output.warn(f"{var} is set in the environment and takes precedence over the stored key")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_cmd(as_json: bool) -> None:
    """Show which providers have a key, and where it comes from."""
    from .. import secrets

    stored = secrets.load_keys()
    rows = []
    for provider in sorted(set(secrets.key_vars()) | set(stored)):
        var = secrets.env_var(provider)
        env_value = os.environ.get(var, "").strip()
        file_value = stored.get(provider, "").strip()
        value = env_value or file_value
        rows.append(
            {
                "provider": provider,
                "env_var": var,
                "source": "env" if env_value else ("file" if file_value else None),
                "fingerprint": secrets.fingerprint(value) if value else None,
                "in_file": bool(file_value),
                "problem": secrets.key_problem(value, provider) if value else None,
            }
        )
    if as_json:
        output.emit_json({"keys_file": str(secrets.keys_file()), "keys": rows})
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("provider", "source", "key", "env var"):
        table.add_column(col)
    for r in rows:
        source = r["source"] or "[dim]none[/dim]"
        if r["source"] == "env" and r["in_file"]:
            source += " (file too)"
        if r["problem"]:
            source += f" [red](unusable: {r['problem']})[/red]"
        table.add_row(output.esc(r["provider"]), source, output.esc(r["fingerprint"] or ""), output.esc(r["env_var"]))
    output.out.print(table)


@keys.command("remove")
@click.argument("provider")
def remove_cmd(provider: str) -> None:
    """Remove PROVIDER's stored key."""
    from .. import secrets

    provider = provider.strip().lower()
    with _writing_keys(secrets.keys_file()):
        removed = secrets.remove_key(provider)
    if not removed:
        raise UsageError(f"no {provider} key is stored in {secrets.keys_file()}", hint="See `ftc keys list`.")
    output.info(f"removed the {provider} key from {secrets.keys_file()}")
    var = secrets.env_var(provider)
    if os.environ.get(var, "").strip():
        output.warn(f"{var} is still set in the environment; ftc will keep using it")


@keys.command("path")
def path_cmd() -> None:
    """Print the path of the key file."""
    from .. import secrets

    click.echo(str(secrets.keys_file()))
