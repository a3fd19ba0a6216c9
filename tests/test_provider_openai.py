"""OpenAIBackend through the REAL openai SDK against the local emulator (tests/emulator.py).

Assertions are made on the emulator's request log and job list; every test ends with
``emu.check_responses()`` (in the fixture): every body the emulator sent validates
against the official OpenAPI document.
"""

from __future__ import annotations

import json
import logging
from datetime import date

import pytest

import openapi_check
from emulator import ProviderEmulator, drop_after_processing, hang, status

openai = pytest.importorskip("openai")

from ftclient.backends import Backend, JobState  # noqa: E402
from ftclient.errors import ConfigError, DataError, FtcError, SpecError  # noqa: E402
from ftclient.providers.openai import OPENAI_STATES, OpenAIBackend  # noqa: E402
from ftclient.retry import AmbiguousResult, AuthError, RetryExhausted, RetryPolicy, sdk_client_kwargs  # noqa: E402
from ftclient.spec import parse_spec  # noqa: E402
from ftclient.store import Store  # noqa: E402

MODEL = "gpt-4.1-mini-2025-04-14"
BEFORE = date(2026, 11, 22)
CREATE = r"/fine_tuning/jobs$"


class Sleeps:
    def __init__(self):
        self.waits: list[float] = []

    def __call__(self, s: float) -> None:
        self.waits.append(s)


@pytest.fixture
def emu():
    with ProviderEmulator("openai") as e:
        yield e
        e.check_responses()


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    with Store(tmp_path / "ftc.db") as s:
        yield s


@pytest.fixture
def train(tmp_path):
    p = tmp_path / "train.jsonl"
    rows = [{"messages": [{"role": "system", "content": "Route the ticket to one intent."},
                          {"role": "user", "content": f"I lost my card number {i}"},
                          {"role": "assistant", "content": "card_lost"}]} for i in range(12)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def client(emu, *, read=5.0, api_key=None):
    return openai.OpenAI(base_url=emu.base_url, api_key=api_key or emu.api_key,
                         **sdk_client_kwargs("openai", connect=2.0, read=read, write=5.0, pool=2.0))


def backend(emu, sleeps=None, *, read=5.0, api_key=None, **kw):
    sleeps = sleeps if sleeps is not None else Sleeps()
    kw.setdefault("policy", RetryPolicy(max_attempts=3, sleep=sleeps))
    return OpenAIBackend(client=client(emu, read=read, api_key=api_key), sleep=sleeps, today=BEFORE,
                         file_poll_s=0.01, **kw)


def spec(train, **over):
    d = {"name": "tickets", "base_model": MODEL, "data": {"train": str(train)},
         "hyperparameters": {"epochs": 2, "seed": 7}, "openai": {"suffix": "tickets"}}
    d.update(over)
    return parse_spec(d)


def new_job(store):
    return store.new_job("openai", {"name": "tickets"}, model=MODEL)


def creates(emu):
    return emu.requests_to(CREATE, "POST")


def run_to_end(b, pid, limit=30):
    for _ in range(limit):
        st = b.status(pid)
        if st.final:
            return st
    raise AssertionError(f"{pid} not final after {limit} polls")


# ----------------------------------------------------------------------------- the whole path


def test_is_a_backend():
    assert isinstance(OpenAIBackend(), Backend)
    assert OpenAIBackend().name == "openai"


def test_submit_to_succeeded(emu, store, train):
    b = backend(emu)
    job = new_job(store)
    progress = []
    r = b.submit(spec(train), job=job, store=store, on_progress=lambda m, f: progress.append((m, f)))
    assert r.provider_job_id in emu.jobs and r.state == JobState.VALIDATING_FILES
    assert len(emu.jobs) == 1 and len(creates(emu)) == 1
    body = creates(emu)[0].body
    assert body["model"] == MODEL and body["suffix"] == "tickets" and body["seed"] == 7
    assert body["method"] == {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}}
    assert body["metadata"] == {"ftc_client_token": job.client_token, "ftc_job_id": job.id}
    assert "hyperparameters" not in body and "validation_file" not in body
    j = store.get_job(job.id)
    assert j.provider_job_id == r.provider_job_id and j.state == "validating_files"
    assert progress and progress[-1][1] == 1.0

    st = run_to_end(b, r.provider_job_id)
    assert st.state == JobState.SUCCEEDED and st.error is None
    assert st.fine_tuned_model.startswith(f"ft:{MODEL}:") and ":tickets:" in st.fine_tuned_model
    assert b.result(r.provider_job_id) == st.fine_tuned_model

    evs = b.events(r.provider_job_id)
    assert evs[0].message.startswith("Validating training file") and evs[-1].message.endswith("completed")
    assert [e.created_at for e in evs] == sorted(e.created_at for e in evs)
    metrics = [e for e in evs if e.data.get("type") == "metrics"]
    assert metrics and metrics[0].data["step"] == 1
    assert b.events(r.provider_job_id, after=evs[-3].id) == evs[-2:]
    assert b.events(r.provider_job_id, after=evs[-1].id) == []

    cps = b.checkpoints(r.provider_job_id)
    assert [c.step for c in cps] == [1, 2, 3] and cps[-1].model_ref.startswith(st.fine_tuned_model)
    assert "train_loss" in cps[-1].metrics

    emu.chat_reply = {"I lost my card": "card_lost"}
    assert b.chat(st.fine_tuned_model, [{"role": "user", "content": "I lost my card"}]) == "card_lost"


def test_status_reports_progress_while_running(emu, store, train):
    b = backend(emu)
    r = b.submit(spec(train), job=new_job(store), store=store)
    states = []
    for _ in range(4):  # validating -> queued -> running (step 1) -> running (step 2)
        s = b.status(r.provider_job_id)
        states.append((s.state, s.step))
    assert states[-1] == (JobState.RUNNING, 2) and s.total_steps == 3 and s.loss is not None
    assert s.progress == pytest.approx(2 / 3)


def test_dpo_eval_and_multiplier_mapping(emu, store, train, tmp_path):
    ev = tmp_path / "eval.jsonl"
    ev.write_text(train.read_text().splitlines()[0] + "\n")
    s = spec(train, method="dpo", data={"train": str(train), "eval": str(ev)},
             hyperparameters={"epochs": 1, "batch_size": 4, "dpo_beta": 0.3},
             openai={"learning_rate_multiplier": 0.5, "metadata": {"team": "support"}})
    backend(emu).submit(s, job=new_job(store), store=store)
    body = creates(emu)[0].body
    assert body["method"] == {"type": "dpo", "dpo": {"hyperparameters": {
        "n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 0.5, "beta": 0.3}}}
    assert body["validation_file"] != body["training_file"] and body["metadata"]["team"] == "support"
    assert "suffix" not in body
    assert len(emu.requests_to(r"/files$", "POST")) == 2


# ----------------------------------------------------------------------------- uploads


def test_same_file_uploaded_once_and_again_after_404(emu, store, train):
    b = backend(emu)
    b.submit(spec(train), job=new_job(store), store=store)
    msgs = []
    b.submit(spec(train), job=new_job(store), store=store, on_progress=lambda m, f: msgs.append(m))
    assert len(emu.requests_to(r"/files$", "POST")) == 1 and len(emu.jobs) == 2
    assert any("reusing" in m for m in msgs)
    fid = creates(emu)[0].body["training_file"]
    assert creates(emu)[1].body["training_file"] == fid
    emu.files.pop(fid)  # the provider lost it: GET /files/{id} answers 404
    b.submit(spec(train), job=new_job(store), store=store)
    assert len(emu.requests_to(r"/files$", "POST")) == 2
    assert creates(emu)[2].body["training_file"] != fid
    assert any(r.status == 404 for r in emu.responses if r.path == f"/v1/files/{fid}")


def test_waits_for_file_processing(store, train):
    with ProviderEmulator("openai", file_processing_delay=0.3) as emu:
        sleeps = Sleeps()
        b = backend(emu, sleeps)
        b.sleep = lambda s: (sleeps(s), __import__("time").sleep(0.05))
        b.submit(spec(train), job=new_job(store), store=store)
        assert len(emu.jobs) == 1 and len(emu.requests_to(r"/files/file-", "GET")) >= 2
        emu.check_responses()


# ----------------------------------------------------------------------------- faults


def test_429_retry_after_is_honoured(emu, store, train):
    sleeps = Sleeps()
    emu.fail(CREATE, "POST", [status(429, headers={"Retry-After": "7"})])
    r = backend(emu, sleeps).submit(spec(train), job=new_job(store), store=store)
    assert sleeps.waits == [7.0] and len(creates(emu)) == 2 and list(emu.jobs) == [r.provider_job_id]


def test_500_beyond_the_retry_budget(emu, store, train):
    emu.fail(r"/files$", "POST", [status(500)] * 3)
    job = new_job(store)
    with pytest.raises(RetryExhausted) as ei:
        backend(emu).submit(spec(train), job=job, store=store)
    assert "OpenAI upload train.jsonl failed: HTTP 500" in str(ei.value) and "after 3 attempts" in str(ei.value)
    assert len(emu.requests_to(r"/files$", "POST")) == 3 and not emu.files and not emu.jobs
    assert [o.state for o in store.operations(job.id, "upload")] == ["failed"]


def test_500_on_create_is_ambiguous_and_bounded(emu, store, train):
    emu.fail(CREATE, "POST", [status(500), status(500)])
    job = new_job(store)
    with pytest.raises(AmbiguousResult) as ei:
        backend(emu).submit(spec(train), job=job, store=store)
    assert f"ftc jobs resume {job.id}" in ei.value.hint
    assert len(creates(emu)) == 2 and not emu.jobs  # never more than two creates
    assert store.get_job(job.id).state == "submit_unknown"
    # `ftc jobs resume`: reconcile first, then one create
    r = backend(emu).submit(spec(train), job=job, store=store)
    assert len(creates(emu)) == 3 and list(emu.jobs) == [r.provider_job_id]
    assert store.get_job(job.id).provider_job_id == r.provider_job_id


def test_connection_dropped_after_create_makes_exactly_one_job(emu, store, train):
    emu.fail(CREATE, "POST", [drop_after_processing()])
    job = new_job(store)
    r = backend(emu).submit(spec(train), job=job, store=store)
    assert len(emu.jobs) == 1 and len(creates(emu)) == 1
    assert store.get_job(job.id).provider_job_id == r.provider_job_id == next(iter(emu.jobs))
    listing = emu.requests_to(CREATE, "GET")
    assert listing and listing[0].query == {"metadata[ftc_client_token]": [job.client_token], "limit": ["100"]}
    assert [o.state for o in store.operations(job.id, "create")] == ["done"]


def test_listing_lag_after_a_dropped_create(emu, store, train):
    emu.fail(CREATE, "POST", [drop_after_processing()])
    emu.fail(CREATE, "GET", [status(200, body={"object": "list", "data": [], "has_more": False})])
    sleeps = Sleeps()
    r = backend(emu, sleeps).submit(spec(train), job=new_job(store), store=store)
    assert len(emu.jobs) == 1 and len(creates(emu)) == 1 and r.provider_job_id in emu.jobs
    assert len(emu.requests_to(CREATE, "GET")) == 2 and sleeps.waits == [2.0]


def test_hung_create_is_reconciled_to_exactly_one_job(emu, store, train):
    emu.fail(CREATE, "POST", [hang()])
    job = new_job(store)
    r = backend(emu, read=0.5).submit(spec(train), job=job, store=store)
    assert len(emu.jobs) == 1 and r.provider_job_id in emu.jobs
    assert len(creates(emu)) == 2 and creates(emu)[0].fault == "hang"
    assert [o.state for o in store.operations(job.id, "create")] == ["failed", "done"]


def test_401_names_the_env_var_and_leaks_no_key(emu, store, train, caplog, tmp_path):
    from ftclient.secrets import install_log_redaction

    install_log_redaction()
    secret = "sk-" "proj-wrongButSecret0123456789abcdef"
    job = new_job(store)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthError) as ei:
        backend(emu, api_key=secret).submit(spec(train), job=job, store=store)
    e = ei.value
    assert "OPENAI_API_KEY" in str(e) and "OPENAI_API_KEY" in e.hint and e.exit_code == 2
    text = " ".join([str(e), e.hint or "", repr(e.__cause__), repr(e.__context__), caplog.text,
                     json.dumps([o.to_dict() for o in store.operations(job.id)], default=str),
                     json.dumps(store.get_job(job.id).to_dict(), default=str)])
    assert secret not in text
    store.close()
    for f in (tmp_path).rglob("ftc.db*"):
        assert secret.encode() not in f.read_bytes()
    assert not emu.jobs and not emu.files


def test_missing_key_is_a_config_error_naming_the_var(monkeypatch, tmp_path):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("FTC_HOME", str(tmp_path))
    with pytest.raises(ConfigError) as ei:
        OpenAIBackend().client
    assert "OPENAI_API_KEY" in ei.value.hint


def test_client_from_the_environment(emu, store, train, monkeypatch):
    for k, v in emu.env.items():
        monkeypatch.setenv(k, v)
    b = OpenAIBackend(today=BEFORE, policy=RetryPolicy(max_attempts=2, sleep=lambda s: None))
    assert b.client.max_retries == 0
    r = b.submit(spec(train), job=new_job(store), store=store)
    assert r.provider_job_id in emu.jobs


def test_failed_job_surfaces_the_provider_reason(emu, store, train):
    reason = "Training file has 12 examples but must have at least 10 unique ones."
    emu.job_fails(reason, code="invalid_n_examples")
    b = backend(emu)
    r = b.submit(spec(train), job=new_job(store), store=store)
    st = run_to_end(b, r.provider_job_id)
    assert st.state == JobState.FAILED and st.error == reason and st.provider_state == "failed"
    assert b.result(r.provider_job_id) is None
    assert any(e.level == "error" and e.message == reason for e in b.events(r.provider_job_id))


def test_file_rejected_by_the_provider(emu, store, train):
    emu.fail(r"/files$", "POST", [status(400, body={"error": {
        "message": "Invalid file format for Fine-Tuning API. Must be .jsonl", "type": "invalid_request_error",
        "param": "file", "code": None}})])
    with pytest.raises(FtcError, match="Invalid file format"):
        backend(emu).submit(spec(train), job=new_job(store), store=store)


def test_resume_after_crash_between_sent_and_finish(emu, store, train):
    b = backend(emu)
    job = new_job(store)
    s = spec(train)
    fid = b.ensure_uploaded(train, store=store, job=job)
    req = b._create_request(s, training_file=fid, validation_file=None, client_token=job.client_token, job=job)
    op = store.begin_operation(job.id, "create", req)
    store.mark_sent(op.id)
    client(emu).fine_tuning.jobs.create(**req)  # the job was created, then the process died
    assert store.get_job(job.id).provider_job_id is None

    b2 = backend(emu)  # a new process
    r = b2.submit(s, job=job, store=store)
    assert len(emu.jobs) == 1 and len(creates(emu)) == 1 and r.provider_job_id in emu.jobs
    assert store.get_job(job.id).provider_job_id == r.provider_job_id
    assert [o.state for o in store.operations(job.id, "create")] == ["done"]
    assert b2.submit(s, job=job, store=store).provider_job_id == r.provider_job_id
    assert len(creates(emu)) == 1


def test_cancel(emu, store, train):
    b = backend(emu)
    r = b.submit(spec(train), job=new_job(store), store=store)
    st = b.cancel(r.provider_job_id)
    assert st.state == JobState.CANCELLED
    assert b.cancel(r.provider_job_id).state == JobState.CANCELLED  # a 400 from OpenAI, reported as the state


# ----------------------------------------------------------------------------- preflight


def test_preflight_warns_before_the_retirement_date(train):
    w = OpenAIBackend(today=BEFORE).preflight(spec(train))
    assert any("2027-01-06" in x and "2027-01-14" in x for x in w)


def test_preflight_refuses_after_the_retirement_date_without_requests(emu, store, train):
    for today in (date(2027, 1, 6), date(2027, 3, 1)):
        b = backend(emu)
        with pytest.raises(FtcError) as ei:
            b.preflight(spec(train), today=today)
        assert "2027-01-06" in str(ei.value) and ei.value.exit_code == 2
        b.today = today
        with pytest.raises(FtcError):
            b.submit(spec(train), job=new_job(store), store=store)
    assert emu.requests == []


def test_preflight_dates_come_from_the_catalogue(train):
    from ftclient.prices import load_catalogue

    cat = load_catalogue(today=BEFORE)
    cat.data["models"]["openai:gpt-4.1-mini"]["train_cutoff"] = "2026-12-01"
    with pytest.raises(FtcError, match="2026-12-01"):
        OpenAIBackend(catalogue=cat).preflight(spec(train), today=date(2026, 12, 2))


def test_preflight_notes_and_limits(train):
    b = OpenAIBackend(today=BEFORE)
    w = b.preflight(spec(train, adapter="full", hyperparameters={"learning_rate": 1e-4}))
    assert any("chooses the method itself" in x for x in w)
    assert any("multiplier" in x for x in w)
    with pytest.raises(SpecError, match="at most 50"):
        b.preflight(spec(train, hyperparameters={"epochs": 60}))
    with pytest.raises(SpecError, match="ftc_client_token"):
        b.preflight(spec(train, openai={"metadata": {"ftc_client_token": "x"}}))
    with pytest.raises(SpecError, match="at most 14 pairs"):
        b.preflight(spec(train, openai={"metadata": {f"k{i}": "v" for i in range(15)}}))


def test_validate_and_estimate_offline(train):
    b = OpenAIBackend(today=BEFORE)
    assert b.validate(spec(train), train).ok
    est = b.estimate(spec(train))
    assert est.provider == "openai" and est.epochs == 2 and est.billed_tokens == 2 * est.tokens_per_epoch
    assert est.cost_usd > 0


def test_state_mapping():
    from ftclient.backends import map_state

    assert map_state("validating_files", OPENAI_STATES) == JobState.VALIDATING_FILES
    assert map_state("paused", OPENAI_STATES) == JobState.QUEUED and not JobState.QUEUED.final
    assert {map_state(s, OPENAI_STATES) for s in ("succeeded", "failed", "cancelled")} == {
        JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}


# ----------------------------------------------------------------------------- cassettes
#
# cassettes/openai/submit_to_succeeded.yaml was recorded from the emulator through the
# real SDK with vcrpy and is replayed here WITHOUT the emulator (nothing listens on the
# base URL). Re-record with FTC_RECORD_CASSETTES=1 (tests/ against the emulator; later
# against the real API, see docs/testing-providers.md).

from cassette_util import Scrubber, cassette_dir, make_vcr, write_header  # noqa: E402


def _cassette_dir():
    return cassette_dir("openai")


def _vcr(mode):
    pytest.importorskip("vcr")
    # scrubbing, matching (method, path, query, JSON body): tests/cassette_util.py
    return make_vcr("openai", mode, Scrubber(extra_secrets=["sk-test-emulator-0000"]))


def _cassette_flow(b, store, train):
    job = new_job(store)
    r = b.submit(spec(train), job=job, store=store)
    st = run_to_end(b, r.provider_job_id)
    return r, st, b.events(r.provider_job_id), b.checkpoints(r.provider_job_id)


def test_record_cassette(store, train, tmp_path):
    import os

    if os.environ.get("FTC_RECORD_CASSETTES") != "1":
        pytest.skip("set FTC_RECORD_CASSETTES=1 to re-record cassettes/openai/")
    # a fixed training file, so that replays send the same bytes
    with ProviderEmulator("openai") as emu:
        path = _cassette_dir() / "submit_to_succeeded.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        with _vcr("once").use_cassette(path.name):
            _cassette_flow(backend(emu), store, train)
        emu.check_responses()
        write_header(path, ["recorded_from: emulator", "flow: tests/test_provider_openai.py::test_record_cassette",
                            "source: tests/emulator.py (no real keys were available)",
                            "re-record: docs/testing-providers.md, 'Re-recording cassettes'"])


def test_replay_cassette_without_the_emulator(store, train):
    path = _cassette_dir() / "submit_to_succeeded.yaml"
    if not path.exists():
        pytest.skip("no cassette recorded")
    my = _vcr("none")
    dead = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="sk-" "replay-not-a-real-key-000000",
                         **sdk_client_kwargs("openai", connect=1.0, read=1.0))
    b = OpenAIBackend(client=dead, today=BEFORE, sleep=lambda s: None, file_poll_s=0.01,
                      policy=RetryPolicy(max_attempts=1, sleep=lambda s: None))
    with my.use_cassette(path.name, allow_playback_repeats=False) as cas:
        r, st, evs, cps = _cassette_flow(b, store, train)
        assert cas.all_played
    assert st.state == JobState.SUCCEEDED and st.fine_tuned_model.startswith(f"ft:{MODEL}:")
    assert evs and cps and store.get_job(store.list_jobs()[0].id).provider_job_id == r.provider_job_id


def test_cassette_bodies_match_the_official_schema_and_hold_no_secrets():
    import re
    from urllib.parse import urlsplit

    import yaml

    path = _cassette_dir() / "submit_to_succeeded.yaml"
    if not path.exists():
        pytest.skip("no cassette recorded")
    raw = path.read_text()
    for bad in ("sk-test-emulator", "Bearer", "org-emulator"):
        assert bad not in raw
    assert not re.search(r"(?i)^\s*(authorization|cookie|openai-organization):", raw, re.M)
    routes = ProviderEmulator("openai")._routes  # (method, regex on /v1 path, handler, spec template)
    checked = 0
    for it in yaml.safe_load(raw)["interactions"]:
        req, resp = it["request"], it["response"]
        p = urlsplit(req["uri"]).path
        tmpl = next(t for m, rx, _, t in routes if m == req["method"] and rx.fullmatch(p))
        body = resp["body"]["string"]
        data = json.loads(body if isinstance(body, str) else body.decode())
        openapi_check.validate_response("openai", req["method"], tmpl, resp["status"]["code"], data)
        checked += 1
    assert checked >= 8
