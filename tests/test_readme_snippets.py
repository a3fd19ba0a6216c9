"""The README's Python snippets, run as written: each ```python block of README.md runs, in
the README's order, in a fresh interpreter, all in one folder, offline.

What the snippets need around them is prepared the way a reader would have it: a
``tickets.csv`` (columns ``text`` and ``category``), the ``job.yaml`` that ``ftc spec init``
writes (cut down to a tiny local run), ``FTC_HOME`` in the test's folder, and the OpenAI and
Together SDKs pointed at the test emulators (``OPENAI_BASE_URL`` / ``TOGETHER_BASE_URL`` and
fake keys, as the other tests do). The code itself is changed only
by :data:`SUBSTITUTIONS`: model names that the test's tiny model stands in for (SmolLM2
would take a minute to convert and run on a CPU). Each substituted text must occur in the
README, so a README that changes it fails here instead of silently running something else.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")
pytest.importorskip("openai")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emulator import ProviderEmulator  # noqa: E402
from tiny_model import SYSTEM, TICKETS, build_tiny_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

#: README text -> what runs instead ({tiny}: the tiny model's folder). Keep it minimal.
SUBSTITUTIONS = {
    '"local:default"': '"local:{tiny}"',
}

#: The same ticket said in several ways, so that ``prepare`` (which drops duplicates) keeps them all.
VARIANTS = ["{}", "hi, {}", "{} please", "hello, {}", "{} today", "{} - thanks", "urgent: {}", "again: {}", "so {}",
            "ok {}"]


def python_blocks(markdown: str) -> list[str]:
    """The code of every ```python fenced block, in order."""
    return [m.group(1) for m in re.finditer(r"^```python[ \t]*\n(.*?)^```[ \t]*$", markdown, re.M | re.S)]


def write_inputs(work: Path, tiny: Path) -> dict[str, str]:
    """tickets.csv and job.yaml as the README's snippets expect them; returns text -> category."""
    import yaml

    answers: dict[str, str] = {}
    with open(work / "tickets.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "category"])
        for form in VARIANTS:
            for text, category, _ in TICKETS:
                t = form.format(text)
                answers[t] = category
                w.writerow([t, category])
    # What `ftc spec init` writes, cut down to a tiny local run: the test's model, one short epoch.
    subprocess.run([sys.executable, "-m", "ftclient", "spec", "init", "job.yaml"], cwd=work, check=True,
                   capture_output=True, timeout=120)
    spec = yaml.safe_load((work / "job.yaml").read_text(encoding="utf-8"))
    spec["base_model"] = str(tiny)
    spec["hyperparameters"].update(epochs=1, batch_size=8, lora={"r": 4, "alpha": 8, "dropout": 0.0})
    spec["local"].update(device="cpu", packing=False)
    (work / "job.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return answers


def _user(messages: list) -> str:
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


@pytest.mark.slow
def test_readme_python_snippets_run_as_written(tmp_path):
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 3, "README.md lost its ```python blocks (Python API, its errors, Jobs)"
    tiny = build_tiny_model(tmp_path / "tiny")
    joined = "\n".join(blocks)
    for old in SUBSTITUTIONS:
        assert old in joined, f"the README's snippets no longer contain {old!r}: update SUBSTITUTIONS"
    for old, new in SUBSTITUTIONS.items():
        blocks = [b.replace(old, new.format(tiny=tiny)) for b in blocks]

    work = tmp_path / "work"
    work.mkdir()
    answers = write_inputs(work, tiny)
    home = tmp_path / "home"

    def reply(messages, model):  # the hosted models know the right intent of every ticket
        user = _user(messages)
        return answers.get(user, f"intent for: {user}")

    drop = ("OPENAI_", "TOGETHER_", "FTC_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    runs = []
    with ProviderEmulator("openai", chat_reply=reply) as oai, ProviderEmulator("together", chat_reply=reply) as tg:
        env.update(oai.env, **tg.env, FTC_HOME=str(home), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
        for i, code in enumerate(blocks, 1):
            script = work / f"readme_snippet_{i}.py"
            script.write_text(code, encoding="utf-8")
            r = subprocess.run([sys.executable, script.name], cwd=work, env=env, capture_output=True, text=True,
                               timeout=900)
            assert r.returncode == 0, f"README snippet {i} failed:\n{code}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
            assert "Traceback" not in r.stderr
            runs.append(r)
        chat_requests = [q for q in oai.requests if q.path.endswith("/chat/completions")]
        tg_chats = [q for q in tg.requests if q.path.endswith("/chat/completions")]
        tg_jobs = list(tg.jobs.values())
        oai_jobs = list(oai.jobs.values())

    def ran(marker: str) -> subprocess.CompletedProcess:
        """The run of the one snippet that contains ``marker``."""
        found = [r for b, r in zip(blocks, runs) if marker in b]
        assert len(found) == 1, f"{len(found)} README snippets contain {marker!r}"
        return found[0]

    r = ran("write_report(")

    # prepare / validate / estimate: the data the rest reads, and the estimate printed
    train = (work / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    evals = (work / "data" / "eval.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(train) + len(evals) == len(answers) and len(evals) >= 5
    assert json.loads(train[0])["messages"][0] == {"role": "system", "content": SYSTEM}
    cost, _, basis = r.stdout.strip().splitlines()[-1].partition(" ")
    assert float(cost) > 0 and basis

    # submit + watch: a local job that succeeded
    from ftclient.store import Store

    with Store(home / "ftc.db") as st:
        jobs = {j.backend: j for j in st.list_jobs()}
    assert sorted((j.backend, j.state) for j in jobs.values()) == [("local", "succeeded"), ("together", "succeeded")]
    job = jobs["local"]

    # evaluate: the base model, the fine-tuned one and the hosted model, on every eval example
    assert len(chat_requests) == len(evals)
    assert all(q.body["model"] == "gpt-4.1-mini" for q in chat_requests)

    # build_report + write_report: the three runs side by side, the job's training figures found
    for name in ("report.md", "report.json", "report.png"):
        assert (work / "report" / name).is_file(), name
    report = json.loads((work / "report" / "report.json").read_text(encoding="utf-8"))
    options = {o["model_ref"]: o for o in report["options"]}
    assert set(options) == {f"local:{tiny}", f"local:{job.id}", "openai:gpt-4.1-mini"}
    assert report["queries_per_month"] == 100_000
    ft = options[f"local:{job.id}"]
    assert ft["job_id"] == job.id and ft["training"]["job_state"] == "succeeded" and ft["training"]["time_s"] > 0
    assert "no_job" not in {c["kind"] for c in ft["caveats"]}
    assert "not in the job store" not in (work / "report" / "report.md").read_text(encoding="utf-8")
    assert options["openai:gpt-4.1-mini"]["score"] == 1.0  # the emulator answered every ticket right

    # The Jobs section's snippet: plan, submit (the provider's quote confirmed), watch, resume,
    # chat with the fine-tuned model -- one Together job, created once.
    out = ran("jobs.plan(").stdout.strip().splitlines()
    assert len(tg_jobs) == 1 and tg_jobs[0]["id"] == jobs["together"].provider_job_id
    assert jobs["together"].fine_tuned_model and [q.body["model"] for q in tg_chats] == [jobs["together"].fine_tuned_model]
    assert out[-1] == "intent for: My card was charged twice"
    assert any(line.startswith("succeeded") for line in out)  # watch's last update

    # The errors snippet: the budget stops the OpenAI submission before anything is sent.
    out = ran("except ftclient.BudgetExceeded").stdout
    assert "above the budget $0.01" in out and not oai_jobs
    assert not [q for q in oai.requests if "/fine_tuning/" in q.path or q.path.endswith("/files")]
