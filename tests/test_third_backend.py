"""A third backend, installed as its own distribution, takes part in every stage.

``tests/plugins/ftc_acme`` is a backend that lives only in the tests. It is installed the
way ``pip install --target`` lays a distribution out (the package, and a ``.dist-info``
whose ``entry_points.txt`` comes from ``tests/plugins/pyproject.toml``) into a folder that
the ftc processes below have on their path; nothing registers it in-process and nothing
under ``ftclient/`` names it. Each stage runs through the real ``ftc`` command:
validation, token counts and an estimate, a row in ``ftc cost compare``, a job (watched,
cancelled, resumed), ``ftc eval`` and a row in ``ftc compare``.
"""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

PLUGIN = Path(__file__).parent / "plugins"
KEY = "acme-test-key-0123456789"
PAIRS = [(f"what is the code for order {i}", f"code {i * 7}") for i in range(8)]


def _install(site: Path) -> None:
    """Lay the distribution out as an installer would: the package and its metadata."""
    meta = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    shutil.copytree(PLUGIN / "ftc_acme", site / "ftc_acme", ignore=shutil.ignore_patterns("__pycache__"))
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n")
    eps = "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()) + "\n"
                  for group, entries in meta["entry-points"].items())
    (info / "entry_points.txt").write_text(eps)
    (info / "top_level.txt").write_text("ftc_acme\n")
    (info / "INSTALLER").write_text("tests\n")
    (info / "RECORD").write_text("")


@pytest.fixture
def acme(tmp_path, ftc_proc):
    site = tmp_path / "site"
    site.mkdir()
    _install(site)
    work = tmp_path / "work"
    work.mkdir()
    with open(work / "train.jsonl", "w", encoding="utf-8") as f:
        for q, a in PAIRS:
            f.write(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}) + "\n")
    (work / "eval.jsonl").write_text((work / "train.jsonl").read_text().splitlines()[0] + "\n"
                                     + "\n".join((work / "train.jsonl").read_text().splitlines()[1:4]) + "\n")
    (work / "job.yaml").write_text("name: acme-proof\nbase_model: acme-small\ndata:\n  train: train.jsonl\n"
                                   "hyperparameters:\n  epochs: 2\nacme:\n  priority: low\n")
    env = {"PYTHONPATH": str(site), "FTC_HOME": str(tmp_path / "home"), "ACME_STATE": str(tmp_path / "acme.json"),
           "ACME_API_KEY": KEY, "NO_COLOR": "1", "COLUMNS": "200"}

    def run(*args, ok=True):
        r = ftc_proc(*args, cwd=work, env=env, timeout=180)
        assert "Traceback" not in r.err and KEY not in r.out + r.err
        if ok:
            assert r.code == 0, r.err
        return r

    run.work, run.state = work, tmp_path / "acme.json"
    return run


def _state(acme) -> dict:
    return json.loads(acme.state.read_text())


def _expected_tokens() -> int:
    # Acme's own rule: one token per word and 4 per message
    return sum(len(q.split()) + len(a.split()) + 8 for q, a in PAIRS)


def test_acme_is_listed_and_validates_with_its_own_rules(acme):
    r = acme("data", "validate", "train.jsonl", "--provider", "acme", "--json")
    out = json.loads(r.out)
    assert out["ok"] and out["examples"] == len(PAIRS)
    (acme.work / "bad.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n"
                                         + json.dumps({"messages": [{"role": "assistant", "content": "x"},
                                                                    {"role": "user", "content": "y"}]}) + "\n")
    bad = acme("data", "validate", "bad.jsonl", "--provider", "acme", "--json", ok=False)
    assert bad.code == 1
    codes = {e["code"] for e in json.loads(bad.out)["errors"]}
    assert codes == {"acme_needs_two_turns", "acme_last_not_assistant"}
    # its block is in the commented example spec, which the spec model then reads
    acme("spec", "init", "example.yaml")
    text = (acme.work / "example.yaml").read_text()
    assert "\nacme:\n  priority: normal" in text
    checked = json.loads(acme("spec", "check", "example.yaml", "--json").out)
    assert checked["spec"]["acme"] == {"model": None, "priority": "normal"}


def test_acme_counts_prices_and_compares(acme):
    est = json.loads(acme("cost", "estimate", "train.jsonl", "--model", "acme:acme-small", "--epochs", "2",
                          "--json").out)
    tokens = _expected_tokens()
    assert est["tokens_per_epoch"] == tokens and est["token_count_exact"]
    assert est["cost_usd"] == pytest.approx(round(tokens * 2 * 2.00 / 1e6, 4))  # its own price: $2 per 1M
    # its catalogue marks acme-small `compare: default`: a row without --models
    cmp = json.loads(acme("cost", "compare", "train.jsonl", "--epochs", "2", "--json").out)
    rows = {r["model"]: r for r in cmp["rows"]}
    assert "openai:gpt-4.1-mini" in rows and "modal:h100" in {r["backend"] for r in cmp["rows"]}
    assert rows["acme:acme-small"]["billed_tokens"] == tokens * 2
    assert rows["acme:acme-small"]["training_cost_usd"] == pytest.approx(est["cost_usd"], abs=1e-4)


def test_acme_job_watch_cancel_resume_eval_and_compare(acme):
    # a job, submitted through the core's write-ahead create and watched to the end
    plan = json.loads(acme("train", "job.yaml", "--backend", "acme", "--dry-run", "--json").out)["plan"]
    assert plan["estimate_usd"] == pytest.approx(_expected_tokens() * 2 * 2.00 / 1e6, abs=1e-4)
    done = json.loads(acme("train", "job.yaml", "--backend", "acme", "--yes", "--json").out)["job"]
    assert done["state"] == "succeeded" and done["fine_tuned_model"].startswith("acme-small:ft-acme-job-")
    st = _state(acme)
    assert st["calls"].count("upload") == 1 and st["calls"].count("create") == 1
    assert next(iter(st["jobs"].values()))["priority"] == "low"  # the spec's acme: block reached the provider

    # a second job: the same content is not uploaded again; cancelled while queued
    second = json.loads(acme("train", "job.yaml", "--backend", "acme", "--yes", "--detach", "--json").out)["job"]
    cancelled = json.loads(acme("jobs", "cancel", second["id"], "--json").out)
    assert cancelled["job"]["state"] == "cancelled" if "job" in cancelled else cancelled["state"] == "cancelled"
    assert _state(acme)["calls"].count("upload") == 1

    # a third job, detached, then finished by `ftc jobs resume`
    third = json.loads(acme("train", "job.yaml", "--backend", "acme", "--yes", "--detach", "--json").out)["job"]
    acme("jobs", "resume", third["id"], "--json")
    shown = json.loads(acme("jobs", "show", third["id"], "--json").out)
    assert (shown.get("job") or shown)["state"] == "succeeded"

    # ftc eval: the base model and the fine-tuned job, through Acme's async chat client
    base = json.loads(acme("eval", "acme:acme-small", "--data", "eval.jsonl", "--metric", "exact", "--json").out)
    tuned = json.loads(acme("eval", done["id"], "--data", "eval.jsonl", "--metric", "exact", "--json").out)
    assert base["completed"] == tuned["completed"] == 4
    assert base["metrics"]["score"] == 0.0 and tuned["metrics"]["score"] == 1.0
    assert tuned["cost_per_1k_queries_usd"] > 0  # priced from Acme's own catalogue entry

    # ftc compare: a row for each run, the fine-tuned one recommended
    report = json.loads(acme("compare", base["run_id"], tuned["run_id"], "--out", "report", "--json").out)
    opts = {o["run_id"]: o for o in report["options"]}
    assert set(opts) == {base["run_id"], tuned["run_id"]}
    assert opts[tuned["run_id"]]["fine_tuned"] and opts[tuned["run_id"]]["backend"] == "acme"
    assert opts[tuned["run_id"]]["score"] == 1.0 and opts[base["run_id"]]["score"] == 0.0
    assert report["recommendation"]["recommended"] == opts[tuned["run_id"]]["name"]
    assert (acme.work / "report" / "report.md").is_file()
