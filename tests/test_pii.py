"""PII: true positives with checksums, no false positives on banking text, redaction."""

from __future__ import annotations

import json

import pytest

from ftclient.data.pii import PLACEHOLDERS, redact, scan
from ftclient.data.prepare import prepare


def kinds(text):
    return [(h.kind, text[h.start : h.end]) for h in scan(text)]


@pytest.mark.parametrize(
    "text, kind, value",
    [
        ("write to jane.doe+bank@example.co.uk please", "email", "jane.doe+bank@example.co.uk"),
        ("my card 4111 1111 1111 1111 was declined", "card", "4111 1111 1111 1111"),
        ("card no 5555-5555-5555-4444.", "card", "5555-5555-5555-4444"),
        ("amex 378282246310005", "card", "378282246310005"),
        ("send it to GB82 WEST 1234 5698 7654 32 today", "iban", "GB82 WEST 1234 5698 7654 32"),
        ("IBAN DE89370400440532013000", "iban", "DE89370400440532013000"),
        ("my SSN is 123-45-6789", "us_ssn", "123-45-6789"),
        ("NI number AB 12 34 56 C", "uk_nino", "AB 12 34 56 C"),
        ("NI number JG103759A.", "uk_nino", "JG103759A"),
        ("from 203.0.113.7, blocked", "ipv4", "203.0.113.7"),
        ("host 2001:db8:85a3::8a2e:370:7334 down", "ipv6", "2001:db8:85a3::8a2e:370:7334"),
        ("call me on (415) 555-2671", "phone", "(415) 555-2671"),
        ("ring +44 20 7946 0958 now", "phone", "+44 20 7946 0958"),
        ("uk mobile 07911 123456", "phone", "07911 123456"),
        ("key sk-" "proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z", "api_key", "sk-" "proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"),
        ("together tgp_v1_" "Qw3rTy6uIo9pAs2dFg5hJk8lZx", "api_key", "tgp_v1_" "Qw3rTy6uIo9pAs2dFg5hJk8lZx"),
        ("aws AKIAIOSFODNN7EXAMPLE", "api_key", "AKIAIOSFODNN7EXAMPLE"),
        ("gh ghp_16C7e42F292c6912E7710c838347Ae178B4a", "api_key", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
        ("secret Zx81kQpL0vR7mN2bT5yW9cJ4hG6fD3sA", "api_key", "Zx81kQpL0vR7mN2bT5yW9cJ4hG6fD3sA"),
    ],
)
def test_true_positives(text, kind, value):
    assert kinds(text) == [(kind, value)]


@pytest.mark.parametrize(
    "text",
    [
        "my card 4111 1111 1111 1112 was declined",  # fails Luhn
        "card 1234 5678 9012 3456",  # fails Luhn
        "IBAN GB82 WEST 1234 5698 7654 33",  # fails mod 97
        "DE89370400440532013001",  # fails mod 97
        "ssn 000-12-3456 and 666-12-3456",  # never issued
        "NI number QQ 12 34 56 C",  # Q is not a valid first letter
        "I was charged 1000000 euros",
        "I paid £25.99 on 12/03/2019 at 10:45:12",
        "My card ending in 1234 was charged twice, the last 4 digits are 5678",
        "transaction reference 123456789012 pending since 2019-03-12",
        "version 1.2.3.4.5 and 999.1.1.1",
        "sha1 3f786850e387550fdab836ed7e6dc881de23001b uuid 123e4567-e89b-12d3-a456-426614174000",
        "an_extremely_long_snake_case_identifier_without_any_digits",
        "std::vector and a::b",
        "Why is there a $1 charge on my statement?",
        "I topped up 100 then 250 then 1000 and the balance is 1350.",
    ],
)
def test_no_false_positives(text):
    assert kinds(text) == []


def test_overlaps_go_to_the_more_specific_kind():
    text = "card 4111111111111111 or mail x@y.io"
    assert [k for k, _ in kinds(text)] == ["card", "email"]


def test_redact_replaces_each_hit():
    text = "mail jane@example.com, card 4111 1111 1111 1111, ip 10.1.2.3"
    assert redact(text) == "mail [EMAIL], card [CARD], ip [IP]"
    assert redact("nothing here") == "nothing here"
    assert set(PLACEHOLDERS) >= {"email", "phone", "card", "iban", "us_ssn", "uk_nino", "ipv4", "ipv6", "api_key"}


SECRETS = ["jane@example.com", "4111 1111 1111 1111", "GB82 WEST 1234 5698 7654 32", "123-45-6789"]


def _pii_file(tmp_path):
    rows = [
        {"prompt": f"my email is {SECRETS[0]}", "completion": "contact"},
        {"prompt": f"card {SECRETS[1]} lost", "completion": "lost_card"},
        {"prompt": f"send to {SECRETS[2]} and {SECRETS[0]}", "completion": "transfer"},
        {"prompt": "nothing personal here at all", "completion": "other"},
        {"prompt": "my ssn", "completion": f"it is {SECRETS[3]}"},
    ]
    p = tmp_path / "pii.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def test_report_counts_pii_without_values(tmp_path):
    r = prepare(_pii_file(tmp_path), tmp_path / "o", eval_fraction=0).to_dict()
    assert r["pii"]["by_kind"]["email"] == 2
    assert r["pii"]["by_kind"]["card"] == 1
    assert r["pii"]["by_kind"]["iban"] == 1
    assert r["pii"]["by_kind"]["us_ssn"] == 1
    assert r["pii"]["records_with_pii"] == 4
    assert r["pii"]["example_lines"]["email"] == [1, 3]
    assert any("--redact" in w for w in r["warnings"])
    report_text = (tmp_path / "o" / "report.json").read_text()
    for s in SECRETS:
        assert s not in report_text
    # Not redacted: the values stay in the training data.
    assert SECRETS[1] in (tmp_path / "o" / "train.jsonl").read_text()


def test_redact_option(tmp_path):
    r = prepare(_pii_file(tmp_path), tmp_path / "o", eval_fraction=0, redact=True).to_dict()
    assert r["pii"]["redacted"] is True
    data = (tmp_path / "o" / "train.jsonl").read_text()
    for s in SECRETS:
        assert s not in data
    assert "[EMAIL]" in data and "[CARD]" in data and "[IBAN]" in data and "[SSN]" in data
    assert not any("--redact" in w for w in r["warnings"])
