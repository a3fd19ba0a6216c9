"""``ftc chat``: one completion from a fine-tuned model (or a base model).

The model is named as ``ftc eval`` names it (:mod:`ftclient.modelref`): ``local:...``,
``openai:...``, ``together:...``, ``openai-compatible:URL#MODEL`` or an ftc job id; a
provider's own model id with ``--backend`` works too.
"""

from __future__ import annotations

from typing import Any

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
    MODEL_OR_JOB is any model reference `ftc eval` takes, or a model id as the provider
    names it together with --backend:
      ftc chat ftc-20261122-a3f9c2 "My card was charged twice"
      ftc chat local:default "hello"
      ftc chat openai:gpt-4o-mini "hello"
      ftc chat openai-compatible:http://127.0.0.1:11434/v1#llama3.2 "hello"
      ftc chat ft:gpt-4.1-mini-2025-04-14:acme:intents:AbC123 "Hi" --backend openai
    """
    from .. import jobs as J
    from ..secrets import redact
    from .jobs_cmd import emit, show_retry
    from rich.markup import escape

    from .output import err, safe_text

    ref = _model_ref(model_or_job, backend)
    if ref is None:  # an ftc job id, or a provider's model id with --backend
        from ..errors import UsageError

        try:
            reply = J.chat(model_or_job, prompt, backend=backend, system=system, on_retry=show_retry)
        except UsageError as e:
            if backend is None and e.message.startswith("no job"):
                raise UsageError(e.message, hint="Give an ftc job id, or a model reference as `ftc eval` takes it: "
                                 "local:default, openai:gpt-4o-mini, together:MODEL, "
                                 "openai-compatible:URL#MODEL (or a model id with --backend).") from None
            raise
    elif ref.backend == "openai-compatible":
        from ..evaluation import ask_once

        reply = J.ChatReply(backend=ref.backend, model=ref.model, job_id=None,
                            text=ask_once(ref, prompt, system=system, on_retry=show_retry))
    else:
        import dataclasses

        reply = J.chat(ref.model, prompt, backend=ref.backend, system=system, on_retry=show_retry)
        reply = dataclasses.replace(reply, job_id=ref.job_id)
    if as_json:
        emit(reply.to_dict())
        return
    # The model's words are printed as text: no terminal escape sequence, no markup.
    err.print(f"[dim]{escape(safe_text(reply.backend))}: {escape(safe_text(reply.model))}[/dim]",
              highlight=False, markup=True)
    click.echo(safe_text(redact(reply.text)))


def _model_ref(text: str, backend: str | None) -> Any:
    """The parsed model reference when ``text`` starts with a backend prefix (``local:``,
    ``openai:``, ``together:``, ``openai-compatible:``), else None (a job id or a provider's model id)."""
    from ..errors import UsageError
    from ..modelref import parse_model_ref, schemes

    head, sep, _ = (text or "").strip().partition(":")
    if not sep or head.lower() not in schemes():
        return None
    ref = parse_model_ref(text)
    if backend is not None and backend != ref.backend:
        raise UsageError(f"{text!r} names a {ref.backend} model but --backend is {backend}",
                         hint="Leave --backend out: the model reference names its backend.")
    return ref
