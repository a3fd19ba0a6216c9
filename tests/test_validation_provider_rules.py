"""ftc's validation verdicts against the providers' own.

Where the installed Together SDK's ``check_file`` rules on a file (together 3.x: the file,
its extension, UTF-8, one JSON object per line, the Parquet columns and row count), the
test runs it on the same file and asserts the same verdict. Where it defers to
Together's servers, the rule is the one of Together's documentation or of its SDK's
previous, full checker (together 1.5.x ``together.utils.files``), cited beside the case;
the 3.x check is still run, to show that it passes what ftc refuses. OpenAI's verdicts
follow its fine-tuning guide, its OpenAPI document and the cookbook "Data preparation
and analysis for chat model fine-tuning".
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from ftclient.validation import validate_file

together_files = pytest.importorskip("together.lib.utils.files")


def sdk_ok(path: Path) -> bool:
    return together_files.check_file(path)["is_check_passed"]


def write(tmp_path: Path, recs, name: str = "train.jsonl") -> Path:
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in recs), encoding="utf-8")
    return p


def codes(r, warnings: bool = False) -> set[str]:
    return {p.code for p in (r.warnings if warnings else r.errors)}


# =================================================================== Together: images

# A 1x1 PNG, base64; the SDK's own tests use "data:image/jpeg;base64,..." (prefix only).
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
JPEG_SDK = "data:image/jpeg;base64,..."


def img(url: str = PNG) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def text(t: str) -> dict:
    return {"type": "text", "text": t}


def vchat(user_parts, assistant="a cat", system=None) -> dict:
    msgs = [{"role": "system", "content": [text(system)]}] if system else []
    msgs += [{"role": "user", "content": user_parts}, {"role": "assistant", "content": [text(assistant)]}]
    return {"messages": msgs}


# Valid: the together 1.5.x SDK's own unit tests (tests/unit/test_files_checks.py:
# test_check_jsonl_valid_instruction_multimodal, ..._valid_conversational_multimodal_single_turn)
# and Together's vision fine-tuning guide (docs.together.ai/docs/fine-tuning/vision:
# "Supported types: Conversational, Instruction, Preferential").
VISION_GOOD = {
    "instruction_prompt_parts": {"prompt": [text("What's the difference between these two images?"), img(JPEG_SDK), img(JPEG_SDK)],
                                 "completion": "The first image is a cat, the second image is a dog."},
    "instruction_text_parts": {"prompt": [text("2+2=")], "completion": [text("4")]},
    "conversation_parts": vchat([text("What's the difference between these two images?"), img(JPEG_SDK), img(JPEG_SDK)]),
    "conversation_png_webp_system": vchat([text("what is it?"), img(PNG), img("data:image/webp;base64,UklGRg==")], system="You see."),
    "ten_images": vchat([text("count")] + [img()] * 10),
    "preference_parts": {"input": {"messages": [{"role": "user", "content": [text("what is it?"), img()]}]},
                         "preferred_output": [{"role": "assistant", "content": [text("a cat")]}],
                         "non_preferred_output": [{"role": "assistant", "content": [text("a dog")]}]},
    "image_message_weight_0": {"messages": [{"role": "user", "content": [text("x"), img()], "weight": 0},
                                            {"role": "assistant", "content": [text("y")]}]},
}


@pytest.mark.parametrize("name", sorted(VISION_GOOD))
def test_together_multimodal_data_is_valid_as_the_sdk_says(tmp_path, name):
    p = write(tmp_path, [VISION_GOOD[name]] * 2)
    r = validate_file(p, "together")
    assert r.ok, r.errors
    assert sdk_ok(p) is True


# Invalid: rules of together 1.5.x's _check_message_content / validate_messages and of the
# vision guide ("Each image is base64-encoded with a MIME type prefix
# (data:image/jpeg;base64,...). If your data references URLs, download and encode the
# images first", "Per-example image limit: 10 images", "Per-image size: 10 MB",
# "Supported formats: PNG, JPEG, WEBP", "Only user messages can contain images").
VISION_BAD = {
    # the 1.5.x SDK's test_check_jsonl_invalid_multimodal_content
    "malformed_url": (vchat([text("Hello"), img("<malformed_base64_image>")]), "bad_image"),
    "https_url": (vchat([text("what?"), img("https://example.com/cat.png")]), "bad_image"),
    "https_url_in_prompt": ({"prompt": [text("what?"), img("https://example.com/cat.png")], "completion": "a cat"}, "bad_image"),
    "gif": (vchat([text("what?"), img("data:image/gif;base64,R0lGOD==")]), "bad_image"),
    "no_mime_prefix": (vchat([text("what?"), img("iVBORw0KGgo=")]), "bad_image"),
    "image_in_assistant": ({"messages": [{"role": "user", "content": [text("draw")]},
                                         {"role": "assistant", "content": [img()]}]}, "bad_image"),
    "image_in_completion": ({"prompt": [text("draw")], "completion": [img()]}, "bad_image"),
    "image_in_preferred_output": ({"input": {"messages": [{"role": "user", "content": [text("x")]}]},
                                   "preferred_output": [{"role": "assistant", "content": [img()]}],
                                   "non_preferred_output": [{"role": "assistant", "content": [text("b")]}]}, "bad_image"),
    "eleven_images": (vchat([text("count")] + [img()] * 11), "bad_image"),
    "eleven_images_instruction": ({"prompt": [text("count")] + [img()] * 11, "completion": "11"}, "bad_image"),
    # "Messages with images cannot have non-zero weights."
    "image_message_weight_1": ({"messages": [{"role": "user", "content": [text("x"), img()], "weight": 1},
                                             {"role": "assistant", "content": [text("y")]}]}, "invalid_weight"),
    # "Messages in the conversation must be either all in multimodal or all in text-only format."
    "mixed_string_and_parts": ({"messages": [{"role": "user", "content": [text("x"), img()]},
                                             {"role": "assistant", "content": "y"}]}, "invalid_content"),
    "text_part_not_string": (vchat([{"type": "text", "text": 5}]), "invalid_content"),
    "unknown_part_type": (vchat([{"type": "input_audio", "input_audio": {}}]), "invalid_content"),
    "image_url_not_object": (vchat([{"type": "image_url", "image_url": PNG}]), "invalid_content"),
}


@pytest.mark.parametrize("name", sorted(VISION_BAD))
def test_together_multimodal_rules(tmp_path, name):
    rec, code = VISION_BAD[name]
    p = write(tmp_path, [VISION_GOOD["conversation_parts"] if "prompt" not in rec else VISION_GOOD["instruction_prompt_parts"], rec])
    r = validate_file(p, "together")
    assert not r.ok
    assert code in codes(r), r.errors
    assert {e.line for e in r.errors} == {2}, r.errors
    # together 3.x's check_file leaves these rules to the server; its 1.5.x checker
    # (and the documentation quoted above) refuses the file.
    assert sdk_ok(p) is True


def test_together_image_url_message_states_the_providers_rule(tmp_path):
    p = write(tmp_path, [VISION_BAD["https_url"][0]])
    r = validate_file(p, "together")
    [e] = r.errors
    assert e.code == "bad_image" and "https://example.com/cat.png" in e.message
    assert "base64" in e.message and "data:image/png;base64," in e.message
    # OpenAI takes image URLs ("Images can be provided either as HTTP URLs or data URLs
    # containing Base64-encoded images", vision fine-tuning guide).
    assert validate_file(write(tmp_path, [VISION_BAD["https_url"][0]] * 10, "o.jsonl"), "openai").ok


def test_together_image_over_10_mb(tmp_path):
    big = "data:image/png;base64," + "A" * (4 * 10 * 1024 * 1024 // 3 + 8)  # ~10 MB + a little
    r = validate_file(write(tmp_path, [vchat([text("x"), img(big)])]), "together")
    assert codes(r) == {"bad_image"} and "MB" in r.errors[0].message
    ok = "data:image/png;base64," + "A" * (4 * 9 * 1024 * 1024 // 3)
    assert validate_file(write(tmp_path, [vchat([text("x"), img(ok)])], "ok.jsonl"), "together").ok


def test_together_empty_parts_list_is_a_warning_as_the_sdk_accepts_it(tmp_path):
    # together 1.5.x iterates an empty list without complaint; 3.x does not look.
    p = write(tmp_path, [{"messages": [{"role": "user", "content": []}, {"role": "assistant", "content": [text("y")]}]}])
    r = validate_file(p, "together")
    assert r.ok and codes(r, warnings=True) == {"empty_content"}
    assert sdk_ok(p) is True


# =================================================================== Together: Parquet

try:
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError:  # pragma: no cover - pyarrow is in the test extra
    pa = pq = None
needs_pyarrow = pytest.mark.skipif(pa is None, reason='pyarrow not installed (pip install "ftclient[parquet]")')


def parquet(tmp_path: Path, columns: dict, name: str = "train.parquet", schema=None) -> Path:
    p = tmp_path / name
    pq.write_table(pa.table(columns, schema=schema), p)
    return p


IDS = [[1, 2, 3], [4, 5]]
MASK = [[1, 1, 1], [1, 1]]
LABELS = [[-100, 2, 3], [4, 5]]

# Each case: columns, and whether Together's 3.x check_file passes the file (its rules:
# loads, has input_ids, only input_ids/attention_mask/labels/position_ids, >= 1 row).
PARQUET_AGREE = {
    "ids_mask_labels": ({"input_ids": IDS, "attention_mask": MASK, "labels": LABELS}, True),
    "ids_mask": ({"input_ids": IDS, "attention_mask": MASK}, True),
    "with_position_ids": ({"input_ids": IDS, "attention_mask": MASK, "position_ids": [[0, 1, 2], [0, 1]]}, True),
    "int32_and_int8": (None, True),  # built below with narrow integer types
    "no_input_ids": ({"attention_mask": MASK, "labels": LABELS}, False),
    "extra_column": ({"input_ids": IDS, "attention_mask": MASK, "text": ["a", "b"]}, False),
    "no_rows": (None, False),  # built below: typed, empty columns
}


@needs_pyarrow
@pytest.mark.parametrize("name", sorted(PARQUET_AGREE))
def test_parquet_verdict_matches_check_file(tmp_path, name):
    cols, expected = PARQUET_AGREE[name]
    if name == "int32_and_int8":
        p = parquet(tmp_path, {"input_ids": pa.array(IDS, type=pa.list_(pa.int32())),
                               "attention_mask": pa.array(MASK, type=pa.list_(pa.int8()))})
    elif name == "no_rows":
        empty = pa.array([], type=pa.list_(pa.int64()))
        p = parquet(tmp_path, {"input_ids": empty, "attention_mask": empty})
    else:
        p = parquet(tmp_path, cols)
    r = validate_file(p, "together")
    assert sdk_ok(p) is expected
    assert r.ok is expected, r.errors
    if expected:
        assert r.format == "tokenized" and r.examples == 2 and r.errors == []
        assert r.tokens.exact and r.tokens.total == 5 and (r.tokens.min, r.tokens.max) == (2, 3)


@needs_pyarrow
def test_parquet_corrupt_and_empty_files(tmp_path):
    bad = tmp_path / "corrupt.parquet"
    bad.write_bytes(b"PAR1 this is not parquet PAR1")
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    for p, code in ((bad, "invalid_parquet"), (empty, "empty_file")):
        r = validate_file(p, "together")
        assert sdk_ok(p) is False and not r.ok
        assert codes(r) == {code}


@needs_pyarrow
def test_parquet_without_attention_mask_passes_with_a_warning(tmp_path):
    # The data-preparation guide lists attention_mask as required; the SDK's check does
    # not require it, so the verdict stays "valid" and ftc says so as a warning.
    p = parquet(tmp_path, {"input_ids": IDS})
    r = validate_file(p, "together")
    assert sdk_ok(p) is True and r.ok
    assert codes(r, warnings=True) == {"missing_field"} and "attention_mask" in r.warnings[0].message
    assert not validate_file(p, "together", strict=True).ok


# ftc checks what check_file 3.x leaves to the server: the documented meaning of the
# columns ("input_ids: List of token ids", "attention_mask: List of indices specifying
# which tokens should be attended to", "labels: List of token ids ... -100 ... ignored"),
# one entry per token in every column of a row.
PARQUET_STRICTER = {
    "mask_shorter": ({"input_ids": IDS, "attention_mask": [[1, 1], [1, 1]]}, {(1, "length_mismatch")}),
    "labels_longer": ({"input_ids": IDS, "attention_mask": MASK, "labels": [[1, 2, 3], [4, 5, 6]]}, {(2, "length_mismatch")}),
    "negative_id": ({"input_ids": [[1, -2, 3], [4, 5]], "attention_mask": MASK}, {(1, "invalid_token")}),
    "mask_not_0_1": ({"input_ids": IDS, "attention_mask": [[1, 1, 1], [1, 2]]}, {(2, "invalid_token")}),
    "label_minus_5": ({"input_ids": IDS, "attention_mask": MASK, "labels": [[-100, 2, 3], [-5, 5]]}, {(2, "invalid_token")}),
    "empty_row": ({"input_ids": [[1, 2, 3], []], "attention_mask": [[1, 1, 1], []]}, {(2, "empty_content")}),
    "null_row": ({"input_ids": [[1, 2, 3], None], "attention_mask": MASK}, {(2, "missing_field")}),
    "strings": ({"input_ids": ["1 2 3", "4 5"], "attention_mask": MASK}, {(0, "invalid_field_type")}),
    "floats": ({"input_ids": [[1.0, 2.0, 3.0], [4.0, 5.0]], "attention_mask": MASK}, {(0, "invalid_field_type")}),
}


@needs_pyarrow
@pytest.mark.parametrize("name", sorted(PARQUET_STRICTER))
def test_parquet_column_types_and_lengths(tmp_path, name):
    cols, expected = PARQUET_STRICTER[name]
    p = parquet(tmp_path, cols)
    r = validate_file(p, "together")
    assert {(e.line, e.code) for e in r.errors} == expected
    assert sdk_ok(p) is True  # check_file 3.x does not look at the values


@needs_pyarrow
def test_parquet_rows_are_numbered_across_batches(tmp_path, monkeypatch):
    from ftclient.validation import parquet as pqv

    monkeypatch.setattr(pqv, "BATCH_ROWS", 7)
    ids = [[1, 2]] * 50
    mask = [[1, 1]] * 50
    mask[22] = [1]
    ids[40] = [1, -1]
    p = parquet(tmp_path, {"input_ids": ids, "attention_mask": mask})
    r = validate_file(p, "together", max_seq_len=1)
    assert [(e.line, e.code) for e in r.errors if e.code != "too_many_tokens"] == [(23, "length_mismatch"), (41, "invalid_token")]
    assert r.tokens.over_limit == 50 and r.tokens.counted == 50 and r.tokens.total == 100
    assert r.error_counts["too_many_tokens"] == 50


@needs_pyarrow
def test_parquet_is_for_sft(tmp_path):
    p = parquet(tmp_path, {"input_ids": IDS, "attention_mask": MASK})
    assert codes(validate_file(p, "together", method="dpo")) == {"wrong_format"}


@needs_pyarrow
@pytest.mark.parametrize("provider", ["openai", "local"])
def test_other_providers_refuse_parquet_clearly(tmp_path, provider):
    p = parquet(tmp_path, {"input_ids": IDS, "attention_mask": MASK})
    r = validate_file(p, provider)
    assert codes(r) == {"parquet_not_supported"} and r.warnings == []
    assert "Parquet" in r.errors[0].message and "JSONL" in r.errors[0].message
    disguised = tmp_path / "train.jsonl"
    disguised.write_bytes(p.read_bytes())
    assert codes(validate_file(disguised, provider)) == {"parquet_not_supported"}


@needs_pyarrow
def test_cli_parquet_and_missing_pyarrow(tmp_path, ftc):
    p = parquet(tmp_path, {"input_ids": IDS, "attention_mask": MASK})
    r = ftc("data", "validate", p, "--provider", "together", "--json")
    assert r.code == 0 and r.json()["format"] == "tokenized"
    r = ftc("data", "validate", p, "--provider", "openai", "--json")
    assert r.code == 1 and r.json()["error_counts"] == {"parquet_not_supported": 1}
    # Without pyarrow: exit 2, the install line, no traceback.
    code = ("import sys; sys.modules['pyarrow'] = None; sys.argv = ['ftc', 'data', 'validate', sys.argv[1], "
            "'--provider', 'together']; from ftclient.cli.main import main; main()")
    run = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert 'pip install "ftclient[parquet]"' in run.stderr and "Traceback" not in run.stderr


# =================================================================== OpenAI: truncation


def cookbook_format_errors(dataset: list) -> dict:
    """The format checks of OpenAI's cookbook "Data preparation and analysis for chat
    model fine-tuning" (cookbook.openai.com/examples/chat_finetuning_data_prep), as
    published: the provider's own pre-upload check."""
    format_errors: dict = defaultdict(int)
    for ex in dataset:
        if not isinstance(ex, dict):
            format_errors["data_type"] += 1
            continue
        messages = ex.get("messages", None)
        if not messages:
            format_errors["missing_messages_list"] += 1
            continue
        for message in messages:
            if "role" not in message or "content" not in message:
                format_errors["message_missing_key"] += 1
            if any(k not in ("role", "content", "name", "function_call", "weight") for k in message):
                format_errors["message_unrecognized_key"] += 1
            if message.get("role", None) not in ("system", "user", "assistant", "function"):
                format_errors["unrecognized_role"] += 1
            content = message.get("content", None)
            function_call = message.get("function_call", None)
            if (not content and not function_call) or not isinstance(content, str):
                format_errors["missing_content"] += 1
        if not any(message.get("role", None) == "assistant" for message in messages):
            format_errors["example_missing_assistant_message"] += 1
    return dict(format_errors)


GOOD = {"messages": [{"role": "system", "content": "Route the ticket."}, {"role": "user", "content": "card not arrived"},
                     {"role": "assistant", "content": "card_arrival"}]}


def long_example(words: int) -> dict:
    return {"messages": [{"role": "user", "content": "word " * words}, {"role": "assistant", "content": "ok"}]}


def test_openai_truncates_long_examples_and_ftc_warns(tmp_path, ftc):
    # OpenAI's fine-tuning guide, "Token limits": "Examples longer than the default will
    # be truncated to the maximum context length which removes tokens from the end of
    # the training example(s)." The cookbook counts such examples ("they will be
    # truncated during fine-tuning") after its format checks, which this file passes.
    recs = [GOOD] * 10 + [long_example(300), GOOD, long_example(500)]
    assert cookbook_format_errors(recs) == {}
    p = write(tmp_path, recs)
    r = validate_file(p, "openai", max_seq_len=100)
    assert r.ok and r.errors == []
    warned = [(w.line, w.code) for w in r.warnings]
    assert warned == [(11, "too_many_tokens"), (13, "too_many_tokens")]
    assert r.tokens.over_limit == 2
    dropped = [int(w.message.split("its last ")[1].split(" tokens")[0].replace(",", "")) for w in r.warnings]
    assert all(d > 0 for d in dropped) and sum(dropped) == r.tokens.over_limit_tokens
    assert any("truncates them" in n for n in r.notes)
    # --strict: warnings count as errors
    s = validate_file(p, "openai", max_seq_len=100, strict=True)
    assert not s.ok and [(e.line, e.code) for e in s.errors] == warned and s.warnings == []
    assert ftc("data", "validate", p, "--provider", "openai", "--max-seq-len", "100").code == 0
    out = ftc("data", "validate", p, "--provider", "openai", "--max-seq-len", "100", "--strict", "--json")
    assert out.code == 1 and out.json()["strict"] is True and out.json()["error_counts"] == {"too_many_tokens": 2}


def test_openai_truncation_matches_the_billed_cap(tmp_path):
    from ftclient.cost import estimate_cost

    p = write(tmp_path, [GOOD] * 10 + [long_example(70_000)])
    r = validate_file(p, "openai")  # the limit from the price catalogue
    if r.tokens is None or r.tokens.limit is None:
        pytest.skip("no catalogue limit for the default OpenAI model")
    assert r.ok and codes(r, warnings=True) == {"too_many_tokens"} and r.tokens.over_limit == 1
    est = estimate_cost(p, f"openai:{r.model}", epochs=1)
    assert est.examples_over_limit == 1
    # what OpenAI bills is what remains after truncation
    assert est.tokens_per_epoch == r.tokens.total - r.tokens.over_limit_tokens
    assert any("billed on at most" in n for n in r.notes)


# =================================================================== smaller faults


def test_ff_fe_fd_is_one_not_utf8_error_without_utf16(tmp_path, ftc):
    p = tmp_path / "x.jsonl"
    p.write_bytes(b"\xff\xfe\xfd")
    r = validate_file(p, "together")
    assert sdk_ok(p) is False and not r.ok
    assert r.error_counts.get("not_utf8") == 1
    [e] = [e for e in r.errors if e.code == "not_utf8"]
    assert "UTF-16" not in e.message and "UTF-8" in e.message and e.line == 1
    assert r.encoding == "utf-8"
    # a real UTF-16 file is still called UTF-16 (and refused by check_file too)
    u16 = tmp_path / "u16.jsonl"
    u16.write_text(json.dumps(GOOD) + "\n", encoding="utf-16")
    r16 = validate_file(u16, "together")
    assert sdk_ok(u16) is False and r16.error_counts == {"not_utf8": 1} and "UTF-16" in r16.errors[0].message
    out = ftc("data", "validate", p, "--provider", "together", "--json")
    assert out.code == 1 and out.json()["error_counts"]["not_utf8"] == 1


TEXT = {"text": "a plain text example"}


@pytest.mark.parametrize("workers", [1, 3])
def test_mixed_formats_blame_the_minority(tmp_path, monkeypatch, workers):
    # One format per file: together 1.5.x "All samples in the dataset must have the same
    # dataset format"; Together's data-preparation guide. The file is invalid either way;
    # the lines to fix are the ones in the minority, even when the first line is one.
    from ftclient.validation import engine

    monkeypatch.setattr(engine, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(engine, "MIN_CHUNK_BYTES", 1)
    p = write(tmp_path, [TEXT] + [GOOD] * 300 + [TEXT] + [GOOD] * 300)
    r = validate_file(p, "together", workers=workers)
    assert [(e.line, e.code) for e in r.errors] == [(1, "mixed_formats"), (302, "mixed_formats")]
    assert "mostly conversation" in r.errors[0].message
    assert r.format == "conversation"
    r = validate_file(write(tmp_path, [GOOD, TEXT, TEXT, TEXT], "b.jsonl"), "together", workers=workers)
    assert [(e.line, e.code) for e in r.errors] == [(1, "mixed_formats")]


def test_mixed_formats_counts_every_minority_line_past_the_cap(tmp_path):
    from ftclient.validation.common import MAX_STORED_PROBLEMS

    n = MAX_STORED_PROBLEMS + 20
    r = validate_file(write(tmp_path, [TEXT] * n + [GOOD] * (n + 1)), "together")
    assert r.error_counts == {"mixed_formats": n}
    assert len(r.errors) == MAX_STORED_PROBLEMS and r.errors[0].line == 1
    assert r.to_dict()["errors_not_shown"] == 20


def test_weight_on_a_user_message_is_one_error(tmp_path):
    # OpenAI's OpenAPI document defines `weight` (0 or 1) on the fine-tuning assistant
    # message only (FineTuneChatCompletionRequestAssistantMessage): one fault, one error.
    bad = {"messages": [{"role": "user", "content": "x", "weight": 1}, {"role": "assistant", "content": "y"}]}
    r = validate_file(write(tmp_path, [GOOD] * 10 + [bad]), "openai")
    assert [(e.line, e.code) for e in r.errors] == [(11, "invalid_weight")]
    # a real unknown key beside it is still reported
    worse = {"messages": [{"role": "user", "content": "x", "weight": 1, "mood": "ok"}, {"role": "assistant", "content": "y"}]}
    r = validate_file(write(tmp_path, [GOOD] * 10 + [worse], "w.jsonl"), "openai")
    assert sorted(e.code for e in r.errors) == ["invalid_weight", "unknown_key"]
    # Together allows weight on any message ("weight is 0 or 1")
    assert validate_file(write(tmp_path, [bad], "t.jsonl"), "together").ok
