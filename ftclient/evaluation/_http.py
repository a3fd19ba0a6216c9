"""The HTTP side of asking a model: the SDKs' async HTTP client capped at
``--max-reply-bytes`` (:func:`capped_http_client`), the transport timeouts that back up
``--timeout`` (:func:`request_timeouts`), the HTTP library the openai SDK talks through,
and the async chat client that asks a model (its backend's, or the openai SDK pointed at
an OpenAI-compatible server)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ..backends import get_backend
from ..errors import ConfigError
from ..retry import sdk_client_kwargs
from ..secrets import KeyFormatError, get_key
from ._common import COMPATIBLE, DEFAULT_CONCURRENCY
from ._replies import DEFAULT_MAX_REPLY_BYTES, DEFAULT_TIMEOUT_S

if TYPE_CHECKING:  # pragma: no cover
    from ..modelref import ModelRef


class _ReplyTooLarge(Exception):
    """Raised while reading a reply body past ``--max-reply-bytes`` (the rest is not read)."""

    def __init__(self, limit: int):
        super().__init__(f"reply larger than {limit:,} bytes")
        self.limit = limit


def capped_http_client(sdk_module: Any, http_module: Any, *, max_reply_bytes: int, connections: int) -> Any:
    """The SDK's own async HTTP client (``DefaultAsyncHttpxClient``) over a transport that
    counts the bytes of every reply body as they arrive and stops reading at
    ``max_reply_bytes`` (a ``Content-Length`` over the limit stops it before reading), so
    an endless or huge reply -- error replies included, which the SDKs read whole -- costs
    at most that much memory."""
    limit = int(max_reply_bytes)

    class _CappedStream(http_module.AsyncByteStream):
        def __init__(self, inner: Any):
            self._inner = inner

        async def __aiter__(self) -> Any:
            n = 0
            async for chunk in self._inner:
                n += len(chunk)
                if n > limit:
                    raise _ReplyTooLarge(limit)
                yield chunk

        async def aclose(self) -> None:
            await self._inner.aclose()

    class _CappedTransport(http_module.AsyncBaseTransport):
        def __init__(self) -> None:
            n = max(10, connections + 2)
            self._inner = http_module.AsyncHTTPTransport(
                limits=http_module.Limits(max_connections=n, max_keepalive_connections=n))

        async def handle_async_request(self, request: Any) -> Any:
            resp = await self._inner.handle_async_request(request)
            size = str(resp.headers.get("content-length") or "").strip()
            if size.isdigit() and int(size) > limit:
                await resp.aclose()
                raise _ReplyTooLarge(limit)
            return http_module.Response(status_code=resp.status_code, headers=resp.headers,
                                        stream=_CappedStream(resp.stream), extensions=resp.extensions,
                                        request=request)

        async def aclose(self) -> None:
            await self._inner.aclose()

    return sdk_module.DefaultAsyncHttpxClient(transport=_CappedTransport())


def request_timeouts(timeout_s: float) -> dict[str, float]:
    """The SDK transport's read and write timeouts for requests bounded by ``timeout_s`` as a
    whole (asyncio, in ``_run_hosted``): they only back that bound up."""
    return {"read": timeout_s + 5.0, "write": timeout_s + 5.0}


def openai_http_module() -> Any:
    """The HTTP library the installed openai SDK talks through (httpx2 for openai 3.x, else httpx)."""
    try:
        return importlib.import_module("httpx2")
    except ImportError:  # openai 1.x talks through httpx
        return importlib.import_module("httpx")


def _async_client(ref: "ModelRef", *, timeout_s: float = DEFAULT_TIMEOUT_S,
                  max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES, concurrency: int = DEFAULT_CONCURRENCY) -> Any:
    """The async chat client that asks ``ref``: its backend's (``async_chat_client``), or for
    an OpenAI-compatible server the openai SDK pointed at the server."""
    if ref.backend != COMPATIBLE:
        return get_backend(ref.backend).async_chat_client(timeout_s=timeout_s, max_reply_bytes=max_reply_bytes,
                                                          concurrency=concurrency)
    import openai

    http = capped_http_client(openai, openai_http_module(), max_reply_bytes=max_reply_bytes, connections=concurrency)
    try:
        key = get_key(COMPATIBLE)
    except KeyFormatError:
        raise
    except ConfigError:
        key = "unused"  # most self-hosted servers (Ollama, vLLM) ask for no key
    # The URL as given (its credentials too) exists only here, in memory; ref.base_url is redacted.
    base_url, query = ref.connection()
    return openai.AsyncOpenAI(api_key=key, base_url=base_url, default_query=query or None, http_client=http,
                              **sdk_client_kwargs("openai", **request_timeouts(timeout_s)))
