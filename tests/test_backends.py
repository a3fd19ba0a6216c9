"""Backend protocol, neutral job states, and the entry-point registry."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import warnings
from datetime import datetime, timezone

import pytest

from ftclient import backends as B
from ftclient.backends import (
    ENTRY_POINT_GROUP,
    FINAL_STATES,
    Backend,
    Checkpoint,
    JobEvent,
    JobState,
    JobStatus,
    SubmitResult,
    UnknownStateWarning,
    available_backends,
    get_backend,
    map_state,
    register_backend,
    to_datetime,
    unregister_backend,
)
from ftclient.errors import ConfigError, UsageError
from ftclient.store import Store
from ftclient.submission import BackendBase


class FakeBackend(BackendBase):
    """A complete, offline backend: enough to drive the protocol in tests."""

    name = "fake"

    def __init__(self, model: str = "fake-base"):
        self.model = model
        self.jobs: dict[str, JobStatus] = {}

    def validate(self, spec, data_path):
        return {"ok": True, "path": str(data_path)}

    def estimate(self, spec):
        return {"usd": 0.0}

    def preflight(self, spec, *, today=None):
        return []

    def create_request(self, spec, *, training_file, validation_file, client_token, job):
        return {"client_token": client_token}

    def create_job(self, spec, *, training_file, validation_file, client_token, job):
        jid = f"fake-{client_token}"
        self.jobs[jid] = JobStatus(JobState.QUEUED, provider_state="queued")
        return {"id": jid}

    def find_by_client_token(self, client_token, *, since=None):
        jid = f"fake-{client_token}"
        return jid if jid in self.jobs else None

    def status(self, provider_job_id):
        return self.jobs[provider_job_id]

    def events(self, provider_job_id, after=None):
        return [JobEvent("e1", to_datetime(0), "info", "queued")]

    def checkpoints(self, provider_job_id):
        return []

    def cancel(self, provider_job_id):
        self.jobs[provider_job_id] = JobStatus(JobState.CANCELLED, provider_state="cancelled")
        return self.jobs[provider_job_id]

    def result(self, provider_job_id):
        return None

    def chat(self, model, messages, **kw):
        return "ok"


@pytest.fixture(autouse=True)
def _clean_registry():
    before = dict(B._REGISTERED)
    yield
    B._REGISTERED.clear()
    B._REGISTERED.update(before)


def _fake_entry_points(monkeypatch, *eps: importlib.metadata.EntryPoint) -> None:
    """The installed entry points of the group are ``eps`` and nothing else."""
    real = B.installed_entry_points

    def installed(group: str = ENTRY_POINT_GROUP) -> list:
        return list(eps) if group == ENTRY_POINT_GROUP else real(group)

    monkeypatch.setattr(B, "installed_entry_points", installed)


def _ep(name: str, value: str) -> importlib.metadata.EntryPoint:
    return importlib.metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A plugin package on disk, importable, and not imported yet."""
    from ftclient.backends import PROTOCOL_METHODS as methods
    body = "".join(f"    def {m}(self, *a, **kw):\n        return None\n\n" for m in methods)
    (tmp_path / "ftc_fake_plugin.py").write_text(
        "class Plugin:\n"
        "    name = 'fakeplug'\n    uploads_files = False\n\n"
        "    def __init__(self, model='base'):\n"
        "        self.model = model\n\n" + body
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "ftc_fake_plugin", raising=False)
    return tmp_path


# --------------------------------------------------------------------------- states


def test_job_states():
    assert [s.value for s in JobState] == ["pending", "validating_files", "queued", "running", "succeeded",
                                          "failed", "cancelled", "submit_unknown"]
    assert FINAL_STATES == {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}
    assert JobState.SUCCEEDED.final and not JobState.SUBMIT_UNKNOWN.final and not JobState.RUNNING.final
    assert JobState("queued") is JobState.QUEUED and JobState.QUEUED == "queued" and str(JobState.QUEUED) == "queued"


OPENAI_STATES = {"validating_files": JobState.VALIDATING_FILES, "queued": JobState.QUEUED,
                 "running": JobState.RUNNING, "succeeded": JobState.SUCCEEDED, "failed": JobState.FAILED,
                 "cancelled": JobState.CANCELLED}
TOGETHER_STATES = {"pending": JobState.PENDING, "queued": JobState.QUEUED, "running": JobState.RUNNING,
                   "compressing": JobState.RUNNING, "uploading": JobState.RUNNING,
                   "cancel_requested": JobState.RUNNING, "cancelled": JobState.CANCELLED,
                   "error": JobState.FAILED, "user_error": JobState.FAILED, "completed": JobState.SUCCEEDED}


def test_map_state_known():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert map_state("succeeded", OPENAI_STATES, provider="openai") is JobState.SUCCEEDED
        assert map_state("Cancel-Requested", TOGETHER_STATES, provider="together") is JobState.RUNNING
        assert map_state("completed", TOGETHER_STATES) is JobState.SUCCEEDED
        # a provider state already spelled like a neutral one needs no mapping entry
        assert map_state("validating_files", {}) is JobState.VALIDATING_FILES


def test_map_state_unknown_warns_and_is_neutral(caplog):
    with pytest.warns(UnknownStateWarning, match="together.*'paused'.*pending"):
        assert map_state("paused", TOGETHER_STATES, provider="together") is JobState.PENDING
    with pytest.warns(UnknownStateWarning):
        assert map_state(None, OPENAI_STATES, unknown=JobState.RUNNING) is JobState.RUNNING
    assert any("paused" in r.getMessage() for r in caplog.records if r.name == "ftclient.backends")


# --------------------------------------------------------------------------- records


def test_records_to_dict_leave_raw_out():
    st = JobStatus(JobState.RUNNING, provider_state="running", step=5, total_steps=20, loss=0.5,
                   raw={"wandb_api_key": "secret"})
    d = st.to_dict()
    assert d["state"] == "running" and d["step"] == 5 and "raw" not in d
    assert st.to_dict(raw=True)["raw"] == {"wandb_api_key": "secret"}
    assert st.progress == 0.25 and not st.final
    assert JobStatus(JobState.FAILED, error="bad data").final
    assert JobStatus(JobState.QUEUED).progress is None
    ev = JobEvent("e1", to_datetime(1_700_000_000), "warn", "slow")
    assert ev.to_dict()["created_at"] == "2023-11-14T22:13:20+00:00"
    ck = Checkpoint("ck1", step=10, model_ref="ft:m:ckpt-10", metrics={"loss": 0.3})
    assert ck.to_dict() == {"id": "ck1", "step": 10, "created_at": None, "model_ref": "ft:m:ckpt-10",
                            "metrics": {"loss": 0.3}}
    assert SubmitResult("ftjob-1").to_dict() == {"provider_job_id": "ftjob-1", "state": "pending"}


def test_to_datetime():
    utc = timezone.utc
    assert to_datetime(0) == datetime(1970, 1, 1, tzinfo=utc)
    assert to_datetime("2025-01-02T03:04:05Z") == datetime(2025, 1, 2, 3, 4, 5, tzinfo=utc)
    assert to_datetime("2025-01-02T03:04:05.5+00:00").microsecond == 500000
    assert to_datetime("1700000000") == to_datetime(1_700_000_000)
    assert to_datetime(None) is None and to_datetime("") is None
    assert to_datetime(datetime(2025, 1, 1)).tzinfo is utc


def test_fake_backend_implements_the_protocol(tmp_path):
    fb = FakeBackend()
    assert isinstance(fb, Backend)
    assert not isinstance(object(), Backend)
    with Store(tmp_path / "ftc.db") as st:
        job = st.new_job("fake", {"name": "t"})
        r = fb.submit(None, job=job, store=st)  # the core's write-ahead create, with this backend's calls
        assert r.provider_job_id == f"fake-{job.client_token}" and fb.cancel(r.provider_job_id).final
        assert [(o.kind, o.state) for o in st.operations(job.id)] == [("create", "done")]
        assert fb.submit(None, job=job, store=st).provider_job_id == r.provider_job_id  # never created twice
        assert len(fb.jobs) == 1


def test_a_class_that_is_no_backend_names_what_it_lacks():
    class Half:
        name = "half"

        def status(self, provider_job_id):
            return None

    register_backend("half", Half)
    try:
        with pytest.raises(ConfigError, match="create_job") as e:
            get_backend("half")
        assert "find_by_client_token" in e.value.message and "status" not in e.value.message.split("missing:")[1]
    finally:
        unregister_backend("half")


# --------------------------------------------------------------------------- registry


def test_entry_points_are_listed_without_being_loaded(monkeypatch, plugin_dir):
    _fake_entry_points(monkeypatch, _ep("fakeplug", "ftc_fake_plugin:Plugin"),
                       _ep("openai", "ftc_missing_sdk_module:OpenAIBackend"))
    found = available_backends()
    assert list(found) == ["fakeplug", "openai"]
    assert found["fakeplug"].value == "ftc_fake_plugin:Plugin"
    assert "ftc_fake_plugin" not in sys.modules  # listing imports nothing
    b = get_backend("fakeplug", model="m1")
    assert "ftc_fake_plugin" in sys.modules
    assert isinstance(b, Backend) and b.name == "fakeplug" and b.model == "m1"
    assert get_backend("FakePlug").name == "fakeplug"  # names are case-insensitive


def _dist(site, folder: str, text: str | None) -> None:
    (site / folder).mkdir(parents=True)
    if text is not None:
        (site / folder / "entry_points.txt").write_text(text)


def test_installed_entry_points_are_read_as_importlib_metadata_reads_them(monkeypatch, tmp_path, plugin_dir):
    """The registry's reader of entry_points.txt finds what importlib.metadata finds: real
    distribution folders on sys.path, the first distribution of a name winning."""
    site, later = tmp_path / "site", tmp_path / "later"
    _dist(site, "ftc_fake_plugin-1.0.dist-info",
          "[console_scripts]\nx = y:z\n\n# a comment\n[ftclient.backends]\nfakeplug = ftc_fake_plugin:Plugin\n"
          "other= ftc_fake_plugin : Plugin [extra]\n")
    _dist(site, "No_Entry_Points-2.0.dist-info", None)
    _dist(site, "legacy_thing.egg-info", "[ftclient.backends]\nlegacy = ftc_fake_plugin:Plugin\n")
    _dist(later, "ftc_fake_plugin-0.9.dist-info", "[ftclient.backends]\nshadowed = nowhere:Nothing\n")
    monkeypatch.syspath_prepend(str(later))
    monkeypatch.syspath_prepend(str(site))
    ours = [(e.name, e.value) for e in B.installed_entry_points()]
    theirs = [(e.name, e.value) for e in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
    assert sorted(ours) == sorted(theirs)
    assert ("shadowed", "nowhere:Nothing") not in ours  # the same distribution, later on the path
    assert {"fakeplug", "other", "legacy"} <= {n for n, _ in ours}
    found = available_backends()  # the cache is read again for the new path
    assert found["fakeplug"].load() is found["other"].load()  # "module : attr [extra]" loads too
    assert get_backend("legacy").name == "fakeplug"


def test_a_zip_on_the_path_leaves_the_reading_to_importlib_metadata(monkeypatch, tmp_path):
    z = tmp_path / "bundle.zip"
    z.write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip archive
    monkeypatch.syspath_prepend(str(z))
    called = []
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: called.append(kw) or real(**kw))
    assert sorted(e.name for e in B.installed_entry_points()) == sorted(
        e.name for e in real(group=ENTRY_POINT_GROUP))
    assert called == [{"group": ENTRY_POINT_GROUP}]


def test_typo_names_the_closest_backend(monkeypatch):
    _fake_entry_points(monkeypatch, _ep("openai", "x:Y"), _ep("together", "x:Y"), _ep("local", "x:Y"))
    with pytest.raises(UsageError) as ei:
        get_backend("opnai")
    e = ei.value
    assert e.exit_code == 2 and "opnai" in e.message and "Did you mean 'openai'?" in e.hint
    with pytest.raises(UsageError) as ei:
        get_backend("zzz")
    assert "Available: local, openai, together" in ei.value.hint


def test_no_backends_installed(monkeypatch):
    _fake_entry_points(monkeypatch)
    with pytest.raises(UsageError, match="unknown backend") as ei:
        get_backend("openai")
    assert "pip install" in ei.value.hint


def test_register_backend_in_process(monkeypatch):
    _fake_entry_points(monkeypatch, _ep("fake", "ftc_missing_sdk_module:Nope"))
    register_backend("fake", FakeBackend)  # takes precedence over the entry point
    assert isinstance(get_backend("fake"), FakeBackend)
    assert "test_backends:FakeBackend" in available_backends()["fake"].value
    with pytest.raises(ValueError, match="already registered"):
        register_backend("fake", FakeBackend)
    register_backend("fake", lambda **kw: FakeBackend(model="x", **kw), replace=True)
    assert get_backend("fake").model == "x"
    unregister_backend("fake")
    with pytest.raises(ConfigError, match="could not be loaded"):
        get_backend("fake")  # now the broken entry point


def test_broken_or_wrong_backends_are_config_errors(monkeypatch):
    _fake_entry_points(monkeypatch, _ep("nosdk", "ftc_missing_sdk_module:Backend"))
    with pytest.raises(ConfigError) as ei:
        get_backend("nosdk")
    assert ei.value.exit_code == 2 and "ftc_missing_sdk_module" in ei.value.hint

    register_backend("half", lambda: object())
    with pytest.raises(ConfigError, match="does not implement the Backend protocol"):
        get_backend("half")
    register_backend("strict", lambda: FakeBackend())
    with pytest.raises(ConfigError, match="does not accept these options"):
        get_backend("strict", colour="red")


def test_duplicate_entry_points_keep_the_first(monkeypatch, caplog):
    register_backend("fake", FakeBackend)
    _fake_entry_points(monkeypatch, _ep("dup", "a:B"), _ep("dup", "c:D"))
    assert available_backends()["dup"].value == "a:B"
    assert any("two installed backends" in r.getMessage() for r in caplog.records)


def test_importing_backends_imports_no_sdk():
    code = ("import sys, ftclient.backends as b; b.available_backends(); "
            "bad = [m for m in ('openai', 'together', 'httpx', 'httpx2', 'torch', 'transformers', "
            "'ftclient.providers.openai', 'ftclient.spec') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert p.returncode == 0, p.stdout + p.stderr


def test_a_bare_model_name_belongs_to_the_backend_that_claims_it():
    from ftclient.backends import owner_of
    from ftclient.tokens import split_ref

    assert owner_of("gpt-4.1-mini") == "openai" and split_ref("gpt-4.1-mini") == ("openai", "gpt-4.1-mini")
    assert owner_of("zz-model") is None
    with pytest.raises(ConfigError, match="give the provider"):
        split_ref("zz-model")

    class Zz(FakeBackend):
        name = "zz"

        @staticmethod
        def owns_model_name(model):
            return model.startswith("zz-")

    register_backend("zz", Zz)
    try:
        assert owner_of("zz-model") == "zz" and split_ref("zz-model") == ("zz", "zz-model")
        assert owner_of("gpt-4o") == "openai"
    finally:
        unregister_backend("zz")
