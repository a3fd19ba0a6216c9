"""A server's reply: :func:`parse_reply` checks a chat-completion body and takes the answer
and its token usage from it (:class:`BadReply` when it is none), and the bounds on a reply:
its time (``--timeout``), its size (``--max-reply-bytes``), the answer's length."""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

#: Seconds one request may take from sending to the last byte of its reply (``--timeout``).
DEFAULT_TIMEOUT_S = 120.0
#: The largest reply body read from a server (``--max-reply-bytes``); the rest is not read.
DEFAULT_MAX_REPLY_BYTES = 4 * 1024 * 1024
#: Answers longer than this many characters are cut to it before they are stored and scored.
MAX_ANSWER_CHARS = 64 * 1024

#: Token counts above this in a reply's ``usage`` are not believed (and not stored).
_MAX_USAGE_TOKENS = 10**9


class BadReply(Exception):
    """A server's reply that is no chat completion (not UTF-8, not JSON, no ``choices``...):
    the request failed, it is never scored. ``reason`` says what was wrong, briefly."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _clean_text(text: str) -> str:
    """``text`` with lone surrogates (``"\\ud800"`` is valid JSON) replaced by U+FFFD, so
    it can be stored and printed as UTF-8; surrogate pairs become their character."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _count(value: Any) -> int | None:
    """A token count from ``usage``: a whole number in [0, 1e9], else None (not believed)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= _MAX_USAGE_TOKENS:
        return value
    return None


def _snippet(text: str, n: int = 60) -> str:
    s = " ".join(text.split())
    return s[:n] + ("..." if len(s) > n else "")


def parse_reply(body: "bytes | str | Mapping[str, Any]", *, max_chars: int = MAX_ANSWER_CHARS) -> dict[str, Any]:
    """Check a chat-completion reply body and take what an evaluation stores from it.

    Returns ``{"text", "tokens_in", "tokens_out", "cut", "bad_usage"}``: the first
    choice's message content (cut to ``max_chars`` characters; ``cut`` is how many were
    dropped), the ``usage`` token counts (None when absent; ``bad_usage`` True when they
    were present but not whole numbers in [0, 1e9], then None too). Raises
    :class:`BadReply` when the body is not UTF-8, not JSON, or not a chat completion
    (no ``choices`` list with a ``message``, content neither text nor content parts).
    """
    if isinstance(body, (bytes, bytearray)):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadReply(f"the reply is not UTF-8 text ({e.reason} at byte {e.start})") from None
    else:
        text = body if isinstance(body, str) else None
    if text is not None:
        if not text.strip():
            raise BadReply("the reply was empty")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as e:
            head = text.lstrip()[:200].lower()
            if head.startswith("<") or "<html" in head:
                raise BadReply(f"the reply is an HTML page, not JSON ({_snippet(text)!r})") from None
            msg = e.msg if isinstance(e, json.JSONDecodeError) else "nested too deep"
            raise BadReply(f"the reply is not JSON ({msg}: {_snippet(text)!r})") from None
    else:
        data = body
    if not isinstance(data, Mapping):
        raise BadReply(f"the reply is JSON but not a chat completion (a {type(data).__name__}, not an object)")
    choices = data.get("choices")
    if not isinstance(choices, list):
        what = "no \"choices\"" if choices is None else f"\"choices\" is a {type(choices).__name__}, not a list"
        raise BadReply(f"the reply is not a chat completion ({what})")
    if not choices:
        raise BadReply("the reply has no answer (\"choices\" is empty)")
    first = choices[0]
    message = first.get("message") if isinstance(first, Mapping) else None
    if not isinstance(message, Mapping):
        raise BadReply("the reply is not a chat completion (its first choice has no \"message\" object)")
    content = message.get("content")
    if content is None:
        answer = ""  # a refusal or a tool call: an answer, an empty one
    elif isinstance(content, str):
        answer = content
    elif isinstance(content, list) and all(isinstance(p, (Mapping, str)) for p in content):
        answer = "".join(p if isinstance(p, str) else str(p.get("text") or "") for p in content)
    else:
        raise BadReply(f"the reply's message content is a {type(content).__name__}, not text")
    answer = _clean_text(answer)
    cut = max(0, len(answer) - max_chars)
    if cut:
        answer = answer[:max_chars]
    usage = data.get("usage")
    tin = tout = None
    bad_usage = False
    if isinstance(usage, Mapping):
        raw_in, raw_out = usage.get("prompt_tokens"), usage.get("completion_tokens")
        tin, tout = _count(raw_in), _count(raw_out)
        bad_usage = (raw_in is not None and tin is None) or (raw_out is not None and tout is None)
        if bad_usage:
            tin = tout = None  # one bad figure: neither is believed
    elif usage is not None:
        bad_usage = True
    return {"text": answer, "tokens_in": tin, "tokens_out": tout, "cut": cut, "bad_usage": bad_usage}


def _reply_body(raw: Any) -> bytes:
    """The body bytes of an SDK raw response (openai's and together's shapes)."""
    http = getattr(raw, "http_response", None)
    content = getattr(http, "content", None) if http is not None else getattr(raw, "content", None)
    if isinstance(content, (bytes, bytearray)):
        return bytes(content)
    raise BadReply("the reply body could not be read")
