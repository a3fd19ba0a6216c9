"""kill -9 of the real ``ftc`` CLI, talking through the real SDKs to the local emulator.

``ftc train job.yaml --backend openai --yes --json`` runs as a subprocess with the
emulator's environment (``OPENAI_BASE_URL``/``OPENAI_API_KEY``, or Together's) and its own
``FTC_HOME``. The emulator holds one request so that the process is killed (SIGKILL) at a
known moment:

* ``upload``: ``POST /v1/files`` hangs before the emulator stores anything;
* ``create``: ``POST .../jobs`` (``/v1/fine-tunes``) is **performed** -- the job exists at
  the provider -- and its answer held back, so ftc dies without ever learning the job id;
* ``watch``: the job was created and recorded; ftc is killed after its first status poll.

Then the faults are released and ``ftc jobs resume --json`` runs in a new process. From
the emulator's state: exactly one fine-tuning job, one create request, the file stored
once; from the store: the job ``succeeded`` with the provider's fine-tuned model id, and no
operation is left open.

Speed: ``ftc`` has no knob for its poll interval in a subprocess (``jobs.DEFAULT_POLL``,
first wait 5 s). The emulator does the waiting instead: jobs stay put (``advance="manual"``)
while ``ftc train`` runs, and once it is dead they advance by wall clock
(``advance="time"``, a phase per 0.5 ms), so the first poll of the resuming ``ftc`` already
sees the job finished.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from emulator import ProviderEmulator, hang
from ftclient.store import Store

FTC = Path(sys.executable).with_name("ftc")
OA_MODEL = "gpt-4.1-mini-2025-04-14"
TG_MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"

CREATE_PATH = {"openai": "/v1/fine_tuning/jobs", "together": "/v1/fine-tunes"}
UPLOAD_PATH = {"openai": "/v1/files", "together": "/v1/files"}

pytestmark = pytest.mark.skipif(not FTC.exists(), reason="the ftc console script is not installed beside python")


def write_job(d: Path, provider: str) -> Path:
    rows = [{"messages": [{"role": "system", "content": "Route the ticket to one intent."},
                          {"role": "user", "content": f"I lost my card number {i}"},
                          {"role": "assistant", "content": "card_lost"}]} for i in range(12)]
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = OA_MODEL if provider == "openai" else TG_MODEL
    (d / "job.yaml").write_text(f"name: tickets\nbase_model: {model}\ndata:\n  train: train.jsonl\n"
                                "hyperparameters:\n  epochs: 1\n")
    return d / "job.yaml"


def hold_answer(emu: ProviderEmulator, method: str, path: str) -> tuple[threading.Event, threading.Event]:
    """The next ``method path`` request is performed (the job created) and then its answer is
    held until ``release`` is set (or the emulator stops); the connection is then closed
    without an answer. Returns (held, release): ``held`` is set once the action is done.

    (tests/emulator.py has hang() -- held *before* processing -- and drop_after_processing();
    this is hang-after-processing, done by wrapping the instance's ``_respond``, which runs
    after the handler and outside the emulator's lock.)"""
    held, release = threading.Event(), threading.Event()
    original = emu._respond

    def respond(h, req, code, out, headers, spec_op):
        if not held.is_set() and req.method == method and req.path == path and 200 <= code < 300:
            held.set()
            while not (release.is_set() or emu._stopping.is_set()):
                release.wait(0.05)
            h.close_connection = True
            return
        original(h, req, code, out, headers, spec_op)

    emu._respond = respond
    return held, release


def kill_when(proc: subprocess.Popen, ready, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"ftc ended (exit {proc.returncode}) before {what}:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{what} never happened")
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL


def creates(emu: ProviderEmulator) -> list:
    return [r for r in emu.requests if r.method == "POST" and r.path == CREATE_PATH[emu.provider]]


def uploads(emu: ProviderEmulator) -> list:
    return [r for r in emu.requests if r.method == "POST" and r.path == UPLOAD_PATH[emu.provider]]


@pytest.mark.parametrize("provider, point", [
    ("openai", "upload"),
    ("openai", "create"),
    ("openai", "watch"),
    ("together", "create"),
])
def test_kill_9_of_ftc_train_then_resume(tmp_path, provider, point):
    spec = write_job(tmp_path, provider)
    home = tmp_path / "home"
    with ProviderEmulator(provider, advance="manual", seconds_per_phase=0.0005) as emu:
        env = {**os.environ, **emu.env, "FTC_HOME": str(home), "NO_COLOR": "1"}
        env.pop("FTC_DEBUG", None)
        held = release = None
        if point == "upload":
            emu.fail(r"/v1/files$", "POST", [hang()])
            ready = lambda: any(r.fault == "hang" for r in uploads(emu))  # noqa: E731
        elif point == "create":
            held, release = hold_answer(emu, "POST", CREATE_PATH[provider])
            ready = held.is_set
        else:
            job_get = re.compile(r"/v1/fine_tuning/jobs/[^/]+$")
            ready = lambda: any(r.method == "GET" and job_get.search(r.path) for r in emu.requests)  # noqa: E731

        proc = subprocess.Popen([str(FTC), "train", str(spec), "--backend", provider, "--yes", "--json"],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        kill_when(proc, ready, f"the {point} moment")

        # what the dead process left behind
        with Store(home / "ftc.db") as st:
            (job,) = st.list_jobs()
            (work,) = st.pending_work()
            open_ops = [(o.kind, o.state) for o in work.operations]
            if point == "upload":
                assert open_ops == [("upload", "sent")] and not emu.files and not emu.jobs
            elif point == "create":
                assert ("create", "sent") in open_ops and job.provider_job_id is None
                assert len(emu.jobs) == 1  # created at the provider; ftc never heard of it
            else:
                assert open_ops == [] and job.provider_job_id in emu.jobs

        # release the faults; from now on jobs advance by the clock
        emu.clear_faults()
        if release is not None:
            release.set()
        emu.advance_mode = "time"

        r = subprocess.run([str(FTC), "jobs", "resume", "--json"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr[-3000:]
        outcomes = json.loads(r.stdout)["outcomes"]
        first = {"upload": "submitted", "create": "reconciled", "watch": "watched"}[point]
        assert [o["action"] for o in outcomes] == ([first, "watched"] if point != "watch" else ["watched"])
        assert outcomes[-1]["state"] == "succeeded"

        # the provider: one job, one create, the file stored once
        assert len(emu.jobs) == 1 and len(creates(emu)) == 1
        (pid,) = emu.jobs
        assert len(emu.files) == 1
        # upload: the hung upload was never stored, so the resume's upload is the only file.
        # (Had the provider stored it before ftc died, the resume would upload it again --
        # ftc records an upload only once it has the file id -- leaving one unused file:
        # harmless, free, and never a second job.)
        assert len(uploads(emu)) == (2 if point == "upload" else 1)
        if point == "create":
            listing = [q for q in emu.requests if q.method == "GET" and q.path == CREATE_PATH[provider]]
            assert listing, "the resume reconciled by listing the provider's jobs"
        wire = emu.job(pid)
        model = wire["fine_tuned_model"] if provider == "openai" else wire["model_output_name"]
        assert (wire["status"] == "succeeded" if provider == "openai" else wire["status"] == "completed")

        emu.check_responses()

        # the store: succeeded, with the provider's model id; nothing left open
        with Store(home / "ftc.db") as st:
            (job,) = st.list_jobs()
            assert job.state == "succeeded" and job.provider_job_id == pid and job.fine_tuned_model == model
            assert [o.state for o in st.operations(job.id, "create")] == ["done"]
            left = [(o.kind, o.state) for o in st.operations(job.id) if o.is_open]
            pending = st.pending_work()
        assert left == [] and pending == []


FW_MODEL = "accounts/fireworks/models/llama-v3p1-8b-instruct"
FW_CREATE = "/v1/accounts/ftc-test/supervisedFineTuningJobs"


@pytest.mark.parametrize("point", ["upload", "create", "watch"])
def test_kill_9_of_ftc_train_then_resume_fireworks(tmp_path, point):
    """The same for Fireworks, whose job id ftc derives from the client token: reconciling is
    one GET of that id, and the dataset (named after the file's sha256) is created once."""
    pytest.importorskip("fireworks")
    write_job(tmp_path, "together")
    (tmp_path / "job.yaml").write_text(f"name: tickets\nbase_model: {FW_MODEL}\ndata:\n  train: train.jsonl\n"
                                       "hyperparameters:\n  epochs: 1\n")
    spec = tmp_path / "job.yaml"
    home = tmp_path / "home"
    upload = re.compile(r"/datasets/[^/]+:upload$")
    job_get = re.compile(r"/supervisedFineTuningJobs/[^/]+$")
    with ProviderEmulator("fireworks", advance="manual", seconds_per_phase=0.0005) as emu:
        env = {**os.environ, **emu.env, "FTC_HOME": str(home), "NO_COLOR": "1"}
        env.pop("FTC_DEBUG", None)
        release = None
        if point == "upload":
            emu.fail(upload.pattern, "POST", [hang()])
            ready = lambda: any(r.fault == "hang" for r in emu.requests)  # noqa: E731
        elif point == "create":
            held, release = hold_answer(emu, "POST", FW_CREATE)
            ready = held.is_set
        else:
            ready = lambda: any(r.method == "GET" and job_get.search(r.path) for r in emu.requests)  # noqa: E731
        proc = subprocess.Popen([str(FTC), "train", str(spec), "--backend", "fireworks", "--yes", "--json"],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        kill_when(proc, ready, f"the {point} moment")

        with Store(home / "ftc.db") as st:
            (job,) = st.list_jobs()
            (work,) = st.pending_work()
            open_ops = [(o.kind, o.state) for o in work.operations]
            if point == "upload":
                assert open_ops == [("upload", "sent")] and not emu.jobs
            elif point == "create":
                assert ("create", "sent") in open_ops and job.provider_job_id is None and len(emu.jobs) == 1
            else:
                assert open_ops == [] and job.provider_job_id in emu.jobs

        emu.clear_faults()
        if release is not None:
            release.set()
        emu.advance_mode = "time"
        r = subprocess.run([str(FTC), "jobs", "resume", "--json"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr[-3000:]
        outcomes = json.loads(r.stdout)["outcomes"]
        first = {"upload": "submitted", "create": "reconciled", "watch": "watched"}[point]
        assert [o["action"] for o in outcomes] == ([first, "watched"] if point != "watch" else ["watched"])
        assert outcomes[-1]["state"] == "succeeded"

        # one job, one create request, one dataset holding the file
        creates_ = [q for q in emu.requests if q.method == "POST" and q.path == FW_CREATE]
        assert len(emu.jobs) == 1 and len(creates_) == 1 and len(emu.datasets) == 1
        (pid,) = emu.jobs
        (ds,) = emu.datasets.values()
        assert ds["_content"] == (tmp_path / "train.jsonl").read_bytes()
        uploads_ = [q for q in emu.requests if q.method == "POST" and upload.search(q.path)]
        assert len(uploads_) == (2 if point == "upload" else 1)
        if point == "create":
            assert any(q.method == "GET" and q.path == f"{FW_CREATE}/{pid.rsplit('/', 1)[1]}" for q in emu.requests)
        assert emu.job(pid)["state"] == "JOB_STATE_COMPLETED"
        emu.check_responses()

        with Store(home / "ftc.db") as st:
            (job,) = st.list_jobs()
            assert job.state == "succeeded" and job.provider_job_id == pid
            assert job.fine_tuned_model == emu.job(pid)["outputModel"] or job.fine_tuned_model.endswith(
                "/" + emu.job(pid)["outputModel"].rsplit("/", 1)[-1])
            assert [o.state for o in st.operations(job.id, "create")] == ["done"]
            assert [(o.kind, o.state) for o in st.operations(job.id) if o.is_open] == [] and st.pending_work() == []
