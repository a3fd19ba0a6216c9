"""The Fireworks backend: mapping functions offline, and the whole flow through the REAL
fireworks SDK against the local emulator (tests/emulator.py, tests/emulator_fireworks.py),
with faults injected.

Every emulator test ends with ``emu.check_responses()`` (fixture teardown): each body the
emulator sent parsed strictly with the SDK's own response types.
"""

from __future__ import annotations

import json
import warnings

import pytest
from cassette_util import Clock  # the retry policy's fake clock, shared
from emulator import ProviderEmulator, drop_after_processing, hang, status

fireworks = pytest.importorskip("fireworks")

from ftclient.backends import Backend, JobState, UnknownStateWarning, get_backend  # noqa: E402
from ftclient.errors import ConfigError, SpecError, UsageError  # noqa: E402
from ftclient.providers.fireworks import (  # noqa: E402
    FIREWORKS_STATES,
    FireworksBackend,
    dataset_id_for,
    dpo_arguments,
    full_model_name,
    job_events,
    job_id_for,
    job_status,
    output_model_for,
    sft_arguments,
    split_name,
)
from ftclient.retry import AuthError, RequestRejected, RetryExhausted, RetryPolicy, sdk_client_kwargs  # noqa: E402
from ftclient.spec import parse_spec  # noqa: E402
from ftclient.store import Store  # noqa: E402

MODEL = "accounts/fireworks/models/llama-v3p1-8b-instruct"
TOKEN = "0123abcd" + "f" * 24
DATASET = "accounts/ftc-test/datasets/ftc-" + "a" * 32


def _rows(n, tag="card_lost"):
    return [{"messages": [{"role": "system", "content": "Route the ticket to one intent."},
                          {"role": "user", "content": f"I lost my card number {i}"},
                          {"role": "assistant", "content": tag}]} for i in range(n)]


def _prefs(n):
    return [{"input": {"messages": [{"role": "user", "content": f"I lost my card {i}"}]},
             "preferred_output": [{"role": "assistant", "content": "card_lost"}],
             "non_preferred_output": [{"role": "assistant", "content": "card_found"}]} for i in range(n)]


@pytest.fixture
def data(tmp_path):
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(12)))
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(4, "card_found")))
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _prefs(6)))
    return tmp_path


def make_spec(base, **over):
    d = {"name": "support-intents", "base_model": MODEL, "data": {"train": "train.jsonl"}}
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            d[k] = {**d[k], **v}
        else:
            d[k] = v
    return parse_spec(d, base_dir=base)


# --------------------------------------------------------------------------- mapping (offline)


def test_names():
    assert full_model_name("llama-v3p1-8b-instruct") == MODEL
    assert full_model_name(MODEL) == MODEL
    assert full_model_name("accounts/acme/models/mine-1") == "accounts/acme/models/mine-1"
    with pytest.raises(SpecError, match="Hugging Face"):
        full_model_name("meta-llama/Llama-3.1-8B-Instruct")
    with pytest.raises(SpecError):
        full_model_name("accounts/acme/datasets/x")
    assert split_name("accounts/acme/supervisedFineTuningJobs/ftc-sft-1") == ("acme", "supervisedFineTuningJobs",
                                                                              "ftc-sft-1")
    with pytest.raises(ValueError):
        split_name("ftc-sft-1")
    # ids Fireworks accepts: lowercase, digits, dashes, at most 63 characters
    ids = [dataset_id_for("AB" * 32), job_id_for(TOKEN, "sft"), job_id_for(TOKEN, "dpo")]
    assert ids == ["ftc-" + "ab" * 16, f"ftc-sft-{TOKEN}", f"ftc-dpo-{TOKEN}"]
    assert all(len(i) <= 63 and i == i.lower() for i in ids)
    with pytest.raises(ValueError):
        job_id_for("xyz", "sft")
    with pytest.raises(ValueError):
        dataset_id_for("abc")


def test_sft_arguments(data):
    spec = make_spec(data, data={"train": "train.jsonl", "eval": "eval.jsonl"},
                     hyperparameters={"epochs": 2, "learning_rate": 2e-4, "batch_size": 16, "max_seq_len": 4096,
                                      "lora": {"r": 32}},
                     fireworks={"early_stop": True})
    a = sft_arguments(spec, dataset=DATASET, evaluation_dataset=DATASET + "e", client_token=TOKEN)
    assert a == {"dataset": DATASET, "supervised_fine_tuning_job_id": f"ftc-sft-{TOKEN}",
                 "display_name": "support-intents", "base_model": MODEL, "epochs": 2, "lora_rank": 32,
                 "output_model": "support-intents-0123abcd", "learning_rate": 2e-4, "batch_size_samples": 16,
                 "max_context_length": 4096, "evaluation_dataset": DATASET + "e", "early_stop": True}
    # defaults: no learning rate, batch size or context length sent; Fireworks picks them
    a = sft_arguments(make_spec(data), dataset=DATASET, client_token=TOKEN)
    assert not {"learning_rate", "batch_size_samples", "max_context_length", "early_stop", "is_turbo",
                "evaluation_dataset"} & set(a)
    # the spec's own output model id, checked
    spec = make_spec(data, fireworks={"output_model": "my-model-1"})
    assert output_model_for(spec, TOKEN) == "my-model-1"
    with pytest.raises(SpecError, match="output_model"):
        output_model_for(make_spec(data, fireworks={"output_model": "My_Model"}), TOKEN)


def test_dpo_arguments(data):
    spec = make_spec(data, method="dpo", data={"train": "prefs.jsonl"}, hyperparameters={"dpo_beta": 0.2,
                                                                                          "epochs": 1})
    a = dpo_arguments(spec, dataset=DATASET, client_token=TOKEN)
    assert a["dpo_job_id"] == f"ftc-dpo-{TOKEN}" and a["dataset"] == DATASET
    assert a["loss_config"] == {"method": "DPO", "dpo": {"beta": 0.2}}
    assert a["training_config"]["base_model"] == MODEL and a["training_config"]["epochs"] == 1


def test_state_mapping_covers_the_sdk_states():
    from typing import get_args

    from fireworks.types import SupervisedFineTuningJob

    ann = SupervisedFineTuningJob.model_fields["state"].annotation
    sdk_states = {s for arg in get_args(ann) for s in get_args(arg)}
    assert sdk_states and sdk_states == set(FIREWORKS_STATES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UnknownStateWarning):
            job_status({"state": "JOB_STATE_NEW_THING"})


def test_status_and_events_mapping():
    job = {"name": f"accounts/ftc-test/supervisedFineTuningJobs/ftc-sft-{TOKEN}", "displayName": "x",
           "state": "JOB_STATE_RUNNING", "createTime": "2026-12-01T10:00:00Z", "updateTime": "2026-12-01T10:05:00Z",
           "jobProgress": {"percent": 40, "epoch": 1, "inputTokens": 1234}, "dataset": DATASET,
           "outputModel": "support-intents-0123abcd"}
    st = job_status(job)
    assert (st.state, st.step, st.total_steps, st.fine_tuned_model) == (JobState.RUNNING, 40, 100, None)
    evs = job_events(job)
    assert [e.id for e in evs] == ["fw-created", "fw-job_state_running-40"]
    assert evs[1].data == {"percent": 40, "epoch": 1, "inputTokens": 1234}
    assert job_events(job, after="fw-created") == evs[1:]
    done = {**job, "state": "JOB_STATE_COMPLETED", "jobProgress": {"percent": 100, "inputTokens": 5000},
            "completedTime": "2026-12-01T11:00:00Z"}
    assert [e.id for e in job_events(done, after="fw-job_state_running-40")] == ["fw-job_state_completed-100",
                                                                                 "fw-completed"]
    assert job_events(done, after="fw-completed") == []
    touched = {**done, "updateTime": "2026-12-01T11:00:05Z"}  # the record touched after the end
    times = [e.created_at for e in job_events(touched)]
    assert times == sorted(times)
    st = job_status(done, serving_note="deploy it")
    assert st.state is JobState.SUCCEEDED and st.fine_tuned_model == "accounts/ftc-test/models/support-intents-0123abcd"
    assert (st.trained_tokens, st.serving_note) == (5000, "deploy it")
    assert job_events(done)[-1].message.endswith("model accounts/ftc-test/models/support-intents-0123abcd")
    failed = {**job, "state": "JOB_STATE_FAILED",
              "status": {"code": "INVALID_ARGUMENT", "message": "line 3: messages must not be empty"}}
    st = job_status(failed)
    assert st.state is JobState.FAILED and st.error == "line 3: messages must not be empty (INVALID_ARGUMENT)"
    assert job_events(failed)[-1].level == "error"


def test_registered_and_preflight(data, monkeypatch):
    monkeypatch.setenv("FTC_HOME", str(data / "home"))
    monkeypatch.delenv("FIREWORKS_API_KEY", raising=False)
    be = get_backend("fireworks")
    assert isinstance(be, FireworksBackend) and isinstance(be, Backend)
    w = be.preflight(make_spec(data))
    assert any("dedicated (on-demand) deployment" in x and "$3.89/h" in x for x in w)
    assert any("no QLoRA" in x for x in be.preflight(make_spec(data, adapter="qlora")))
    with pytest.raises(SpecError, match="LoRA adapters only") as ei:
        be.preflight(make_spec(data, adapter="full"))
    assert "together" in ei.value.hint and "local" in ei.value.hint
    with pytest.raises(SpecError, match="between 0 and 0.5"):
        be.preflight(make_spec(data, method="dpo", data={"train": "prefs.jsonl"}, hyperparameters={"dpo_beta": 0.5}))
    with pytest.raises(SpecError, match="default"):
        be.preflight(make_spec(data, base_model="default"))
    with pytest.raises(SpecError, match="output_model"):
        be.preflight(make_spec(data, fireworks={"output_model": "Not_An_Id"}))
    w = be.preflight(make_spec(data, hyperparameters={"seed": 3, "lora": {"r": 8, "alpha": 64}}))
    assert not any("seed" in x or "alpha" in x for x in be.preflight(make_spec(data, hyperparameters={"seed": 42})))
    assert any("seed" in x for x in w) and any("alpha" in x and "lora.r = 8" in x for x in w)
    assert any("not in ftc's price catalogue: priced by Fireworks' size tier" in x and "7b" in x
               for x in be.preflight(make_spec(data, base_model="mystery-7b")))
    assert any("cannot price it" in x for x in be.preflight(make_spec(data, base_model="mystery")))
    # preflight needs no key; the key is read when the client is built
    with pytest.raises(ConfigError) as ei:
        be.client
    assert "FIREWORKS_API_KEY" in (ei.value.hint or "") + ei.value.message


def test_estimate_and_validation_are_offline(data, monkeypatch):
    monkeypatch.setenv("FTC_HOME", str(data / "home"))
    be = FireworksBackend()
    spec = make_spec(data, hyperparameters={"epochs": 2})
    est = be.estimate(spec)
    assert est.provider == "fireworks" and est.examples == 12 and est.epochs == 2
    assert est.cost_usd == pytest.approx(est.billed_tokens * 0.50 / 1e6)
    # a model the catalogue does not list: Fireworks' size tier, from the size in its name
    unlisted = be.estimate(make_spec(data, base_model="accounts/fireworks/models/qwen3-8b", hyperparameters={"epochs": 2}))
    assert unlisted.cost_usd == pytest.approx(unlisted.billed_tokens * 0.50 / 1e6)
    assert any("size tier" in c for c in unlisted.caveats)
    with pytest.raises(ConfigError):  # no size to price it by: no figure, said so before any request
        be.estimate(make_spec(data, base_model="accounts/fireworks/models/mystery-model"))
    res = be.validate(spec, data / "train.jsonl")
    assert res.ok and res.examples == 12 and res.provider == "fireworks"


def test_read_side_refuses_a_name_that_is_no_job(monkeypatch):
    be = FireworksBackend(client=object())
    with pytest.raises(UsageError, match="not a Fireworks job name"):
        be.status("ftjob-123")
    with pytest.raises(UsageError, match="not a Fireworks fine-tuning job"):
        be.status("accounts/a/models/m")


# --------------------------------------------------------------------------- through the SDK

SFT_CREATE = r"/v1/accounts/ftc-test/supervisedFineTuningJobs$"
DPO_CREATE = r"/v1/accounts/ftc-test/dpoJobs$"


@pytest.fixture
def emu():
    with ProviderEmulator("fireworks") as e:
        yield e
        assert e.check_responses() > 0


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "ftc.db")
    yield s
    s.close()


def backend_for(emu, clock=None, *, api_key=None, read=60.0, **kw):
    clock = clock or Clock()
    client = fireworks.Fireworks(base_url=emu.base_url, api_key=api_key or emu.api_key, account_id=emu.account_id,
                                 **sdk_client_kwargs("fireworks", read=read))
    policy = RetryPolicy(sleep=clock.sleep, clock=clock)
    kw.setdefault("sleep", lambda s: None)
    return FireworksBackend(client=client, policy=policy, file_poll_s=0, **kw)


def new_job(store, spec):
    return store.new_job("fireworks", spec.model_dump(mode="json"), model=spec.model_for("fireworks"))


def creates(emu, path=SFT_CREATE):
    return emu.requests_to(path, "POST")


def test_create_request_on_the_wire_sft(emu, data, store):
    spec = make_spec(data, data={"train": "train.jsonl", "eval": "eval.jsonl"},
                     hyperparameters={"epochs": 2, "learning_rate": 2e-4, "batch_size": 4, "lora": {"r": 8}})
    be = backend_for(emu)
    job = new_job(store, spec)
    res = be.submit(spec, job=job, store=store)
    [req] = creates(emu)
    assert req.query["supervisedFineTuningJobId"] == [f"ftc-sft-{job.client_token}"]
    b = req.body
    assert (b["baseModel"], b["epochs"], b["learningRate"], b["batchSizeSamples"], b["loraRank"]) == (MODEL, 2, 2e-4,
                                                                                                      4, 8)
    assert b["outputModel"] == f"support-intents-{job.client_token[:8]}" and b["displayName"] == "support-intents"
    train_ds, eval_ds = b["dataset"].split("/")[-1], b["evaluationDataset"].split("/")[-1]
    assert train_ds != eval_ds and {train_ds, eval_ds} <= set(emu.datasets)
    assert all(emu.dataset(d)["state"] == "READY" for d in (train_ds, eval_ds))
    assert res.provider_job_id == f"accounts/ftc-test/supervisedFineTuningJobs/ftc-sft-{job.client_token}"
    assert res.provider_job_id in emu.jobs
    [op] = store.operations(job.id, "create")
    assert op.state == "done" and op.request["supervised_fine_tuning_job_id"] == f"ftc-sft-{job.client_token}"


def test_dpo_job_on_the_wire_and_to_its_model(emu, data, store):
    spec = make_spec(data, method="dpo", data={"train": "prefs.jsonl"}, hyperparameters={"dpo_beta": 0.2})
    be = backend_for(emu)
    pid = be.submit(spec, job=new_job(store, spec), store=store).provider_job_id
    [req] = creates(emu, DPO_CREATE)
    assert req.body["lossConfig"] == {"method": "DPO", "dpo": {"beta": 0.2}}
    assert req.body["trainingConfig"]["baseModel"] == MODEL and not creates(emu)
    assert pid.startswith("accounts/ftc-test/dpoJobs/ftc-dpo-")
    emu.finish(pid)
    st = be.status(pid)
    assert st.state is JobState.SUCCEEDED and st.fine_tuned_model.startswith("accounts/ftc-test/models/")


def test_submit_to_completed_and_read_side(emu, data, store):
    spec = make_spec(data)
    be = backend_for(emu)
    job = new_job(store, spec)
    seen = []
    pid = be.submit(spec, job=job, store=store, on_progress=lambda m, f: seen.append(m)).provider_job_id
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
    assert st.state is JobState.SUCCEEDED and st.provider_state == "JOB_STATE_COMPLETED"
    assert {"JOB_STATE_PENDING", "JOB_STATE_RUNNING"} <= set(states)  # (each GET moves the emulator's job on)
    out = f"accounts/ftc-test/models/support-intents-{job.client_token[:8]}"
    assert st.fine_tuned_model == out == be.result(pid) and out in emu.models
    assert st.serving_note and "dedicated (on-demand) deployment" in st.serving_note and "$3.89/h" in st.serving_note
    assert st.step == st.total_steps == 100
    ids = [e.id for e in got]
    assert len(ids) == len(set(ids)) and ids[0] == "fw-created" and got[-1].message.endswith(out)
    assert [c.model_ref for c in be.checkpoints(pid)] == [out]
    # a LoRA model answers only on a deployment: a clear message first, an answer once deployed
    with pytest.raises(UsageError, match="dedicated") as ei:
        be.chat(out, [{"role": "user", "content": "I lost my card"}])
    assert "firectl deployment create" in ei.value.hint
    emu.deploy(out)
    assert be.chat(out, [{"role": "user", "content": "I lost my card"}]) == "I lost my card"
    # cancelling a finished job is no error: its final status comes back
    assert be.cancel(pid).state is JobState.SUCCEEDED


def test_cancel(emu, data, store):
    spec = make_spec(data)
    be = backend_for(emu)
    pid = be.submit(spec, job=new_job(store, spec), store=store).provider_job_id
    st = be.cancel(pid)  # the cancel, then the job read back (the emulator moves it on per read)
    assert [r.path for r in emu.requests if r.method == "POST"][-1].endswith(":cancel")
    assert st.provider_state in ("JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED")
    assert st.final == (st.provider_state == "JOB_STATE_CANCELLED")
    assert be.status(pid).state is JobState.CANCELLED


def test_provider_failure_reason_in_status(emu, data, store):
    emu.job_fails("line 7: the assistant message is empty")
    spec = make_spec(data)
    be = backend_for(emu)
    pid = be.submit(spec, job=new_job(store, spec), store=store).provider_job_id
    for _ in range(20):
        st = be.status(pid)
        if st.final:
            break
    assert st.state is JobState.FAILED and "line 7: the assistant message is empty" in st.error
    assert be.events(pid)[-1].level == "error"


def test_one_dataset_per_content_even_across_stores(emu, data, store, tmp_path):
    spec = make_spec(data)
    be = backend_for(emu)
    be.submit(spec, job=new_job(store, spec), store=store)
    uploads = lambda: [r for r in emu.requests if r.method == "POST" and r.path.endswith(":upload")]  # noqa: E731
    assert len(uploads()) == 1 and len(emu.datasets) == 1
    # another machine (a new store) with the same file: Fireworks has the dataset, READY: no upload
    other = Store(tmp_path / "other.db")
    try:
        be.submit(spec, job=new_job(other, spec), store=other)
    finally:
        other.close()
    assert len(uploads()) == 1 and len(emu.datasets) == 1 and len(creates(emu)) == 2


def test_unknown_base_model_refused_before_any_upload(emu, data, store):
    be = backend_for(emu)
    spec = make_spec(data, base_model="llama-v9-1t-instruct")
    with pytest.raises(SpecError, match="no model") as ei:
        be.submit(spec, job=new_job(store, spec), store=store)
    assert "llama-v3p1-8b-instruct" in ei.value.hint
    assert not emu.datasets and not creates(emu)


def test_429_retry_after_is_honoured(emu, data, store):
    clock = Clock()
    emu.fail(SFT_CREATE, "POST", [status(429, headers={"Retry-After": "7"})])
    spec = make_spec(data)
    be = backend_for(emu, clock)
    be.submit(spec, job=new_job(store, spec), store=store)
    assert 7.0 in clock.waits and len(creates(emu)) == 2 and len(emu.jobs) == 1


def test_500_beyond_the_budget(emu, data, store):
    clock = Clock()
    emu.fail(SFT_CREATE, "POST", [status(500)] * 50)
    spec = make_spec(data)
    be = backend_for(emu, clock)
    with pytest.raises(RetryExhausted):
        be.submit(spec, job=new_job(store, spec), store=store)
    assert not emu.jobs


def test_lost_create_answer_is_sent_again_and_makes_one_job(emu, data, store):
    emu.fail(SFT_CREATE, "POST", [drop_after_processing()])
    spec = make_spec(data)
    be = backend_for(emu)
    job = new_job(store, spec)
    res = be.submit(spec, job=job, store=store)
    # the create was performed, its answer lost; sent again (the id makes it idempotent): 409, then the job
    assert len(creates(emu)) == 2 and len(emu.jobs) == 1
    assert res.provider_job_id in emu.jobs and store.get_job(job.id).provider_job_id == res.provider_job_id


def test_hung_create_makes_one_job(emu, data, store):
    emu.fail(SFT_CREATE, "POST", [hang()])
    spec = make_spec(data)
    be = backend_for(emu, read=0.5)
    res = be.submit(spec, job=new_job(store, spec), store=store)
    assert len(emu.jobs) == 1 and res.provider_job_id in emu.jobs


def test_401_names_the_variable_and_never_the_key(emu, data, store, caplog):
    bad = "fw_" + "Z" * 30
    spec = make_spec(data)
    be = backend_for(emu, api_key=bad)
    with pytest.raises(AuthError) as ei:
        be.submit(spec, job=new_job(store, spec), store=store)
    text = f"{ei.value.message} {ei.value.hint}"
    assert "FIREWORKS_API_KEY" in text and bad not in text and bad not in caplog.text
    assert not emu.datasets and not emu.jobs


def test_reconcile_finds_the_job_by_its_token(emu, data, store):
    spec = make_spec(data)
    be = backend_for(emu)
    job = new_job(store, spec)
    pid = be.submit(spec, job=job, store=store).provider_job_id
    assert be.find_by_client_token(job.client_token) == pid
    assert be.find_by_client_token("9" * 32) is None


def test_account_from_the_key_when_none_is_set(emu, data, monkeypatch):
    monkeypatch.delenv("FIREWORKS_ACCOUNT_ID", raising=False)
    client = fireworks.Fireworks(base_url=emu.base_url, api_key=emu.api_key, account_id=None, max_retries=0)
    be = FireworksBackend(client=client)
    assert be.account_id == emu.account_id


def test_eval_through_the_sdk_and_an_undeployed_fine_tune(emu, data, store, tmp_path, monkeypatch):
    from ftclient.evaluation import evaluate

    for k, v in emu.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("FTC_HOME", str(tmp_path))  # the store of the `store` fixture: ftc eval finds the job
    spec = make_spec(data)
    be = backend_for(emu)
    job = new_job(store, spec)
    pid = be.submit(spec, job=job, store=store).provider_job_id
    emu.finish(pid)
    model = be.result(pid)
    store.update_state(job.id, "succeeded", fine_tuned_model=model)  # what watching the job records
    # the fine-tune is not served until a deployment runs it: the run stops with that said
    with pytest.raises(RequestRejected) as ei:
        evaluate(f"fireworks:{model}", data / "eval.jsonl", policy=RetryPolicy(base=0.01, max_wait=0.05, deadline=10))
    assert ei.value.status_code == 404 and "dedicated (on-demand) deployment" in ei.value.hint
    emu.deploy(model)
    s = evaluate(f"fireworks:{model}", data / "eval.jsonl", policy=RetryPolicy(base=0.01, max_wait=0.05, deadline=10))
    assert s["completed"] == 4 and s["failed"] == 0
    # the run knows the job: a fine-tune of the catalogue's model, priced per token, with its
    # dedicated deployment's hourly rate said; ftc compare shows it as an option
    assert s["fine_tuned"] is True and s["job_id"] and s["base_model"] == MODEL
    assert s["cost_per_1k_queries_usd"] > 0 and any("$3.89/h" in n for n in s["notes"])
    from ftclient.report import build_report

    (opt,) = build_report([s]).to_dict()["options"]
    assert opt["backend"] == "fireworks" and opt["fine_tuned"] and opt["completed"] == 4
