"""Shared test helpers."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[1]
#: 964 real rows of BANKING77 (all 77 intents), CC BY 4.0: tests/data/banking77/README.md.
BANKING77_TRAIN = REPO / "tests" / "data" / "banking77" / "train_subset.csv"


class Ran:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def ftc():
    """Run the ftc CLI in-process: ``ftc("data", "validate", ...) -> Ran(code, out, err)``."""
    from ftclient.cli.main import cli

    def run(*args: str, input: str | None = None) -> Ran:
        runner = CliRunner()
        r = runner.invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)
        return Ran(r.exit_code, r.stdout, r.stderr)

    return run


@pytest.fixture
def ftc_proc():
    """Run the real ``ftc`` console script in a subprocess (for exit codes and tracebacks)."""
    exe = Path(sys.executable).with_name("ftc")

    def run(*args: str, cwd: str | os.PathLike | None = None, env: dict | None = None, timeout: int = 120) -> Ran:
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "ftclient"]
        p = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=cwd,
                           env={**os.environ, **(env or {})}, timeout=timeout)
        return Ran(p.returncode, p.stdout, p.stderr)

    return run


@pytest.fixture
def banking77_train() -> Path:
    return BANKING77_TRAIN


@pytest.fixture(autouse=True, scope="session")
def _session_ftc_home(tmp_path_factory) -> Iterator[None]:
    """No test writes to the user's own ftc home: without FTC_HOME set, the session gets one of
    its own (a test that needs an empty one takes the ftc_home fixture)."""
    if os.environ.get("FTC_HOME"):
        yield
        return
    os.environ["FTC_HOME"] = str(tmp_path_factory.mktemp("ftc-home"))
    try:
        yield
    finally:
        os.environ.pop("FTC_HOME", None)


@pytest.fixture
def ftc_home(tmp_path, monkeypatch) -> Path:
    """FTC_HOME in the test's own tmp_path."""
    home = tmp_path / "home"
    monkeypatch.setenv("FTC_HOME", str(home))
    return home


@pytest.fixture
def st(tmp_path, ftc_home):
    """A job store of its own in tmp_path (FTC_HOME there too), closed afterwards."""
    from ftclient.store import Store

    s = Store(tmp_path / "ftc.db")
    yield s
    s.close()


@contextlib.contextmanager
def _emulated(name: str, backend_cls: type, monkeypatch) -> Iterator:
    """The real backend (its official SDK) against the local emulator of ``name``'s API, via the
    environment; every response it sent is checked against the provider's schema at the end."""
    from emulator import ProviderEmulator

    from ftclient import backends as B

    if name not in B.available_backends():
        B.register_backend(name, backend_cls)
    with ProviderEmulator(name) as emu:
        for k, v in emu.env.items():
            monkeypatch.setenv(k, v)
        yield emu
        emu.check_responses()


@pytest.fixture
def openai_emu(monkeypatch):
    """The real OpenAIBackend (the openai SDK) against the local OpenAI emulator."""
    pytest.importorskip("openai")
    from ftclient.providers.openai import OpenAIBackend

    with _emulated("openai", OpenAIBackend, monkeypatch) as emu:
        yield emu


@pytest.fixture
def together_emu(monkeypatch):
    """The real TogetherBackend (the together SDK) against the local Together emulator."""
    pytest.importorskip("together")
    from ftclient.providers.together import TogetherBackend

    with _emulated("together", TogetherBackend, monkeypatch) as emu:
        yield emu


@pytest.fixture
def fireworks_emu(monkeypatch):
    """The real FireworksBackend (the fireworks SDK) against the local Fireworks emulator."""
    pytest.importorskip("fireworks")
    from ftclient.providers.fireworks import FireworksBackend

    with _emulated("fireworks", FireworksBackend, monkeypatch) as emu:
        yield emu


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A LoRA adapter trained for a few steps on CPU on the tiny model (tiny_model.py), with its
    spec and training file: the model the export tests take out of ftc."""
    pytest.importorskip("peft")
    pytest.importorskip("trl")
    from tiny_model import train_tiny_adapter

    res, spec, tiny, train = train_tiny_adapter(tmp_path_factory.mktemp("trained"))
    return {"adapter": res.model_dir, "base": tiny, "spec": spec, "train": train, "loss": res.final_loss}
