"""The path a user takes on real data, through the real console script.

banking77 (964 real rows, tests/data/banking77/) -> ``ftc data prepare`` -> ``ftc data validate --provider openai``
-> ``ftc cost estimate --model openai:gpt-4.1-mini --json``: the token counts must equal
OpenAI's cookbook formula computed here, independently, with tiktoken.
"""

from __future__ import annotations

import csv
import json
from importlib import resources

import pytest
import tiktoken
from tiktoken.load import load_tiktoken_bpe

O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
# The pre-tokenisation pattern of o200k_base, as published in tiktoken_ext.openai_public.
O200K_PAT = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])


def cookbook_encoding() -> tiktoken.Encoding:
    path = resources.files("ftclient") / "resources" / "tiktoken" / "o200k_base.tiktoken"
    ranks = load_tiktoken_bpe(str(path), expected_hash=O200K_SHA256)
    return tiktoken.Encoding(name="o200k_base_test", pat_str=O200K_PAT, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 199999, "<|endofprompt|>": 200018})


def num_tokens_from_messages(messages, enc) -> int:
    """OpenAI cookbook, 'How to count tokens with tiktoken' (gpt-4o / gpt-4.1 family)."""
    tokens_per_message, tokens_per_name = 3, 1
    n = 0
    for message in messages:
        n += tokens_per_message
        for key, value in message.items():
            n += len(enc.encode(value))
            if key == "name":
                n += tokens_per_name
    return n + 3  # every reply is primed with <|start|>assistant<|message|>


def test_banking77_prepare_validate_estimate_matches_cookbook(ftc_proc, banking77_train, tmp_path):
    out = tmp_path / "data"
    r = ftc_proc("data", "prepare", banking77_train, "--input-col", "text", "--output-col", "category",
                 "--system", "Route the ticket to one intent.", "--out-dir", out, "--json")
    assert r.code == 0, r.err
    report = r.json()
    with open(banking77_train, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert report["counts"]["read"] == len(rows)
    assert report["labels"]["count"] == len({row["category"] for row in rows}) == 77

    train = out / "train.jsonl"
    r = ftc_proc("data", "validate", train, "--provider", "openai", "--json")
    assert r.code == 0, r.err
    v = r.json()
    assert v["ok"] is True and v["errors"] == [] and v["examples"] == report["counts"]["train"]

    r = ftc_proc("cost", "estimate", train, "--model", "openai:gpt-4.1-mini", "--epochs", "3", "--json")
    assert r.code == 0, r.err
    est = r.json()

    enc = cookbook_encoding()
    per_example = [num_tokens_from_messages(json.loads(line)["messages"], enc)
                   for line in train.read_text(encoding="utf-8").splitlines()]
    expected = sum(per_example)
    assert est["examples"] == len(per_example)
    assert est["tokens_per_epoch"] == expected
    assert est["epochs"] == 3
    assert est["billed_tokens"] == 3 * expected
    assert est["cost_usd"] == pytest.approx(3 * expected / 1e6 * 5.0, rel=1e-6, abs=0.005)
    assert "cookbook" in est["token_count_basis"] and "o200k" in est["token_count_basis"]
    assert v["stats"]["tokens"]["total"] == expected


def test_demo_offline_stages_write_their_files(ftc_proc, tmp_path):
    r = ftc_proc("demo", "--out-dir", tmp_path / "demo", "--offline-only", "--json")
    assert r.code == 0, r.err
    d = r.json()
    for path in d["files"].values():
        assert (tmp_path / "demo").joinpath(path).exists(), path
    assert all(v["ok"] for v in d["validation"].values())
    assert d["prepare"]["counts"]["read"] == 480
    rows = {row["backend"] for row in d["cost"]["rows"]}
    assert any(b.startswith("openai:") for b in rows) and any(b.startswith("together:") for b in rows)
    assert any(row["kind"] == "self-hosted" for row in d["cost"]["rows"])
    with open(d["files"]["cost_plot"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert set(d["skipped"]) == {"train", "eval", "report"} and d["job"] is None and d["evals"] == []
