"""The Fireworks part of the local emulator (tests/emulator_fireworks.py), driven ONLY through
the real ``fireworks`` SDK (1.x).

Every test that uses the ``fw`` fixture ends with ``emu.check_responses()``: each JSON body
the emulator sent parsed strictly with the SDK's own response type (no unknown key at any
depth, every Literal known), or with the Fireworks error shapes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import httpx
import pytest
from emulator import ProviderEmulator, drop_after_processing, hang, status

fireworks = pytest.importorskip("fireworks")

import emulator_fireworks as efw
import fireworks_check

BASE = "accounts/fireworks/models/llama-v3p1-8b-instruct"
SFT = r"/supervisedFineTuningJobs$"


def _rows(n, tag="card_lost"):
    return [{"messages": [{"role": "system", "content": "Route the ticket to one intent."},
                          {"role": "user", "content": f"I lost my card number {i}"},
                          {"role": "assistant", "content": tag}]} for i in range(n)]


@pytest.fixture
def train(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in _rows(12)) + "\n")  # a blank line is no example
    return p


@pytest.fixture
def fw():
    with ProviderEmulator("fireworks") as emu:
        yield emu
        assert emu.check_responses() > 0


def client(emu, **kw):
    kw.setdefault("max_retries", 0)
    return fireworks.Fireworks(api_key=kw.pop("api_key", emu.api_key), account_id=kw.pop("account_id", emu.account_id),
                               base_url=emu.base_url, **kw)


def ready_dataset(c, path, dataset_id="train"):
    ds = c.datasets.create(dataset_id=dataset_id, dataset={"user_uploaded": {}, "display_name": dataset_id})
    with path.open("rb") as f:
        c.datasets.upload(dataset_id, file=f)
    return ds.name


def states_until_done(get, limit=30):
    seen = []
    for _ in range(limit):
        job = get()
        seen.append(job.state)
        if job.state in efw.FW_TERMINAL:
            return seen, job
    raise AssertionError(f"not done after {limit} polls: {seen}")


# =================================================================== accounts, auth


def test_accounts_and_foreign_account(fw):
    c = client(fw)
    accounts = list(c.accounts.list())
    assert [a.name for a in accounts] == ["accounts/ftc-test"] and accounts[0].state == "READY"
    assert c.accounts.get().email == "ftc-test@example.com"
    with pytest.raises(fireworks.PermissionDeniedError) as e:
        c.accounts.get(account_id="someone-else")
    assert e.value.status_code == 403 and e.value.body == {"code": 7, "message": "", "details": []}
    with pytest.raises(fireworks.PermissionDeniedError):
        c.datasets.create(account_id="someone-else", dataset_id="x", dataset={"user_uploaded": {}})
    assert fw.datasets == {}
    # the paths the SDK sends with an overridden base URL
    assert [r.path for r in fw.requests[:2]] == ["/v1/accounts", "/v1/accounts/ftc-test"]


def test_bad_key_is_401_on_the_control_plane_and_on_chat(fw):
    c = client(fw, api_key="fw-wrong-key-123456")
    with pytest.raises(fireworks.AuthenticationError) as e:
        c.datasets.list()
    assert e.value.body["code"] == 16 and e.value.body["details"] == []
    with pytest.raises(fireworks.AuthenticationError) as e:
        c.chat.completions.create(model=BASE, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body == {"error": {"message": "The API key you provided is invalid.", "code": "UNAUTHORIZED",
                                      "type": "error"}}
    assert fw.requests[0].headers["Authorization"] == "Bearer ***"


# =================================================================== datasets


def test_dataset_multipart_upload_becomes_ready(fw, train):
    c = client(fw)
    ds = c.datasets.create(dataset_id="train", dataset={"user_uploaded": {}, "display_name": "tickets"})
    assert ds.name == "accounts/ftc-test/datasets/train" and ds.state == "UPLOADING" and ds.display_name == "tickets"
    with train.open("rb") as f:
        up = c.datasets.upload("train", file=f)
    assert up.bytes == train.stat().st_size and up.filename == "train.jsonl"
    got = c.datasets.get("train")
    assert got.state == "READY" and got.example_count == "12" and got.format == "CHAT"
    assert fw.datasets["train"]["sha256"] == hashlib.sha256(train.read_bytes()).hexdigest()
    assert fw.requests_to(r"/datasets/train:upload$", "POST")[0].body["file"]["filename"] == "train.jsonl"
    with train.open("rb") as f, pytest.raises(fireworks.BadRequestError) as e:
        c.datasets.upload("train", file=f)  # a second upload to a READY dataset
    assert e.value.body["code"] == 9
    # and its bytes come back through the download endpoint
    url = c.datasets.get_download_endpoint("train").filename_to_signed_urls["train.jsonl"]
    assert httpx.get(url).content == train.read_bytes()
    c.datasets.delete("train")
    with pytest.raises(fireworks.NotFoundError) as e:
        c.datasets.get("train")
    assert e.value.body["code"] == 5


def test_dataset_signed_url_upload_then_validate(fw, train, tmp_path):
    c = client(fw)
    c.datasets.create(dataset_id="shards", dataset={"user_uploaded": {}})
    part2 = tmp_path / "b.jsonl"
    part2.write_text("".join(json.dumps(r) + "\n" for r in _rows(3, "card_found")))
    sizes = {"a.jsonl": str(train.stat().st_size), "b.jsonl": str(part2.stat().st_size)}
    urls = c.datasets.get_upload_endpoint("shards", filename_to_size=sizes).filename_to_signed_urls
    assert set(urls) == set(sizes) and all(u.startswith(fw.root_url + "/") for u in urls.values())
    with pytest.raises(fireworks.BadRequestError) as e:
        c.datasets.validate_upload("shards", body={})  # nothing PUT yet
    assert "a.jsonl" in e.value.body["message"]
    assert httpx.put(urls["a.jsonl"] + "x", content=train.read_bytes()).status_code == 403  # bad signature
    assert httpx.put(urls["a.jsonl"], content=b"short").status_code == 400  # not the size declared
    for name, p in (("a.jsonl", train), ("b.jsonl", part2)):
        r = httpx.put(urls[name], content=p.read_bytes(), headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 200
    assert fw.requests_to(r"^/_fw_signed/", "PUT")[-1].headers.get("Authorization") is None
    assert c.datasets.get("shards").state == "UPLOADING"
    assert c.datasets.validate_upload("shards", body={}) == {}
    got = c.datasets.get("shards")
    assert got.state == "READY" and got.example_count == "15"


def test_sdk_upload_helper_refuses_the_emulators_http_urls(fw, train):
    """fireworks.lib.dataset_upload.upload_dataset_shards insists on https signed URLs."""
    from fireworks.lib.dataset_upload import DatasetUploadError, upload_dataset_shards

    c = client(fw)
    c.datasets.create(dataset_id="helper", dataset={"user_uploaded": {}})
    with pytest.raises(DatasetUploadError, match="non-https"):
        upload_dataset_shards(c, "helper", str(train))
    assert fw.datasets["helper"]["_files"]["train.jsonl"]["content"] is None


def test_duplicate_dataset_id_is_409(fw):
    c = client(fw)
    c.datasets.create(dataset_id="dup", dataset={"user_uploaded": {}, "display_name": "first"})
    with pytest.raises(fireworks.ConflictError) as e:
        c.datasets.create(dataset_id="dup", dataset={"user_uploaded": {}, "display_name": "second"})
    assert e.value.body["code"] == 6 and "already exists" in e.value.body["message"]
    assert c.datasets.get("dup").display_name == "first" and len(fw.datasets) == 1
    with pytest.raises(fireworks.BadRequestError):
        c.datasets.create(dataset_id="Not_An_Id", dataset={"user_uploaded": {}})


def test_dataset_processing_failure(fw, train, tmp_path):
    c = client(fw)
    fw.dataset_fails("line 3: messages must alternate user and assistant")
    c.datasets.create(dataset_id="bad", dataset={"user_uploaded": {}})
    with train.open("rb") as f, pytest.raises(fireworks.BadRequestError) as e:
        c.datasets.upload("bad", file=f)
    assert "messages must alternate" in e.value.body["message"] and e.value.body["code"] == 3
    got = c.datasets.get("bad")
    assert got.state == "UPLOADING" and got.status.code == "INVALID_ARGUMENT"
    assert got.status.message == "line 3: messages must alternate user and assistant"
    with pytest.raises(fireworks.BadRequestError) as e:  # no job on a dataset that is not READY
        c.supervised_fine_tuning_jobs.create(dataset=got.name, base_model=BASE)
    assert e.value.body["code"] == 9
    notjson = tmp_path / "broken.jsonl"
    notjson.write_text('{"messages": []}\nnot json\n')
    c.datasets.create(dataset_id="broken", dataset={"user_uploaded": {}})
    with notjson.open("rb") as f, pytest.raises(fireworks.BadRequestError, match="line 2"):
        c.datasets.upload("broken", file=f)
    assert fw.jobs == {}


def test_dataset_processing_delay(train):
    with ProviderEmulator("fireworks", file_processing_delay=0.3) as emu:
        c = client(emu)
        name = ready_dataset(c, train)
        assert c.datasets.get("train").state == "UPLOADING"
        with pytest.raises(fireworks.BadRequestError, match="not ready"):
            c.supervised_fine_tuning_jobs.create(dataset=name, base_model=BASE)
        time.sleep(0.35)
        assert c.datasets.get("train").state == "READY"
        assert c.supervised_fine_tuning_jobs.create(dataset=name, base_model=BASE).state == "JOB_STATE_CREATING"
        assert emu.check_responses() > 0


def test_list_paging(fw):
    c = client(fw)
    for i in range(5):
        c.datasets.create(dataset_id=f"ds-{i}", dataset={"user_uploaded": {}})
    first = c.datasets.list(page_size=2)
    assert [d.name.split("/")[-1] for d in first.datasets] == ["ds-0", "ds-1"] and first.next_page_token
    assert [d.name.split("/")[-1] for d in c.datasets.list(page_size=2)] == [f"ds-{i}" for i in range(5)]
    pages = fw.requests_to(r"/datasets$", "GET")
    assert [r.query.get("pageToken") is not None for r in pages] == [False, False, True, True]
    assert all(r.query["pageSize"] == ["2"] for r in pages)
    with pytest.raises(fireworks.BadRequestError):
        c.datasets.list(page_token="garbage!")
    assert len(list(c.models.list(account_id="fireworks", page_size=1))) == len(efw.FW_BASE_MODELS)


# =================================================================== models


def test_base_models_and_model_get(fw):
    c = client(fw)
    m = c.models.get("llama-v3p1-8b-instruct", account_id="fireworks")
    assert m.name == BASE and m.tunable and m.supports_lora and m.kind == "HF_BASE_MODEL"
    assert m.base_model_details.api_model_type == "llama"
    listed = {x.name: x for x in c.models.list(account_id="fireworks")}
    assert {"accounts/fireworks/models/qwen2p5-7b-instruct", "accounts/fireworks/models/llama-v3p1-70b-instruct",
            BASE} <= set(listed)
    assert listed["accounts/fireworks/models/flux-1-dev-fp8"].tunable is False
    assert list(c.models.list()) == []  # no fine-tuned model in the account yet
    with pytest.raises(fireworks.NotFoundError):
        c.models.get("no-such-model", account_id="fireworks")


def test_job_create_refuses_unknown_untunable_and_short_base_models(fw, train):
    c = client(fw)
    ds = ready_dataset(c, train)
    with pytest.raises(fireworks.NotFoundError):
        c.supervised_fine_tuning_jobs.create(dataset=ds, base_model="accounts/fireworks/models/gpt-9")
    with pytest.raises(fireworks.BadRequestError, match="not tunable"):
        c.supervised_fine_tuning_jobs.create(dataset=ds, base_model="accounts/fireworks/models/flux-1-dev-fp8")
    with pytest.raises(fireworks.BadRequestError):
        c.supervised_fine_tuning_jobs.create(dataset=ds, base_model="llama-v3p1-8b-instruct")
    with pytest.raises(fireworks.NotFoundError):
        c.supervised_fine_tuning_jobs.create(dataset="accounts/ftc-test/datasets/nope", base_model=BASE)
    with pytest.raises(fireworks.BadRequestError):
        c.supervised_fine_tuning_jobs.create(dataset=ds)  # neither base_model nor warm_start_from
    assert fw.jobs == {}


# =================================================================== SFT jobs


def test_sft_job_through_every_state_to_a_lora_model(fw, train):
    c = client(fw)
    ds = ready_dataset(c, train)
    job = c.supervised_fine_tuning_jobs.create(dataset=ds, base_model=BASE, supervised_fine_tuning_job_id="tickets-1",
                                               display_name="tickets", epochs=2, lora_rank=16)
    assert fw.requests_to(SFT, "POST")[0].query == {"supervisedFineTuningJobId": ["tickets-1"]}
    assert job.name == "accounts/ftc-test/supervisedFineTuningJobs/tickets-1" and job.state == "JOB_STATE_CREATING"
    assert job.output_model == "accounts/ftc-test/models/tickets-1" and job.epochs == 2 and job.lora_rank == 16
    assert job.estimated_cost.currency_code == "USD" and job.estimated_cost.nanos > 0
    assert job.create_time is not None and job.completed_time is None
    percents = []

    def get():
        j = c.supervised_fine_tuning_jobs.get("tickets-1")
        if j.job_progress is not None:
            percents.append(j.job_progress.percent)
        return j

    seen, done = states_until_done(get)
    assert seen == ["JOB_STATE_PENDING"] + ["JOB_STATE_RUNNING"] * 4 + ["JOB_STATE_WRITING_RESULTS",
                                                                        "JOB_STATE_COMPLETED"]
    assert percents == sorted(percents) and percents[0] == 0 and percents[-1] == 100
    assert done.completed_time >= done.create_time and done.job_progress.epoch == 1
    model = c.models.get("tickets-1")
    assert model.name == done.output_model and model.state == "READY" and model.kind == "HF_PEFT_ADDON"
    assert model.peft_details.base_model == BASE and model.peft_details.r == 16
    assert model.fine_tuning_job == done.name
    assert [m.name for m in c.models.list()] == [done.output_model]
    assert c.supervised_fine_tuning_jobs.get("tickets-1").state == "JOB_STATE_COMPLETED"  # a final job stays


def test_full_fine_tune_convention_and_manual_advance(train):
    with ProviderEmulator("fireworks", advance="manual", running_steps=2) as emu:
        c = client(emu)
        job = c.supervised_fine_tuning_jobs.create(dataset=ready_dataset(c, train), base_model=BASE, lora_rank=0)
        assert c.supervised_fine_tuning_jobs.get(job.name.split("/")[-1]).state == "JOB_STATE_CREATING"
        emu.advance(job.name.split("/")[-1], n=2)  # the short id...
        assert emu.job(job.name)["state"] == "JOB_STATE_RUNNING"  # ...or the resource name
        emu.finish()
        assert c.models.get(job.output_model.split("/")[-1]).kind == "HF_BASE_MODEL"
        assert emu.check_responses() > 0


def test_failed_job_carries_its_reason(fw, train):
    c = client(fw)
    ds = ready_dataset(c, train)
    fw.job_fails("Training diverged: loss is NaN at step 2", code="INTERNAL")
    c.supervised_fine_tuning_jobs.create(dataset=ds, base_model=BASE, supervised_fine_tuning_job_id="boom")
    seen, job = states_until_done(lambda: c.supervised_fine_tuning_jobs.get("boom"))
    assert "JOB_STATE_RUNNING" in seen and job.state == "JOB_STATE_FAILED" and job.completed_time is not None
    assert job.status.code == "INTERNAL" and job.status.message == "Training diverged: loss is NaN at step 2"
    with pytest.raises(fireworks.NotFoundError):
        c.models.get("boom")
    # a data problem fails it before it ever runs
    fw.job_fails("dataset line 4: missing assistant turn")  # the default code: a training-file problem
    c.supervised_fine_tuning_jobs.create(dataset=ds, base_model=BASE, supervised_fine_tuning_job_id="early")
    seen, job = states_until_done(lambda: c.supervised_fine_tuning_jobs.get("early"))
    assert seen == ["JOB_STATE_PENDING", "JOB_STATE_FAILED"] and job.status.code == "INVALID_ARGUMENT"
    # resume brings it back
    assert c.supervised_fine_tuning_jobs.resume("early", body={}).state == "JOB_STATE_PENDING"
    assert states_until_done(lambda: c.supervised_fine_tuning_jobs.get("early"))[1].state == "JOB_STATE_COMPLETED"


def test_cancel(fw, train):
    c = client(fw)
    ds = ready_dataset(c, train)
    c.supervised_fine_tuning_jobs.create(dataset=ds, base_model=BASE, supervised_fine_tuning_job_id="stop-me")
    assert c.supervised_fine_tuning_jobs.get("stop-me").state == "JOB_STATE_PENDING"
    assert c.supervised_fine_tuning_jobs.cancel("stop-me", body={}) == {}
    seen, job = states_until_done(lambda: c.supervised_fine_tuning_jobs.get("stop-me"))
    assert seen == ["JOB_STATE_CANCELLED"] and job.status.code == "CANCELLED"
    assert fw.jobs[job.name]["_state"] == "JOB_STATE_CANCELLED"
    with pytest.raises(fireworks.BadRequestError) as e:
        c.supervised_fine_tuning_jobs.cancel("stop-me", body={})
    assert e.value.body["code"] == 9
    with pytest.raises(fireworks.NotFoundError):
        c.models.get("stop-me")
    c.supervised_fine_tuning_jobs.delete("stop-me")
    with pytest.raises(fireworks.NotFoundError):
        c.supervised_fine_tuning_jobs.get("stop-me")


def test_duplicate_job_id_is_409_and_creates_nothing(fw, train):
    c = client(fw)
    ds = ready_dataset(c, train)
    first = c.supervised_fine_tuning_jobs.create(dataset=ds, base_model=BASE, supervised_fine_tuning_job_id="once",
                                                 display_name="first")
    fw.job_fails("must not be used by the refused create")
    with pytest.raises(fireworks.ConflictError) as e:
        c.supervised_fine_tuning_jobs.create(dataset=ds, base_model=BASE, supervised_fine_tuning_job_id="once",
                                             display_name="second", output_model="other-name")
    assert e.value.body["code"] == 6 and first.name in e.value.body["message"]
    assert list(fw.jobs) == [first.name] and fw._job_failures  # the failure is still queued
    assert c.supervised_fine_tuning_jobs.get("once").display_name == "first"
    assert len(fw.requests_to(SFT, "POST")) == 2
    with pytest.raises(fireworks.ConflictError, match="already exists"):  # same output model, other job id
        c.supervised_fine_tuning_jobs.create(dataset=ds, base_model=BASE, supervised_fine_tuning_job_id="twice",
                                             output_model="once")


def test_jobs_list_paging(fw, train):
    c = client(fw)
    ds = ready_dataset(c, train)
    for i in range(3):
        c.supervised_fine_tuning_jobs.create(dataset=ds, base_model=BASE, supervised_fine_tuning_job_id=f"j-{i}")
    names = [j.name.split("/")[-1] for j in c.supervised_fine_tuning_jobs.list(page_size=2)]
    assert names == ["j-0", "j-1", "j-2"]
    newest = c.supervised_fine_tuning_jobs.list(order_by="create_time desc").supervised_fine_tuning_jobs
    assert [j.name.split("/")[-1] for j in newest] == ["j-2", "j-1", "j-0"]
    assert list(c.dpo_jobs.list()) == []


# =================================================================== DPO


def test_dpo_job(fw, tmp_path):
    c = client(fw)
    pref = tmp_path / "pref.jsonl"
    pref.write_text("".join(json.dumps({"input": {"messages": [{"role": "user", "content": f"q{i}"}]},
                                        "preferred_output": [{"role": "assistant", "content": "good"}],
                                        "non_preferred_output": [{"role": "assistant", "content": "bad"}]}) + "\n"
                            for i in range(4)))
    ds = ready_dataset(c, pref, "prefs")
    job = c.dpo_jobs.create(dataset=ds, dpo_job_id="dpo-1", display_name="prefs",
                            training_config={"base_model": "accounts/fireworks/models/qwen2p5-7b-instruct",
                                             "epochs": 1, "output_model": "prefs-model"},
                            loss_config={"method": "DPO", "dpo": {"beta": 0.2}})
    assert fw.requests_to(r"/dpoJobs$", "POST")[0].query == {"dpoJobId": ["dpo-1"]}
    assert job.state == "JOB_STATE_CREATING"
    assert job.training_config.output_model == "accounts/ftc-test/models/prefs-model"
    assert job.loss_config.dpo.beta == 0.2
    seen, done = states_until_done(lambda: c.dpo_jobs.get("dpo-1"))
    assert seen[-2:] == ["JOB_STATE_WRITING_RESULTS", "JOB_STATE_COMPLETED"] and done.completed_time
    assert c.models.get("prefs-model").peft_details.base_model == "accounts/fireworks/models/qwen2p5-7b-instruct"
    lines = httpx.get(c.dpo_jobs.get_metrics_file_endpoint("dpo-1").signed_url).text.splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3]
    with pytest.raises(fireworks.NotFoundError):  # an SFT job of that id does not exist
        c.supervised_fine_tuning_jobs.get("dpo-1")
    with pytest.raises(fireworks.BadRequestError):  # a loss method the API does not know
        c.dpo_jobs.create(dataset=ds, training_config={"base_model": BASE}, loss_config={"method": "NOPE"})


# =================================================================== chat


def test_chat_base_model_and_lora_needs_a_deployment(fw, train):
    c = client(fw)
    r = c.chat.completions.create(model=BASE, messages=[{"role": "user", "content": "I lost my card"}])
    assert r.choices[0].message.content == "I lost my card" and r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens and r.model == BASE
    assert fw.requests_to(r"^/v1/chat/completions$", "POST")
    job = c.supervised_fine_tuning_jobs.create(dataset=ready_dataset(c, train), base_model=BASE)
    fw.finish(job.name)
    with pytest.raises(fireworks.NotFoundError) as e:
        c.chat.completions.create(model=job.output_model, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["error"] == {"message": efw.NOT_DEPLOYED, "code": "NOT_FOUND", "type": "error",
                                     "param": "model"}
    dep = fw.deploy(job.output_model)
    assert c.models.get(job.output_model.split("/")[-1]).deployed_model_refs[0].deployment == dep
    r = c.chat.completions.create(model=job.output_model, messages=[{"role": "user", "content": "hello"}])
    assert r.choices[0].message.content == "hello"
    with pytest.raises(fireworks.NotFoundError):
        c.chat.completions.create(model="accounts/fireworks/models/flux-1-dev-fp8",
                                  messages=[{"role": "user", "content": "hi"}])


def test_async_chat(fw):
    async def go():
        async with fireworks.AsyncFireworks(api_key=fw.api_key, account_id=fw.account_id, base_url=fw.base_url,
                                            max_retries=0) as ac:
            return await ac.chat.completions.create(model=BASE, messages=[{"role": "user", "content": "ping"}])

    assert asyncio.run(go()).choices[0].message.content == "ping"


# =================================================================== faults


def test_scripted_429_with_retry_after(fw, train):
    c = client(fw)
    ds = ready_dataset(c, train)
    fw.fail(SFT, "POST", [status(429, headers={"Retry-After": "1"})])
    with pytest.raises(fireworks.RateLimitError) as e:
        c.supervised_fine_tuning_jobs.create(dataset=ds, base_model=BASE, supervised_fine_tuning_job_id="r1")
    assert e.value.response.headers["retry-after"] == "1" and e.value.body["code"] == 8
    assert fw.jobs == {}  # a scripted status does not perform the action
    fw.fail(SFT, "POST", [status(429, headers={"Retry-After": "1"})])
    t0 = time.monotonic()
    job = client(fw, max_retries=1).supervised_fine_tuning_jobs.create(dataset=ds, base_model=BASE,
                                                                       supervised_fine_tuning_job_id="r1")
    assert time.monotonic() - t0 >= 0.9 and job.state == "JOB_STATE_CREATING"
    assert [r.fault for r in fw.requests_to(SFT, "POST")] == ["status", "status", None]
    assert fw.requests_to(SFT, "POST")[-1].headers["x-stainless-retry-count"] == "1"


def test_drop_after_processing_and_hang(fw, train):
    c = client(fw)
    ds = ready_dataset(c, train)
    fw.fail(SFT, "POST", [drop_after_processing()])
    with pytest.raises(fireworks.APIConnectionError):
        c.supervised_fine_tuning_jobs.create(dataset=ds, base_model=BASE, supervised_fine_tuning_job_id="lost")
    assert list(fw.jobs) == ["accounts/ftc-test/supervisedFineTuningJobs/lost"]  # created, answer lost
    with pytest.raises(fireworks.ConflictError):  # so a blind retry with the same id is refused
        c.supervised_fine_tuning_jobs.create(dataset=ds, base_model=BASE, supervised_fine_tuning_job_id="lost")
    assert c.supervised_fine_tuning_jobs.get("lost").state == "JOB_STATE_PENDING"
    fw.fail(r"/supervisedFineTuningJobs/lost$", "GET", [hang()])
    with pytest.raises(fireworks.APITimeoutError):
        client(fw, timeout=0.3).supervised_fine_tuning_jobs.get("lost")


# =================================================================== the strict checker


def test_check_responses_catches_what_the_sdk_silently_accepts(train):
    """The SDK's models allow extra keys and unknown enum values pass its lax construct; the
    checker must not."""
    with ProviderEmulator("fireworks") as emu:
        c = client(emu)
        name = ready_dataset(c, train)
        good = emu.dataset("train")
        emu.fail(r"/datasets/train$", "GET", [status(200, body={**good, "encryptionState": "PLAINTEXT"})])
        assert c.datasets.get("train").name == name  # the SDK took it
        with pytest.raises(AssertionError, match=r"\$\.encryptionState: not a field of Dataset"):
            emu.check_responses()
    with ProviderEmulator("fireworks") as emu:
        c = client(emu)
        ready_dataset(c, train)
        emu.fail(r"/datasets/train$", "GET", [status(200, body={**emu.dataset("train"), "state": "FAILED"})])
        assert c.datasets.get("train").state == "FAILED"  # the SDK took it
        with pytest.raises(AssertionError, match="state"):
            emu.check_responses()


def test_strict_validate_on_nested_lists_aliases_and_errors():
    job = {"dataset": "accounts/a/datasets/d", "name": "accounts/a/supervisedFineTuningJobs/j",
           "state": "JOB_STATE_RUNNING", "jobProgress": {"percent": 5, "epoch": 0}}
    fireworks_check.strict_validate("SupervisedFineTuningJob", job)
    for bad, where in (({**job, "jobProgress": {"percent": 5, "stepsDone": 1}}, r"\$\.jobProgress\.stepsDone"),
                       ({**job, "create_time": "2024-01-01T00:00:00Z"}, r"\$\.create_time"),  # python name, not alias
                       ({**job, "state": "JOB_STATE_DONE"}, "state"),
                       ({**job, "epochs": "2"}, "epochs")):  # a string where the SDK wants an int
        with pytest.raises(AssertionError, match=where):
            fireworks_check.strict_validate("SupervisedFineTuningJob", bad)
    page = {"supervisedFineTuningJobs": [job, {**job, "extra": 1}], "nextPageToken": ""}
    with pytest.raises(AssertionError, match=r"\$\.supervisedFineTuningJobs\[1\]\.extra"):
        fireworks_check.strict_validate("SupervisedFineTuningJobs", page)
    model = {"name": "m", "supportedPrecisions": ["FP8", "FP3"]}
    with pytest.raises(AssertionError, match="supportedPrecisions"):
        fireworks_check.strict_validate("Model", model)
    fireworks_check.strict_validate("ControlPlaneError", {"code": 5, "message": "x", "details": []})
    with pytest.raises(AssertionError):
        fireworks_check.strict_validate("ControlPlaneError", {"code": 5, "message": "x", "details": [], "error": "y"})
    with pytest.raises(AssertionError):
        fireworks_check.strict_validate("ControlPlaneError", {"code": 42, "message": "x", "details": []})
    with pytest.raises(AssertionError):
        fireworks_check.strict_validate("InferenceError",
                                        {"error": {"message": "x", "code": "NOT_FOUND", "type": "oops"}})
    with pytest.raises(AssertionError):
        fireworks_check.strict_validate("object", {"deleted": True})


def test_every_route_names_an_sdk_type():
    emu = ProviderEmulator("fireworks")  # the route table only; nothing starts
    typed = [spec[1] for _m, _rx, _h, spec in emu._routes if spec]
    assert len(typed) >= 25
    for name in typed:
        assert name == "object" or fireworks_check.sdk_type(name) is not None
