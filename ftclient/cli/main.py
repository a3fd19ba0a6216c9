"""Entry point of ``ftc``: the root command group and the one error handler."""

from __future__ import annotations

import sys

import click

from .. import __version__
from .lazy import LazyGroup

COMMANDS = {
    "spec": ("ftclient.cli.spec_cmd:spec", "Write or check a job spec (YAML)."),
    "data": ("ftclient.cli.data_cmd:data", "Prepare and validate training data."),
    "cost": ("ftclient.cli.cost_cmd:cost", "Estimate and compare fine-tuning cost, offline."),
    "demo": ("ftclient.cli.demo_cmd:demo", "Run the whole path on a bundled sample, offline."),
    "keys": ("ftclient.cli.keys_cmd:keys", "Store provider API keys (file mode 0600)."),
    "train": ("ftclient.cli.train_cmd:train", "Check, estimate, submit and watch a fine-tuning job."),
    "jobs": ("ftclient.cli.jobs_cmd:jobs", "List, watch, cancel and resume fine-tuning jobs."),
    "chat": ("ftclient.cli.chat_cmd:chat", "Ask a fine-tuned model (or an ftc job's result) one prompt."),
    "compare": ("ftclient.cli.compare_cmd:compare", "Compare eval runs: accuracy, cost, latency, a recommendation."),
    "eval": ("ftclient.cli.eval_cmd:eval_", "Score a model on held-out data: quality, latency, cost per 1K queries."),
    "export": ("ftclient.cli.export_cmd:export", "Write a model for other tools: adapter, merged, GGUF, Ollama, vLLM."),
    "serve": ("ftclient.cli.serve_cmd:serve", "Serve a model of this machine over an OpenAI-compatible API."),
    "migrate": ("ftclient.cli.migrate_cmd:migrate", "Move a hosted fine-tune to an open model before it shuts down."),
}


class RootGroup(LazyGroup):
    """The root group turns user errors into one message and an exit code.

    Doing it here (not only in ``main``) gives click's test runner the same exit
    codes and messages as a real run.
    """

    def invoke(self, ctx: click.Context):
        from ..errors import FtcError

        try:
            return super().invoke(ctx)
        except FtcError as e:
            if (ctx.obj or {}).get("debug"):
                raise
            _print_error(e.message, e.hint)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            _print_error("interrupted", None)
            ctx.exit(130)


@click.group(cls=RootGroup, lazy_subcommands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="ftc")
@click.option("--debug", is_flag=True, envvar="FTC_DEBUG", help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """ftc: fine-tune on hosted APIs or locally from one spec, and compare them.

    \b
    Typical session:
      ftc data prepare tickets.csv --input-col text --output-col category --out-dir data/
      ftc data validate data/train.jsonl --provider openai
      ftc cost compare data/train.jsonl --epochs 3
      ftc demo
    """
    from ..secrets import install_log_redaction

    install_log_redaction()  # API keys never reach a log line, ours or the SDKs'
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors end in one message and an exit code, not a traceback."""
    from ..errors import FtcError

    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        rv = cli.main(args=argv, prog_name="ftc", standalone_mode=False)
    except FtcError as e:
        if debug:
            _print_traceback(e)
        _print_error(e.message, e.hint)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        _print_error("interrupted", None)
        sys.exit(130)
    except KeyboardInterrupt:
        _print_error("interrupted", None)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    except RecursionError as e:  # input nested deeper than a reader along the way could follow
        if debug:
            _print_traceback(e)
        _print_error("the input is nested too deeply to be read",
                     "Check the data with `ftc data validate FILE --provider ...` (it names the line); "
                     "run again with --debug for the traceback if the input is not deeply nested.")
        sys.exit(1)
    except Exception as e:  # an unexpected error: still no traceback without --debug
        if debug:
            _print_traceback(e)
        _print_error(f"internal error: {type(e).__name__}: {e}", "Run again with --debug for the traceback, and report it.")
        sys.exit(70)
    sys.exit(rv if isinstance(rv, int) else 0)


def _print_traceback(exc: BaseException) -> None:
    """``--debug``: the traceback on stderr, through the same redaction as every other output
    (an HTTP client's "Illegal header value b'Bearer ...'" would otherwise show the key)."""
    import traceback

    from ..secrets import redact

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    sys.stderr.write(redact(text))
    sys.stderr.flush()


def _print_error(message: str, hint: str | None) -> None:
    from rich.markup import escape

    from ..secrets import redact
    from ..textsafe import safe_text
    from .output import err

    # a provider's or a server's words may carry terminal escape sequences: shown, never obeyed
    message, hint = safe_text(redact(message)), (safe_text(redact(hint)) if hint else hint)

    # The texts are plain: brackets in them (pip install "ftclient[hosted]", [code]) are shown as written.
    err.print(f"[bold red]error:[/bold red] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
    if hint:
        err.print(f"[dim]hint:[/dim] {escape(hint)}", highlight=False, soft_wrap=True)
