"""One question to an OpenAI-compatible server (``ftc chat openai-compatible:URL#MODEL``),
through the same client, reply checks, size and time caps and retry policy as ``ftc eval``'s
requests."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable

from ..retry import ProviderError, async_retry_call
from ._common import COMPATIBLE_KEY_ENV, _check_can_ask
from ._hosted import _run_coro
from ._http import _async_client
from ._replies import DEFAULT_TIMEOUT_S, BadReply, _reply_body, parse_reply

if TYPE_CHECKING:  # pragma: no cover
    from ..modelref import ModelRef

__all__ = ["ask_once"]


def ask_once(ref: "ModelRef", prompt: str, *, system: str | None = None,
             on_retry: Callable[[Any], None] | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> str:
    """The answer of ``ref``'s model to ``prompt`` (after an optional ``system`` message)."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    op = f"chat with {ref.model}"

    async def ask() -> dict:
        async with _async_client(ref, timeout_s=timeout_s, concurrency=1) as client:
            async def call() -> bytes:
                try:
                    raw = await asyncio.wait_for(
                        client.chat.completions.with_raw_response.create(model=ref.model, messages=messages),
                        timeout_s)
                except asyncio.TimeoutError:
                    raise ProviderError(f"{op}: no complete reply within {timeout_s:g} s",
                                        "Is the server busy? Try again.", provider=ref.backend, op=op,
                                        reason="timeout") from None
                return _reply_body(raw)

            body = await async_retry_call(call, op=op, idempotent=True, provider=ref.backend,
                                          key_env=COMPATIBLE_KEY_ENV, on_retry=on_retry)
        try:
            return parse_reply(body)
        except BadReply as b:
            raise ProviderError(f"{op}: {b.reason}", "The server's reply is not a chat completion.",
                                provider=ref.backend, op=op, reason=b.reason) from None

    _check_can_ask(ref)
    return _run_coro(ask())["text"]
