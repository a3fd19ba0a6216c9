"""A tiny random chat model for the local-training tests.

``build_tiny_model(dir)`` writes a 2-layer Llama-style model with random weights and a
small byte-level BPE tokenizer trained on ``TEXTS`` (plus the ChatML special tokens) to
``dir``, with a ChatML chat template that marks the assistant turns with
``{% generation %}``. Loading it and running a few SFT/DPO steps takes seconds on a
laptop CPU, which is all the tests need: they check plumbing, not quality.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ftclient.local_backend.models import chatml_generation_template

SYSTEM = "Route the ticket to one intent."

# (ticket, intent, wrong intent) -- the text the tokenizer is trained on and the data.
TICKETS = [
    ("I lost my card yesterday", "lost_card", "card_arrival"),
    ("my card has not arrived yet", "card_arrival", "lost_card"),
    ("how do I top up my account", "top_up", "exchange_rate"),
    ("what is the exchange rate for euros", "exchange_rate", "top_up"),
    ("the ATM kept my card", "card_swallowed", "lost_card"),
    ("I want to close my account", "close_account", "top_up"),
    ("why was I charged a fee", "fee_charged", "exchange_rate"),
    ("my transfer is still pending", "pending_transfer", "fee_charged"),
    ("can I change my PIN at the ATM", "change_pin", "card_swallowed"),
    ("my top up failed twice", "top_up_failed", "top_up"),
    ("someone used my card without asking", "card_fraud", "lost_card"),
    ("how long does a transfer take", "transfer_time", "pending_transfer"),
]

# ChatML with generation markers; renders exactly like plain ChatML (no default system prompt).
CHATML_GENERATION_TEMPLATE = chatml_generation_template()

# The same ChatML without markers (what most chat models ship).
CHATML_PLAIN_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def sft_records(n: int | None = None) -> list[dict]:
    rows = TICKETS if n is None else [TICKETS[i % len(TICKETS)] for i in range(n)]
    return [
        {"messages": [{"role": "system", "content": SYSTEM},
                      {"role": "user", "content": text},
                      {"role": "assistant", "content": label}]}
        for text, label, _ in rows
    ]


def dpo_records(n: int | None = None) -> list[dict]:
    rows = TICKETS if n is None else [TICKETS[i % len(TICKETS)] for i in range(n)]
    return [
        {"input": {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]},
         "preferred_output": [{"role": "assistant", "content": good}],
         "non_preferred_output": [{"role": "assistant", "content": bad}]}
        for text, good, bad in rows
    ]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def build_tiny_model(out_dir: Path, *, chat_template: str = CHATML_GENERATION_TEMPLATE, seed: int = 0) -> Path:
    """Write a random 2-layer Llama model + trained BPE tokenizer to ``out_dir``; return it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    corpus = [t for row in TICKETS for t in row] + [SYSTEM, "system", "user", "assistant"]
    tok.train_from_iterator(corpus * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = chat_template
    fast.save_pretrained(out_dir)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = fast.pad_token_id
    model.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module", autouse=True)
def no_threads_left_behind():
    """After a module that trains: stop tqdm's monitor thread and free the models, because
    ftclient.tokens forks its worker processes only when no other thread runs."""
    yield
    import gc

    import tqdm

    if tqdm.tqdm.monitor is not None:
        tqdm.tqdm.monitor.exit()
        tqdm.tqdm.monitor = None
    gc.collect()


# ----------------------------------------------------------------------------- shared fixtures

@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from ftclient.local_backend import models as lm

    lm.quiet_offline_libraries()
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def local_backend_env(tmp_path, monkeypatch):
    """FTC_HOME in tmp_path, offline, one torch thread per worker (no spinning threads
    fighting for few cores), and the local backend registered for the test."""
    from ftclient.backends import register_backend, unregister_backend
    from ftclient.local_backend.backend import LocalBackend

    monkeypatch.setenv("FTC_HOME", str(tmp_path / "ftc-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    register_backend("local", LocalBackend, replace=True)
    yield
    unregister_backend("local")


def wait_for(pred, timeout: float = 90.0, what: str = "condition"):
    """Poll ``pred`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def record_trained_job(trained: dict, home: Path):
    """The ``trained`` fixture's adapter recorded as a succeeded local job in the store under
    ``home`` (FTC_HOME), with its spec and training file: what a job id resolves to."""
    from ftclient.store import Store

    home.mkdir(parents=True, exist_ok=True)
    with Store(home / "ftc.db") as st:
        spec = trained["spec"].model_dump(mode="json")
        spec["data"]["train"] = str(trained["train"])
        job = st.new_job("local", spec, model=str(trained["base"]))
        st.update_state(job.id, "succeeded", fine_tuned_model=str(trained["adapter"]))
    return job


def train_tiny_adapter(d: Path, *, examples: int = 12, epochs: int = 1, r: int = 4, learning_rate: float | None = None):
    """A LoRA adapter trained on CPU on the tiny model (built under ``d``) with ``examples``
    support tickets: ``(train result, spec, base model folder, training file)``."""
    from ftclient.local_backend import models as lm
    from ftclient.local_backend import train as lt
    from ftclient.spec import parse_spec

    lm.quiet_offline_libraries()
    tiny = build_tiny_model(d / "base")
    write_jsonl(d / "train.jsonl", sft_records(examples))
    hyper = {"epochs": epochs, "batch_size": 4, "max_seq_len": 128, "seed": 7,
             "lora": {"r": r, "alpha": 2 * r, "dropout": 0.0}}
    if learning_rate is not None:
        hyper["learning_rate"] = learning_rate
    spec = parse_spec({"name": "tickets", "base_model": str(tiny), "data": {"train": "train.jsonl"},
                       "hyperparameters": hyper, "local": {"device": "cpu", "packing": False}}, base_dir=d)
    res = lt.train(spec, output_dir=d / "out", plan=lt.make_plan(spec, devices=["cpu"]))
    assert res.completed
    return res, spec, tiny, d / "train.jsonl"
