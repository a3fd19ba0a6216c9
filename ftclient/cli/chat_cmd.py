"""``ftc chat``: one completion from a fine-tuned model (or a base model)."""

from __future__ import annotations

import click


@click.command()
@click.argument("model_or_job")
@click.argument("prompt")
@click.option("--backend", "-b", default=None,
              help="The model's backend (openai, together...); not needed for an ftc job id.")
@click.option("--system", default=None, help="A system message.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (backend, model, job_id, text).")
def chat(model_or_job, prompt, backend, system, as_json) -> None:
    """Ask MODEL_OR_JOB one PROMPT and print the answer.

    \b
    MODEL_OR_JOB is an ftc job id whose fine-tuned model is known, or a model id as the
    provider names it together with --backend:
      ftc chat ftc-20261122-a3f9c2 "My card was charged twice"
      ftc chat ft:gpt-4.1-mini-2025-04-14:acme:intents:AbC123 "Hi" --backend openai
    """
    from .. import jobs as J
    from ..secrets import redact
    from .jobs_cmd import emit, show_retry
    from rich.markup import escape

    from .output import err, safe_text

    reply = J.chat(model_or_job, prompt, backend=backend, system=system, on_retry=show_retry)
    if as_json:
        emit(reply.to_dict())
        return
    # The model's words are printed as text: no terminal escape sequence, no markup.
    err.print(f"[dim]{escape(safe_text(reply.backend))}: {escape(safe_text(reply.model))}[/dim]",
              highlight=False, markup=True)
    click.echo(safe_text(redact(reply.text)))
