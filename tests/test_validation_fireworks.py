"""Fireworks' fine-tuning data rules (``ftc data validate --provider fireworks``).

The rules are those of Fireworks' documentation, cited in providers/fireworks/validation.py:
"Supervised Fine-Tuning - Text" (docs.fireworks.ai/fine-tuning/fine-tuning-models),
"Direct Preference Optimization" (docs.fireworks.ai/fine-tuning/dpo-fine-tuning) and
"Fine-tuning via API". The good examples below are the pages' own examples. Each bad case
breaks one rule on line 2 of a file whose other lines are good, and must be reported with its
code on that line and nowhere else.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftclient.providers.fireworks.validation import MAX_EXAMPLES, MIN_EXAMPLES, FireworksChecker
from ftclient.validation import validate_file


@pytest.fixture(scope="module", autouse=True)
def fireworks_backend():
    """The installed Fireworks backend where it loads; else a stand-in that hands the registry
    the same checker (registered for this module only)."""
    from ftclient.backends import offers, register_backend, unregister_backend

    if offers("fireworks", "data_checker"):
        yield
        return

    class _Fireworks:
        name = "fireworks"
        data_checker = staticmethod(lambda model, method: FireworksChecker(model, method))

    register_backend("fireworks", _Fireworks, replace=True)
    try:
        yield
    finally:
        unregister_backend("fireworks")


def write(tmp_path: Path, recs, name: str = "train.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in recs), encoding="utf-8")
    return p


def errors(r) -> set[tuple[int, str]]:
    return {(p.line, p.code) for p in r.errors}


def warnings(r) -> set[tuple[int, str]]:
    return {(p.line, p.code) for p in r.warnings}


def msg(role: str, content="hi", **kw) -> dict:
    return {"role": role, "content": content, **kw}


# ---------------------------------------------------------------- the pages' own examples

SFT = {"messages": [msg("system", "You are a helpful assistant."), msg("user", "What is the capital of France?"),
                    msg("assistant", "Paris.")]}
SFT_WEIGHTED_TURN = {"messages": [msg("user", "What is 1+1?"), msg("assistant", "2", weight=0),
                                  msg("user", "Now what is 2+2?"), msg("assistant", "4")]}
SFT_PARTS = {"messages": [msg("system", "You are a helpful assistant."),
                          msg("user", [{"type": "text", "text": "What is 1+1?"}]),
                          msg("assistant", [{"type": "text", "text": "2"}], weight=0),
                          msg("user", "Now what is 2+2?"), msg("assistant", "4")]}
SFT_TOOLS = {
    "tools": [{"type": "function", "function": {
        "name": "get_car_specs",
        "description": "Fetches detailed specifications for a car based on the given trim ID.",
        "parameters": {"trimid": {"description": "The trim ID of the car.", "type": "int", "default": ""}}}}],
    "messages": [msg("user", "What is the specs of the car with trim 121?"),
                 {"role": "assistant", "tool_calls": [{"type": "function", "function": {
                     "name": "get_car_specs", "arguments": "{\"trimid\": 121}"}}]}],
}
SFT_THINKING = {"messages": [msg("user", "What is 1+1?"),
                             msg("assistant", "2", weight=0, reasoning_content="1+1 is 2."),
                             msg("user", "Now what is 2+2?"),
                             msg("assistant", "4", reasoning_content="2+2 should be 4.")]}
SFT_VISION = {"messages": [msg("user", [{"type": "text", "text": "What is shown?"},
                                        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}}]),
                           msg("assistant", [{"type": "text", "text": "A red bicycle."}])]}
# OpenAI's function-calling format (a tool result as a `tool` message), which the SFT page
# says works on Fireworks unchanged.
SFT_TOOL_RESULT = {"messages": [
    msg("user", "Weather in Paris?"),
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
    msg("assistant", "18 degrees."),
]}
DPO = {"input": {"messages": [msg("user", "What is Einstein famous for?")], "tools": []},
       "preferred_output": [msg("assistant", "Einstein is renowned for his theory of relativity.")],
       "non_preferred_output": [msg("assistant", "He was a famous scientist.")]}
DPO_SYSTEM = {"input": {"messages": [msg("system", "Be precise."), msg("user", "2+2?")]},
              "preferred_output": [msg("assistant", "4")], "non_preferred_output": [msg("assistant", "5")]}

GOOD_SFT = {"plain": SFT, "turn_weight": SFT_WEIGHTED_TURN, "content_parts": SFT_PARTS, "tools": SFT_TOOLS,
            "thinking": SFT_THINKING, "vision": SFT_VISION, "tool_result": SFT_TOOL_RESULT}


@pytest.mark.parametrize("name", sorted(GOOD_SFT))
def test_documented_sft_examples_pass(tmp_path, name):
    p = write(tmp_path, [GOOD_SFT[name]] * 3)
    r = validate_file(p, "fireworks", method="sft")
    assert r.ok, r.errors
    assert r.warnings == []
    assert r.examples == 3 and r.format == "conversation" and r.formats == {"conversation": 3}


def test_a_file_of_every_documented_sft_shape_passes(tmp_path):
    p = write(tmp_path, list(GOOD_SFT.values()))
    r = validate_file(p, "fireworks")
    assert r.ok and r.warnings == [], (r.errors, r.warnings)
    assert r.formats == {"conversation": len(GOOD_SFT)}


@pytest.mark.parametrize("rec", [DPO, DPO_SYSTEM], ids=["einstein", "system"])
def test_documented_dpo_examples_pass(tmp_path, rec):
    p = write(tmp_path, [rec] * 3)
    r = validate_file(p, "fireworks", method="dpo")
    assert r.ok, r.errors
    assert r.warnings == []
    assert r.format == "preference" and r.formats == {"preference": 3}


# ---------------------------------------------------------------- one broken rule per case


def call(fn=None, **kw) -> dict:
    return {"role": "assistant", "tool_calls": [{"type": "function", "function": fn or {"name": "f", "arguments": "{}"}, **kw}]}


SFT_BAD = {
    # "Each training sample must include a messages array"
    "no_messages": ({"prompt": "a", "completion": "b"}, "missing_messages"),
    "messages_not_a_list": ({"messages": "hello"}, "invalid_messages"),
    "messages_empty": ({"messages": []}, "invalid_messages"),
    "message_not_an_object": ({"messages": ["hello", msg("assistant")]}, "invalid_message"),
    # "role: one of system, user, or assistant"
    "no_role": ({"messages": [{"content": "x"}, msg("assistant")]}, "missing_role"),
    "developer_role": ({"messages": [msg("developer"), msg("user"), msg("assistant")]}, "invalid_role"),
    "function_role": ({"messages": [msg("user"), msg("function", name="f"), msg("assistant")]}, "invalid_role"),
    "role_not_a_string": ({"messages": [msg(["user"]), msg("assistant")]}, "invalid_role"),
    # "A message with the system role is optional, but if specified, it must be the first message"
    "system_second": ({"messages": [msg("user"), msg("system"), msg("assistant")]}, "bad_turn_order"),
    "system_last": ({"messages": [msg("user"), msg("assistant"), msg("system")]}, "bad_turn_order"),
    # ftc's choice (as OpenAI and Together): something to train on
    "no_assistant": ({"messages": [msg("system"), msg("user")]}, "no_assistant_turn"),
    # "weight: optional key with value ... either 0 or 1"
    "turn_weight_2": ({"messages": [msg("user"), msg("assistant", weight=2)]}, "invalid_weight"),
    "turn_weight_string": ({"messages": [msg("user"), msg("assistant", weight="1")]}, "invalid_weight"),
    "turn_weight_true": ({"messages": [msg("user"), msg("assistant", weight=True)]}, "invalid_weight"),
    "turn_weight_half": ({"messages": [msg("user", weight=0.5), msg("assistant")]}, "invalid_weight"),
    # content
    "user_without_content": ({"messages": [{"role": "user"}, msg("assistant")]}, "missing_content"),
    "assistant_without_content_or_calls": ({"messages": [msg("user"), {"role": "assistant"}]}, "missing_content"),
    "content_a_number": ({"messages": [msg("user", 5), msg("assistant")]}, "invalid_content"),
    "content_an_object": ({"messages": [msg("user", {"text": "x"}), msg("assistant")]}, "invalid_content"),
    "audio_part": ({"messages": [msg("user", [{"type": "input_audio", "input_audio": {}}]), msg("assistant")]}, "invalid_content"),
    "text_part_not_a_string": ({"messages": [msg("user", [{"type": "text", "text": 5}]), msg("assistant")]}, "invalid_content"),
    "image_url_not_an_object": ({"messages": [msg("user", [{"type": "image_url", "image_url": "data:image/png;base64,AA=="}]),
                                              msg("assistant")]}, "invalid_content"),
    # "Images must be base64 data URIs with a MIME type; raw HTTP image URLs are not supported"
    "image_https_url": ({"messages": [msg("user", [{"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}}]),
                                      msg("assistant")]}, "bad_image"),
    "image_no_mime": ({"messages": [msg("user", [{"type": "image_url", "image_url": {"url": "iVBORw0KGgo="}}]),
                                    msg("assistant")]}, "bad_image"),
    # thinking traces: reasoning_content is text
    "reasoning_not_a_string": ({"messages": [msg("user"), msg("assistant", reasoning_content=["think"])]}, "invalid_content"),
    # function calling
    "tool_calls_on_user": ({"messages": [msg("user", tool_calls=[]), msg("assistant")]}, "bad_tool_call"),
    "tool_calls_empty": ({"messages": [msg("user"), {"role": "assistant", "content": "x", "tool_calls": []}]}, "bad_tool_call"),
    "arguments_not_json": ({"messages": [msg("user"), call({"name": "f", "arguments": "{oops"})]}, "bad_tool_call"),
    "arguments_an_object": ({"messages": [msg("user"), call({"name": "f", "arguments": {"a": 1}})]}, "bad_tool_call"),
    "call_without_name": ({"messages": [msg("user"), call({"arguments": "{}"})]}, "bad_tool_call"),
    "call_type_not_function": ({"messages": [msg("user"), call(type="web")]}, "bad_tool_call"),
    "call_id_empty": ({"messages": [msg("user"), call(id="")]}, "bad_tool_call"),
    "tool_call_id_a_number": ({"messages": [msg("user"), call(), msg("tool", "r", tool_call_id=7), msg("assistant")]}, "bad_tool_call"),
    "tools_not_a_list": ({"tools": {"type": "function"}, "messages": [msg("user"), msg("assistant")]}, "bad_tool"),
    "tool_bad_name": ({"tools": [{"type": "function", "function": {"name": "has space"}}], "messages": [msg("user"), msg("assistant")]}, "bad_tool"),
    "tool_not_function": ({"tools": [{"type": "retrieval"}], "messages": [msg("user"), msg("assistant")]}, "bad_tool"),
    "name_not_a_string": ({"messages": [msg("user", name=3), msg("assistant")]}, "invalid_name"),
    # "Sample weight: ... any floating point number"
    "sample_weight_string": ({**SFT, "weight": "0.5"}, "invalid_weight"),
    "sample_weight_true": ({**SFT, "weight": True}, "invalid_weight"),
    "sample_weight_null": ({**SFT, "weight": None}, "invalid_weight"),
    # two formats on one line
    "messages_and_preference": ({**SFT, **DPO}, "ambiguous_format"),
}


@pytest.mark.parametrize("name", sorted(SFT_BAD))
def test_each_broken_sft_rule_is_an_error_on_its_line(tmp_path, name):
    rec, code = SFT_BAD[name]
    p = write(tmp_path, [SFT, rec, SFT, SFT])
    r = validate_file(p, "fireworks")
    assert not r.ok
    assert (2, code) in errors(r), r.errors
    assert {ln for ln, _ in errors(r)} == {2}, r.errors
    # The sample-weight cases are errors only because line 1 has none: the same lines with
    # a sample weight also on the others fail on invalid_weight alone (below).


SFT_WARNINGS = {
    # Fireworks documents no refusal of other fields: ftc warns that they are ignored
    "unknown_top_level_key": ({**SFT, "id": 7}, "unknown_key"),
    "unknown_message_key": ({"messages": [msg("user", meta={"a": 1}), msg("assistant")]}, "unknown_key"),
    "reasoning_on_a_user_message": ({"messages": [msg("user", reasoning_content="hm"), msg("assistant")]}, "unknown_key"),
    "blank_content": ({"messages": [msg("user", "  "), msg("assistant")]}, "empty_content"),
    "empty_parts": ({"messages": [msg("user", []), msg("assistant")]}, "empty_content"),
    "all_turns_weight_0": ({"messages": [msg("user"), msg("assistant", weight=0)]}, "no_trained_turn"),
}


@pytest.mark.parametrize("name", sorted(SFT_WARNINGS))
def test_sft_warnings_on_their_line_and_strict_makes_them_errors(tmp_path, name):
    rec, code = SFT_WARNINGS[name]
    p = write(tmp_path, [SFT, rec, SFT])
    r = validate_file(p, "fireworks")
    assert r.ok, r.errors
    assert warnings(r) == {(2, code)}
    r = validate_file(p, "fireworks", strict=True)
    assert not r.ok and (2, code) in errors(r)


def dpo(**over) -> dict:
    rec = json.loads(json.dumps(DPO))
    for k, v in over.items():
        if v is None:
            rec.pop(k)
        else:
            rec[k] = v
    return rec


def dpo_input(*messages, **extra) -> dict:
    return dpo(input={"messages": list(messages), **extra})


DPO_BAD = {
    # "Each training sample must include the following fields: input, preferred_output, non_preferred_output"
    "no_preferred_output": (dpo(preferred_output=None), "missing_field"),
    "no_non_preferred_output": (dpo(non_preferred_output=None), "missing_field"),
    "no_input": (dpo(input=None), "missing_field"),
    "input_a_list": (dpo(input=[msg("user")]), "invalid_field_type"),
    "input_without_messages": (dpo(input={"tools": []}), "missing_messages"),
    "input_messages_empty": (dpo_input(), "invalid_messages"),
    # "... containing an assistant message" (a list of one, as in the page's example)
    "preferred_not_a_list": (dpo(preferred_output=msg("assistant")), "bad_preference_output"),
    "preferred_two_messages": (dpo(preferred_output=[msg("assistant"), msg("assistant")]), "bad_preference_output"),
    "preferred_empty": (dpo(preferred_output=[]), "bad_preference_output"),
    "non_preferred_from_user": (dpo(non_preferred_output=[msg("user")]), "bad_preference_output"),
    "preferred_without_content": (dpo(preferred_output=[{"role": "assistant"}]), "missing_content"),
    # "role: one of system, user, or assistant"; "content: a string"
    "tool_role_in_input": (dpo_input(msg("user"), msg("tool", tool_call_id="c")), "invalid_role"),
    "developer_in_input": (dpo_input(msg("developer"), msg("user")), "invalid_role"),
    "parts_in_input": (dpo_input(msg("user", [{"type": "text", "text": "x"}])), "invalid_content"),
    "parts_in_output": (dpo(preferred_output=[msg("assistant", [{"type": "text", "text": "x"}])]), "invalid_content"),
    "system_not_first": (dpo_input(msg("user"), msg("system")), "bad_turn_order"),
    # "We currently only support one-turn conversations ... the preferred and non-preferred
    # messages need to be the last assistant message"
    "multi_turn_input": (dpo_input(msg("user"), msg("assistant"), msg("user")), "multi_turn_preference"),
    "input_ends_with_assistant": (dpo_input(msg("user"), msg("assistant")), "multi_turn_preference"),
    "input_only_system": (dpo_input(msg("system")), "bad_turn_order"),
    "input_bad_tools": (dpo_input(msg("user"), tools="get_weather"), "bad_tool"),
    "output_weight_7": (dpo(preferred_output=[msg("assistant", weight=7)]), "invalid_weight"),
}


@pytest.mark.parametrize("name", sorted(DPO_BAD))
def test_each_broken_dpo_rule_is_an_error_on_its_line(tmp_path, name):
    rec, code = DPO_BAD[name]
    p = write(tmp_path, [DPO, rec, DPO, DPO])
    r = validate_file(p, "fireworks", method="dpo")
    assert not r.ok
    assert (2, code) in errors(r), r.errors
    assert {ln for ln, _ in errors(r)} == {2}, r.errors


def test_dpo_unknown_fields_are_warnings(tmp_path):
    p = write(tmp_path, [DPO, dpo(score=1), dpo_input(msg("user"), meta=1), DPO])
    r = validate_file(p, "fireworks", method="dpo")
    assert r.ok, r.errors
    assert warnings(r) == {(2, "unknown_key"), (3, "unknown_key")}


# ---------------------------------------------------------------- the sample weight


def weighted(w) -> dict:
    return {**SFT, "weight": w}


def test_sample_weights_of_any_number_pass(tmp_path):
    # "It can be any floating point number (positive, negative, or 0)"
    p = write(tmp_path, [weighted(0.5), weighted(1.0), weighted(-2), weighted(0), {**SFT_TOOLS, "weight": 3}])
    r = validate_file(p, "fireworks")
    assert r.ok and r.warnings == [], (r.errors, r.warnings)


def test_a_sample_weight_missing_on_a_later_example_is_an_error(tmp_path):
    # "If used, this field must be present in all samples in the dataset."
    p = write(tmp_path, [weighted(0.5), weighted(1.0), SFT, SFT_TOOLS, weighted(2.0)])
    r = validate_file(p, "fireworks")
    assert errors(r) == {(3, "inconsistent_sample_weight"), (4, "inconsistent_sample_weight")}
    assert "first example has one" in r.errors[0].message


def test_a_sample_weight_on_a_later_example_only_is_an_error(tmp_path):
    p = write(tmp_path, [SFT, SFT, weighted(0.5), {**SFT_TOOLS, "weight": 1}, SFT])
    r = validate_file(p, "fireworks")
    assert errors(r) == {(3, "inconsistent_sample_weight"), (4, "inconsistent_sample_weight")}


def test_an_invalid_sample_weight_is_still_a_sample_weight(tmp_path):
    p = write(tmp_path, [weighted(1), weighted("heavy"), weighted(1)])
    r = validate_file(p, "fireworks")
    assert errors(r) == {(2, "invalid_weight")}


def test_the_sample_weight_rule_holds_across_the_workers_of_a_large_file(tmp_path):
    """Files over 8 MiB are checked in forked workers, one chunk each: the first example's
    sample weight (found before the split) is the reference of every chunk, also of a chunk
    whose own first example has none."""
    weighted_line = json.dumps(weighted(0.5)) + "\n"
    n = (9 * 1024 * 1024) // len(weighted_line) + 1
    k = n // 3  # the first third weighted, the rest not: the later chunks start unweighted
    p = tmp_path / "big.jsonl"
    p.write_text(weighted_line * k + (json.dumps(SFT) + "\n") * (n - k), encoding="utf-8")
    assert p.stat().st_size > 8 * 1024 * 1024
    r = validate_file(p, "fireworks", workers=2)
    assert r.examples == n
    assert r.error_counts == {"inconsistent_sample_weight": n - k}
    assert r.errors[0].line == k + 1
    one = validate_file(p, "fireworks", workers=1)
    assert one.error_counts == r.error_counts and errors(one) == errors(r)


# ---------------------------------------------------------------- formats and methods


def test_sft_lines_for_a_dpo_job_are_the_wrong_format(tmp_path):
    p = write(tmp_path, [SFT] * 3)
    r = validate_file(p, "fireworks", method="dpo")
    assert errors(r) == {(1, "wrong_format"), (2, "wrong_format"), (3, "wrong_format")}


def test_dpo_lines_for_an_sft_job_are_the_wrong_format(tmp_path):
    p = write(tmp_path, [DPO] * 3)
    r = validate_file(p, "fireworks", method="sft")
    assert errors(r) == {(1, "wrong_format"), (2, "wrong_format"), (3, "wrong_format")}
    assert validate_file(p, "fireworks").ok  # without --method the format decides


def test_a_dpo_line_in_an_sft_file_is_blamed_as_mixed(tmp_path):
    p = write(tmp_path, [SFT, SFT, DPO, SFT])
    r = validate_file(p, "fireworks")
    assert errors(r) == {(3, "mixed_formats")}


def test_a_line_of_no_format_under_dpo_names_the_dpo_fields(tmp_path):
    p = write(tmp_path, [DPO, {"prompt": "a", "chosen": "b", "rejected": "c"}, DPO])
    r = validate_file(p, "fireworks", method="dpo")
    assert errors(r) == {(2, "missing_field")}
    assert "preferred_output" in r.errors[0].message


def test_the_checker_maps_methods_to_formats():
    c = FireworksChecker("llama-v3p1-8b-instruct", "sft")
    assert c.formats_for_method == {"sft": {"conversation"}, "dpo": {"preference"}}
    assert (c.provider, c.display, c.model, c.method) == ("fireworks", "Fireworks", "llama-v3p1-8b-instruct", "sft")
    assert not c.takes_parquet


# ---------------------------------------------------------------- the file


def test_fewer_than_three_examples_is_an_error(tmp_path):
    # "Minimum examples: 3"
    assert MIN_EXAMPLES == 3
    r = validate_file(write(tmp_path, [SFT, SFT]), "fireworks")
    assert errors(r) == {(0, "too_few_examples")}
    r = validate_file(write(tmp_path, [SFT, "", SFT]), "fireworks")  # a blank line is no example
    assert errors(r) == {(0, "too_few_examples")} and warnings(r) == {(2, "blank_line")}
    assert validate_file(write(tmp_path, [SFT] * 3), "fireworks").ok
    r = validate_file(write(tmp_path, [DPO, DPO]), "fireworks", method="dpo")
    assert errors(r) == {(0, "too_few_examples")}


def test_more_examples_than_fireworks_takes_is_an_error(tmp_path, monkeypatch):
    # "Maximum examples: 3 million per dataset"; checked at a lower bound to keep the file small
    assert MAX_EXAMPLES == 3_000_000 and FireworksChecker.max_examples == MAX_EXAMPLES
    monkeypatch.setattr(FireworksChecker, "max_examples", 4)
    assert validate_file(write(tmp_path, [SFT] * 4), "fireworks").ok
    r = validate_file(write(tmp_path, [SFT] * 5), "fireworks")
    assert errors(r) == {(0, "too_many_examples")}
    assert "at most 4" in r.errors[0].message


def test_other_providers_have_no_maximum(tmp_path):
    r = validate_file(write(tmp_path, [SFT] * 12), "openai")
    assert "too_many_examples" not in r.error_counts


@pytest.mark.parametrize("name", ["train.json", "train.txt", "train"])
def test_a_file_not_named_jsonl_is_an_error(tmp_path, name):
    # "File format: .jsonl"; the SDK's upload helper refuses any other extension
    r = validate_file(write(tmp_path, [SFT] * 3, name), "fireworks")
    assert errors(r) == {(0, "bad_extension")}


def test_an_uppercase_extension_is_a_warning(tmp_path):
    r = validate_file(write(tmp_path, [SFT] * 3, "train.JSONL"), "fireworks")
    assert r.ok and warnings(r) == {(0, "bad_extension")}


def test_a_parquet_file_is_refused(tmp_path):
    p = tmp_path / "train.parquet"
    p.write_bytes(b"PAR1" + b"\x00" * 64 + b"PAR1")
    r = validate_file(p, "fireworks")
    assert r.error_counts == {"parquet_not_supported": 1}
    assert "Fireworks takes JSONL" in r.errors[0].message


def test_a_byte_order_mark_is_a_warning(tmp_path):
    p = write(tmp_path, [SFT] * 3)
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    r = validate_file(p, "fireworks")
    assert r.ok and warnings(r) == {(1, "bom")}


def test_invalid_json_and_non_objects(tmp_path):
    p = write(tmp_path, [SFT, "{not json", "[1, 2]", SFT])
    r = validate_file(p, "fireworks")
    assert errors(r) == {(2, "invalid_json"), (3, "not_an_object")}


# ---------------------------------------------------------------- tokens


def test_long_examples_are_truncated_not_refused(tmp_path):
    # "Training examples will be cut-off at" the job's max context length
    long = {"messages": [msg("user", "word " * 400), msg("assistant", "ok")]}
    p = write(tmp_path, [SFT, long, SFT])
    r = validate_file(p, "fireworks", model="llama-v3p1-8b-instruct", max_seq_len=100)
    assert r.ok, r.errors
    assert warnings(r) == {(2, "too_many_tokens")}
    assert "Fireworks truncates" in r.warnings[0].message
    assert r.tokens.limit == 100 and r.tokens.over_limit == 1 and r.tokens.counted == 3
    assert any("Fireworks truncates" in n for n in r.notes)
    r = validate_file(p, "fireworks", model="llama-v3p1-8b-instruct", max_seq_len=100, strict=True)
    assert errors(r) == {(2, "too_many_tokens")}


def test_tokens_are_counted_only_with_a_model_or_a_limit(tmp_path):
    p = write(tmp_path, [SFT] * 3)
    r = validate_file(p, "fireworks")
    assert r.tokens is None and any("tokens not counted" in n for n in r.notes)
    r = validate_file(p, "fireworks", max_seq_len=1000)
    assert r.tokens is not None and r.tokens.counted == 3 and r.tokens.limit == 1000


def test_dpo_examples_are_counted_too(tmp_path):
    p = write(tmp_path, [DPO] * 3)
    r = validate_file(p, "fireworks", method="dpo", max_seq_len=5)
    assert r.ok and r.tokens.counted == 3 and r.tokens.over_limit == 3
    assert {c for _, c in warnings(r)} == {"too_many_tokens"}


def test_an_example_with_errors_is_not_counted(tmp_path):
    p = write(tmp_path, [SFT, {"messages": [msg("user")]}, SFT])
    r = validate_file(p, "fireworks", max_seq_len=1000)
    assert errors(r) == {(2, "no_assistant_turn")} and r.tokens.counted == 2


def test_every_code_of_the_checker_is_documented():
    import re

    import ftclient.providers.fireworks.validation as mod

    src = Path(mod.__file__).read_text(encoding="utf-8")
    codes = set(re.findall(r"""(?:err|F\.error|F\.warning)\(\s*(?:ln|0),\s*"(\w+)\"""", src))
    assert {"inconsistent_sample_weight", "multi_turn_preference", "bad_extension"} <= codes
    doc = (Path(__file__).parents[1] / "docs" / "validation.md").read_text(encoding="utf-8")
    fireworks = doc[doc.index("## Fireworks"):doc.index("## Local")]
    everyone = doc[doc.index("## Every provider"):doc.index("## OpenAI")]
    assert {c for c in codes if f"`{c}`" not in fireworks and f"`{c}`" not in everyone} == set()
    assert "`too_many_examples`" in fireworks
