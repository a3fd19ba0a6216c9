"""The local provider emulator, driven through the REAL openai and together SDKs.

Every test ends with ``emu.check_responses()``: every JSON body the emulator sent must
validate against the provider's official OpenAPI document.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from emulator import ProviderEmulator, drop_after_processing, hang, status

openai = pytest.importorskip("openai")
together = pytest.importorskip("together")

OA_MODEL = "gpt-4o-mini-2024-07-18"
TG_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"


@pytest.fixture(scope="module")
def train_jsonl(tmp_path_factory):
    p = tmp_path_factory.mktemp("emu") / "train.jsonl"
    rows = [{"messages": [{"role": "system", "content": "Route the ticket to one intent."},
                          {"role": "user", "content": f"I lost my card number {i}"},
                          {"role": "assistant", "content": "card_lost"}]} for i in range(12)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


@pytest.fixture
def oa():
    with ProviderEmulator("openai") as emu:
        yield emu


@pytest.fixture
def tg():
    with ProviderEmulator("together") as emu:
        yield emu


def oa_client(emu, **kw):
    return openai.OpenAI(base_url=emu.base_url, api_key=emu.api_key, max_retries=0, **kw)


def tg_client(emu, **kw):
    return together.Together(base_url=emu.base_url, api_key=emu.api_key, max_retries=0, **kw)


def poll(get, done, limit=30):
    for _ in range(limit):
        obj = get()
        if done(obj):
            return obj
    raise AssertionError(f"still not done after {limit} polls: {obj}")


# =================================================================== OpenAI


def test_openai_whole_path(oa, train_jsonl):
    c = oa_client(oa)
    f = c.files.create(file=train_jsonl.open("rb"), purpose="fine-tune")
    assert f.purpose == "fine-tune" and f.status == "processed" and f.bytes == train_jsonl.stat().st_size
    assert [x.id for x in c.files.list()] == [f.id]
    assert c.files.retrieve(f.id).filename == "train.jsonl"
    up = oa.requests_to(r"/v1/files$", "POST")[0]
    assert up.body["purpose"] == "fine-tune" and up.body["file"]["filename"] == "train.jsonl"

    job = c.fine_tuning.jobs.create(
        model=OA_MODEL, training_file=f.id, suffix="tickets", seed=7, metadata={"team": "support"},
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}})
    assert job.status == "validating_files" and job.seed == 7 and job.metadata == {"team": "support"}
    assert job.method.supervised.hyperparameters.n_epochs == 2
    dpo = c.fine_tuning.jobs.create(model=OA_MODEL, training_file=f.id,
                                    method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2}}})
    assert dpo.method.type == "dpo" and dpo.method.dpo.hyperparameters.beta == 0.2

    # list: newest first, pagination, metadata filter
    page = c.fine_tuning.jobs.list(limit=1)
    assert [j.id for j in page.data] == [dpo.id] and page.has_more
    assert [j.id for j in c.fine_tuning.jobs.list(limit=1, after=dpo.id).data] == [job.id]
    assert [j.id for j in c.fine_tuning.jobs.list()] == [dpo.id, job.id]
    assert [j.id for j in c.fine_tuning.jobs.list(metadata={"team": "support"}).data] == [job.id]
    assert oa.requests_to(r"/fine_tuning/jobs$", "GET")[-1].query == {"metadata[team]": ["support"]}

    # cancel the other one
    cancelled = c.fine_tuning.jobs.cancel(dpo.id)
    assert cancelled.status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        c.fine_tuning.jobs.cancel(dpo.id)

    # poll to the end
    seen = []
    final = poll(lambda: c.fine_tuning.jobs.retrieve(job.id),
                 lambda j: seen.append(j.status) or j.status in ("succeeded", "failed"))
    assert final.status == "succeeded", final.error
    assert seen[:3] == ["queued", "running", "running"]
    assert final.fine_tuned_model.startswith(f"ft:{OA_MODEL}:") and ":tickets:" in final.fine_tuned_model
    assert final.trained_tokens and final.finished_at and final.result_files

    events = list(c.fine_tuning.jobs.list_events(job.id, limit=3))  # auto-paginates with `after`
    assert len(events) >= 8 and len({e.id for e in events}) == len(events)
    metrics = [e for e in events if e.type == "metrics"]
    assert metrics and {"step", "train_loss"} <= set(metrics[0].data)
    assert events[0].message == "The job has successfully completed"  # newest first

    cps = c.fine_tuning.jobs.checkpoints.list(job.id)
    assert cps.data and cps.data[0].fine_tuned_model_checkpoint.startswith(final.fine_tuned_model)
    assert cps.data[0].metrics.train_loss is not None

    oa.chat_reply = {"I lost my card": "card_lost"}
    r = c.chat.completions.create(model=final.fine_tuned_model,
                                  messages=[{"role": "user", "content": "I lost my card"}])
    assert r.choices[0].message.content == "card_lost" and r.usage.total_tokens > 0
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="ft:nope", messages=[{"role": "user", "content": "x"}])

    assert c.files.delete(f.id).deleted
    assert list(c.files.list()) == []

    # the request log keeps no secret
    assert all(r.headers.get("Authorization") in (None, "Bearer ***") for r in oa.requests)
    assert oa.check_responses() >= 20


def test_openai_auth(oa):
    with pytest.raises(openai.AuthenticationError) as ei:
        openai.OpenAI(base_url=oa.base_url, api_key="sk-wrong-key-1234", max_retries=0).fine_tuning.jobs.list()
    assert ei.value.code == "invalid_api_key" and "sk-wrong-key-1234" not in str(ei.value)
    req = urllib.request.Request(oa.base_url + "/fine_tuning/jobs")
    with pytest.raises(urllib.error.HTTPError) as he:
        urllib.request.urlopen(req, timeout=5)
    assert he.value.code == 401
    assert "didn't provide an API key" in json.loads(he.value.read())["error"]["message"]
    oa.check_responses()


def test_openai_job_fails_with_reason(oa, train_jsonl):
    c = oa_client(oa)
    f = c.files.create(file=train_jsonl.open("rb"), purpose="fine-tune")
    oa.job_fails("Training file has 12 examples but must have at least 10 unique ones.", code="invalid_n_examples",
                 param="training_file")
    job = c.fine_tuning.jobs.create(model=OA_MODEL, training_file=f.id)
    final = poll(lambda: c.fine_tuning.jobs.retrieve(job.id), lambda j: j.status in ("succeeded", "failed"))
    assert final.status == "failed" and final.fine_tuned_model is None
    assert final.error.code == "invalid_n_examples" and "at least 10" in final.error.message
    assert any(e.level == "error" for e in c.fine_tuning.jobs.list_events(job.id))
    # the next job is not affected
    ok = c.fine_tuning.jobs.create(model=OA_MODEL, training_file=f.id)
    oa.finish(ok.id)
    assert c.fine_tuning.jobs.retrieve(ok.id).status == "succeeded"
    oa.check_responses()


def test_openai_drop_after_processing_creates_exactly_one_job(oa, train_jsonl):
    c = oa_client(oa)
    f = c.files.create(file=train_jsonl.open("rb"), purpose="fine-tune")
    oa.fail(r"/fine_tuning/jobs$", "POST", [drop_after_processing()])
    with pytest.raises(openai.APIConnectionError):
        c.fine_tuning.jobs.create(model=OA_MODEL, training_file=f.id)
    assert len(oa.jobs) == 1 and len(oa.requests_to(r"/fine_tuning/jobs$", "POST")) == 1
    assert oa.requests_to(r"/fine_tuning/jobs$", "POST")[0].fault == "drop_after"
    # the job is there for a reconcile-before-retry
    assert [j.id for j in c.fine_tuning.jobs.list().data] == list(oa.jobs)
    oa.check_responses()


def test_openai_rate_limit_and_server_errors(oa, train_jsonl):
    c = oa_client(oa)
    f = c.files.create(file=train_jsonl.open("rb"), purpose="fine-tune")
    oa.fail(r"/fine_tuning/jobs$", "POST", [status(429, headers={"Retry-After": "1"}), status(500), status(401)])
    with pytest.raises(openai.RateLimitError) as ei:
        c.fine_tuning.jobs.create(model=OA_MODEL, training_file=f.id)
    assert ei.value.response.headers["retry-after"] == "1" and ei.value.status_code == 429
    with pytest.raises(openai.InternalServerError):
        c.fine_tuning.jobs.create(model=OA_MODEL, training_file=f.id)
    with pytest.raises(openai.AuthenticationError):
        c.fine_tuning.jobs.create(model=OA_MODEL, training_file=f.id)
    assert oa.jobs == {}  # a status fault performs nothing
    c.fine_tuning.jobs.create(model=OA_MODEL, training_file=f.id)  # the script is used up
    assert len(oa.jobs) == 1
    oa.check_responses()


def test_openai_hang_times_out(oa):
    oa.fail(r"/fine_tuning/jobs", "GET", [hang()])
    c = oa_client(oa, timeout=0.3)
    t = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        c.fine_tuning.jobs.list()
    assert time.monotonic() - t < 3
    assert c.fine_tuning.jobs.list().data == []  # next request is served
    oa.check_responses()


def test_openai_time_mode_and_file_processing_delay(train_jsonl):
    with ProviderEmulator("openai", advance="time", seconds_per_phase=0.01, file_processing_delay=0.5) as emu:
        c = oa_client(emu)
        f = c.files.create(file=train_jsonl.open("rb"), purpose="fine-tune")
        assert f.status == "uploaded"
        with pytest.raises(openai.BadRequestError, match="not ready"):
            c.fine_tuning.jobs.create(model=OA_MODEL, training_file=f.id)
        time.sleep(0.55)
        assert c.files.retrieve(f.id).status == "processed"
        job = c.fine_tuning.jobs.create(model=OA_MODEL, training_file=f.id)
        time.sleep(0.15)
        assert c.fine_tuning.jobs.retrieve(job.id).status == "succeeded"
        emu.check_responses()


# =================================================================== Together


def test_together_whole_path(tg, train_jsonl):
    c = tg_client(tg)
    f = c.files.upload(train_jsonl, purpose="fine-tune", check=True)
    assert f.id.startswith("file-") and f.bytes == train_jsonl.stat().st_size and f.file_type == "jsonl"
    # the SDK's three-step upload: POST /v1/files -> 302, PUT to Location (no auth), POST .../preprocess
    assert [(r.method, r.path.split("/")[-1] if r.method != "POST" or "preprocess" in r.path else r.path)
            for r in tg.requests[:3]] == [("POST", "/v1/files"), ("PUT", f.id), ("POST", "preprocess")]
    assert "Authorization" not in tg.requests[1].headers
    assert [x.id for x in c.files.list().data] == [f.id]
    assert c.files.retrieve(f.id).filename == "train.jsonl"

    job = c.fine_tuning.create(training_file=f.id, model=TG_MODEL, suffix="tickets", n_epochs=2, lora=True)
    assert job.status == "pending" and job.suffix == "tickets"
    assert [r.path for r in tg.requests[-3:]] == ["/v1/fine-tunes/models/limits", "/v1/fine-tunes/estimate-price",
                                                  "/v1/fine-tunes"]
    other = c.fine_tuning.create(training_file=f.id, model=TG_MODEL, lora=True)
    assert {j.id for j in c.fine_tuning.list().data} == {job.id, other.id}

    assert c.fine_tuning.cancel(other.id).status == "cancel_requested"
    assert c.fine_tuning.retrieve(other.id).status == "cancelled"

    seen = []
    final = poll(lambda: c.fine_tuning.retrieve(job.id),
                 lambda j: seen.append(j.status) or j.status in ("completed", "error", "cancelled"))
    assert final.status == "completed"
    assert {"queued", "running", "compressing", "uploading"} <= set(seen)
    assert "-tickets-" in final.model_output_name

    events = c.fine_tuning.list_events(job.id).data
    assert events[-1].type == "job_complete" and any(e.step for e in events)
    cps = c.fine_tuning.list_checkpoints(job.id).data
    assert cps[0].checkpoint_type.startswith("Final") and any(cp.checkpoint_type == "Intermediate" for cp in cps)

    est = c.fine_tuning.estimate_price(training_file=f.id, model=TG_MODEL, n_epochs=3)
    assert est.estimated_total_price > 0 and est.allowed_to_proceed

    tg.chat_reply = lambda messages, model: f"label-for:{model}"
    r = c.chat.completions.create(model=final.model_output_name, messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == f"label-for:{final.model_output_name}"

    assert c.files.delete(f.id).deleted
    assert tg.check_responses() >= 15


def test_together_auth(tg):
    with pytest.raises(together.AuthenticationError):
        together.Together(base_url=tg.base_url, api_key="tg-wrong", max_retries=0).fine_tuning.list()
    tg.check_responses()


def test_together_job_fails_with_reason(tg, train_jsonl):
    c = tg_client(tg)
    f = c.files.upload(train_jsonl, purpose="fine-tune")
    tg.job_fails("Training data has a record without an assistant turn (line 3).")
    job = c.fine_tuning.create(training_file=f.id, model=TG_MODEL, lora=True)
    final = poll(lambda: c.fine_tuning.retrieve(job.id), lambda j: j.status in ("completed", "error"))
    assert final.status == "error"
    err = [e for e in c.fine_tuning.list_events(job.id).data if e.type == "job_error"]
    assert err and "line 3" in err[0].message and err[0].level == "error"
    tg.check_responses()


def test_together_faults(tg, train_jsonl):
    c = tg_client(tg)
    f = c.files.upload(train_jsonl, purpose="fine-tune")
    tg.fail(r"/v1/fine-tunes$", "POST", [drop_after_processing(), status(429, headers={"Retry-After": "2"})])
    with pytest.raises(together.APIConnectionError):
        c.fine_tuning.create(training_file=f.id, model=TG_MODEL, lora=True)
    assert len(tg.jobs) == 1
    with pytest.raises(together.RateLimitError) as ei:
        c.fine_tuning.create(training_file=f.id, model=TG_MODEL, lora=True)
    assert ei.value.response.headers["retry-after"] == "2"
    assert len(tg.jobs) == 1

    tg.fail(r"/v1/fine-tunes/[^/]+$", "GET", [hang()])
    with pytest.raises(together.APITimeoutError):
        tg_client(tg, timeout=0.3).fine_tuning.retrieve(next(iter(tg.jobs)))
    tg.check_responses()
