"""Keys and credentials under attack: a key that cannot be one (a line break, a non-ASCII
character, ...) is refused before any request and before any job is recorded, naming where
it came from and never its value; credentials in an openai-compatible URL are used for the
requests but never printed or stored; ``--debug`` tracebacks go through the one redaction.

Fake keys are built from pieces, so no key-like literal sits in this file.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

import pytest

from ftclient import secrets

sys.path.insert(0, str(Path(__file__).parent))

from compat_server import CompatServer  # noqa: E402
from job_files import write_job  # noqa: E402

A, B = "A1b2C3d4" * 3, "Z9y8X7w6" * 3
OPENAI = "sk-" + "proj-" + A  # sk-proj-...
OPENAI_PLAIN = "sk-" + A + B  # sk-...
TOGETHER = "tgp_" + "v1_" + A
FIREWORKS = "fw_" + A
OPAQUE = "opaque" + B  # no recognisable shape: redacted by value only


def pieces(key: str) -> list[str]:
    """The parts of a key worth looking for in output (each long enough to be a leak)."""
    return [p for p in key.replace("\n", " ").replace("\t", " ").split() if len(p) >= 8]


def assert_no_leak(text: str, *keys: str) -> None:
    for k in keys:
        for p in pieces(k) + [k]:
            assert p not in text, f"leaked {p[:4]}...: {text[-2000:]}"


@pytest.fixture(autouse=True)
def home(monkeypatch, tmp_path):
    h = tmp_path / "home"
    monkeypatch.setenv("FTC_HOME", str(h))
    for var in list(secrets.key_vars().values()) + ["OPENAI_COMPATIBLE_API_KEY", "OPENAI_BASE_URL",
                                                  "TOGETHER_BASE_URL", "FTC_DEBUG"]:
        monkeypatch.delenv(var, raising=False)
    return h


def write_key_file(home: Path, keys: dict) -> Path:
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    p = home / "keys.json"
    p.write_text(json.dumps(keys), encoding="utf-8")
    os.chmod(p, 0o600)
    return p


BAD_KEYS = {
    "a line break": OPENAI + "\n" + B,
    "whitespace": OPENAI + "\t" + B,
    "a control character": OPENAI + "\x1b[2J" + B,
    "a non-ASCII character": OPENAI + "\u00e9" + B,
    "characters long": OPENAI + "x" * 5000,
}


# ----------------------------------------------------------------------------- key shapes


@pytest.mark.parametrize("why", sorted(BAD_KEYS))
def test_a_bad_key_from_the_env_or_the_file_is_exit_2_naming_where_never_the_value(monkeypatch, home, why):
    bad = BAD_KEYS[why]
    monkeypatch.setenv("OPENAI_API_KEY", bad)
    with pytest.raises(secrets.KeyFormatError) as e:
        secrets.get_key("openai")
    text = f"{e.value.message} {e.value.hint}"
    assert e.value.exit_code == 2 and "OPENAI_API_KEY" in text and why in text
    assert_no_leak(text, bad)
    with pytest.raises(secrets.KeyFormatError):
        secrets.check_key("openai")
    monkeypatch.delenv("OPENAI_API_KEY")
    path = write_key_file(home, {"openai": bad})
    with pytest.raises(secrets.KeyFormatError) as e:
        secrets.get_key("openai")
    text = f"{e.value.message} {e.value.hint}"
    assert str(path) in text and "ftc keys set openai" in text and why in text
    assert_no_leak(text, bad)


def test_usable_keys_of_every_shape_pass():
    for key in (OPENAI, OPENAI_PLAIN, TOGETHER, FIREWORKS, OPAQUE):
        assert secrets.key_problem(key, "openai") is None
    assert secrets.key_problem("short", "openai") is not None  # no key of a known provider is this short
    assert secrets.key_problem("ollama", "openai-compatible") is None  # a self-hosted server's word


def test_check_ready_refuses_a_bad_key_before_anything(monkeypatch):
    from ftclient.backends import missing_key

    class Backend:
        name = "openai"
        key_env = "OPENAI_API_KEY"

    monkeypatch.setenv("OPENAI_API_KEY", OPENAI + "\n" + B)
    err = missing_key(Backend())
    assert err is not None and err.exit_code == 2 and "OPENAI_API_KEY" in err.message
    assert_no_leak(err.message + err.hint, OPENAI + "\n" + B)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI)
    assert missing_key(Backend()) is None


def test_the_demo_names_a_broken_key_rather_than_a_missing_one(monkeypatch):
    from ftclient.demo import _check_hosted

    monkeypatch.setenv("TOGETHER_API_KEY", TOGETHER + "\n" + B)
    with pytest.raises(secrets.KeyFormatError) as e:
        _check_hosted(["together"])
    assert "TOGETHER_API_KEY" in e.value.message and "line break" in e.value.message
    assert_no_leak(e.value.message + e.value.hint, TOGETHER + "\n" + B)


# ----------------------------------------------------------------------------- ftc train


def jobs_in(home: Path) -> list:
    db = home / "ftc.db"
    if not db.exists():
        return []
    with sqlite3.connect(db) as c:
        return c.execute("SELECT id, state FROM jobs").fetchall()


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("where", ["env", "file"])
@pytest.mark.parametrize("bad", [OPENAI + "\n" + B, OPENAI + "\u00e9" + B], ids=["newline", "non-ascii"])
def test_train_with_a_broken_key_is_exit_2_before_any_request_or_job(ftc_proc, tmp_path, home, debug, where, bad):
    from emulator import ProviderEmulator

    spec = write_job(tmp_path / "job")
    with ProviderEmulator("openai") as emu:
        env = {"FTC_HOME": str(home), "OPENAI_BASE_URL": emu.base_url, "OPENAI_API_KEY": ""}
        if where == "env":
            env["OPENAI_API_KEY"] = bad
        else:
            write_key_file(home, {"openai": bad})
        args = (["--debug"] if debug else []) + ["train", str(spec), "--backend", "openai", "--yes", "--detach"]
        r = ftc_proc(*args, env=env)
        assert r.code == 2, r.err
        assert ("OPENAI_API_KEY" if where == "env" else str(home / "keys.json")) in r.err
        assert "internal error" not in r.err and "Illegal header" not in r.err
        assert_no_leak(r.out + r.err, bad)
        assert emu.requests == []  # nothing was sent: no upload, no job
    assert jobs_in(home) == []


def test_keys_set_refuses_a_key_that_cannot_be_one(ftc, home, monkeypatch):
    for bad in (OPENAI + "\u00e9" + B, OPENAI + "\x07" + B, OPENAI + " " + B):
        r = ftc("keys", "set", "openai", input=bad)
        assert r.code == 2 and "nothing" in (r.err.lower()), r.err
        assert_no_leak(r.out + r.err, bad)
    assert not (home / "keys.json").exists()
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI + "\u00e9" + B)
    r = ftc("keys", "set", "openai", "--from-env")
    assert r.code == 2 and "OPENAI_API_KEY" in r.err and "non-ASCII" in r.err
    assert_no_leak(r.out + r.err, OPENAI + "\u00e9" + B)
    assert not (home / "keys.json").exists()
    r = ftc("keys", "list", "--json")
    row = next(k for k in r.json()["keys"] if k["provider"] == "openai")
    assert r.code == 0 and "non-ASCII" in row["problem"]
    assert_no_leak(r.out, OPENAI + "\u00e9" + B)


# ----------------------------------------------------------------------------- --debug


def test_debug_tracebacks_are_redacted(monkeypatch, capsys):
    """The HTTP client's own message for a header with a line break holds the whole key, as
    the repr of bytes; --debug prints the traceback only through the redaction."""
    from ftclient.cli import main as cli_main

    bad = OPENAI + "\n" + B
    monkeypatch.setenv("OPENAI_API_KEY", bad)

    def boom(*a, **k):
        raise ValueError(f"Illegal header value {('Bearer ' + bad).encode()!r}")

    monkeypatch.setattr(secrets, "load_keys", boom)
    with pytest.raises(SystemExit) as e:
        cli_main.main(["--debug", "keys", "list"])
    err = capsys.readouterr().err
    assert e.value.code == 70 and "Traceback" in err and "Illegal header value" in err
    assert_no_leak(err, bad, repr(bad)[1:-1])
    assert "[REDACTED]" in err


def test_error_messages_are_redacted(monkeypatch, capsys):
    from ftclient.cli import main as cli_main
    from ftclient.errors import ConfigError

    def boom(*a, **k):
        raise ConfigError(f"the server said: bad key {OPENAI_PLAIN} for http://u:{B}@h/v1?token={A}#m")

    monkeypatch.setattr(secrets, "load_keys", boom)
    for argv in (["keys", "list"], ["--debug", "keys", "list"]):
        with pytest.raises(SystemExit) as e:
            cli_main.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and "the server said" in err and "#m" in err
        assert_no_leak(err, OPENAI_PLAIN, B, A)


# ----------------------------------------------------------------------------- one redaction


def test_one_redaction_for_every_key_shape(monkeypatch):
    from ftclient import retry

    assert retry.redact is secrets.redact
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", OPAQUE)
    cases = {
        f"key {OPENAI} used": "key [REDACTED] used",
        f"key {OPENAI_PLAIN}": "key [REDACTED]",
        f"together {TOGETHER}.": "together [REDACTED].",
        f"fireworks {FIREWORKS}": "fireworks [REDACTED]",
        f"opaque {OPAQUE}": "opaque [REDACTED]",
        f"Authorization: Bearer {A}": "Authorization: Bearer [REDACTED]",
        f"authorization=Basic {B}": "authorization=Basic [REDACTED]",
        f"http://user:{B}@host:8000/v1 ok": "http://[REDACTED]@host:8000/v1 ok",
        f"https://{A}@host/v1": "https://[REDACTED]@host/v1",
        f"http://h/v1?api_key={A}#model": "http://h/v1?api_key=[REDACTED]#model",
        f"http://h/v1?key={A}&x=1#m": "http://h/v1?key=[REDACTED]&x=1#m",
        f"http://h/v1?x=1&token={B}": "http://h/v1?x=1&token=[REDACTED]",
        f"x-api-key: {B}": "x-api-key: [REDACTED]",
        f"api_key={B}#m": "api_key=[REDACTED]#m",
        f"grant client_secret={A}&token={B} sent": "grant client_secret=[REDACTED]&token=[REDACTED] sent",
        f"postgres://app:{B}@db/x password={A}": "postgres://[REDACTED]@db/x password=[REDACTED]",
    }
    for text, want in cases.items():
        assert secrets.redact(text) == want, text
        assert secrets.redact(want) == want  # redacting twice changes nothing
    plain = "file-abc123 ftjob-XYZ sha256 " + "ab" * 32 + " mail a@b.com https://example.com/a@b?page=2#top"
    assert secrets.redact(plain) == plain


# ----------------------------------------------------------------------------- URL credentials


class RecordingServer(CompatServer):
    """The compat server, recording what each request carried: its query string and whether
    HTTP basic auth had the URL's user and password (then it stands in for the bearer key)."""

    def __init__(self, *a, user: str, password: str, **k):
        super().__init__(*a, **k)
        self.user, self.password, self.seen = user, password, []

    def _serve_inner(self, h):
        import base64

        auth = h.headers.get("Authorization", "")
        basic = "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        self.seen.append({"path": h.path, "basic": auth == basic})
        if auth == basic:
            del h.headers["Authorization"]
            h.headers["Authorization"] = f"Bearer {self.api_key}"
        return super()._serve_inner(h)


def eval_data(tmp_path: Path) -> Path:
    p = tmp_path / "eval.jsonl"
    p.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                  {"role": "assistant", "content": f"q{i}"}]}) + "\n"
                         for i in range(4)), encoding="utf-8")
    return p


def test_url_credentials_are_used_but_never_printed_or_stored(ftc, tmp_path, home, monkeypatch):
    pw, qkey = "pw" + B, "qk" + A
    with RecordingServer(user="alice", password=pw) as srv:
        monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", srv.api_key)
        host = srv.base_url.split("://", 1)[1]
        real = f"openai-compatible:http://alice:{pw}@{host}?api_key={qkey}#echo-model"
        shown = f"openai-compatible:http://[REDACTED]@{host}?api_key=[REDACTED]#echo-model"
        data = eval_data(tmp_path)
        r = ftc("eval", real, "--data", data, "--metric", "exact", "--json")
        assert r.code == 0, r.err
        s = r.json()
        assert s["model_ref"] == shown and s["model"] == "echo-model" and s["completed"] == 4
        # the credentials were sent: basic auth from the URL, the key in every query string
        assert srv.seen and all(x["basic"] and f"api_key={qkey}" in x["path"] for x in srv.seen)
        assert_no_leak(r.out + r.err, pw, qkey)
        # the same reference again names the same run (resumed: nothing sent again)
        n = len(srv.seen)
        r2 = ftc("eval", real, "--data", data, "--metric", "exact", "--json")
        assert r2.code == 0 and r2.json()["run_id"] == s["run_id"] and len(srv.seen) == n
        # a second model, for the comparison
        other = real.replace("#echo-model", "#other-model")
        r3 = ftc("eval", other, "--data", data, "--metric", "exact", "--json")
        assert r3.code == 0, r3.err
    for args in (("eval", "list"), ("eval", "list", "--json"), ("eval", "show", s["run_id"]),
                 ("eval", "show", s["run_id"], "--json")):
        r = ftc(*args)
        assert r.code == 0, r.err
        assert_no_leak(r.out + r.err, pw, qkey)
    out = tmp_path / "report"
    r = ftc("compare", s["run_id"], r3.json()["run_id"], "--out", out)
    assert r.code == 0, r.err
    assert_no_leak(r.out + r.err, pw, qkey)
    for f in ("report.md", "report.json"):
        text = (out / f).read_text(encoding="utf-8")
        assert_no_leak(text, pw, qkey)
    assert "[REDACTED]" in (out / "report.json").read_text(encoding="utf-8")
    # nothing in the store, byte for byte
    blob = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    assert pw.encode() not in blob and qkey.encode() not in blob
    # the redacted reference cannot be used to ask (its credentials are gone): exit 2
    r = ftc("eval", shown, "--data", data, "--metric", "exact")
    assert r.code == 2 and "redacted" in r.err


def test_model_ref_keeps_credentials_in_memory_only():
    from ftclient.modelref import parse_model_ref

    ref = parse_model_ref(f"openai-compatible:http://u:{B}@127.0.0.1:9/v1?token={A}&x=1#m#1")
    assert ref.model == "m#1" and ref.base_url == "http://[REDACTED]@127.0.0.1:9/v1?token=[REDACTED]&x=1"
    assert ref.canonical == f"openai-compatible:{ref.base_url}#m#1"
    for text in (repr(ref), json.dumps(ref.to_dict()), str(ref)):
        assert B not in text and A not in text
    assert ref.connection() == (f"http://u:{B}@127.0.0.1:9/v1", {"token": A, "x": "1"})
    plain = parse_model_ref("openai-compatible:http://127.0.0.1:9/v1#m")
    assert plain.connection() == ("http://127.0.0.1:9/v1", {}) and plain.canonical.endswith("/v1#m")
