"""ftclient.jobs against a fake backend: budget, dry run, validation, quotes, watch
polling budget, cancel, resume, chat."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from fake_backend import home, prov, spec  # noqa: F401  (fixtures)
from fake_backend import FakeBackend, network_calls, register, write_spec
from ftclient import backends as B
from ftclient import jobs as J
from ftclient.backends import JobEvent, JobState, JobStatus, to_datetime
from ftclient.errors import BudgetExceeded, DataError, UsageError
from ftclient.store import Store


def _store_jobs(home):
    if not (home / "ftc.db").exists():
        return []
    with Store(home / "ftc.db") as st:
        return st.list_jobs()


# --------------------------------------------------------------------------- before anything is sent


def test_budget_exceeded_sends_nothing_and_records_nothing(prov, spec, home):
    register(prov, estimate_usd=12.5)
    with pytest.raises(BudgetExceeded) as e:
        J.submit(spec, "fake", budget=10)
    assert e.value.exit_code == 1 and "$12.50" in e.value.message and "$10.00" in e.value.message
    assert network_calls(prov) == []
    assert _store_jobs(home) == []


@pytest.mark.parametrize("cost,budget,shown", [(0.0142, 0.01, ("$0.0142", "$0.0100")),
                                               (0.01001, 0.01, ("$0.010010", "$0.010000"))])
def test_a_budget_message_never_shows_two_equal_figures(prov, spec, home, cost, budget, shown):
    register(prov, estimate_usd=cost)
    with pytest.raises(BudgetExceeded) as e:
        J.submit(spec, "fake", budget=budget)
    assert all(x in e.value.message for x in shown), e.value.message
    assert network_calls(prov) == [] and _store_jobs(home) == []


def test_the_spec_budget_applies_when_none_is_given(prov, tmp_path, home):
    register(prov, estimate_usd=3.0)
    with pytest.raises(BudgetExceeded):
        J.submit(write_spec(tmp_path / "b", budget=2.5), "fake")
    assert network_calls(prov) == [] and _store_jobs(home) == []
    # an explicit budget wins over the spec's
    job = J.submit(write_spec(tmp_path / "c", budget=2.5), "fake", budget=5)
    assert job.provider_job_id and job.estimate_usd == 3.0


def test_dry_run_returns_the_plan_and_sends_nothing(prov, spec, home):
    register(prov, estimate_usd=0.75, warnings=["the model retires soon"])
    p = J.submit(spec, "fake", dry_run=True, budget=1)
    assert isinstance(p, J.Plan)
    d = p.to_dict()
    assert d["estimate_usd"] == 0.75 and d["within_budget"] is True and d["warnings"] == ["the model retires soon"]
    assert d["validation"][0]["ok"] and d["validation"][0]["examples"] == 6
    assert d["uploads"][0]["role"] == "train" and len(d["uploads"][0]["sha256"]) == 64
    assert d["uploads"][0]["already_uploaded"] is False
    assert network_calls(prov) == [] and _store_jobs(home) == []


def test_validation_problems_stop_before_anything_is_sent(prov, spec, home):
    bad = [(2, "missing_assistant", "no assistant message"), (5, "bad_role", "role 'bot' is unknown")]
    register(prov, bad_lines=bad)
    with pytest.raises(DataError) as e:
        J.submit(spec, "fake")
    assert e.value.exit_code == 1
    assert "line 2: no assistant message [missing_assistant]" in e.value.message and "line 5" in e.value.message
    assert "ftc data validate" in e.value.hint
    assert network_calls(prov) == [] and _store_jobs(home) == []


def test_a_missing_data_file_is_a_usage_error(prov, spec, tmp_path):
    register(prov)
    (tmp_path / "job" / "train.jsonl").unlink()
    with pytest.raises(UsageError, match="does not exist"):
        J.submit(spec, "fake")


def test_the_plan_reads_the_cost_estimate_and_the_validation_result(prov, spec, home):
    from ftclient import CostEstimate
    from ftclient.validation import ValidationResult

    register(prov, estimate_usd=0.5)
    be = B.get_backend("fake")
    p = J.plan(spec, "fake")
    assert isinstance(p.estimate, CostEstimate) and p.estimate_usd == 0.5 == p.estimate.cost_usd
    assert p.to_dict()["estimate"]["billed_tokens"] == 12345
    assert isinstance(be.validate(p.spec, p.spec.data.train), ValidationResult)


class _LooseBackend(FakeBackend):
    """A backend answering estimate() or validate() with a dict, as ftc once accepted."""

    name = "loose"

    def __init__(self, *, state_path, loose: str):
        super().__init__(state_path=state_path)
        self.loose = loose

    def estimate(self, spec):
        if self.loose == "estimate":
            return {"cost_usd": 1.0, "billed_tokens": 10}
        return super().estimate(spec)

    def validate(self, spec, data_path):
        if self.loose == "validate":
            return {"ok": True, "examples": 6, "errors": []}
        return super().validate(spec, data_path)


@pytest.mark.parametrize("loose,call,expected", [
    ("estimate", "estimate()", "expected ftclient.CostEstimate"),
    ("validate", "validate()", "expected ftclient.validation.ValidationResult"),
])
def test_a_backend_answering_with_another_shape_is_a_config_error(prov, spec, home, loose, call, expected):
    from ftclient.errors import ConfigError

    B.register_backend("loose", lambda **kw: _LooseBackend(state_path=prov, loose=loose), replace=True)
    try:
        with pytest.raises(ConfigError) as e:
            J.plan(spec, "loose")
        assert e.value.exit_code == 2
        msg = e.value.message
        assert msg.startswith("backend loose returned a dict from " + call) and msg.endswith(expected), msg
        with pytest.raises(ConfigError):
            J.submit(spec, "loose", budget=5)
        assert network_calls(prov) == [] and _store_jobs(home) == []
    finally:
        B.unregister_backend("loose")


def test_an_estimate_whose_cost_is_not_a_number_is_a_config_error(prov, spec, home):
    import dataclasses

    from ftclient.errors import ConfigError

    class Texty(FakeBackend):
        def estimate(self, spec):
            return dataclasses.replace(super().estimate(spec), cost_usd="12")

    B.register_backend("fake", lambda **kw: Texty(state_path=prov), replace=True)
    with pytest.raises(ConfigError, match="backend fake returned an estimate whose cost_usd is a str"):
        J.plan(spec, "fake")


def test_a_provider_quote_is_read_from_a_number_or_a_mapping():
    from ftclient.jobs._plan import quote_usd, usd

    assert usd is quote_usd  # the former name still works
    assert quote_usd(4) == 4.0 and quote_usd(None) is None and quote_usd(True) is None
    assert quote_usd({"estimated_total_price": 2.5, "allowed_to_proceed": True}) == 2.5  # Together's answer
    assert quote_usd({"cost_usd": 1.25, "raw": {}}) == 1.25 and quote_usd({"note": "free"}) is None
    assert quote_usd(10**400) == float("inf")


def test_provider_quote_above_budget_creates_nothing(prov, spec, home):
    register(prov, estimate_usd=1.0, quote=9.0)
    asked = []
    with pytest.raises(BudgetExceeded) as e:
        J.submit(spec, "fake", budget=5, confirm=lambda q: asked.append(q) or True)
    assert "provider's estimate $9.00" in e.value.message and "ftc estimated $1.00" in e.value.message
    assert asked == []  # the budget refuses before anyone is asked
    assert [c["call"] for c in network_calls(prov) if c["call"] == "create"] == []
    assert FakeBackend.provider_state(prov)["jobs"] == {}
    (job,) = _store_jobs(home)
    assert job.state == "cancelled" and "not submitted" in job.error
    with Store(home / "ftc.db") as st:
        assert st.pending_work() == []


def test_confirm_refusing_the_provider_quote_creates_nothing(prov, spec, home):
    register(prov, estimate_usd=1.0, quote=2.0)
    asked = []
    with pytest.raises(J.Declined):
        J.submit(spec, "fake", budget=5, confirm=lambda q: asked.append(q) or False)
    (q,) = asked
    assert (q.provider_usd, q.estimate_usd, q.budget_usd) == (2.0, 1.0, 5.0)
    assert FakeBackend.provider_state(prov)["jobs"] == {}
    assert _store_jobs(home)[0].state == "cancelled"


def test_confirm_accepting_the_quote_creates_one_job(prov, spec):
    register(prov, estimate_usd=1.0, quote=2.0)
    job = J.submit(spec, "fake", budget=5, confirm=lambda q: True)
    assert job.state == "queued" and job.provider_job_id in FakeBackend.provider_state(prov)["jobs"]


# --------------------------------------------------------------------------- submit and watch


def test_submit_then_watch_to_success(prov, spec, home):
    register(prov, steps=3)
    progress = []
    job = J.submit(spec, "fake", on_progress=lambda m, f: progress.append((m, f)))
    assert job.state == "queued" and job.provider_job_id == "fakejob-2" and job.estimate_usd == 1.25
    assert ("uploaded train.jsonl as file-1", 1.0) in progress
    updates = []
    final = J.watch(job.id, on_update=updates.append)
    assert final.state == JobState.SUCCEEDED and final.fine_tuned_model == "ft:fake-base:fakejob-2"
    assert [u.status.state.value for u in updates][:3] == ["validating_files", "queued", "running"]
    assert updates[-1].next_poll_in is None and updates[-1].new_events  # final events fetched
    with Store() as st:
        j = st.get_job(job.id)
        assert j.state == "succeeded" and j.fine_tuned_model == "ft:fake-base:fakejob-2" and j.finished_at
        evs = st.list_events(job.id)
        assert [e.message for e in evs][0] == "job created" and evs[-1].message == "state: succeeded"
        assert j.last_event_cursor == evs[-1].provider_event_id
        assert st.pending_work() == []
    # events are read incrementally: every events request after the first names the cursor
    afters = [c.get("after") for c in network_calls(prov) if c["call"] == "events"]
    assert afters[0] is None and all(afters[1:])


def test_the_same_data_is_uploaded_once(prov, spec):
    register(prov)
    J.submit(spec, "fake")
    plan = J.plan(spec, "fake")
    assert plan.uploads[0]["already_uploaded"] and plan.uploads[0]["provider_file_id"] == "file-1"
    J.submit(plan)
    calls = [c["call"] for c in network_calls(prov)]
    assert calls.count("upload") == 1 and calls.count("create") == 2


def test_a_failed_job_keeps_the_providers_reason(prov, spec):
    register(prov, fail_reason="Training file has 3 examples; the minimum is 10.")
    job = J.submit(spec, "fake")
    final = J.watch(job.id)
    assert final.state == JobState.FAILED
    with Store() as st:
        j = st.get_job(job.id)
    assert j.state == "failed" and j.error == "Training file has 3 examples; the minimum is 10."


def test_ctrl_c_while_watching_leaves_the_job_running(prov, spec):
    register(prov)
    job = J.submit(spec, "fake")

    def sleep(_s):
        raise KeyboardInterrupt

    with pytest.raises(J.Interrupted) as e:
        J.watch(job.id, poll=J.PollPolicy(sleep=sleep))
    assert e.value.exit_code == 130 and "keeps running" in e.value.message
    assert f"ftc jobs watch {job.id}" in e.value.hint
    with Store() as st:
        assert st.get_job(job.id).state == "validating_files"
        assert [w.job_id for w in st.pending_work()] == [job.id]  # released: resume may take it


def test_watch_refuses_a_job_never_sent(prov, spec):
    register(prov)
    with Store() as st:
        job = st.new_job("fake", {"name": "x"})
    with pytest.raises(UsageError, match="no job at fake yet"):
        J.watch(job.id)


# --------------------------------------------------------------------------- the polling budget


class ClockBackend:
    """A backend whose job changes state at given times of a fake clock."""

    name = "clock"

    def __init__(self, clock, schedule, running_steps=True):
        self.clock, self.schedule = clock, schedule  # [(t, state)], sorted
        self.status_calls: list[float] = []
        self.events_calls: list[str | None] = []
        self.running_steps = running_steps

    def _state(self):
        st = self.schedule[0][1]
        for t, s in self.schedule:
            if self.clock.now >= t:
                st = s
        return st

    def status(self, pid):
        self.status_calls.append(self.clock.now)
        s = self._state()
        step = int(self.clock.now // 10) if self.running_steps and s == JobState.RUNNING else None
        return JobStatus(s, provider_state=s.value, step=step, total_steps=1000, loss=1.0 / (1 + (step or 0)))

    def events(self, pid, after=None):
        self.events_calls.append(after)
        n = len(self.events_calls)
        return [JobEvent(f"e{n}", to_datetime(self.clock.now), "info", f"poll {n}")]

    def result(self, pid):
        return "ft:clock"


class Clock:
    def __init__(self):
        self.now = 0.0

    def sleep(self, s):
        self.now += s

    def __call__(self):
        return self.now


def _watch_clock(schedule, **kw):
    clock = Clock()
    be = ClockBackend(clock, schedule, **kw)
    with Store() as st:
        job = st.new_job("clock", {"name": "x"})
        st.update_state(job.id, "queued", provider_job_id="clock-1")
        seen = {}

        def on_update(u):
            seen.setdefault(u.status.state, clock.now)

        final = J.watch(job.id, store=st, backend=be, on_update=on_update,
                        poll=J.PollPolicy(sleep=clock.sleep, clock=clock))
    return be, seen, final, clock


def test_a_quiet_job_hour_costs_about_120_status_requests():
    hour = 3600.0
    be, seen, final, clock = _watch_clock([(0, JobState.RUNNING), (hour, JobState.SUCCEEDED)])
    assert final.state == JobState.SUCCEEDED
    polls_in_hour = [t for t in be.status_calls if t < hour]
    # 0, 5, 12.5, 23.75, 40.6, 65.9, then every 30 s: 6 + 118 = 124
    assert len(polls_in_hour) <= 125, len(polls_in_hour)
    assert len(be.events_calls) <= 35, len(be.events_calls)  # every 4th poll, the first and the last
    assert seen[JobState.SUCCEEDED] - hour <= 30.0
    # step and loss move at every poll, but only state changes shorten the wait
    gaps = [b - a for a, b in zip(be.status_calls, be.status_calls[1:])]
    assert max(gaps) == 30.0 and gaps[:5] == pytest.approx([5.0, 7.5, 11.25, 16.875, 25.3125])


@pytest.mark.parametrize("change_at", [1.0, 17.0, 333.3, 1234.5, 2999.9])
def test_a_state_change_is_seen_within_30_seconds(change_at):
    sched = [(0, JobState.QUEUED), (change_at, JobState.RUNNING), (change_at + 700, JobState.SUCCEEDED)]
    be, seen, final, clock = _watch_clock(sched)
    assert seen[JobState.RUNNING] - change_at <= 30.0
    assert seen[JobState.SUCCEEDED] - (change_at + 700) <= 30.0
    # after a change the wait starts again at 5 s
    i = be.status_calls.index(seen[JobState.RUNNING])
    assert be.status_calls[i + 1] - be.status_calls[i] == 5.0


def test_a_whole_job_with_several_states_stays_near_the_budget():
    sched = [(0, JobState.VALIDATING_FILES), (40, JobState.QUEUED), (600, JobState.RUNNING),
             (600 + 3600, JobState.SUCCEEDED)]
    be, seen, final, clock = _watch_clock(sched)
    hours = clock.now / 3600
    assert len(be.status_calls) / hours <= 130, (len(be.status_calls), hours)
    assert all(e is not None for e in be.events_calls[1:])  # always incremental


# --------------------------------------------------------------------------- cancel, resume, queries


def test_cancel_a_running_job(prov, spec):
    register(prov)
    job = J.submit(spec, "fake")
    after = J.cancel(job.id)
    assert after.state == "cancelled" and after.finished_at
    assert FakeBackend.provider_state(prov)["jobs"][job.provider_job_id]["cancelled"] is True
    with Store() as st:
        (op,) = st.operations(job.id, "cancel")
        assert op.state == "done"
    assert J.cancel(job.id).state == "cancelled"  # a final job is left as it is
    assert [c["call"] for c in network_calls(prov)].count("cancel") == 1


def test_a_cancelled_hosted_job_cannot_be_reopened(prov, spec):
    register(prov)
    job = J.submit(spec, "fake")
    J.cancel(job.id)
    calls = len(network_calls(prov))
    (o,) = J.resume(job.id, reopen=True)
    assert (o.action, o.state) == ("error", "cancelled") and "cannot be continued" in o.detail
    assert len(network_calls(prov)) == calls  # nothing sent
    with pytest.raises(UsageError, match="give its id"):
        J.resume(reopen=True)


def test_cancel_a_job_never_sent_needs_no_request(prov):
    register(prov)
    with Store() as st:
        job = st.new_job("fake", {"name": "x"})
        st.release(job.id)
    assert J.cancel(job.id).state == "cancelled"
    assert network_calls(prov) == []


def test_resume_submits_a_recorded_job_and_watches_it(prov, spec):
    register(prov)
    plan = J.plan(spec, "fake")
    with Store() as st:
        job = st.new_job("fake", plan.spec.model_dump(mode="json"), model="fake-base", estimate_usd=1.25)
        st.release(job.id)  # as if its process had died before sending anything
        assert [w.reason for w in st.pending_work()] == ["created but never submitted"]
    seen = []
    outs = J.resume(on_outcome=seen.append)
    assert [(o.action, o.state) for o in outs] == [("submitted", "queued"), ("watched", "succeeded")]
    assert seen == outs
    assert len(FakeBackend.provider_state(prov)["jobs"]) == 1
    with Store() as st:
        assert st.pending_work() == []
    assert J.resume() == []


def test_resume_skips_a_job_another_live_process_holds(prov, spec, home):
    register(prov)
    job = J.submit(spec, "fake")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        from ftclient import store as S

        with Store() as st:
            with st._write() as c:
                c.execute("UPDATE jobs SET pid = ?, worker_start = ? WHERE id = ?",
                          (other.pid, S.process_start(other.pid), job.id))
            assert st.pending_work() == []
        outs = J.resume(job.id)
        assert [(o.action, o.state) for o in outs] == [("skipped", "queued")]
        assert f"process {other.pid}" in outs[0].detail
    finally:
        other.kill()
        other.wait()
    outs = J.resume()
    assert [(o.action, o.state) for o in outs] == [("watched", "succeeded")]


def test_resume_without_watching_refreshes_once(prov, spec):
    register(prov)
    job = J.submit(spec, "fake")
    with Store() as st:
        st.release(job.id)
    outs = J.resume(watch_jobs=False)
    assert [(o.action, o.state) for o in outs] == [("refreshed", "validating_files")]


def test_show_events_checkpoints_and_list(prov, spec):
    register(prov)
    job = J.submit(spec, "fake")
    view = J.show(job.id[:8 + 6])
    assert view.status is not None and view.status.state == JobState.VALIDATING_FILES
    d = view.to_dict()
    assert set(d) == {"job", "status", "events", "operations", "refresh_error"}
    assert {o["kind"] for o in d["operations"]} == {"upload", "create"}
    assert [e.message for e in J.events(job.id)] == ["job created"]
    assert [c.step for c in J.checkpoints(job.id)] == [1, 2, 3]
    assert [j.id for j in J.list_jobs()] == [job.id]
    assert J.list_jobs(states=["succeeded"]) == []


def test_show_reports_a_failed_refresh_instead_of_raising(prov, spec):
    register(prov)
    job = J.submit(spec, "fake")
    B.unregister_backend("fake")
    view = J.show(job.id)
    assert view.status is None and "unknown backend" in view.refresh_error


def test_chat_with_a_job_id_or_a_model_id(prov, spec):
    register(prov)
    job = J.submit(spec, "fake")
    with pytest.raises(UsageError, match="no fine-tuned model yet"):
        J.chat(job.id, "hi")
    J.watch(job.id)
    r = J.chat(job.id, "hello", system="be brief")
    assert r.text == "echo from ft:fake-base:fakejob-2: hello" and r.job_id == job.id
    r = J.chat("ft:other", "yo", backend="fake")
    assert r.model == "ft:other" and r.job_id is None
    with pytest.raises(UsageError):
        J.chat("ft:other", "yo")  # a model id needs its backend


def test_jobs_module_imports_no_heavy_module():
    code = ("import sys, json, ftclient.jobs, ftclient.cli.train_cmd, ftclient.cli.jobs_cmd, ftclient.cli.chat_cmd;"
            "print(json.dumps(sorted(sys.modules)))")
    mods = set(__import__("json").loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                       check=True, env={**os.environ}).stdout))
    heavy = ["torch", "transformers", "openai", "together", "tokenizers", "matplotlib", "numpy", "tiktoken"]
    assert not [m for m in heavy if m in mods]
