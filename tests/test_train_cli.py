"""``ftc train``, ``ftc jobs ...`` and ``ftc chat`` against the fake backend: JSON shapes,
exit codes, no tracebacks, no key in the output."""

from __future__ import annotations

import json

import pytest

from fake_backend import home, prov, spec  # noqa: F401  (fixtures)
from fake_backend import SECRET, FakeBackend, network_calls, register, write_spec
from ftclient import jobs as J


def _clean(r):
    assert "Traceback" not in r.err and "Traceback" not in r.out, r.err
    assert SECRET not in r.out and SECRET not in r.err


def test_train_yes_json_watches_to_success(ftc, prov, spec):
    register(prov)
    r = ftc("train", spec, "--backend", "fake", "--yes", "--json")
    _clean(r)
    assert r.code == 0, r.err
    d = r.json()
    assert set(d) == {"plan", "job", "status"}
    assert d["job"]["state"] == "succeeded" and d["job"]["fine_tuned_model"] == "ft:fake-base:fakejob-2"
    assert d["status"]["state"] == "succeeded" and "raw" not in d["status"]
    assert d["plan"]["estimate_usd"] == 1.25 and d["plan"]["backend"] == "fake"
    assert d["job"]["spec"]["name"] == "fake-job"


def test_train_human_output(ftc, prov, spec):
    register(prov, warnings=["fake-base retires on 2027-01-01"])
    r = ftc("train", spec, "--backend", "fake", "--yes")
    _clean(r)
    assert r.code == 0
    assert "succeeded" in r.out and "ft:fake-base:fakejob-2" in r.out
    assert "Fine-tuning plan" in r.err and "$1.25" in r.err and "retires on 2027-01-01" in r.err
    assert "submitted ftc-" in r.err and "uploaded train.jsonl as file-1" in r.err


def test_train_without_yes_and_without_a_terminal_is_a_usage_error(ftc, prov, spec):
    register(prov)
    r = ftc("train", spec, "--backend", "fake")
    _clean(r)
    assert r.code == 2 and "--yes" in r.err
    assert network_calls(prov) == []


def test_dry_run_json(ftc, prov, spec):
    register(prov)
    r = ftc("train", spec, "--backend", "fake", "--dry-run", "--json")
    _clean(r)
    assert r.code == 0
    d = r.json()
    assert d["dry_run"] is True
    assert set(d["plan"]) >= {"backend", "model", "warnings", "validation", "estimate_usd", "budget_usd",
                              "within_budget", "estimate", "uploads"}
    assert network_calls(prov) == []
    assert ftc("jobs", "list", "--json").json() == []


def test_dry_run_human(ftc, prov, spec):
    register(prov)
    r = ftc("train", spec, "--backend", "fake", "--dry-run")
    assert r.code == 0 and "Fine-tuning plan" in r.out and "to upload" in r.out and "nothing was sent" in r.err
    assert "12,345 billed tokens" in r.out and "tokens trained" not in r.out


def test_budget_exceeded_exit_1_and_nothing_sent(ftc, prov, spec):
    register(prov, estimate_usd=30)
    r = ftc("train", spec, "--backend", "fake", "--yes", "--budget", "20")
    _clean(r)
    assert r.code == 1 and "above the budget $20.00" in r.err and "nothing was sent" in r.err
    assert network_calls(prov) == []
    assert ftc("jobs", "list", "--json").json() == []


def test_provider_quote_is_shown_and_its_budget_applies(ftc, prov, spec):
    register(prov, estimate_usd=1.0, quote=4.0)
    r = ftc("train", spec, "--backend", "fake", "--yes", "--budget", "3")
    _clean(r)
    assert r.code == 1 and "provider's estimate $4.00 is above the budget $3.00" in r.err
    assert FakeBackend.provider_state(prov)["jobs"] == {}
    r = ftc("train", spec, "--backend", "fake", "--yes", "--budget", "5", "--detach")
    assert r.code == 0 and "estimate: ftc $1.00, fake $4.00 (budget $5.00)" in r.err


def test_validation_problems_exit_1(ftc, prov, spec):
    register(prov, bad_lines=[(2, "no_assistant", "no assistant message")])
    r = ftc("train", spec, "--backend", "fake", "--yes")
    _clean(r)
    assert r.code == 1 and "line 2: no assistant message" in r.err
    assert network_calls(prov) == []


def test_unknown_backend_and_unknown_job_are_usage_errors(ftc, prov, spec):
    register(prov)
    r = ftc("train", spec, "--backend", "fak", "--yes")
    _clean(r)
    assert r.code == 2 and "Did you mean 'fake'" in r.err
    r = ftc("jobs", "show", "ftc-nope")
    _clean(r)
    assert r.code == 2 and "no job matches" in r.err


def test_a_failed_job_exits_1_with_the_providers_reason_and_no_key(ftc, prov, spec):
    register(prov, fail_reason=f"invalid training file (request made with key {SECRET})")
    r = ftc("train", spec, "--backend", "fake", "--yes")
    _clean(r)
    assert r.code == 1 and "failed at fake" in r.err and "invalid training file" in r.err
    assert "[REDACTED]" in r.err
    r = ftc("jobs", "list", "--json")
    (job,) = r.json()
    assert job["state"] == "failed" and SECRET not in json.dumps(job)
    r = ftc("jobs", "watch", job["id"], "--json")
    _clean(r)
    assert r.code == 1 and r.json()["job"]["state"] == "failed"


def test_detach_then_the_jobs_commands(ftc, prov, spec):
    register(prov)
    r = ftc("train", spec, "--backend", "fake", "--yes", "--detach", "--json")
    _clean(r)
    assert r.code == 0
    d = r.json()
    job_id = d["job"]["id"]
    assert d["status"] is None and d["job"]["state"] == "queued" and d["job"]["provider_job_id"] == "fakejob-2"

    r = ftc("jobs", "list", "--json")
    assert [j["id"] for j in r.json()] == [job_id]
    r = ftc("jobs", "list")
    assert r.code == 0 and job_id in r.out

    r = ftc("jobs", "show", job_id, "--json")
    assert r.code == 0 and r.json()["status"]["state"] == "validating_files"
    r = ftc("jobs", "show", "fakejob-2")  # the provider's id works too
    assert r.code == 0 and job_id in r.out and "queued" in r.out

    r = ftc("jobs", "watch", job_id[-6:], "--json")
    _clean(r)
    assert r.code == 0 and r.json()["job"]["state"] == "succeeded"

    r = ftc("jobs", "events", job_id, "--json")
    evs = r.json()
    assert r.code == 0 and evs[0]["message"] == "job created" and evs[-1]["message"] == "state: succeeded"
    assert set(evs[0]) == {"id", "job_id", "provider_event_id", "created_at", "level", "message", "data"}
    r = ftc("jobs", "events", job_id, "--limit", "2", "--no-refresh")
    assert r.code == 0 and "state: succeeded" in r.out

    r = ftc("jobs", "checkpoints", job_id, "--json")
    assert r.code == 0 and [c["step"] for c in r.json()] == [1, 2, 3]

    r = ftc("chat", job_id, "hello there", "--json")
    assert r.code == 0 and r.json() == {"backend": "fake", "model": "ft:fake-base:fakejob-2", "job_id": job_id,
                                        "text": "echo from ft:fake-base:fakejob-2: hello there"}
    r = ftc("chat", "ft:custom", "hi", "--backend", "fake")
    assert r.code == 0 and r.out.strip() == "echo from ft:custom: hi"

    r = ftc("jobs", "cancel", job_id)
    assert r.code == 0 and "already succeeded" in r.err


def test_cancel_and_resume_commands(ftc, prov, spec):
    register(prov)
    job_id = ftc("train", spec, "--backend", "fake", "--yes", "--detach", "--json").json()["job"]["id"]
    r = ftc("jobs", "cancel", job_id, "--json")
    assert r.code == 0 and r.json()["job"]["state"] == "cancelled" and r.json()["was"] == "queued"
    r = ftc("jobs", "resume", "--json")
    assert r.code == 0 and r.json() == {"outcomes": []}
    r = ftc("jobs", "resume")
    assert r.code == 0 and "nothing to resume" in r.err
    r = ftc("jobs", "resume", job_id, "--reopen", "--json")  # a hosted cancel is final
    assert r.code == 1 and r.json()["outcomes"][0]["action"] == "error"
    assert "cannot be continued" in r.json()["outcomes"][0]["detail"]

    job2 = ftc("train", spec, "--backend", "fake", "--yes", "--detach", "--json").json()["job"]["id"]
    r = ftc("jobs", "resume", "--json")  # the detached job: nobody watches it
    assert r.code == 0
    (o,) = r.json()["outcomes"]
    assert (o["job_id"], o["action"], o["state"]) == (job2, "watched", "succeeded")


def test_resume_exit_1_when_a_job_failed(ftc, prov, spec):
    register(prov, fail_reason="out of capacity")
    ftc("train", spec, "--backend", "fake", "--yes", "--detach")
    r = ftc("jobs", "resume")
    _clean(r)
    assert r.code == 1 and "out of capacity" in r.err


def test_chat_needs_a_backend_for_a_model_id(ftc, prov):
    register(prov)
    r = ftc("chat", "ft:custom", "hi")
    _clean(r)
    assert r.code == 2 and "--backend" in r.err


def test_help_does_not_import_the_job_commands():
    import subprocess
    import sys

    code = ("from ftclient.cli.main import cli\n"
            "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "import sys, json; print(json.dumps(sorted(sys.modules)))")
    mods = set(json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                         check=True).stdout.strip().splitlines()[-1]))
    assert not {"ftclient.jobs", "ftclient.cli.train_cmd", "ftclient.cli.jobs_cmd", "ftclient.cli.chat_cmd",
                "ftclient.store"} & mods


def test_a_real_process_has_no_traceback(ftc_proc, tmp_path, spec):
    env = {"FTC_HOME": str(tmp_path / "home2")}
    r = ftc_proc("train", spec, "--backend", "nope", "--yes", env=env)
    assert r.code == 2 and "unknown backend 'nope'" in r.err and "Traceback" not in r.err
    r = ftc_proc("jobs", "watch", "ftc-missing", env=env)
    assert r.code == 2 and "Traceback" not in r.err


# --------------------------------------------------------------------------- end to end: the real OpenAI backend


def _openai_spec(tmp_path, **extra):
    d = tmp_path / "oa"
    d.mkdir()
    rows = [{"messages": [{"role": "system", "content": "Route the ticket to one intent."},
                          {"role": "user", "content": f"I lost my card number {i}"},
                          {"role": "assistant", "content": "card_lost"}]} for i in range(12)]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = ["name: e2e", "data:", "  train: train.jsonl", "openai:", "  model: gpt-4.1-mini-2025-04-14",
             "  suffix: e2e"] + [f"{k}: {v}" for k, v in extra.items()]
    (d / "job.yaml").write_text("\n".join(lines) + "\n")
    return d / "job.yaml"


def test_end_to_end_openai_through_the_emulator(ftc, openai_emu, tmp_path):
    spec = _openai_spec(tmp_path)
    r = ftc("train", spec, "--backend", "openai", "--yes", "--json")
    _clean(r)
    assert openai_emu.api_key not in r.out + r.err
    assert r.code == 0, r.err
    d = r.json()
    assert d["job"]["state"] == "succeeded" and d["status"]["state"] == "succeeded"
    model = d["job"]["fine_tuned_model"]
    assert model.startswith("ft:gpt-4.1-mini-2025-04-14:")
    assert len(openai_emu.jobs) == 1 and len(openai_emu.requests_to(r"/fine_tuning/jobs$", "POST")) == 1
    (emu_job,) = openai_emu.jobs
    assert d["job"]["provider_job_id"] == emu_job

    r = ftc("jobs", "events", d["job"]["id"], "--json")
    assert r.code == 0 and r.json()
    r = ftc("chat", d["job"]["id"], "I lost my card", "--json")
    assert r.code == 0 and r.json()["model"] == model and r.json()["text"]


def test_end_to_end_budget_exceeded_sends_no_request(ftc, openai_emu, tmp_path):
    spec = _openai_spec(tmp_path)
    r = ftc("train", spec, "--backend", "openai", "--yes", "--budget", "0.0001")
    _clean(r)
    assert r.code == 1 and "above the budget" in r.err
    assert openai_emu.requests == []
    r = ftc("train", spec, "--backend", "openai", "--dry-run", "--json")
    assert r.code == 0 and r.json()["plan"]["estimate_usd"] > 0
    assert openai_emu.requests == []


def _together_spec(tmp_path, rows=40):
    d = tmp_path / "tg"
    d.mkdir()
    data = [{"messages": [{"role": "user", "content": f"I lost my card number {i}. " * 20},
                          {"role": "assistant", "content": "card_lost"}]} for i in range(rows)]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    (d / "job.yaml").write_text("name: e2e-tg\ndata:\n  train: train.jsonl\nhyperparameters:\n  epochs: 2\n"
                                "together:\n  model: meta-llama/Meta-Llama-3.1-8B-Instruct-Reference\n  suffix: e2e\n")
    return d / "job.yaml"


def test_end_to_end_together_shows_both_estimates(ftc, together_emu, tmp_path):
    spec = _together_spec(tmp_path)
    ours = ftc("train", spec, "--backend", "together", "--dry-run", "--json").json()["plan"]["estimate_usd"]
    r = ftc("train", spec, "--backend", "together", "--yes")
    _clean(r)
    assert r.code == 0, r.err
    assert f"estimate: ftc ${ours:,.2f}, together $" in r.err
    assert len(together_emu.jobs) == 1
    assert len(together_emu.requests_to(r"/v1/fine-tunes/estimate-price", "POST")) == 1


def test_end_to_end_together_declined_quote_creates_nothing(together_emu, tmp_path):
    spec = _together_spec(tmp_path)
    seen = []
    with pytest.raises(J.Declined):
        J.submit(spec, "together", confirm=lambda q: seen.append(q) or False)
    (q,) = seen
    assert q.provider_usd and q.provider_usd > 0 and q.estimate_usd is not None
    assert together_emu.jobs == {} and together_emu.requests_to(r"/v1/fine-tunes$", "POST") == []
    (job,) = J.list_jobs()
    assert job.state == "cancelled"


# --------------------------------------------------------------------------- end to end: the real Fireworks backend


def _fireworks_spec(tmp_path, **fw):
    d = tmp_path / "fw"
    d.mkdir()
    rows = [{"messages": [{"role": "system", "content": "Route the ticket to one intent."},
                          {"role": "user", "content": f"I lost my card number {i}"},
                          {"role": "assistant", "content": "card_lost"}]} for i in range(12)]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    extra = "".join(f"  {k}: {v}\n" for k, v in fw.items())
    (d / "job.yaml").write_text("name: e2e-fw\ndata:\n  train: train.jsonl\nhyperparameters:\n  epochs: 1\n"
                                "fireworks:\n  model: llama-v3p1-8b-instruct\n" + extra)
    return d / "job.yaml"


def test_end_to_end_fireworks_through_the_emulator(ftc, fireworks_emu, tmp_path):
    spec = _fireworks_spec(tmp_path)
    r = ftc("train", spec, "--backend", "fireworks", "--yes", "--json")
    _clean(r)
    assert fireworks_emu.api_key not in r.out + r.err
    assert r.code == 0, r.err
    d = r.json()
    assert d["job"]["state"] == "succeeded" and d["status"]["state"] == "succeeded"
    (pid,) = fireworks_emu.jobs
    assert d["job"]["provider_job_id"] == pid and len(fireworks_emu.datasets) == 1
    model = d["job"]["fine_tuned_model"]
    assert model == f"accounts/{fireworks_emu.account_id}/models/e2e-fw-{d['job']['client_token'][:8]}"
    assert "dedicated" in (d["status"].get("serving_note") or "")
    jid = d["job"]["id"]
    for cmd in (("jobs", "show", jid, "--json"), ("jobs", "events", jid, "--json"), ("jobs", "checkpoints", jid, "--json")):
        r = ftc(*cmd)
        _clean(r)
        assert r.code == 0, (cmd, r.err)
    assert [c["model_ref"] for c in ftc("jobs", "checkpoints", jid, "--json").json()] == [model]
    # the fine-tuned LoRA model answers only on a dedicated deployment: one message, exit 2
    r = ftc("chat", jid, "I lost my card", "--json")
    _clean(r)
    assert r.code == 2 and "dedicated deployment" in r.err
    fireworks_emu.deploy(model)
    r = ftc("chat", jid, "I lost my card", "--json")
    assert r.code == 0 and r.json()["model"] == model and r.json()["text"]
    # the data rules, the estimate and the budget, offline
    r = ftc("data", "validate", spec.parent / "train.jsonl", "--provider", "fireworks", "--json")
    assert r.code == 0 and r.json()["ok"] is True
    before = len(fireworks_emu.requests)
    r = ftc("train", spec, "--backend", "fireworks", "--yes", "--budget", "0.000001")
    _clean(r)
    assert r.code == 1 and "above the budget" in r.err and len(fireworks_emu.requests) == before


def test_end_to_end_fireworks_full_fine_tuning_is_refused_before_any_request(ftc, fireworks_emu, tmp_path):
    spec = _fireworks_spec(tmp_path)
    spec.write_text(spec.read_text().replace("name: e2e-fw\n", "name: e2e-fw\nadapter: full\n"))
    r = ftc("train", spec, "--backend", "fireworks", "--yes")
    _clean(r)
    assert r.code == 2 and "LoRA adapters only" in r.err and fireworks_emu.requests == []


def test_end_to_end_fireworks_detach_then_cancel(ftc, fireworks_emu, tmp_path):
    spec = _fireworks_spec(tmp_path)
    r = ftc("train", spec, "--backend", "fireworks", "--yes", "--detach", "--json")
    _clean(r)
    assert r.code == 0, r.err
    jid = r.json()["job"]["id"]
    r = ftc("jobs", "cancel", jid, "--json")
    _clean(r)
    assert r.code == 0, r.err
    assert any(q.method == "POST" and q.path.endswith(":cancel") for q in fireworks_emu.requests)
    r = ftc("jobs", "watch", jid, "--json")
    assert r.code == 1 and r.json()["job"]["state"] == "cancelled"  # a cancelled job ends watching with exit 1
