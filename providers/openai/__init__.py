"""OpenAI as an ftc backend: fine-tuning jobs through the official ``openai`` SDK, and the
source ``ftc migrate`` moves fine-tunes away from (see :mod:`.backend`)."""

from .backend import *  # noqa: F401,F403 - the package's public names are the backend module's
from .backend import __all__  # noqa: F401
