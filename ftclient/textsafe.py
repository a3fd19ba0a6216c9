"""Text from a model, a provider or a server, made safe to print on a terminal.

:func:`safe_text` removes terminal escape sequences (CSI ``ESC [ ... m``, OSC
``ESC ] ... BEL``, DCS/APC/PM/SOS strings) and shows every other control character -- C0
but newline and tab, DEL, C1, and the bidirectional overrides -- as ``\\xNN`` /
``\\uNNNN``, so a reply can neither move the cursor, retitle the window, clear the screen
nor hide or reorder text. It does not touch rich markup: escape that separately
(``rich.markup.escape``) or print with ``markup=False``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["safe_text"]

# ESC/CSI sequences, OSC/DCS/APC/PM/SOS strings (ended by BEL or ST, or cut), a lone ESC + one char
_SEQUENCE = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
                       r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
                       r"|\x1b[@-Z\\-_]?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _show(m: "re.Match[str]") -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def safe_text(text: Any) -> str:
    """``text`` (None -> ``""``) without terminal escape sequences, other controls shown as escapes."""
    return _CONTROL.sub(_show, _SEQUENCE.sub("", "" if text is None else str(text)))
