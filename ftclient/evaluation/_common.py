"""What every part of an evaluation shares: the defaults of its parameters, the kinds of
model it asks (hosted, run here, an OpenAI-compatible server), the check that what asking
one needs (its SDK or training stack, its key) is here, and :class:`Interrupted`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..backends import available_backends, check_ready, get_backend, offers, require_modules
from ..errors import Interrupted as _Interrupted
from ..secrets import check_key

if TYPE_CHECKING:  # pragma: no cover
    from ..modelref import ModelRef

#: Reply length bound when none is given (labels and short answers fit well within it).
DEFAULT_MAX_TOKENS = 128
DEFAULT_CONCURRENCY = 8
DEFAULT_BATCH_SIZE = 8

#: Any OpenAI-compatible server (Ollama, vLLM, TGI...), asked through the openai SDK: a
#: protocol, not a backend of the registry.
COMPATIBLE = "openai-compatible"
COMPATIBLE_KEY_ENV = "OPENAI_COMPATIBLE_API_KEY"

HOSTED, HERE, SERVER = "hosted", "here", "server"


def _kind(backend: str) -> str | None:
    """How ``ftc eval`` asks a model of ``backend``: ``hosted`` (the backend's async chat
    client, priced per token from the catalogue), ``here`` (the backend loads the model on
    this machine: ``load_generator``), ``server`` (an OpenAI-compatible server); None when
    it cannot ask it. Asked of the registry: nothing is built."""
    if backend == COMPATIBLE:
        return SERVER
    if offers(backend, "async_chat_client"):
        return HOSTED
    if offers(backend, "load_generator"):
        return HERE
    return None


def _askable() -> list[str]:
    return [b for b in available_backends() if _kind(b) is not None] + [COMPATIBLE]


class Interrupted(_Interrupted):
    """The evaluation was interrupted; what was answered is stored (exit 130)."""

    exit_code = 130


def _check_can_ask(ref: "ModelRef") -> None:
    """Before the run is recorded: what asking ``ref`` needs is here (the backend's SDK or
    training stack, its API key), else a ConfigError (exit 2) with the install line or the
    key's variable. The backend declares both (``ftclient.backends.readiness``)."""
    if ref.backend in available_backends():
        check_ready(get_backend(ref.backend))
    elif ref.backend == COMPATIBLE:  # asked through the openai SDK; a key is optional
        require_modules(("openai",), extra="hosted", who="ftc eval of an OpenAI-compatible server")
        check_key(COMPATIBLE)  # but one that is set must be usable (exit 2, never shown)
