"""A small valid job for the CLI tests: a ChatML training file and a spec for every backend."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path


def write_job(d: Path, rows: int = 12) -> Path:
    """A valid ChatML training file (enough for OpenAI's minimum) and a spec for every backend."""
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "train.jsonl", "w", encoding="utf-8") as f:
        for i in range(rows):
            f.write(json.dumps({"messages": [{"role": "user", "content": f"my card {i} was charged twice"},
                                             {"role": "assistant", "content": "card_payment"}]}) + "\n")
    spec = d / "job.yaml"
    spec.write_text(textwrap.dedent("""\
        name: ready-check
        base_model: default
        data:
          train: train.jsonl
        hyperparameters:
          epochs: 1
        openai:
          model: gpt-4.1-mini-2025-04-14
        together:
          model: meta-llama/Meta-Llama-3.1-8B-Instruct-Reference
        """))
    return spec
