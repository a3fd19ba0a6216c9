"""Hostile and broken OpenAI-compatible servers against ``ftc eval`` and ``ftc chat``.

The server is tests/compat_server.py on 127.0.0.1, misbehaving on purpose: an endless or a
huge reply, a 200 that is an HTML page or not a chat completion, invalid UTF-8, absurd
token counts, a slow reply, nothing listening at all, every request refused the same way,
terminal escape sequences in an answer. The run that could exhaust memory runs in a child
process under an address-space limit, so a regression fails the test instead of the machine.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compat_server import CompatServer, endless, huge, patched, raw, slow, status  # noqa: E402

from ftclient.evaluation import MAX_ANSWER_CHARS, BadReply, evaluate, parse_reply  # noqa: E402
from ftclient.retry import RetryPolicy  # noqa: E402
from ftclient.store import Store  # noqa: E402

pytest.importorskip("openai")
pytest.importorskip("aiolimiter")

FAST = RetryPolicy(base=0.01, max_wait=0.05, deadline=30)


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    for var in ("OPENAI_API_KEY", "TOGETHER_API_KEY", "OPENAI_BASE_URL", "TOGETHER_BASE_URL",
                "OPENAI_COMPATIBLE_API_KEY", "FTC_PRICES", "FTC_EVAL_TIMEOUT", "FTC_EVAL_MAX_REPLY_BYTES"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server(monkeypatch):
    srv = CompatServer()  # echoes the last user message: every answer is right
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", srv.api_key)
    yield srv
    srv.close()


def q(i: int) -> str:
    return f"q{i}"


def dataset(tmp_path: Path, n: int) -> Path:
    p = tmp_path / "eval.jsonl"
    p.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q(i)},
                                                  {"role": "assistant", "content": q(i)}]}) + "\n"
                         for i in range(n)), encoding="utf-8")
    return p


def ref(srv: CompatServer) -> str:
    return f"openai-compatible:{srv.base_url}#m"


def results(tmp_path: Path, run_id: str) -> dict:
    st = Store(tmp_path / "home" / "ftc.db")
    try:
        return {r.idx: r for r in st.eval_results(run_id).values()}
    finally:
        st.close()


def only(prompt: str):
    return lambda p: p == prompt


# --------------------------------------------------------------------------- the reply parser


def test_parse_reply_takes_the_answer_and_checks_the_numbers():
    body = {"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    assert parse_reply(json.dumps(body).encode()) == {"text": "hi", "tokens_in": 3, "tokens_out": 1, "cut": 0,
                                                      "bad_usage": False}
    for bad in (1e308, -1, float("nan"), True, "12", 2.5, 10**12):
        r = parse_reply({**body, "usage": {"prompt_tokens": 3, "completion_tokens": bad}})
        assert r["text"] == "hi" and r["tokens_in"] is None and r["tokens_out"] is None and r["bad_usage"], bad
    assert parse_reply({"choices": [{"message": {"content": None}}]})["text"] == ""
    parts = {"choices": [{"message": {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}}]}
    assert parse_reply(parts)["text"] == "ab"
    # a lone surrogate (valid JSON) becomes U+FFFD; a pair becomes its character
    assert parse_reply(b'{"choices": [{"message": {"content": "x\\ud800y\\ud83d\\ude00"}}]}')["text"] == \
        "x\ufffdy\U0001f600"
    long = parse_reply({"choices": [{"message": {"content": "a" * (MAX_ANSWER_CHARS + 5)}}]})
    assert len(long["text"]) == MAX_ANSWER_CHARS and long["cut"] == 5


@pytest.mark.parametrize("body, says", [
    (b"<!DOCTYPE html><html><title>502</title></html>", "HTML page"),
    (b"", "empty"),
    (b"{nope", "not JSON"),
    (b"[" * 100000, "not JSON"),
    (b'{"choices": [{"message": {"content": "\xff"}}]}', "not UTF-8"),
    (b"[1, 2]", "not a chat completion"),
    (b'{"object": "chat.completion"}', 'no "choices"'),
    (b'{"choices": []}', '"choices" is empty'),
    (b'{"choices": "nope"}', '"choices" is a str'),
    (b'{"choices": [1]}', 'no "message"'),
    (b'{"choices": [{"message": {"content": 5}}]}', "content is a int"),
])
def test_parse_reply_refuses_what_is_no_chat_completion(body, says):
    with pytest.raises(BadReply) as e:
        parse_reply(body)
    assert says in e.value.reason


def test_parse_reply_fuzz():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as s

    leaf = s.none() | s.booleans() | s.integers() | s.floats() | s.text(max_size=20)
    js = s.recursive(leaf, lambda kids: s.lists(kids, max_size=4) | s.dictionaries(s.text(max_size=8), kids,
                                                                                      max_size=4), max_leaves=20)
    shaped = s.fixed_dictionaries({"choices": s.lists(s.fixed_dictionaries({"message": s.dictionaries(
        s.sampled_from(["content", "role"]), js, max_size=2)}) | js, max_size=2), "usage": js})

    def check(body):
        try:
            r = parse_reply(body)
        except BadReply as e:
            assert e.reason
            return
        assert isinstance(r["text"], str) and len(r["text"]) <= MAX_ANSWER_CHARS
        r["text"].encode("utf-8")  # storable
        for k in ("tokens_in", "tokens_out"):
            assert r[k] is None or (type(r[k]) is int and 0 <= r[k] <= 10**9)

    @settings(max_examples=300, deadline=None, database=None)
    @given(s.binary(max_size=200) | js.map(lambda o: json.dumps(o).encode()) |
           shaped.map(lambda o: json.dumps(o).encode()))
    def run(body):
        check(body)

    run()
    assert hypothesis


# --------------------------------------------------------------------------- bad replies are failures


def test_replies_that_are_no_chat_completion_fail_and_are_never_scored(ftc, server, tmp_path):
    data = dataset(tmp_path, 6)
    server.fail(raw("<html><body>Bad gateway</body></html>", content_type="text/html"), when=only("q0"), times=2)
    server.fail(patched(choices=[]), when=only("q1"), times=2)
    server.fail(patched(choices="nope"), when=only("q2"), times=2)
    server.fail(raw(b'{"choices": [{"message": {"content": "\xff\xfe"}}]}'), when=only("q3"), times=2)
    # a broken reply once, then a good one: the second try answers
    server.fail(patched(choices=[]), when=only("q4"), times=1)
    r = ftc("eval", ref(server), "--data", data, "--json")
    assert r.code in (0, 1) and "Traceback" not in r.err, r.err
    s = r.json()
    assert s["completed"] == 2 and s["failed"] == 4
    assert s["metrics"]["score"] == 1.0  # the failed ones are not scored as wrong answers
    rows = results(tmp_path, s["run_id"])
    assert "HTML page" in rows[0].error and '"choices" is empty' in rows[1].error
    assert '"choices" is a str' in rows[2].error and "not UTF-8" in rows[3].error
    assert rows[4].ok and rows[4].output == "q4" and rows[5].ok
    # each broken reply was asked twice, no more
    assert [server.prompts.count(q(i)) for i in range(6)] == [2, 2, 2, 2, 2, 1]
    assert any("not a chat completion" in n for n in s["notes"])


def test_absurd_token_counts_are_not_stored(ftc, server, tmp_path):
    data = dataset(tmp_path, 2)
    server.fail(patched(usage={"prompt_tokens": 5, "completion_tokens": 1e308, "total_tokens": 1e308}),
                when=only("q0"))
    r = ftc("eval", ref(server), "--data", data, "--json")
    assert r.code == 0, r.err
    s = r.json()
    assert s["completed"] == 2 and s["failed"] == 0
    rows = results(tmp_path, s["run_id"])
    assert rows[0].output == "q0" and rows[0].tokens_in is None and rows[0].tokens_out is None
    assert rows[1].tokens_out == 1
    assert any("1e9" in n for n in s["notes"])
    r = ftc("eval", "list", "--json")
    assert r.code == 0 and r.json()[0]["state"] == "complete"


def test_a_long_answer_is_cut_and_the_summary_says_so(server, tmp_path):
    data = dataset(tmp_path, 2)
    server.fail(huge(MAX_ANSWER_CHARS * 3, chunked=False), when=only("q1"))
    s = evaluate(ref(server), data, policy=FAST)
    rows = results(tmp_path, s["run_id"])
    assert len(rows[1].output) == MAX_ANSWER_CHARS and s["completed"] == 2
    assert any(f"{MAX_ANSWER_CHARS:,} characters" in n and "cut" in n for n in s["notes"])


# --------------------------------------------------------------------------- size and time caps


def _run_capped(args: list[str], env: dict, limit_bytes: int, timeout: float = 120) -> tuple[int, str, str, int]:
    """Run ``ftc ARGS`` in a child under RLIMIT_AS = ``limit_bytes``; returns (exit code,
    stdout, stderr, the child's own peak RSS in bytes, from wait4)."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    exe = Path(sys.executable).with_name("ftc")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "ftclient"]
    home = Path(env["FTC_HOME"])
    with open(home / "out.txt", "wb") as fo, open(home / "err.txt", "wb") as fe:
        p = subprocess.Popen(cmd + args, stdout=fo, stderr=fe, env=env, preexec_fn=cap, cwd=home)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                raise AssertionError(f"ftc ran past {timeout} s: {(home / 'err.txt').read_text()[-2000:]}")
            time.sleep(0.05)
    p.returncode = os.waitstatus_to_exitcode(status)
    return (p.returncode, (home / "out.txt").read_text(errors="replace"),
            (home / "err.txt").read_text(errors="replace"), usage.ru_maxrss * 1024)


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and ru_maxrss semantics as on Linux")
def test_an_endless_or_huge_reply_is_cut_off_under_a_memory_cap(server, tmp_path):
    """A reply that never ends and one of 50 MB: each example fails with a clear reason, the
    run ends, and the process stays small (under an address-space cap of 1.5 GB; a run that
    read the endless reply would die of MemoryError instead)."""
    data = dataset(tmp_path, 4)
    # the baseline: the same run, same environment, against a server that behaves
    calm = tmp_path / "calm-home"
    calm.mkdir()
    env = {**os.environ, "FTC_HOME": str(calm), "OPENAI_COMPATIBLE_API_KEY": server.api_key, "NO_COLOR": "1"}
    code, _, err, baseline = _run_capped(["eval", ref(server), "--data", str(data), "--json"], env, 1536 * 1024 * 1024)
    assert code == 0, err[-3000:]
    server.fail(endless(), when=only("q0"))
    server.fail(huge(50 * 1024 * 1024), when=only("q1"))  # chunked: no Content-Length to refuse early
    server.fail(huge(50 * 1024 * 1024, chunked=False), when=only("q2"))
    home = tmp_path / "home"
    home.mkdir()
    env["FTC_HOME"] = str(home)
    prompts_before = list(server.prompts)
    t = time.monotonic()
    code, out, err, peak = _run_capped(["eval", ref(server), "--data", str(data), "--json",
                                        "--max-reply-bytes", str(2 * 1024 * 1024), "--timeout", "60"],
                                       env, 1536 * 1024 * 1024)
    wall = time.monotonic() - t
    assert code in (0, 1) and "Traceback" not in err and "MemoryError" not in err, err[-3000:]
    s = json.loads(out)
    assert s["completed"] == 1 and s["failed"] == 3
    rows = results(tmp_path, s["run_id"])
    for i in (0, 1, 2):
        assert "larger than 2,097,152 bytes" in rows[i].error, rows[i].error
    asked = server.prompts[len(prompts_before):]
    assert [asked.count(q(i)) for i in range(3)] == [1, 1, 1]  # a huge reply is not asked for again
    # the server stopped being read long before it had sent everything
    assert server.hostile_bytes < 3 * 20 * 1024 * 1024
    assert wall < 60
    # bounded by the reply cap, not by what the server sends: within 256 MB of the calm run's peak
    assert 0 < peak < baseline + 256 * 1024 * 1024, f"peak RSS {peak / 2**20:.0f} MB, calm run {baseline / 2**20:.0f} MB"


def test_a_slow_reply_times_out_once_and_is_not_sent_again(ftc, server, tmp_path):
    data = dataset(tmp_path, 3)
    server.fail(slow(4.0), when=only("q1"))
    t = time.monotonic()
    r = ftc("eval", ref(server), "--data", data, "--json", "--timeout", "1", "--concurrency", "1")
    assert time.monotonic() - t < 4.0
    assert r.code in (0, 1) and "Traceback" not in r.err, r.err
    s = r.json()
    assert s["completed"] == 2 and s["failed"] == 1
    assert server.prompts.count("q1") == 1  # never resent: a slow server is not given the work twice
    assert "no complete reply within 1 s (--timeout)" in results(tmp_path, s["run_id"])[1].error
    assert any("raise --timeout" in n for n in s["notes"])
    assert server.max_in_flight == 1


def test_timeout_and_reply_cap_come_from_the_environment_too(ftc, server, tmp_path, monkeypatch):
    data = dataset(tmp_path, 1)
    server.fail(huge(64 * 1024, chunked=False), when=only("q0"))
    monkeypatch.setenv("FTC_EVAL_MAX_REPLY_BYTES", "4096")
    r = ftc("eval", ref(server), "--data", data, "--json")
    assert r.code == 1 and r.json()["failed"] == 1
    r = ftc("eval", ref(server), "--data", data, "--timeout", "0")
    assert r.code == 2
    r = ftc("eval", ref(server), "--data", data, "--max-reply-bytes", "10")
    assert r.code == 2


# --------------------------------------------------------------------------- stopping early


def test_nothing_listening_is_one_message_at_once(ftc, tmp_path):
    data = dataset(tmp_path, 20)
    so = socket.socket()
    so.bind(("127.0.0.1", 0))
    port = so.getsockname()[1]
    so.close()
    t = time.monotonic()
    r = ftc("eval", f"openai-compatible:http://127.0.0.1:{port}/v1#m", "--data", data)
    assert time.monotonic() - t < 5  # no six attempts per example with backoff
    assert r.code in (1, 2) and "Traceback" not in r.err
    assert f"cannot connect to http://127.0.0.1:{port}/v1" in r.err and "connection refused" in r.err


def test_every_request_failing_the_same_way_stops_the_run_with_the_servers_words(ftc, server, tmp_path):
    data = dataset(tmp_path, 40)
    server.fail(raw(json.dumps({"detail": "Server is pinned to 'SmolLM2-135M'"}), code=400), times=1000)
    r = ftc("eval", ref(server), "--data", data, "--concurrency", "1")
    assert r.code == 1 and "Traceback" not in r.err
    assert "first 5 requests" in r.err and "Server is pinned to 'SmolLM2-135M'" in r.err
    assert server.requests == 5


def test_a_server_error_keeps_its_own_text(server, tmp_path):
    data = dataset(tmp_path, 3)
    server.fail(status(400, message="Server is pinned to 'other-model'"), when=only("q1"))  # OpenAI's shape
    server.fail(raw(json.dumps({"detail": "Model 'm' is not loaded"}), code=422), when=only("q2"))  # FastAPI's
    server.fail(status(503, message="Model is loading, 40% done"), when=only("q0"), times=100)  # retried, then failed
    s = evaluate(ref(server), data, policy=FAST)
    assert s["failed"] == 3
    rows = results(tmp_path, s["run_id"])
    assert "Server is pinned to 'other-model'" in rows[1].error
    assert "HTTP 422" in rows[2].error and "Model 'm' is not loaded" in rows[2].error
    assert "HTTP 503" in rows[0].error and "Model is loading, 40% done" in rows[0].error


# --------------------------------------------------------------------------- the terminal


ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[31mred\x1b[0m \x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\ \x9b2J\rend\x00"


def test_safe_text_removes_escape_sequences_and_shows_controls():
    from ftclient.cli.output import safe_text

    assert safe_text(ESCAPES) == "red link \\x0dend\\x00"
    assert safe_text("a\nb\tc \u202eevil") == "a\nb\tc \\u202eevil"
    assert safe_text(None) == ""


def test_chat_prints_no_terminal_escapes(ftc, monkeypatch):
    with CompatServer(answer=lambda messages, model: "ok " + ESCAPES) as srv:
        monkeypatch.setenv("OPENAI_API_KEY", srv.api_key)
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        r = ftc("chat", "gpt-4o-mini", "hello", "--backend", "openai")
    assert r.code == 0, r.err
    assert "\x1b" not in r.out and "\x9b" not in r.out and "\x07" not in r.out and "\x00" not in r.out
    assert r.out.startswith("ok red link")


@pytest.mark.parametrize("fault, says", [
    (lambda: raw("<html><body>502</body></html>", content_type="text/html"), "HTML page"),
    (lambda: patched(choices="nope"), '"choices" is a str'),
    (lambda: patched(choices=[]), '"choices" is empty'),
    (lambda: raw(b'{"choices": [{"message": {"content": "\xff"}}]}'), "not UTF-8"),
])
def test_chat_with_a_reply_that_is_no_chat_completion_is_one_clear_error(ftc, monkeypatch, fault, says):
    with CompatServer() as srv:
        monkeypatch.setenv("OPENAI_API_KEY", srv.api_key)
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        srv.fail(fault(), times=10)
        r = ftc("chat", "gpt-4o-mini", "hello", "--backend", "openai")
    assert r.code == 1 and says in r.err and "Traceback" not in r.err, r.err
    assert r.out == ""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and ru_maxrss semantics as on Linux")
@pytest.mark.parametrize("fault", [endless, lambda: huge(50 * 1024 * 1024)])
def test_chat_with_an_endless_or_huge_reply_stops_reading_under_a_memory_cap(server, tmp_path, fault):
    """``ftc chat --backend openai`` against a server whose reply never ends (or is 50 MB):
    one clear error once the reply passes the cap, and the process stays small."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "FTC_HOME": str(home), "OPENAI_API_KEY": server.api_key,
           "OPENAI_BASE_URL": server.base_url, "NO_COLOR": "1"}
    args, cap = ["chat", "gpt-4o-mini", "hello", "--backend", "openai"], 1536 * 1024 * 1024
    code, out, err, baseline = _run_capped(args, env, cap)  # the same chat, answered normally
    assert code == 0 and out.strip() == "hello", err[-3000:]
    server.fail(fault(), times=10)
    code, out, err, peak = _run_capped(args, env, cap)
    assert code == 1 and "larger than" in err and "Traceback" not in err, err[-3000:]
    assert out == ""
    assert 0 < peak < baseline + 256 * 1024 * 1024, f"peak RSS {peak / 2**20:.0f} MB, calm run {baseline / 2**20:.0f} MB"


def test_a_servers_error_text_is_stored_and_shown_without_escape_sequences(ftc, server, tmp_path):
    data = dataset(tmp_path, 6)
    server.fail(status(400, message="bad \x1b]0;owned\x07\x1b[2Jmodel"), times=100)
    r = ftc("eval", ref(server), "--data", data, "--concurrency", "1")
    assert r.code == 1 and "bad model" in r.err and "\x1b" not in r.err and "\x07" not in r.err
    r = ftc("eval", "list", "--json")
    rows = results(tmp_path, r.json()[0]["id"])
    assert rows and all("\x1b" not in x.error and "bad model" in x.error for x in rows.values())
