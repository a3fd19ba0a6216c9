"""The rate limits: :class:`RateGate` paces requests under ``--rpm`` and ``--tpm`` and
pauses them all on a 429; :func:`estimate_tokens` is what a request is charged."""

from __future__ import annotations

import asyncio
import math
from typing import Any, Mapping, Sequence

from ._examples import _text

#: The rate limiter paces at this share of --rpm / --tpm, so timing jitter between this
#: client and the server's clock does not push a window over the provider's limit.
RATE_SAFETY = 0.97


def estimate_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """A request's prompt tokens as a rate limiter counts them before sending: about four
    characters per token, plus 4 per message and 3 for the reply's priming (providers'
    own limiters estimate the same way; the answer's ``usage`` gives the real figure)."""
    return sum(math.ceil(len(_text(m.get("content"))) / 4) + 4 for m in messages) + 3


class RateGate:
    """Requests-per-minute and tokens-per-minute limits for one evaluation's requests.

    Two ``aiolimiter.AsyncLimiter`` leaky buckets: one of capacity 1 that lets one request
    through every ``60 / (rpm * RATE_SAFETY)`` seconds (an even pace, never a burst a
    provider's per-second quantisation would refuse), and one for tokens whose capacity
    is the largest single request (``max_charge``), draining at ``tpm * RATE_SAFETY`` per
    minute. A request is charged its estimated prompt tokens plus ``max_tokens``, as the
    providers count it. :meth:`pause` (called on every 429) holds every request back until
    the wait is over, so one refusal slows the whole run, not just the request that got it.
    """

    def __init__(self, rpm: float | None = None, tpm: float | None = None, *, max_charge: int = 1,
                 safety: float = RATE_SAFETY):
        from aiolimiter import AsyncLimiter

        self.rpm, self.tpm = rpm, tpm
        self.requests = AsyncLimiter(1, 60.0 / (rpm * safety)) if rpm else None
        cap = max(1, int(max_charge))
        self.tokens = AsyncLimiter(cap, cap * 60.0 / (tpm * safety)) if tpm else None
        self._resume_at = 0.0
        self.pauses = 0

    def pause(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` from now (longer pauses win)."""
        if seconds <= 0:
            return
        now = asyncio.get_running_loop().time()
        self._resume_at = max(self._resume_at, now + seconds)
        self.pauses += 1

    async def _paused(self) -> None:
        loop = asyncio.get_running_loop()
        while (wait := self._resume_at - loop.time()) > 0:
            await asyncio.sleep(wait)

    async def acquire(self, tokens: int = 0) -> None:
        """Wait for a pause to end and for room under both limits."""
        await self._paused()
        if self.requests is not None:
            await self.requests.acquire()
        if self.tokens is not None and tokens > 0:
            await self.tokens.acquire(min(float(tokens), self.tokens.max_rate))
        await self._paused()  # a 429 that came in while this one waited for its slot
