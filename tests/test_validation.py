"""ftc data validate: every rule per provider (a failing and a passing example), line
numbers, the --json shape, exit codes, hostile input, the parallel scan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftclient.validation import validate_file


def chat(*pairs, system: str | None = "Route the ticket.", **extra) -> dict:
    msgs = [{"role": "system", "content": system}] if system else []
    for u, a in pairs:
        msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
    return {"messages": msgs, **extra}


GOOD = chat(("card not arrived", "card_arrival"))
PREF = {
    "input": {"messages": [{"role": "user", "content": "hi"}]},
    "preferred_output": [{"role": "assistant", "content": "hello"}],
    "non_preferred_output": [{"role": "assistant", "content": "go away"}],
}


def write(tmp_path: Path, lines, name: str = "train.jsonl") -> Path:
    p = tmp_path / name
    with open(p, "w", encoding="utf-8") as f:
        for x in lines:
            f.write((x if isinstance(x, str) else json.dumps(x)) + "\n")
    return p


def codes(result, line: int | None = None, warnings: bool = False) -> set[str]:
    ps = result.warnings if warnings else result.errors
    return {p.code for p in ps if line is None or p.line == line}


def check(tmp_path, provider: str, bad, *, n_good: int = 11, **kw):
    """Validate n_good good lines followed by ``bad`` on line n_good + 1."""
    good = PREF if kw.get("method") == "dpo" else GOOD
    return validate_file(write(tmp_path, [good] * n_good + [bad]), provider, **kw)


# ------------------------------------------------------------------ clean files


@pytest.mark.parametrize("provider", ["openai", "together", "local"])
def test_clean_file_passes(tmp_path, provider):
    r = validate_file(write(tmp_path, [GOOD] * 12), provider)
    assert r.ok, r.errors
    assert r.examples == 12 and r.format == "conversation"
    d = r.to_dict()
    assert d["ok"] is True and d["examples"] == 12 and d["errors"] == []


@pytest.mark.parametrize("provider", ["openai", "together", "local"])
def test_clean_preference_file_passes(tmp_path, provider):
    r = validate_file(write(tmp_path, [PREF] * 12), provider, method="dpo")
    assert r.ok, r.errors
    assert r.format == "preference"


# ------------------------------------------------------------------ shared rules, line numbers

SHARED_BAD = [
    ("not json at all", "invalid_json"),
    ('{"messages": [}', "invalid_json"),
    ("[1, 2]", "not_an_object"),
    ('"text"', "not_an_object"),
    ({"messages": "hi"}, "invalid_messages"),
    ({"messages": []}, "invalid_messages"),
    ({"messages": ["hi"]}, "invalid_message"),
    ({"messages": [{"content": "x"}, {"role": "assistant", "content": "y"}]}, "missing_role"),
    ({"messages": [{"role": "user"}, {"role": "assistant", "content": "y"}]}, "missing_content"),
    ({"messages": [{"role": "user", "content": 5}, {"role": "assistant", "content": "y"}]}, "invalid_content"),
    ({"messages": [{"role": "user", "content": "x"}]}, "no_assistant_turn"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": 2}]}, "invalid_weight"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": True}]}, "invalid_weight"),
    ({**PREF, "preferred_output": []}, "bad_preference_output"),
    ({**PREF, "preferred_output": [{"role": "user", "content": "x"}]}, "bad_preference_output"),
    ({**PREF, "non_preferred_output": [PREF["preferred_output"][0]] * 2}, "bad_preference_output"),
]


@pytest.mark.parametrize("provider", ["openai", "together", "local"])
@pytest.mark.parametrize("bad,code", SHARED_BAD, ids=[c + str(i) for i, (_, c) in enumerate(SHARED_BAD)])
def test_shared_rules_fail_on_the_right_line(tmp_path, provider, bad, code):
    method = "dpo" if isinstance(bad, dict) and "input" in bad else None
    r = check(tmp_path, provider, bad, method=method)
    assert not r.ok
    assert code in codes(r, line=12), r.errors
    assert all(p.line == 12 for p in r.errors), r.errors


# ------------------------------------------------------------------ OpenAI

OPENAI_BAD = [
    ({"messages": [{"role": "developer", "content": "x"}, {"role": "assistant", "content": "y"}]}, "invalid_role"),
    ({"messages": [{"role": "bot", "content": "x"}, {"role": "assistant", "content": "y"}]}, "invalid_role"),
    ({"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "y"}]}, "empty_content"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "   "}]}, "empty_content"),
    ({"messages": [{"role": "user", "content": "x", "weight": 1}, {"role": "assistant", "content": "y"}]}, "invalid_weight"),
    ({"messages": [{"role": "user", "content": "x", "name": 3}, {"role": "assistant", "content": "y"}]}, "invalid_name"),
    ({"messages": [{"role": "user", "content": "x", "mood": "ok"}, {"role": "assistant", "content": "y"}]}, "unknown_key"),
    ({**GOOD, "meta": 1}, "unknown_key"),
    ({"prompt": "x", "completion": "y"}, "wrong_format"),
    ({"text": "x"}, "missing_messages"),
    ({**GOOD, "input": {}}, "ambiguous_format"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{bad"}}]}]}, "bad_tool_call"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}, "bad_tool_call"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "c", "type": "fn", "function": {"name": "f", "arguments": "{}"}}]}]}, "bad_tool_call"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": {}}}]}]}, "bad_tool_call"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}, {"role": "assistant", "content": "y"}]}, "bad_tool_call"),
    ({**GOOD, "tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "bad_tool"),
    ({**GOOD, "tools": {"type": "function"}}, "bad_tool"),
    ({**GOOD, "parallel_tool_calls": "yes"}, "bad_tool"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}, {"role": "assistant", "content": "y"}]}, "invalid_content"),
    ({"messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}, {"role": "assistant", "content": "y"}]}, "invalid_content"),
    ({"input": {"messages": [{"role": "user", "content": "x"}]}, "preferred_output": [{"role": "assistant", "content": "a"}]}, "missing_field"),
]


@pytest.mark.parametrize("bad,code", OPENAI_BAD, ids=[c + str(i) for i, (_, c) in enumerate(OPENAI_BAD)])
def test_openai_rules(tmp_path, bad, code):
    r = check(tmp_path, "openai", bad)
    assert code in codes(r, line=12), r.errors


OPENAI_GOOD = [
    chat(("x", "y"), system=None),
    {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": 0}, {"role": "user", "content": "z"}, {"role": "assistant", "content": "w", "weight": 1}]},
    {"messages": [{"role": "user", "content": "x", "name": "ann"}, {"role": "assistant", "content": "y"}]},
    {"messages": [{"role": "user", "content": "weather?"},
                  {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
                  {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                  {"role": "assistant", "content": "It is sunny."}],
     "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d", "parameters": {"type": "object"}}}],
     "parallel_tool_calls": False},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}, {"role": "assistant", "content": "a cat"}]},
    {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}}, {"role": "function", "name": "f", "content": "r"}, {"role": "assistant", "content": "done"}]},
]


@pytest.mark.parametrize("good", OPENAI_GOOD)
def test_openai_accepts(tmp_path, good):
    r = check(tmp_path, "openai", good)
    assert r.ok, r.errors


def test_openai_too_few_examples(tmp_path):
    r = validate_file(write(tmp_path, [GOOD] * 9), "openai")
    assert codes(r) == {"too_few_examples"}
    assert r.errors[0].line == 0
    assert validate_file(write(tmp_path, [GOOD] * 10), "openai").ok


def test_openai_legacy_completion_models_take_prompt_completion(tmp_path):
    p = write(tmp_path, [{"prompt": "x", "completion": " y"}] * 10)
    assert validate_file(p, "openai", model="babbage-002").ok
    assert "wrong_format" in codes(validate_file(p, "openai"))


def test_openai_too_many_tokens_is_a_truncation_warning(tmp_path):
    # OpenAI truncates an example over the limit, it does not refuse the file
    # (tests/test_validation_provider_rules.py has the provider's own wording).
    long = chat(("word " * 400, "ok"))
    r = validate_file(write(tmp_path, [GOOD] * 10 + [long]), "openai", max_seq_len=100)
    assert r.ok and r.errors == []
    assert [(p.line, p.code) for p in r.warnings] == [(11, "too_many_tokens")]
    assert r.tokens.exact and r.tokens.over_limit == 1 and r.tokens.counted == 11
    dropped = r.tokens.max - 100
    assert r.tokens.over_limit_tokens == dropped > 0
    assert f"last {dropped:,} tokens will be dropped" in r.warnings[0].message


def test_openai_limit_comes_from_the_catalogue(tmp_path):
    r = validate_file(write(tmp_path, [GOOD] * 10), "openai")
    assert r.ok
    if r.tokens.limit is None:
        pytest.skip("the price catalogue gives no limit for gpt-4.1-mini")
    assert r.tokens.limit > 1000 and "catalogue" in r.tokens.limit_source


# ------------------------------------------------------------------ Together

TOGETHER_BAD = [
    ({"messages": [{"role": "developer", "content": "x"}, {"role": "assistant", "content": "y"}]}, "invalid_role"),
    ({"messages": [{"role": "function", "content": "x"}, {"role": "assistant", "content": "y"}]}, "invalid_role"),
    ({"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]}, "bad_turn_order"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}, "bad_turn_order"),
    ({"text": "x", "messages": GOOD["messages"]}, "ambiguous_format"),
    ({"foo": "bar"}, "unknown_format"),
    ({"prompt": "x"}, "missing_field"),
    ({"text": 5}, "invalid_field_type"),
    ({"prompt": "x", "completion": 5}, "invalid_field_type"),
    ({"prompt": "x", "completion": ["y"]}, "invalid_content"),
    ({**PREF, "input": []}, "invalid_field_type"),
    ({**PREF, "input": {"msgs": []}}, "missing_messages"),
    ({**GOOD, "tools": [{"type": "function", "function": {}}]}, "bad_tool"),
]


@pytest.mark.parametrize("bad,code", TOGETHER_BAD, ids=[c + str(i) for i, (_, c) in enumerate(TOGETHER_BAD)])
def test_together_rules(tmp_path, bad, code):
    r = check(tmp_path, "together", bad)
    assert code in codes(r, line=12), r.errors


TOGETHER_GOOD = [
    {"text": "a plain text example"},
    {"prompt": "2+2=", "completion": "4"},
    {"messages": [{"role": "user", "content": "x", "weight": 0}, {"role": "assistant", "content": "y", "weight": 1}]},
    {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "tools": [{"type": "function", "function": {"name": "f"}}]},
]


@pytest.mark.parametrize("good", TOGETHER_GOOD)
def test_together_accepts_each_format(tmp_path, good):
    r = validate_file(write(tmp_path, [good] * 3), "together")
    assert r.ok, r.errors


def test_together_mixed_formats_and_method(tmp_path):
    p = write(tmp_path, [GOOD, GOOD, {"text": "x"}, GOOD])
    r = validate_file(p, "together")
    assert [(e.line, e.code) for e in r.errors] == [(3, "mixed_formats")]
    r = validate_file(write(tmp_path, [GOOD, GOOD]), "together", method="dpo")
    assert codes(r) == {"wrong_format"}


def test_together_unknown_field_is_a_warning(tmp_path):
    r = validate_file(write(tmp_path, [{**GOOD, "id": 7}]), "together")
    assert r.ok and codes(r, warnings=True) == {"unknown_key"}


def test_together_minimum_one_sample_and_extension(tmp_path):
    r = validate_file(write(tmp_path, [GOOD]), "together")
    assert r.ok
    r = validate_file(write(tmp_path, [GOOD], name="train.json"), "together")
    assert codes(r) == {"bad_extension"}
    r = validate_file(write(tmp_path, [""]), "together")
    assert "too_few_examples" in codes(r)


# ------------------------------------------------------------------ hostile input


@pytest.mark.parametrize("provider", ["openai", "together", "local"])
def test_empty_file(tmp_path, provider):
    p = tmp_path / "e.jsonl"
    p.write_bytes(b"")
    r = validate_file(p, provider)
    assert not r.ok and "empty_file" in codes(r)


def test_binary_file(tmp_path):
    p = tmp_path / "b.jsonl"
    p.write_bytes(bytes(range(256)) * 100)
    r = validate_file(p, "together")
    assert codes(r) == {"binary_file"}


def test_non_utf8_line_is_reported_and_checking_goes_on(tmp_path):
    p = tmp_path / "latin.jsonl"
    p.write_bytes(json.dumps(GOOD).encode() + b"\n" + '{"text": "caf\xe9"}'.encode("latin-1") + b"\n" + b"nope\n")
    r = validate_file(p, "together")
    assert [(e.line, e.code) for e in r.errors] == [(2, "not_utf8"), (3, "invalid_json")]


def test_bom(tmp_path):
    p = tmp_path / "bom.jsonl"
    p.write_bytes(b"\xef\xbb\xbf" + (json.dumps(GOOD) + "\n").encode() * 10)
    r = validate_file(p, "together")
    assert codes(r) == {"bom"} and r.examples == 10
    r = validate_file(p, "openai")
    assert r.ok and codes(r, warnings=True) == {"bom"}


def test_utf16_file(tmp_path):
    p = tmp_path / "u16.jsonl"
    p.write_text((json.dumps(GOOD) + "\n") * 10, encoding="utf-16")
    r = validate_file(p, "openai")
    assert codes(r) == {"not_utf8"} and r.examples == 10
    assert validate_file(p, "local").ok


def test_huge_line_is_skipped_not_loaded(tmp_path, monkeypatch):
    from ftclient.validation import engine

    monkeypatch.setattr(engine, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(engine, "BLOCK", 256)
    p = write(tmp_path, [GOOD, '{"text": "' + "x" * 5000 + '"}', GOOD, '{"text": "' + "y" * 5000])
    r = validate_file(p, "local")
    assert [(e.line, e.code) for e in r.errors] == [(2, "line_too_long"), (4, "line_too_long")]
    assert r.lines == 4 and r.examples == 4


def test_blank_lines_and_crlf(tmp_path):
    p = tmp_path / "crlf.jsonl"
    p.write_bytes(b"\r\n".join([json.dumps(GOOD).encode()] * 3 + [b"", b"  ", json.dumps(GOOD).encode()]) + b"\r\n")
    r = validate_file(p, "together")
    assert r.ok and r.examples == 4 and r.blank_lines == 2
    assert [w.line for w in r.warnings] == [4, 5]


def test_no_final_newline_and_deep_nesting(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps(GOOD) + "\n" + "[" * 100000 + "]" * 100000)
    r = validate_file(p, "together")
    assert [(e.line, e.code) for e in r.errors] == [(2, "invalid_json")]


def test_error_cap_keeps_counts(tmp_path):
    p = write(tmp_path, ["nope"] * 1500)
    r = validate_file(p, "together")
    assert len(r.errors) == 1000 and r.error_counts["invalid_json"] == 1500
    assert r.to_dict()["errors_not_shown"] == 500


def test_usage_errors():
    from ftclient.errors import UsageError

    with pytest.raises(UsageError):
        validate_file("/no/such/file.jsonl", "together")
    with pytest.raises(UsageError):
        validate_file(__file__, "anthropic")
    with pytest.raises(UsageError):
        validate_file(__file__, "openai", method="rlhf")


# ------------------------------------------------------------------ parallel scan


def test_parallel_scan_matches_sequential(tmp_path, monkeypatch):
    from ftclient.validation import engine

    monkeypatch.setattr(engine, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(engine, "MIN_CHUNK_BYTES", 1)
    lines = []
    for i in range(3000):
        if i % 97 == 5:
            lines.append("{oops")
        elif i % 131 == 7:
            lines.append({"messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]})
        elif i == 2500:
            lines.append({"text": "other format"})
        elif i % 211 == 3:
            lines.append("")
        else:
            lines.append(GOOD)
    p = write(tmp_path, lines)
    seq = validate_file(p, "together", workers=1).to_dict()
    par = validate_file(p, "together", workers=3).to_dict()
    assert par == seq
    assert {e["line"] for e in seq["errors"] if e["code"] == "mixed_formats"} == {2501}


# ------------------------------------------------------------------ CLI


def test_cli_json_shape_and_exit_codes(tmp_path, ftc):
    good = write(tmp_path, [GOOD] * 12, "good.jsonl")
    bad = write(tmp_path, [GOOD] * 12 + ["{", {"messages": [{"role": "bot", "content": "x"}]}], "bad.jsonl")
    r = ftc("data", "validate", good, "--provider", "together", "--json")
    assert r.code == 0
    d = r.json()
    assert d["ok"] is True and d["examples"] == 12 and d["errors"] == []
    r = ftc("data", "validate", bad, "--provider", "openai", "--json")
    assert r.code == 1
    d = r.json()
    assert {"ok", "examples", "errors"} <= d.keys() and d["ok"] is False and d["examples"] == 14
    assert all(set(e) == {"line", "code", "message"} for e in d["errors"])
    assert (13, "invalid_json") in {(e["line"], e["code"]) for e in d["errors"]}
    assert (14, "invalid_role") in {(e["line"], e["code"]) for e in d["errors"]}
    r = ftc("data", "validate", bad, "--provider", "together")
    assert r.code == 1 and "invalid_json" in r.out and "13" in r.out


def test_cli_usage_errors_exit_2_without_traceback(tmp_path, ftc_proc):
    good = write(tmp_path, [GOOD] * 12)
    for args in (
        ["data", "validate", tmp_path / "missing.jsonl", "--provider", "openai"],
        ["data", "validate", good, "--provider", "anthropic"],
        ["data", "validate", good],
        ["data", "validate", good, "--provider", "openai", "--method", "rl"],
        ["data", "validate", good, "--provider", "local", "--model", tmp_path / "no-model"],
    ):
        r = ftc_proc(*args)
        assert r.code == 2, (args, r.err)
        assert "Traceback" not in r.err


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02" * 100, b"\xff\xfe\xfa\n", b"[" * 10000 + b"\n"])
def test_cli_bad_input_exit_1_without_traceback(tmp_path, ftc_proc, content):
    p = tmp_path / "x.jsonl"
    p.write_bytes(content)
    r = ftc_proc("data", "validate", p, "--provider", "together", "--json")
    assert r.code == 1 and "Traceback" not in r.err
    assert json.loads(r.out)["ok"] is False
