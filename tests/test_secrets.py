"""API keys: env vs file, the 0600 key file, redaction everywhere, and ``ftc keys``."""

from __future__ import annotations

import io
import json
import logging
import os
import stat

import pytest

from ftclient import secrets
from ftclient.errors import ConfigError

OPENAI = "sk-proj-" + "A1b2C3d4" * 5
TOGETHER = "tgp_v1_" + "Zx9Yw8Vu7" * 4
MISTRAL = "mIsTrAl0123456789abcdefABCDEF99"  # no recognisable shape: redacted by value only

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")


@pytest.fixture(autouse=True)
def home(monkeypatch, tmp_path):
    h = tmp_path / "ftc-home"
    monkeypatch.setenv("FTC_HOME", str(h))
    for var in list(secrets.key_vars().values()) + ["ACME_API_KEY"]:
        monkeypatch.delenv(var, raising=False)
    return h


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# ------------------------------------------------------------------------------ keys


def test_env_var_wins_over_the_key_file(monkeypatch):
    secrets.set_key("openai", OPENAI)
    assert secrets.get_key("openai") == OPENAI
    assert secrets.key_source("openai") == "file"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-" + "x" * 20)
    assert secrets.get_key("openai") == "sk-from-env-" + "x" * 20
    assert secrets.key_source("openai") == "env"
    monkeypatch.setenv("OPENAI_API_KEY", "  ")  # blank counts as unset
    assert secrets.get_key("OpenAI") == OPENAI


def test_a_missing_key_names_the_env_var_and_the_command(monkeypatch):
    secrets.set_key("together", TOGETHER)
    with pytest.raises(ConfigError) as e:
        secrets.get_key("openai")
    assert e.value.exit_code == 2
    text = f"{e.value.message} {e.value.hint}"
    assert "OPENAI_API_KEY" in text and "ftc keys set openai" in text
    assert TOGETHER not in text
    # a plug-in provider gets NAME_API_KEY
    assert secrets.env_var("acme") == "ACME_API_KEY"
    monkeypatch.setenv("ACME_API_KEY", "acme-key-123456")
    assert secrets.get_key("acme") == "acme-key-123456"


@posix_only
def test_the_key_file_is_0600_even_with_umask_0_and_the_home_0700(home, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append(mode(src))  # the temporary file, just before it becomes keys.json
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    old = os.umask(0)
    try:
        path = secrets.set_key("openai", OPENAI)
        secrets.set_key("together", TOGETHER)
    finally:
        os.umask(old)
    assert seen == [0o600, 0o600]
    assert mode(path) == 0o600 and mode(home) == 0o700
    assert json.loads(path.read_text())["openai"] == OPENAI
    assert [p.name for p in home.iterdir()] == ["keys.json"]  # no temporary file left behind


@posix_only
@pytest.mark.parametrize("bad", [0o644, 0o640, 0o604])
def test_a_key_file_others_can_read_is_refused(monkeypatch, bad):
    path = secrets.set_key("openai", OPENAI)
    os.chmod(path, bad)
    with pytest.raises(ConfigError) as e:
        secrets.get_key("openai")
    assert f"{bad:04o}" in e.value.message and f"chmod 600 {path}" in e.value.hint
    assert OPENAI not in e.value.message + e.value.hint
    with pytest.raises(ConfigError):
        secrets.set_key("together", TOGETHER)  # not silently rewritten either
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI)  # the env var needs no file
    assert secrets.get_key("openai") == OPENAI


def test_a_corrupt_key_file_does_not_echo_its_content(home):
    home.mkdir(mode=0o700)
    path = home / "keys.json"
    path.write_text('{"openai": "' + OPENAI + '", oops')
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError) as e:
        secrets.get_key("openai")
    assert "not valid JSON" in e.value.message and OPENAI not in e.value.message


def test_remove_and_bad_input():
    secrets.set_key("openai", OPENAI)
    assert secrets.remove_key("openai") is True
    assert secrets.remove_key("openai") is False
    with pytest.raises(ConfigError):
        secrets.get_key("openai")
    for bad_key in ("", "   ", "sk-abc def"):
        with pytest.raises(Exception) as e:
            secrets.set_key("openai", bad_key)
        assert getattr(e.value, "exit_code", None) == 2
    with pytest.raises(Exception) as e:
        secrets.set_key("../evil", OPENAI)
    assert getattr(e.value, "exit_code", None) == 2


def test_fingerprint_shows_at_most_the_last_four_characters():
    assert secrets.fingerprint(OPENAI) == "sk-proj-...C3d4"
    assert secrets.fingerprint(TOGETHER) == "tgp_v1_...8Vu7"
    assert secrets.fingerprint(MISTRAL) == "..." + MISTRAL[-4:]
    assert secrets.fingerprint("short-key-1234") == "..."
    assert secrets.fingerprint("") == ""


# ------------------------------------------------------------------------------ redaction


def test_redact_known_values_and_key_shapes(monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", MISTRAL)
    secrets.set_key("together", TOGETHER)
    text = (
        f"mistral={MISTRAL} together {TOGETHER} openai {OPENAI} other sk-" + "q" * 30
        + " Authorization: Bearer abc.def.ghi-jkl x-api-key: plainsecret99"
    )
    out = secrets.redact(text)
    for s in (MISTRAL, TOGETHER, OPENAI, "sk-" + "q" * 30, "abc.def.ghi-jkl", "plainsecret99"):
        assert s not in out
    assert out.count("[REDACTED]") == 6 and "Authorization: Bearer [REDACTED]" in out
    # ordinary text, hashes and ids are left alone
    plain = "file-abc123 ftjob-XYZ sha256 " + "ab" * 32 + " sky-blue task-123 OPENAI_API_KEY"
    assert secrets.redact(plain) == plain
    # a key added to the file later is picked up (the cache follows the file)
    secrets.set_key("fireworks", "fireworks-key-0000abcd")
    assert "fireworks-key-0000abcd" not in secrets.redact("k=fireworks-key-0000abcd")


def test_redact_json_objects():
    obj = {
        "headers": {"Authorization": "Bearer whatever-it-is", "X-Api-Key": "k123456789"},
        "api_key": "short",
        "nested": [{"message": f"bad key {OPENAI}"}],
        "client_token": "0123456789abcdef",
        "token_count": 5,
    }
    red = secrets.redact_obj(obj)
    assert red["headers"] == {"Authorization": "[REDACTED]", "X-Api-Key": "[REDACTED]"}
    assert red["api_key"] == "[REDACTED]" and OPENAI not in json.dumps(red)
    assert red["client_token"] == "0123456789abcdef" and red["token_count"] == 5
    text = secrets.redact_json({"raw": json.dumps({"authorization": f"Bearer {OPENAI}"})})
    assert OPENAI not in text and json.loads(text)


def test_log_records_of_sdk_and_ftc_loggers_are_redacted(monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", MISTRAL)
    secrets.install_log_redaction()
    factory = logging.getLogRecordFactory()
    secrets.install_log_redaction()  # idempotent
    assert logging.getLogRecordFactory() is factory
    from ftclient.backends import get_backend

    get_backend("together")  # a backend's SDK logger is covered once the backend is built
    assert logging.getLogRecordFactory() is factory

    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    loggers = [logging.getLogger(n) for n in ("openai", "httpx", "httpx2", "together", "ftclient")]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        # a child logger, whose records a filter on "openai" alone would never see
        logging.getLogger("openai._base_client").debug("Request options: %s", {"headers": {"Authorization": f"Bearer {OPENAI}"}})
        logging.getLogger("httpx").info("HTTP Request with key %s", MISTRAL)
        logging.getLogger("httpx2").info("api_key=%s", "s3cr3t-value")
        logging.getLogger("together").warning(f"retrying with {TOGETHER}")
        try:
            raise RuntimeError(f"401 Unauthorized for {OPENAI}")
        except RuntimeError:
            logging.getLogger("ftclient.providers.openai").exception("create failed")
    finally:
        for lg in loggers:
            lg.removeHandler(handler)
            lg.setLevel(logging.NOTSET)
    out = buf.getvalue()
    for s in (OPENAI, MISTRAL, TOGETHER, "s3cr3t-value"):
        assert s not in out
    assert "RuntimeError: 401 Unauthorized for [REDACTED]" in out  # the traceback is kept, redacted
    assert "create failed" in out and out.count("[REDACTED]") >= 5


def test_redacting_filter_on_a_handler():
    rec = logging.LogRecord("anything", logging.INFO, __file__, 1, "key=%s", (OPENAI,), None)
    assert secrets.RedactingFilter().filter(rec) is True
    assert rec.getMessage() == "key=[REDACTED]"


def test_exception_text_from_a_missing_key_is_clean(monkeypatch):
    monkeypatch.setenv("TOGETHER_API_KEY", TOGETHER)
    with pytest.raises(ConfigError) as e:
        secrets.get_key("openai")
    assert TOGETHER not in str(e.value) + (e.value.hint or "")


# ------------------------------------------------------------------------------ ftc keys


def test_keys_set_from_stdin_list_and_remove(ftc, home):
    r = ftc("keys", "set", "openai", input=OPENAI + "\n")
    assert r.code == 0, r.err
    assert OPENAI not in r.out + r.err and "sk-proj-...C3d4" in r.err
    path = home / "keys.json"
    if os.name != "nt":
        assert mode(path) == 0o600

    r = ftc("keys", "list", "--json")
    assert r.code == 0 and OPENAI not in r.out
    data = r.json()
    rows = {k["provider"]: k for k in data["keys"]}
    assert rows["openai"]["source"] == "file" and rows["openai"]["fingerprint"] == "sk-proj-...C3d4"
    assert rows["together"]["source"] is None and rows["together"]["fingerprint"] is None
    assert data["keys_file"] == str(path)

    r = ftc("keys", "list")
    assert r.code == 0 and "openai" in r.out and "sk-proj-...C3d4" in r.out and OPENAI not in r.out

    r = ftc("keys", "path")
    assert r.code == 0 and r.out.strip() == str(path)

    r = ftc("keys", "remove", "openai")
    assert r.code == 0
    r = ftc("keys", "remove", "openai")
    assert r.code == 2 and "no openai key" in r.err


def test_keys_env_overrides_and_from_env(ftc, monkeypatch):
    monkeypatch.setenv("TOGETHER_API_KEY", TOGETHER)
    r = ftc("keys", "list", "--json")
    row = next(k for k in r.json()["keys"] if k["provider"] == "together")
    assert row["source"] == "env" and not row["in_file"] and TOGETHER not in r.out
    r = ftc("keys", "set", "together", "--from-env")
    assert r.code == 0 and TOGETHER not in r.out + r.err
    monkeypatch.delenv("TOGETHER_API_KEY")
    assert secrets.get_key("together") == TOGETHER
    r = ftc("keys", "set", "openai", "--from-env")
    assert r.code == 2 and "OPENAI_API_KEY is not set" in r.err


def test_keys_set_warns_when_the_env_var_shadows_it(ftc, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env-" + "e" * 30)
    r = ftc("keys", "set", "openai", input=OPENAI)
    assert r.code == 0 and "takes precedence" in r.err


@posix_only
def test_keys_errors_exit_2_without_traceback(ftc, home):
    r = ftc("keys", "set", "openai", input="\n")
    assert r.code == 2 and "no key given" in r.err
    r = ftc("keys", "set", "Bad Name!", input=OPENAI)
    assert r.code == 2 and "not a provider name" in r.err
    secrets.set_key("openai", OPENAI)
    os.chmod(home / "keys.json", 0o644)
    r = ftc("keys", "list")
    assert r.code == 2 and "too open" in r.err and "chmod 600" in r.err and "Traceback" not in r.err
    assert OPENAI not in r.out + r.err


def test_keys_help_lists_the_subcommands(ftc):
    r = ftc("keys", "--help")
    assert r.code == 0 and all(c in r.out for c in ("set", "list", "remove", "path"))


def test_keys_cmd_imports_nothing_heavy():
    import subprocess
    import sys

    code = "import ftclient.cli.keys_cmd, sys, json; print(json.dumps(sorted(sys.modules)))"
    mods = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout))
    assert not {"ftclient.store", "sqlite3", "openai", "together", "pydantic", "numpy"} & mods
