"""``ftc serve``: a tiny local job's LoRA adapter, merged once and served by ``transformers serve`` in a
real ``ftc serve`` process, answers the official ``openai`` client with the local backend's own greedy
answers; ``ftc eval`` against it matches ``ftc eval local:JOB``; Ctrl-C stops it cleanly; the refusals
are one message each."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")
pytest.importorskip("trl")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from tiny_model import no_threads_left_behind  # noqa: F401,E402  (fixture)
from tiny_model import record_trained_job, sft_records, train_tiny_adapter, write_jsonl  # noqa: E402

import ftclient  # noqa: E402
from ftclient.errors import UsageError  # noqa: E402
from ftclient.local_backend import train as lt  # noqa: E402
from ftclient.store import Store  # noqa: E402

#: The conversations asked: the training prompts (system + user) and two it never saw.
PROMPTS = [r["messages"][:-1] for r in sft_records()[:6]] + [
    [{"role": "user", "content": "my card number 3 is late"}],
    [{"role": "user", "content": "how do I close it"}]]
MAX_TOKENS = 6


def _ftc() -> list[str]:
    exe = Path(sys.executable).with_name("ftc")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "ftclient"]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _until(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.1)
    return pred()


def _json_line(proc: subprocess.Popen, timeout: float) -> dict:
    """The first line ``ftc serve --json`` prints (once the server answers)."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=0.5):
            line = proc.stdout.readline()
            if line:
                return json.loads(line)
        if proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"ftc serve did not become ready (exit {proc.poll()}): {proc.stderr.read()[-3000:]}")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A LoRA adapter trained on the tiny model long enough to answer differently per prompt, a
    finished local job of it in a job store of its own, and evaluation data."""
    d = tmp_path_factory.mktemp("serve")
    res, spec, tiny, train = train_tiny_adapter(d, examples=24, epochs=4, r=16, learning_rate=0.01)
    home = d / "ftc-home"
    job = record_trained_job({"adapter": res.model_dir, "base": tiny, "spec": spec, "train": train}, home)
    data = write_jsonl(d / "eval.jsonl", sft_records())
    adapted, tok = lt.load_for_inference(res.model_dir, device="cpu")
    want = lt.generate(adapted, tok, PROMPTS, max_new_tokens=MAX_TOKENS, batch_size=4)
    del adapted
    return {"adapter": Path(res.model_dir), "base": tiny, "home": home, "job": job.id, "data": data, "want": want}


@pytest.fixture(scope="module")
def served(trained):
    """A real ``ftc serve JOB --port 0 --json`` process, once ready: its JSON line and the process."""
    env = {**os.environ, "FTC_HOME": str(trained["home"]), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*_ftc(), "serve", trained["job"], "--port", "0", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        info = _json_line(proc, timeout=300)
        yield {"proc": proc, "info": info}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def home(trained, monkeypatch):
    monkeypatch.setenv("FTC_HOME", str(trained["home"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return trained["home"]


def test_the_openai_client_gets_the_adapters_greedy_answers(trained, served):
    info = served["info"]
    port = info["port"]
    assert info["model"] == trained["job"]  # a job is served under its id
    assert info["url"] == f"http://127.0.0.1:{port}/v1" and info["host"] == "127.0.0.1"
    assert info["engine"] == "transformers serve" and info["cache"] == "built"
    assert info["merged_from"] == str(trained["adapter"].resolve())
    client = openai.OpenAI(base_url=info["url"], api_key="x")
    assert [m.id for m in client.models.list()] == [trained["job"]]
    got = []
    for messages in PROMPTS:
        r = client.chat.completions.create(model=info["model"], messages=messages, temperature=0,
                                           max_tokens=MAX_TOKENS)
        assert r.model == info["model"] and r.choices[0].message.role == "assistant"
        got.append(r.choices[0].message.content.strip())
    want = trained["want"]
    assert len(set(want)) > 1, want  # the adapter answers differently per prompt: a real comparison
    assert got == want
    # another model name is refused by the server, not answered by the served model
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="gpt-4o", messages=PROMPTS[0], max_tokens=2)


def test_ftc_eval_against_the_server_matches_ftc_eval_local(trained, served, home, ftc):
    info = served["info"]
    common = ["--data", trained["data"], "--metric", "label", "--max-tokens", MAX_TOKENS, "--json"]
    here = ftc("eval", f"local:{trained['job']}", *common)
    assert here.code == 0, here.err
    there = ftc("eval", f"openai-compatible:{info['url']}#{info['model']}", *common, "--concurrency", "2")
    assert there.code == 0, there.err
    a, b = here.json(), there.json()
    assert (a["backend"], b["backend"]) == ("local", "openai-compatible")
    assert a["completed"] == b["completed"] == len(sft_records()) and b["failed"] == 0
    assert a["metrics"]["score"] == b["metrics"]["score"]
    with Store(home / "ftc.db") as st:
        answers = [{k: (r.output or "").strip() for k, r in st.eval_results(s["run_id"]).items()} for s in (a, b)]
    assert answers[0] == answers[1] and len(set(answers[0].values())) > 1


def test_refusals_are_one_message(trained, served, tmp_path, home, ftc):
    env = {**os.environ, "FTC_HOME": str(trained["home"]), "HF_HUB_OFFLINE": "1"}

    def run(*args: str, code: str | None = None) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-c", code, *args] if code else [*_ftc(), "serve", *args]
        return subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=120)

    port = str(served["info"]["port"])
    cases = [
        # a hosted model: its provider serves it
        (["openai:ft:gpt-4o-mini-2024-07-18:acme::abc123"], "OpenAI runs the model", "ftc chat openai:ft:"),
        (["together:acme/Meta-Llama-3.1-8B-Instruct-Reference-tickets-0123abcd"], "Together runs the model",
         "ftc jobs download"),
        ([str(tmp_path / "missing")], "no such file or directory", None),
        (["ftc-20990101-abcdef"], "no job", None),
        # the port the running server holds
        ([str(trained["adapter"]), "--port", port], f"port {port} on 127.0.0.1 is taken", "--port 0"),
        ([str(trained["adapter"]), "--name", "a b"], "cannot be a served model name", None),
    ]
    for args, said, hint in cases:  # in-process: what ends before any server starts
        r = ftc("serve", *args)
        assert r.code == 2, (args, r.out, r.err)
        assert said in r.err and "Traceback" not in r.err and r.out == "", (args, r.err)
        assert r.err.count("error:") == 1
        if hint:
            assert hint in r.err, r.err
    # the server's packages missing: the install line, before anything is merged or started
    blocked = ("import sys; sys.modules['uvicorn'] = None\n"
               "from ftclient.cli.main import main; main(['serve', sys.argv[1], '--port', '0'])")
    r = run(str(trained["adapter"]), code=blocked)
    assert r.returncode == 2 and "needs uvicorn" in r.stderr and 'pip install "ftclient[local]"' in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    # a server that dies while starting (weights that do not load): its last log line, exit 1
    broken = tmp_path / "broken"
    shutil.copytree(trained["base"], broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    r = run(str(broken), "--port", "0")
    assert r.returncode == 1 and r.stderr.startswith("error: the server stopped while starting"), r.stderr
    assert f"Check that {broken}" in r.stderr and r.stdout == ""
    # not ready in time: stopped, and said (a full model folder is served as it is: no merge)
    r = run(str(trained["base"]), "--port", "0", "--startup-timeout", "1")
    assert r.returncode == 2 and "not ready within 1 s" in r.stderr and "--startup-timeout" in r.stderr, r.stderr
    assert not list(trained["base"].parent.glob(".base.serve"))
    assert served["proc"].poll() is None  # the refusals left the running server alone


def test_python_api_second_start_reuses_the_merged_copy(trained, served):
    first = served["info"]
    with pytest.raises(UsageError, match="is taken"):
        ftclient.serve_model(str(trained["adapter"]), port=first["port"])
    with ftclient.serve_model(f"local:{trained['adapter']}", port=0, name="acme/tickets") as srv:
        info = srv.info()
        assert info["cache"] == "reused" and info["served"] == first["served"]
        assert info["port"] != first["port"] and srv.url == info["url"]
        client = openai.OpenAI(base_url=srv.url, api_key="x")
        assert [m.id for m in client.models.list()] == ["acme/tickets"]
        r = client.chat.completions.create(model="acme/tickets", messages=PROMPTS[0], temperature=0,
                                           max_tokens=MAX_TOKENS)
        assert r.choices[0].message.content.strip() == trained["want"][0]
        pid, port, run_dir = srv.pid, srv.port, Path(info["log"]).parent
    assert _pid_gone(pid) and not _port_open(port) and not run_dir.exists()
    # one merged copy per adapter version
    assert [p.name for p in Path(first["served"]).parent.iterdir()] == [Path(first["served"]).name]


def test_ctrl_c_stops_the_server_cleanly(served):
    """Last: SIGINT to `ftc serve` (Ctrl-C) stops the server and its model's process, frees the port,
    and exits with one line and no traceback."""
    proc, info = served["proc"], served["info"]
    assert _port_open(info["port"])
    proc.send_signal(signal.SIGINT)
    code = proc.wait(30)
    err = proc.stderr.read()
    assert code in (0, 130), err
    assert "Traceback" not in err and f"stopped serving {info['model']}" in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1, err
    assert _until(lambda: _pid_gone(info["pid"]), 5) and _until(lambda: not _port_open(info["port"]), 5)
    assert not Path(info["log"]).parent.exists()


def test_help_and_modules_import_nothing_heavy():
    code = ("import sys, json\n"
            "import ftclient.serve, ftclient.cli.serve_cmd, ftclient.local_backend.serve\n"
            "from ftclient.cli.main import cli\n"
            "try:\n    cli.main(['serve', '--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    mods = set(json.loads(r.stdout.strip().splitlines()[-1]))
    assert "--port" in r.stdout and "OpenAI-compatible" in r.stdout
    heavy = ["torch", "transformers", "peft", "trl", "fastapi", "uvicorn", "openai", "numpy"]
    assert not [m for m in heavy if m in mods]
