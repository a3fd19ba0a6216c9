"""The OpenAI emulator holding an organisation's past fine-tuning jobs (``add_fine_tune``),
its files' content, its models (``GET /models``) and models that shut down (``shut_down``),
driven through the real openai SDK. Every test ends with ``emu.check_responses()``.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from emulator import ProviderEmulator

openai = pytest.importorskip("openai")

BASE = "gpt-4o-mini-2024-07-18"
BASE_41 = "gpt-4.1-mini-2025-04-14"
REFUSED = "Not allowed to download files of purpose: fine-tune."


def _jsonl(*pairs: tuple[str, str]) -> bytes:
    return "".join(json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
                   + "\n" for q, a in pairs).encode()


TRAIN_A = _jsonl(("I lost my card", "card_lost"), ("Where is my refund?", "refund_status"))
VALID_A = _jsonl(("My card is gone", "card_lost"))
TRAIN_B = _jsonl(("hello there", "greeting"))
TRAIN_D = _jsonl(("reset my password please", "password_reset"), ("the app crashes", "bug"), ("hi", "greeting"))


def _ts(*ymd_hm: int) -> int:
    return int(dt.datetime(*ymd_hm, tzinfo=dt.timezone.utc).timestamp())


def _words(content: bytes) -> int:
    return len(content.decode().split())


@pytest.fixture
def emu():
    with ProviderEmulator("openai") as e:
        yield e


@pytest.fixture
def client(emu):
    return openai.OpenAI(base_url=emu.base_url, api_key=emu.api_key, max_retries=0)


def _seed(emu) -> dict:
    """An organisation's history: two succeeded jobs (before and after 2026-10-23), a failed and
    a cancelled one, given in no particular order and with every form of ``created``."""
    jobs = {}
    jobs["old"] = emu.add_fine_tune(BASE, created="2026-03-15", training=TRAIN_A, validation=VALID_A,
                                    downloadable=True, n_epochs=3, learning_rate_multiplier=1.8, batch_size=4,
                                    suffix="acme")
    jobs["new"] = emu.add_fine_tune(BASE_41, created=dt.datetime(2026, 11, 2, 9, 30), training=TRAIN_D,
                                    method="dpo", n_epochs=2, learning_rate_multiplier=0.5, batch_size="auto")
    jobs["failed"] = emu.add_fine_tune(BASE, status="failed", created=_ts(2026, 5, 1, 8, 0), training=TRAIN_B,
                                       error={"code": "invalid_n_examples", "param": "training_file",
                                              "message": "Training file has 1 example(s), but must have at "
                                                         "least 10 examples"})
    jobs["cancelled"] = emu.add_fine_tune(BASE, status="cancelled", created=dt.date(2026, 10, 23),
                                          training=TRAIN_B, suffix="stopped")
    return jobs


def test_seeded_jobs_are_listed_newest_first_with_their_details(emu, client):
    jobs = _seed(emu)
    # one made through the API today sorts with them
    up = client.files.create(file=("train.jsonl", TRAIN_B), purpose="fine-tune")
    made = client.fine_tuning.jobs.create(model=BASE, training_file=up.id)

    listed = list(client.fine_tuning.jobs.list(limit=2))  # auto-pages with after=<last id>
    assert [j.id for j in listed] == [made.id] + [jobs[k]["id"] for k in ("new", "cancelled", "failed", "old")]
    gets = emu.requests_to(r"/fine_tuning/jobs$", "GET")
    assert len(gets) == 3 and gets[1].query["after"] == [jobs["new"]["id"]]
    page = client.fine_tuning.jobs.list(limit=2)
    assert page.has_more and len(page.data) == 2
    by_id = {j.id: j for j in listed}

    old = by_id[jobs["old"]["id"]]
    assert old.status == "succeeded" and old.model == BASE
    assert old.created_at == _ts(2026, 3, 15) and old.finished_at == old.created_at + 3600
    assert (old.hyperparameters.n_epochs, old.hyperparameters.learning_rate_multiplier,
            old.hyperparameters.batch_size) == (3, 1.8, 4)
    assert old.method.type == "supervised" and old.method.supervised.hyperparameters.batch_size == 4
    assert old.trained_tokens == _words(TRAIN_A) * 3
    assert re.fullmatch(rf"ft:{re.escape(BASE)}:emulator:acme:[0-9a-z]{{8}}", old.fine_tuned_model)
    assert old.user_provided_suffix == "acme" and old.error is None
    assert emu.files[old.training_file]["_content"] == TRAIN_A
    assert emu.files[old.validation_file]["_content"] == VALID_A

    new = by_id[jobs["new"]["id"]]
    assert new.status == "succeeded" and new.created_at == _ts(2026, 11, 2, 9, 30)  # naive means UTC
    assert new.method.type == "dpo" and new.method.dpo.hyperparameters.n_epochs == 2
    assert new.hyperparameters.learning_rate_multiplier == 0.5
    assert new.hyperparameters.batch_size != "auto"  # resolved, as for a job that ran
    assert new.trained_tokens == _words(TRAIN_D) * 2 and new.validation_file is None
    assert re.fullmatch(rf"ft:{re.escape(BASE_41)}:emulator::[0-9a-z]{{8}}", new.fine_tuned_model)

    failed = by_id[jobs["failed"]["id"]]
    assert failed.status == "failed" and failed.fine_tuned_model is None and failed.trained_tokens is None
    assert failed.created_at == _ts(2026, 5, 1, 8, 0) and failed.finished_at == failed.created_at + 3600
    assert failed.error.code == "invalid_n_examples" and failed.error.param == "training_file"
    assert "at least 10" in failed.error.message

    cancelled = by_id[jobs["cancelled"]["id"]]
    assert cancelled.status == "cancelled" and cancelled.fine_tuned_model is None
    assert cancelled.trained_tokens is None and cancelled.created_at == _ts(2026, 10, 23)

    # the wire form add_fine_tune returned is what the API sends
    assert client.fine_tuning.jobs.retrieve(jobs["old"]["id"]).model_dump(exclude_unset=True) == jobs["old"]

    # their events tell their story, within their hour, newest first
    events = list(client.fine_tuning.jobs.list_events(old.id, limit=3))
    assert events[0].message == "The job has successfully completed"
    assert events[-1].message.startswith("Validating training file")
    assert any(e.type == "metrics" for e in events)
    assert all(old.created_at <= e.created_at <= old.finished_at for e in events)
    assert [e.created_at for e in events] == sorted((e.created_at for e in events), reverse=True)
    assert any(e.level == "error" and "at least 10" in e.message for e in client.fine_tuning.jobs.list_events(
        failed.id))
    assert client.fine_tuning.jobs.list_events(cancelled.id).data[0].message == "Fine-tuning job cancelled"
    cps = client.fine_tuning.jobs.checkpoints.list(old.id).data
    assert cps and all(c.fine_tuned_model_checkpoint.startswith(old.fine_tuned_model + ":ckpt-step-") for c in cps)

    # polling never moves a seeded final job, nor does advancing every job
    before = {k: emu.job(j["id"]) for k, j in jobs.items()}
    n_events = {k: len(emu.jobs[j["id"]]["_events"]) for k, j in jobs.items()}
    for _ in range(3):
        for j in jobs.values():
            client.fine_tuning.jobs.retrieve(j["id"])
    emu.advance(n=5)
    assert {k: emu.job(j["id"]) for k, j in jobs.items()} == before
    assert {k: len(emu.jobs[j["id"]]["_events"]) for k, j in jobs.items()} == n_events
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(old.id)
    assert emu.check_responses() >= 15


def test_a_seeded_running_job_moves_on_like_any_other(emu, client):
    job = emu.add_fine_tune(BASE, status="running", created="2026-12-01T10:00:00Z", training=TRAIN_A, n_epochs=2,
                            suffix="live")
    assert job["status"] == "running" and job["finished_at"] is None and job["trained_tokens"] is None
    assert job["fine_tuned_model"] is None and job["created_at"] == _ts(2026, 12, 1, 10, 0)
    assert job["id"] not in {m.id for m in client.models.list()}
    seen = []
    for _ in range(10):
        j = client.fine_tuning.jobs.retrieve(job["id"])
        seen.append(j.status)
        if j.status == "succeeded":
            break
    assert seen[0] == "running" and seen[-1] == "succeeded"
    assert j.trained_tokens == _words(TRAIN_A) * 2 and j.fine_tuned_model.startswith(f"ft:{BASE}:emulator:live:")
    assert j.fine_tuned_model in {m.id for m in client.models.list()}
    emu.check_responses()


def test_file_sizes_and_content_or_the_refusal(emu, client):
    jobs = _seed(emu)
    old, failed = jobs["old"], jobs["failed"]
    f = client.files.retrieve(old["training_file"])
    assert (f.bytes, f.filename, f.purpose, f.status, f.created_at) == (
        len(TRAIN_A), "train.jsonl", "fine-tune", "processed", _ts(2026, 3, 15))
    v = client.files.retrieve(old["validation_file"])
    assert (v.bytes, v.filename) == (len(VALID_A), "valid.jsonl")
    assert client.files.retrieve(failed["training_file"]).bytes == len(TRAIN_B)
    assert {old["training_file"], old["validation_file"], failed["training_file"]} <= {
        x.id for x in client.files.list(purpose="fine-tune")}

    # downloadable: the exact bytes, both files of the job
    got = client.files.content(old["training_file"])
    assert got.content == TRAIN_A and got.read() == TRAIN_A
    assert client.files.content(old["validation_file"]).content == VALID_A
    sent = emu.responses[-1]
    assert sent.path.endswith("/content") and sent.headers["Content-Type"] == "application/octet-stream"

    # not downloadable: a seeded file, and one uploaded through the API
    uploaded = client.files.create(file=("mine.jsonl", TRAIN_B), purpose="fine-tune")
    for fid in (failed["training_file"], uploaded.id):
        with pytest.raises(openai.BadRequestError) as ei:
            client.files.content(fid)
        assert ei.value.status_code == 400 and str(ei.value).endswith(REFUSED)
        assert ei.value.body == {"message": REFUSED, "type": "invalid_request_error", "param": None, "code": None}
    with pytest.raises(openai.NotFoundError):
        client.files.content("file-nope")
    # the content route did not swallow the file route, nor the other way round
    assert client.files.retrieve(uploaded.id).filename == "mine.jsonl"
    assert emu.check_responses() >= 8


def test_models_list_retrieve_and_shut_down(emu, client):
    jobs = _seed(emu)
    old_m, new_m = jobs["old"]["fine_tuned_model"], jobs["new"]["fine_tuned_model"]
    models = {m.id: m for m in client.models.list()}
    assert {BASE, BASE_41, old_m, new_m} <= set(models)
    assert models[BASE].owned_by == "system"
    assert not [m for m in models if m.startswith("ft:") and m not in (old_m, new_m)]  # failed/cancelled: none
    got = client.models.retrieve(old_m)  # an id with ':' in the path
    assert (got.id, got.owned_by, got.created) == (old_m, emu.organization, jobs["old"]["finished_at"])
    assert emu.requests[-1].path == f"/v1/models/{old_m}"
    with pytest.raises(openai.NotFoundError) as ei:
        client.models.retrieve(f"ft:{BASE}:emulator::deadbeef")
    assert ei.value.code == "model_not_found"

    emu.shut_down(old_m, after=2)
    assert old_m in {m.id for m in client.models.list()}  # still there until its last answer
    for _ in range(2):
        r = client.chat.completions.create(model=old_m, messages=[{"role": "user", "content": "I lost my card"}])
        assert r.choices[0].message.content == "I lost my card"
    with pytest.raises(openai.NotFoundError) as ei:
        client.chat.completions.create(model=old_m, messages=[{"role": "user", "content": "I lost my card"}])
    assert ei.value.code == "model_not_found"
    assert ei.value.body["message"] == f"The model `{old_m}` does not exist or you do not have access to it."
    with pytest.raises(openai.NotFoundError) as ei:
        client.models.retrieve(old_m)
    assert ei.value.code == "model_not_found"
    ids = {m.id for m in client.models.list()}
    assert old_m not in ids and new_m in ids
    # the other model is untouched; after=0 is gone at once
    assert client.chat.completions.create(model=new_m, messages=[{"role": "user", "content": "x"}]).choices
    emu.shut_down(new_m)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=new_m, messages=[{"role": "user", "content": "x"}])
    assert not [m for m in client.models.list() if m.id.startswith("ft:")]
    assert emu.check_responses() >= 10


def test_seeded_models_answer_through_chat_reply(emu, client):
    jobs = _seed(emu)
    emu.chat_reply = lambda messages, model: f"{model.split(':')[3] or 'plain'}:{messages[-1]['content']}"
    for key, label in (("old", "acme"), ("new", "plain")):
        r = client.chat.completions.create(model=jobs[key]["fine_tuned_model"],
                                           messages=[{"role": "user", "content": "Where is my refund?"}])
        assert r.choices[0].message.content == f"{label}:Where is my refund?"
        assert r.model == jobs[key]["fine_tuned_model"]
    with pytest.raises(openai.NotFoundError):  # a failed job has no model to ask
        client.chat.completions.create(model=f"ft:{BASE}:emulator::{jobs['failed']['id'][6:14]}",
                                       messages=[{"role": "user", "content": "x"}])
    emu.check_responses()


def test_add_fine_tune_refuses_what_openai_has_not():
    with ProviderEmulator("openai") as emu:
        with pytest.raises(ValueError, match="status"):
            emu.add_fine_tune(BASE, status="completed", training=TRAIN_A)
        with pytest.raises(ValueError, match="method"):
            emu.add_fine_tune(BASE, method="reinforcement", training=TRAIN_A)
        with pytest.raises(TypeError):
            emu.add_fine_tune(BASE, training="not bytes")
        with pytest.raises(ValueError):
            emu.shut_down("ft:x", after=-1)
        assert emu.jobs == {} and emu.files == {}
    with ProviderEmulator("together") as tg, pytest.raises(ValueError, match="OpenAI"):
        tg.add_fine_tune(BASE, training=TRAIN_A)
