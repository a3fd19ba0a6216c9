"""API keys: where they come from, where they are kept, and how they are kept out of sight.

* :func:`get_key` takes a provider's key from its environment variable (the backend's
  ``key_env``, :func:`key_vars`; ``NAME_API_KEY`` for any other name),
  else from ``keys.json`` in :func:`ftclient.paths.ftc_home`. The file is created with
  mode 0600 (never wider, not even for a moment) and is refused, the way ssh refuses a
  private key, when group or others can read it.
* :func:`check_key_value` refuses a key that cannot be one (a line break, a space, a control
  or non-ASCII character, an absurd length) wherever it comes from -- the environment, the
  key file, ``ftc keys set`` -- with :class:`KeyFormatError` (exit 2) naming the variable
  or the file, never the value; :func:`get_key` and :func:`check_key` apply it before any
  request is made or any job recorded.
* :func:`redact` replaces every known key value and anything shaped like a credential
  (``sk-...``, ``tgp_v1_...``, ``fw_...``, ``Bearer ...``, ``Authorization:`` values, the
  user:password of a URL, ``?key=``/``?token=``/``?api_key=`` in a query string) with
  ``[REDACTED]``; :func:`redact_obj` does the same inside JSON-like objects. It is the one
  redaction of ftc: :mod:`ftclient.retry` and every output use it.
* :func:`install_log_redaction` runs every record of ftc's loggers and of the SDK/HTTP
  loggers (``openai``, ``together``, ``httpx``, ``httpx2``, ``httpcore``) through
  :class:`RedactingFilter`, message, arguments and traceback text alike.

No function here ever puts a key into an exception message.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable

from .errors import ConfigError, UsageError

REDACTED = "[REDACTED]"


#: The loggers :func:`install_log_redaction` covers (and all their children): ftc's own, the
#: HTTP clients', and the openai SDK's, through which ``ftc eval`` speaks to any
#: OpenAI-compatible server itself. A backend's SDK is covered when the backend is built
#: (:func:`cover_loggers`, called by ``ftclient.backends.get_backend`` with its ``sdk``).
REDACTED_LOGGERS = ("ftclient", "ftc", "openai", "httpx", "httpx2", "httpcore")

# Key values shorter than this are not redacted by value (they would blank out ordinary words);
# no real provider key is this short.
_MIN_KNOWN_KEY_LEN = 8

_PROVIDER_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")

#: The longest API key accepted (real keys are well under 300 characters; a bearer JWT of a
#: self-hosted server may be a few thousand).
MAX_KEY_LEN = 4096
#: The shortest key accepted for the providers ftc knows by name (theirs are 30+ characters);
#: a plug-in or self-hosted server's key may be any non-empty word.
MIN_KNOWN_PROVIDER_KEY_LEN = 8


class _Shapes:
    """The credential-shaped patterns, compiled on first use (compiling all of them costs about
    2 ms, which every ``import ftclient.secrets`` would otherwise pay: reading a backend's class
    imports this module, redacting is what needs them)."""

    def __init__(self) -> None:
        # Shapes of keys and credentials, most specific first.
        self.keys = [
            # OpenAI (sk-..., sk-proj-..., sk-svcacct-..., sk-admin-...), Anthropic (sk-ant-...)
            re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}"),
            # Together (tgp_v1_...), Fireworks (fw_...), Hugging Face (hf_...)
            re.compile(r"\btgp_v\d+_[A-Za-z0-9_\-]{16,}"),
            re.compile(r"\bfw_[A-Za-z0-9]{16,}"),
            re.compile(r"\bhf_[A-Za-z0-9]{30,}"),
        ]
        # Header-like values: keep the name, hide the value (unless it is hidden already).
        self.headers = [
            # Authorization: Bearer xxx / "authorization": "Basic xxx" / authorization=xxx
            re.compile(
                r"""(?i)(\b(?:proxy-)?authorization["']?\s*[:=]\s*["']?"""
                r"""(?!(?:(?:bearer|basic|token|digest)\s+)?\[REDACTED\])(?:(?:bearer|basic|token|digest)\s+)?)"""
                r"""[^\s"',;}\]]+"""
            ),
            # x-api-key: xxx / api_key="xxx" / "api-key": "xxx" / MISTRAL_API_KEY=xxx
            re.compile(
                r"""(?i)(\b(?:[a-z0-9]+[_-])*(?:x-)?api[-_]?key["']?\s*[:=]\s*["']?)(?!\[REDACTED\])[^\s"',;}\])#]+"""
            ),
        ]
        self.bearer = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]{8,}")
        # The credentials of a URL: http://user:password@host/... (all of the userinfo is hidden).
        self.url_userinfo = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)(?!\[REDACTED\]@)[^/\s?#\"'<>]+@")
        # token=..., client_secret=..., password=... anywhere (a form body, a log line, a DSN).
        self.assigned_secret = re.compile(
            r"(?i)(\b(?:[a-z0-9]+[_-])*(?:token|secret|password|passwd)=)(?!\[REDACTED\])[^&#\s\"'<>,;}\])]+"
        )
        # A credential in a query string: ?key=..., &token=..., ?api_key=... (the value stops at & or #,
        # so ``?api_key=X#model`` keeps its ``#model``).
        self.query_secret = re.compile(
            r"(?i)([?&;](?:[a-z0-9]+[_-])*(?:key|token|secret|password|passwd|pwd|sig|signature|auth|"
            r"access[_-]?token|api[_-]?key|apikey|code)=)(?!\[REDACTED\])[^&#\s\"'<>]+"
        )
        # dict keys whose values are credentials, whatever they look like
        self.sensitive_fields = re.compile(
            r"(?i)^(authorization|proxy-authorization|x-api-key|api[-_]?key|apikey|access[-_]?token|"
            r"refresh[-_]?token|token|secret|client[-_]?secret|password|passwd)$"
        )


@functools.cache
def _shapes() -> _Shapes:
    return _Shapes()


# ---------------------------------------------------------------------------------------------
# providers and env vars


#: Variables that hold keys without ending in ``_API_KEY`` (a backend's ``key_env``), seen so far;
#: redaction reads every ``*_API_KEY`` variable and these.
_EXTRA_KEY_VARS: set[str] = set()


def key_vars() -> dict[str, str]:
    """``{backend: the environment variable of its key}`` for every installed backend that
    needs one (its ``key_env``), asked of the registry."""
    from .backends import available_backends, backend_attr

    out: dict[str, str] = {}
    for name in available_backends():
        var = backend_attr(name, "key_env")
        if isinstance(var, str) and var:
            out[name] = var
            if not var.endswith("_API_KEY"):
                _EXTRA_KEY_VARS.add(var)
    return out


def env_var(provider: str) -> str:
    """The environment variable of ``provider``'s key: its backend's ``key_env``, else ``NAME_API_KEY``."""
    p = _check_provider(provider)
    return key_vars().get(p) or p.upper().replace("-", "_") + "_API_KEY"


def _check_provider(provider: str) -> str:
    p = (provider or "").strip().lower()
    if not _PROVIDER_RE.match(p):
        raise UsageError(
            f"not a provider name: {provider!r}",
            hint="Providers are named in lower case, e.g. " + ", ".join(key_vars()) + ".",
        )
    return p


# ---------------------------------------------------------------------------------------------
# the shape of a key


class KeyFormatError(ConfigError):
    """A key that cannot be an API key (exit 2). The message names where it came from, never the value."""


def key_problem(key: str, provider: str | None = None) -> str | None:
    """What makes ``key`` unusable as an API key, in words (never quoting it), else None.

    A key is sent in an HTTP header, so it must be printable ASCII without whitespace or
    control characters (a line break in a header is refused by the HTTP client with the
    whole value in its message), and of a sane length."""
    if not key:
        return "it is empty"
    for c in key:
        if c in "\r\n":
            return "it contains a line break"
        if c.isspace():
            return "it contains whitespace"
        if ord(c) < 0x20 or ord(c) == 0x7F or 0x80 <= ord(c) < 0xA0:
            return "it contains a control character"
        if ord(c) > 0x7E:
            return "it contains a non-ASCII character"
    if len(key) > MAX_KEY_LEN:
        return f"it is {len(key)} characters long (at most {MAX_KEY_LEN})"
    if provider is not None and provider in key_vars() and len(key) < MIN_KNOWN_PROVIDER_KEY_LEN:
        return f"it is only {len(key)} characters long"
    return None


def check_key_value(key: str, *, provider: str, where: str, hint: str) -> str:
    """``key`` when it can be an API key, else :class:`KeyFormatError` naming ``where`` (the
    variable or the file) -- never the value."""
    why = key_problem(key, provider)
    if why:
        raise KeyFormatError(f"{where} does not hold a usable {provider} API key: {why}", hint=hint)
    return key


def _env_hint(var: str, provider: str) -> str:
    return (f"Set {var} to the key alone (one line, no spaces or quotes), or unset it and store the key "
            f"with `ftc keys set {provider}`.")


def _file_hint(provider: str) -> str:
    return f"Store the key again with `ftc keys set {provider}` (it asks for it), or fix the file by hand."


def _checked_env(provider: str, var: str) -> str:
    value = os.environ.get(var, "").strip()
    if value:
        check_key_value(value, provider=provider, where=f"the environment variable {var}",
                        hint=_env_hint(var, provider))
    return value


def _checked_file(provider: str) -> str:
    value = load_keys().get(provider, "").strip()
    if value:
        check_key_value(value, provider=provider, where=f"the {provider} key in {keys_file()}",
                        hint=_file_hint(provider))
    return value


def check_key(provider: str, *, var: str | None = None) -> str | None:
    """Where ``provider``'s key comes from (``"env"``, ``"file"`` or None when there is none),
    after checking its shape: :class:`KeyFormatError` (exit 2) for a key that cannot be one.

    ``var``: the environment variable to look at (a backend's own ``key_env``; default
    :func:`env_var`). Offline; nothing is sent."""
    p = _check_provider(provider)
    if _checked_env(p, var or env_var(p)):
        return "env"
    return "file" if _checked_file(p) else None


# ---------------------------------------------------------------------------------------------
# the key file


def keys_file() -> Path:
    from .paths import keys_path

    return keys_path()


def _check_private(path: Path, st: os.stat_result) -> None:
    """Refuse a key file that other users can read or that someone else owns (like ssh)."""
    if os.name == "nt":  # pragma: no cover - POSIX modes do not apply
        return
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise ConfigError(
            f"{path}: permissions {mode:04o} are too open; the key file must not be readable by others",
            hint=f"Run `chmod 600 {path}` (and consider rotating keys others could have read).",
        )
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise ConfigError(
            f"{path}: owned by another user (uid {st.st_uid})",
            hint="Remove it or set FTC_HOME to a directory of your own; `ftc keys set` writes a new one.",
        )


def load_keys(*, check: bool = True) -> dict[str, str]:
    """The keys stored in the key file, ``{provider: key}`` (empty when there is no file).

    With ``check`` (the default) a group/world-readable file is refused with ConfigError.
    """
    path = keys_file()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the key file ({e.strerror})") from None
    with os.fdopen(fd, "r", encoding="utf-8") as f:
        if check:
            _check_private(path, os.fstat(f.fileno()))
        text = f.read()
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as e:
        # never echo the file's content: it holds keys
        raise ConfigError(
            f"{path}: not valid JSON (line {getattr(e, 'lineno', '?')})",
            hint="Fix or remove the file, then store keys again with `ftc keys set PROVIDER`.",
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object of provider -> key")
    return {str(k): v for k, v in data.items() if isinstance(v, str) and not str(k).startswith("//")}


def _write_keys(keys: dict[str, str]) -> Path:
    """Write the key file atomically; the temporary file is 0600 from its creation on."""
    path = keys_file()
    text = json.dumps(
        {"// note": "API keys for ftc; keep this file private (mode 0600).", **dict(sorted(keys.items()))},
        indent=2,
    )
    # mkstemp creates the file with O_EXCL and mode 0600 whatever the umask is, so the key
    # text is never in a file others can read; chmod again anyway before the rename.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        if os.name != "nt":
            os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)
    _invalidate_cache()
    return path


def _fsync_dir(d: Path) -> None:
    if os.name == "nt":  # pragma: no cover
        return
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:  # pragma: no cover
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def set_key(provider: str, key: str) -> Path:
    """Store ``key`` for ``provider`` in the key file; returns the file's path."""
    p = _check_provider(provider)
    key = (key or "").strip()
    if not key:
        raise UsageError("the key is empty; nothing stored")
    why = key_problem(key, p)
    if why:
        raise UsageError(f"not a usable {p} API key: {why}; nothing stored",
                         hint="Paste only the key itself (one line, printable ASCII, no spaces).")
    keys = load_keys()
    keys[p] = key
    return _write_keys(keys)


def remove_key(provider: str) -> bool:
    """Remove ``provider``'s key from the key file; False when none was stored."""
    p = _check_provider(provider)
    keys = load_keys()
    if p not in keys:
        return False
    del keys[p]
    _write_keys(keys)
    return True


def get_key(provider: str) -> str:
    """``provider``'s API key: its env var first, else the key file; ConfigError when absent,
    :class:`KeyFormatError` (a ConfigError) when it cannot be a key (see :func:`key_problem`)."""
    p = _check_provider(provider)
    var = env_var(p)
    value = _checked_env(p, var) or _checked_file(p)
    if value:
        return value
    raise ConfigError(
        f"no API key for {p}",
        hint=f"Set the environment variable {var}, or store one with `ftc keys set {p}`.",
    )


def key_source(provider: str, *, var: str | None = None) -> str | None:
    """Where ``provider``'s key would come from: ``"env"``, ``"file"`` or None.

    ``var``: the environment variable to look at (a backend's own ``key_env``; default
    :func:`env_var`)."""
    p = _check_provider(provider)
    if os.environ.get(var or env_var(p), "").strip():
        return "env"
    return "file" if load_keys().get(p, "").strip() else None


_KNOWN_PREFIXES = ("sk-proj-", "sk-svcacct-", "sk-admin-", "sk-ant-", "sk-", "tgp_v1_", "fw_", "hf_")


def fingerprint(key: str | None) -> str:
    """A recognisable but harmless view of a key: its public prefix and at most its last 4 chars.

    ``sk-proj-...abcd``; keys shorter than 20 characters show no characters at all (``...``).
    """
    if not key:
        return ""
    prefix = next((p for p in _KNOWN_PREFIXES if key.startswith(p)), "")
    if len(key) < 20:
        return prefix + "..." if prefix and len(key) > len(prefix) + 8 else "..."
    return f"{prefix}...{key[-4:]}"


# ---------------------------------------------------------------------------------------------
# redaction

_cache_lock = threading.Lock()
_cache: dict[str, Any] = {"sig": None, "re": None}


def _invalidate_cache() -> None:
    with _cache_lock:
        _cache["sig"] = None


def _known_values() -> tuple[tuple, list[str]]:
    env_vals = [v for k, v in os.environ.items() if k.endswith("_API_KEY") or k in _EXTRA_KEY_VARS]
    try:
        from .paths import KEYS_FILE, ftc_home

        path = ftc_home(create=False) / KEYS_FILE  # redacting must not create directories
        st = path.stat()
        file_sig: tuple = (str(path), st.st_mtime_ns, st.st_size)
    except (OSError, ConfigError, UsageError):
        path, file_sig = None, ()
    return (tuple(env_vals), file_sig), env_vals


def _forms(value: str) -> set[str]:
    """A key as it may appear in text: itself, escaped the way ``repr`` of a str or of its
    UTF-8 bytes writes it (a traceback's ``b'Bearer ...\\n...'``), and -- for a key broken by
    a line break or a space -- each of its pieces."""
    forms = {value, repr(value)[1:-1], repr(value.encode("utf-8", "backslashreplace"))[2:-1]}
    forms.update(re.split(r"[\x00-\x20\x7f]+", value))
    return {f for f in forms if f}


def _known_regex() -> re.Pattern[str] | None:
    sig, env_vals = _known_values()
    with _cache_lock:
        if _cache["sig"] == sig:
            return _cache["re"]
    values = set(v.strip() for v in env_vals)
    if sig[1]:
        try:
            # Redaction must work even for a key file get_key would refuse: read it unchecked.
            values.update(v.strip() for v in load_keys(check=False).values())
        except Exception:
            pass
    values = {f for v in values for f in _forms(v) if len(f) >= _MIN_KNOWN_KEY_LEN}
    rx = re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))) if values else None
    with _cache_lock:
        _cache["sig"], _cache["re"] = sig, rx
    return rx


def redact(text: Any) -> str:
    """``text`` with every known key and anything shaped like a credential replaced by [REDACTED]."""
    if text is None:
        return ""
    s = text if isinstance(text, str) else str(text)
    if not s:
        return s
    rx = _known_regex()
    if rx is not None:
        s = rx.sub(REDACTED, s)
    shapes = _shapes()
    for pat in shapes.keys:
        s = pat.sub(REDACTED, s)
    s = shapes.url_userinfo.sub(lambda m: m.group(1) + REDACTED + "@", s)
    s = shapes.query_secret.sub(lambda m: m.group(1) + REDACTED, s)
    s = shapes.assigned_secret.sub(lambda m: m.group(1) + REDACTED, s)
    s = shapes.bearer.sub(lambda m: m.group(1) + REDACTED, s)
    for pat in shapes.headers:
        s = pat.sub(lambda m: m.group(1) + REDACTED, s)
    return s


def redact_obj(obj: Any) -> Any:
    """A copy of a JSON-like object with credential fields and key-shaped strings redacted."""
    if isinstance(obj, dict):
        sensitive = _shapes().sensitive_fields
        out = {}
        for k, v in obj.items():
            if isinstance(k, str) and sensitive.match(k) and v not in (None, ""):
                out[k] = REDACTED
            else:
                out[k] = redact_obj(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    if isinstance(obj, str):
        return redact(obj)
    return obj


def redact_json(obj: Any) -> str:
    """``obj`` as JSON text, redacted both by field name and by value."""
    return redact(json.dumps(redact_obj(obj), ensure_ascii=False, default=str, sort_keys=True))


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record's message, arguments and traceback in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True


def _redact_record(record: logging.LogRecord) -> logging.LogRecord:
    if getattr(record, "_ftc_redacted", False):
        return record
    try:
        msg = record.getMessage()
    except Exception:  # a bad format string: keep what we can, redacted
        msg = f"{record.msg} {record.args!r}"
    record.msg = redact(msg)
    record.args = None
    if record.exc_info and record.exc_info[0] is not None:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        # The redacted text is what formatters print; drop the live exception so that no
        # handler formats the unredacted one again.
        record.exc_info = None
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._ftc_redacted = True  # type: ignore[attr-defined]
    return record


_installed = threading.Lock()
_FILTER = RedactingFilter()
_factory_installed = False


def install_log_redaction(extra_loggers: Iterable[str] = ()) -> None:
    """Redact every record of ftc's, the SDKs' and the HTTP clients' loggers (idempotent).

    A filter on a logger only sees records logged on that very logger, not on its children
    (``openai._base_client``), so the records are also redacted where they are made: the log
    record factory is wrapped once for the covered logger names and all their descendants.
    """
    global _factory_installed
    names = tuple(REDACTED_LOGGERS) + tuple(extra_loggers)
    with _installed:
        for name in names:
            lg = logging.getLogger(name)
            if _FILTER not in lg.filters:
                lg.addFilter(_FILTER)
        if not _factory_installed:
            old = logging.getLogRecordFactory()
            covered = _covered_names

            def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
                rec = old(*args, **kwargs)
                if covered(rec.name):
                    _redact_record(rec)
                return rec

            logging.setLogRecordFactory(factory)
            _factory_installed = True
        _covered.update(names)


_covered: set[str] = set()


def cover_loggers(names: Iterable[str]) -> None:
    """Add ``names`` (and their children) to the redacted loggers, once
    :func:`install_log_redaction` has been called (a program that never asked for it is left
    alone)."""
    names = tuple(n for n in names if n)
    if names and _factory_installed and not set(names) <= _covered:
        install_log_redaction(names)


def _covered_names(name: str) -> bool:
    for n in _covered:
        if name == n or name.startswith(n + "."):
            return True
    return False
