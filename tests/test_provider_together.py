"""The Together backend: mapping functions offline, and the whole flow through the REAL
together SDK against the local emulator (tests/emulator.py), with faults injected.

Every emulator test ends with ``emu.check_responses()`` (fixture teardown): each body the
emulator sent matched Together's official OpenAPI document.
"""

from __future__ import annotations

import json
import sqlite3
import warnings
from datetime import datetime, timedelta, timezone

import pytest

import openapi_check
from cassette_util import Clock  # the retry policy's fake clock, shared
from emulator import Fault, ProviderEmulator, drop_after_processing, hang, status

together = pytest.importorskip("together")

from ftclient.backends import Backend, JobState, UnknownStateWarning  # noqa: E402
from ftclient.errors import ConfigError, SpecError  # noqa: E402
from ftclient.providers import together as tgmod  # noqa: E402
from ftclient.jobs import Declined as SubmitCancelled  # noqa: E402
from ftclient.providers.together import (  # noqa: E402
    SUFFIX_MAX,
    TOGETHER_STATES,
    TogetherBackend,
    create_arguments,
    failure_reason,
    find_in_jobs,
    job_checkpoint,
    job_events,
    job_status,
    matches_token,
    suffix_for,
)
from ftclient.retry import AmbiguousResult, AuthError, RetryExhausted, RetryPolicy, sdk_client_kwargs  # noqa: E402
from ftclient.spec import parse_spec  # noqa: E402
from ftclient.store import Store  # noqa: E402

MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
TOKEN = "0123abcd" + "f" * 24
CREATE = r"/v1/fine-tunes$"
CREATE_BODY_SCHEMA = "#/paths/~1fine-tunes/post/requestBody/content/application~1json/schema"


# --------------------------------------------------------------------------- fixtures


def _rows(n, tag="card_lost"):
    return [{"messages": [{"role": "system", "content": "Route the ticket to one intent."},
                          {"role": "user", "content": f"I lost my card number {i}"},
                          {"role": "assistant", "content": tag}]} for i in range(n)]


@pytest.fixture
def data(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in _rows(12)))
    ev = tmp_path / "eval.jsonl"
    ev.write_text("".join(json.dumps(r) + "\n" for r in _rows(4, "card_found")))
    return tmp_path


def make_spec(base, **over):
    d = {"name": "support-intents", "base_model": MODEL, "data": {"train": "train.jsonl"}}
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            d[k] = {**d[k], **v}
        else:
            d[k] = v
    return parse_spec(d, base_dir=base)


@pytest.fixture
def emu():
    with ProviderEmulator("together") as e:
        yield e
        e.check_responses()


@pytest.fixture
def clock():
    return Clock()


def backend_for(emu, clock=None, *, api_key=None, read=60.0, **kw):
    clock = clock or Clock()
    client = together.Together(base_url=emu.base_url, api_key=api_key or emu.api_key,
                               **sdk_client_kwargs("together", read=read))
    policy = RetryPolicy(sleep=clock.sleep, clock=clock)
    kw.setdefault("sleep", lambda s: None)
    return TogetherBackend(client=client, policy=policy, file_poll_s=0, **kw)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "ftc.db")
    yield s
    s.close()


def new_job(store, spec):
    return store.new_job("together", spec.model_dump(mode="json"), model=spec.model_for("together"))


def creates(emu):
    return emu.requests_to(CREATE, "POST")


def poll_final(be, pid, limit=40):
    for _ in range(limit):
        st = be.status(pid)
        if st.final:
            return st
    raise AssertionError(f"{pid} not final after {limit} polls: {st}")


# --------------------------------------------------------------------------- mapping (offline)


def test_suffix_carries_the_token_within_together_limits(data):
    spec = make_spec(data)
    assert suffix_for(spec, TOKEN) == "support-intents-0123abcd"
    long = make_spec(data, together={"suffix": "a_very.long suffix/with odd chars and more text"})
    s = suffix_for(long, TOKEN)
    assert len(s) <= SUFFIX_MAX and s.endswith("-0123abcd") and "--" not in s
    assert all(c.isalnum() or c == "-" for c in s)
    job = {"suffix": s, "model_output_name": f"user/Meta-Llama-3.1-8B-{s}-1a2b3c4d"}
    assert matches_token(job, TOKEN)
    assert matches_token({"model_output_name": job["model_output_name"]}, TOKEN)
    assert not matches_token(job, "99999999" + "0" * 24)
    # the tag must be a whole dash-separated part, not a substring of another one
    assert not matches_token({"suffix": "x-10123abcd"}, TOKEN)


def test_create_arguments_lora_sft(data):
    spec = make_spec(data, data={"train": "train.jsonl", "eval": "eval.jsonl"},
                     hyperparameters={"epochs": 2, "learning_rate": 2e-4, "batch_size": 16, "seed": 7,
                                      "max_seq_len": 4096,
                                      "lora": {"r": 8, "alpha": 16, "dropout": 0.1,
                                               "target_modules": ["q_proj", "v_proj"]}},
                     together={"n_checkpoints": 2, "warmup_ratio": 0.1, "train_on_inputs": False})
    a = create_arguments(spec, training_file="file-t", validation_file="file-v", client_token=TOKEN)
    assert a == {"model": MODEL, "training_file": "file-t", "validation_file": "file-v", "n_evals": 2,
                 "n_epochs": 2, "n_checkpoints": 2, "warmup_ratio": 0.1, "batch_size": 16, "random_seed": 7,
                 "suffix": "support-intents-0123abcd", "training_method": "sft", "learning_rate": 2e-4,
                 "max_seq_length": 4096, "train_on_inputs": False, "lora": True, "lora_r": 8, "lora_alpha": 16,
                 "lora_dropout": 0.1, "lora_trainable_modules": "q_proj,v_proj"}


def test_create_arguments_full_dpo_and_qlora(data):
    a = create_arguments(make_spec(data, method="dpo", adapter="full", hyperparameters={"dpo_beta": 0.3}),
                         training_file="f", client_token=TOKEN)
    assert a["lora"] is False and a["training_method"] == "dpo" and a["dpo_beta"] == 0.3
    assert "train_on_inputs" not in a and "lora_r" not in a and "validation_file" not in a
    assert a["batch_size"] == "max" and "learning_rate" not in a and "max_seq_length" not in a
    q = create_arguments(make_spec(data, adapter="qlora"), training_file="f", client_token=TOKEN)
    assert q["lora"] is True and q["lora_r"] == 16 and q["lora_trainable_modules"] == "all-linear"


def test_state_mapping_covers_together_states():
    expect = {"pending": "pending", "queued": "queued", "running": "running", "compressing": "running",
              "uploading": "running", "cancel_requested": "running", "completed": "succeeded",
              "error": "failed", "user_error": "failed", "cancelled": "cancelled"}
    assert {k: v.value for k, v in TOGETHER_STATES.items()} == expect
    for s, want in expect.items():
        assert job_status({"id": "ft-1", "status": s}).state.value == want
    with pytest.warns(UnknownStateWarning, match="together.*'paused'"):
        assert job_status({"id": "ft-1", "status": "paused"}).state is JobState.PENDING


def test_status_events_checkpoints_mapping():
    evs = [
        {"created_at": "2026-11-22T10:00:00Z", "type": "job_pending", "message": "created", "hash": "h1",
         "level": None, "step": 0},
        {"created_at": "2026-11-22T10:01:00Z", "type": "checkpoint_save", "message": "Step 1/3: loss 1.25",
         "hash": "h2", "level": "info", "step": 1, "total_steps": 3},
        {"created_at": "2026-11-22T10:02:00Z", "type": "job_error", "message": "CUDA OOM at step 2",
         "level": "error", "step": 0},
    ]
    out = job_events(evs)
    assert [e.id for e in out][:2] == ["h1", "h2"] and out[2].id.startswith("tg-")
    assert out[1].data["loss"] == 1.25 and out[2].level == "error" and out[0].level == "info"
    assert [e.id for e in job_events(evs, after="h1")] == ["h2", out[2].id]
    assert job_events(evs, after=out[2].id) == []
    assert failure_reason(evs) == "CUDA OOM at step 2"
    st = job_status({"id": "ft-1", "status": "error", "events": evs})
    assert st.state is JobState.FAILED and st.error == "CUDA OOM at step 2" and st.final
    assert (st.step, st.total_steps, st.loss) == (1, 3, 1.25)
    ok = job_status({"id": "ft-1", "status": "completed", "model_output_name": "u/m-s-1", "token_count": 99,
                     "progress": {"estimate_available": True, "seconds_remaining": 0}},
                    serving_note="dedicated")
    assert ok.fine_tuned_model == "u/m-s-1" and ok.trained_tokens == 99 and ok.serving_note == "dedicated"
    assert ok.eta_seconds == 0.0 and ok.to_dict()["serving_note"] == "dedicated"
    cp = job_checkpoint({"step": 2, "path": "ft-1:2", "created_at": "2026-11-22T10:03:00Z",
                         "checkpoint_type": "Intermediate"}, "ft-1")
    assert (cp.id, cp.step, cp.model_ref) == ("ft-1:2", 2, "ft-1:2") and cp.created_at.year == 2026


def test_find_in_jobs_by_token_then_by_file():
    since = datetime(2026, 11, 22, 10, tzinfo=timezone.utc)
    jobs = [
        {"id": "ft-other", "suffix": "x-99999999", "training_file": "f1", "model": MODEL,
         "created_at": "2026-11-22T10:05:00Z"},
        {"id": "ft-mine", "suffix": "support-intents-0123abcd", "training_file": "f1", "model": MODEL,
         "created_at": "2026-11-22T10:06:00Z"},
    ]
    assert find_in_jobs(jobs, TOKEN, since=since) == "ft-mine"
    nameless = [{"id": "ft-a", "training_file": "f1", "model": MODEL, "created_at": "2026-11-22T10:05:00Z"},
                {"id": "ft-old", "training_file": "f1", "model": MODEL, "created_at": "2026-11-22T09:00:00Z"}]
    assert find_in_jobs(nameless, TOKEN, since=since) is None  # nothing to match a file against
    assert find_in_jobs(nameless, TOKEN, since=since, training_file="f1", model=MODEL) == "ft-a"
    assert find_in_jobs(nameless, TOKEN, since=since, remembered=("f1", MODEL)) == "ft-a"
    two = nameless + [{"id": "ft-b", "training_file": "f1", "model": MODEL, "created_at": "2026-11-22T10:07:00Z"}]
    assert find_in_jobs(two, TOKEN, since=since, training_file="f1") is None  # ambiguous: no guess


def test_preflight(data, monkeypatch):
    monkeypatch.setenv("TOGETHER_API_KEY", "tg-test-preflight-0000")
    be = TogetherBackend()
    assert isinstance(be, Backend)
    w = be.preflight(make_spec(data))
    assert any("dedicated endpoint" in x for x in w)
    w = be.preflight(make_spec(data, adapter="qlora"))
    assert any("no QLoRA" in x and "LoRA" in x for x in w)
    assert not any("dedicated" in x for x in be.preflight(make_spec(data, adapter="full")))
    assert any("not in ftc's price catalogue" in x for x in be.preflight(make_spec(data, base_model="acme/x")))
    with pytest.raises(SpecError, match="default"):
        be.preflight(make_spec(data, base_model="default"))
    # preflight needs no key (docs/providers.md); the key is read when the client is built
    monkeypatch.delenv("TOGETHER_API_KEY")
    monkeypatch.setenv("FTC_HOME", str(data / "home"))
    be = TogetherBackend()
    assert be.preflight(make_spec(data))
    with pytest.raises(ConfigError) as ei:
        be.client
    assert "TOGETHER_API_KEY" in (ei.value.hint or "") + ei.value.message


# --------------------------------------------------------------------------- through the SDK


@pytest.mark.parametrize("variant", ["lora-sft", "full-dpo"])
def test_create_request_on_the_wire(emu, data, store, variant):
    if variant == "lora-sft":
        spec = make_spec(data, data={"train": "train.jsonl", "eval": "eval.jsonl"},
                         hyperparameters={"epochs": 2, "learning_rate": 2e-4, "batch_size": 16, "seed": 7,
                                          "lora": {"r": 8, "alpha": 16, "dropout": 0.1,
                                                   "target_modules": ["q_proj", "v_proj"]}},
                         together={"n_checkpoints": 2, "warmup_ratio": 0.1, "train_on_inputs": True})
    else:
        spec = make_spec(data, method="dpo", adapter="full", hyperparameters={"epochs": 1, "dpo_beta": 0.25})
    be = backend_for(emu)
    job = new_job(store, spec)
    res = be.submit(spec, job=job, store=store)
    [req] = creates(emu)
    b = req.body
    openapi_check.validate_schema("together", CREATE_BODY_SCHEMA, b)  # the request, too, is as documented
    tag = job.client_token[:8]
    assert b["model"] == MODEL and b["suffix"] == f"support-intents-{tag}"
    assert b["random_seed"] == (7 if variant == "lora-sft" else 42)
    if variant == "lora-sft":
        assert b["training_type"] == {"type": "Lora", "lora_r": 8, "lora_alpha": 16, "lora_dropout": 0.1,
                                      "lora_trainable_modules": "q_proj,v_proj"}
        assert b["training_method"] == {"method": "sft", "train_on_inputs": True}
        assert (b["n_epochs"], b["learning_rate"], b["batch_size"], b["n_checkpoints"], b["warmup_ratio"]) == \
            (2, 2e-4, 16, 2, 0.1)
        assert b["validation_file"] in emu.files and b["validation_file"] != b["training_file"]
        assert b["n_evals"] == 2
    else:
        assert b["training_type"] == {"type": "Full"}
        assert b["training_method"]["method"] == "dpo" and b["training_method"]["dpo_beta"] == 0.25
        assert b["batch_size"] == "max" and not b.get("validation_file")
    # one limits GET, one estimate, one create: the SDK's create() would have sent a second estimate
    paths = [r.path for r in emu.requests if "/fine-tunes" in r.path]
    assert paths == ["/v1/fine-tunes/models/limits", "/v1/fine-tunes/estimate-price", "/v1/fine-tunes"]
    assert res.provider_job_id in emu.jobs and res.state is JobState.PENDING
    assert store.get_job(job.id).provider_job_id == res.provider_job_id
    [op] = store.operations(job.id, "create")
    assert op.state == "done" and op.request["suffix"] == b["suffix"]  # the exact body, write-ahead


def test_submit_to_completed_and_read_side(emu, data, store):
    spec = make_spec(data)
    be = backend_for(emu)
    job = new_job(store, spec)
    seen = []
    res = be.submit(spec, job=job, store=store, on_progress=lambda m, f: seen.append(m))
    pid = res.provider_job_id
    assert any("uploaded train.jsonl" in m for m in seen)
    states, after, got = [], None, []
    for _ in range(40):
        st = be.status(pid)
        states.append(st.provider_state)
        new = be.events(pid, after=after)
        got += new
        after = new[-1].id if new else after
        if st.final:
            break
    assert st.state is JobState.SUCCEEDED and st.provider_state == "completed"
    assert {"queued", "running", "compressing", "uploading"} <= set(states)
    out = emu.job(pid)["model_output_name"]
    assert st.fine_tuned_model == out and be.result(pid) == out
    assert f"-support-intents-{job.client_token[:8]}-" in out
    assert st.serving_note and "dedicated endpoint" in st.serving_note and "$3.36/h" in st.serving_note
    assert st.step == st.total_steps == 3
    ids = [e.id for e in got]
    assert len(ids) == len(set(ids)) == len(be.events(pid))  # incremental: nothing twice, nothing lost
    assert got[-1].message.startswith("Job finished")
    cps = be.checkpoints(pid)
    assert [c.step for c in cps] == sorted(c.step for c in cps)
    assert cps[0].model_ref == f"{pid}:1" and any(c.model_ref == out for c in cps)
    assert be.chat(out, [{"role": "user", "content": "I lost my card"}]) == "I lost my card"
    # cancelling a finished job is no error: its final status comes back
    assert be.cancel(pid).state is JobState.SUCCEEDED


def test_cancel(emu, data, store):
    spec = make_spec(data)
    be = backend_for(emu)
    pid = be.submit(spec, job=new_job(store, spec), store=store).provider_job_id
    st = be.cancel(pid)
    assert st.provider_state == "cancel_requested" and not st.final
    assert be.status(pid).state is JobState.CANCELLED


def test_client_from_environment(emu, data, monkeypatch):
    for k, v in emu.env.items():
        monkeypatch.setenv(k, v)
    be = TogetherBackend(policy=RetryPolicy(sleep=lambda s: None))
    assert be.find_by_client_token(TOKEN) is None
    assert emu.requests_to(r"/v1/fine-tunes$", "GET")
    assert str(be.client.base_url).rstrip("/") == emu.base_url


def test_upload_dedupe_by_sha256(emu, data, store):
    spec = make_spec(data)
    be = backend_for(emu)
    a = be.submit(spec, job=new_job(store, spec), store=store)
    b = be.submit(spec, job=new_job(store, spec), store=store)
    assert len(emu.requests_to(r"^/v1/files$", "POST")) == 1  # one upload for two jobs
    ja, jb = emu.jobs[a.provider_job_id], emu.jobs[b.provider_job_id]
    assert ja["training_file"] == jb["training_file"]
    # the provider lost the file: the next job uploads it again
    del emu.files[ja["training_file"]]
    c = be.submit(spec, job=new_job(store, spec), store=store)
    assert len(emu.requests_to(r"^/v1/files$", "POST")) == 2
    assert emu.jobs[c.provider_job_id]["training_file"] != ja["training_file"]


def test_429_retry_after_is_honoured(emu, data, store, clock):
    spec = make_spec(data)
    be = backend_for(emu, clock)
    emu.fail(CREATE, "POST", [status(429, headers={"Retry-After": "7"}), status(429, headers={"Retry-After": "3"})])
    res = be.submit(spec, job=new_job(store, spec), store=store)
    assert clock.waits == [7.0, 3.0]
    assert len(creates(emu)) == 3 and list(emu.jobs) == [res.provider_job_id]


def test_500_beyond_the_budget(emu, data, store, clock):
    spec = make_spec(data)
    be = backend_for(emu, clock)
    pid = be.submit(spec, job=new_job(store, spec), store=store).provider_job_id
    emu.fail(rf"/v1/fine-tunes/{pid}$", "GET", [status(500)] * 10)
    with pytest.raises(RetryExhausted) as ei:
        be.status(pid)
    assert ei.value.attempts == 6 and ei.value.status_code == 500 and "Together get job" in ei.value.message
    assert len(emu.requests_to(rf"/v1/fine-tunes/{pid}$", "GET")) == 6


def test_500_on_every_create_is_ambiguous_and_stops(emu, data, store, clock):
    spec = make_spec(data)
    be = backend_for(emu, clock)
    job = new_job(store, spec)
    emu.fail(CREATE, "POST", [status(500)] * 5)
    with pytest.raises(AmbiguousResult) as ei:
        be.submit(spec, job=job, store=store)
    assert "ftc jobs resume" in ei.value.hint
    assert len(creates(emu)) == 2 and not emu.jobs  # at most max_creates, never a blind retry loop
    assert store.get_job(job.id).state == "submit_unknown"


def test_connection_dropped_after_create_exactly_one_job(emu, data, store):
    spec = make_spec(data)
    be = backend_for(emu)
    job = new_job(store, spec)
    emu.fail(CREATE, "POST", [drop_after_processing()])
    res = be.submit(spec, job=job, store=store)
    assert len(emu.jobs) == 1 and len(creates(emu)) == 1
    [pid] = emu.jobs
    assert res.provider_job_id == pid and res.raw.get("reconciled")
    j = store.get_job(job.id)
    assert j.provider_job_id == pid and j.state == "queued"
    assert emu.jobs[pid]["suffix"].endswith(job.client_token[:8])


def test_hung_create_is_ambiguous_then_reconciled(emu, data, store):
    spec = make_spec(data)
    be = backend_for(emu, read=0.5)
    job = new_job(store, spec)
    emu.fail(CREATE, "POST", [hang()])
    res = be.submit(spec, job=job, store=store)
    # the hung request never reached the handler's action: reconciliation found nothing, one more create
    assert len(creates(emu)) == 2 and list(emu.jobs) == [res.provider_job_id]
    assert store.get_job(job.id).provider_job_id == res.provider_job_id


def test_slow_create_that_lands_after_the_timeout_is_found(emu, data, store):
    """The server creates the job after the client gave up: the reconciling listing finds it."""
    import time

    spec = make_spec(data)
    be = backend_for(emu, read=0.3, sleep=time.sleep)
    be.reconcile_wait_s = 0.5
    job = new_job(store, spec)
    emu.fail(CREATE, "POST", [Fault("drop_after", delay=0.6)])
    res = be.submit(spec, job=job, store=store)
    assert len(creates(emu)) == 1 and list(emu.jobs) == [res.provider_job_id]
    assert res.raw.get("reconciled") and store.get_job(job.id).provider_job_id == res.provider_job_id


def test_401_names_the_variable_and_never_the_key(emu, data, store, tmp_path):
    secret = "tg-wrong-9f8e7d6c5b4a39281706"
    spec = make_spec(data)
    be = backend_for(emu, api_key=secret)
    job = new_job(store, spec)
    with pytest.raises(AuthError) as ei:
        be.submit(spec, job=job, store=store)
    e = ei.value
    assert "TOGETHER_API_KEY" in e.message and e.key_env == "TOGETHER_API_KEY" and e.exit_code == 2
    text = " ".join([str(e), e.hint or "", repr(e.__dict__), repr(e.__cause__), repr(e.__context__)])
    assert secret not in text and secret[-8:] not in text
    assert not creates(emu) and not emu.jobs
    db = b"".join(p.read_bytes() for p in tmp_path.glob("ftc.db*"))
    assert secret.encode() not in db


def test_provider_failure_reason_in_status(emu, data, store):
    spec = make_spec(data)
    be = backend_for(emu)
    emu.job_fails("Training data has a record without an assistant turn (line 3).")
    pid = be.submit(spec, job=new_job(store, spec), store=store).provider_job_id
    st = poll_final(be, pid)
    assert st.state is JobState.FAILED and st.provider_state == "error"
    assert st.error == "Training data has a record without an assistant turn (line 3)."
    assert be.result(pid) is None and st.serving_note is None


def test_estimate_goes_to_confirm_and_no_means_no_create(emu, data, store):
    spec = make_spec(data, hyperparameters={"epochs": 3})
    be = backend_for(emu)
    got = []
    job = new_job(store, spec)
    with pytest.raises(SubmitCancelled):
        be.submit(spec, job=job, store=store, confirm=lambda est: got.append(est) or False)
    [est] = got
    [req] = emu.requests_to(r"/estimate-price$", "POST")
    sent = [r for r in emu.responses if r.path.endswith("/estimate-price")][0].body
    assert est["provider"] == "together" and est["cost_usd"] == sent["estimated_total_price"] > 0
    assert est["allowed_to_proceed"] is True and est["train_tokens"] == sent["estimated_train_token_count"]
    assert req.body["n_epochs"] == 3 and req.body["training_type"]["type"] == "Lora"
    assert not creates(emu) and not emu.jobs
    assert store.get_job(job.id).state == "cancelled" and not store.operations(job.id, "create")
    # ... and yes means one create
    job2 = new_job(store, spec)
    be.submit(spec, job=job2, store=store, confirm=lambda est: True)
    assert len(creates(emu)) == 1


def test_sdk_limits_refuse_before_anything_is_created(emu, data, store):
    spec = make_spec(data, hyperparameters={"batch_size": 512})  # the emulator's LoRA max is 128
    be = backend_for(emu)
    job = new_job(store, spec)
    with pytest.raises(SpecError, match="batch size of 512"):
        be.submit(spec, job=job, store=store)
    assert not creates(emu) and not store.operations(job.id, "create")
    # checked against the model's limits before the upload, not after it
    assert not emu.requests_to(r"^/v1/files", "POST") and not store.operations(job.id, "upload")


def test_resume_after_crash_between_mark_sent_and_finish(emu, data, store, monkeypatch):
    spec = make_spec(data)
    be = backend_for(emu)
    job = new_job(store, spec)
    real_post = be.client.post

    def post_then_die(path, *a, **kw):
        out = real_post(path, *a, **kw)
        if path == "/v1/fine-tunes":  # the job is created at Together...
            raise KeyboardInterrupt  # ...and the process dies before finish_operation
        return out

    monkeypatch.setattr(be.client, "post", post_then_die)
    with pytest.raises(KeyboardInterrupt):
        be.submit(spec, job=job, store=store)
    [op] = store.operations(job.id, "create")
    assert op.state == "sent" and store.get_job(job.id).provider_job_id is None
    [pid] = emu.jobs

    fresh = backend_for(emu)  # a new process: no memory of the first
    res = fresh.submit(spec, job=store.get_job(job.id), store=store)
    assert res.provider_job_id == pid and len(emu.jobs) == 1 and len(creates(emu)) == 1
    assert store.get_job(job.id).provider_job_id == pid
    assert [o.state for o in store.operations(job.id, "create")] == ["done"]
    # and a third call is a no-op
    assert fresh.submit(spec, job=store.get_job(job.id), store=store).provider_job_id == pid
    assert len(creates(emu)) == 1


def test_user_error_status_is_failed_with_reason(data, store):
    """Together's SDK knows ``user_error`` (the published spec does not): a failed job too."""
    with ProviderEmulator("together") as e:
        be = backend_for(e)
        spec = make_spec(data)
        e.job_fails("Your file has invalid JSON on line 7.", together_status="user_error")
        pid = be.submit(spec, job=new_job(store, spec), store=store).provider_job_id
        st = poll_final(be, pid)
        assert st.state is JobState.FAILED and st.provider_state == "user_error" and "line 7" in st.error
        with pytest.raises(AssertionError, match="user_error"):
            e.check_responses()  # by design: not in the document's FinetuneJobStatus


def test_validate_and_estimate_are_offline_and_use_the_core(data):
    be = TogetherBackend(client=object())  # any call to the client would fail
    spec = make_spec(data, hyperparameters={"epochs": 2})
    r = be.validate(spec, spec.data.train)
    assert r.ok and r.examples == 12
    est = be.estimate(spec)
    assert est.provider == "together" and est.epochs == 2 and est.min_charge_usd == 0.0
    # no minimum charge (Together's pricing page): a tiny file costs its tokens at the tier price
    assert est.cost_usd == pytest.approx(est.billed_tokens / 1e6 * 0.48) and not est.min_charge_applied
