"""GGUF export (``ftclient.local_backend.export_gguf.write_gguf``).

A merged checkpoint written as one ``.gguf`` file must load back with transformers' own
GGUF reader and behave like the original: the same token ids for chat-rendered prompts,
the same greedy continuations, logits within the rounding of the chosen quantisation. The
file must also hold what llama.cpp reads (hyperparameters, tokenizer, chat template, the
Q/K row order of its Llama graph, no output tensor for tied embeddings), and a failed or
interrupted write must leave nothing behind.

The models are tiny and random. Their matrices are scaled up (x5) before export: at the
default initialisation attention is nearly uniform, so even a wrong Q/K row order changes
the logits by only ~2e-3, too close to f16 rounding to tell apart; scaled, a wrong order
moves them by up to 1.6 while f16 rounding stays below 3e-3.

Each GGUF is loaded from a folder of its own: with a ``tokenizer.json`` beside it,
``AutoTokenizer.from_pretrained(folder, gguf_file=...)`` would use that file instead of the
tokenizer in the GGUF.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("gguf")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_model import SYSTEM, TICKETS, no_threads_left_behind, tiny  # noqa: E402,F401  (fixtures)

from ftclient.errors import UsageError  # noqa: E402

# Max |logit difference| against the original float32 model, over the 10 prompts. Measured
# (tiny models scaled x5, logits up to ~2.5 in magnitude): f16 2.4e-3 / 1.3e-3 / 1.6e-3 and
# q8_0 6.0e-2 / 3.4e-2 / 4.8e-2 (llama / qwen2 / qwen3). A wrong Q/K row order: up to 1.6.
F16_TOL = 1e-2
Q8_0_TOL = 0.15
NEW_TOKENS = 8
SCALE = 5.0

PROMPTS = [text for text, _, _ in TICKETS[:10]]
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _scale_and_save(model, out: Path) -> Path:
    """Scale the matrices (and randomise the biases) of ``model``, then save it to ``out``."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2:
                p.mul_(SCALE)
            elif name.endswith(".bias"):
                p.normal_(0.0, 0.5)
    model.save_pretrained(out)
    return out


def _copy_tokenizer(src: Path, dst: Path, *, qwen_split: bool = False) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(src / f, dst / f)
    if qwen_split:
        # Qwen's pre-tokenizer: a regex split, then byte-level without GPT-2's regex.
        tj = json.loads((dst / "tokenizer.json").read_text(encoding="utf-8"))
        tj["normalizer"] = {"type": "NFC"}
        tj["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": _QWEN2_SPLIT}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        ]}
        (dst / "tokenizer.json").write_text(json.dumps(tj), encoding="utf-8")


@pytest.fixture(scope="module")
def models(tiny, tmp_path_factory) -> dict[str, Path]:
    """Three merged checkpoints: Llama (tied embeddings, GPT-2 pre-tokenizer), Qwen2 (untied,
    q/k/v biases, Qwen pre-tokenizer), Qwen3 (tied, q/k norms)."""
    from transformers import (AutoModelForCausalLM, AutoTokenizer, Qwen2Config, Qwen2ForCausalLM,
                              Qwen3Config, Qwen3ForCausalLM)

    root = tmp_path_factory.mktemp("export-gguf")
    out = {}

    llama = root / "llama"
    _copy_tokenizer(tiny, llama)
    out["llama"] = _scale_and_save(AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.float32), llama)

    tok = AutoTokenizer.from_pretrained(tiny)
    shape = {"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
             "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    torch.manual_seed(1)
    qwen2 = root / "qwen2"
    _copy_tokenizer(tiny, qwen2, qwen_split=True)
    out["qwen2"] = _scale_and_save(Qwen2ForCausalLM(Qwen2Config(**shape, tie_word_embeddings=False)), qwen2)
    # head_dim 128: transformers' GGUF reader ignores qwen3.attention.key_length and takes
    # Qwen3Config's default (128), so only such a file loads back there (real Qwen3 models
    # all use 128; llama.cpp reads the key length the file states).
    qwen3 = root / "qwen3"
    _copy_tokenizer(tiny, qwen3, qwen_split=True)
    out["qwen3"] = _scale_and_save(Qwen3ForCausalLM(Qwen3Config(**shape, head_dim=128, tie_word_embeddings=True)),
                                   qwen3)
    return out


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory):
    """``exported(arch, quant) -> (gguf path, report, progress calls)``, written once each."""
    from ftclient.local_backend.export_gguf import write_gguf

    root = tmp_path_factory.mktemp("gguf-out")
    cache: dict = {}

    def get(arch: str, quant: str):
        if (arch, quant) not in cache:
            calls: list = []
            out = root / f"{arch}-{quant}" / f"{arch}.{quant}.gguf"  # a folder of its own
            info = write_gguf(models[arch], out, quant=quant, progress=lambda m, f: calls.append((m, f)))
            cache[arch, quant] = (out, info, calls)
        return cache[arch, quant]

    return get


def _chat_ids(tok, text: str) -> list[int]:
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
    rendered = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    return tok(rendered)["input_ids"]  # as a plain encode: BOS/EOS added or not, alike


def _load_pair(model_dir: Path, gguf_file: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ref_tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(gguf_file.parent, gguf_file=gguf_file.name)
    return ref, ref_tok, model, tok


def _compare(ref, ref_tok, model, tok, *, generate: bool) -> float:
    """Assert equal token ids (and greedy continuations); return the max |logit diff|."""
    worst = 0.0
    for text in PROMPTS:
        ids = _chat_ids(ref_tok, text)
        assert _chat_ids(tok, text) == ids, f"the GGUF tokenizer encodes {text!r} differently"
        x = torch.tensor([ids])
        with torch.no_grad():
            diff = (ref(x).logits - model(x).logits).abs().max().item()
            worst = max(worst, diff)
            if generate:
                kw = {"max_new_tokens": NEW_TOKENS, "do_sample": False, "pad_token_id": ref_tok.pad_token_id}
                a, b = ref.generate(x, **kw), model.generate(x, **kw)
                assert a.shape[1] > x.shape[1]
                assert torch.equal(a, b), f"greedy continuations differ for {text!r}: {a[0, len(ids):]} vs {b[0, len(ids):]}"
    return worst


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_f16_loads_back_and_matches_the_original(arch, models, exported):
    path, info, calls = exported(arch, "f16")
    ref, ref_tok, model, tok = _load_pair(models[arch], path)
    assert type(model) is type(ref)
    assert model.config.tie_word_embeddings == ref.config.tie_word_embeddings
    worst = _compare(ref, ref_tok, model, tok, generate=True)
    assert worst < F16_TOL, f"f16 logits differ by {worst:.2e}"
    # the chat template came through the GGUF, not from the original folder
    assert tok.chat_template == ref_tok.chat_template
    assert info["quant"] == "f16" and info["tensor_types"].keys() == {"F16", "F32"}
    fractions = [f for _, f in calls if f is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_q8_0_loads_back_within_tolerance(arch, models, exported):
    path, info, _ = exported(arch, "q8_0")
    ref, ref_tok, model, tok = _load_pair(models[arch], path)
    worst = _compare(ref, ref_tok, model, tok, generate=False)
    assert worst < Q8_0_TOL, f"q8_0 logits differ by {worst:.2e}"
    assert worst > 1e-4  # really quantised, not a float copy
    assert info["tensor_types"].keys() == {"Q8_0", "F32"}
    assert info["bytes"] < exported(arch, "f16")[1]["bytes"]


#: The largest logit difference each other type is allowed on the Llama test model (about 1.5
#: times what it measured: bf16 0.027, q5_1 0.50, q5_0 0.67, q4_1 0.96, q4_0 1.21), and the
#: file's size as a fraction of f16's at most (measured 1.0, 0.468, 0.442, 0.415, 0.389).
LOSSY = {"bf16": (0.05, 1.0), "q5_1": (0.8, 0.5), "q5_0": (1.0, 0.47), "q4_1": (1.5, 0.44), "q4_0": (1.8, 0.41)}


@pytest.mark.parametrize("quant", list(LOSSY))
def test_every_other_quantisation_loads_back_within_its_tolerance(quant, models, exported):
    path, info, _ = exported("llama", quant)
    ref, ref_tok, model, tok = _load_pair(models["llama"], path)
    worst = _compare(ref, ref_tok, model, tok, generate=False)
    tol, size = LOSSY[quant]
    assert 1e-4 < worst < tol, f"{quant} logits differ by {worst:.2e}"
    assert info["tensor_types"].keys() == {quant.upper(), "F32"}
    assert info["bytes"] <= size * exported("llama", "f16")[1]["bytes"]


# ----------------------------------------------------------------------------- what llama.cpp reads


def _fields(path: Path) -> dict:
    import gguf

    reader = gguf.GGUFReader(path)
    out = {}
    for key, field in reader.fields.items():
        if field.types and field.types[0] == gguf.GGUFValueType.ARRAY:
            out[key] = [field.contents(i) for i in range(len(field.data))]
        else:
            out[key] = field.contents()
    return out, reader


@pytest.mark.parametrize("arch,pre,tied", [("llama", "gpt-2", True), ("qwen2", "qwen2", False)])
def test_metadata_holds_what_llama_cpp_reads(arch, pre, tied, models, exported):
    path, info, _ = exported(arch, "f16")
    f, reader = _fields(path)
    cfg = json.loads((models[arch] / "config.json").read_text(encoding="utf-8"))
    tc = json.loads((models[arch] / "tokenizer_config.json").read_text(encoding="utf-8"))
    template = (models[arch] / "chat_template.jinja").read_text(encoding="utf-8")
    a = arch
    assert f["general.architecture"] == a and f["general.name"] == f"{arch}.f16"
    assert f[f"{a}.context_length"] == cfg["max_position_embeddings"]
    assert f[f"{a}.embedding_length"] == cfg["hidden_size"]
    assert f[f"{a}.block_count"] == cfg["num_hidden_layers"]
    assert f[f"{a}.feed_forward_length"] == cfg["intermediate_size"]
    assert f[f"{a}.attention.head_count"] == cfg["num_attention_heads"]
    assert f[f"{a}.attention.head_count_kv"] == cfg["num_key_value_heads"]
    assert f[f"{a}.rope.dimension_count"] == cfg["hidden_size"] // cfg["num_attention_heads"]
    assert f[f"{a}.rope.freq_base"] == pytest.approx(cfg["rope_parameters"]["rope_theta"])
    assert f[f"{a}.attention.layer_norm_rms_epsilon"] == pytest.approx(cfg["rms_norm_eps"])
    assert f[f"{a}.vocab_size"] == cfg["vocab_size"] == len(f["tokenizer.ggml.tokens"])
    # tokenizer: GPT-2 style BPE with its pre-tokenizer, merges, special ids and chat template
    tj = json.loads((models[arch] / "tokenizer.json").read_text(encoding="utf-8"))
    assert f["tokenizer.ggml.model"] == "gpt2" and f["tokenizer.ggml.pre"] == pre == info["tokenizer_pre"]
    assert f["tokenizer.ggml.merges"] == [" ".join(m) for m in tj["model"]["merges"]]
    assert f["tokenizer.ggml.tokens"][:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert f["tokenizer.ggml.token_type"][:4] == [3, 3, 3, 1]  # CONTROL x3, then NORMAL
    tokens = f["tokenizer.ggml.tokens"]
    assert tokens[f["tokenizer.ggml.bos_token_id"]] == tc["bos_token"]
    assert tokens[f["tokenizer.ggml.eos_token_id"]] == tc["eos_token"]
    assert tokens[f["tokenizer.ggml.padding_token_id"]] == tc["pad_token"]
    assert f["tokenizer.ggml.add_bos_token"] is False  # the tokenizer adds no BOS itself
    assert f["tokenizer.chat_template"] == template and info["chat_template"] is True
    # tied embeddings: no output tensor (llama.cpp reuses token_embd)
    names = {t.name for t in reader.tensors}
    assert ("output.weight" in names) is (not tied) and info["tied_embeddings"] is tied
    assert {"token_embd.weight", "output_norm.weight", "blk.1.ffn_down.weight"} <= names
    assert info["tensors"] == len(reader.tensors)
    assert info["bytes"] == path.stat().st_size
    assert set(info["metadata_keys"]) == {k for k in f if not k.startswith("GGUF.")}
    assert info["warnings"] == []


def test_llama_q_and_k_rows_are_interleaved_per_head(models, exported):
    """llama.cpp's Llama graph rotates adjacent rows (2i, 2i+1) of each head, transformers
    rotates rows (i, i + d/2): the file holds each head's rows interleaved. Qwen does not."""
    from safetensors.torch import load_file

    weights = load_file(models["llama"] / "model.safetensors")
    _, reader = _fields(exported("llama", "f16")[0])
    tensors = {t.name: t for t in reader.tensors}
    for proj, gname, heads in (("q_proj", "attn_q", 4), ("k_proj", "attn_k", 2)):
        hf = weights[f"model.layers.0.self_attn.{proj}.weight"].float()
        got = torch.from_numpy(tensors[f"blk.0.{gname}.weight"].data.astype("float32"))
        d = hf.shape[0] // heads
        for h in range(heads):
            for i in range(d // 2):
                assert torch.allclose(got[h * d + 2 * i], hf[h * d + i], atol=1e-3)
                assert torch.allclose(got[h * d + 2 * i + 1], hf[h * d + i + d // 2], atol=1e-3)
        assert not torch.allclose(got, hf, atol=1e-3)
    qwen = load_file(models["qwen2"] / "model.safetensors")["model.layers.0.self_attn.q_proj.weight"]
    _, qreader = _fields(exported("qwen2", "f16")[0])
    qgot = next(t for t in qreader.tensors if t.name == "blk.0.attn_q.weight")
    assert torch.allclose(torch.from_numpy(qgot.data.astype("float32")), qwen, atol=1e-3)


def test_llama3_rope_scaling_is_written_as_rope_freqs(models, tmp_path):
    """Llama 3.1+'s RoPE scaling reaches llama.cpp as per-frequency divisors (rope_freqs),
    equal to the ratio of transformers' plain and llama3-scaled inverse frequencies."""
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    from ftclient.local_backend.export_gguf import write_gguf

    src = tmp_path / "llama3"
    shutil.copytree(models["llama"], src)
    cfg = json.loads((src / "config.json").read_text(encoding="utf-8"))
    # theta 5e5, head_dim 8: wavelengths 6, 167, 4443, 118142 -- one in each of the
    # three bands (kept, blended, divided by the factor)
    cfg["rope_parameters"] = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
                              "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    (src / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    out = tmp_path / "out" / "m.gguf"
    write_gguf(src, out)
    _, reader = _fields(out)
    got = torch.from_numpy(next(t for t in reader.tensors if t.name == "rope_freqs.weight").data.copy())

    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](LlamaConfig(**cfg))
    d = cfg["head_dim"]
    plain = 1.0 / (500000.0 ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    expected = (plain / scaled.double()).float()
    assert torch.allclose(got, expected, rtol=1e-4)
    assert got[0] == 1.0 and got[-1] == 32.0 and 1.0 < got[2] < 32.0


# ----------------------------------------------------------------------------- refusals and failures


def test_unsupported_architecture_is_a_usage_error(tiny, tmp_path):
    from ftclient.local_backend.export_gguf import write_gguf

    src = tmp_path / "gpt2"
    shutil.copytree(tiny, src)
    cfg = json.loads((src / "config.json").read_text(encoding="utf-8"))
    cfg.update(architectures=["GPT2LMHeadModel"], model_type="gpt2")
    (src / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    out = tmp_path / "out" / "m.gguf"
    with pytest.raises(UsageError) as e:
        write_gguf(src, out)
    assert "GPT2LMHeadModel" in e.value.message
    assert "LlamaForCausalLM" in e.value.hint and "Qwen2ForCausalLM" in e.value.hint
    assert not out.exists()


@pytest.mark.parametrize("case", ["quant", "no-config", "sentencepiece-tokenizer"])
def test_other_refusals_are_usage_errors(case, tiny, tmp_path):
    from ftclient.local_backend.export_gguf import write_gguf

    src = tmp_path / "m"
    shutil.copytree(tiny, src)
    kw = {}
    if case == "quant":
        kw["quant"] = "q4_k"
    elif case == "no-config":
        (src / "config.json").unlink()
    else:
        tj = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
        tj["model"]["byte_fallback"] = True
        (src / "tokenizer.json").write_text(json.dumps(tj), encoding="utf-8")
    out = tmp_path / "out" / "m.gguf"
    with pytest.raises(UsageError):
        write_gguf(src, out, **kw)
    assert not out.exists()


@pytest.mark.parametrize("exc", [KeyboardInterrupt, OSError])
def test_interrupted_write_leaves_no_partial_file(exc, models, tmp_path, monkeypatch):
    import gguf

    from ftclient.local_backend.export_gguf import write_gguf

    real = gguf.GGUFWriter.write_tensor_data
    written = []

    def failing(self, tensor, *a, **k):
        if len(written) == 5:
            raise exc("stopped midway")
        written.append(tensor.nbytes)
        return real(self, tensor, *a, **k)

    out_dir = tmp_path / "out"
    monkeypatch.setattr(gguf.GGUFWriter, "write_tensor_data", failing)
    with pytest.raises(exc):
        write_gguf(models["llama"], out_dir / "m.gguf")
    assert len(written) == 5  # it did stop midway
    assert list(out_dir.iterdir()) == []  # no .gguf, no temporary file

    # over an existing file: the old one stays as it was
    (out_dir / "m.gguf").write_bytes(b"old")
    written.clear()
    with pytest.raises(exc):
        write_gguf(models["llama"], out_dir / "m.gguf")
    assert [p.name for p in out_dir.iterdir()] == ["m.gguf"]
    assert (out_dir / "m.gguf").read_bytes() == b"old"


def test_module_import_is_light():
    """``ftc --help`` must not import torch, gguf, safetensors or transformers."""
    import subprocess
    import sys

    code = ("import sys, ftclient.local_backend.export_gguf; "
            "print(sorted(m for m in ('torch', 'gguf', 'safetensors', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
