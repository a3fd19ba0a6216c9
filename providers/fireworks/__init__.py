"""Fireworks AI as an ftc backend: fine-tuning jobs through the official ``fireworks-ai`` SDK
(see :mod:`.backend`)."""

from .backend import *  # noqa: F401,F403 - the package's public names are the backend module's
from .backend import __all__  # noqa: F401
