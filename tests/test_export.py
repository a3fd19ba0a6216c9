"""``ftc export``: a tiny local job's adapter, and the adapter merged into its base, written as
folders other tools load; the merged model loads without PEFT and answers as the adapter does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("trl")

from tiny_model import no_threads_left_behind, record_trained_job  # noqa: F401,E402

from ftclient.errors import ConfigError, UsageError  # noqa: E402
from ftclient import export_model as export  # noqa: E402 - the flat public API
from ftclient.local_backend import train as lt  # noqa: E402
from ftclient.store import Store  # noqa: E402

PROMPTS = [[{"role": "user", "content": f"my card number {i} is late"}] for i in range(10)]


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "ftc-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _greedy(model, tok):
    return lt.generate(model, tok, PROMPTS, max_new_tokens=6, batch_size=5)


def test_merged_loads_without_peft_and_answers_as_the_adapter(trained, tmp_path):
    out = tmp_path / "merged"
    res = export(f"local:{trained['adapter']}", "merged", out)
    assert res["format"] == "merged" and res["merged_adapter"] is True and Path(res["out"]) == out.resolve()
    assert (out / "config.json").is_file() and any(p.suffix == ".safetensors" for p in out.iterdir())
    assert not (out / "adapter_config.json").exists()
    card = (out / "README.md").read_text()
    assert str(trained["base"]) in card and "merged" in card
    # the same greedy answers as `ftc chat` with the adapter, on 10 prompts
    adapted, tok = lt.load_for_inference(trained["adapter"], device="cpu")
    want = _greedy(adapted, tok)
    # loaded in a process where peft cannot be imported: a plain transformers checkpoint
    code = ("import sys, json; sys.modules['peft'] = None\n"
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            f"m = AutoModelForCausalLM.from_pretrained({str(out)!r}); t = AutoTokenizer.from_pretrained({str(out)!r})\n"
            f"prompts = {json.dumps(PROMPTS)}\n"
            "outs = []\n"
            "for p in prompts:\n"
            "    ids = t.apply_chat_template(p, add_generation_prompt=True, return_tensors='pt', return_dict=True)\n"
            "    g = m.generate(**ids, max_new_tokens=6, do_sample=False, pad_token_id=t.pad_token_id)\n"
            "    outs.append(t.decode(g[0, ids['input_ids'].shape[1]:], skip_special_tokens=True).strip())\n"
            "print(json.dumps(outs))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got == [w.strip() for w in want]


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_adapter_export_with_its_card_from_the_job_store(trained, tmp_path):
    home = tmp_path / "ftc-home"
    job = record_trained_job(trained, home)
    spec = {**trained["spec"].model_dump(mode="json"), "data": {"train": str(trained["train"])}}
    out = tmp_path / "adapter"
    res = export(job.id, "adapter", out)
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= set(res["files"])
    assert any(f.startswith("tokenizer") for f in res["files"])
    card = (out / "README.md").read_text()
    import hashlib

    assert hashlib.sha256(trained["train"].read_bytes()).hexdigest() in card
    assert job.id in card and "| examples | 12 |" in card and "| epochs | 1 |" in card
    # a job of `base_model: default` names the model the alias stands for
    with Store(home / "ftc.db") as st:
        dflt = st.new_job("local", {**spec, "base_model": "default"}, model="default")
        st.update_state(dflt.id, "succeeded", fine_tuned_model=str(trained["adapter"]))
    export(dflt.id, "adapter", tmp_path / "dflt")
    from ftclient.backends import default_model_of

    assert f"| base model | {default_model_of('local')} |" in (tmp_path / "dflt" / "README.md").read_text()
    # the adapter loads on its base
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(trained["base"])), str(out))
    assert model.peft_config["default"].r == 4


def test_refusals_leave_nothing_behind(trained, tmp_path, monkeypatch):
    full = tmp_path / "full"  # a model folder without an adapter: nothing to export as one
    with pytest.raises(UsageError, match="no adapter"):
        export(f"local:{trained['base']}", "adapter", full)
    assert not full.exists()
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="not an empty folder"):
        export(f"local:{trained['adapter']}", "merged", busy)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    with pytest.raises(UsageError, match="unknown export format"):
        export(f"local:{trained['adapter']}", "onnx", tmp_path / "x")
    with pytest.raises(UsageError, match="keeps the model's weights") as ei:
        export("openai:ft:gpt-4o-mini-2024-07-18:acme::abc123", "merged", tmp_path / "y")
    assert "never leave" in ei.value.hint
    with pytest.raises(UsageError, match="keeps the model's weights") as ei:
        export("together:acme/Meta-Llama-3.1-8B-Instruct-Reference-tickets-0123abcd", "merged", tmp_path / "z")
    assert "ftc jobs download" in ei.value.hint
    # too little disk space: said before anything is written
    import shutil as _shutil

    real = _shutil.disk_usage
    monkeypatch.setattr(_shutil, "disk_usage", lambda p: real(p)._replace(free=1000))
    with pytest.raises(ConfigError, match="not enough disk space"):
        export(f"local:{trained['adapter']}", "merged", tmp_path / "small")
    monkeypatch.setattr(_shutil, "disk_usage", real)
    assert not (tmp_path / "small").exists()
    # a write that fails half-way (or Ctrl-C) leaves no folder and no hidden partial one
    from transformers import PreTrainedModel

    def boom(self, *a, **k):
        (Path(a[0]) / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", boom)
    with pytest.raises(KeyboardInterrupt):
        export(f"local:{trained['adapter']}", "merged", tmp_path / "cut")
    assert not (tmp_path / "cut").exists() and not list(tmp_path.glob(".cut.*"))


def test_cli_export_json(trained, tmp_path, ftc):
    out = tmp_path / "cli-adapter"
    r = ftc("export", str(trained["adapter"]), "--format", "adapter", "--out", str(out), "--json")
    assert r.code == 0, r.err
    d = r.json()
    assert d["format"] == "adapter" and Path(d["out"]) == out.resolve() and d["bytes"] > 0
    r = ftc("export", str(trained["adapter"]), "--format", "adapter", "--out", str(out))
    assert r.code == 2 and "not an empty folder" in r.err and "Traceback" not in r.err
    r = ftc("export", str(trained["adapter"]), "--format", "merged", "--out", str(tmp_path / "q"), "--quant", "q8_0")
    assert r.code == 2 and "--quant" in r.err


def test_vllm_export_serves_the_merged_model_or_the_adapter_on_its_hub_base(trained, tmp_path):
    import os
    import shlex
    import shutil

    # a base that is a folder on this machine: vLLM gets the merged model
    out = tmp_path / "vllm-merged"
    res = export(f"local:{trained['adapter']}", "vllm", out)
    assert res["mode"] == "merged" and (out / "model" / "config.json").is_file()
    cmd = shlex.split(res["command"])
    assert cmd[:3] == ["vllm", "serve", "./model"] and cmd[cmd.index("--served-model-name") + 1] == res["served_model_name"]
    tok_cfg = json.loads((trained["adapter"] / "tokenizer_config.json").read_text())
    own = (trained["adapter"] / "chat_template.jinja").read_text() if (trained["adapter"] / "chat_template.jinja").exists() \
        else tok_cfg["chat_template"]
    assert (out / "chat_template.jinja").read_text() == own and "--chat-template" in cmd
    script = out / "serve-vllm.sh"
    assert os.access(script, os.X_OK) and res["command"] in script.read_text()
    assert subprocess.run(["sh", "-n", str(script)]).returncode == 0  # valid shell
    # a base vLLM can fetch by its hub id: the adapter, loaded with --enable-lora
    hub = tmp_path / "hub-adapter"
    shutil.copytree(trained["adapter"], hub)
    meta = json.loads((hub / "ftc_train.json").read_text())
    (hub / "ftc_train.json").write_text(json.dumps({**meta, "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct"}))
    res = export(f"local:{hub}", "vllm", tmp_path / "vllm-lora")
    cmd = shlex.split(res["command"])
    assert res["mode"] == "adapter" and cmd[:3] == ["vllm", "serve", "HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert "--enable-lora" in cmd and cmd[cmd.index("--lora-modules") + 1] == f"{res['served_model_name']}=./adapter"
    assert cmd[cmd.index("--max-lora-rank") + 1] == "4"
    assert (tmp_path / "vllm-lora" / "adapter" / "adapter_config.json").is_file()
    assert not list(tmp_path.glob(".vllm-*"))  # no staging left behind


def test_gguf_export_loads_with_transformers_and_answers_as_the_adapter(trained, tmp_path):
    out = tmp_path / "gguf"
    res = export(f"local:{trained['adapter']}", "gguf", out)
    assert res["quant"] == "f16" and res["architecture"] == "llama" and res["tensors"] > 0
    gguf_file = Path(res["gguf"])
    assert gguf_file.parent == out.resolve() and gguf_file.suffix == ".gguf" and (out / "README.md").is_file()
    assert "GGUF" in (out / "README.md").read_text()
    assert not list(tmp_path.glob(".gguf.*"))  # the merged staging copy is gone
    adapted, tok = lt.load_for_inference(trained["adapter"], device="cpu")
    want = _greedy(adapted, tok)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(out), gguf_file=gguf_file.name)
    gtok = AutoTokenizer.from_pretrained(str(out), gguf_file=gguf_file.name)
    if gtok.pad_token is None:
        gtok.pad_token = gtok.eos_token
    assert _greedy(model, gtok) == want
    # q8_0: smaller, and a clear refusal of a quantisation it does not write
    q8 = export(f"local:{trained['adapter']}", "gguf", tmp_path / "q8", quant="q8_0")
    assert q8["quant"] == "q8_0" and q8["bytes"] < res["bytes"]
    with pytest.raises(UsageError, match="unknown quantisation"):
        export(f"local:{trained['adapter']}", "gguf", tmp_path / "q4", quant="q4_k")
