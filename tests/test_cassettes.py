"""Every call path of both hosted backends, recorded as vcrpy cassettes and replayed offline.

Each :class:`Flow` below drives ``OpenAIBackend`` / ``TogetherBackend`` (ftc's real code,
through the real SDKs) along one call path. Recorded once into
``cassettes/<provider>/<flow>.yaml``, it is replayed here with **nothing listening**: the
client points at a closed port, vcrpy answers from the cassette with
``record_mode="none"`` (a request the cassette does not hold fails loudly), every
interaction must be played exactly once, and the neutral results (``JobStatus``,
``SubmitResult``, events, checkpoints, errors) are checked. Matching is on method, path,
query and -- for JSON request bodies -- the body, so a cassette also pins what ftc sends.

Also checked: every JSON response body in every cassette validates against the official
OpenAPI document (tests/specs/; the operation found from the recorded URL, error
bodies against the error schema), and no cassette holds a key, a Bearer token, an
organisation/project id or the emulator's account names.

Re-record: ``FTC_RECORD_CASSETTES=1`` (from tests/emulator.py) or ``=live`` (the real APIs,
real keys; costs money): docs/testing-providers.md, "Re-recording cassettes".

Fireworks' flows live in tests/test_cassettes_fireworks.py (its bodies are checked against
the fireworks SDK's own types: there is no OpenAPI document); the helpers both modules use
are in tests/cassette_util.py.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Callable

import pytest

import openapi_check
from cassette_util import (KEY_LIKE, Clock, Scrubber, cassette_dir, caught, header, interactions, make_vcr,
                           record_mode, spec_template, write_data, write_header)
from cassette_util import FixedUuid as _FixedUuid
from cassette_util import closed_port as _closed_port
from emulator import ProviderEmulator, status

openai = pytest.importorskip("openai")
together = pytest.importorskip("together")
pytest.importorskip("vcr")

import ftclient.store.jobs as store_jobs  # noqa: E402
from ftclient.backends import JobState  # noqa: E402
from ftclient.providers.openai import OpenAIBackend  # noqa: E402
from ftclient.providers.together import TogetherBackend  # noqa: E402
from ftclient.retry import AmbiguousResult, AuthError, RetryExhausted, RetryPolicy, sdk_client_kwargs  # noqa: E402
from ftclient.spec import parse_spec  # noqa: E402
from ftclient.store import Store  # noqa: E402

OA_MODEL = "gpt-4.1-mini-2025-04-14"
TG_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
BEFORE = date(2026, 11, 22)  # before OpenAI's train_cutoff in the price catalogue
#: Keys used for the 401 paths: they must not reach a cassette either.
WRONG_KEYS = {"openai": "sk-" "proj-wrongButSecret0123456789abcdef", "together": "tgp_v1_" "wrongButSecret0123456789abcdef"}
EMULATOR_KEYS = ("sk-test-emulator-0000", "tg-test-emulator-0000")


# --------------------------------------------------------------------------- context


@dataclass
class Ctx:
    provider: str
    b: Any
    store: Store
    data: Path
    clock: Clock
    emu: ProviderEmulator | None = None  # None when replaying (or recording live)

    def at_emulator(self, fn: Callable[[ProviderEmulator], Any]) -> None:
        """Do ``fn(emu)`` while recording from the emulator (a job finishing, say); a replay
        gets the same effect from the recorded answers."""
        if self.emu is not None:
            fn(self.emu)

    def new_job(self):
        model = OA_MODEL if self.provider == "openai" else TG_MODEL
        return self.store.new_job(self.provider, {"name": "tickets"}, model=model)


def oa_spec(base: Path, **over: Any):
    d = {"name": "tickets", "base_model": OA_MODEL, "data": {"train": "train.jsonl"},
         "hyperparameters": {"epochs": 2, "seed": 7}, "openai": {"suffix": "tickets"}}
    d.update(over)
    return parse_spec(d, base_dir=base)


def tg_spec(base: Path, **over: Any):
    d = {"name": "support-intents", "base_model": TG_MODEL, "data": {"train": "train.jsonl"},
         "hyperparameters": {"epochs": 2, "seed": 7}}
    d.update(over)
    return parse_spec(d, base_dir=base)


def spec_for(c: Ctx, **over: Any):
    return (oa_spec if c.provider == "openai" else tg_spec)(c.data, **over)


def poll_to_end(c: Ctx, pid: str, limit: int = 30) -> list:
    seen = []
    for _ in range(limit):
        s = c.b.status(pid)
        seen.append(s)
        if s.final:
            return seen
    raise AssertionError(f"{pid} not final after {limit} polls")


# --------------------------------------------------------------------------- flows


@dataclass
class Flow:
    provider: str
    name: str
    run: Callable[[Ctx], dict]
    check: Callable[[dict, Ctx], None]
    setup: Callable[[ProviderEmulator], None] | None = None
    emu_kw: dict = field(default_factory=dict)
    live: bool = True  # can be recorded against the real API (no fault injection, no waiting)
    key: str | None = None  # the client's key when it is not the right one (401)

    @property
    def id(self) -> str:
        return f"{self.provider}-{self.name}"


CREATE = {"openai": r"/fine_tuning/jobs$", "together": r"/v1/fine-tunes$"}
UPLOAD = {"openai": r"/files$", "together": r"/v1/files$"}


# --- shared by both providers


def run_files(c: Ctx) -> dict:
    train = c.data / "train.jsonl"
    fid = c.b.ensure_uploaded(train, store=c.store)
    again = c.b.ensure_uploaded(train, store=c.store)  # same sha256: one GET, no upload
    if c.provider == "openai":  # ftc itself never lists files: the SDK call, through ftc's retry policy
        listed = c.b._call("list files", lambda: [f.id for f in c.b.client.files.list(purpose="fine-tune")])
        missing_id = "file-0000000000000000000000"
    else:
        listed = c.b._call("list files", lambda: [f.id for f in c.b.client.files.list().data])
        missing_id = "file-00000000-0000-4000-8000-000000000000"
    missing = c.b._call("check file", lambda: c.b._file_state(missing_id))
    return {"fid": fid, "again": again, "listed": listed, "missing": missing}


def check_files(r: dict, c: Ctx) -> None:
    assert r["fid"].startswith("file-") and r["again"] == r["fid"]
    assert r["fid"] in r["listed"] and r["missing"] == "missing"


def run_create(**spec_over: Any) -> Callable[[Ctx], dict]:
    def run(c: Ctx) -> dict:
        job = c.new_job()
        quotes: list = []
        res = c.b.submit(spec_for(c, **spec_over), job=job, store=c.store,
                         confirm=lambda q: quotes.append(q) or True)
        return {"res": res, "job": c.store.get_job(job.id), "quotes": quotes,
                "ops": [(o.kind, o.state) for o in c.store.operations(job.id)]}
    return run


def check_created(r: dict, c: Ctx) -> None:
    res, job = r["res"], r["job"]
    assert job.provider_job_id == res.provider_job_id
    assert r["ops"] == [("upload", "done")] * (len(r["ops"]) - 1) + [("create", "done")]
    if c.provider == "openai":
        assert res.provider_job_id.startswith("ftjob-") and res.state == JobState.VALIDATING_FILES
        assert res.raw["metadata"]["ftc_client_token"] == job.client_token and r["quotes"] == []
    else:
        assert res.provider_job_id.startswith("ft-") and res.state == JobState.PENDING
        assert job.client_token[:8] in res.raw["suffix"]
        (q,) = r["quotes"]  # Together's own price went to confirm
        assert q["source"] == "Together estimate-price" and q["cost_usd"] > 0


def run_status(c: Ctx) -> dict:
    res = c.b.submit(spec_for(c), job=c.new_job(), store=c.store)
    seen = poll_to_end(c, res.provider_job_id)
    return {"pid": res.provider_job_id, "seen": seen, "result": c.b.result(res.provider_job_id)}


def check_status(r: dict, c: Ctx) -> None:
    states = [s.state for s in r["seen"]]
    final = r["seen"][-1]
    assert states[-1] == JobState.SUCCEEDED and final.error is None
    assert JobState.QUEUED in states and JobState.RUNNING in states
    assert r["result"] == final.fine_tuned_model
    if c.provider == "openai":
        assert states[0] == JobState.QUEUED  # the first retrieve moved it on from validating_files
        running = [s for s in r["seen"] if s.state == JobState.RUNNING and s.step]
        assert running and running[-1].total_steps == 3 and running[-1].loss is not None
        assert final.fine_tuned_model.startswith(f"ft:{OA_MODEL}:redacted-org:tickets:")
    else:
        assert {s.provider_state for s in r["seen"]} >= {"running", "compressing", "uploading", "completed"}
        assert final.fine_tuned_model.startswith("redacted-user/Meta-Llama-3.1-8B-Instruct-Reference-")


def run_find(c: Ctx) -> dict:
    job = c.new_job()
    res = c.b.submit(spec_for(c), job=job, store=c.store)
    return {"pid": res.provider_job_id, "found": c.b.find_by_client_token(job.client_token),
            "other": c.b.find_by_client_token("9" * 32)}


def check_find(r: dict, c: Ctx) -> None:
    assert r["found"] == r["pid"] and r["other"] is None


def run_events(c: Ctx) -> dict:
    res = c.b.submit(spec_for(c), job=c.new_job(), store=c.store)
    c.at_emulator(lambda e: e.finish(res.provider_job_id))
    evs = c.b.events(res.provider_job_id)
    return {"evs": evs, "tail": c.b.events(res.provider_job_id, after=evs[-3].id)}


def check_events(r: dict, c: Ctx) -> None:
    evs = r["evs"]
    assert r["tail"] == evs[-2:]
    assert [e.created_at for e in evs] == sorted(e.created_at for e in evs)
    if c.provider == "openai":  # more than one page of 100: the SDK followed `after`
        assert len([e for e in evs if e.data.get("type") == "metrics"]) == 101
        assert evs[0].message.startswith("Validating training file") and evs[-1].message.endswith("completed")
    else:
        assert evs[0].data["type"] == "job_pending" and evs[-1].message.startswith("Job finished")
        assert any("loss" in e.data for e in evs)


def run_checkpoints(c: Ctx) -> dict:
    res = c.b.submit(spec_for(c), job=c.new_job(), store=c.store)
    c.at_emulator(lambda e: e.finish(res.provider_job_id))
    return {"cps": c.b.checkpoints(res.provider_job_id)}


def check_checkpoints(r: dict, c: Ctx) -> None:
    cps = r["cps"]
    steps = [cp.step for cp in cps]
    assert steps == sorted(steps) and steps[0] == 1
    if c.provider == "openai":
        assert steps == [1, 2, 3] and all(cp.model_ref.startswith(f"ft:{OA_MODEL}:redacted-org:") for cp in cps)
        assert "train_loss" in cps[-1].metrics
    else:
        assert cps[-1].model_ref and cps[-1].model_ref.startswith("redacted-user/")


def run_cancel(c: Ctx) -> dict:
    res = c.b.submit(spec_for(c), job=c.new_job(), store=c.store)
    pid = res.provider_job_id
    first = c.b.cancel(pid)
    later = c.b.status(pid)
    again = c.b.cancel(pid)  # already over: the provider refuses (400), ftc reports the state
    return {"first": first, "later": later, "again": again}


def check_cancel(r: dict, c: Ctx) -> None:
    if c.provider == "openai":
        assert r["first"].state == JobState.CANCELLED
    else:  # Together: cancel_requested (not final), then cancelled
        assert r["first"].state == JobState.RUNNING and r["first"].provider_state == "cancel_requested"
    assert r["later"].state == JobState.CANCELLED and r["again"].state == JobState.CANCELLED


def run_chat(c: Ctx) -> dict:
    model = OA_MODEL if c.provider == "openai" else TG_MODEL
    return {"reply": c.b.chat(model, [{"role": "system", "content": "Route the ticket to one intent."},
                                      {"role": "user", "content": "I lost my card"}], max_tokens=16)}


def check_chat(r: dict, c: Ctx) -> None:
    assert r["reply"] == "I lost my card"  # the emulator echoes


def run_401(c: Ctx) -> dict:
    return {"err": caught(lambda: c.b.ensure_uploaded(c.data / "train.jsonl", store=c.store))}


def check_401(r: dict, c: Ctx) -> None:
    e = r["err"]
    var = "OPENAI_API_KEY" if c.provider == "openai" else "TOGETHER_API_KEY"
    assert isinstance(e, AuthError) and var in str(e) and e.status_code == 401 and e.exit_code == 2
    assert WRONG_KEYS[c.provider] not in str(e) + (e.hint or "")


def setup_429(emu: ProviderEmulator) -> None:
    emu.fail(CREATE[emu.provider], "POST", [status(429, headers={"Retry-After": "7"})])


def run_429(c: Ctx) -> dict:
    job = c.new_job()
    res = c.b.submit(spec_for(c), job=job, store=c.store)
    return {"res": res, "job": c.store.get_job(job.id), "waits": list(c.clock.waits),
            "ops": [(o.kind, o.state) for o in c.store.operations(job.id, "create")]}


def check_429(r: dict, c: Ctx) -> None:
    assert r["waits"] == [7.0]  # Retry-After honoured, once
    assert r["job"].provider_job_id == r["res"].provider_job_id and r["ops"] == [("create", "done")]


def setup_500(emu: ProviderEmulator) -> None:
    emu.fail(UPLOAD[emu.provider], "POST", [status(500)] * 3)
    emu.fail(CREATE[emu.provider], "POST", [status(500)] * 2)


def run_500(c: Ctx) -> dict:
    job = c.new_job()
    s = spec_for(c)
    upload = caught(lambda: c.b.submit(s, job=job, store=c.store))  # 3 x 500 on the upload
    create = caught(lambda: c.b.submit(s, job=job, store=c.store))  # 2 x 500 on the create: ambiguous
    unknown = c.store.get_job(job.id).state
    res = c.b.submit(s, job=job, store=c.store)  # `ftc jobs resume`: reconcile (not found), one create
    return {"upload": upload, "create": create, "unknown": unknown, "res": res, "job": c.store.get_job(job.id),
            "ops": [o.state for o in c.store.operations(job.id, "create")], "waits": list(c.clock.waits)}


def check_500(r: dict, c: Ctx) -> None:
    assert isinstance(r["upload"], RetryExhausted) and r["upload"].status_code == 500
    assert isinstance(r["create"], AmbiguousResult) and r["unknown"] == "submit_unknown"
    assert r["job"].provider_job_id == r["res"].provider_job_id
    assert r["ops"] == ["failed", "failed", "done"]  # two ambiguous creates settled by reconciliation, one made
    assert r["waits"].count(2.0) >= 3 and r["waits"].count(4.0) >= 3  # the reconciliation listings' waits


def run_limits(c: Ctx) -> dict:
    fid = c.b.ensure_uploaded(c.data / "train.jsonl", store=c.store)
    return {"limits": c.b._model_limits(TG_MODEL), "est": c.b._provider_estimate(tg_spec(c.data), training_file=fid),
            "full": c.b._provider_estimate(tg_spec(c.data, adapter="full"), training_file=fid)}


def check_limits(r: dict, c: Ctx) -> None:
    lim = r["limits"]
    assert lim.lora_training.max_rank == 64 and lim.supports_full_training
    assert r["est"]["cost_usd"] > 0 and r["est"]["allowed_to_proceed"] is True and r["est"]["train_tokens"] > 0
    assert r["full"]["cost_usd"] > r["est"]["cost_usd"]  # full fine-tuning is dearer


def check_dpo(r: dict, c: Ctx) -> None:
    check_created(r, c)
    raw = r["res"].raw
    assert raw["validation_file"] and raw["validation_file"] != raw["training_file"]
    if c.provider == "openai":
        assert raw["method"]["type"] == "dpo" and raw["method"]["dpo"]["hyperparameters"]["beta"] == 0.3
        assert raw["metadata"]["team"] == "support"
    else:
        assert raw["training_method"]["method"] == "dpo" and raw["training_type"]["type"] == "Lora"


def check_sft(r: dict, c: Ctx) -> None:
    check_created(r, c)
    raw = r["res"].raw
    if c.provider == "openai":
        assert raw["method"]["type"] == "supervised" and raw["user_provided_suffix"] == "tickets"
    else:
        assert raw["training_method"]["method"] == "sft" and raw["training_type"]["type"] == "Lora"
        assert raw["training_type"]["lora_r"] == 16


def check_full(r: dict, c: Ctx) -> None:
    check_created(r, c)
    assert r["res"].raw["training_type"]["type"] == "Full"


DPO_OA = dict(method="dpo", data={"train": "dpo.jsonl", "eval": "eval.jsonl"},
              hyperparameters={"epochs": 1, "batch_size": 4, "dpo_beta": 0.3, "seed": 7},
              openai={"learning_rate_multiplier": 0.5, "metadata": {"team": "support"}, "suffix": "tickets"})
DPO_TG = dict(method="dpo", data={"train": "dpo.jsonl", "eval": "eval.jsonl"},
              hyperparameters={"epochs": 1, "batch_size": 8, "dpo_beta": 0.3, "seed": 7})


def _flows() -> list[Flow]:
    out = []
    for p in ("openai", "together"):
        out += [
            Flow(p, "files", run_files, check_files),
            Flow(p, "create_sft" if p == "openai" else "create_sft_lora", run_create(), check_sft),
            Flow(p, "create_dpo" if p == "openai" else "create_dpo_lora",
                 run_create(**(DPO_OA if p == "openai" else DPO_TG)), check_dpo),
            Flow(p, "status_to_succeeded", run_status, check_status, live=False),
            Flow(p, "list_by_metadata" if p == "openai" else "list_by_suffix", run_find, check_find),
            Flow(p, "events_paged" if p == "openai" else "events", run_events, check_events, live=False,
                 emu_kw={"running_steps": 101} if p == "openai" else {}),
            Flow(p, "checkpoints", run_checkpoints, check_checkpoints, live=False),
            Flow(p, "cancel", run_cancel, check_cancel),
            Flow(p, "chat", run_chat, check_chat),
            Flow(p, "error_401", run_401, check_401, key=WRONG_KEYS[p]),
            Flow(p, "error_429_retry_after", run_429, check_429, setup=setup_429, live=False),
            Flow(p, "error_500", run_500, check_500, setup=setup_500, live=False),
        ]
    # OpenAI picks LoRA or full itself (the spec's adapter is ignored): no separate path there.
    out += [Flow("together", "create_full", run_create(adapter="full"), check_full),
            Flow("together", "estimate_price_and_limits", run_limits, check_limits)]
    return out


FLOWS = _flows()


# --------------------------------------------------------------------------- building a backend


def build(flow: Flow, base_url: str | None, key: str | None, clock: Clock) -> Any:
    """The backend with ftc's client settings (SDK retries off), pointed at ``base_url``
    (None: the SDK's default, i.e. the real API, with the key from the environment)."""
    policy = RetryPolicy(max_attempts=3, sleep=clock.sleep, clock=clock)
    kw = dict(policy=policy, sleep=clock.sleep, today=BEFORE, file_poll_s=0.01)
    timeouts = dict(connect=2.0, read=10.0, write=10.0, pool=2.0)
    if flow.provider == "openai":
        client = None if base_url is None and key is None else openai.OpenAI(
            base_url=base_url, api_key=key, **sdk_client_kwargs("openai", **timeouts))
        return OpenAIBackend(client=client, **kw)
    client = None if base_url is None and key is None else together.Together(
        base_url=base_url, api_key=key, **sdk_client_kwargs("together", **timeouts))
    return TogetherBackend(client=client, **kw)


def _ctx(flow: Flow, tmp_path: Path, monkeypatch, b: Any, clock: Clock, emu=None) -> Ctx:
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(store_jobs, "uuid", _FixedUuid(flow.id))
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    st = Store(tmp_path / "ftc.db")
    return Ctx(flow.provider, b, st, write_data(data), clock, emu)


def cassette_path(flow: Flow) -> Path:
    return cassette_dir(flow.provider) / f"{flow.name}.yaml"


# --------------------------------------------------------------------------- replay


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.id)
def test_replay_without_a_server(flow, tmp_path, monkeypatch):
    path = cassette_path(flow)
    assert path.exists(), f"{path} is missing: re-record with FTC_RECORD_CASSETTES=1"
    port = _closed_port()
    base = f"http://127.0.0.1:{port}" + ("/v1" if flow.provider == "openai" else "")
    clock = Clock()
    b = build(flow, base, "replay-not-a-key", clock)
    c = _ctx(flow, tmp_path, monkeypatch, b, clock)
    try:
        with make_vcr(flow.provider, "none").use_cassette(path.name, allow_playback_repeats=False) as cas:
            result = flow.run(c)
            assert cas.all_played, f"{path.name}: {len(cas.data) - cas.play_count} recorded interaction(s) not used"
        flow.check(result, c)
    finally:
        c.store.close()


def test_a_request_the_cassette_lacks_fails_loudly(tmp_path, monkeypatch):
    from vcr.errors import CannotOverwriteExistingCassetteException

    flow = next(f for f in FLOWS if f.id == "openai-files")
    clock = Clock()
    b = build(flow, f"http://127.0.0.1:{_closed_port()}/v1", "replay-not-a-key", clock)
    with make_vcr("openai", "none").use_cassette(cassette_path(flow).name):
        with pytest.raises(Exception) as ei:
            b.client.fine_tuning.jobs.retrieve("ftjob-not-in-the-cassette")
    chain, e = [], ei.value
    while e is not None:
        chain.append(e)
        e = e.__cause__ or e.__context__
    assert any(isinstance(x, CannotOverwriteExistingCassetteException) for x in chain), chain


# --------------------------------------------------------------------------- the cassettes themselves


def _all_cassettes() -> list[Path]:
    return sorted(p for prov in ("openai", "together") for p in cassette_dir(prov).glob("*.yaml"))


def test_every_flow_has_a_cassette_and_every_operation_is_covered():
    assert {p.relative_to(cassette_dir("openai").parent).as_posix() for p in _all_cassettes()} >= {
        f"{f.provider}/{f.name}.yaml" for f in FLOWS}
    want = {
        "openai": {("POST", "/files"), ("GET", "/files"), ("GET", "/files/{file_id}"), ("POST", "/fine_tuning/jobs"),
                   ("GET", "/fine_tuning/jobs"), ("GET", "/fine_tuning/jobs/{fine_tuning_job_id}"),
                   ("GET", "/fine_tuning/jobs/{fine_tuning_job_id}/events"),
                   ("GET", "/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints"),
                   ("POST", "/fine_tuning/jobs/{fine_tuning_job_id}/cancel"), ("POST", "/chat/completions")},
        "together": {("GET", "/files"), ("GET", "/files/{id}"), ("GET", "/fine-tunes/models/limits"),
                     ("POST", "/fine-tunes/estimate-price"), ("POST", "/fine-tunes"), ("GET", "/fine-tunes"),
                     ("GET", "/fine-tunes/{id}"), ("GET", "/fine-tunes/{id}/events"),
                     ("GET", "/fine-tunes/{id}/checkpoints"), ("POST", "/fine-tunes/{id}/cancel"),
                     ("POST", "/chat/completions")},
    }
    for prov, ops in want.items():
        seen, codes, upload_steps = set(), set(), []
        for p in cassette_dir(prov).glob("*.yaml"):
            for method, path, code, _body, _h in interactions(p):
                codes.add(code)
                t = spec_template(prov, method, path)
                if t is None:
                    upload_steps.append((method, code))
                elif not path.endswith("/preprocess"):
                    seen.add(t)
                else:
                    upload_steps.append(("POST preprocess", code))
        assert ops <= seen, f"{prov}: no cassette has {sorted(ops - seen)}"
        assert {401, 429, 500} <= codes
        if prov == "together":  # the SDK's three-request upload
            assert {("POST", 302), ("PUT", 200), ("POST preprocess", 200)} <= set(upload_steps)


@pytest.mark.parametrize("path", _all_cassettes(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_cassette_bodies_match_the_official_schema(path):
    prov = path.parent.name
    assert header(path).get("recorded_from") in ("emulator", "live"), f"{path.name}: no recorded_from header"
    checked = 0
    for method, url_path, code, body, _h in interactions(path):
        if body is None:
            continue
        tmpl = spec_template(prov, method, url_path)
        what = f"{path.name}: {method} {url_path} -> {code}"
        # Together's first upload step (POST /v1/files -> 302) is the SDK's, not the document's:
        # only its error bodies carry JSON, and those are the provider's ErrorData.
        assert tmpl is not None or code >= 400, f"{what}: a JSON body where the document describes none"
        try:
            if tmpl is None:
                openapi_check.validate_error(prov, body)
            elif 200 <= code < 300 or openapi_check.has_response_schema(prov, tmpl[0], tmpl[1], code):
                openapi_check.validate_response(prov, tmpl[0], tmpl[1], code, body)
            else:
                openapi_check.validate_error(prov, body)
        except AssertionError as e:
            raise AssertionError(f"{what}\n{e}") from None
        checked += 1
    assert checked, f"{path.name}: no JSON body"


@pytest.mark.parametrize("path", _all_cassettes(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_cassette_holds_no_secret(path):
    import re

    raw = path.read_text()
    m = KEY_LIKE.search(raw)
    assert m is None, f"{path.name}: key-like text {m.group(0)[:12]!r}..."
    for s in (*EMULATOR_KEYS, *WRONG_KEYS.values(), "Bearer ", "org-emulator", "emulator-user"):
        assert s not in raw, f"{path.name} holds {s[:12]!r}"
    assert not re.search(r"(?im)^\s*(authorization|cookie|set-cookie|openai-organization|openai-project|x-api-key):",
                         raw)
    assert not re.search(r"[?&](token|X-Amz-Signature|X-Amz-Credential)=(?!REDACTED)", raw)


# --------------------------------------------------------------------------- recording


@pytest.mark.parametrize("flow", FLOWS, ids=lambda f: f.id)
def test_record(flow, tmp_path, monkeypatch):
    """Re-record ``cassettes/<provider>/<flow>.yaml``: FTC_RECORD_CASSETTES=1 (emulator) or live."""
    mode = record_mode()
    if mode is None:
        pytest.skip("set FTC_RECORD_CASSETTES=1 (emulator) or =live (real APIs) to re-record")
    if mode == "live" and not flow.live:
        pytest.skip(f"{flow.id} needs fault injection or a finished job: recorded from the emulator only")
    path = cassette_path(flow)
    path.parent.mkdir(parents=True, exist_ok=True)
    clock = Clock()
    scrubber = Scrubber(extra_secrets=(*EMULATOR_KEYS, *WRONG_KEYS.values()))
    if mode == "emulator":
        with ProviderEmulator(flow.provider, **flow.emu_kw) as emu:
            if flow.setup:
                flow.setup(emu)
            b = build(flow, emu.base_url, flow.key or emu.api_key, clock)
            c = _ctx(flow, tmp_path, monkeypatch, b, clock, emu)
            path.unlink(missing_ok=True)
            with make_vcr(flow.provider, "all", scrubber).use_cassette(path.name):
                result = flow.run(c)
            emu.check_responses()
        what = "tests/emulator.py (no real keys were available)"
    else:
        var = "OPENAI_API_KEY" if flow.provider == "openai" else "TOGETHER_API_KEY"
        import os

        if not os.environ.get(var):
            pytest.skip(f"{var} is not set")
        b = build(flow, None, flow.key, clock)  # the SDK's default base URL and the key from the environment
        c = _ctx(flow, tmp_path, monkeypatch, b, clock)
        path.unlink(missing_ok=True)
        try:
            with make_vcr(flow.provider, "all", scrubber).use_cassette(path.name):
                result = flow.run(c)
        finally:
            _cancel_live_jobs(c)
        what = "the real API"
    c.store.close()
    write_header(path, [f"recorded_from: {mode}",
                        f"flow: {flow.id} (tests/test_cassettes.py)",
                        f"source: {what}",
                        "scrubbed: authorization, cookies, organisation/project ids, keys, account names",
                        "re-record: docs/testing-providers.md, 'Re-recording cassettes'"])
    assert result is not None


def _cancel_live_jobs(c: Ctx) -> None:
    """Live recording: stop every job the flow created (outside the cassette), so it costs ~nothing."""
    for j in c.store.list_jobs(limit=None):
        if j.provider_job_id:
            try:
                c.b.cancel(j.provider_job_id)
            except Exception as e:  # noqa: BLE001
                print(f"could not cancel {j.provider_job_id}: {e}; cancel it in the console")


def test_scrubber_on_what_the_real_apis_send(monkeypatch):
    """The shapes a live recording meets (not produced by the emulator): the org/project
    headers and their values inside bodies, cookies, ``sk-proj-`` keys echoed in errors, an
    e-mail address, the org slug in ``ft:`` model names, Together's account fields and
    presigned upload URLs."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-" "proj-LiveKey0123456789abcdefXYZ")
    s = Scrubber()
    resp = {"status": {"code": 200, "message": "OK"},
            "headers": {"openai-organization": ["acme-corp-x1"], "openai-project": ["proj_AbC123dEf"],
                        "Set-Cookie": ["__cf_bm=abc; path=/"], "x-request-id": ["req_123"],
                        "Location": ["https://s3.example.com/up/f?X-Amz-Credential=AKIA123&X-Amz-Signature=deadbeef&a=1"]},
            "body": {"string": json.dumps({
                "organization_id": "org-AbCdEf123", "fine_tuned_model": "ft:gpt-4.1-mini:acme-corp-x1:tickets:abc123",
                "note": "key sk-" "proj-LiveKey0123456789abcdefXYZ of jane.doe@acme.com in proj_AbC123dEf",
                "user_id": "u-7f3a9c", "model_output_name": "janedoe/Meta-Llama-3.1-8B-tickets-1234",
                "owner_address": "0xabc"}).encode()}}
    out = s.response(resp)
    text = json.dumps({k: v for k, v in out["headers"].items()}) + out["body"]["string"].decode()
    for bad in ("acme-corp-x1", "proj_AbC123dEf", "__cf_bm", "sk-proj", "LiveKey", "jane.doe", "org-AbCdEf123",
                "u-7f3a9c", "janedoe/", "AKIA123", "deadbeef", "0xabc\""):
        assert bad not in text, bad
    assert "req_123" in text and "a=1" in text and "ft:gpt-4.1-mini:redacted-org:tickets:abc123" in text
    assert {k.lower() for k in out["headers"]} == {"x-request-id", "location"}

    class Req:
        uri = "https://api.openai.com/v1/files?api_key=sk-" "proj-LiveKey0123456789abcdefXYZ"
        headers = {"Authorization": "Bearer sk-" "proj-LiveKey0123456789abcdefXYZ", "OpenAI-Organization": "org-x",
                   "User-Agent": "OpenAI/Python"}
        body = b'{"note": "sk-' b'proj-LiveKey0123456789abcdefXYZ"}'

    r = s.request(Req())
    assert set(r.headers) == {"User-Agent"} and b"LiveKey" not in r.body and "LiveKey" not in r.uri
