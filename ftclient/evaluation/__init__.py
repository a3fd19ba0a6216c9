"""Evaluate a model on held-out chat data: quality, latency, tokens, throughput, cost per 1K queries.

    from ftclient.evaluation import evaluate
    summary = evaluate("openai:gpt-4o-mini", "data/eval.jsonl", metric="label", rpm=500)

The Python API behind ``ftc eval`` (docs/eval.md). Steps:

1. The model reference is parsed (:mod:`ftclient.modelref`), the data read: ChatML JSONL
   as ``ftc data prepare`` writes it; for each record the prompt is every message before
   the last assistant message and the reference is that message's content.
2. The run's id is derived from (canonical model ref, data sha256, generation params:
   ``max_tokens``, ``temperature``, ``max_examples``), so running the same evaluation
   again finds its stored results (:class:`ftclient.store.Store`, tables ``eval_runs`` /
   ``eval_results``) and sends only the examples not answered yet (failed ones are sent
   again); ``fresh=True`` starts over. Every answer is stored as it arrives, so an
   interrupted run (Ctrl-C, kill) resumes where it stopped. The metric is not part of the
   id: scoring the same outputs with another metric sends nothing.
3. Hosted and OpenAI-compatible models are asked concurrently from one asyncio loop:
   ``openai.AsyncOpenAI`` (openai, openai-compatible) or the together SDK's own
   ``AsyncTogether``, SDK retries off (``max_retries=0``), every call under
   :func:`ftclient.retry.async_retry_call` (the same classification as every other
   provider call: 429 / 5xx / dropped connections are retried, ``Retry-After`` honoured).
   At most ``concurrency`` requests are in flight (an ``asyncio.Semaphore``), and
   :class:`RateGate` paces them under ``rpm`` requests and ``tpm`` tokens per minute
   (``aiolimiter`` leaky buckets) and, when a 429 arrives, pauses every request -- not
   only the one that got it -- for the wait the retry policy chose. Each request is bounded
   as a whole by ``timeout_s`` and its reply body by ``max_reply_bytes`` (a transport that
   counts bytes as they arrive); a request that timed out is not sent again. A reply is
   checked by :func:`parse_reply` before anything is stored: one that is no chat
   completion is a failure (sent once more, then recorded with its reason), never an empty
   answer. Nothing listening, or the first requests all failing the same way, stop the
   run with one message (docs/eval.md, "Slow, broken and hostile servers").
4. Local models are loaded once (the backend's ``load_generator``) and answered in
   batches by its batched greedy ``generate``; latency is per example (batch time / batch
   size) and tokens are counted with the model's tokenizer.
5. The summary (:func:`evaluate`'s return value, stored with the run and printed by
   ``ftc eval --json``) has the shape documented in docs/eval.md.

The modules: :mod:`~ftclient.evaluation._examples` (:class:`Example`,
:func:`load_examples`), :mod:`~ftclient.evaluation._replies` (:func:`parse_reply`,
:class:`BadReply`, the reply's time and size bounds), :mod:`~ftclient.evaluation._http`
(:func:`capped_http_client`, :func:`request_timeouts`, :func:`openai_http_module`, the
async chat client), :mod:`~ftclient.evaluation._rate` (:class:`RateGate`,
:func:`estimate_tokens`), :mod:`~ftclient.evaluation._hosted` (asking hosted models and
OpenAI-compatible servers), :mod:`~ftclient.evaluation._here` (asking models run on this
machine), :mod:`~ftclient.evaluation._summary` (:data:`SUMMARY_KEYS`, the cost per 1K
queries, the latency quantiles), :mod:`~ftclient.evaluation._progress`
(:class:`EvalProgress`), :mod:`~ftclient.evaluation._run` (:func:`evaluate`,
:func:`eval_run_id`), and :mod:`~ftclient.evaluation._common` (the parameters' defaults,
the kinds of model ``ftc eval`` asks, :class:`Interrupted`).

Nothing heavy is imported at module import: the SDKs, aiolimiter and torch load inside
the functions that use them.
"""

from __future__ import annotations

from ._common import DEFAULT_BATCH_SIZE, DEFAULT_CONCURRENCY, DEFAULT_MAX_TOKENS, Interrupted
from ._examples import Example, load_examples
from ._ask import ask_once
from ._http import capped_http_client, openai_http_module, request_timeouts
from ._progress import EvalProgress
from ._rate import RATE_SAFETY, RateGate, estimate_tokens
from ._replies import DEFAULT_MAX_REPLY_BYTES, DEFAULT_TIMEOUT_S, MAX_ANSWER_CHARS, BadReply, parse_reply
from ._run import eval_run_id, evaluate
from ._summary import SUMMARY_KEYS

# Not public, but read through the package: the tests check the latency quantile.
from ._summary import _quantile as _quantile

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_MAX_REPLY_BYTES",
    "MAX_ANSWER_CHARS",
    "BadReply",
    "parse_reply",
    "RATE_SAFETY",
    "SUMMARY_KEYS",
    "Example",
    "EvalProgress",
    "Interrupted",
    "RateGate",
    "load_examples",
    "eval_run_id",
    "estimate_tokens",
    "evaluate",
    "ask_once",
    "capped_http_client",
    "request_timeouts",
    "openai_http_module",
]

# ``ftclient.evaluate`` is this function; help() and ``evaluate.__module__`` name its public home.
evaluate.__module__ = __name__
