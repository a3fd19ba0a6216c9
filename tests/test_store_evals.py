"""The job store's evaluation tables (migration m004): runs, per-example results, lookups."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from ftclient.errors import UsageError
from ftclient.store import MIGRATIONS, EvalRun, Store, migrate, schema_version

SECRET = "sk-proj-" + "Z9" * 20


pytestmark = pytest.mark.usefixtures("ftc_home")  # (st: a store of its own, from conftest)


def put(st, run_id="eval-0123456789ab", **kw):
    args = dict(model_ref="openai:gpt-4o-mini", data_path="data/eval.jsonl", data_sha256="AB" * 32,
                params={"max_tokens": 16, "temperature": 0.0, "max_examples": None})
    args.update(kw)
    return st.put_eval_run(run_id, **args)


def test_m004_is_the_eval_migration_and_an_old_store_upgrades(tmp_path):
    assert "m004_evals" in [fn.__name__ for fn in MIGRATIONS]
    n = [fn.__name__ for fn in MIGRATIONS].index("m004_evals") + 1
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old, isolation_level=None)
    migrate(conn, n - 1)
    assert schema_version(conn) == n - 1
    conn.close()
    s = Store(old)
    assert s.schema_version == len(MIGRATIONS)
    put(s)
    assert s.list_eval_runs()[0].id == "eval-0123456789ab"
    s.close()


def test_put_creates_once_and_returns_the_existing_run(st):
    run = put(st)
    assert isinstance(run, EvalRun)
    assert (run.state, run.summary, run.params["max_tokens"], run.data_sha256) == ("running", None, 16, "ab" * 32)
    again = put(st, model_ref="openai:other", params={"max_tokens": 99})
    assert again == run  # unchanged
    d = run.to_dict()
    assert set(d) == {"id", "model_ref", "data_path", "data_sha256", "params", "state", "created_at", "updated_at",
                      "summary", "pid", "worker_host", "worker_start", "sessions"}
    assert run.pid == os.getpid()


def test_results_are_upserted_and_keyed_by_example(st):
    put(st)
    st.save_eval_result("eval-0123456789ab", idx=1, example_key="k1", output=None, latency_s=None, tokens_in=None,
                        tokens_out=None, error="HTTP 500 internal server error")
    st.save_eval_result("eval-0123456789ab", idx=0, example_key="k0", output="lost_card", latency_s=0.25,
                        tokens_in=30, tokens_out=3)
    res = st.eval_results("eval-0123456789ab")
    assert list(res) == ["k0", "k1"]  # example order
    assert res["k0"].ok and res["k0"].output == "lost_card" and res["k0"].tokens_in == 30
    assert not res["k1"].ok and "HTTP 500" in res["k1"].error
    # a retry that succeeds replaces the failure
    st.save_eval_result("eval-0123456789ab", idx=1, example_key="k1", output="top_up", latency_s=0.5,
                        tokens_in=31, tokens_out=2)
    res = st.eval_results("eval-0123456789ab")
    assert res["k1"].ok and res["k1"].output == "top_up" and res["k1"].error is None
    assert st.eval_results("eval-nothing") == {}


def test_secrets_never_reach_the_eval_tables(st, tmp_path):
    put(st, params={"note": f"key {SECRET}"})
    st.save_eval_result("eval-0123456789ab", idx=0, example_key="k", output=f"here: {SECRET}", latency_s=1,
                        tokens_in=1, tokens_out=1)
    st.save_eval_result("eval-0123456789ab", idx=1, example_key="j", output=None, latency_s=None, tokens_in=None,
                        tokens_out=None, error=RuntimeError(f"Authorization: Bearer {SECRET}"))
    st.finish_eval_run("eval-0123456789ab", {"notes": [SECRET]})
    st.close()
    raw = (tmp_path / "ftc.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("ftc.db*") if p.name != "ftc.db")
    assert SECRET.encode() not in raw and SECRET[:20].encode() not in raw


def test_finish_stores_summary_and_state(st):
    put(st)
    run = st.finish_eval_run("eval-0123456789ab", {"metrics": {"score": 0.75}})
    assert run.state == "complete" and run.summary == {"metrics": {"score": 0.75}}
    run = st.finish_eval_run("eval-0123456789ab", {"metrics": {"score": 0.5}}, state="interrupted")
    assert run.state == "interrupted" and run.summary["metrics"]["score"] == 0.5
    with pytest.raises(ValueError):
        st.finish_eval_run("eval-0123456789ab", {}, state="done")
    with pytest.raises(UsageError):
        st.finish_eval_run("eval-missing", {})


def test_restart_marks_running_and_fresh_forgets(st):
    put(st)
    st.save_eval_result("eval-0123456789ab", idx=0, example_key="k", output="x", latency_s=1, tokens_in=1, tokens_out=1)
    st.finish_eval_run("eval-0123456789ab", {"x": 1}, state="interrupted")
    run = st.restart_eval_run("eval-0123456789ab")
    assert run.state == "running" and run.summary == {"x": 1} and len(st.eval_results(run.id)) == 1
    run = st.restart_eval_run("eval-0123456789ab", fresh=True)
    assert run.summary is None and st.eval_results(run.id) == {}


def test_get_by_id_or_unique_prefix(st):
    put(st, "eval-aaaa11112222")
    put(st, "eval-aaaa33334444")
    put(st, "eval-bbbb55556666")
    assert st.get_eval_run("eval-bbbb55556666").id == "eval-bbbb55556666"
    assert st.get_eval_run("eval-bb").id == "eval-bbbb55556666"
    assert st.get_eval_run("bbbb").id == "eval-bbbb55556666"  # without the eval- prefix
    with pytest.raises(UsageError) as ei:
        st.get_eval_run("aaaa")
    assert "matches 2 evaluation runs" in ei.value.message and "more characters" in ei.value.hint
    with pytest.raises(UsageError) as ei:
        st.get_eval_run("eval-bbbb55556667")
    assert "no evaluation run matches" in ei.value.message
    assert "eval-bbbb55556666" in ei.value.hint and "ftc eval list" in ei.value.hint
    with pytest.raises(UsageError):
        st.get_eval_run("  ")


def test_list_newest_first(st):
    for i in range(3):
        put(st, f"eval-{i:012d}")
    ids = [r.id for r in st.list_eval_runs()]
    assert ids == ["eval-000000000002", "eval-000000000001", "eval-000000000000"]
    assert [r.id for r in st.list_eval_runs(limit=2)] == ids[:2]


def _claim_as(st, run_id, pid):
    """Record ``pid`` (a process of this host) as the one running ``run_id``."""
    from ftclient.store import HOST, process_start

    with st._write() as c:
        c.execute("UPDATE eval_runs SET state = 'running', pid = ?, worker_host = ?, worker_start = ? WHERE id = ?",
                  (pid, HOST, process_start(pid), run_id))


def test_a_run_whose_process_died_reads_as_interrupted_and_resumes(st):
    put(st)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _claim_as(st, "eval-0123456789ab", child.pid)
        assert st.get_eval_run("eval-0123456789ab").state == "running"  # alive: running
        with pytest.raises(UsageError) as ei:  # and nobody else may send its examples meanwhile
            st.restart_eval_run("eval-0123456789ab")
        assert f"pid {child.pid}" in ei.value.message and "resumes" in ei.value.hint
    finally:
        child.kill()
        child.wait()
    assert st.get_eval_run("eval-0123456789ab").state == "interrupted"  # killed: interrupted
    assert [r.state for r in st.list_eval_runs()] == ["interrupted"]
    run = st.restart_eval_run("eval-0123456789ab")  # running it again takes it over
    assert (run.state, run.pid) == ("running", os.getpid())


def test_a_run_from_before_m005_without_a_worker_reads_as_interrupted(st):
    put(st)
    with st._write() as c:
        c.execute("UPDATE eval_runs SET pid = NULL, worker_host = NULL, worker_start = NULL")
    assert st.get_eval_run("eval-0123456789ab").state == "interrupted"
    assert st.restart_eval_run("eval-0123456789ab").state == "running"
