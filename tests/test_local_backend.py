"""LocalBackend: a local training run as a tracked job (real worker processes, tiny model).

Each test starts real ``python -m ftclient.local_backend.worker`` processes on a random
2-layer model (tests/tiny_model.py): submit -> watch -> chat, kill -9 of the worker and
resume from its checkpoint, cancel, and a run that fails.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_model import local_backend_env, no_threads_left_behind, tiny  # noqa: F401  (fixtures)
from tiny_model import dpo_records, sft_records, wait_for, write_jsonl  # noqa: E402

from ftclient import jobs  # noqa: E402
from ftclient.backends import JobState, get_backend  # noqa: E402
from ftclient.local_backend import worker as w  # noqa: E402
from ftclient.local_backend.backend import LocalBackend  # noqa: E402
from ftclient.paths import job_dir  # noqa: E402
from ftclient.spec import parse_spec  # noqa: E402

# raised inside transformers/TRL/PEFT, not by ftc
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
FAST = jobs.PollPolicy(initial=0.3, factor=1.0, max_interval=0.3, events_every=1, timeout=120)


@pytest.fixture(autouse=True)
def _env(local_backend_env):
    yield


def make_spec(tmp_path: Path, model: Path, *, n=8, epochs=1, batch_size=4, checkpoint_every=50, records=None):
    write_jsonl(tmp_path / "train.jsonl", records if records is not None else sft_records(n))
    data = {
        "name": "t", "base_model": str(model), "method": "sft", "adapter": "lora",
        "data": {"train": "train.jsonl"},
        "hyperparameters": {"epochs": epochs, "batch_size": batch_size, "max_seq_len": 128, "seed": 7,
                            "lora": {"r": 4, "alpha": 8, "dropout": 0.0}},
        "local": {"device": "cpu", "packing": False, "checkpoint_every": checkpoint_every},
    }
    return parse_spec(data, base_dir=tmp_path)


def _dir(job) -> Path:
    return job_dir(job.id)


_wait = functools.partial(wait_for, timeout=90.0)


def _progress(job) -> dict:
    return w.read_json(_dir(job) / w.PROGRESS_FILE) or {}


def _events(job) -> list[dict]:
    p = _dir(job) / w.EVENTS_FILE
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.exists() else []


def _alive(pid: int) -> bool:
    from ftclient.store import pid_running

    return pid_running(pid) is True


def test_submit_watch_chat(tmp_path, tiny):
    spec = make_spec(tmp_path, tiny, n=8, epochs=2)
    job = jobs.submit(spec, "local")
    assert job.provider_job_id == f"local-{job.id}" and job.state == "queued"
    d = _dir(job)
    assert json.loads((d / w.SPEC_FILE).read_text())["base_model"] == str(tiny)
    info = w.read_json(d / w.WORKER_FILE)
    assert info["pid"] > 0 and info["restarts"] == 0
    [op] = [o for o in _ops(job) if o.kind == "create"]
    assert op.state == "done"

    final = jobs.watch(job.id, poll=FAST)
    assert final.state == JobState.SUCCEEDED, (final.error, (d / w.LOG_FILE).read_text()[-2000:])
    stored = jobs.show(job.id, refresh_status=False).job
    assert stored.state == "succeeded" and stored.step == stored.total_steps == 4
    adapter = Path(stored.fine_tuned_model)
    assert adapter.is_dir() and (adapter / "adapter_config.json").is_file()
    res = w.read_json(d / w.RESULT_FILE)
    assert res["adapter_dir"] == str(adapter) and res["final_loss"] > 0 and res["wall_s"] > 0
    prog = _progress(job)
    assert prog["state"] == "succeeded" and prog["step"] == 4 and prog["started_at"] and prog["updated_at"]
    msgs = [e.message for e in jobs.events(job.id)]
    assert any(m.startswith("training started") for m in msgs) and any("succeeded" in m for m in msgs)
    assert any(m.startswith("step 4/4: loss") for m in msgs)

    be = get_backend("local")
    assert be.result(job.provider_job_id) == str(adapter)
    evs = be.events(job.provider_job_id)
    assert be.events(job.provider_job_id, after=evs[1].id) == evs[2:]

    reply = jobs.chat(job.id, "hi", max_tokens=8)
    assert isinstance(reply.text, str) and reply.backend == "local" and reply.model == str(adapter)


def test_the_worker_ignores_a_source_checkout_in_the_current_directory(tmp_path, tiny, monkeypatch):
    # ftc started from a clone's root: its ftclient/ folder (the core alone) must not shadow
    # the installed package in the worker (``python -m`` puts the current directory first).
    checkout = tmp_path / "checkout"
    (checkout / "ftclient").mkdir(parents=True)
    (checkout / "ftclient" / "__init__.py").write_text('"""the core, without its backends"""\n')
    monkeypatch.chdir(checkout)
    spec = make_spec(tmp_path, tiny, n=4, epochs=1)
    job = jobs.submit(spec, "local")
    final = jobs.watch(job.id, poll=FAST)
    log = (_dir(job) / w.LOG_FILE).read_text()
    assert final.state == JobState.SUCCEEDED, (final.error, log[-2000:])
    assert "No module named" not in log
    cmd = w.module_command(sys.executable, "x")
    assert cmd[:4] == [sys.executable, "-P", "-m", w.MODULE] and w.child_env({})["PYTHONSAFEPATH"] == "1"


def test_the_worker_command_does_not_depend_on_the_current_directory(tmp_path):
    # A non-editable install's layout (the core with its backends inside it) on the path,
    # started from a source checkout whose ftclient/ folder is the core alone.
    import shutil

    repo = Path(__file__).resolve().parents[1]
    site = tmp_path / "site" / "ftclient"
    shutil.copytree(repo / "ftclient", site, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(repo / "local_backend", site / "local_backend", ignore=shutil.ignore_patterns("__pycache__"))
    checkout = tmp_path / "checkout"
    shutil.copytree(repo / "ftclient", checkout / "ftclient", ignore=shutil.ignore_patterns("__pycache__", "resources"))
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(site.parent)}

    def run(cmd, env):  # -S: no site-packages, so only the copied layout can be found
        import subprocess

        return subprocess.run([cmd[0], "-S", *cmd[1:]], cwd=checkout, env=env,
                              capture_output=True, text=True, timeout=60)

    plain = run([sys.executable, "-m", w.MODULE], env)  # what ftc used to start: shadowed
    assert "No module named 'ftclient.local_backend'" in plain.stderr
    for cmd, child_env in ((w.module_command(sys.executable), env),  # -P alone
                           ([sys.executable, "-m", w.MODULE], w.child_env(env))):  # as accelerate's ranks start
        ours = run(cmd, child_env)
        assert ours.returncode == 2 and "usage: python -m ftclient.local_backend.worker" in ours.stderr, ours.stderr


def _ops(job):
    from ftclient.store import Store

    with Store() as st:
        return st.operations(job.id)


def test_kill9_worker_then_resume_continues_from_checkpoint(tmp_path, tiny):
    # 24 records / batch 1 * 2 epochs = 48 steps (~1 s here); a checkpoint every 4 steps
    spec = make_spec(tmp_path, tiny, n=24, epochs=2, batch_size=1, checkpoint_every=4)
    job = jobs.submit(spec, "local")
    d = _dir(job)
    pid = w.read_json(d / w.WORKER_FILE)["pid"]

    def ckpt_passed():
        s = w.last_checkpoint_step(d / w.OUTPUT_DIR)
        return s is not None and (_progress(job).get("step") or 0) > s and s

    _wait(ckpt_passed, what="a checkpoint")
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: not _alive(pid) or _reap_child(pid), timeout=10, what="the worker to die")
    killed_at = _progress(job)["step"]
    assert killed_at < 48 and _progress(job)["state"] == "running"

    # (this process submitted the job, so it still counts as the job's live worker: name the job)
    outcomes = jobs.resume(job.id, poll=FAST)
    assert [(o.job_id, o.action, o.state) for o in outcomes] == [(job.id, "watched", "succeeded")], \
        (d / w.LOG_FILE).read_text()[-3000:]
    evs = _events(job)
    [restart] = [e for e in evs if e["data"].get("type") == "restarted"]
    n = restart["data"]["checkpoint_step"]
    assert n is not None and n >= 4 and restart["message"] == f"worker restarted from checkpoint {n}"
    [resumed] = [e for e in evs if e["data"].get("type") == "resumed"]
    assert resumed["data"]["step"] == n  # the global step continues from the checkpoint, not from 0
    assert [e["data"]["type"] for e in evs].count("started") == 1
    steps_after = [e["data"]["step"] for e in evs[evs.index(resumed):] if e["data"].get("type") == "metrics"]
    assert steps_after[0] == n + 1 and steps_after[-1] == 48
    new = w.read_json(d / w.WORKER_FILE)
    assert new["pid"] != pid and new["restarts"] == 1
    assert jobs.show(job.id, refresh_status=False).job.state == "succeeded"
    cps = get_backend("local").checkpoints(job.provider_job_id)
    assert cps and cps[-1].step == 48 and all(Path(c.model_ref).is_dir() for c in cps)


def _reap_child(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True


def test_cancel_stops_the_worker(tmp_path, tiny):
    spec = make_spec(tmp_path, tiny, n=24, epochs=5, batch_size=1, checkpoint_every=1000)
    job = jobs.submit(spec, "local")
    d = _dir(job)
    pid = w.read_json(d / w.WORKER_FILE)["pid"]
    _wait(lambda: (_progress(job).get("step") or 0) >= 1, what="training to start")
    done = jobs.cancel(job.id)
    assert done.state == "cancelled"
    _reap_child(pid)
    assert not _alive(pid)
    prog = _progress(job)
    assert prog["state"] == "cancelled" and prog["step"] < 120
    assert w.last_checkpoint_step(d / w.OUTPUT_DIR) == prog["step"]  # saved where it stopped
    s = get_backend("local").status(job.provider_job_id)  # a cancelled job is never restarted
    assert s.state == JobState.CANCELLED and not (d / w.RESULT_FILE).exists()
    assert [o.action for o in jobs.resume(job.id, poll=FAST)] == ["skipped"]  # ... unless asked to

    # --reopen: it continues from the checkpoint where it stopped, to the end
    stopped = prog["step"]
    outcomes = jobs.resume(job.id, poll=FAST, reopen=True)
    assert [(o.action, o.state) for o in outcomes][-1] == ("watched", "succeeded"), (d / w.LOG_FILE).read_text()[-3000:]
    assert outcomes[0].action == "reopened"
    evs = _events(job)
    [reopened] = [e for e in evs if e["data"].get("type") == "reopened"]
    assert reopened["data"]["checkpoint_step"] == stopped
    [resumed] = [e for e in evs if e["data"].get("type") == "resumed"]
    assert resumed["data"]["step"] == stopped
    assert _progress(job)["step"] == 120 and (d / w.RESULT_FILE).exists()
    assert w.read_json(d / w.WORKER_FILE)["restarts"] == 0  # a reopen is not counted as a crash
    stored = jobs.show(job.id, refresh_status=False).job
    assert stored.state == "succeeded" and stored.finished_at and Path(stored.fine_tuned_model).is_dir()
    with pytest.raises(Exception, match="only a cancelled job"):
        get_backend("local").reopen(job.provider_job_id)


def test_a_job_cancelled_before_its_first_checkpoint_is_not_reopened(tmp_path, tiny):
    spec = make_spec(tmp_path, tiny, n=24, epochs=5, batch_size=1, checkpoint_every=1000)
    job = jobs.submit(spec, "local")
    d = _dir(job)
    pid = w.read_json(d / w.WORKER_FILE)["pid"]
    jobs.cancel(job.id)  # at once: before training started, so no checkpoint
    _reap_child(pid)
    if w.last_checkpoint_step(d / w.OUTPUT_DIR) is not None:
        pytest.skip("the worker reached a step before the cancel arrived")
    (o,) = jobs.resume(job.id, poll=FAST, reopen=True)
    assert o.action == "error" and "before its first checkpoint" in o.detail and o.state == "cancelled"


def test_failing_run_reports_the_error(tmp_path, tiny):
    from ftclient.store import Store

    # preference records for an SFT job: passes nothing the core would accept, so submit it directly
    spec = make_spec(tmp_path, tiny, records=dpo_records(4))
    be = LocalBackend()
    with Store() as st:
        job = st.new_job("local", spec.model_dump(mode="json"), model=str(tiny))
        res = be.submit(spec, job=job, store=st)
        assert res.provider_job_id == f"local-{job.id}"
        assert st.get_job(job.id).provider_job_id == res.provider_job_id
        final = jobs.watch(job.id, store=st, backend=be, poll=FAST)
        assert final.state == JobState.FAILED
        assert "a DPO preference record" in final.error and "method sft" in final.error
        assert st.get_job(job.id).error and "DPO preference record" in st.get_job(job.id).error
    assert be.result(res.provider_job_id) is None
    assert any(e.level == "error" for e in be.events(res.provider_job_id))


def test_preflight_and_estimate(tmp_path, tiny):
    be = LocalBackend()
    spec = make_spec(tmp_path, tiny)
    warns = be.preflight(spec)
    assert warns[0].startswith("training on CPU")
    rows = dict(be.describe_run(spec))
    assert rows["device"] == "cpu, fp32" and rows["batch"].endswith(f"= {spec.hyperparameters.batch_size}")
    assert "nothing is uploaded" in rows["data"]
    est = be.estimate(spec)
    assert est.cost_usd == 0.0 and est.examples == 8 and est.billed_tokens > 0
    q = parse_spec({**spec.model_dump(mode="json"), "adapter": "qlora"})
    from ftclient.errors import ConfigError

    with pytest.raises(ConfigError, match="QLoRA needs a CUDA GPU"):
        be.preflight(q)
    assert be.find_by_client_token("nope") is None


def test_the_estimate_is_a_local_cost_estimate_timed_by_a_calibration(tmp_path, tiny):
    """The estimate is a ftclient.LocalCostEstimate: unknown time and cost at a price without a
    calibration; with one cached for this model, data and settings, its time and hours x price."""
    from ftclient import CostEstimate, LocalCostEstimate
    from ftclient.local_backend import calibrate as cal

    price = 3.0
    spec = make_spec(tmp_path, tiny, n=8, epochs=2)
    spec = spec.model_copy(update={"local": spec.local.model_copy(update={"gpu_price_per_hour": price})})
    be = LocalBackend()
    before = be.estimate(spec)
    assert isinstance(before, LocalCostEstimate) and isinstance(before, CostEstimate)
    assert before.duration_s is None and before.cost_usd is None and before.calibration is None
    assert before.to_dict()["cost_usd"] is None and "unknown" in before.time_basis

    # a calibration of this model, data and settings, as `ftc cost estimate --calibrate` caches it
    counts = cal.offline_counts(spec)
    hp = spec.hyperparameters
    settings = cal.Settings(method="sft", adapter="lora", base_model=str(tiny), device="cpu", precision="fp32",
                            model_dtype="float32", batch_size=hp.batch_size,
                            gradient_accumulation_steps=spec.local.gradient_accumulation_steps, epochs=hp.epochs,
                            max_seq_len=hp.max_seq_len, packing=False, gradient_checkpointing=False,
                            save_steps=spec.local.checkpoint_every)
    measured = cal.Measurements(imports_s=2.0, imports_measured=True, model_load_s=1.0, trainer_build_s=0.5,
                                trainer_start_s=0.5, step_seconds=[3.0, 2.0, 2.0], step_tokens=[100, 100, 100],
                                warmup_steps=1, checkpoint_save_s=0.5, eval_s=None, final_save_s=1.0, finish_s=0.1)
    cal.save_calibration(cal.Calibration(
        key=cal.cache_key(spec), created_at="2025-01-02T03:04:05+00:00", model=str(tiny), model_source="folder",
        data=str(spec.data.train), device="cpu", device_name="test CPU", precision="fp32", settings=settings,
        counts=counts, measured=measured, prediction=cal.predict(measured, counts, settings), calibration_steps=3,
        calibration_wall_s=9.0))
    pred = cal.load_cached(spec).prediction

    est = be.estimate(spec)
    assert isinstance(est, LocalCostEstimate)
    assert est.duration_s == pytest.approx(pred.total_s) and est.optimizer_steps == pred.optimizer_steps
    assert est.cost_usd == pytest.approx(round(pred.total_s / 3600 * price, 4)) and est.cost_usd > 0
    assert est.calibration["created_at"] == "2025-01-02T03:04:05+00:00" and "calibrated on this machine" in est.time_basis
    assert est.kind == "self-hosted" and est.model == f"local:{tiny}"
    assert est.epochs == 2 and est.billed_tokens == 2 * est.tokens_per_epoch == 2 * counts.tokens_per_epoch
    d = json.loads(json.dumps(est.to_dict()))
    assert d["cost_usd"] == round(est.cost_usd, 4) and d["duration_s"] == pytest.approx(pred.total_s)
    # the plan's figure is the estimate's cost_usd
    plan = jobs.plan(spec, "local")
    assert plan.estimate_usd == pytest.approx(est.cost_usd)
    assert plan.to_dict()["estimate"]["calibration"]["created_at"] == "2025-01-02T03:04:05+00:00"


def test_train_dry_run_shows_what_the_local_run_does(tmp_path, tiny, ftc):
    """The plan table of a local job: device, batch and checkpoints as rows; no upload, no warning for them."""
    import yaml

    spec = make_spec(tmp_path, tiny, batch_size=2)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json")), encoding="utf-8")
    r = ftc("train", path, "--backend", "local", "--dry-run")
    assert r.code == 0, r.err
    text = " ".join(r.out.replace("│", " ").split())
    assert "nothing is" in text and "to upload" not in text
    assert "cpu, fp32" in text and "every 50 steps" in text and "accumulation" in text
    assert text.count("warning") == 1 and "training on CPU" in text  # the one warning
    assert "tokens trained" in text and "billed tokens" not in text  # a local run bills time, not tokens
    d = ftc("train", path, "--backend", "local", "--dry-run", "--json").json()
    assert d["plan"]["uploads"] == [] and ["device", "cpu, fp32"] in d["plan"]["details"]
