"""``ftc serve`` here: a model on this machine behind an OpenAI-compatible API.

The server is ``transformers serve`` (transformers' own FastAPI/uvicorn server:
``/v1/chat/completions``, streamed or not, ``/v1/models``, ``/health``), pinned to the one
model, in a child process of its own session (``python -m ftclient.local_backend.serve``),
so that Ctrl-C in the terminal reaches ftc only and ftc stops the server (SIGTERM, then
SIGKILL to its process group), and the child ends by itself when ftc is gone (``kill -9``).

What it serves is a plain transformers checkpoint: transformers serve does not load PEFT
adapters, so an adapter is merged into its base first (``export.export_model(..., "merged")``)
into a cache beside the adapter folder (``.<folder>.serve/merged-<key>``, where ``key`` is the
sha256 of the adapter's files), made once and reused by the next ``ftc serve`` of the same
adapter; a full model folder is served as it is; a base model reference (``default``, a
``.gguf`` file, an HF id in the cache) is served from the checkpoint local training loads.

Clients name the model exactly as the server was told: the child runs in a folder of its own
(removed when the server stops) in which a link with the served name points at the checkpoint,
and the server is given that relative name. The real port (``port=0``: any free one) is read
from uvicorn's "Uvicorn running on http://HOST:PORT" line in the server's log; the server is
ready when ``/health`` answers 200 (the model is loaded before uvicorn starts).

Nothing heavy is imported at module level: this module is also the child's entry point.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

from ftclient.errors import FtcError, UsageError

from .export import ADAPTER_FILES, TOKENIZER_FILES, safe_name
from .inference import META_FILE

__all__ = ["ENGINE", "LocalServer", "serve_model"]

#: The server ftc runs the model with.
ENGINE = "transformers serve"
#: What the server needs (transformers serve refuses to start without fastapi, uvicorn and openai).
SERVE_MODULES = ("torch", "transformers", "fastapi", "uvicorn", "openai")
DEFAULT_STARTUP_TIMEOUT_S = 600.0
#: The files of an adapter whose bytes decide whether the cached merged copy is still it.
_KEY_FILES = (*ADAPTER_FILES, META_FILE, *TOKENIZER_FILES)
_KEY_CHARS = 16
_GENERIC_FOLDERS = ("final", "model", "merged", "adapter", "output", "out")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_READY_RE = re.compile(r"Uvicorn running on (https?)://(\S+):(\d+)")
_BIND_RE = re.compile(r"error while attempting to bind on address \((.*?)\): (.+)")
_LOG_LINES = 12
#: The server's own folder (its log, the link with the served name) in the temporary directory.
RUN_PREFIX = "ftc-serve-"

Progress = Callable[[str, "float | None"], None]


def _say(progress: Progress | None, msg: str) -> None:
    if progress is not None:
        progress(msg, None)


# ----------------------------------------------------------------------------- names and addresses


def check_name(name: str) -> str:
    """``name`` as clients will send it (``model`` in a request); UsageError when it cannot be one."""
    n = (name or "").strip()
    if not _NAME_RE.match(n) or n.endswith(".gguf") or ".." in n:
        raise UsageError(f"{name!r} cannot be a served model name",
                         hint="Use letters, digits, '-', '_' and '.', with at most one '/' (e.g. acme/tickets).")
    return n


def default_name(model: str) -> str:
    """The name a model is served under when none is given: its folder's name (for a generic one such
    as a job's ``output/final``, the first folder above with a name of its own), a ``.gguf`` file's
    stem, or the base model reference."""
    p = Path(model).expanduser()
    if p.is_dir():
        p = p.resolve()
        for _ in range(2):  # <job>/output/final -> <job>
            if p.name.lower() in _GENERIC_FOLDERS and p.parent.name:
                p = p.parent
        return safe_name(p.name)
    if p.is_file():
        return safe_name(p.stem)
    if _NAME_RE.match(model or ""):
        return model
    return safe_name(model or "")


def client_host(host: str) -> str:
    """The host a client on this machine connects to: a wildcard address becomes loopback, and an
    IPv6 address gets its brackets."""
    h = (host or "").strip().strip("[]")
    if h in ("0.0.0.0", ""):
        return "127.0.0.1"
    if h == "::":
        return "[::1]"
    return f"[{h}]" if ":" in h else h


def _check_port(host: str, port: int) -> None:
    """UsageError when ``host:port`` cannot be listened on (taken, or not an address of this machine),
    said before anything slow happens (for port 0, any free port: only the address is checked)."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port} is not a TCP port", hint="Give 1-65535, or 0 for any free port.")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise UsageError(f"cannot listen on {host!r}: {e.strerror or e}",
                         hint="Give an address of this machine with --host (default 127.0.0.1).") from None
    family, kind, proto, _, addr = infos[0]
    s = socket.socket(family, kind, proto)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a TIME_WAIT port is free
        s.bind(addr)
    except OSError as e:
        raise _bind_error(host, port, e.strerror or str(e), e.errno) from None
    finally:
        s.close()


def _bind_error(host: str, port: int, reason: str, code: int | None = None) -> UsageError:
    if code == errno.EADDRINUSE or "in use" in reason.lower():
        return UsageError(f"port {port} on {host} is taken: another program listens there",
                          hint="Give another --port, or --port 0 for any free port.")
    return UsageError(f"cannot listen on {host}{f':{port}' if port else ''}: {reason}",
                      hint="Give an address of this machine with --host (default 127.0.0.1) and a free --port.")


# ----------------------------------------------------------------------------- what is served


def _adapter_key(adapter: Path) -> str:
    """sha256 of the adapter's files (names and bytes): a new training run, a changed adapter or
    tokenizer gives a new key, and so a new merged copy."""
    h = hashlib.sha256()
    for name in _KEY_FILES:
        f = adapter / name
        if f.is_file():
            h.update(name.encode() + b"\0")
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            h.update(b"\0")
    return h.hexdigest()


def _cache_home(adapter: Path) -> Path:
    """Where the merged copies of ``adapter`` live: a hidden folder beside it, or (a folder ftc may
    not write to) under ftc's home."""
    beside = adapter.parent / f".{adapter.name}.serve"
    try:
        beside.mkdir(exist_ok=True)
        if os.access(beside, os.W_OK):
            return beside
    except OSError:
        pass
    from ftclient.paths import ftc_home

    where = ftc_home() / "serve" / hashlib.sha256(str(adapter).encode()).hexdigest()[:_KEY_CHARS]
    where.mkdir(parents=True, exist_ok=True)
    return where


def merged_copy(adapter: Path, progress: Progress | None = None) -> tuple[Path, bool]:
    """(the merged checkpoint of ``adapter``, whether it was in the cache already). Built once per
    version of the adapter; older copies of the same adapter are removed once a new one is there."""
    adapter = adapter.resolve()
    home = _cache_home(adapter)
    target = home / f"merged-{_adapter_key(adapter)[:_KEY_CHARS]}"
    if (target / "config.json").is_file():
        return target, True
    from .export import export_model

    _say(progress, "merging the adapter into its base model (once: the next start reuses it)")
    try:
        export_model(adapter, "merged", target, info={"name": adapter.name}, progress=progress)
    except (UsageError, OSError):
        if not (target / "config.json").is_file():  # not another `ftc serve` that merged it meanwhile
            raise
    for old in home.glob("merged-*"):
        if old != target and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
    return target, False


def servable_folder(model: str, progress: Progress | None = None) -> tuple[Path, dict[str, Any]]:
    """The transformers checkpoint to serve for ``model`` (an adapter or model folder, or a base model
    reference), and facts about it for the caller (``merged_from``, ``cache``)."""
    p = Path(model).expanduser()
    if p.is_dir() and (p / "adapter_config.json").is_file():
        folder, cached = merged_copy(p, progress)
        return folder, {"merged_from": str(p.resolve()), "cache": "reused" if cached else "built"}
    if p.is_dir() and (p / "config.json").is_file():
        return p.resolve(), {}
    from .models import model_dir, resolve_model

    return model_dir(resolve_model(model)), {}


# ----------------------------------------------------------------------------- the server


def _check_transformers_serve() -> None:
    """ConfigError when the installed transformers has no ``transformers serve`` to run (looked up
    on disk: transformers is not imported here)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("transformers")
    except (ImportError, ValueError):
        spec = None
    places = list(spec.submodule_search_locations or []) if spec is not None else []
    found = any((Path(p) / "cli" / "serve.py").is_file() for p in places)
    if not found:
        from importlib.metadata import PackageNotFoundError, version

        from ftclient.errors import ConfigError

        try:
            have = version("transformers")
        except PackageNotFoundError:  # pragma: no cover - require_modules said so first
            have = "?"
        raise ConfigError(f"ftc serve runs `transformers serve` (transformers.cli.serve), which transformers {have} "
                          "does not have", hint='Upgrade it: pip install -U "transformers>=5"')


def _python_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_HUB_DISABLE_UPDATE_CHECK="1", PYTHONUNBUFFERED="1",
               TOKENIZERS_PARALLELISM="false")
    return env


class LocalServer:
    """A running ``transformers serve`` of one model. ``url`` is the base URL clients take (up to
    ``/v1``), ``model`` the name they send; :meth:`stop` ends it (also on leaving a ``with``)."""

    engine = ENGINE

    def __init__(self, proc: subprocess.Popen, run_dir: Path, log_path: Path, model: str, served: Path,
                 facts: dict[str, Any], host: str):
        self.proc, self.run_dir, self.log_path = proc, run_dir, log_path
        self.model, self.served, self.facts, self.host = model, served, facts, host
        self.port: int | None = None
        self._stopped = False

    # -- what clients need
    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base(self) -> str:
        return f"http://{client_host(self.host)}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.base}/v1"

    def info(self) -> dict[str, Any]:
        """What a client or a script needs: ``url``, ``model``, ``pid``, ``host``, ``port``, ``engine``,
        ``served`` (the checkpoint folder), ``log`` and, for an adapter, ``merged_from`` and ``cache``."""
        return {"url": self.url, "model": self.model, "pid": self.pid, "host": self.host, "port": self.port,
                "engine": self.engine, "served": str(self.served), "log": str(self.log_path), **self.facts}

    # -- its life
    def log_tail(self, lines: int = _LOG_LINES) -> str:
        from ftclient.secrets import redact

        from .logtail import log_tail

        return redact(log_tail(self.log_path, lines=lines, max_chars=2000))

    def _log_text(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait(self, timeout: float | None = None) -> int | None:
        """The server's exit code once it has stopped, or None while it still runs after ``timeout`` s."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def stop(self, grace_s: float = 10.0) -> int | None:
        """Stop the server: SIGTERM (uvicorn finishes, the model's process ends), SIGKILL to its whole
        process group after ``grace_s``; then its folder goes. Returns its exit code; safe to call twice."""
        if self._stopped:
            return self.proc.returncode
        try:
            if self.proc.poll() is None:
                try:
                    os.kill(self.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                if self.wait(grace_s) is None:
                    self._kill_group()
            deadline = time.monotonic() + 3.0  # its children (the model's process) end with it
            while self._group_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._group_alive():
                self._kill_group()
        except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
            self._kill_group()
        finally:
            self._stopped = True
            shutil.rmtree(self.run_dir, ignore_errors=True)
        return self.proc.returncode

    def _kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not refused
            pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalServer(model={self.model!r}, url={self.url!r}, pid={self.pid})"

    # -- start-up
    def _wait_ready(self, timeout_s: float, progress: Progress | None) -> None:
        import urllib.error
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # this machine: never via a proxy
        deadline = time.monotonic() + timeout_s
        said_loading = False
        while True:
            code = self.proc.poll()
            text = self._log_text()
            bind = _BIND_RE.search(text)
            if bind:
                self.stop()
                raise _bind_error(self.host, int(self.port or 0), bind.group(2).strip())
            if code is not None:
                tail = self.log_tail(6)
                self.stop()
                last = tail.splitlines()[-1].strip() if tail else ""
                raise FtcError(f"the server stopped while starting (exit code {code})" + (f": {last}" if last else ""),
                               hint=f"Check that {self.served} loads with transformers (AutoModelForCausalLM."
                                    "from_pretrained)." + (f" The server's log ended with:\n{tail}" if tail else ""))
            if self.port is None:
                ready = _READY_RE.search(text)
                if ready:
                    self.port = int(ready.group(3))
                elif not said_loading and "Loading" in text:
                    said_loading = True
                    _say(progress, f"loading {self.model} in the server")
            if self.port is not None:
                try:
                    with opener.open(f"{self.base}/health", timeout=2) as r:
                        if r.status == 200:
                            return
                except (urllib.error.URLError, OSError):
                    pass
            if time.monotonic() > deadline:
                tail = self.log_tail(6)
                self.stop()
                raise UsageError(f"the server was not ready within {timeout_s:g} s"
                                 + (f"; the last lines of its log:\n{tail}" if tail else ""),
                                 hint="A large model on a CPU loads slowly: give more time with --startup-timeout.")
            time.sleep(0.1)


def serve_model(model: str, *, host: str = "127.0.0.1", port: int = 8000, name: str | None = None,
                progress: Progress | None = None, startup_timeout_s: float | None = None,
                python: str | None = None) -> LocalServer:
    """Start ``transformers serve`` for ``model`` (a local job's adapter or model folder, or a base
    model reference) on ``host:port`` (``port=0``: any free port) under ``name``, and return it once
    it answers; the caller stops it (:meth:`LocalServer.stop`, or a ``with`` block).

    UsageError for a taken port or an address that is not this machine's, a bad name, a server not
    ready within ``startup_timeout_s``; ConfigError when the server's packages are missing."""
    from ftclient.backends import require_modules

    p = Path(model).expanduser()
    adapter = p.is_dir() and (p / "adapter_config.json").is_file()
    require_modules(SERVE_MODULES + (("peft",) if adapter else ()), extra="local", who="ftc serve")
    _check_transformers_serve()
    served_name = check_name(name) if name else check_name(default_name(model))
    host = (host or "127.0.0.1").strip()
    _check_port(host, int(port))
    folder, facts = servable_folder(model, progress)

    run_dir = Path(tempfile.mkdtemp(prefix=RUN_PREFIX))
    link = run_dir / served_name
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(folder, link, target_is_directory=True)
    log_path = run_dir / "server.log"
    cmd = [python or sys.executable, "-m", "ftclient.local_backend.serve", "--model", served_name,
           "--host", host.strip("[]"), "--port", str(int(port)), "--parent", str(os.getpid())]
    _say(progress, f"starting {ENGINE} for {served_name}")
    server = None
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, cwd=run_dir, env=_python_env(), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        server = LocalServer(proc, run_dir, log_path, served_name, folder, facts, host)
        if int(port):
            server.port = int(port)
        server._wait_ready(float(startup_timeout_s or DEFAULT_STARTUP_TIMEOUT_S), progress)
    except BaseException:
        if server is not None:
            server.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return server


# ----------------------------------------------------------------------------- the child


def _exit_with_parent(parent: int) -> None:
    """SIGTERM to this process once ``parent`` (the ftc that started it) is gone: a killed ftc
    leaves no server holding the port and the model's memory, nor the server's folder."""
    if parent <= 0:
        return
    here = Path.cwd()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        if here.name.startswith(RUN_PREFIX):  # what ftc would have removed (the model is in memory already)
            shutil.rmtree(here, ignore_errors=True)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="exit-with-ftc", daemon=True).start()


def _child(argv: list[str]) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m ftclient.local_backend.serve",
                                 description="transformers serve of one model folder (started by `ftc serve`).")
    ap.add_argument("--model", required=True, help="the model folder, relative to the working folder")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--device", default="auto", help="auto (cuda, mps, else cpu), cuda, mps or cpu")
    ap.add_argument("--parent", type=int, default=0, help="stop when this process is gone")
    args = ap.parse_args(argv)
    _exit_with_parent(args.parent)

    from .inference import auto_device

    device = auto_device() if args.device == "auto" else args.device
    # as local inference loads a model (`ftc chat`, `ftc eval local:`): the same greedy answers
    dtype = "bfloat16" if device == "cuda" else "float32"
    from transformers.cli.serve import Serve

    Serve(force_model=args.model, host=args.host, port=args.port, device=device, dtype=dtype)


if __name__ == "__main__":
    _child(sys.argv[1:])
