"""Every call path of the Fireworks backend, recorded as vcrpy cassettes and replayed offline.

The Fireworks part of the cassette suite (tests/test_cassettes.py holds OpenAI and Together
and the shared machinery is tests/cassette_util.py). Each :class:`Flow` below drives
``FireworksBackend`` (ftc's real code, through the official ``fireworks`` SDK) along one
call path. Recorded once into ``cassettes/fireworks/<flow>.yaml`` from the emulator
(tests/emulator.py + tests/emulator_fireworks.py), it is replayed here with **nothing
listening**: the client points at a closed port, vcrpy answers from the cassette with
``record_mode="none"`` (a request the cassette does not hold fails loudly), every
interaction must be played exactly once, and the neutral results (``JobStatus``,
``SubmitResult``, events, checkpoints, errors, retry waits) are checked. Matching is on
method, path, query and -- for JSON request bodies -- the body, so a cassette also pins what
ftc sends (dataset ids from the content's sha256, job ids from the client token, the
create bodies).

The account: every control-plane URL is ``/v1/accounts/<account>/...``. The scrubber
replaces the emulator's account (``ftc-test``) with ``redacted-account`` everywhere, so a
replay runs with ``account_id="redacted-account"`` and its paths match the recording.

Body validation: there is no Fireworks OpenAPI document offline, so every recorded JSON
response body is checked STRICTLY against the fireworks SDK's own type for its route
(tests/fireworks_check.py ``strict_validate``; the route -> type table is the emulator's),
and every error body against the control-plane (google.rpc.Status) or inference error
shape. Also checked: no cassette holds a key, a Bearer token, the emulator's account name
or an unredacted account id.

Left out: live recording (``FTC_RECORD_CASSETTES=live`` skips these flows: see
docs/testing-providers.md, "Re-recording cassettes"). The large-file path (signed URL) is
recorded with the threshold lowered to 1 kB for that flow, not with a 150 MB file.

Re-record: ``FTC_RECORD_CASSETTES=1 .venv/bin/pytest tests/test_cassettes_fireworks.py -k test_record``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from cassette_util import (KEY_LIKE, REDACTED_ACCOUNT, Clock, FixedUuid, Scrubber, cassette_dir, caught, closed_port,
                           header, interactions, make_vcr, record_mode, spec_template, write_data, write_header)
from emulator import ProviderEmulator, status

fireworks = pytest.importorskip("fireworks")
pytest.importorskip("vcr")

import fireworks_check  # noqa: E402
from emulator_fireworks import FireworksMixin  # noqa: E402

import ftclient.providers.fireworks.backend as fw_backend  # noqa: E402
import ftclient.store.jobs as store_jobs  # noqa: E402
from ftclient.backends import JobState  # noqa: E402
from ftclient.errors import SpecError, UsageError  # noqa: E402
from ftclient.fileio import sha256_file  # noqa: E402
from ftclient.providers.fireworks import FireworksBackend, dataset_id_for  # noqa: E402
from ftclient.retry import AuthError, RequestRejected, RetryExhausted, RetryPolicy, sdk_client_kwargs  # noqa: E402
from ftclient.spec import parse_spec  # noqa: E402
from ftclient.store import Store  # noqa: E402

PROVIDER = "fireworks"
MODEL = "accounts/fireworks/models/llama-v3p1-8b-instruct"
BEFORE = date(2026, 11, 22)
#: The emulator's key and account, and the key of the 401 path: none may reach a cassette.
EMULATOR_KEY = "fw-test-emulator-0000"
EMULATOR_ACCOUNT = "ftc-test"
WRONG_KEY = "fw_" "wrongButSecret0123456789abcdef"
#: Where the models of the (redacted) account live in a replay.
OWN = f"accounts/{REDACTED_ACCOUNT}"


# --------------------------------------------------------------------------- context


@dataclass
class Ctx:
    b: FireworksBackend
    store: Store
    data: Path
    clock: Clock
    tmp: Path
    emu: ProviderEmulator | None = None  # None when replaying

    def at_emulator(self, fn: Callable[[ProviderEmulator], Any]) -> None:
        """Do ``fn(emu)`` while recording (a job finishing, say); a replay gets the same
        effect from the recorded answers."""
        if self.emu is not None:
            fn(self.emu)

    def new_job(self):
        return self.store.new_job(PROVIDER, {"name": "support-intents"}, model=MODEL)

    def spec(self, **over: Any):
        d = {"name": "support-intents", "base_model": MODEL, "data": {"train": "train.jsonl"},
             "hyperparameters": {"epochs": 2}}
        d.update(over)
        return parse_spec(d, base_dir=self.data)

    def submit(self, **over: Any):
        job = self.new_job()
        return self.b.submit(self.spec(**over), job=job, store=self.store), job


def poll_to_end(c: Ctx, pid: str, limit: int = 30) -> list:
    seen = []
    for _ in range(limit):
        s = c.b.status(pid)
        seen.append(s)
        if s.final:
            return seen
    raise AssertionError(f"{pid} not final after {limit} polls")


def ops(c: Ctx, job: Any, kind: str | None = None) -> list:
    """The job's operations as (kind, state), or the states of one kind."""
    found = c.store.operations(job.id, kind)
    return [(o.kind, o.state) for o in found] if kind is None else [o.state for o in found]


def uploads_in(flow_name: str) -> list[str]:
    """The ``:upload`` / signed ``PUT`` requests a cassette holds (the bytes that went up)."""
    path = cassette_dir(PROVIDER) / f"{flow_name}.yaml"
    return [f"{m} {p}" for m, p, _c, _b, _h in interactions(path) if p.endswith(":upload") or m == "PUT"]


SFT_CREATE = r"/v1/accounts/[^/]+/supervisedFineTuningJobs$"
DATASETS = r"/v1/accounts/[^/]+/datasets$"


# --------------------------------------------------------------------------- flows


@dataclass
class Flow:
    name: str
    run: Callable[[Ctx], dict]
    check: Callable[[dict, Ctx], None]
    setup: Callable[[ProviderEmulator], None] | None = None
    emu_kw: dict = field(default_factory=dict)
    key: str | None = None  # the client's key when it is not the right one (401)
    account: bool = True  # False: the client has no account id (looked up with GET /v1/accounts)

    @property
    def id(self) -> str:
        return f"{PROVIDER}-{self.name}"


# --- uploads and datasets


def run_files(c: Ctx) -> dict:
    train, ev = c.data / "train.jsonl", c.data / "eval.jsonl"
    fid = c.b.ensure_uploaded(train, store=c.store)  # create the dataset, :upload, GET (READY)
    again = c.b.ensure_uploaded(train, store=c.store)  # same sha256: one GET, no upload
    state = c.b.file_state(fid)
    missing = c.b.file_state(f"accounts/{c.b.account_id}/datasets/ftc-{'0' * 32}")  # 404
    not_a_name = c.b.file_state("file-abc")  # no request
    # the next dataset Fireworks processes is refused: the :upload answers 400, the dataset says why
    c.at_emulator(lambda e: e.dataset_fails("line 3: messages must not be empty"))
    rejected = caught(lambda: c.b.ensure_uploaded(ev, store=c.store))
    bad = f"accounts/{c.b.account_id}/datasets/{dataset_id_for(sha256_file(ev))}"
    return {"fid": fid, "again": again, "state": state, "missing": missing, "not_a_name": not_a_name,
            "rejected": rejected, "bad_state": c.b.file_state(bad), "bad_reason": c.b.file_error(bad),
            "train_sha": sha256_file(train)}


def check_files(r: dict, c: Ctx) -> None:
    assert r["fid"] == f"{OWN}/datasets/{dataset_id_for(r['train_sha'])}" == r["again"]
    assert (r["state"], r["missing"], r["not_a_name"]) == ("processed", "missing", "missing")
    e = r["rejected"]
    assert isinstance(e, RequestRejected) and e.status_code == 400 and "messages must not be empty" in str(e)
    assert (r["bad_state"], r["bad_reason"]) == ("error", "line 3: messages must not be empty (INVALID_ARGUMENT)")
    assert len(uploads_in("files")) == 2  # train, and the refused eval: the second train upload sent nothing


def run_dataset_exists(c: Ctx) -> dict:
    train = c.data / "train.jsonl"
    first = c.b.ensure_uploaded(train, store=c.store)
    other = Store(c.tmp / "other-machine.db")  # another machine, the same file: Fireworks has it, READY
    try:
        second = c.b.ensure_uploaded(train, store=other)
        rec = other.find_upload(PROVIDER, sha256_file(train), "fine-tune")
    finally:
        other.close()
    return {"first": first, "second": second, "status": rec.status}


def check_dataset_exists(r: dict, c: Ctx) -> None:
    assert r["first"] == r["second"] and r["first"].startswith(f"{OWN}/datasets/ftc-")
    assert r["status"] == "processed"
    assert uploads_in("upload_dataset_exists_ready") == [f"POST /v1/{r['first']}:upload"]  # one upload, the first
    codes = [(m, p.rsplit("/", 1)[-1], code) for m, p, code, _b, _h in
             interactions(cassette_dir(PROVIDER) / "upload_dataset_exists_ready.yaml") if p.endswith("/datasets")]
    assert codes == [("POST", "datasets", 200), ("POST", "datasets", 409)]


def run_signed_upload(c: Ctx) -> dict:
    train = c.data / "train.jsonl"
    size = train.stat().st_size
    with mock.patch.object(fw_backend, "SIMPLE_UPLOAD_MAX_BYTES", 1000):  # the 2.2 kB file counts as large here
        fid = c.b.ensure_uploaded(train, store=c.store)
    return {"fid": fid, "size": size, "state": c.b.file_state(fid)}


def check_signed_upload(r: dict, c: Ctx) -> None:
    assert r["size"] > 1000 and r["state"] == "processed" and r["fid"].startswith(f"{OWN}/datasets/ftc-")
    its = interactions(cassette_dir(PROVIDER) / "signed_url_upload.yaml")
    steps = [(m, re.sub(r"^.*/(datasets|_fw_signed)(/[^/:]+)?(/[^/]+)?", r"\1", p), code) for m, p, code, _b, _h in its]
    assert steps == [("POST", "datasets", 200), ("POST", "datasets:getUploadEndpoint", 200), ("PUT", "_fw_signed", 200),
                     ("POST", "datasets:validateUpload", 200), ("GET", "datasets", 200), ("GET", "datasets", 200)]
    assert list(its[1][3]["filenameToSignedUrls"]) == ["train.jsonl"]
    assert uploads_in("signed_url_upload") == [f"PUT {its[2][1]}"]  # the bytes went to the signed URL, no :upload


# --- the model check


def run_model_check(c: Ctx) -> dict:
    jobs = [c.new_job(), c.new_job()]
    unknown = caught(lambda: c.b.submit(c.spec(base_model="accounts/fireworks/models/llama-v9-1t-instruct"),
                                        job=jobs[0], store=c.store))
    not_tunable = caught(lambda: c.b.submit(c.spec(base_model="flux-1-dev-fp8"), job=jobs[1], store=c.store))
    return {"unknown": unknown, "not_tunable": not_tunable, "ops": [ops(c, j) for j in jobs]}


def check_model_check(r: dict, c: Ctx) -> None:
    e = r["unknown"]
    assert isinstance(e, SpecError) and "no model 'accounts/fireworks/models/llama-v9-1t-instruct'" in str(e)
    assert "answered 404" in str(e) and "nothing was uploaded" in str(e) and "llama-v3p1-8b-instruct" in e.hint
    e = r["not_tunable"]
    assert isinstance(e, SpecError) and "not tunable" in str(e) and "flux-1-dev-fp8" in str(e)
    assert r["ops"] == [[], []]  # refused before any upload or create


# --- creates


def run_create(**spec_over: Any) -> Callable[[Ctx], dict]:
    def run(c: Ctx) -> dict:
        res, job = c.submit(**spec_over)
        return {"res": res, "job": c.store.get_job(job.id), "ops": ops(c, job)}
    return run


def check_created(r: dict, c: Ctx) -> None:
    res, job = r["res"], r["job"]
    assert job.provider_job_id == res.provider_job_id
    assert r["ops"] == [("upload", "done")] * (len(r["ops"]) - 1) + [("create", "done")]
    assert res.state == JobState.PENDING and res.raw["state"] == "JOB_STATE_CREATING"


def check_sft(r: dict, c: Ctx) -> None:
    check_created(r, c)
    res, job, raw = r["res"], r["job"], r["res"].raw
    assert res.provider_job_id == f"{OWN}/supervisedFineTuningJobs/ftc-sft-{job.client_token}"
    assert (raw["baseModel"], raw["epochs"], raw["loraRank"], raw["learningRate"], raw["batchSizeSamples"]) == (
        MODEL, 2, 16, 2e-4, 8)
    assert raw["outputModel"] == f"{OWN}/models/support-intents-{job.client_token[:8]}"
    assert raw["dataset"] != raw["evaluationDataset"] and all(
        raw[k].startswith(f"{OWN}/datasets/ftc-") for k in ("dataset", "evaluationDataset"))
    assert r["ops"][:2] == [("upload", "done"), ("upload", "done")]


def check_dpo(r: dict, c: Ctx) -> None:
    check_created(r, c)
    res, job, raw = r["res"], r["job"], r["res"].raw
    assert res.provider_job_id == f"{OWN}/dpoJobs/ftc-dpo-{job.client_token}"
    assert raw["lossConfig"] == {"method": "DPO", "dpo": {"beta": 0.3}}
    cfg = raw["trainingConfig"]
    assert (cfg["baseModel"], cfg["epochs"], cfg["loraRank"], cfg["batchSizeSamples"]) == (MODEL, 1, 16, 8)
    assert r["ops"] == [("upload", "done"), ("create", "done")]  # one file: DPO has no evaluation dataset


def run_create_repeated(c: Ctx) -> dict:
    res, job = c.submit()
    (op,) = c.store.operations(job.id, "create")
    # the same create sent again (an answer that was lost, a retried call): Fireworks refuses a
    # second job with the same id (409) and the backend fetches the job that exists
    again = c.b.create_job(c.spec(), training_file=op.request["dataset"], validation_file=None,
                           client_token=job.client_token, job=job)
    return {"res": res, "again": again, "waits": list(c.clock.waits)}


def check_create_repeated(r: dict, c: Ctx) -> None:
    assert r["again"]["id"] == r["res"].provider_job_id and r["again"]["name"] == r["res"].provider_job_id
    assert r["again"]["state"] != "JOB_STATE_CREATING"  # the GET moved it on: not the first answer again
    assert r["waits"] == []  # a 409 is an answer, not a retry
    codes = [code for m, p, code, _b, _h in interactions(cassette_dir(PROVIDER) / "create_repeated.yaml")
             if m == "POST" and p.endswith("/supervisedFineTuningJobs")]
    assert codes == [200, 409]


# --- the read side


def run_status(c: Ctx) -> dict:
    res, job = c.submit()
    seen = poll_to_end(c, res.provider_job_id)
    return {"pid": res.provider_job_id, "token": job.client_token, "seen": seen,
            "result": c.b.result(res.provider_job_id)}


def check_status(r: dict, c: Ctx) -> None:
    seen, final = r["seen"], r["seen"][-1]
    states = [s.state for s in seen]
    assert states[-1] == JobState.SUCCEEDED and final.error is None and final.provider_state == "JOB_STATE_COMPLETED"
    assert states[0] == JobState.QUEUED and JobState.RUNNING in states  # CREATING -> PENDING on the first GET
    steps = [s.step for s in seen if s.state == JobState.RUNNING and s.step is not None]
    assert steps == sorted(steps) and steps[-1] == 100 and final.step == final.total_steps == 100
    assert {s.provider_state for s in seen} >= {"JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_WRITING_RESULTS"}
    out = f"{OWN}/models/support-intents-{r['token'][:8]}"
    assert final.fine_tuned_model == out == r["result"] and final.trained_tokens and final.trained_tokens > 0
    assert final.serving_note and "dedicated (on-demand) deployment" in final.serving_note
    assert all(s.serving_note is None for s in seen[:-1])


def setup_failed(emu: ProviderEmulator) -> None:
    emu.job_fails("line 7: the assistant message is empty")


def run_failed(c: Ctx) -> dict:
    res, _job = c.submit()
    seen = poll_to_end(c, res.provider_job_id)
    return {"seen": seen, "events": c.b.events(res.provider_job_id), "result": c.b.result(res.provider_job_id)}


def check_failed(r: dict, c: Ctx) -> None:
    final = r["seen"][-1]
    assert final.state == JobState.FAILED and final.provider_state == "JOB_STATE_FAILED"
    assert final.error == "line 7: the assistant message is empty (INVALID_ARGUMENT)"
    assert final.fine_tuned_model is None and r["result"] is None
    ev = r["events"]
    assert ev[-1].level == "error" and ev[-1].id == "fw-completed" and "assistant message is empty" in ev[-2].message


def run_events(c: Ctx) -> dict:
    res, _job = c.submit()
    pid = res.provider_job_id
    first = c.b.events(pid)
    c.at_emulator(lambda e: e.finish(pid))
    tail = c.b.events(pid, after=first[-1].id)
    return {"first": first, "tail": tail, "all": c.b.events(pid), "none": c.b.events(pid, after="fw-completed")}


def check_events(r: dict, c: Ctx) -> None:
    first, tail, evs = r["first"], r["tail"], r["all"]
    assert [e.id for e in first] == ["fw-created", "fw-job_state_pending-"]
    assert [e.id for e in tail] == ["fw-job_state_completed-100", "fw-completed"] == [e.id for e in evs[1:]]
    assert evs[0].message == "job created (support-intents)" and tail[0].data["percent"] == 100
    assert tail[-1].message.startswith(f"job ended: model {OWN}/models/support-intents-")
    assert evs[0].created_at < min(e.created_at for e in evs[1:]) and r["none"] == []


def run_checkpoints(c: Ctx) -> dict:
    res, _job = c.submit()
    before = c.b.checkpoints(res.provider_job_id)
    c.at_emulator(lambda e: e.finish(res.provider_job_id))
    return {"before": before, "cps": c.b.checkpoints(res.provider_job_id)}


def check_checkpoints(r: dict, c: Ctx) -> None:
    assert r["before"] == []  # not finished: no model yet
    (cp,) = r["cps"]
    assert cp.model_ref == cp.id and cp.model_ref.startswith(f"{OWN}/models/support-intents-")
    assert cp.step is None and cp.created_at is not None


def run_cancel(c: Ctx) -> dict:
    res, _job = c.submit()
    pid = res.provider_job_id
    first = c.b.cancel(pid)  # :cancel, then the job read back
    again = c.b.cancel(pid)  # over already: Fireworks refuses (400), ftc reports the final state
    return {"first": first, "again": again}


def check_cancel(r: dict, c: Ctx) -> None:
    assert r["first"].state == JobState.CANCELLED and r["first"].provider_state == "JOB_STATE_CANCELLED"
    assert r["again"].state == JobState.CANCELLED
    codes = [(p.rsplit(":", 1)[-1], code) for m, p, code, _b, _h in
             interactions(cassette_dir(PROVIDER) / "cancel.yaml") if p.endswith(":cancel")]
    assert codes == [("cancel", 200), ("cancel", 400)]


def run_find(c: Ctx) -> dict:
    sft, sft_job = c.submit()
    dpo, dpo_job = c.submit(method="dpo", data={"train": "dpo.jsonl"},
                            hyperparameters={"epochs": 1, "dpo_beta": 0.3})
    return {"sft": sft.provider_job_id, "dpo": dpo.provider_job_id,
            "found_sft": c.b.find_by_client_token(sft_job.client_token),
            "found_dpo": c.b.find_by_client_token(dpo_job.client_token),  # 404 as SFT, then the DPO job
            "other": c.b.find_by_client_token("9" * 32)}  # 404 twice: never created


def check_find(r: dict, c: Ctx) -> None:
    assert r["found_sft"] == r["sft"] and "/supervisedFineTuningJobs/" in r["sft"]
    assert r["found_dpo"] == r["dpo"] and "/dpoJobs/" in r["dpo"]
    assert r["other"] is None


# --- chat


MESSAGES = [{"role": "system", "content": "Route the ticket to one intent."}, {"role": "user", "content": "I lost my card"}]


def run_chat(c: Ctx) -> dict:
    return {"reply": c.b.chat("llama-v3p1-8b-instruct", MESSAGES, max_tokens=16)}  # a short name: the full one is sent


def check_chat(r: dict, c: Ctx) -> None:
    assert r["reply"] == "I lost my card"  # the emulator echoes


def run_chat_lora(c: Ctx) -> dict:
    res, _job = c.submit()
    c.at_emulator(lambda e: e.finish(res.provider_job_id))
    model = c.b.result(res.provider_job_id)
    refused = caught(lambda: c.b.chat(model, MESSAGES, max_tokens=16))
    c.at_emulator(lambda e: e.deploy(model))  # `firectl deployment create`, outside ftc
    return {"model": model, "refused": refused, "reply": c.b.chat(model, MESSAGES, max_tokens=16)}


def check_chat_lora(r: dict, c: Ctx) -> None:
    e = r["refused"]
    assert r["model"].startswith(f"{OWN}/models/support-intents-")
    assert isinstance(e, UsageError) and f"does not serve {r['model']}" in str(e)
    assert "dedicated" in str(e) and "firectl deployment create" in e.hint
    assert r["reply"] == "I lost my card"  # once deployed, it answers


# --- errors


def run_401(c: Ctx) -> dict:
    job = c.new_job()
    return {"err": caught(lambda: c.b.submit(c.spec(), job=job, store=c.store)), "ops": ops(c, job)}


def check_401(r: dict, c: Ctx) -> None:
    e = r["err"]
    assert isinstance(e, AuthError) and "FIREWORKS_API_KEY" in str(e) + (e.hint or "")
    assert e.status_code == 401 and e.exit_code == 2
    assert WRONG_KEY not in str(e) + (e.hint or "")
    assert r["ops"] == []  # refused at the model check: nothing uploaded, nothing created


def setup_429(emu: ProviderEmulator) -> None:
    emu.fail(SFT_CREATE, "POST", [status(429, headers={"Retry-After": "7"})])


def run_429(c: Ctx) -> dict:
    res, job = c.submit()
    return {"res": res, "job": c.store.get_job(job.id), "waits": list(c.clock.waits), "ops": ops(c, job, "create")}


def check_429(r: dict, c: Ctx) -> None:
    assert r["waits"] == [7.0]  # Retry-After honoured, once
    assert r["job"].provider_job_id == r["res"].provider_job_id and r["ops"] == ["done"]


def setup_500(emu: ProviderEmulator) -> None:
    emu.fail(DATASETS, "POST", [status(500)] * 3)
    emu.fail(SFT_CREATE, "POST", [status(500)] * 3)


def run_500(c: Ctx) -> dict:
    job = c.new_job()
    s = c.spec()
    upload = caught(lambda: c.b.submit(s, job=job, store=c.store))  # 3 x 500 on the dataset create
    waits_upload = list(c.clock.waits)
    create = caught(lambda: c.b.submit(s, job=job, store=c.store))  # 3 x 500 on the create: spent
    after = c.store.get_job(job.id)
    res = c.b.submit(s, job=job, store=c.store)  # `ftc jobs resume`: one create, answered
    return {"upload": upload, "waits_upload": waits_upload, "create": create, "after": after, "res": res,
            "job": c.store.get_job(job.id), "ops": ops(c, job, "create"), "waits": list(c.clock.waits)}


def check_500(r: dict, c: Ctx) -> None:
    for k in ("upload", "create"):
        e = r[k]
        assert isinstance(e, RetryExhausted) and e.status_code == 500 and e.attempts == 3, (k, e)
    assert len(r["waits_upload"]) == 2 and len(r["waits"]) == 4  # two waits between three attempts, twice
    # the create is idempotent at Fireworks (its id is the client token's): a spent budget is a
    # definite failure, no job was recorded, and the next submit creates it (no reconciliation)
    assert r["after"].provider_job_id is None
    assert r["ops"] == ["failed", "done"] and r["job"].provider_job_id == r["res"].provider_job_id


# --- the account


def run_account(c: Ctx) -> dict:
    fid = c.b.ensure_uploaded(c.data / "train.jsonl", store=c.store)  # GET /v1/accounts first, once
    return {"account": c.b.account_id, "fid": fid}


def check_account(r: dict, c: Ctx) -> None:
    assert r["account"] == REDACTED_ACCOUNT and r["fid"].startswith(f"{OWN}/datasets/ftc-")
    paths = [(m, p) for m, p, _c, _b, _h in interactions(cassette_dir(PROVIDER) / "account_lookup.yaml")]
    assert paths[0] == ("GET", "/v1/accounts") and paths.count(("GET", "/v1/accounts")) == 1


SFT = dict(data={"train": "train.jsonl", "eval": "eval.jsonl"},
           hyperparameters={"epochs": 2, "learning_rate": 2e-4, "batch_size": 8, "lora": {"r": 16}})
DPO = dict(method="dpo", data={"train": "dpo.jsonl"},
           hyperparameters={"epochs": 1, "batch_size": 8, "dpo_beta": 0.3, "lora": {"r": 16}})

FLOWS = [
    Flow("files", run_files, check_files),
    Flow("upload_dataset_exists_ready", run_dataset_exists, check_dataset_exists),
    Flow("signed_url_upload", run_signed_upload, check_signed_upload),
    Flow("model_check", run_model_check, check_model_check),
    Flow("create_sft_lora", run_create(**SFT), check_sft),
    Flow("create_dpo_lora", run_create(**DPO), check_dpo),
    Flow("create_repeated", run_create_repeated, check_create_repeated),
    Flow("status_to_completed", run_status, check_status),
    Flow("status_failed", run_failed, check_failed, setup=setup_failed),
    Flow("events", run_events, check_events),
    Flow("checkpoints", run_checkpoints, check_checkpoints),
    Flow("cancel", run_cancel, check_cancel),
    Flow("find_by_client_token", run_find, check_find),
    Flow("chat", run_chat, check_chat),
    Flow("chat_undeployed_lora", run_chat_lora, check_chat_lora),
    Flow("error_401", run_401, check_401, key=WRONG_KEY),
    Flow("error_429_retry_after", run_429, check_429, setup=setup_429),
    Flow("error_500", run_500, check_500, setup=setup_500),
    Flow("account_lookup", run_account, check_account, account=False),
]


# --------------------------------------------------------------------------- building a backend


def build(base_url: str, key: str, account: str | None, clock: Clock) -> FireworksBackend:
    """The backend with ftc's client settings (SDK retries off), pointed at ``base_url``."""
    client = fireworks.Fireworks(base_url=base_url, api_key=key, account_id=account,
                                 **sdk_client_kwargs("fireworks", connect=2.0, read=10.0, write=10.0, pool=2.0))
    return FireworksBackend(client=client, policy=RetryPolicy(max_attempts=3, sleep=clock.sleep, clock=clock),
                            sleep=clock.sleep, today=BEFORE, file_poll_s=0.01)


def _ctx(flow: Flow, tmp_path: Path, monkeypatch, b: FireworksBackend, clock: Clock, emu=None) -> Ctx:
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FIREWORKS_ACCOUNT_ID", raising=False)  # the account is the client's (or looked up)
    monkeypatch.setattr(store_jobs, "uuid", FixedUuid(flow.id))
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return Ctx(b, Store(tmp_path / "ftc.db"), write_data(data), clock, tmp_path, emu)


def cassette_path(flow: Flow) -> Path:
    return cassette_dir(PROVIDER) / f"{flow.name}.yaml"


def replay_vcr() -> Any:
    """vcrpy answering from cassettes/fireworks/ only; the scrubber learns no account, so a
    request for an account other than ``redacted-account`` matches nothing."""
    return make_vcr(PROVIDER, "none", Scrubber(learn_accounts=False))


# --------------------------------------------------------------------------- replay


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.id)
def test_replay_without_a_server(flow, tmp_path, monkeypatch):
    path = cassette_path(flow)
    assert path.exists(), f"{path} is missing: re-record with FTC_RECORD_CASSETTES=1"
    clock = Clock()
    b = build(f"http://127.0.0.1:{closed_port()}", "replay-not-a-key", REDACTED_ACCOUNT if flow.account else None,
              clock)
    c = _ctx(flow, tmp_path, monkeypatch, b, clock)
    try:
        with replay_vcr().use_cassette(path.name, allow_playback_repeats=False) as cas:
            result = flow.run(c)
            assert cas.all_played, f"{path.name}: {len(cas.data) - cas.play_count} recorded interaction(s) not used"
        flow.check(result, c)
    finally:
        c.store.close()


def _cause_chain(e: BaseException | None) -> list:
    chain = []
    while e is not None:
        chain.append(e)
        e = e.__cause__ or e.__context__
    return chain


def test_a_request_the_cassette_lacks_fails_loudly(tmp_path, monkeypatch):
    """Another account's path, or a job the cassette does not hold: vcrpy refuses, nothing is sent."""
    from vcr.errors import CannotOverwriteExistingCassetteException

    flow = next(f for f in FLOWS if f.name == "files")
    for account, call in ((REDACTED_ACCOUNT, lambda c: c.b.client.supervised_fine_tuning_jobs.get("ftc-sft-nope")),
                          ("someone-else", lambda c: c.b.ensure_uploaded(c.data / "train.jsonl", store=c.store))):
        clock = Clock()
        c = _ctx(flow, tmp_path, monkeypatch,
                 build(f"http://127.0.0.1:{closed_port()}", "replay-not-a-key", account, clock), clock)
        try:
            with replay_vcr().use_cassette(cassette_path(flow).name), pytest.raises(Exception) as ei:
                call(c)
        finally:
            c.store.close()
        assert any(isinstance(x, CannotOverwriteExistingCassetteException) for x in _cause_chain(ei.value)), account


# --------------------------------------------------------------------------- the cassettes themselves


def _cassettes() -> list[Path]:
    return sorted(cassette_dir(PROVIDER).glob("*.yaml"))


#: The emulator's route table as readable templates: ``/v1/accounts/{account}/datasets/{dataset_id}:upload``.
def _template(method: str, path: str) -> str:
    for m, rx, _handler, _t in ProviderEmulator(PROVIDER)._routes:
        if m == method and rx.fullmatch(path):
            return f"{m} " + re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", rx.pattern)
    raise KeyError(f"fireworks: no known operation for {method} {path}")


def test_every_flow_has_a_cassette_and_every_call_path_is_covered():
    assert {p.name for p in _cassettes()} == {f"{f.name}.yaml" for f in FLOWS}
    A = "/v1/accounts/{account}"
    want = {"GET /v1/accounts", f"POST {A}/datasets", f"GET {A}/datasets/{{dataset_id}}",
            f"POST {A}/datasets/{{dataset_id}}:upload", f"POST {A}/datasets/{{dataset_id}}:getUploadEndpoint",
            "PUT /_fw_signed/{token}/{filename}", f"POST {A}/datasets/{{dataset_id}}:validateUpload",
            f"GET {A}/models/{{model_id}}", f"POST {A}/supervisedFineTuningJobs", f"POST {A}/dpoJobs",
            f"GET {A}/supervisedFineTuningJobs/{{job_id}}", f"GET {A}/dpoJobs/{{job_id}}",
            f"POST {A}/supervisedFineTuningJobs/{{job_id}}:cancel", "POST /v1/chat/completions"}
    seen: dict[str, set] = {}
    for p in _cassettes():
        for method, path, code, _body, _h in interactions(p):
            seen.setdefault(_template(method, path), set()).add(code)
    assert want <= set(seen), f"no cassette has {sorted(want - set(seen))}"
    codes = set().union(*seen.values())
    assert {200, 400, 401, 404, 409, 429, 500} <= codes
    assert 409 in seen[f"POST {A}/datasets"] and 409 in seen[f"POST {A}/supervisedFineTuningJobs"]
    assert 404 in seen[f"GET {A}/models/{{model_id}}"] and 404 in seen["POST /v1/chat/completions"]
    assert {404, 200} <= seen[f"GET {A}/dpoJobs/{{job_id}}"]


def body_type(method: str, path: str, code: int) -> Any:
    """The SDK type (a name for ``fireworks_check.sdk_type``, or an error model) a recorded
    body must parse as: the emulator's route table names the SDK type of each route; errors
    are the control plane's google.rpc.Status or the inference endpoint's error object."""
    if code >= 400:
        return fireworks_check.InferenceError if FireworksMixin._fw_is_inference(path) else \
            fireworks_check.ControlPlaneError
    tmpl = spec_template(PROVIDER, method, path)
    return None if tmpl is None else tmpl[1]


@pytest.mark.parametrize("path", _cassettes(), ids=lambda p: f"fireworks/{p.name}")
def test_cassette_bodies_match_the_sdk_types(path):
    assert header(path).get("recorded_from") == "emulator", f"{path.name}: no recorded_from header"
    checked = 0
    for method, url_path, code, body, _h in interactions(path):
        if body is None:
            continue
        what = f"{path.name}: {method} {url_path} -> {code}"
        tp = body_type(method, url_path, code)
        assert tp is not None, f"{what}: a JSON body on a route with no SDK type (the signed PUT sends none)"
        try:
            fireworks_check.strict_validate(tp, body)
        except AssertionError as e:
            raise AssertionError(f"{what}\n{e}") from None
        checked += 1
    assert checked, f"{path.name}: no JSON body"


def test_the_body_check_refuses_what_the_sdk_types_do_not_allow():
    """The strict check is not a formality: an unknown key, a state the SDK does not know and a
    wrong error shape, taken from real recorded bodies, are each refused."""
    its = interactions(cassette_dir(PROVIDER) / "status_to_completed.yaml")
    m, p, code, job, _h = next(i for i in its if i[0] == "GET" and "/supervisedFineTuningJobs/" in i[1])
    tp = body_type(m, p, code)
    assert tp == "SupervisedFineTuningJob"
    fireworks_check.strict_validate(tp, job)
    for bad in ({**job, "surprise": 1}, {**job, "state": "JOB_STATE_SOMEWHERE"}, {**job, "epochs": "2"}):
        with pytest.raises(AssertionError):
            fireworks_check.strict_validate(tp, bad)
    its = interactions(cassette_dir(PROVIDER) / "error_401.yaml")
    (m, p, code, err, _h), = its
    assert code == 401 and body_type(m, p, code) is fireworks_check.ControlPlaneError
    fireworks_check.strict_validate(fireworks_check.ControlPlaneError, err)
    with pytest.raises(AssertionError):
        fireworks_check.strict_validate(fireworks_check.InferenceError, err)


@pytest.mark.parametrize("path", _cassettes(), ids=lambda p: f"fireworks/{p.name}")
def test_cassette_holds_no_secret(path):
    raw = path.read_text()
    m = KEY_LIKE.search(raw)
    assert m is None, f"{path.name}: key-like text {m.group(0)[:12]!r}..."
    for s in (EMULATOR_KEY, WRONG_KEY, "Bearer ", EMULATOR_ACCOUNT, "emulator-user", "org-emulator"):
        assert s not in raw, f"{path.name} holds {s[:12]!r}"
    accounts = set(re.findall(r"accounts/([a-z0-9-]+)", raw))
    assert accounts <= {"fireworks", REDACTED_ACCOUNT}, f"{path.name}: account ids {sorted(accounts)}"
    assert set(re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", raw)) <= {"user@example.com"}
    assert not re.search(r"(?im)^\s*(authorization|cookie|set-cookie|x-api-key):", raw)
    assert not re.search(r"[?&](token|X-Goog-Signature|X-Goog-Credential|X-Amz-Signature)=(?!REDACTED)", raw)


def test_scrubber_on_what_fireworks_sends(monkeypatch):
    """The Fireworks shapes a live recording meets: the account in every path and in resource
    names inside bodies, the Account object (a person's or a company's name, an e-mail), the
    account from ``$FIREWORKS_ACCOUNT_ID``, ``fw_`` keys, and GCS-signed upload URLs inside
    a JSON body. The public account ``fireworks`` is kept; the result still parses."""
    monkeypatch.setenv("FIREWORKS_API_KEY", "fw_" "LiveKey0123456789abcdefXYZ")
    monkeypatch.setenv("FIREWORKS_ACCOUNT_ID", "acme-prod")
    s = Scrubber()

    class Req:
        uri = "https://api.fireworks.ai/v1/accounts/acme-prod/datasets?datasetId=ftc-abc"
        headers = {"Authorization": "Bearer fw_" "LiveKey0123456789abcdefXYZ", "User-Agent": "Fireworks/Python"}
        body = b'{"datasetId": "ftc-abc", "dataset": {"displayName": "acme-prod train"}}'

    r = s.request(Req())
    assert set(r.headers) == {"User-Agent"} and "acme-prod" not in r.uri + r.body.decode()
    assert f"/v1/accounts/{REDACTED_ACCOUNT}/datasets" in r.uri and "ftc-abc" in r.uri
    signed = ("https://storage.googleapis.com/fw-uploads/acme-prod/train.jsonl?X-Goog-Algorithm=GOOG4-RSA-SHA256"
              "&X-Goog-Credential=svc%40acme.iam&X-Goog-Signature=deadbeef&X-Goog-Expires=900")
    import json

    body = {"accounts": [{"name": "accounts/jane-team", "displayName": "Jane Doe Consulting",
                          "email": "jane@doe.example", "state": "READY"}],
            "model": "accounts/fireworks/models/llama-v3p1-8b-instruct", "ds": "accounts/acme-prod/datasets/x",
            "filenameToSignedUrls": {"train.jsonl": signed}, "createdBy": "jane@doe.example",
            "note": "owner jane-team"}
    out = s.response({"status": {"code": 200, "message": "OK"}, "headers": {"x-request-id": ["req_1"]},
                      "body": {"string": json.dumps(body).encode()}})
    text = out["body"]["string"].decode()
    for bad in ("acme-prod", "jane-team", "Jane Doe", "jane@", "deadbeef", "svc%40acme", "LiveKey"):
        assert bad not in text, bad
    got = json.loads(text)
    assert got["accounts"][0] == {"name": f"accounts/{REDACTED_ACCOUNT}", "displayName": REDACTED_ACCOUNT,
                                  "email": "user@example.com", "state": "READY"}
    assert got["model"] == "accounts/fireworks/models/llama-v3p1-8b-instruct"  # the public account stays
    assert got["note"] == f"owner {REDACTED_ACCOUNT}"  # learned from the name, replaced as a whole id
    url = got["filenameToSignedUrls"]["train.jsonl"]
    assert "X-Goog-Signature=REDACTED" in url and "X-Goog-Credential=REDACTED" in url and "X-Goog-Expires=900" in url
    # the PUT to that URL is scrubbed the same way, so a replay of it matches
    class Put:
        uri = signed
        headers = {"Content-Type": "application/octet-stream"}
        body = b"{}"

    assert s.request(Put()).uri == url
    # an id that merely contains the account's is not touched
    assert s.text("accounts/acme-prod-2/models/m acme-production") == \
        f"accounts/{REDACTED_ACCOUNT}/models/m acme-production"


# --------------------------------------------------------------------------- recording


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.id)
def test_record(flow, tmp_path, monkeypatch):
    """Re-record ``cassettes/fireworks/<flow>.yaml`` from the emulator: FTC_RECORD_CASSETTES=1."""
    mode = record_mode()
    if mode is None:
        pytest.skip("set FTC_RECORD_CASSETTES=1 (emulator) to re-record")
    if mode == "live":
        pytest.skip("Fireworks cassettes are recorded from the emulator only: its dataset and job ids are derived "
                    "from the content and the fixed client tokens, so a live re-recording would meet the previous "
                    "one's datasets and jobs (409); see docs/testing-providers.md")
    path = cassette_path(flow)
    path.parent.mkdir(parents=True, exist_ok=True)
    clock = Clock()
    with ProviderEmulator(PROVIDER, **flow.emu_kw) as emu:
        assert emu.account_id == EMULATOR_ACCOUNT and emu.api_key == EMULATOR_KEY
        scrubber = Scrubber(extra_secrets=(EMULATOR_KEY, WRONG_KEY), accounts=(emu.account_id,))
        if flow.setup:
            flow.setup(emu)
        b = build(emu.base_url, flow.key or emu.api_key, emu.account_id if flow.account else None, clock)
        c = _ctx(flow, tmp_path, monkeypatch, b, clock, emu)
        path.unlink(missing_ok=True)
        try:
            with make_vcr(PROVIDER, "all", scrubber).use_cassette(path.name):
                result = flow.run(c)
        finally:
            c.store.close()
        assert emu.check_responses() > 0  # every body strictly against the SDK types, at the source too
    write_header(path, ["recorded_from: emulator",
                        f"flow: {flow.id} (tests/test_cassettes_fireworks.py)",
                        "source: tests/emulator.py + tests/emulator_fireworks.py (no real keys were available)",
                        f"scrubbed: authorization, keys, the account id (-> {REDACTED_ACCOUNT}), e-mail addresses",
                        "re-record: docs/testing-providers.md, 'Re-recording cassettes'"])
    assert result is not None
