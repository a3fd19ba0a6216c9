"""``ftc migrate``: scan -> capture -> plan -> train -> report, against the OpenAI and Together
emulators (the official SDKs), offline. The "OpenAI fine-tunes" are jobs seeded into the
emulator's organisation; their models answer through deterministic reply functions, so
every agreement figure is computed by hand below."""

from __future__ import annotations

import datetime as _dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_model import TICKETS, local_backend_env, no_threads_left_behind, sft_records, tiny  # noqa: F401

from ftclient.migrate import agreement, pick_metric, scan_fine_tunes
from ftclient.store import Store

pytest.importorskip("openai")

MINI = "gpt-4o-mini-2024-07-18"
NANO = "gpt-4.1-nano-2025-04-14"
LABEL = {text: label for text, label, _ in TICKETS}


def _jsonl(records) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def _user(messages) -> str:
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


def original_answer(text: str) -> str:
    """The pretend OpenAI fine-tune: right, except on fees (it says exchange_rate)."""
    return "exchange_rate" if "fee" in text else LABEL.get(text, "unknown")


def together_answer(text: str) -> str:
    """The pretend Together fine-tune: right, except on transfers (it says top_up)."""
    return "top_up" if "transfer" in text else LABEL.get(text, "unknown")


TRAIN = _jsonl(sft_records(36))
VALID = _jsonl(sft_records())  # the 12 tickets, one each


@pytest.fixture
def org(openai_emu, ftc_home):
    """An OpenAI organisation with five past jobs; returns {name: wire job}."""
    openai_emu.chat_reply = lambda messages, model: original_answer(_user(messages))
    jobs = {
        "support": openai_emu.add_fine_tune(MINI, training=TRAIN, validation=VALID, downloadable=True,
                                            created="2026-11-02", n_epochs=3, learning_rate_multiplier=1.8,
                                            batch_size=4, suffix="support"),
        "private": openai_emu.add_fine_tune(MINI, training=TRAIN, created="2026-11-20", n_epochs=2,
                                            suffix="private"),
        "nano": openai_emu.add_fine_tune(NANO, training=TRAIN, created="2026-05-01", suffix="old"),
        "failed": openai_emu.add_fine_tune(MINI, training=TRAIN, status="failed", created="2026-10-01"),
        "cancelled": openai_emu.add_fine_tune(MINI, training=TRAIN, status="cancelled", created="2026-09-15"),
    }
    return jobs


def _chats(emu, model=None) -> list:
    reqs = emu.requests_to(r"/chat/completions$", "POST")
    return [r for r in reqs if model is None or (isinstance(r.body, dict) and r.body.get("model") == model)]


# ----------------------------------------------------------------------------- scan


def test_scan_lists_every_job_with_its_files_state_and_days_left(org, ftc):
    today = _dt.date.today()
    r = ftc("migrate", "scan", "--json")
    assert r.code == 0, r.err
    d = r.json()
    by_job = {f["job_id"]: f for f in d["fine_tunes"]}
    assert set(by_job) == {j["id"] for j in org.values()}
    assert [f["created_at"][:10] for f in d["fine_tunes"]] == sorted((f["created_at"][:10] for f in d["fine_tunes"]),
                                                                      reverse=True)
    s = by_job[org["support"]["id"]]
    assert s["model"] == org["support"]["fine_tuned_model"] and s["base_model"] == MINI
    assert s["hyperparameters"] == {"n_epochs": 3, "learning_rate_multiplier": 1.8, "batch_size": 4}
    assert s["trained_tokens"] == org["support"]["trained_tokens"] and s["trained_tokens"] > 0
    assert s["training_file"]["bytes"] == len(TRAIN) and s["training_file"]["downloadable"] is True
    assert s["training_file"]["examples"] == 36 and s["validation_file"]["examples"] == 12
    assert s["shutdown"] == "2027-01-14" and s["days_left"] == (_dt.date(2027, 1, 14) - today).days
    assert s["state"] == ("serving" if today < _dt.date(2027, 1, 14) else "shut down")
    p = by_job[org["private"]["id"]]
    assert p["training_file"]["downloadable"] is False and p["training_file"]["examples"] is None
    assert "Not allowed to download files of purpose: fine-tune" in p["training_file"]["refusal"]
    assert by_job[org["nano"]["id"]]["state"] == "shut down" and by_job[org["nano"]["id"]]["shutdown"] == "2026-10-23"
    assert by_job[org["failed"]["id"]]["state"] == "no model" and by_job[org["failed"]["id"]]["error"]
    assert by_job[org["cancelled"]["id"]]["model"] is None
    r = ftc("migrate", "scan")  # the table names every job
    assert r.code == 0 and all(j["id"] in r.out for j in org.values())


def test_a_second_scan_reads_the_files_from_disk(org, openai_emu):
    scan_fine_tunes()
    first = len(openai_emu.requests_to(r"/files/[^/]+/content$", "GET"))
    assert first == 6  # support: train + valid (handed out); the four others' training files (refused)
    scan_fine_tunes()
    again = openai_emu.requests_to(r"/files/[^/]+/content$", "GET")
    assert len(again) == first + 4  # the copies on disk are not fetched again; the refused ones are asked


# ----------------------------------------------------------------------------- capture


def test_capture_uses_the_validation_file_shows_the_cost_and_obeys_the_budget(org, openai_emu, ftc):
    model = org["support"]["fine_tuned_model"]
    r = ftc("migrate", "capture", model, "--yes", "--budget", "0")
    assert r.code == 1 and "above the budget" in r.err and "nothing was sent" in r.err
    assert _chats(openai_emu) == []
    r = ftc("migrate", "capture", model, "--yes", "--json")
    assert r.code == 0, r.err
    rec = r.json()
    assert rec["examples"] == rec["answered"] == 12 and rec["state"] == "complete"
    assert "validation file" in rec["origin"]
    est = rec["estimate"]
    assert est["usd"] == pytest.approx(est["prompt_tokens"] / 1e6 * 0.30 + est["output_tokens"] / 1e6 * 1.20)
    assert est["prompt_tokens"] > 0 and est["to_send"] == 12
    with Store() as st:
        answers = {r_.output for r_ in st.eval_results(rec["run_id"]).values()}
    assert answers == {original_answer(t) for t, _, _ in TICKETS}
    sent = len(_chats(openai_emu))
    r = ftc("migrate", "capture", model, "--yes", "--json")
    assert r.code == 0 and r.json()["estimate"]["to_send"] == 0 and len(_chats(openai_emu)) == sent


def test_capture_of_a_model_whose_files_are_not_handed_out_needs_data(org, openai_emu, ftc, tmp_path):
    model = org["private"]["fine_tuned_model"]
    r = ftc("migrate", "capture", model, "--yes")
    assert r.code == 2 and "does not hand out" in r.err and "--data" in r.err
    assert _chats(openai_emu) == []
    data = tmp_path / "mine.jsonl"
    data.write_bytes(_jsonl(sft_records(5)))
    r = ftc("migrate", "capture", "openai:" + model, "--yes", "--data", data, "--json")
    assert r.code == 0, r.err
    assert r.json()["answered"] == 5 and r.json()["origin"] == "--data mine.jsonl"


def test_capture_of_a_shut_down_model_or_an_unknown_one_is_refused(org, ftc):
    r = ftc("migrate", "capture", org["nano"]["fine_tuned_model"], "--yes")
    assert r.code == 2 and "was shut down on 2026-10-23" in r.err
    r = ftc("migrate", "capture", "ft:gpt-4o-mini-2024-07-18:emulator:nope:12345678", "--yes")
    assert r.code == 2 and "no fine-tuned model" in r.err and org["support"]["fine_tuned_model"] in r.err


def test_a_model_that_shuts_down_during_the_capture_keeps_what_was_saved(org, openai_emu, ftc):
    model = org["support"]["fine_tuned_model"]
    openai_emu.shut_down(model, after=5)
    r = ftc("migrate", "capture", model, "--yes", "--concurrency", "1")
    assert r.code == 1
    assert "stopped answering" in r.err and "after 5 of 12" in r.err and "Traceback" not in r.err
    from ftclient.migrate import load_capture

    rec = load_capture(model)
    assert rec.state == "model gone" and rec.answered == 5
    with Store() as st:
        assert sum(1 for x in st.eval_results(rec.run_id).values() if x.ok) == 5


def test_capture_killed_with_sigkill_resumes_without_asking_again(org, openai_emu, ftc_home):
    model = org["support"]["fine_tuned_model"]

    def slow(messages, m):
        time.sleep(0.3)
        return original_answer(_user(messages))

    openai_emu.chat_reply = slow
    cmd = [sys.executable, "-m", "ftclient", "migrate", "capture", model, "--yes", "--concurrency", "1"]
    env = {**os.environ}
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(_chats(openai_emu)) < 4:
            assert time.monotonic() < deadline and p.poll() is None
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    sent_before = len(_chats(openai_emu))
    with Store() as st:
        (run,) = st.list_eval_runs()
        stored = {k for k, v in st.eval_results(run.id).items() if v.ok}
    assert 3 <= len(stored) <= sent_before < 12
    r = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    assert rec["answered"] == 12 and rec["estimate"]["cached"] == len(stored)
    resent = [_user(x.body["messages"]) for x in _chats(openai_emu)[sent_before:]]
    assert len(resent) == 12 - len(stored)  # nothing answered is asked again


def test_capture_falls_back_to_the_end_of_the_training_file(org, openai_emu, ftc):
    job = openai_emu.add_fine_tune(MINI, training=TRAIN, downloadable=True, created="2026-11-25", suffix="nv")
    r = ftc("migrate", "capture", job["fine_tuned_model"], "--yes", "--json")
    assert r.code == 0, r.err
    rec = r.json()
    assert rec["answered"] == 4 and "last 4 example(s) of the training file" in rec["origin"]  # 10 % of 36
    assert Path(rec["prompts"]).read_bytes() == b"".join(TRAIN.splitlines(keepends=True)[-4:])


def test_bad_input_ends_in_one_message(org, ftc, tmp_path, monkeypatch):
    model = org["support"]["fine_tuned_model"]
    r = ftc("migrate", "report", model, "--candidate", "local:default", "--out", tmp_path / "r")
    assert r.code == 2 and "no capture" in r.err and "ftc migrate capture" in r.err
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    r = ftc("migrate", "capture", model, "--yes", "--data", bad)
    assert r.code == 1 and "line 1: not JSON" in r.err
    assert ftc("migrate", "capture", model, "--yes").code == 0
    a_file = tmp_path / "f"
    a_file.write_text("x")
    r = ftc("migrate", "report", model, "--candidate", "nope-123", "--out", tmp_path / "r")
    assert r.code == 2 and "Traceback" not in r.err
    r = ftc("migrate", "plan", model, "--to", "together", "--out", a_file)
    assert r.code == 2 and "is a file" in r.err
    r = ftc("migrate", "plan", model, "--to", "together", "--out", tmp_path / "p", "--base", "together")
    assert r.code == 2 and "BACKEND=MODEL" in r.err
    monkeypatch.delenv("OPENAI_API_KEY")
    r = ftc("migrate", "scan")
    assert r.code == 2 and "OPENAI_API_KEY" in r.err


# ----------------------------------------------------------------------------- plan


def test_plan_needs_the_users_copy_when_the_provider_keeps_the_data(org, ftc, tmp_path):
    model = org["private"]["fine_tuned_model"]
    out = tmp_path / "mig"
    r = ftc("migrate", "plan", model, "--to", "together", "--out", out)
    assert r.code == 2 and "--training-data" in r.err and f"{len(TRAIN):,} bytes" in r.err
    assert not (out / "plan.json").exists()
    wrong = tmp_path / "wrong.jsonl"
    wrong.write_bytes(TRAIN + b"\n")
    r = ftc("migrate", "plan", model, "--to", "together", "--out", out, "--training-data", wrong)
    assert r.code == 1 and "not the same file" in r.err and not (out / "plan.json").exists()
    r = ftc("migrate", "plan", model, "--to", "together", "--out", out, "--training-data", wrong,
            "--allow-different-data", "--json")
    assert r.code == 0 and "NOT the size" in r.json()["data"]["origin"]
    right = tmp_path / "right.jsonl"
    right.write_bytes(TRAIN)
    r = ftc("migrate", "plan", model, "--to", "together", "--out", out, "--training-data", right, "--json")
    assert r.code == 0, r.err
    d = r.json()
    assert d["data"]["bytes"] == len(TRAIN) and d["data"]["examples"] == 36
    assert (out / "data" / "train.jsonl").read_bytes() == TRAIN
    (c,) = d["candidates"]
    assert c["hyperparameters"]["epochs"] == 2  # the original job's n_epochs


def test_plan_translates_the_job_and_prices_each_candidate(org, ftc, tmp_path):
    model = org["support"]["fine_tuned_model"]
    out = tmp_path / "mig"
    r = ftc("migrate", "plan", model, "--to", "local,together", "--out", out, "--json")
    assert r.code == 0, r.err
    d = r.json()
    assert json.loads((out / "plan.json").read_text()) == d
    local, tg = d["candidates"]
    assert tg["base_model"] == "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"  # cheapest <= 16B on Together
    assert local["base_model"] == "Qwen/Qwen2.5-7B-Instruct"  # smallest open model of the 4-16B class
    # epochs as the original job; its learning-rate multiplier 1.8 x each backend's default rate
    assert tg["hyperparameters"] == {"epochs": 3, "learning_rate": pytest.approx(1.8e-5)}
    assert local["hyperparameters"] == {"epochs": 3, "learning_rate": pytest.approx(3.6e-4)}
    assert tg["training_usd"] > 0 and tg["per_1k_usd"] > 0 and local["per_1k_usd"] > 0
    assert d["current"]["per_1k_usd"] > 0 and d["days_left"] == (_dt.date(2027, 1, 14) - _dt.date.today()).days
    from ftclient.spec import load_spec

    spec = load_spec(out / "together" / "job.yaml")
    assert spec.model_for("together") == tg["base_model"] and spec.hyperparameters.epochs == 3
    assert spec.data.train.read_bytes() == TRAIN and spec.data.eval.read_bytes() == VALID
    r = ftc("migrate", "plan", model, "--to", "together", "--out", out, "--base", "local=x")
    assert r.code == 2 and "not among --to" in r.err


# ----------------------------------------------------------------------------- report pieces


def test_pick_metric_and_agreement():
    assert pick_metric(['{"a": 1}', "[1, 2]"]) == "json"
    assert pick_metric(["card_lost", "refund", "card_lost", "refund"]) == "label"
    assert pick_metric(["card lost", "refund now"]) == "exact"
    assert pick_metric(["a long answer with many words in it", "x"]) == "f1"
    score, n = agreement("exact", {"a": "Refund", "b": "x", "c": "y"}, {"a": "refund", "b": "z", "d": "q"})
    assert (score, n) == (0.5, 2)
    assert agreement("exact", {}, {"a": "x"}) == (None, 0)


def test_report_by_labels_with_a_partial_capture(org, ftc, tmp_path):
    """Repeated short answers are compared as labels (the capture was scored by exact match);
    a capture of the first N prompts is the yardstick for exactly those N."""
    model = org["support"]["fine_tuned_model"]
    data = tmp_path / "labels.jsonl"
    data.write_bytes(_jsonl(sft_records(36)))  # 12 labels, three times each
    r = ftc("migrate", "capture", model, "--yes", "--data", data, "--max-examples", "24", "--json")
    assert r.code == 0, r.err
    assert r.json()["answered"] == 24
    # another fine-tune of the organisation answers the same way: it agrees on every prompt
    other = "openai:" + org["private"]["fine_tuned_model"]
    r = ftc("migrate", "report", model, "--candidate", other, "--out", tmp_path / "r", "--json")
    assert r.code == 0, r.err
    d = r.json()
    assert d["metric"] == "label"
    (c,) = d["candidates"]
    assert c["agreement"] == 1.0 and c["agreement_n"] == 24 and c["good_enough"]
    want = sum(original_answer(t) == lab for t, lab, _ in (TICKETS * 2)) / 24
    assert d["original"]["accuracy"] == pytest.approx(want) and c["accuracy"] == pytest.approx(want)
    assert d["recommendation"]["verdict"] == "replace" and d["recommendation"]["ref"] == other
    with Store() as st:
        assert len(st.eval_results(c["run_id"])) == 24  # the candidate was asked the captured prompts only


# ----------------------------------------------------------------------------- end to end


@pytest.fixture
def both(org, together_emu, local_backend_env, monkeypatch):
    from ftclient import jobs

    together_emu.chat_reply = lambda messages, model: together_answer(_user(messages))
    monkeypatch.setattr(jobs, "DEFAULT_POLL", jobs.PollPolicy(initial=0.2, factor=1.0, max_interval=0.2))
    return org, together_emu


def test_scan_capture_plan_train_report_end_to_end(both, ftc, tiny, tmp_path):
    org, tg = both
    model = org["support"]["fine_tuned_model"]
    assert ftc("migrate", "scan", "--json").code == 0
    r = ftc("migrate", "capture", model, "--yes", "--json")
    assert r.code == 0, r.err
    out = tmp_path / "mig"
    r = ftc("migrate", "plan", model, "--to", "local,together", "--out", out, "--base", f"local={tiny}", "--json")
    assert r.code == 0, r.err
    # the tiny model trains on this machine; the Together job runs in the emulator
    r = ftc("train", out / "local" / "job.yaml", "--backend", "local", "--yes", "--json")
    assert r.code == 0, r.err
    local_job = r.json()["job"]["id"]
    r = ftc("train", out / "together" / "job.yaml", "--backend", "together", "--yes", "--json")
    assert r.code == 0, r.err
    tg_job = r.json()["job"]["id"]
    rep_dir = tmp_path / "report"
    r = ftc("migrate", "report", model, "--candidate", local_job, "--candidate", tg_job, "--out", rep_dir, "--json")
    assert r.code == 0, r.err
    d = r.json()
    assert json.loads((rep_dir / "report.json").read_text()) == d
    assert (rep_dir / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "# Replacing " + model in (rep_dir / "report.md").read_text()
    assert d["metric"] == "exact"  # 12 distinct short labels
    texts = [t for t, _, _ in TICKETS]
    want_tg = sum(together_answer(t) == original_answer(t) for t in texts) / len(texts)
    assert want_tg == 9 / 12  # by hand: the two transfer tickets and the fee ticket differ
    local, tgc = d["candidates"]
    assert tgc["agreement"] == pytest.approx(want_tg) and tgc["agreement_n"] == 12
    assert tgc["accuracy"] == pytest.approx(10 / 12)  # wrong on the two transfer tickets
    assert d["original"]["accuracy"] == pytest.approx(11 / 12)  # wrong on the fee ticket
    with Store() as st:
        local_answers = {k: v.output for k, v in st.eval_results(local["run_id"]).items()}
        original = {k: v.output for k, v in st.eval_results(d["capture"]["run_id"]).items()}
    want_local = sum(local_answers[k].strip().lower() == original[k].strip().lower() for k in original) / 12
    assert local["agreement"] == pytest.approx(want_local)
    assert tgc["training_usd"] > 0 and tgc["monthly_usd"] > 0 and tgc["latency_p50_s"] is not None
    assert d["days_left"] == (_dt.date(2027, 1, 14) - _dt.date.today()).days
    rec = d["recommendation"]
    assert rec["verdict"] == "none good enough yet" and "75.0 %" in rec["why"] and rec["try"]
    # at a lower bar the Together candidate (and only a candidate that reaches it) is recommended
    r = ftc("migrate", "report", model, "--candidate", tg_job, "--out", rep_dir, "--min-agreement", "0.7", "--json")
    assert r.code == 0 and r.json()["recommendation"]["candidate"] == r.json()["candidates"][0]["name"]
    # every answer came from the store: nothing was asked again
    n_chats = len(_chats(tg))
    assert ftc("migrate", "report", model, "--candidate", tg_job, "--out", rep_dir).code == 0
    assert len(_chats(tg)) == n_chats
