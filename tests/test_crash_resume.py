"""Crash safety with real processes: kill -9 a submission at its worst moments, resume in
another process, and check that the provider holds exactly one job and that it ends
succeeded in the store. Also: two processes resuming one store at once never work on
the same job.

The fake provider (tests/fake_backend.py) keeps its state in a file, so it survives the
processes; each process registers it in-process from a small driver script.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_backend import FakeBackend, network_calls, write_spec
from ftclient.store import Store

TESTS = Path(__file__).resolve().parent

DRIVER = """
import json, os, sys, time
sys.path.insert(0, {tests!r})
from fake_backend import FakeBackend
from ftclient.backends import register_backend
from ftclient import jobs

mode, cfg = sys.argv[1], json.loads(sys.argv[2])
register_backend("fake", lambda **kw: FakeBackend(**{{**cfg, **kw}}))
fast = jobs.PollPolicy(initial=0.01, factor=1.5, max_interval=0.05)
if mode == "train":
    job = jobs.submit(sys.argv[3], "fake")
    final = jobs.watch(job.id, poll=fast)
    print(json.dumps({{"job": job.id, "state": final.state.value}}))
elif mode == "submit":
    for path in sys.argv[3:]:
        print(jobs.submit(path, "fake").id)
elif mode == "cli":
    jobs.DEFAULT_POLL = jobs.PollPolicy(initial=0.05, max_interval=0.1)
    from ftclient.cli.main import main
    main(sys.argv[3:])
elif mode == "resume":
    go = os.environ.get("GO_FILE")
    while go and not os.path.exists(go):
        time.sleep(0.005)
    outs = jobs.resume(poll=fast)
    print(json.dumps([o.to_dict() for o in outs]))
"""


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "home"
    return {**os.environ, "FTC_HOME": str(home), "FAKE_PROVIDER_STATE": str(tmp_path / "provider.json")}


@pytest.fixture
def driver(tmp_path):
    p = tmp_path / "driver.py"
    p.write_text(DRIVER.format(tests=str(TESTS)))
    return p


def _default_sigint() -> None:
    # A test run started in the background (`pytest &` from a script) inherits SIGINT
    # ignored, and so would the child: give it the default, as a terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _popen(driver, env, mode, cfg, *args):
    return subprocess.Popen([sys.executable, str(driver), mode, json.dumps(cfg), *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


def _run(driver, env, mode, cfg, *args, timeout=60):
    p = subprocess.run([sys.executable, str(driver), mode, json.dumps(cfg), *map(str, args)], env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return p.stdout


def _kill_when(proc, marker: Path, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the process ended before {marker.name}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{marker.name} was never reached")
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("point, first_action", [
    ("upload", "submitted"),          # the upload was in flight: the provider has no file, no job
    ("after_create", "reconciled"),   # the create reached the provider; no answer was recorded
    ("watch", "watched"),             # the job runs; its watcher died
])
def test_kill_9_then_resume_gives_exactly_one_job(tmp_path, env, driver, point, first_action):
    spec = write_spec(tmp_path / "job")
    state = Path(env["FAKE_PROVIDER_STATE"])
    proc = _popen(driver, env, "train", {"block_at": point}, spec)
    _kill_when(proc, tmp_path / point)

    with Store(Path(env["FTC_HOME"]) / "ftc.db") as st:
        (work,) = st.pending_work()
        (job,) = st.list_jobs()
        if point == "upload":
            assert [(o.kind, o.state) for o in work.operations] == [("upload", "sent")]
        elif point == "after_create":
            assert [(o.kind, o.state) for o in work.operations] == [("create", "sent")]
            assert job.provider_job_id is None
        else:
            assert work.operations == [] and job.provider_job_id

    outs = json.loads(_run(driver, env, "resume", {}))
    assert [o["action"] for o in outs] == ([first_action, "watched"] if point != "watch" else ["watched"])
    assert outs[-1]["state"] == "succeeded"

    provider = FakeBackend.provider_state(state)
    assert len(provider["jobs"]) == 1
    assert [c["call"] for c in provider["calls"]].count("create") == 1
    assert len(provider["files"]) == 1
    (pid,) = provider["jobs"]
    with Store(Path(env["FTC_HOME"]) / "ftc.db") as st:
        (job,) = st.list_jobs()
        assert job.state == "succeeded" and job.provider_job_id == pid and job.fine_tuned_model
        assert st.pending_work() == []
        assert all(not o.is_open for o in st.operations(job.id))
        if point == "after_create":
            assert any(c["call"] == "find_by_client_token" for c in network_calls(state))


def test_two_processes_resuming_one_store_never_share_a_job(tmp_path, env, driver):
    specs = [write_spec(tmp_path / f"job{i}", name=f"job-{i}") for i in range(4)]
    ids = _run(driver, env, "submit", {}, *specs).split()  # submitted, then the process ended
    assert len(ids) == 4
    go = tmp_path / "go"
    env = {**env, "GO_FILE": str(go)}
    cfg = {"status_delay": 0.02}
    procs = [_popen(driver, env, "resume", cfg) for _ in range(2)]
    time.sleep(1.5)  # both are up and waiting
    go.write_text("")
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    worked = [{o["job_id"] for o in r if o["action"] != "skipped"} for r in results]
    assert not (worked[0] & worked[1]), worked
    assert worked[0] | worked[1] == set(ids)
    for r in results:
        for o in r:
            assert o["action"] in ("watched", "skipped")
            if o["action"] == "skipped":
                assert "is working on it" in o["detail"] or o["detail"].startswith("already")
    provider = FakeBackend.provider_state(env["FAKE_PROVIDER_STATE"])
    assert len(provider["jobs"]) == 4
    with Store(Path(env["FTC_HOME"]) / "ftc.db") as st:
        assert {j.state for j in st.list_jobs()} == {"succeeded"}
        assert st.pending_work() == []


def test_ctrl_c_stops_watching_not_the_job(tmp_path, env, driver):
    spec = write_spec(tmp_path / "job")
    out = _run(driver, env, "cli", {}, "train", spec, "--backend", "fake", "--yes", "--detach")
    job_id = out.strip()
    proc = _popen(driver, env, "cli", {"status_delay": 0.05, "steps": 1000}, "jobs", "watch", job_id)
    deadline = time.monotonic() + 30
    while len([c for c in network_calls(env["FAKE_PROVIDER_STATE"]) if c["call"] == "status"]) < 3:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "keeps running at fake" in err and f"ftc jobs watch {job_id}" in err
    with Store(Path(env["FTC_HOME"]) / "ftc.db") as st:
        job = st.get_job(job_id)
        # Interrupted mid-watch: the job is not final (queued or running, depending on how
        # far the last stored poll got) and is left for `ftc jobs resume`.
        assert job.state in ("queued", "running") and not job.is_final
        assert [w.job_id for w in st.pending_work()] == [job_id]  # for `ftc jobs resume`
