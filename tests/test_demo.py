"""``ftc demo``: every stage end to end (``--fast``), resumability, and ``--with`` a hosted backend.

The fast demo trains SmolLM2-135M for a few steps as a real local job (a worker process),
evaluates the base and the fine-tuned model, and writes the report. Its numbers mean little
at that length; what is checked is that each stage ran for real and left its files, and
that a second run reuses the finished job and the stored answers.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from compat_server import CompatServer  # noqa: E402

from ftclient.demo import INTENTS, hosted_models, local_training_available  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(local_training_available() is not None,
                                 reason=f"local training unavailable: {local_training_available()}")]


@pytest.fixture(scope="module")
def models_cache(tmp_path_factory):
    """One converted SmolLM2 for the module (each test's FTC_HOME links to it)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture
def home(tmp_path, models_cache):
    h = tmp_path / "home"
    h.mkdir(mode=0o700)
    os.symlink(models_cache, h / "models")
    return h


def _intent_of(messages, model):
    """The hosted stand-in answers from the sample itself: right for most, wrong for some."""
    import csv

    from ftclient.demo import sample_path

    user = next(m["content"] for m in reversed(messages) if m["role"] == "user")
    with open(sample_path(), encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["text"].strip() == user.strip():
                return row["category"] if len(user) % 4 else INTENTS[0]
    return "no idea"


def test_demo_fast_runs_every_stage_and_a_second_run_reuses_the_work(ftc_proc, home, tmp_path):
    out = tmp_path / "demo"
    with CompatServer(_intent_of) as srv:
        env = {"FTC_HOME": str(home), "HF_HUB_OFFLINE": "1", "OPENAI_BASE_URL": srv.base_url,
               "OPENAI_API_KEY": srv.api_key}
        r = ftc_proc("demo", "--fast", "--out-dir", out, "--with", "openai", "--json", env=env, timeout=900)
        assert r.code == 0, r.err[-3000:]
        d = r.json()
        hosted_requests = srv.requests
        assert srv.check_responses() == srv.ok

    # train: a real local job that succeeded, with its spec beside the data
    job = d["job"]
    assert job["backend"] == "local" and job["state"] == "succeeded" and job["step"] >= 1
    assert (out / "job.yaml").is_file() and Path(d["files"]["spec"]) == out / "job.yaml"

    # eval: base, fine-tuned and the hosted model, each on the same held-out examples
    refs = [e["model_ref"] for e in d["evals"]]
    assert refs == ["local:default", f"local:{job['id']}", f"openai:{hosted_models()['openai']}"]
    for e in d["evals"]:
        assert e["metric"] == "label" and e["examples"] == 12 and e["completed"] + e["failed"] == 12
        assert 0.0 <= e["metrics"]["accuracy"] <= 1.0 and e["latency_s"]["p50"] > 0
    assert d["evals"][1]["fine_tuned"] is True and d["evals"][1]["job_id"] == job["id"]
    assert hosted_requests == 12

    # the hosted stand-in's accuracy is what its answers make it
    ev = [json.loads(line) for line in (out / "data" / "eval.jsonl").read_text(encoding="utf-8").splitlines()][:12]
    right = sum(_intent_of(r["messages"][:-1], "") == r["messages"][-1]["content"] for r in ev)
    assert d["evals"][2]["metrics"]["accuracy"] == pytest.approx(right / 12)

    # report: the three files, the options by name, a PNG
    for key in ("report_md", "report_json", "report_png"):
        assert Path(d["files"][key]).is_file(), key
    report = json.loads(Path(d["files"]["report_json"]).read_text(encoding="utf-8"))
    assert len(report["options"]) == 3
    assert Path(d["files"]["report_png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = Path(d["files"]["report_md"]).read_text(encoding="utf-8")
    assert all(o["name"] in md for o in report["options"])
    tuned = next(o for o in report["options"] if o.get("job_id") == job["id"])
    assert tuned["training"]["time_s"] > 0 and "result.json" in tuned["training"]["time_basis"]

    # a second run: the same job, no new training, the stored answers reused
    r2 = ftc_proc("demo", "--fast", "--out-dir", out, "--json", env={"FTC_HOME": str(home), "HF_HUB_OFFLINE": "1"},
                  timeout=600)
    assert r2.code == 0, r2.err[-3000:]
    d2 = r2.json()
    assert d2["job"]["id"] == job["id"]
    assert [e["run_id"] for e in d2["evals"]] == [e["run_id"] for e in d["evals"][:2]]
    assert [e["metrics"] for e in d2["evals"]] == [e["metrics"] for e in d["evals"][:2]]
    r3 = ftc_proc("jobs", "list", "--json", env={"FTC_HOME": str(home)})
    assert r3.code == 0 and len(r3.json()) == 1


def test_demo_with_a_backend_needs_its_key_and_starts_nothing(ftc_proc, home, tmp_path):
    env = {"FTC_HOME": str(home), "OPENAI_API_KEY": "", "TOGETHER_API_KEY": "", "FIREWORKS_API_KEY": ""}
    r = ftc_proc("demo", "--fast", "--out-dir", tmp_path / "d", "--with", "together", env=env)
    assert r.code == 2
    assert "TOGETHER_API_KEY" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "d").exists()
    r = ftc_proc("demo", "--fast", "--out-dir", tmp_path / "d", "--with", "fireworks", env=env)
    assert r.code == 2
    assert "FIREWORKS_API_KEY" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "d").exists()
    r = ftc_proc("demo", "--out-dir", tmp_path / "d", "--with", "acme-cloud", env=env)
    assert r.code == 2 and "fireworks" in r.err and "openai" in r.err
