"""Real ``ftc`` processes: SIGTERM stops a watch like Ctrl-C (same message, same resume
hint, exit 130); an unknown --backend is a usage error before anything else; parallel
submissions of the same content upload it once (against the OpenAI emulator)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_backend import network_calls, write_spec
from ftclient.store import Store
from test_crash_resume import DRIVER, _popen, _run

EXE = Path(sys.executable).with_name("ftc")
FTC = [str(EXE)] if EXE.exists() else [sys.executable, "-m", "ftclient"]


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "FTC_HOME": str(tmp_path / "home"), "FAKE_PROVIDER_STATE": str(tmp_path / "provider.json")}


@pytest.fixture
def driver(tmp_path):
    p = tmp_path / "driver.py"
    p.write_text(DRIVER.format(tests=str(Path(__file__).resolve().parent)))
    return p


def _statuses(env) -> int:
    return len([c for c in network_calls(env["FAKE_PROVIDER_STATE"]) if c["call"] == "status"])


def _stop_after_polls(proc, env, sig, polls=3):
    deadline = time.monotonic() + 60
    while _statuses(env) < polls:
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.02)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, " ".join(err.split())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_stops_jobs_watch_like_ctrl_c(tmp_path, env, driver, sig):
    spec = write_spec(tmp_path / "job")
    job_id = _run(driver, env, "cli", {}, "train", spec, "--backend", "fake", "--yes", "--detach").strip()
    proc = _popen(driver, env, "cli", {"status_delay": 0.05, "steps": 1000}, "jobs", "watch", job_id)
    rc, _, err = _stop_after_polls(proc, env, sig)
    assert rc == 130, err
    assert "Traceback" not in err
    assert f"stopped watching {job_id}; the job keeps running at fake" in err
    assert f"Watch it again with `ftc jobs watch {job_id}`" in err
    with Store(Path(env["FTC_HOME"]) / "ftc.db") as st:
        assert not st.get_job(job_id).is_final
        assert [w.job_id for w in st.pending_work()] == [job_id]  # released, for `ftc jobs resume`


def test_sigterm_stops_the_watch_of_ftc_train_like_ctrl_c(tmp_path, env, driver):
    spec = write_spec(tmp_path / "job")
    proc = _popen(driver, env, "cli", {"status_delay": 0.05, "steps": 1000}, "train", spec, "--backend", "fake",
                  "--yes")
    rc, _, err = _stop_after_polls(proc, env, signal.SIGTERM)
    assert rc == 130, err
    assert "Traceback" not in err and "the job keeps running at fake" in err and "Watch it again with `ftc jobs watch" in err
    with Store(Path(env["FTC_HOME"]) / "ftc.db") as st:
        (job,) = st.list_jobs()
        assert job.provider_job_id and not job.is_final


def test_an_unknown_backend_is_a_usage_error_before_anything_else(tmp_path):
    spec = write_spec(tmp_path / "job")
    home = tmp_path / "home"
    # no --yes and no terminal: the backend is still what is wrong, and said first
    p = subprocess.run(FTC + ["train", str(spec), "--backend", "opnai"], capture_output=True, text=True,
                       env={**os.environ, "FTC_HOME": str(home)}, stdin=subprocess.DEVNULL, timeout=120)
    err = " ".join(p.stderr.split())
    assert p.returncode == 2, err
    assert "unknown backend 'opnai'" in err and "Did you mean 'openai'?" in err
    assert "openai" in err and "together" in err and "local" in err  # the known ones
    assert "confirmation" not in err and "Traceback" not in err
    p = subprocess.run(FTC + ["train", str(spec), "--backend", "nosuch", "--yes"], capture_output=True, text=True,
                       env={**os.environ, "FTC_HOME": str(home)}, stdin=subprocess.DEVNULL, timeout=120)
    err = " ".join(p.stderr.split())
    assert p.returncode == 2 and "unknown backend 'nosuch'" in err and "Available: " in err, err
    assert not home.exists() or not any(home.iterdir())  # nothing was recorded


# --------------------------------------------------------------------------- parallel uploads


def _content(d: Path, tag: str) -> Path:
    d.mkdir()
    rows = [{"messages": [{"role": "user", "content": f"{tag}: I lost my card number {i}"},
                          {"role": "assistant", "content": "card_lost"}]} for i in range(12)]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "job.yaml").write_text("name: par\ndata:\n  train: train.jsonl\nopenai:\n  model: gpt-4.1-mini-2025-04-14\n")
    return d / "job.yaml"


def test_parallel_submits_upload_each_content_once(tmp_path):
    pytest.importorskip("openai")
    from emulator import ProviderEmulator

    specs = [_content(tmp_path / "a", "a"), _content(tmp_path / "b", "b")]
    with ProviderEmulator("openai") as emu:
        env = {**os.environ, **emu.env, "FTC_HOME": str(tmp_path / "home")}
        procs = [subprocess.Popen(FTC + ["train", str(specs[i % 2]), "--backend", "openai", "--yes", "--detach",
                                         "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, stdin=subprocess.DEVNULL) for i in range(12)]
        results = [(p, *p.communicate(timeout=300)) for p in procs]
        for p, _, err in results:
            assert p.returncode == 0, err
            assert "Traceback" not in err
        uploads = emu.requests_to(r"/files$", "POST")
        assert len(uploads) == 2, [u.body for u in uploads]
        assert len(emu.jobs) == 12
        training_files = {j["training_file"] for j in emu.jobs.values()}
        assert len(training_files) == 2
        emu.check_responses()
    with Store(tmp_path / "home" / "ftc.db") as st:
        assert len(st.list_jobs()) == 12


KILLED_UPLOADER = """
import os, signal, sys
from ftclient.store import Store
st = Store(sys.argv[1])
with st.upload_lock("openai", "ab" * 32):
    open(sys.argv[2], "w").close()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_upload_lock_of_a_killed_process_ends_with_it_and_a_live_one_makes_others_wait(tmp_path):
    db = tmp_path / "home" / "ftc.db"
    marker = tmp_path / "holding"
    p = subprocess.run([sys.executable, "-c", KILLED_UPLOADER, str(db), str(marker)], timeout=60)
    assert p.returncode == -signal.SIGKILL and marker.exists()
    waited: list[bool] = []
    with Store(db) as st:
        t0 = time.monotonic()
        with st.upload_lock("openai", "AB" * 32, on_wait=lambda: waited.append(True)):
            pass
        assert waited == [] and time.monotonic() - t0 < 5  # nobody holds it any more
        # a live holder in another process: this one waits (and says so) until it lets go
        holder = subprocess.Popen([sys.executable, "-c", (
            "import sys, time; from ftclient.store import Store\n"
            "with Store(sys.argv[1]).upload_lock('openai', 'ab' * 32):\n"
            "    open(sys.argv[2], 'w').close(); time.sleep(1.5); open(sys.argv[3], 'w').close()\n"),
            str(db), str(tmp_path / "live"), str(tmp_path / "letting_go")])
        try:
            deadline = time.monotonic() + 60
            while not (tmp_path / "live").exists():
                assert time.monotonic() < deadline and holder.poll() is None
                time.sleep(0.01)
            t0 = time.monotonic()
            with st.upload_lock("openai", "ab" * 32, on_wait=lambda: waited.append(True)):
                assert (tmp_path / "letting_go").exists()  # only once the holder was done
            assert waited == [True] and time.monotonic() - t0 > 0.5
            with st.upload_lock("together", "ab" * 32, on_wait=lambda: waited.append(True)):
                pass  # another provider's upload of the same content is not held up
            assert waited == [True]
        finally:
            holder.wait(timeout=60)
