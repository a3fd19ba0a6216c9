"""Asking a hosted model or an OpenAI-compatible server: the examples sent concurrently from
one asyncio loop, under the rate gate and the retry policy, each reply checked before it is
stored; failures recorded with their reason, and the run stopped at once when nothing
listens, the key is refused, the model does not exist, or the first requests all fail the
same way."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import TYPE_CHECKING, Any, Callable

from ..backends import get_backend
from ..errors import UsageError
from ..retry import AuthError, ProviderError, RequestRejected, async_retry_call, classify, error_fields
from ..secrets import redact
from ..textsafe import safe_text
from ._common import COMPATIBLE, COMPATIBLE_KEY_ENV
from ._examples import Example
from ._http import _async_client, _ReplyTooLarge
from ._progress import _Session
from ._rate import RATE_SAFETY, RateGate, estimate_tokens
from ._replies import DEFAULT_MAX_REPLY_BYTES, DEFAULT_TIMEOUT_S, MAX_ANSWER_CHARS, BadReply, _reply_body, parse_reply

if TYPE_CHECKING:  # pragma: no cover
    from ..modelref import ModelRef
    from ..retry import RetryEvent, RetryPolicy
    from ..store import Store

#: The run stops when its first this-many requests all failed for the same reason.
FAIL_FAST_AFTER = 5


def _run_coro(coro: Any) -> Any:
    """``asyncio.run`` -- in a worker thread when this thread already runs a loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


class _NoResend(Exception):
    """A request that failed in a way a resend would not mend or could make worse (a reply
    that did not come in time, one too large): recorded as failed at once."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _CannotConnect(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _find(exc: BaseException, kind: type) -> Any:
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 12:
        if isinstance(cur, kind):
            return cur
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return None


def _short_reason(e: BaseException) -> str:
    """A failure's short, secret-free reason, for grouping (``HTTP 500 internal server error``)."""
    r = getattr(e, "reason", "") or getattr(e, "message", "") or str(e)
    return redact(" ".join(str(r).split()))[:200]


def _not_served(e: RequestRejected, note: str | None) -> RequestRejected:
    """A model the provider does not serve (404). Where the backend serves fine-tuned models
    only on a deployment of their own (``note``: its ``undeployed_hint``), the hint says so:
    a fine-tune is not gone when no deployment runs it."""
    if not note:
        return e
    return RequestRejected(e.message, f"{e.hint or ''} If it is a fine-tuned model: {note}".strip(),
                           provider=e.provider, op=e.op, status_code=e.status_code, request_id=e.request_id,
                           reason=e.reason)


def _with_server_text(e: BaseException) -> str:
    """A provider error's message with the server's own words added when the message lacks
    them (a retried 5xx says only "HTTP 500 ... after 6 attempts")."""
    message = getattr(e, "message", "") or str(e)
    cause = getattr(e, "error", None)
    said = " ".join(str(error_fields(cause).get("message", "")).split()) if cause is not None else ""
    if said and said not in message:
        message += f"; the server said: {redact(said)[:300]}"
    return message


def _where(ref: "ModelRef", client: Any) -> str:
    url = ref.base_url if ref.backend == COMPATIBLE and ref.base_url else str(getattr(client, "base_url", ""))
    return redact(url) or ref.backend


async def _run_hosted(ref: "ModelRef", todo: list[Example], st: "Store", run_id: str, sess: _Session, *,
                      concurrency: int, rpm: float | None, tpm: float | None, max_tokens: int,
                      temperature: float, policy: "RetryPolicy | None",
                      on_retry: Callable[["RetryEvent"], None] | None,
                      timeout_s: float = DEFAULT_TIMEOUT_S,
                      max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES) -> None:
    charges = {ex.key: estimate_tokens(ex.messages) + max_tokens for ex in todo}
    biggest = max(charges.values(), default=1)
    if tpm and biggest > tpm * RATE_SAFETY:
        raise UsageError(f"one request needs about {biggest} tokens (prompt + --max-tokens {max_tokens}), "
                         f"more than --tpm {tpm:g} allows in a minute",
                         hint="Raise --tpm or lower --max-tokens.")
    gate = RateGate(rpm, tpm, max_charge=biggest)
    sem = asyncio.Semaphore(concurrency)
    abort: list[BaseException] = []
    prog = sess.progress
    provider = ref.backend
    undeployed = None
    if ref.backend == COMPATIBLE:
        key_env, token_kw = COMPATIBLE_KEY_ENV, "max_tokens"  # what most servers read
    else:
        backend = get_backend(ref.backend)
        key_env = getattr(backend, "key_env", None) or None
        token_kw = getattr(backend, "chat_token_param", "max_tokens")
        undeployed = getattr(backend, "undeployed_hint", None)
    loop = asyncio.get_running_loop()
    first_send: list[float] = []
    outcomes: list[str | None] = []  # in the order requests ended: None = answered, else the reason
    first_error: list[str] = []
    counts = {"cut": 0, "bad_usage": 0, "timed_out": 0, "too_large": 0, "bad_reply": 0}
    op = f"chat with {ref.model}"

    def retried(ev: "RetryEvent") -> None:
        prog.retries += 1
        if ev.status_code == 429:
            prog.rate_limited += 1
            gate.pause(ev.wait)  # everyone waits, not only this request
        if on_retry is not None:
            on_retry(ev)

    async with _async_client(ref, timeout_s=timeout_s, max_reply_bytes=max_reply_bytes,
                             concurrency=concurrency) as client:
        where = _where(ref, client)

        def failed(ex: Example, message: str, reason: str) -> None:
            # the server's words, stored and later printed: no terminal escape sequences in them
            message, reason = safe_text(message), safe_text(reason)
            st.save_eval_result(run_id, idx=ex.idx, example_key=ex.key, output=None, latency_s=None,
                                tokens_in=None, tokens_out=None, error=message[:500])
            prog.failed += 1
            outcomes.append(reason)
            if not first_error:
                first_error.append(message[:300])

        async def one(ex: Example) -> None:
            timing: dict[str, float] = {}

            async def call() -> Any:
                await gate.acquire(charges[ex.key])
                t = time.perf_counter()
                if not first_send:
                    first_send.append(loop.time())
                try:
                    raw = await asyncio.wait_for(client.chat.completions.with_raw_response.create(
                        model=ref.model, messages=ex.messages, temperature=temperature, **{token_kw: max_tokens}),
                        timeout_s)
                except asyncio.TimeoutError:
                    counts["timed_out"] += 1
                    raise _NoResend(f"no complete reply within {timeout_s:g} s (--timeout)") from None
                except Exception as e:  # noqa: BLE001 - classified here, else by the retry policy
                    big = _find(e, _ReplyTooLarge)
                    if big is not None:
                        counts["too_large"] += 1
                        raise _NoResend(f"the reply was larger than {big.limit:,} bytes (--max-reply-bytes); "
                                        "the rest was not read") from None
                    d = classify(e, idempotent=True)
                    if d.status_code is None and d.reason in ("read timeout", "timeout"):
                        counts["timed_out"] += 1
                        raise _NoResend(f"no complete reply within {timeout_s:g} s (--timeout)") from None
                    if (d.status_code is None and d.reason in ("connection refused", "connection failed")
                            and not any(o is None for o in outcomes)):
                        # Nothing answered yet: a server that is not there (the run stops at once).
                        refused = _find(e, ConnectionRefusedError)
                        why = "connection refused (nothing listens there)" if refused is not None else d.reason
                        if refused is None:
                            os_err = _find(e, OSError)
                            if os_err is not None and getattr(os_err, "strerror", None):
                                why += f" ({os_err.strerror})"
                        raise _CannotConnect(why) from None
                    raise
                body = _reply_body(raw)
                timing["latency"] = time.perf_counter() - t
                return body

            result = None
            for attempt in (1, 2):
                try:
                    body = await async_retry_call(call, op=op, idempotent=True, policy=policy,
                                                  provider=provider, key_env=key_env, on_retry=retried)
                    result = parse_reply(body)
                    break
                except BadReply as b:
                    # A proxy's error page or a broken reply may be a passing fault: sent once more.
                    if attempt == 1:
                        prog.retries += 1
                        await asyncio.sleep(0.2)
                        continue
                    counts["bad_reply"] += 1
                    failed(ex, f"{op}: {b.reason}; sent twice", b.reason)
                except _NoResend as e:
                    failed(ex, f"{op}: {e.reason}", e.reason)
                except _CannotConnect as e:
                    abort.append(ProviderError(
                        f"cannot connect to {where}: {e.reason}",
                        "Start the server (or check the URL in the model reference), then run the same "
                        "command again.", provider=provider, op=op, reason=e.reason))
                    return
                except AuthError as e:
                    abort.append(e)
                    return
                except RequestRejected as e:
                    if e.status_code == 404:  # no such model: every example would fail the same way
                        abort.append(_not_served(e, undeployed))
                        return
                    failed(ex, e.message, _short_reason(e))
                except ProviderError as e:
                    failed(ex, _with_server_text(e), _short_reason(e))
                break
            if result is not None:
                if result["cut"]:
                    counts["cut"] += 1
                if result["bad_usage"]:
                    counts["bad_usage"] += 1
                st.save_eval_result(run_id, idx=ex.idx, example_key=ex.key, output=result["text"],
                                    latency_s=timing.get("latency"), tokens_in=result["tokens_in"],
                                    tokens_out=result["tokens_out"])
                prog.completed += 1
                sess.new_completed += 1
                outcomes.append(None)
            prog.sent += 1
            sess.active_s = loop.time() - first_send[0] if first_send else 0.0
            head = outcomes[:FAIL_FAST_AFTER]
            if (not abort and len(todo) > FAIL_FAST_AFTER and len(head) == FAIL_FAST_AFTER
                    and len(outcomes) == FAIL_FAST_AFTER and None not in head and len(set(head)) == 1):
                abort.append(ProviderError(
                    f"stopped: the first {FAIL_FAST_AFTER} requests to {where} all failed the same way: "
                    f"{first_error[0] if first_error else head[0]}",
                    "Fix the cause (the server's message is stored with each failed example: "
                    "`ftc eval show`), then run the same command again; answered examples are kept.",
                    provider=provider, op=op, reason=head[0] or ""))
            sess.tick()

        tasks: set[asyncio.Task] = set()

        def done(t: asyncio.Task) -> None:
            tasks.discard(t)
            sem.release()

        try:
            for ex in todo:
                await sem.acquire()
                if abort:
                    sem.release()
                    break
                task = asyncio.create_task(one(ex))
                tasks.add(task)
                task.add_done_callback(done)
            while tasks:
                await asyncio.gather(*list(tasks))
        finally:
            for t in list(tasks):
                t.cancel()
    if gate.pauses:
        sess.notes.append(f"{prog.rate_limited} request(s) got HTTP 429; each paused every request for the "
                          "wait the server asked (or the backoff)")
    if counts["cut"]:
        sess.notes.append(f"{counts['cut']} answer(s) were longer than {MAX_ANSWER_CHARS:,} characters and were "
                          "cut to that length before they were stored and scored")
    if counts["bad_usage"]:
        sess.notes.append(f"{counts['bad_usage']} reply(ies) gave token usage that is not a whole number in "
                          "[0, 1e9]; those figures were ignored")
    if counts["timed_out"]:
        sess.notes.append(f"{counts['timed_out']} request(s) got no complete reply within {timeout_s:g} s "
                          "(--timeout) and were not sent again; for a slow server raise --timeout or lower "
                          "--concurrency")
    if counts["too_large"]:
        sess.notes.append(f"{counts['too_large']} reply(ies) were larger than {max_reply_bytes:,} bytes "
                          "(--max-reply-bytes) and were not read to the end")
    if counts["bad_reply"]:
        sess.notes.append(f"{counts['bad_reply']} reply(ies) were not a chat completion (twice each) and "
                          "count as failed, not as answers")
    if abort:
        raise abort[0]
