"""HostedBackend (providers/_hosted.py) against an in-memory fake provider: uploads once
per content, exactly-once create with write-ahead operations and reconciliation.

The provider-specific tests (through the real SDKs and the emulator) are in
test_provider_openai.py / test_provider_together.py; these pin the shared logic.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest

from ftclient.backends import JobState
from ftclient.errors import DataError, FtcError
from ftclient.jobs import Declined as SubmitCancelled
from ftclient.submission import file_digest as sha256_file
from ftclient.providers._hosted import HostedBackend
from ftclient.retry import AmbiguousResult, AuthError, RequestRejected, RetryExhausted, RetryPolicy
from ftclient.spec import parse_spec
from ftclient.store import Store


# ----------------------------------------------------------------------------- fakes


class ReadTimeout(Exception):
    """Named like httpx's: classified as 'maybe sent'."""


class _Resp:
    def __init__(self, headers=None):
        self.headers = headers or {}


class HTTPError(Exception):
    def __init__(self, status_code, headers=None, message="error"):
        super().__init__(message)
        self.status_code = status_code
        self.response = _Resp(headers)
        self.body = {"message": message}


class FakeProvider:
    """Server state plus a script of failures per operation."""

    def __init__(self):
        self.files: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.calls: list[str] = []
        self.uploads = 0
        self.script: dict[str, list] = {}  # op -> [exception or "drop_after" or "lag"]
        self.file_states: dict[str, list[str]] = {}  # file id -> states to report, in order

    def take(self, op):
        q = self.script.get(op) or []
        return q.pop(0) if q else None


class FakeBackend(HostedBackend):
    name = "fakeprov"
    key_env = "FAKEPROV_API_KEY"
    sdk = "fake"

    def __init__(self, prov: FakeProvider, **kw):
        kw.setdefault("policy", RetryPolicy(max_attempts=3, sleep=lambda s: None))
        kw.setdefault("sleep", lambda s: None)
        super().__init__(client=prov, **kw)
        self.prov = prov

    def _upload(self, path, purpose):
        self.prov.calls.append("upload")
        f = self.prov.take("upload")
        if isinstance(f, Exception):
            raise f
        self.prov.uploads += 1
        fid = f"file-{self.prov.uploads}"
        self.prov.files[fid] = {"content": path.read_bytes(), "purpose": purpose}
        self.prov.file_states.setdefault(fid, [])
        return fid

    def _file_state(self, fid):
        self.prov.calls.append("file_state")
        if fid not in self.prov.files:
            return "missing"
        q = self.prov.file_states.get(fid) or []
        return q.pop(0) if q else "processed"

    def _file_error(self, fid):
        return "line 3: not a chat example"

    def _create(self, spec, *, training_file, validation_file, client_token, job):
        self.prov.calls.append("create")
        f = self.prov.take("create")
        if isinstance(f, Exception):
            raise f
        jid = f"job-{len(self.prov.jobs) + 1}"
        self.prov.jobs[jid] = {"id": jid, "token": client_token, "training_file": training_file,
                               "validation_file": validation_file, "status": "queued"}
        if f == "drop_after":
            raise ReadTimeout("the connection dropped after the server acted")
        return dict(self.prov.jobs[jid])

    def _find_job(self, client_token, *, since):
        self.prov.calls.append("list")
        f = self.prov.take("list")
        if isinstance(f, Exception):
            raise f
        if f == "lag":
            return None
        for j in self.prov.jobs.values():
            if j["token"] == client_token:
                return j["id"]
        return None


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def prov():
    return FakeProvider()


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "ftc.db") as s:
        yield s


@pytest.fixture
def train(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}"},
                                                  {"role": "assistant", "content": "a"}]}) + "\n"
                         for i in range(10)))
    return p


def make_spec(train, **over):
    d = {"name": "t", "base_model": "some-model", "data": {"train": str(train)}}
    d.update(over)
    return parse_spec(d)


def new_job(store):
    return store.new_job("fakeprov", {"name": "t"})


def ops(store, job, kind="create"):
    return [(o.state) for o in store.operations(job.id, kind)]


# ----------------------------------------------------------------------------- submit


def test_submit_creates_once_and_resubmit_returns_it(prov, store, train):
    b = FakeBackend(prov)
    job = new_job(store)
    seen = []
    r = b.submit(make_spec(train), job=job, store=store, on_progress=lambda m, f: seen.append((m, f)))
    assert r.provider_job_id == "job-1" and r.state == JobState.QUEUED
    assert prov.calls.count("create") == 1 and len(prov.jobs) == 1
    j = store.get_job(job.id)
    assert j.provider_job_id == "job-1" and j.state == "queued"
    assert ops(store, job) == ["done"] and ops(store, job, "upload") == ["done"]
    req = store.operations(job.id, "create")[0].request
    assert req["client_token"] == job.client_token and req["training_file"] == "file-1"
    assert any("uploading train.jsonl" in m for m, _ in seen) and seen[-1][1] == 1.0
    # again: nothing is sent
    n = len(prov.calls)
    assert b.submit(make_spec(train), job=job, store=store).provider_job_id == "job-1"
    assert len(prov.calls) == n


def test_same_content_uploaded_once_and_again_when_lost(prov, store, train):
    b = FakeBackend(prov)
    msgs = []
    b.submit(make_spec(train), job=new_job(store), store=store)
    b.submit(make_spec(train), job=new_job(store), store=store, on_progress=lambda m, f: msgs.append(m))
    assert prov.calls.count("upload") == 1 and len(prov.jobs) == 2
    assert any("reusing" in m for m in msgs)
    sha, size = sha256_file(train)
    up = store.find_upload("fakeprov", sha)
    assert up.provider_file_id == "file-1" and up.status == "processed" and up.bytes == size
    assert up.verified_at
    del prov.files["file-1"]  # the provider lost it
    b.submit(make_spec(train), job=new_job(store), store=store)
    assert prov.calls.count("upload") == 2
    assert store.find_upload("fakeprov", sha).provider_file_id == "file-2"
    assert prov.jobs["job-3"]["training_file"] == "file-2"


def test_eval_file_uploaded_and_passed(prov, store, train, tmp_path):
    ev = tmp_path / "eval.jsonl"
    ev.write_text(train.read_text().splitlines()[0] + "\n")
    FakeBackend(prov).submit(make_spec(train, data={"train": str(train), "eval": str(ev)}),
                             job=new_job(store), store=store)
    assert prov.jobs["job-1"]["validation_file"] == "file-2"


def test_waits_until_processed_with_backoff_and_heartbeat(prov, store, train):
    waits = []
    b = FakeBackend(prov, sleep=waits.append, file_poll_s=1.0)
    prov.script["upload"] = []
    orig = b._upload

    def up(path, purpose):
        fid = orig(path, purpose)
        prov.file_states[fid] = ["pending", "pending", "pending"]
        return fid

    b._upload = up
    b.submit(make_spec(train), job=new_job(store), store=store)
    assert waits == [1.0, 1.5, 2.25]
    assert prov.calls.count("file_state") == 4


def test_file_processing_timeout_and_rejection(prov, store, train):
    b = FakeBackend(prov, file_poll_s=10, file_timeout_s=25)
    orig = b._upload
    b._upload = lambda p, pu: (lambda fid: (prov.file_states.__setitem__(fid, ["pending"] * 50), fid)[1])(orig(p, pu))
    with pytest.raises(FtcError, match="had not processed train.jsonl"):
        b.submit(make_spec(train), job=new_job(store), store=store)
    assert not prov.jobs
    b2 = FakeBackend(FakeProvider())
    orig2 = b2._upload
    b2._upload = lambda p, pu: (lambda fid: (b2.prov.file_states.__setitem__(fid, ["error"]), fid)[1])(orig2(p, pu))
    with pytest.raises(DataError, match="line 3: not a chat example"):
        b2.submit(make_spec(train), job=new_job(store), store=store)
    sha, _ = sha256_file(train)
    assert store.find_upload("fakeprov", sha).status == "failed"


def test_upload_error_settles_the_operation(prov, store, train):
    prov.script["upload"] = [HTTPError(500)] * 3
    job = new_job(store)
    with pytest.raises(RetryExhausted):
        FakeBackend(prov).submit(make_spec(train), job=job, store=store)
    assert prov.calls.count("upload") == 3 and ops(store, job, "upload") == ["failed"]
    assert store.pending_work() == [] or all(not w.operations for w in store.pending_work())


def test_ambiguous_create_found_by_reconcile(prov, store, train):
    prov.script["create"] = ["drop_after"]
    job = new_job(store)
    r = FakeBackend(prov).submit(make_spec(train), job=job, store=store)
    assert r.provider_job_id == "job-1" and len(prov.jobs) == 1 and prov.calls.count("create") == 1
    assert ops(store, job) == ["done"] and store.get_job(job.id).provider_job_id == "job-1"


def test_listing_lag_is_waited_out(prov, store, train):
    waits = []
    prov.script["create"] = ["drop_after"]
    prov.script["list"] = ["lag"]
    r = FakeBackend(prov, sleep=waits.append).submit(make_spec(train), job=new_job(store), store=store)
    assert r.provider_job_id == "job-1" and prov.calls.count("list") == 2 and waits == [2.0]


def test_ambiguous_not_created_then_one_more_create(prov, store, train):
    prov.script["create"] = [ReadTimeout("read timed out")]
    job = new_job(store)
    r = FakeBackend(prov).submit(make_spec(train), job=job, store=store)
    assert r.provider_job_id == "job-1" and len(prov.jobs) == 1
    assert prov.calls.count("create") == 2 and prov.calls.count("list") == 3
    assert ops(store, job) == ["failed", "done"] and store.get_job(job.id).attempts == 2


def test_at_most_two_creates_then_submit_unknown_and_resume(prov, store, train):
    prov.script["create"] = [ReadTimeout("t1"), HTTPError(502)]
    job = new_job(store)
    b = FakeBackend(prov)
    with pytest.raises(AmbiguousResult) as ei:
        b.submit(make_spec(train), job=job, store=store)
    assert "ftc jobs resume" in ei.value.hint and job.id in ei.value.hint
    assert prov.calls.count("create") == 2 and not prov.jobs
    assert store.get_job(job.id).state == "submit_unknown" and ops(store, job) == ["failed", "unknown"]
    # resume: reconcile first (not found), then one create
    r = FakeBackend(prov).submit(make_spec(train), job=job, store=store)
    assert r.provider_job_id == "job-1" and len(prov.jobs) == 1
    assert ops(store, job) == ["failed", "failed", "done"] and store.get_job(job.id).state == "queued"


def test_listing_failure_during_reconcile_creates_nothing_more(prov, store, train):
    prov.script["create"] = [ReadTimeout("t")]
    prov.script["list"] = [HTTPError(503)] * 3
    job = new_job(store)
    with pytest.raises(AmbiguousResult, match="could not be listed"):
        FakeBackend(prov).submit(make_spec(train), job=job, store=store)
    assert prov.calls.count("create") == 1 and ops(store, job) == ["unknown"]


def test_resume_after_crash_between_sent_and_finish(prov, store, train):
    b = FakeBackend(prov)
    job = new_job(store)
    spec = make_spec(train)
    fid = b.ensure_uploaded(train, store=store, job=job)
    op = store.begin_operation(job.id, "create", {"x": 1})
    store.mark_sent(op.id)
    b._create(spec, training_file=fid, validation_file=None, client_token=job.client_token, job=job)  # then "crash"
    r = FakeBackend(prov).submit(spec, job=job, store=store)
    assert r.provider_job_id == "job-1" and len(prov.jobs) == 1 and prov.calls.count("create") == 1
    assert ops(store, job) == ["done"]


def test_resume_after_crash_before_the_request_left(prov, store, train):
    job = new_job(store)
    op = store.begin_operation(job.id, "create", {"x": 1})
    store.mark_sent(op.id)  # crashed before the provider saw it
    r = FakeBackend(prov).submit(make_spec(train), job=job, store=store)
    assert r.provider_job_id == "job-1" and len(prov.jobs) == 1
    assert ops(store, job) == ["failed", "done"]


def test_definite_refusal_settles_as_failed(prov, store, train):
    prov.script["create"] = [HTTPError(400, message="invalid model")]
    job = new_job(store)
    with pytest.raises(RequestRejected, match="invalid model"):
        FakeBackend(prov).submit(make_spec(train), job=job, store=store)
    assert ops(store, job) == ["failed"] and store.get_job(job.id).state == "pending"
    assert FakeBackend(prov).submit(make_spec(train), job=job, store=store).provider_job_id == "job-1"


def test_rate_limit_on_create_is_retried_after_retry_after(prov, store, train):
    waits = []
    prov.script["create"] = [HTTPError(429, headers={"retry-after": "3"})]
    b = FakeBackend(prov, policy=RetryPolicy(max_attempts=3, sleep=waits.append))
    assert b.submit(make_spec(train), job=new_job(store), store=store).provider_job_id == "job-1"
    assert waits == [3.0] and prov.calls.count("create") == 2 and len(prov.jobs) == 1


def test_auth_error_is_not_reconciled(prov, store, train):
    prov.script["create"] = [HTTPError(401)]
    job = new_job(store)
    with pytest.raises(AuthError, match="FAKEPROV_API_KEY"):
        FakeBackend(prov).submit(make_spec(train), job=job, store=store)
    assert "list" not in prov.calls and ops(store, job) == ["failed"]


def test_confirm_false_cancels_without_creating(prov, store, train):
    class Est(FakeBackend):
        def _provider_estimate(self, spec, *, training_file):
            return {"total_price": 1.5}

    job = new_job(store)
    asked = []
    with pytest.raises(SubmitCancelled, match="nothing was created"):
        Est(prov).submit(make_spec(train), job=job, store=store, confirm=lambda e: asked.append(e) or False)
    assert asked == [{"total_price": 1.5}] and "create" not in prov.calls
    assert store.get_job(job.id).state == "cancelled"
    job2 = new_job(store)
    assert Est(prov).submit(make_spec(train), job=job2, store=store, confirm=lambda e: True).provider_job_id


def test_find_by_client_token_retries_listing(prov, store):
    prov.jobs["job-9"] = {"id": "job-9", "token": "abc"}
    prov.script["list"] = [HTTPError(503)]
    b = FakeBackend(prov)
    assert b.find_by_client_token("abc", since=datetime.now(timezone.utc)) == "job-9"
    assert b.find_by_client_token("zzz") is None


def test_retirement_from_the_catalogue(prov, store, train):
    from ftclient.prices import load_catalogue

    cat = load_catalogue(today=date(2026, 12, 1))
    cat.data["models"]["fakeprov:some-model"] = {"training_per_1m": 1.0, "train_cutoff": "2027-01-06",
                                                 "inference_shutdown": "2027-01-14", "as_of": "2026-11-22"}
    b = FakeBackend(prov, catalogue=cat, today=date(2026, 12, 1))
    w = b.preflight(make_spec(train))
    assert len(w) == 1 and "2027-01-06" in w[0] and "2027-01-14" in w[0] and "36 days left" in w[0]
    with pytest.raises(FtcError, match="ended on 2027-01-06") as ei:
        b.preflight(make_spec(train), today=date(2027, 1, 6))
    assert ei.value.exit_code == 2 and "Nothing was sent" in str(ei.value)  # the spec's model: usage
    late = FakeBackend(prov, catalogue=cat, today=date(2027, 2, 1))
    with pytest.raises(FtcError):
        late.submit(make_spec(train), job=new_job(store), store=store)
    assert prov.calls == []
    # unknown models: no dates, no warning
    assert FakeBackend(prov, catalogue=cat).preflight(make_spec(train, base_model="other")) == []


def test_missing_file_is_a_data_error(prov, store, tmp_path):
    with pytest.raises(DataError, match="no such file"):
        FakeBackend(prov).ensure_uploaded(tmp_path / "nope.jsonl", store=store, job=None)
