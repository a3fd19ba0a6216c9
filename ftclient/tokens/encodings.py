"""The tiktoken encodings of OpenAI models, from the BPE files that ship inside ftclient.

``resources/tiktoken`` holds ``o200k_base`` and ``cl100k_base``; :func:`load_encoding`
reads one from disk and checks it against the sha256 that tiktoken itself expects
(``tiktoken.load.check_hash``), so no download is ever attempted.

Parsing the 200,000 base64 lines of ``o200k_base`` takes about 0.1 s, paid by every process
that counts OpenAI tokens; the parsed ranks of a bundled file are therefore kept in
``$FTC_HOME/cache/tiktoken`` (``marshal``, under the checked file's sha256 and the Python
version, with the sha256 of their own bytes), which reads in about half that time. A cache
that is missing, unreadable, corrupt or unwritable is parsed again from the file.
"""

from __future__ import annotations

import binascii
import marshal
import os
import sys
import threading
from pathlib import Path
from typing import Any

from ..errors import ConfigError, FtcError
from ..fileio import atomic_writer
from ..paths import ftc_home

RESOURCES = Path(__file__).parent.parent / "resources" / "tiktoken"

# sha256 of the BPE files, identical to the ``expected_hash`` that
# tiktoken_ext/openai_public.py declares (a test checks they agree).
ENCODING_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}

# pat_str and special tokens as in tiktoken_ext/openai_public.py (a test checks they agree).
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_SPECIALS = {
    "cl100k_base": {
        "<|endoftext|>": 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        "<|endofprompt|>": 100276,
    },
    "o200k_base": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
}
_PATS = {"cl100k_base": _CL100K_PAT, "o200k_base": _O200K_PAT}

_lock = threading.Lock()
_encodings: dict[str, Any] = {}


def encoding_for_model(model: str) -> str:
    """tiktoken encoding name of an OpenAI model: o200k_base or cl100k_base."""
    m = model.lower()
    if m.startswith("ft:"):
        m = m.split(":", 2)[1]
    if m.startswith(("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss")):
        return "o200k_base"
    if m.startswith(("gpt-4", "gpt-3.5", "gpt-35", "text-embedding-3", "text-embedding-ada")):
        return "cl100k_base"
    raise ConfigError(
        f"no known tiktoken encoding for OpenAI model {model!r}",
        hint="Known families: gpt-4o*, gpt-4.1*, o1/o3/o4* (o200k_base); gpt-4, gpt-3.5-turbo (cl100k_base).",
    )


def load_encoding(name: str, path: str | os.PathLike | None = None):
    """A ``tiktoken.Encoding`` from the BPE file bundled in ftclient, never downloading.

    The file's sha256 is checked with tiktoken's own ``check_hash`` against the hash
    tiktoken expects; a changed file raises ConfigError. Cached per process.
    """
    if name not in ENCODING_SHA256:
        raise ConfigError(f"unknown encoding {name!r}", hint=f"Known: {', '.join(ENCODING_SHA256)}")
    key = name if path is None else f"{name}@{path}"
    enc = _encodings.get(key)
    if enc is not None:
        return enc
    with _lock:
        enc = _encodings.get(key)
        if enc is None:
            enc = _build_encoding(name, Path(path) if path is not None else RESOURCES / f"{name}.tiktoken")
            _encodings[key] = enc
    return enc


def _build_encoding(name: str, file: Path):
    import tiktoken
    from tiktoken.load import check_hash, read_file

    try:
        data = read_file(str(file))  # a plain path: tiktoken reads it from disk
    except OSError as e:
        raise ConfigError(
            f"{file}: the bundled tokenizer file cannot be read ({e.strerror})",
            hint="Reinstall ftclient; the file ships inside the package.",
        ) from None
    if not check_hash(data, ENCODING_SHA256[name]):
        raise ConfigError(
            f"{file}: sha256 does not match the {name} file tiktoken expects; refusing to use it",
            hint="The file was changed or corrupted. Reinstall ftclient.",
        )
    bundled = file.resolve() == (RESOURCES / f"{name}.tiktoken").resolve()
    ranks = _cached_ranks(name) if bundled else None
    if ranks is None:
        ranks = parse_ranks(data)
        if bundled:
            _store_ranks(name, ranks)
    return tiktoken.Encoding(name, pat_str=_PATS[name], mergeable_ranks=ranks, special_tokens=_SPECIALS[name])


def parse_ranks(data: bytes) -> dict[bytes, int]:
    """The ranks of a ``.tiktoken`` BPE file's bytes: the same result as
    ``tiktoken.load.load_tiktoken_bpe`` (a test checks), ~40% faster."""
    fields = data.split()
    return dict(zip(map(binascii.a2b_base64, fields[0::2]), map(int, fields[1::2])))


def ranks_cache_file(name: str) -> Path:
    """Where the parsed ranks of the bundled encoding ``name`` are kept."""
    v = sys.version_info
    return ftc_home(create=False) / "cache" / "tiktoken" / f"{name}-{ENCODING_SHA256[name][:16]}-py{v[0]}{v[1]}.marshal"


def _cached_ranks(name: str) -> dict[bytes, int] | None:
    """The cached ranks of ``name``, or None when there is no usable cache."""
    try:
        blob = ranks_cache_file(name).read_bytes()
    except (OSError, FtcError):
        return None
    import hashlib  # OpenSSL's bindings (about 3 ms) only where an encoding is built

    digest, payload = blob[:32], blob[32:]
    if hashlib.sha256(payload).digest() != digest:
        return None
    try:
        ranks = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    return ranks if isinstance(ranks, dict) and len(ranks) > 1000 else None


def _store_ranks(name: str, ranks: dict[bytes, int]) -> None:
    """Keep the parsed ranks for the next process (atomically; a home that cannot be written
    only means parsing again next time)."""
    import hashlib

    payload = marshal.dumps(ranks)
    try:
        ftc_home()  # created 0700 if missing, before the cache folder inside it
        with atomic_writer(ranks_cache_file(name), "wb", encoding=None) as f:
            f.write(hashlib.sha256(payload).digest() + payload)
    except (OSError, FtcError):
        pass

