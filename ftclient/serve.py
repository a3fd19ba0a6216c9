"""``ftc serve``: a fine-tuned model on this machine behind an OpenAI-compatible API.

:func:`serve_model` resolves the model reference (an ftc job id, ``BACKEND:PATH`` or a model
folder here), and asks the backend that holds the weights to serve them (its ``serve_model``
hook; the local backend runs ``transformers serve``). It returns the running server: its
``url`` (up to ``/v1``), the ``model`` name clients send, its ``pid``, ``info()``, ``wait()``
and ``stop()`` (a ``with`` block stops it too), so that the official ``openai`` client,
``ftc eval openai-compatible:URL#MODEL`` and any tool that speaks the OpenAI API can use it.

A model a provider runs is served there already: it is refused with the way to ask it, unless
the provider hands weights out and the job's weights were downloaded (``ftc jobs download``):
those are unpacked and served here. A job's model is served under the job's id unless
``name`` says otherwise.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from .backends import backend_attr, get_backend
from .errors import UsageError
from .modelref import COMPATIBLE, ModelRef, existing_store
from .weights import model_ref_here, weights_here

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "is_loopback", "serve_model"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

Progress = Callable[[str, "float | None"], None]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    h = (host or "").strip().strip("[]")
    if h.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _refuse(ref: ModelRef) -> UsageError:
    if ref.backend == COMPATIBLE:
        return UsageError(f"{ref.canonical} is a server already: nothing to serve",
                          hint=f"Ask it directly: `ftc chat {ref.canonical} \"hello\"`, "
                               f"`ftc eval {ref.canonical} --data FILE`.")
    display = backend_attr(ref.backend, "display") or ref.backend
    hint = (f"Ask it there: `ftc chat {ref.canonical} \"hello\"`, or evaluate it with "
            f"`ftc eval {ref.canonical} --data FILE`.")
    if backend_attr(ref.backend, "downloads_weights"):
        hint += (f" To run it here, download its weights (`ftc jobs download {ref.job_id or 'JOB'} --checkpoint "
                 "merged`), then serve the job again: ftc unpacks the archive.")
    return UsageError(f"cannot serve {ref.canonical} here: {display} runs the model and serves it through its own "
                      "API already", hint=hint)


def serve_model(model: str, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, name: str | None = None,
                store: Any = None, progress: Progress | None = None, startup_timeout_s: float | None = None) -> Any:
    """Serve ``model`` (an ftc job id, ``BACKEND:PATH`` or a model folder here) over an
    OpenAI-compatible API on ``host:port`` (``port=0``: any free port), and return the server
    once it answers: ``url``, ``model`` (the name to send, ``name`` or the job's id or the
    folder's name), ``pid``, ``info()``, ``wait(timeout)``, ``stop()``; use it in a ``with``
    block to stop it at the end.

    UsageError (exit 2) for a model ftc cannot run here (a hosted one: ask it where it runs),
    a taken port, a server that does not start in time; ConfigError when the packages the
    server needs are missing (the install line is in the message)."""
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise UsageError(f"port {port!r} is not a number", hint="Give 1-65535, or 0 for any free port.") from None
    if not 0 <= port <= 65535:
        raise UsageError(f"port {port} is not a TCP port", hint="Give 1-65535, or 0 for any free port.")
    with existing_store(store) as st:
        ref = model_ref_here(model, st)
        found = None if ref.backend == COMPATIBLE else weights_here(ref, st, "serve_model", progress)
    if found is None:
        raise _refuse(ref)
    backend, weights = found
    return get_backend(backend).serve_model(weights, host=host or DEFAULT_HOST, port=port,
                                            name=name or ref.job_id, progress=progress,
                                            startup_timeout_s=startup_timeout_s)
