"""The crash-safe job store: migrations, lifecycle, write-ahead operations, workers, concurrency."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ftclient import store as store_mod
from ftclient.errors import ConfigError, UsageError
from ftclient.store.clock import iso_ago, now_iso
from ftclient.store import (
    MIGRATIONS,
    STATES,
    DuplicateSubmission,
    Store,
    StoreError,
    migrate,
    schema_version,
)

REPO = Path(__file__).resolve().parents[1]
SECRET = "sk-proj-" + "Q7" * 20


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    for var in ("OPENAI_API_KEY", "TOGETHER_API_KEY", "FIREWORKS_API_KEY", "MISTRAL_API_KEY"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "ftc.db"


@pytest.fixture
def st(db):
    s = Store(db)
    yield s
    s.close()


def run_py(code: str, *, env: dict | None = None, timeout: int = 60, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    if check and p.returncode != 0:
        raise AssertionError(f"child failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def columns(conn: sqlite3.Connection, table: str) -> list[tuple]:
    return [(r[1], r[2], r[3], r[5]) for r in conn.execute(f"PRAGMA table_info({table})")]


def schema(path: Path) -> dict:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        indexes = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index' AND sql IS NOT NULL"))
        return {"tables": {t: columns(conn, t) for t in tables}, "indexes": indexes}
    finally:
        conn.close()


# ------------------------------------------------------------------------------ migrations


def test_fresh_store_is_at_the_latest_schema_and_reopening_is_idempotent(db):
    s = Store(db)
    assert s.schema_version == len(MIGRATIONS) >= 2
    names = [r[0] for r in s._conn.execute("SELECT name FROM _migrations ORDER BY id")]
    assert names == [fn.__name__ for fn in MIGRATIONS]
    job = s.new_job("openai", {"base_model": "gpt-4.1-mini"})
    s.close()
    before = schema(db)
    s2 = Store(db)
    assert migrate(s2._conn) == []  # nothing left to apply
    assert s2.get_job(job.id).spec == {"base_model": "gpt-4.1-mini"}
    assert s2._conn.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0] == len(MIGRATIONS)
    s2.close()
    assert schema(db) == before


@pytest.mark.parametrize("start", range(0, len(MIGRATIONS)))
def test_a_store_at_migration_n_upgrades_to_the_latest(tmp_path, start):
    fresh = tmp_path / "fresh.db"
    Store(fresh).close()
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old, isolation_level=None)
    migrate(conn, start)
    assert schema_version(conn) == start
    if start >= 1:  # a job written by the old schema survives the upgrade
        conn.execute(
            "INSERT INTO jobs (id, backend, state, client_token, spec_json, created_at, updated_at, attempts)"
            " VALUES ('ftc-20250101-aaaaaa', 'together', 'running', 'tok', '{}', '2025-01-01T00:00:00+00:00',"
            " '2025-01-01T00:00:00+00:00', 1)"
        )
    conn.close()
    s = Store(old)
    assert s.schema_version == len(MIGRATIONS)
    if start >= 1:
        job = s.get_job("ftc-20250101-aaaaaa")
        assert job.state == "running" and job.pid is None
        # an old job nobody works on is resumable work
        assert [w.job.id for w in s.pending_work()] == [job.id]
    s.close()
    assert schema(old) == schema(fresh)


def test_credentials_an_older_ftc_stored_with_an_eval_run_are_redacted_on_upgrade(tmp_path):
    from ftclient.store.migrations import m007_redact_eval_refs

    user_pw = "alice:" + "s3cr3t" + "pw"  # built from pieces: no credential-like literal in the source
    key = "k" + "9" * 12
    ref = f"openai-compatible:http://{user_pw}@127.0.0.1:9/v1?api_key={key}#m"
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old, isolation_level=None)
    migrate(conn, MIGRATIONS.index(m007_redact_eval_refs))
    conn.execute("INSERT INTO eval_runs (id, model_ref, data_path, data_sha256, params_json, state, created_at,"
                 " updated_at, summary_json) VALUES ('ev-1', ?, 'e.jsonl', 'ab', ?, 'complete', 't', 't', ?)",
                 (ref, json.dumps({"ref": ref}), json.dumps({"model_ref": ref})))
    conn.execute("INSERT INTO eval_results (run_id, example_key, idx, error, created_at) VALUES ('ev-1', 'k1', 0, ?, 't')",
                 (f"cannot connect to {ref[len('openai-compatible:'):]}",))
    conn.close()
    with Store(old) as s:
        run = s.get_eval_run("ev-1")
        assert run.model_ref.endswith("#m") and "127.0.0.1:9" in run.model_ref
    raw = old.read_bytes()
    assert b"s3cr3tpw" not in raw and key.encode() not in raw


def test_a_store_from_a_newer_ftc_is_refused(db):
    Store(db).close()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("INSERT INTO _migrations VALUES (999, 'm999_future', 'x')")
    conn.close()
    with pytest.raises(ConfigError, match="newer ftc"):
        Store(db)


def test_a_file_that_is_not_a_database_is_a_config_error(db):
    db.write_bytes(b"this is not sqlite at all\n" * 100)
    with pytest.raises(ConfigError, match="not a usable ftc job store") as e:
        Store(db)
    assert e.value.hint


def test_connection_settings(st, db):
    c = st._conn
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert c.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert c.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert c.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    if os.name != "nt":
        assert db.stat().st_mode & 0o077 == 0


def test_default_path_is_under_ftc_home(tmp_path):
    with Store() as s:
        assert s.path == tmp_path / "home" / "ftc.db"
    assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700


def test_states_agree_with_the_backend_protocol():
    backends = pytest.importorskip("ftclient.backends")
    assert set(STATES) == {s.value for s in backends.JobState}
    assert set(store_mod.FINAL_STATES) == {s.value for s in backends.FINAL_STATES}


# ------------------------------------------------------------------------------ job lifecycle


def test_job_lifecycle_with_a_write_ahead_create(st):
    job = st.new_job("openai", json.dumps({"base_model": "gpt-4.1-mini"}), model="gpt-4.1-mini", estimate_usd=1.25)
    assert re.fullmatch(r"ftc-\d{8}-[0-9a-f]{6}", job.id)
    assert re.fullmatch(r"[0-9a-f]{32}", job.client_token)
    assert (job.state, job.attempts, job.pid, job.estimate_usd) == ("pending", 0, os.getpid(), 1.25)

    op = st.begin_operation(job.id, "create", {"model": "gpt-4.1-mini", "suffix": job.client_token[:8]})
    assert (op.state, op.kind, op.client_token) == ("intent", "create", job.client_token)
    assert st.get_job(job.id).attempts == 1
    # committed before the call: another connection already sees it
    other = sqlite3.connect(st.path)
    assert other.execute("SELECT state FROM operations WHERE id = ?", (op.id,)).fetchone() == ("intent",)
    other.close()

    assert st.mark_sent(op.id).state == "sent"
    with pytest.raises(StoreError):
        st.mark_sent(op.id)
    done = st.finish_operation(op.id, {"id": "ftjob-123", "status": "validating_files"}, provider_job_id="ftjob-123")
    assert done.state == "done" and done.response["id"] == "ftjob-123" and done.finished_at
    job = st.get_job(job.id)
    assert (job.provider_job_id, job.state) == ("ftjob-123", "queued")
    with pytest.raises(StoreError):
        st.finish_operation(op.id, {})

    # never a second create for the same job
    with pytest.raises(DuplicateSubmission, match="already created"):
        st.begin_operation(job.id, "create", {})
    with pytest.raises(DuplicateSubmission):
        st.set_provider_job(job.id, "ftjob-other")
    assert st.set_provider_job(job.id, "ftjob-123").provider_job_id == "ftjob-123"

    st.update_state(job.id, "running")
    job = st.update_state(job.id, "succeeded", fine_tuned_model="ft:gpt-4.1-mini:acme::xyz")
    assert job.finished_at and job.fine_tuned_model == "ft:gpt-4.1-mini:acme::xyz" and job.is_final
    with pytest.raises(StoreError, match="already succeeded"):
        st.update_state(job.id, "running")
    assert st.update_state(job.id, "running", force=True).finished_at is None
    with pytest.raises(ValueError):
        st.update_state(job.id, "exploded")
    with pytest.raises(TypeError):
        st.update_state(job.id, "running", pid=1)
    assert [o.id for o in st.operations(job.id)] == [op.id]


def test_an_ambiguous_create_blocks_a_resend_until_reconciled(st):
    job = st.new_job("together", "{}")
    op = st.begin_operation(job.id, "create", {"x": 1})
    st.mark_sent(op.id)
    failed = st.fail_operation(op.id, TimeoutError("read timed out"), ambiguous=True)
    assert failed.state == "unknown" and "TimeoutError" in failed.error and failed.finished_at is None
    assert st.get_job(job.id).state == "submit_unknown"
    with pytest.raises(DuplicateSubmission, match="unknown"):
        st.begin_operation(job.id, "create", {"x": 1})

    # reconciliation found nothing at the provider: settle it, then a resend is allowed
    st.fail_operation(op.id, "not found at the provider by client token", ambiguous=False)
    assert st.get_job(job.id).state == "pending"
    op2 = st.begin_operation(job.id, "create", {"x": 1})
    assert st.get_job(job.id).attempts == 2 and op2.client_token == job.client_token
    # reconciliation of an unknown create that did happen
    st.fail_operation(op2.id, "connection reset", ambiguous=True)
    st.finish_operation(op2.id, {"id": "ft-9"}, provider_job_id="ft-9")
    job = st.get_job(job.id)
    assert (job.state, job.provider_job_id, job.error) == ("queued", "ft-9", None)


def test_an_open_intent_blocks_a_second_create(st):
    job = st.new_job("openai", "{}")
    st.begin_operation(job.id, "create", {})
    with pytest.raises(DuplicateSubmission, match="intent"):
        st.begin_operation(job.id, "create", {})
    with pytest.raises(ValueError):
        st.begin_operation(job.id, "explode", {})
    with pytest.raises(ValueError):
        st.begin_operation(None, "create", {})


def test_secrets_never_reach_the_store(st, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", "mistral0secret0value0123")
    job = st.new_job("openai", {"note": "key " + SECRET})
    op = st.begin_operation(
        job.id,
        "create",
        {"headers": {"Authorization": f"Bearer {SECRET}", "x-api-key": "abc"}, "body": "k=mistral0secret0value0123"},
    )
    st.fail_operation(op.id, RuntimeError(f"401 for key {SECRET}"), ambiguous=False)
    op2 = st.begin_operation(job.id, "create", {})
    st.finish_operation(op2.id, {"echo": SECRET}, provider_job_id="ft-1")
    st.update_state(job.id, "failed", error=f"Authorization: Bearer {SECRET}")
    st.add_events(job.id, [{"id": "e1", "message": f"using {SECRET}", "data": {"api_key": "zzz-secret-zzz"}}])
    dump = "\n".join(st._conn.iterdump())
    for secret in (SECRET, "mistral0secret0value0123", "zzz-secret-zzz"):
        assert secret not in dump
    assert "[REDACTED]" in dump
    assert st.get_operation(op.id).request["headers"]["Authorization"] == "[REDACTED]"


# ------------------------------------------------------------------------------ events, lookup, uploads


def test_events_are_idempotent_on_the_provider_event_id(st):
    job = st.new_job("openai", "{}")
    evs = [
        {"id": "ev-1", "created_at": 1700000000, "message": "queued"},
        {"id": "ev-2", "created_at": 1700000060, "level": "info", "message": "step 1/10", "data": {"step": 1}},
        {"id": "ev-3", "created_at": "2023-11-14T22:15:00+00:00", "level": "warning", "message": "slow"},
    ]
    assert st.add_events(job.id, evs, cursor="ev-3") == 3
    assert st.add_events(job.id, evs[1:] + [{"id": "ev-4", "message": "done"}], cursor="ev-4") == 1
    assert st.add_events(job.id, evs) == 0
    got = st.list_events(job.id)
    assert [e.provider_event_id for e in got] == ["ev-1", "ev-2", "ev-3", "ev-4"]
    assert got[0].created_at.startswith("2023-11-14T22:13:20")
    assert got[1].data == {"step": 1}
    assert st.get_job(job.id).last_event_cursor == "ev-4"
    # events without an id are deduplicated by content
    anon = [{"created_at": 5, "message": "hello"}]
    assert st.add_events(job.id, anon) == 1 and st.add_events(job.id, anon) == 0
    # objects with attributes (the backends' JobEvent) work as well as mappings
    backends = pytest.importorskip("ftclient.backends")
    ev = backends.JobEvent(id="ev-5", message="obj")
    assert st.add_events(job.id, [ev, ev]) == 1
    after = st.list_events(job.id, after=got[-1].id)
    assert {e.provider_event_id for e in after} >= {"ev-5"}
    with pytest.raises(UsageError):
        st.add_events("ftc-nope", evs)


def _retag(st: Store, job_id: str, new_id: str) -> None:
    st._conn.execute("UPDATE jobs SET id = ? WHERE id = ?", (new_id, job_id))


def test_lookup_by_unique_prefix_suffix_or_provider_id(st):
    ids = ["ftc-20261122-abc123", "ftc-20261122-abd456", "ftc-20261121-zzz999"]
    for new_id in ids:
        _retag(st, st.new_job("openai", "{}").id, new_id)
    st.set_provider_job("ftc-20261121-zzz999", "ftjob-XYZ")
    assert st.get_job("ftc-20261122-abc123").id == ids[0]
    assert st.get_job("ftc-20261122-abc").id == ids[0]
    assert st.get_job("abc").id == ids[0]  # the random part alone
    assert st.get_job("ftc-20261121").id == ids[2]
    assert st.get_job("ftjob-XYZ").id == ids[2]
    with pytest.raises(UsageError) as e:
        st.get_job("ab")
    assert ids[0] in e.value.message and ids[1] in e.value.message and ids[2] not in e.value.message
    assert "more characters" in e.value.hint
    with pytest.raises(UsageError, match="matches 3 jobs"):
        st.get_job("ftc-2026112")
    with pytest.raises(UsageError, match="no job matches"):
        st.get_job("nope")
    with pytest.raises(UsageError):
        st.get_job("%")  # no LIKE wildcards
    with pytest.raises(UsageError):
        st.get_job("")


def test_list_jobs_filters_and_orders(st):
    a = st.new_job("openai", "{}")
    b = st.new_job("together", "{}")
    c = st.new_job("together", "{}")
    st.update_state(c.id, "running")
    assert [j.id for j in st.list_jobs()] == [c.id, b.id, a.id]
    assert [j.id for j in st.list_jobs(backend="together")] == [c.id, b.id]
    assert [j.id for j in st.list_jobs(states=["running"])] == [c.id]
    assert [j.id for j in st.list_jobs(states="pending", limit=1)] == [b.id]
    assert st.list_jobs(states=[]) == []
    with pytest.raises(ValueError):
        st.list_jobs(states=["nope"])


def test_uploads_are_found_by_provider_content_and_purpose(st):
    sha = "ab" * 32
    assert st.find_upload("openai", sha) is None
    up = st.record_upload("openai", sha.upper(), bytes=1234, provider_file_id=None, status="uploading", filename="t.jsonl")
    assert (up.sha256, up.status, up.provider_file_id) == (sha, "uploading", None)
    up2 = st.record_upload("openai", sha, bytes=1234, provider_file_id="file-1")
    assert up2.id == up.id and up2.status == "uploaded" and up2.filename == "t.jsonl"
    assert st.find_upload("openai", sha, "fine-tune").provider_file_id == "file-1"
    assert st.find_upload("openai", sha, "batch") is None
    assert st.find_upload("together", sha) is None
    v = st.set_upload_status(up.id, "processed", verified=True)
    assert v.status == "processed" and v.verified_at
    with pytest.raises(ValueError):
        st.record_upload("openai", sha, bytes=1, provider_file_id="x", status="weird")


# ------------------------------------------------------------------------------ crashes and workers

CRASH = """
import os, signal, sys
from ftclient.store import Store
s = Store(sys.argv[1] if len(sys.argv) > 1 else {db!r})
job = s.new_job("openai", "{{}}")
op = s.begin_operation(job.id, "create", {{"model": "m"}})
if {sent!r}:
    s.mark_sent(op.id)
print(job.id, op.id, flush=True)
# ... the network call would start here; the process is killed instead
{death}
"""


@pytest.mark.parametrize(
    "sent,death",
    [(False, "os._exit(9)"), (True, "os.kill(os.getpid(), signal.SIGKILL)")],
    ids=["intent-exit9", "sent-sigkill"],
)
def test_a_killed_process_leaves_its_operation_for_pending_work(db, sent, death):
    if death.startswith("os.kill") and os.name == "nt":
        pytest.skip("no SIGKILL")
    p = run_py(CRASH.format(db=str(db), sent=sent, death=death), check=False)
    assert p.returncode in (9, -9), p.stderr
    job_id, op_id = p.stdout.split()
    with Store(db) as s:
        work = s.pending_work()
        assert [w.job.id for w in work] == [job_id]
        (w,) = work
        assert [o.id for o in w.operations] == [int(op_id)]
        assert w.operations[0].state == ("sent" if sent else "intent")
        assert "create" in w.reason and ("reconcile" in w.reason or "may or may not" in w.reason)
        # the dead process's create still blocks a blind resend
        with pytest.raises(DuplicateSubmission):
            s.begin_operation(job_id, "create", {})
        # resuming: claim the job, which moves the open operation to us
        assert s.claim(job_id)
        assert s.get_operation(int(op_id)).pid == os.getpid()
        assert s.pending_work() == []


def test_pending_work_skips_live_workers_and_reports_unwatched_jobs(st):
    live = st.new_job("openai", "{}")  # owned by this (live) process
    op = st.begin_operation(live.id, "create", {})
    assert st.pending_work() == []
    st.fail_operation(op.id, "timeout", ambiguous=True)  # we are alive: we will reconcile it
    assert st.pending_work() == []

    done = st.new_job("openai", "{}")
    st.update_state(done.id, "succeeded")
    st.release(done.id)
    assert st.pending_work() == []

    watched_by_nobody = st.new_job("together", "{}")
    st.set_provider_job(watched_by_nobody.id, "ft-1")
    st.update_state(watched_by_nobody.id, "running")
    st.release(watched_by_nobody.id)
    (w,) = st.pending_work()
    assert w.job.id == watched_by_nobody.id and w.operations == [] and "watching" in w.reason
    assert json.loads(json.dumps(w.to_dict()))["job"]["spec"] == {}


def test_an_upload_operation_without_a_job_is_pending_when_its_process_died(db):
    code = f"""
import os
from ftclient.store import Store
s = Store({str(db)!r})
op = s.begin_operation(None, "upload", {{"sha256": "ab" * 32, "bytes": 10}})
s.mark_sent(op.id)
os._exit(9)
"""
    run_py(code, check=False)
    with Store(db) as s:
        (w,) = s.pending_work()
        assert w.job is None and w.operations[0].kind == "upload" and w.job_id is None


def _set_worker(st: Store, job_id: str, **cols) -> None:
    sets = ", ".join(f"{k} = ?" for k in cols)
    st._conn.execute(f"UPDATE jobs SET {sets} WHERE id = ?", (*cols.values(), job_id))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to read process start times")
def test_a_reused_pid_does_not_count_as_the_worker(st):
    job = st.new_job("openai", "{}")
    # pid 1 runs, but it is not the process that started working on the job
    _set_worker(st, job.id, pid=1, worker_start="12345", heartbeat_at=now_iso())
    assert store_mod.pid_running(1)
    assert st.claim(job.id)


def test_a_worker_on_another_host_counts_until_its_heartbeat_is_stale(db):
    with Store(db, stale_after=60) as s:
        job = s.new_job("openai", "{}")
        _set_worker(s, job.id, pid=4242, worker_host="elsewhere", worker_start=None, heartbeat_at=now_iso())
        assert not s.claim(job.id)
        assert s.pending_work() == []
        _set_worker(s, job.id, heartbeat_at=iso_ago(120))
        assert [w.job.id for w in s.pending_work()] == [job.id]
        assert s.claim(job.id)
        assert s.get_job(job.id).worker_host == store_mod.HOST


HOLDER = """
import sys, time
from ftclient.store import Store
s = Store(sys.argv[1])
print(s.claim(sys.argv[2]), flush=True)
sys.stdin.readline()  # hold the claim until told to go
"""


def test_claim_is_refused_while_another_live_process_holds_the_job(db):
    with Store(db) as s:
        job = s.new_job("openai", "{}")
        s.release(job.id)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), job.id], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "True"
        with Store(db) as s:
            assert not s.claim(job.id)
            with pytest.raises(DuplicateSubmission, match="being worked on"):
                s.begin_operation(job.id, "create", {})
            assert s.pending_work() == []
    finally:
        holder.communicate("\n", timeout=30)
    with Store(db) as s:  # the holder exited: its claim is void
        assert [w.job.id for w in s.pending_work()] == [job.id]
        assert s.claim(job.id)
        assert s.claim(job.id)  # re-claiming one's own job is fine


RACER = """
import os, sys, time
from ftclient.store import Store
db, job_id, go = sys.argv[1:4]
s = Store(db)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.0005)
won = s.claim(job_id)
print(won, flush=True)
time.sleep(1.0)  # stay alive, so the loser cannot take over a dead winner's claim
"""


def test_of_two_processes_claiming_one_job_exactly_one_wins(db, tmp_path):
    with Store(db) as s:
        job = s.new_job("openai", "{}")
        s.release(job.id)
    for round_ in range(2):  # the second round takes over from the first round's dead winner
        go = tmp_path / f"go{round_}"
        procs = [
            subprocess.Popen([sys.executable, "-c", RACER, str(db), job.id, str(go)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        assert [p.stdout.readline().strip() for p in procs] == ["ready", "ready"]
        go.touch()
        results = [p.communicate(timeout=60) for p in procs]
        assert all(p.returncode == 0 for p in procs), [r[1] for r in results]
        assert sorted(r[0].strip() for r in results) == ["False", "True"]


WRITER = """
import sys, os, time
from ftclient.store import Store
db, go, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
while not os.path.exists(go):
    time.sleep(0.001)
s = Store(db)  # both processes may create and migrate the store at once
for i in range(n):
    job = s.new_job("together", {"i": i, "pid": os.getpid()})
    s.add_events(job.id, [{"id": f"e{i}", "message": "m"}], cursor=f"e{i}")
    op = s.begin_operation(job.id, "create", {"i": i})
    s.mark_sent(op.id)
    s.finish_operation(op.id, {"id": f"ft-{os.getpid()}-{i}"}, provider_job_id=f"ft-{os.getpid()}-{i}")
    s.update_state(job.id, "running")
    s.heartbeat()
print("ok", flush=True)
"""


def test_two_processes_write_concurrently_without_lock_errors(db, tmp_path):
    n = 150  # x 7 write transactions each
    go = tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(go), str(n)], cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    time.sleep(0.5)
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0 and out.strip() == "ok", err
        assert "locked" not in err
    with Store(db) as s:
        assert s.schema_version == len(MIGRATIONS)
        jobs = s.list_jobs(limit=None)
        assert len(jobs) == 2 * n and all(j.state == "running" and j.provider_job_id for j in jobs)
        assert s._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 2 * n
        assert s._conn.execute("SELECT COUNT(*) FROM operations WHERE state = 'done'").fetchone()[0] == 2 * n
        assert len({j.id for j in jobs}) == 2 * n


def test_progress_is_kept_in_the_store(st):
    from ftclient.backends import JobState, JobStatus
    from ftclient.jobs._watch import apply_status

    job = st.new_job("openai", {"name": "x"}, model="gpt-4.1-mini")
    job = st.update_state(job.id, "running", provider_job_id="ftjob-1")
    status = JobStatus(JobState.RUNNING, step=40, total_steps=120, loss=0.731, trained_tokens=5120,
                       cost_so_far_usd=0.02)
    job = apply_status(st, job, status, None)
    again = st.get_job(job.id)
    assert (again.step, again.total_steps, again.loss, again.trained_tokens, again.cost_so_far_usd) == \
        (40, 120, 0.731, 5120, 0.02)
    # A later status with less information keeps what was known.
    apply_status(st, again, JobStatus(JobState.RUNNING, step=41), None)
    latest = st.get_job(job.id)
    assert latest.step == 41 and latest.loss == 0.731
