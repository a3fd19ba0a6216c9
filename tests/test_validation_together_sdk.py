"""ftc and the Together SDK's own check_file agree on ok / not ok.

check_file (together 3.x) checks the file (found, size, extension), UTF-8, that each
non-blank line is a JSON object, and the minimum sample count; the rest it leaves to
Together's servers. ftc applies those rules and the documented format rules too, so
the files here are the ones on which both can rule; that ftc is stricter on the rest
is shown at the end.
"""

from __future__ import annotations

import json

import pytest

from ftclient.validation import validate_file

together_files = pytest.importorskip("together.lib.utils.files")

GOOD = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}]}
PREF = {"input": {"messages": [{"role": "user", "content": "u"}]},
        "preferred_output": [{"role": "assistant", "content": "a"}],
        "non_preferred_output": [{"role": "assistant", "content": "b"}]}

CASES = {
    "good_conversation.jsonl": (json.dumps(GOOD) + "\n") * 5,
    "good_text.jsonl": '{"text": "hello"}\n' * 3,
    "good_instruction.jsonl": '{"prompt": "2+2", "completion": "4"}\n',
    "good_preference.jsonl": json.dumps(PREF) + "\n",
    "good_blank_lines.jsonl": json.dumps(GOOD) + "\n\n" + json.dumps(GOOD) + "\n",
    "good_no_final_newline.jsonl": json.dumps(GOOD),
    "bad_json.jsonl": json.dumps(GOOD) + "\n{not json\n",
    "bad_array_line.jsonl": json.dumps(GOOD) + "\n[1, 2]\n",
    "bad_string_line.jsonl": '"just a string"\n',
    "bad_empty.jsonl": "",
    "bad_only_blank.jsonl": "\n\n",
    "bad_extension.txt": json.dumps(GOOD) + "\n",
    "bad_truncated.jsonl": json.dumps(GOOD)[:-5] + "\n",
}
BYTES = {
    "bad_latin1.jsonl": b'{"text": "caf\xe9"}\n',
    "bad_bom.jsonl": b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n",
    "bad_utf16.jsonl": (json.dumps(GOOD) + "\n").encode("utf-16"),
}


@pytest.mark.parametrize("name", sorted(CASES) + sorted(BYTES))
def test_ftc_and_check_file_agree(tmp_path, name):
    p = tmp_path / name
    if name in BYTES:
        p.write_bytes(BYTES[name])
    else:
        p.write_text(CASES[name], encoding="utf-8")
    sdk = together_files.check_file(p)["is_check_passed"]
    ftc = validate_file(p, "together").ok
    assert ftc == sdk == name.startswith("good"), (ftc, sdk)


@pytest.mark.parametrize("bad", [
    {"messages": [{"role": "bot", "content": "x"}]},
    {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": 5}]},
    {"foo": "bar"},
])
def test_ftc_is_stricter_where_check_file_defers_to_the_server(tmp_path, bad):
    p = tmp_path / "semantic.jsonl"
    p.write_text(json.dumps(bad) + "\n")
    assert together_files.check_file(p)["is_check_passed"] is True
    assert validate_file(p, "together").ok is False
