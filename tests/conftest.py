"""Shared test helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
