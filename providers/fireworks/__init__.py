"""Fireworks AI as an ftc backend: fine-tuning jobs through the official ``fireworks-ai`` SDK.

:mod:`.backend` holds the backend class, :mod:`.wire` what ftc sends (names, ids, create
arguments), :mod:`.records` what Fireworks answers as neutral records, :mod:`.validation`
the data rules and :mod:`.options` the spec's ``fireworks:`` block.
"""

from .backend import *  # noqa: F401,F403 - the package's public names are its modules'
from .backend import __all__ as _backend
from .records import *  # noqa: F401,F403
from .records import __all__ as _records
from .wire import *  # noqa: F401,F403
from .wire import __all__ as _wire

__all__ = [*_backend, *_wire, *_records]
