"""Token counts: the cookbook formula, bundled hash-verified encodings, no network,
exact open-model counts with a tokenizer built here, the labelled approximation."""

from __future__ import annotations

import hashlib
import inspect
import json
import shutil
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftclient import tokens
from ftclient.errors import ConfigError, DataError
from ftclient.tokens import encodings, hf, parallel, registry


@pytest.fixture(scope="module")
def ref_encodings():
    """Reference encodings built by tiktoken's own constructors (openai_public), fed
    the bundled files: proves pat_str / special tokens / ranks agree with ours."""
    import tiktoken
    import tiktoken_ext.openai_public as op
    from tiktoken.load import load_tiktoken_bpe

    out = {}
    orig = op.load_tiktoken_bpe
    try:
        for name in ("o200k_base", "cl100k_base"):
            path = str(tokens.RESOURCES / f"{name}.tiktoken")
            op.load_tiktoken_bpe = lambda url, expected_hash=None, _p=path: load_tiktoken_bpe(_p, expected_hash)
            out[name] = tiktoken.Encoding(**getattr(op, name)())
    finally:
        op.load_tiktoken_bpe = orig
    return out


def cookbook(enc, messages):
    """num_tokens_from_messages of the cookbook, string values only."""
    n = 0
    for m in messages:
        n += 3
        for k, v in m.items():
            if isinstance(v, str):
                n += len(enc.encode(v))
                if k == "name":
                    n += 1
    return n + 3


MSGS = [
    {"role": "system", "content": "You route support tickets."},
    {"role": "user", "name": "alice", "content": "My card hasn't arrived after 2 weeks!"},
    {"role": "assistant", "content": "card_arrival", "weight": 1},
]


def test_formula_matches_hand_count(ref_encodings):
    enc = ref_encodings["o200k_base"]
    c = tokens.get_counter("openai:gpt-4.1-mini")
    # hand: 3 per message + encoded strings (+1 for name) + 3 priming; weight not encoded
    pieces = ["system", MSGS[0]["content"], "user", "alice", MSGS[1]["content"], "assistant", "card_arrival"]
    expected = 3 * 3 + sum(len(enc.encode(p)) for p in pieces) + 1 + 3
    assert c.count_record({"messages": MSGS}) == expected
    assert c.exact and "tiktoken o200k_base" in c.basis and "cookbook" in c.basis


def test_content_parts_and_tool_calls(ref_encodings):
    enc = ref_encodings["o200k_base"]
    c = tokens.get_counter("openai:gpt-4o-mini")
    rec = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"},
                                         {"type": "image_url", "image_url": {"url": "http://x"}}]},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                                  "function": {"name": "lookup", "arguments": "{\"q\": 1}"}}]},
        ]
    }
    expected = 3 + len(enc.encode("user")) + len(enc.encode("Hello there")) + 3 + len(enc.encode("assistant")) \
        + len(enc.encode("lookup")) + len(enc.encode("{\"q\": 1}")) + 3
    assert c.count_record(rec) == expected


def test_dpo_counts_input_and_both_outputs(ref_encodings):
    enc = ref_encodings["o200k_base"]
    c = tokens.get_counter("openai:gpt-4.1-mini")
    inp = [{"role": "user", "content": "Say hi"}]
    pref = [{"role": "assistant", "content": "Hi!"}]
    npref = [{"role": "assistant", "content": "Go away."}]
    rec = {"input": {"messages": inp}, "preferred_output": pref, "non_preferred_output": npref}
    assert c.count_record(rec) == cookbook(enc, inp + pref + npref)
    total, prompt, completion = c.count_split([rec])
    assert prompt == [cookbook(enc, inp)]
    assert completion == [len(enc.encode("Hi!"))]


def test_prompt_completion_split(ref_encodings):
    enc = ref_encodings["o200k_base"]
    c = tokens.get_counter("openai:gpt-4.1-mini")
    total, prompt, completion = c.count_split([{"messages": MSGS}])
    assert prompt == [cookbook(enc, MSGS[:2])]
    assert completion == [len(enc.encode("card_arrival"))]
    assert total == [cookbook(enc, MSGS)]


@pytest.mark.parametrize(
    "model,enc_name",
    [("gpt-4o-mini", "o200k_base"), ("gpt-4.1-nano", "o200k_base"), ("gpt-4o-2024-08-06", "o200k_base"),
     ("o3-mini", "o200k_base"), ("gpt-4", "cl100k_base"), ("gpt-3.5-turbo", "cl100k_base")],
)
def test_encoding_selection(model, enc_name, ref_encodings):
    c = tokens.get_counter(f"openai:{model}")
    assert c.encoding_name == enc_name
    text = "Kartenlieferung dauert 14 Tage — 日本語 ok?"
    assert tokens.string_counts(c.encoding, [text]) == [len(ref_encodings[enc_name].encode(text))]


def test_o200k_and_cl100k_differ(ref_encodings):
    text = "Was ist mit meiner Überweisung passiert? 日本語のテキスト"
    assert len(ref_encodings["o200k_base"].encode(text)) != len(ref_encodings["cl100k_base"].encode(text))


def test_hashes_are_the_ones_tiktoken_expects():
    import tiktoken_ext.openai_public as op

    src = inspect.getsource(op)
    for name, sha in tokens.ENCODING_SHA256.items():
        assert sha in src
        assert hashlib.sha256((tokens.RESOURCES / f"{name}.tiktoken").read_bytes()).hexdigest() == sha


def test_tampered_file_is_rejected(tmp_path):
    bad = tmp_path / "cl100k_base.tiktoken"
    shutil.copy(tokens.RESOURCES / "cl100k_base.tiktoken", bad)
    data = bytearray(bad.read_bytes())
    data[10] = ord("A") if data[10] != ord("A") else ord("B")
    bad.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="sha256"):
        tokens.load_encoding("cl100k_base", bad)


def test_no_network_and_no_cache_written(tmp_path, monkeypatch, ref_encodings):
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", str(cache))

    def refuse(*a, **k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(encodings, "_encodings", {})
    monkeypatch.setattr(registry, "_counters", {})
    for model in ("gpt-4.1-mini", "gpt-4"):
        c = tokens.get_counter(f"openai:{model}")
        assert c.count_record({"messages": MSGS}) == cookbook(ref_encodings[c.encoding_name], MSGS)
    assert list(cache.iterdir()) == []


def test_fast_parse_equals_tiktoken_loader(ref_encodings):
    ours = tokens.load_encoding("cl100k_base")
    assert ours._mergeable_ranks == ref_encodings["cl100k_base"]._mergeable_ranks
    assert ours._pat_str == ref_encodings["cl100k_base"]._pat_str
    assert ours._special_tokens == ref_encodings["cl100k_base"]._special_tokens


def _reload(monkeypatch, name):
    """load_encoding(name) in a process that has not built it yet; True when it was parsed
    from the BPE file, False when its ranks came from the cache."""
    parsed = []
    real = encodings.parse_ranks
    monkeypatch.setattr(encodings, "_encodings", {})
    monkeypatch.setattr(encodings, "parse_ranks", lambda data: parsed.append(1) or real(data))
    enc = tokens.load_encoding(name)
    return enc, bool(parsed)


def test_parsed_ranks_are_kept_in_ftc_home_and_read_back(ftc_home, monkeypatch, ref_encodings):
    cache = encodings.ranks_cache_file("cl100k_base")
    assert str(cache).startswith(str(ftc_home)) and not cache.exists()
    first, parsed = _reload(monkeypatch, "cl100k_base")
    assert parsed and cache.is_file()
    again, parsed = _reload(monkeypatch, "cl100k_base")
    assert not parsed  # read from the cache, not the BPE file
    assert again._mergeable_ranks == ref_encodings["cl100k_base"]._mergeable_ranks
    text = "Where is my card? It's been 12 days <|endoftext|> "
    assert again.encode(text, disallowed_special=()) == ref_encodings["cl100k_base"].encode(text, disallowed_special=())


def test_a_corrupt_or_unwritable_cache_means_parsing_again(ftc_home, monkeypatch, tmp_path, ref_encodings):
    _reload(monkeypatch, "cl100k_base")
    cache = encodings.ranks_cache_file("cl100k_base")
    blob = bytearray(cache.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte: its sha256 no longer matches
    cache.write_bytes(bytes(blob))
    enc, parsed = _reload(monkeypatch, "cl100k_base")
    assert parsed and enc._mergeable_ranks == ref_encodings["cl100k_base"]._mergeable_ranks
    assert not _reload(monkeypatch, "cl100k_base")[1]  # rewritten whole
    cache.write_bytes(b"")  # cut short
    assert _reload(monkeypatch, "cl100k_base")[1]
    # a home that is a file: nothing can be kept, counting still works
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("x")
    monkeypatch.setenv("FTC_HOME", str(blocked))
    enc, parsed = _reload(monkeypatch, "cl100k_base")
    assert parsed and enc._mergeable_ranks == ref_encodings["cl100k_base"]._mergeable_ranks


def test_a_file_given_by_path_is_never_cached(ftc_home, monkeypatch, tmp_path):
    copy = tmp_path / "cl100k_base.tiktoken"
    shutil.copy(tokens.RESOURCES / "cl100k_base.tiktoken", copy)
    monkeypatch.setattr(encodings, "_encodings", {})
    tokens.load_encoding("cl100k_base", copy)
    assert not (ftc_home / "cache").exists()


texts = st.lists(
    st.one_of(
        st.text(max_size=40),
        st.sampled_from(["", " ", "\n\n", "<|endofprompt|>", "a<|endoftext|>b", "  x  ", "don't", "123456"]),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(units=st.lists(texts, max_size=8))
def test_batched_counts_equal_one_by_one(units, ref_encodings):
    enc = tokens.load_encoding("o200k_base")
    ref = ref_encodings["o200k_base"]
    expected = [sum(len(ref.encode_ordinary(s)) for s in u) for u in units]
    assert tokens.batch_unit_counts(enc, units) == expected
    assert tokens.batch_unit_counts(enc, units, threads=1) == expected


def test_chunked_parallel_counts(monkeypatch, ref_encodings):
    monkeypatch.setattr(parallel, "_CHUNK_CHARS", 64)
    enc = tokens.load_encoding("o200k_base")
    strings = [f"ticket {i}: my card {'is late ' * (i % 5)}" for i in range(300)] + ["x <|endofprompt|> y"]
    expected = [len(ref_encodings["o200k_base"].encode_ordinary(s)) for s in strings]
    assert tokens.string_counts(enc, strings, threads=2) == expected


def test_approximation_is_labelled(ref_encodings):
    c = tokens.get_counter("together:some-org/Unknown-Model-7B")
    assert c.exact is False
    assert c.basis.startswith("estimated:") and "measured error" in c.basis
    rec = {"messages": MSGS}
    base = cookbook(ref_encodings["o200k_base"], MSGS)
    assert c.count_record(rec) == round(base * c.factor) + c.extra
    llama = tokens.get_counter("together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference")
    assert llama.extra > 0 and "Llama-3.1" in llama.basis


@pytest.fixture(scope="module")
def tiny_tokenizer_dir(tmp_path_factory):
    """A word-level tokenizer with a ChatML template, saved like a real model."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = "system user assistant you route tickets my card is late card_arrival hello".split()
    specials = ["<unk>", "<|im_start|>", "<|im_end|>"]
    vocab = {w: i for i, w in enumerate(specials + words)}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>",
                                   additional_special_tokens=["<|im_start|>", "<|im_end|>"])
    fast.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    d = tmp_path_factory.mktemp("tiny-model")
    fast.save_pretrained(d)
    return d


def test_open_model_exact_with_its_tokenizer(tiny_tokenizer_dir):
    c = tokens.get_counter(f"local:{tiny_tokenizer_dir}")
    assert c.exact is True and c.basis.startswith("exact:")
    rec = {"messages": [
        {"role": "system", "content": "you route tickets"},
        {"role": "user", "content": "my card is late"},
        {"role": "assistant", "content": "card_arrival", "weight": 1},
    ]}
    # per message: <|im_start|> + role + words + <|im_end|> (newlines are whitespace)
    assert c.count_record(rec) == (3 + 3) + (3 + 4) + (3 + 1)
    total, prompt, completion = c.count_split([rec])
    assert prompt == [(3 + 3) + (3 + 4) + 2]  # + "<|im_start|>assistant" generation prompt
    assert completion == [total[0] - prompt[0]]
    dpo = {"input": {"messages": rec["messages"][:2]},
           "preferred_output": [{"role": "assistant", "content": "card_arrival"}],
           "non_preferred_output": [{"role": "assistant", "content": "hello hello"}]}
    assert c.count_record(dpo) == (3 + 3) + (3 + 4) + (3 + 1) + (3 + 2)


TICKET = {"messages": [
    {"role": "system", "content": "you route tickets"},
    {"role": "user", "content": "my card is late"},
    {"role": "assistant", "content": "card_arrival"},
]}


def test_importing_the_package_loads_no_tokenizer_library():
    """tiktoken, tokenizers, jinja2 and transformers are imported by the count that needs them."""
    import subprocess
    import sys

    heavy = ["tiktoken", "tokenizers", "jinja2", "transformers", "torch"]
    code = (
        "import json, sys\n"
        "import ftclient.tokens as t\n"
        "assert all(getattr(t, n) is not None for n in t.__all__)\n"
        f"print(json.dumps([m for m in {heavy!r} if m in sys.modules]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == []


def test_open_model_counts_need_neither_transformers_nor_torch(tiny_tokenizer_dir):
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from ftclient import tokens\n"
        f"c = tokens.get_counter({('local:' + str(tiny_tokenizer_dir))!r})\n"
        f"n = c.count_record({TICKET!r})\n"
        "print(json.dumps([n, c.exact, c.basis, 'transformers' in sys.modules, 'torch' in sys.modules]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    n, exact, basis, transformers_loaded, torch_loaded = json.loads(r.stdout.strip().splitlines()[-1])
    assert (n, exact) == ((3 + 3) + (3 + 4) + (3 + 1), True)
    assert "tokenizer.json" in basis and "rendered offline" in basis
    assert not transformers_loaded and not torch_loaded


def test_torch_free_counts_equal_transformers_counts(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    light = hf.load_hf_counter(str(tiny_tokenizer_dir))
    assert isinstance(light.tok, tokens.LightTokenizer)
    ref = tokens.HFCounter(AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir)), "transformers")
    dpo = {"input": {"messages": TICKET["messages"][:2]},
           "preferred_output": [{"role": "assistant", "content": "card_arrival"}],
           "non_preferred_output": [{"role": "assistant", "content": "hello hello hello"}]}
    recs = [TICKET, dpo, {"messages": TICKET["messages"][1:]}]
    assert light.count_split(recs) == ref.count_split(recs)


def test_hf_cache_snapshot_named_by_refs_main(tiny_tokenizer_dir, tmp_path, monkeypatch):
    repo = tmp_path / "hub" / "models--acme--tiny"
    shutil.copytree(tiny_tokenizer_dir, repo / "snapshots" / "abc123")
    (repo / "snapshots" / "old999").mkdir()
    (repo / "snapshots" / "old999" / "tokenizer.json").write_text("{}")  # broken, and not refs/main
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123\n")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert tokens.tokenizer_dir("acme/tiny") == repo / "snapshots" / "abc123"
    c = tokens.get_counter("hf:acme/tiny")
    assert c.exact is True and c.count_record(TICKET) == (3 + 3) + (3 + 4) + (3 + 1)
    assert tokens.tokenizer_dir("acme/absent") is None


def test_local_folder_without_tokenizer_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="no tokenizer"):
        tokens.get_counter(f"local:{tmp_path}")


def test_count_tokens_file_and_bad_lines(tmp_path, ref_encodings):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({"messages": MSGS}) + "\n\n" + json.dumps({"messages": MSGS[:2]}) + "\n")
    s = tokens.count_tokens(p, "openai:gpt-4.1-mini", per_example=True)
    enc = ref_encodings["o200k_base"]
    assert s.examples == 2
    assert s.per_example == [cookbook(enc, MSGS), cookbook(enc, MSGS[:2])]
    assert s.total_tokens == sum(s.per_example) and s.max_tokens == max(s.per_example)
    p.write_text(json.dumps({"messages": MSGS}) + "\n{not json\n")
    with pytest.raises(DataError, match=r":2:"):
        tokens.count_tokens(p, "openai:gpt-4.1-mini")
    p.write_text(json.dumps({"messages": MSGS}) + "\n" + json.dumps({"text": "x"}) + "\n")
    with pytest.raises(DataError, match=r":2: not a chat example"):
        tokens.count_tokens(p, "openai:gpt-4.1-mini")
    p.write_text("\n\n")
    with pytest.raises(DataError, match="no examples"):
        tokens.count_tokens(p, "openai:gpt-4.1-mini")


def test_bad_refs():
    with pytest.raises(ConfigError):
        tokens.get_counter("nosuch:model")
    with pytest.raises(ConfigError):
        tokens.get_counter("llama")


# ------------------------------------------------ large inputs: forked worker processes
def _mixed_records(n: int) -> list[dict]:
    """SFT in the usual shape (the fast path) mixed with every other shape."""
    out = []
    for i in range(n):
        base = [
            {"role": "system", "content": "You route support tickets." + (f" v{i % 7}" if i % 3 else "")},
            {"role": "user", "content": f"ticket {i}: my card {'is late ' * (i % 4)}"},
            {"role": "assistant", "content": f"label_{i % 11}"},
        ]
        k = i % 10
        if k == 1:
            base[1]["name"] = "alice"
        elif k == 2:
            base.append({"role": "user", "content": "and then?"})
        elif k == 3:
            base[0]["role"] = f"narrator{i % 5}"
        elif k == 4:
            base[2]["content"] = [{"type": "text", "text": "card "}, {"type": "text", "text": "arrival"}]
        elif k == 5:
            base[2]["weight"] = 0
        elif k == 6:
            out.append({"input": {"messages": base[:2]}, "preferred_output": [base[2]],
                        "non_preferred_output": [{"role": "assistant", "content": "no idea"}]})
            continue
        elif k == 7:
            out.append({"messages": base, "tools": [{"type": "function", "function": {"name": "lookup"}}]})
            continue
        elif k == 8:
            base[1]["content"] = f"x <|endofprompt|> y {i}"
        out.append({"messages": base})
    return out


@pytest.fixture
def fork_spy(monkeypatch):
    """Counts os.fork calls made by the token counter; runs 3 workers (2 children)."""
    import os
    import sys

    if not sys.platform.startswith("linux") or not hasattr(os, "fork"):
        pytest.skip("worker processes are forked on Linux only")
    import gc
    import threading
    import time

    # The counter never forks while another thread runs. Threads that earlier tests left
    # behind (an unclosed HTTP client's keep-alive) end once their owners are collected.
    gc.collect()
    deadline = time.monotonic() + 5
    while threading.active_count() > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    calls = []
    real_fork = os.fork

    def fork():
        calls.append(1)
        return real_fork()

    monkeypatch.setattr(os, "fork", fork)
    monkeypatch.setattr(parallel, "n_threads", lambda: 3)
    return calls


@pytest.mark.parametrize("model", ["gpt-4.1-mini", "gpt-4"])
def test_process_path_equals_single_thread(model, fork_spy, ref_encodings):
    c = tokens.OpenAICounter(model)
    recs = _mixed_records(400)
    serial = c._split_serial(recs, threads=1)
    assert fork_spy == []
    forked = c._split_counts(recs, process_min=1)
    assert len(fork_spy) == 2  # 3 ranges: this process + 2 children
    assert forked == serial
    assert c._split_counts(recs, process_min=10**9) == serial and len(fork_spy) == 2  # threads path
    ref = ref_encodings[c.encoding_name]
    simple = [i for i, r in enumerate(recs) if i % 10 in (0, 2, 3, 5)]
    assert [forked[0][i] for i in simple] == [cookbook(ref, recs[i]["messages"]) for i in simple]


def test_process_path_default_threshold(fork_spy, monkeypatch):
    c = tokens.OpenAICounter("gpt-4.1-mini")
    recs = _mixed_records(90)
    expected = c._split_serial(recs, threads=1)
    monkeypatch.setattr(parallel, "PROCESS_MIN_RECORDS", 100)
    assert c.count_split(recs) == expected and fork_spy == []
    monkeypatch.setattr(parallel, "PROCESS_MIN_RECORDS", 90)
    assert c.count_split(recs) == expected and len(fork_spy) == 2
    assert c.count_records(recs) == expected[0]


def test_no_fork_while_other_threads_run(fork_spy):
    import threading

    c = tokens.OpenAICounter("gpt-4.1-mini")
    recs = _mixed_records(60)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert c._split_counts(recs, process_min=1) == c._split_serial(recs, threads=1)
    finally:
        stop.set()
        t.join()
    assert fork_spy == []


@pytest.mark.parametrize(
    "bad,expected",
    [
        ([250], 251),  # in the last child's range (records 200-299)
        ([120], 121),  # the first child's (100-199)
        ([40, 260], 41),  # this process's range wins over a child's
        ([150, 270], 151),  # the first child's wins over the second's
    ],
)
def test_process_path_error_names_the_example(bad, expected, fork_spy):
    c = tokens.OpenAICounter("gpt-4.1-mini")
    recs = _mixed_records(300)
    for i in bad:
        recs[i] = {"messages": [{"role": "user", "content": "hi"}, "not a message"]}
    with pytest.raises(DataError, match=rf"^example {expected}: messages\[1\] must be an object"):
        c._split_counts(recs, process_min=1)
    assert len(fork_spy) == 2
    with pytest.raises(DataError, match=rf"^example {expected}:"):
        c._split_serial(recs, threads=1)


def test_process_path_other_errors_and_dead_worker(fork_spy, monkeypatch):
    import os

    c = tokens.OpenAICounter("gpt-4.1-mini")
    recs = _mixed_records(300)
    expected = c._split_serial(recs, threads=1)
    real_msg = tokens.OpenAICounter._msg

    def msg(m, other, content_out):
        if m.get("content") == "boom":
            raise RuntimeError("boom in a worker")
        return real_msg(m, other, content_out)

    monkeypatch.setattr(tokens.OpenAICounter, "_msg", staticmethod(msg))
    bad = [dict(r) for r in recs]
    bad[280] = {"messages": [{"role": "user", "content": "hi", "name": "x"}, {"role": "assistant", "content": "boom"}]}
    with pytest.raises(RuntimeError, match="boom in a worker"):
        c._split_counts(bad, process_min=1)
    # A child that dies without answering: its range is counted in this process.
    parent = os.getpid()
    real_serial = c._split_serial

    def serial(records, offset=0, threads=None):
        if os.getpid() != parent:
            os._exit(3)
        return real_serial(records, offset, threads)

    monkeypatch.setattr(c, "_split_serial", serial)
    assert c._split_counts(recs, process_min=1) == expected


def test_dedupe_decision_keeps_counts_exact(monkeypatch, ref_encodings):
    enc = tokens.load_encoding("o200k_base")
    ref = ref_encodings["o200k_base"]
    monkeypatch.setattr(parallel, "_DEDUPE_SAMPLE", 64)
    unique = [f"ticket {i}: where is my card?" for i in range(600)]
    repeated = [s for i in range(300) for s in ("You route support tickets to one banking intent.", f"t{i}", "label")]
    assert not parallel._dedupe_pays(unique)
    assert parallel._dedupe_pays(repeated)
    for flat in (unique, repeated, unique + repeated):
        assert tokens.flat_counts(enc, flat) == [len(ref.encode_ordinary(s)) for s in flat]


def test_a_provider_name_is_counted_by_the_model_behind_it(tiny_tokenizer_dir, tmp_path, monkeypatch):
    """Fireworks names its models its own way (llama-v3p1-8b-instruct): the catalogue's hf_id
    says which tokenizer to use when it is on this machine, and which family's approximation
    when it is not."""
    from ftclient.prices import load_catalogue
    from ftclient.tokens import registry

    ref = "fireworks:accounts/fireworks/models/llama-v3p1-8b-instruct"
    entry = load_catalogue().model(ref)
    assert entry.hf_id == "meta-llama/Llama-3.1-8B-Instruct"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setattr(registry, "_counters", {})
    approx = tokens.get_counter(ref, tokenizer=entry.hf_id)
    assert approx.exact is False and "Llama-3.1" in approx.basis and approx.extra > 0
    assert "Llama" not in tokens.get_counter(ref).basis  # the name alone says no family
    # with the tokenizer in the Hugging Face cache: exact
    repo = tmp_path / "hub" / "models--meta-llama--Llama-3.1-8B-Instruct"
    shutil.copytree(tiny_tokenizer_dir, repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123\n")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(registry, "_counters", {})
    exact = tokens.get_counter(ref, tokenizer=entry.hf_id)
    assert exact.exact is True and exact.count_record(TICKET) == (3 + 3) + (3 + 4) + (3 + 1)
