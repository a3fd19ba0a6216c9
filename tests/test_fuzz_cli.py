"""Fuzzing: arbitrary bytes and arbitrary JSON fed to ``ftc data validate`` (each provider),
``ftc data prepare``, ``ftc spec check`` and to the eval path that reads a chat-completion
reply (through a local server that answers whatever the fuzzer chose).

The promise checked for every input: exit 0, 1 or 2 (never 70, ftc's own bugs), no
traceback, and no partial output: ``data prepare`` leaves either all of train.jsonl,
eval.jsonl and report.json, complete and valid (strict UTF-8, strict JSON), or nothing,
and never a temporary file.

The commands run in-process through click's test runner (the root group turns ftc's
errors into exit codes there as in a real run; anything else is raised and would be
exit 70 in a real run); a few inputs also go through the real ``ftc`` program.

The normal run tries 60 inputs per property, always the same ones (reproducible);
``HYPOTHESIS_PROFILE=long`` tries 2000 random ones per property.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import traceback
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from http_server import LocalHTTPServer
from ftclient.cli.main import cli

settings.register_profile("ftc-fuzz", max_examples=60, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                 HealthCheck.function_scoped_fixture])
settings.register_profile("ftc-fuzz-long", settings.get_profile("ftc-fuzz"), max_examples=2000, derandomize=False)
FUZZ = settings(settings.get_profile("ftc-fuzz-long" if os.environ.get("HYPOTHESIS_PROFILE") == "long"
                                     else "ftc-fuzz"))

OK_CODES = (0, 1, 2)
PREPARE_OUTPUTS = {"train.jsonl", "eval.jsonl", "report.json"}

# --------------------------------------------------------------------------- strategies

# Any code point, lone surrogates included (JSON's \ud800 escapes reach the readers as such).
any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
any_text = st.text(any_char, max_size=40)
words = st.sampled_from(["", " ", "hello", "card_arrival", "[/bold]", "[red]x", "\x1b]0;t\x07", "\x00", "\ud800",
                         "é", "🙂", "\u202e", "1e999", "NaN", "-", "\\", '"', "\n", "\r\n", "\t", "a,b", "x" * 300])
text = st.one_of(words, any_text)
numbers = st.one_of(st.integers(), st.integers(min_value=-(10 ** 4000), max_value=10 ** 4000),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0, 1, -1, 2 ** 63, 1e308]))
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(text, inner, max_size=4)),
                           max_leaves=12)

ROLES = st.sampled_from(["system", "user", "assistant", "tool", "developer", "function", "bot", "", None, 1])
CONTENT = st.one_of(text, json_values, st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image_url"]),
                                                                       "text": text}), max_size=2))
message = st.one_of(st.fixed_dictionaries({"role": ROLES, "content": CONTENT}),
                    st.dictionaries(st.sampled_from(["role", "content", "name", "weight", "tool_calls",
                                                     "function_call", "thinking"]), json_values, max_size=4))
messages = st.lists(message, max_size=5)

# Records shaped like the formats ftc reads, with fuzzed parts: this reaches the checks
# behind the structure tests, where random JSON seldom goes.
records = st.one_of(
    json_values,
    st.fixed_dictionaries({"messages": messages}),
    st.fixed_dictionaries({"messages": messages}, optional={"tools": json_values, "parallel_tool_calls": json_values}),
    st.fixed_dictionaries({"input": st.one_of(json_values, st.fixed_dictionaries({"messages": messages})),
                           "preferred_output": st.one_of(json_values, messages),
                           "non_preferred_output": st.one_of(json_values, messages)}),
    st.fixed_dictionaries({"prompt": CONTENT, "completion": CONTENT}),
    st.fixed_dictionaries({"instruction": CONTENT, "input": CONTENT, "output": CONTENT}),
    st.fixed_dictionaries({"conversations": st.lists(st.fixed_dictionaries(
        {"from": st.sampled_from(["human", "gpt", "system", "x"]), "value": CONTENT}), max_size=4)}),
    st.fixed_dictionaries({"text": CONTENT, "label": CONTENT}),
    st.fixed_dictionaries({"text": st.from_regex(r"\A[a-z ]{1,12}\Z"), "label": st.sampled_from(["a", "b", "c"])}),
)


def _dumps(value) -> str:
    # Python's json writes NaN/Infinity and escapes lone surrogates as \ud800: both are
    # what a hand-made or foreign file can hold.
    return json.dumps(value, ensure_ascii=True)


jsonl_bytes = st.lists(records, max_size=12).map(lambda rs: "".join(_dumps(r) + "\n" for r in rs).encode())
json_doc_bytes = st.one_of(records, st.lists(records, max_size=8)).map(lambda v: _dumps(v).encode())
# JSONL with damage: a mix of good-looking lines, junk bytes, blank lines, no final newline.
mixed_bytes = st.lists(st.one_of(records.map(lambda r: _dumps(r).encode()), st.binary(max_size=30),
                                 st.sampled_from([b"", b" ", b"\xef\xbb\xbf", b"\xff\xfe", b"\r"])),
                       max_size=10).map(lambda parts: b"\n".join(parts))
csv_bytes = st.lists(st.lists(text, min_size=1, max_size=4), max_size=10).map(
    lambda rows: "\n".join(",".join(c.replace("\ud800", "?") for c in row) for row in rows).encode("utf-8", "replace"))
any_bytes = st.one_of(st.binary(max_size=600), jsonl_bytes, json_doc_bytes, mixed_bytes)
data_files = st.one_of(any_bytes, csv_bytes)

# Specs: random YAML/JSON, and the example spec with fuzzed values at its own keys.
_SPEC_FIELDS = [("name",), ("base_model",), ("method",), ("adapter",), ("data",), ("data", "train"),
                ("data", "eval"), ("hyperparameters", "epochs"), ("hyperparameters", "learning_rate"),
                ("hyperparameters", "batch_size"), ("hyperparameters", "max_seq_len"), ("hyperparameters", "seed"),
                ("hyperparameters", "lora"), ("hyperparameters", "lora", "r"), ("hyperparameters", "lora", "dropout"),
                ("hyperparameters", "lora", "target_modules"), ("hyperparameters", "dpo_beta"), ("budget_usd",),
                ("openai",), ("openai", "suffix"), ("openai", "metadata"), ("together", "n_checkpoints"),
                ("together", "train_on_inputs"), ("fireworks", "model"), ("fireworks", "output_model"),
                ("fireworks", "max_context_length"), ("local", "gpus"), ("local", "distributed"),
                ("local", "deepspeed_config"), ("local", "output_dir"), ("local", "gpu_price_per_hour"),
                ("local", "model"), ("nosuch",)]


def _base_spec() -> dict:
    import yaml

    from ftclient.spec import example_spec

    return yaml.safe_load(example_spec())


def _set(doc: dict, path: tuple, value) -> dict:
    cur = doc
    for k in path[:-1]:
        if not isinstance(cur.get(k), dict):
            cur[k] = {}
        cur = cur[k]
    cur[path[-1]] = value
    return doc


@st.composite
def spec_docs(draw) -> bytes:
    doc = _base_spec()
    for path in draw(st.lists(st.sampled_from(_SPEC_FIELDS), min_size=1, max_size=4)):
        _set(doc, path, draw(json_values))
    return _dumps(doc).encode()  # JSON is YAML


yaml_snippets = st.sampled_from([
    b"a: &a [*a]\n", b"!!python/object/apply:os.system ['true']\n", b"name: x\ndata: {train: a}\nbudget_usd: .nan\n",
    b"name: x\ndata: {train: a}\nbudget_usd: .inf\n", b"- - - -\n", b"? [a, b]\n: c\n", b"%YAML 9.9\n---\n",
    b"name: x\ndata: {train: a}\nhyperparameters: {epochs: " + b"9" * 5000 + b"}\n",
    b"name: x\ndata: {train: \"\\0\"}\n", b"name: x\ndata: {train: ''}\n",
])
spec_bytes = st.one_of(st.binary(max_size=400), json_doc_bytes, spec_docs(), yaml_snippets,
                       st.text(any_char, max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")))

# --------------------------------------------------------------------------- running


class Crash(AssertionError):
    pass


def run_ftc(*args) -> tuple[int, str, str]:
    """Run ftc in-process; an exception other than ftc's own errors is a crash (exit 70)."""
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        tb = "".join(traceback.format_exception(*r.exc_info))
        # A print that failed leaves its text in the console's buffer, where it would fail
        # every later input of this process too: drop it, so the fuzzer shrinks to the
        # input that really fails.
        from ftclient.cli import output

        for console in (output.out, output.err):
            getattr(getattr(console, "_thread_locals", None), "buffer", []).clear()
        raise Crash(f"ftc {' '.join(map(str, args))} crashed (a real run exits 70):\n{tb}")
    return r.exit_code, r.stdout, r.stderr


def check_clean(code: int, out: str, err: str) -> None:
    assert code in OK_CODES, (code, out[-800:], err[-800:])
    assert "Traceback" not in err and "Traceback" not in out, err[-2000:]
    assert "internal error" not in err, err[-800:]


def _write(dirpath: Path, name: str, data: bytes) -> Path:
    p = dirpath / name
    p.write_bytes(data)
    return p


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    for var in ("OPENAI_API_KEY", "TOGETHER_API_KEY", "OPENAI_BASE_URL", "FTC_PRICES", "FTC_DEBUG"):
        monkeypatch.delenv(var, raising=False)


# --------------------------------------------------------------------------- data validate


@pytest.mark.parametrize("provider", ["openai", "together", "fireworks", "local"])
@FUZZ
@given(data=any_bytes, strict=st.booleans())
@example(data=b'{"messages": [{"role": "user", "content": "\\ud800"}, {"role": "assistant", "content": "x"}]}\n',
         strict=False)
@example(data=b'{"messages": [{"role": "user", "content": 1e999}]}\n', strict=False)
@example(data=b'{"\\ud800": 1}\n{"messages": [{"role": "user", "content": "x", "\\udfff": 1}]}\n', strict=False)
@example(data=b"\xff\xfe" + "{}".encode("utf-16-le"), strict=True)
def test_validate_never_crashes(provider, data, strict):
    # local needs no model: without --model it checks the structure and counts tokens
    # approximately with the ChatML template.
    with tempfile.TemporaryDirectory() as d:
        f = _write(Path(d), "data.jsonl", data)
        code, out, err = run_ftc("data", "validate", f, "--provider", provider, *(["--strict"] if strict else []))
        check_clean(code, out, err)
        if code == 1:
            assert (out + err).strip(), "a failure must say why"
        # the JSON report is valid strict JSON whatever the data held
        code_j, out_j, err_j = run_ftc("data", "validate", f, "--provider", provider, "--json")
        check_clean(code_j, out_j, err_j)
        if out_j.strip():
            json.loads(out_j, parse_constant=_no_constant)


def _no_constant(name: str):
    raise AssertionError(f"{name} in JSON output")


# --------------------------------------------------------------------------- data prepare


def check_prepare_outputs(code: int, out_dir: Path) -> None:
    files = sorted(p.name for p in out_dir.rglob("*")) if out_dir.exists() else []
    if code != 0:
        assert files == [], f"exit {code} left files behind: {files}"
        return
    assert set(files) == PREPARE_OUTPUTS, files
    for name in ("train.jsonl", "eval.jsonl"):
        raw = (out_dir / name).read_bytes()
        text = raw.decode("utf-8")  # strict: no lone surrogates written
        assert raw == b"" or raw.endswith(b"\n"), f"{name} ends mid-line"
        for line in text.split("\n")[:-1]:  # JSON Lines end at "\n" only (U+0085, U+2028 may be in a text)
            rec = json.loads(line, parse_constant=_no_constant)
            assert isinstance(rec.get("messages"), list) and rec["messages"], line[:200]
            for m in rec["messages"]:
                assert isinstance(m.get("content"), str), line[:200]
    json.loads((out_dir / "report.json").read_text(encoding="utf-8"), parse_constant=_no_constant)


@FUZZ
@given(data=data_files, suffix=st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".txt"]),
       redact=st.booleans(), cols=st.sampled_from([(), ("--input-col", "text", "--output-col", "label"),
                                                    ("--json",)]))
@example(data=b'{"text": "\\ud800", "label": "a"}\n' * 3 + b'{"text": "b", "label": "b"}\n', suffix=".jsonl",
         redact=False, cols=())
@example(data=b'{"prompt": 1e999, "completion": "x"}\n{"prompt": "y", "completion": "z"}\n', suffix=".jsonl",
         redact=False, cols=())
@example(data=b"text,label\n[/bold],[red]\nb,c\n", suffix=".csv", redact=True, cols=())
@example(data=b'{"text":"!","label":"!\\u0085!"}', suffix=".jsonl", redact=False, cols=())
def test_prepare_never_crashes_and_writes_all_or_nothing(data, suffix, redact, cols):
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        f = _write(d, "input" + suffix, data)
        out_dir = d / "out"
        code, out, err = run_ftc("data", "prepare", f, "--out-dir", out_dir, *cols, *(["--redact"] if redact else []))
        check_clean(code, out, err)
        if code != 0:
            assert err.strip(), "a failure must say why"
        check_prepare_outputs(code, out_dir)
        if code == 0 and "--json" in cols:
            json.loads(out, parse_constant=_no_constant)
        assert [p.name for p in d.iterdir() if p.name not in {"input" + suffix, "out"}] == []


# --------------------------------------------------------------------------- spec check


@FUZZ
@given(data=spec_bytes, as_json=st.booleans())
@example(data=b"name: x\ndata: {train: a}\nhyperparameters: {epochs: " + b"9" * 5000 + b"}\n", as_json=False)
@example(data=b"name: x\ndata: {train: a}\nbudget_usd: .nan\n", as_json=True)
@example(data=b"name: x\ndata: {train: 2026-13-45}\n", as_json=False)
@example(data=b"[" * 3000 + b"]" * 3000, as_json=False)
def test_spec_check_never_crashes(data, as_json):
    with tempfile.TemporaryDirectory() as d:
        f = _write(Path(d), "job.yaml", data)
        code, out, err = run_ftc("spec", "check", f, *(["--json"] if as_json else []))
        check_clean(code, out, err)
        if code != 0:
            assert err.strip(), "a failure must say why"
        elif as_json:
            json.loads(out, parse_constant=_no_constant)


# --------------------------------------------------------------------------- the real program


@pytest.mark.parametrize("args, data", [
    (["data", "validate", "{f}", "--provider", "openai"], bytes(range(256)) * 4),
    (["data", "validate", "{f}", "--provider", "local"],
     b'{"messages": [{"role": "user", "content": "\\ud800 [/x]"}, {"role": "assistant", "content": 1e999}]}\n'),
    (["data", "prepare", "{f}", "--out-dir", "{out}"], b'{"prompt": "\\udfff", "completion": "[bold]"}\n' * 4),
    (["data", "prepare", "{f}", "--out-dir", "{out}"], b"\x00\x01\x02" * 100),
    (["spec", "check", "{f}"], b"name: x\ndata: {train: a}\nhyperparameters: {epochs: " + b"9" * 5000 + b"}\n"),
    (["spec", "check", "{f}"], b"a: &a [*a, *a]\nb: &b [*a, *a]\nc: &c [*b, *b]\n"),
], ids=["validate-binary", "validate-surrogate-1e999", "prepare-surrogate-markup", "prepare-binary",
        "spec-5000-digits", "spec-aliases"])
def test_fuzz_findings_through_the_real_program(tmp_path, args, data):
    f = _write(tmp_path, "input.jsonl", data)
    out_dir = tmp_path / "out"
    exe = Path(sys.executable).with_name("ftc")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "ftclient"]
    p = subprocess.run(cmd + [a.format(f=f, out=out_dir) for a in args], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "FTC_HOME": str(tmp_path / "home")})
    check_clean(p.returncode, p.stdout, p.stderr)
    if args[1] == "prepare":
        check_prepare_outputs(p.returncode, out_dir)


# --------------------------------------------------------------------------- eval: the reply


class _ReplyServer:
    """Answers every request with the status, headers and body the test chose."""

    def __init__(self):
        owner = self
        self.status, self.body, self.ctype = 200, b"{}", "application/json"

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                body = owner.body
                try:
                    self.send_response(owner.status)
                    self.send_header("Content-Type", owner.ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass

        self.httpd = LocalHTTPServer(Handler).start()
        self.base_url = f"http://127.0.0.1:{self.httpd.port}/v1"

    def close(self):
        self.httpd.close()


@pytest.fixture(scope="module")
def reply_server():
    srv = _ReplyServer()
    yield srv
    srv.close()


def _completion(content, usage) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": usage}


usage_values = st.one_of(json_values, st.fixed_dictionaries(
    {"prompt_tokens": st.one_of(numbers, text, st.none()), "completion_tokens": st.one_of(numbers, text, st.none()),
     "total_tokens": st.one_of(numbers, st.none())}))
reply_json = st.one_of(
    json_values,
    st.builds(_completion, st.one_of(text, json_values), usage_values),
    st.fixed_dictionaries({"choices": st.one_of(json_values, st.lists(json_values, max_size=2)),
                           "usage": usage_values}),
)
reply_bodies = st.one_of(st.binary(max_size=300), reply_json.map(lambda v: _dumps(v).encode()),
                         reply_json.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")))


@FUZZ
@given(body=st.one_of(reply_bodies, reply_json), max_chars=st.sampled_from([1, 5, 64 * 1024]))
@example(body=b"\xff\xfe", max_chars=64 * 1024)
@example(body=b"[" * 100_000, max_chars=64 * 1024)
@example(body=_dumps(_completion("ok", {"prompt_tokens": 1, "completion_tokens": 1e308})).encode(), max_chars=5)
@example(body=_completion("\x1b]0;owned\x07ok\ud800", {"prompt_tokens": 10 ** 30, "completion_tokens": -1}),
         max_chars=64 * 1024)
def test_reply_parser_returns_an_answer_or_says_why_not(body, max_chars):
    """The parser behind ``ftc eval``: any body is either a clean answer with believable
    token counts or a ``BadReply`` (a failed request, never scored); nothing else."""
    from ftclient.evaluation import BadReply, parse_reply

    try:
        r = parse_reply(body, max_chars=max_chars)
    except BadReply as e:
        assert isinstance(e.reason, str) and e.reason
        e.reason.encode("utf-8")  # printable as it is
        return
    assert isinstance(r["text"], str) and len(r["text"]) <= max_chars
    r["text"].encode("utf-8")  # storable and printable: no lone surrogate
    for k in ("tokens_in", "tokens_out"):
        assert r[k] is None or (type(r[k]) is int and 0 <= r[k] <= 10 ** 9), r
    assert isinstance(r["cut"], int) and r["cut"] >= 0


@FUZZ
@given(body=reply_bodies, status=st.sampled_from([200, 200, 200, 201, 204, 400, 500]),
       ctype=st.sampled_from(["application/json", "text/html", "application/octet-stream"]))
@example(body=b"<html>502 Bad Gateway</html>", status=200, ctype="text/html")
@example(body=b'{"choices": []}', status=200, ctype="application/json")
@example(body=b'{"choices": "nope"}', status=200, ctype="application/json")
@example(body=_dumps(_completion("ok", {"prompt_tokens": 1, "completion_tokens": 1e308})).encode(), status=200,
         ctype="application/json")
@example(body=_dumps(_completion("\x1b]0;owned\x07ok", {"prompt_tokens": 10 ** 30, "completion_tokens": -1})).encode(),
         status=200, ctype="application/json")
@example(body=b'{"choices": [{"message": {"content": "\xff\xfe"}}]}', status=200, ctype="application/json")
def test_eval_reply_never_crashes(reply_server, tmp_path_factory, body, status, ctype):
    """Whatever a server answers, ``evaluate`` (what ``ftc eval`` runs) returns a summary or
    raises one of ftc's errors (exit 1 or 2); the run stays readable."""
    from ftclient.errors import FtcError
    from ftclient.evaluation import evaluate
    from ftclient.retry import RetryPolicy
    from ftclient.store import Store

    reply_server.status, reply_server.body, reply_server.ctype = status, body, ctype
    d = tmp_path_factory.mktemp("eval")
    data = d / "eval.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "ok"}]}) + "\n", encoding="utf-8")
    ref = f"openai-compatible:{reply_server.base_url}#m"
    with Store(d / "ftc.db") as store:
        try:
            s = evaluate(ref, data, store=store, fresh=True, concurrency=1,
                         policy=RetryPolicy(max_attempts=2, base=0.001, max_wait=0.002, deadline=10))
        except FtcError as e:
            assert e.exit_code in OK_CODES, (e.exit_code, e.message)
        except Exception:  # noqa: BLE001 - the point of the test
            raise Crash(f"evaluate crashed on a {status} reply {body[:200]!r} (a real run exits 70):\n"
                        f"{traceback.format_exc()}") from None
        else:
            assert s["completed"] + s["failed"] == s["examples"] == 1, s
            json.dumps(s, allow_nan=False)
        for run in store.list_eval_runs():
            store.eval_results(run.id)


def test_eval_hostile_reply_through_the_real_program(reply_server, tmp_path):
    """A 200 reply that is an HTML page: the real ``ftc eval`` ends with exit 0, 1 or 2 and no traceback."""
    reply_server.status, reply_server.body, reply_server.ctype = 200, b"<html>oops</html>", "text/html"
    data = tmp_path / "eval.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "ok"}]}) + "\n", encoding="utf-8")
    exe = Path(sys.executable).with_name("ftc")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "ftclient"]
    p = subprocess.run(cmd + ["eval", f"openai-compatible:{reply_server.base_url}#m", "--data", str(data)],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "FTC_HOME": str(tmp_path / "home"), "OPENAI_COMPATIBLE_API_KEY": "sk-x"})
    check_clean(p.returncode, p.stdout, p.stderr)
