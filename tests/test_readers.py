"""Readers: every container and schema detected and converted; bad input is a clear error."""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ftclient.data.readers import detect_format, read_examples
from ftclient.errors import DataError, UsageError

SYS = {"role": "system", "content": "Be brief."}
U = {"role": "user", "content": "Where is my card?"}
A = {"role": "assistant", "content": "card_arrival"}


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_csv(path: Path, rows, delimiter=",", encoding="utf-8") -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter)
    for r in rows:
        w.writerow(r)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def records(path, **kw):
    return [e.record for e in read_examples(path, **kw)]


# --- detection and conversion, one case per schema -----------------------------------

SFT_CASES = {
    "chatml": {"messages": [U, {"role": "assistant", "content": "  card_arrival  "}]},
    "prompt_completion": {"prompt": "Where is my card?", "completion": "card_arrival"},
    "alpaca": {"instruction": "Where is my card?", "input": "", "output": "card_arrival"},
    "sharegpt": {"conversations": [{"from": "human", "value": "Where is my card?"}, {"from": "gpt", "value": "card_arrival"}]},
}


@pytest.mark.parametrize("schema", sorted(SFT_CASES))
def test_sft_schemas_detected_and_converted(tmp_path, schema):
    p = write_jsonl(tmp_path / "d.jsonl", [SFT_CASES[schema]] * 3)
    fmt = detect_format(p)
    assert (fmt.container, fmt.schema, fmt.kind) == ("jsonl", schema, "sft")
    assert records(p) == [{"messages": [U, A]}] * 3


def test_alpaca_input_joined_to_instruction(tmp_path):
    p = write_jsonl(tmp_path / "a.jsonl", [{"instruction": "Classify.", "input": "Lost card", "output": "lost"}])
    assert records(p)[0]["messages"][0] == {"role": "user", "content": "Classify.\n\nLost card"}


def test_sharegpt_system_role_kept(tmp_path):
    conv = [{"from": "system", "value": "Be brief."}, {"from": "human", "value": U["content"]}, {"from": "gpt", "value": "card_arrival"}]
    p = write_jsonl(tmp_path / "s.jsonl", [{"conversations": conv}])
    assert records(p, system="Other") == [{"messages": [SYS, U, A]}]


DPO_WANT = {
    "input": {"messages": [U]},
    "preferred_output": [{"role": "assistant", "content": "good"}],
    "non_preferred_output": [{"role": "assistant", "content": "bad"}],
}


@pytest.mark.parametrize(
    "rec, schema",
    [
        ({"prompt": U["content"], "chosen": "good", "rejected": "bad"}, "dpo"),
        ({"prompt": [U], "chosen": [{"role": "assistant", "content": "good"}],
          "rejected": [{"role": "assistant", "content": "bad"}]}, "dpo"),
        ({"chosen": [U, {"role": "assistant", "content": "good"}],
          "rejected": [U, {"role": "assistant", "content": "bad"}]}, "dpo"),  # implicit prompt
        (DPO_WANT, "openai_preference"),
    ],
)
def test_preference_schemas(tmp_path, rec, schema):
    p = write_jsonl(tmp_path / "p.jsonl", [rec])
    fmt = detect_format(p)
    assert (fmt.schema, fmt.kind) == (schema, "dpo")
    assert records(p) == [DPO_WANT]


def test_dpo_system_prompt_goes_into_input(tmp_path):
    p = write_jsonl(tmp_path / "p.jsonl", [{"prompt": U["content"], "chosen": "good", "rejected": "bad"}])
    assert records(p, system="Be brief.")[0]["input"]["messages"] == [SYS, U]


def test_csv_columns_guessed(tmp_path):
    p = write_csv(tmp_path / "t.csv", [["id", "Text", "Category"], ["1", "Where is my card?", "card_arrival"]])
    fmt = detect_format(p)
    assert (fmt.container, fmt.schema, fmt.input_col, fmt.output_col) == ("csv", "columns", "Text", "Category")
    assert records(p) == [{"messages": [U, A]}]
    assert "'Text' -> 'Category'" in fmt.describe()


def test_tsv_and_explicit_columns(tmp_path):
    p = write_csv(tmp_path / "t.tsv", [["q", "a"], ["Where is my card?", "card_arrival"]], delimiter="\t")
    fmt = detect_format(p, input_col="q", output_col="a")
    assert fmt.container == "tsv"
    assert records(p, input_col="q", output_col="a") == [{"messages": [U, A]}]


def test_tsv_sniffed_without_extension(tmp_path):
    p = write_csv(tmp_path / "data.txt", [["text", "label"], ["Where is my card?", "card_arrival"]], delimiter="\t")
    assert detect_format(p).container == "tsv"


def test_csv_preference_columns(tmp_path):
    p = write_csv(tmp_path / "p.csv", [["prompt", "chosen", "rejected"], [U["content"], "good", "bad"]])
    assert detect_format(p).schema == "columns_dpo"
    assert records(p) == [DPO_WANT]


def test_json_array_and_flat_objects(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps([{"question": "Where is my card?", "answer": "card_arrival"}] * 2, indent=2))
    fmt = detect_format(p)
    assert (fmt.container, fmt.schema, fmt.input_col, fmt.output_col) == ("json", "columns", "question", "answer")
    assert records(p) == [{"messages": [U, A]}] * 2


def test_json_file_with_objects_per_line(tmp_path):
    p = write_jsonl(tmp_path / "d.json", [SFT_CASES["chatml"]] * 2)
    assert detect_format(p).container == "json"
    assert len(records(p)) == 2


def test_json_array_line_numbers(tmp_path):
    p = tmp_path / "d.json"
    p.write_text('[\n {"prompt": "a", "completion": "b"},\n\n {"prompt": "c", "completion": ""}\n]\n')
    ex = list(read_examples(p))
    assert [e.line for e in ex] == [2, 4]
    assert ex[1].record is None and ex[1].reason == "empty_content"


def test_json_array_streams_across_chunks(tmp_path):
    recs = [{"prompt": f"question {i} " + "x" * 500, "completion": str(i)} for i in range(400)]
    p = tmp_path / "big.json"
    p.write_text(json.dumps(recs))
    out = records(p)
    assert len(out) == 400 and out[-1]["messages"][1]["content"] == "399"


def test_system_prompt_not_duplicated(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"messages": [SYS, U, A]}, {"messages": [U, A]}])
    got = records(p, system="Route it.")
    assert got[0]["messages"][0] == SYS and len(got[0]["messages"]) == 3
    assert got[1]["messages"][0] == {"role": "system", "content": "Route it."}


@pytest.mark.parametrize(
    "msgs, reason",
    [
        ([{"role": "tool", "content": "x"}, A], "bad_role"),
        ([U, {"role": "assistant", "content": "   "}], "empty_content"),
        ([U], "bad_structure"),
        ([A], "bad_structure"),
        ([U, SYS, A], "bad_structure"),
        ([U, {"role": "assistant", "content": {"x": 1}}], "bad_content"),
        ([U, {"role": "assistant"}], "missing_field"),
    ],
)
def test_unusable_records_get_a_reason(tmp_path, msgs, reason):
    p = write_jsonl(tmp_path / "d.jsonl", [{"messages": [U, A]}, {"messages": msgs}])
    ex = list(read_examples(p))
    assert ex[0].record is not None
    assert ex[1].record is None and ex[1].reason == reason and ex[1].line == 2


def test_empty_system_message_is_dropped_not_the_record(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"messages": [{"role": "system", "content": ""}, U, A]}])
    assert records(p) == [{"messages": [U, A]}]


# --- encodings and bad input -----------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_bom_accepted(tmp_path, encoding):
    p = write_csv(tmp_path / "b.csv", [["text", "label"], ["Où est ma carte ?", "card_arrival"]], encoding=encoding)
    assert detect_format(p).input_col == "text"  # the BOM is not part of the first column name
    assert records(p)[0]["messages"][0]["content"] == "Où est ma carte ?"


def test_jsonl_bom_accepted(tmp_path):
    p = tmp_path / "b.jsonl"
    p.write_bytes(codecs.BOM_UTF8 + json.dumps(SFT_CASES["chatml"]).encode() + b"\n")
    assert records(p) == [{"messages": [U, A]}]


def test_not_utf8_is_a_data_error(tmp_path):
    p = tmp_path / "l1.csv"
    p.write_bytes("text,label\ncaf\u00e9,x\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"l1.csv:2: not valid UTF-8"):
        list(read_examples(p))


def test_invalid_json_names_the_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps(SFT_CASES["chatml"]) + "\n" + '{"messages": [\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: invalid JSON"):
        list(read_examples(p))


def test_truncated_json_array(tmp_path):
    p = tmp_path / "d.json"
    p.write_text('[{"prompt": "a", "completion": "b"},\n{"prompt": "c"')
    with pytest.raises(DataError, match="d.json:2"):
        list(read_examples(p))


def test_missing_column_lists_columns(tmp_path):
    p = write_csv(tmp_path / "t.csv", [["body", "tag"], ["a", "b"]])
    with pytest.raises(UsageError, match="body, tag") as e:
        detect_format(p)
    assert "--input-col" in e.value.hint
    with pytest.raises(UsageError, match="no column 'bdy'") as e:
        detect_format(p, input_col="bdy", output_col="tag")
    assert "'body'" in e.value.hint


def test_unknown_json_format(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [{"foo": 1, "bar": 2}])
    with pytest.raises(DataError, match="unknown record format") as e:
        detect_format(p)
    assert "ShareGPT" in e.value.hint


def test_records_not_objects(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text("[1, 2]\n[3]\n")
    with pytest.raises(DataError, match="not JSON objects"):
        detect_format(p)


# --- properties --------------------------------------------------------------------------

# Text a CSV or JSON file can carry: no NUL (refused as binary), no lone surrogates.
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(texts, texts), min_size=1, max_size=6))
def test_csv_round_trip(tmp_path, rows):
    p = write_csv(tmp_path / "rt.csv", [["text", "label"], *rows])
    got = list(read_examples(p))
    # rows whose cells are all blank are skipped as blank lines
    want = [(a, b) for a, b in rows if a.strip() or b.strip()]
    assert len(got) == len(want)
    for ex, (a, b) in zip(got, want):
        if a.strip() and b.strip():
            assert ex.record == {"messages": [{"role": "user", "content": a.strip()},
                                              {"role": "assistant", "content": b.strip()}]}
        else:
            assert ex.record is None and ex.reason == "empty_content"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(st.tuples(texts, texts), min_size=1, max_size=6), ascii_only=st.booleans())
def test_jsonl_round_trip(tmp_path, pairs, ascii_only):
    p = tmp_path / "rt.jsonl"
    p.write_text("".join(json.dumps({"prompt": a, "completion": b}, ensure_ascii=ascii_only) + "\n" for a, b in pairs),
                 encoding="utf-8")
    got = list(read_examples(p))
    assert len(got) == len(pairs)
    for ex, (a, b) in zip(got, pairs):
        if a.strip() and b.strip():
            assert ex.record["messages"] == [{"role": "user", "content": a.strip()},
                                             {"role": "assistant", "content": b.strip()}]
        else:
            assert ex.reason == "empty_content"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"[", b"{", b"[[[[[[", b'{"messages": [', b"\xef\xbb\xbf", b"\xff\xfe", b'[{"a":1}] x',
                     b'{"prompt": 1' + b"0" * 5000 + b', "completion": "x"}']),
), ext=st.sampled_from([".csv", ".tsv", ".json", ".jsonl", ".txt"]))
def test_arbitrary_bytes_only_raise_ftc_errors(tmp_path, data, ext):
    p = tmp_path / f"junk{ext}"
    p.write_bytes(data)
    try:
        for ex in read_examples(p):
            assert ex.record is not None or ex.reason
    except (DataError, UsageError) as e:
        assert e.message
