"""A backend that cannot work here (its SDK or training stack not installed, no API key)
is refused before anything is recorded: exit 2, the exact install line or the key's
variable, and no job in the store. ``--dry-run`` shows the plan with a warning instead.

The missing SDK is simulated in a subprocess: a ``sitecustomize`` on PYTHONPATH puts a
finder first on ``sys.meta_path`` that raises ModuleNotFoundError for the blocked
packages, the way Python answers when a package is not installed.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from ftclient import backends as B

from job_files import write_job

HOSTED_LINE = 'pip install "ftclient[hosted]"'
LOCAL_LINE = 'pip install "ftclient[local]"'
KEY_VARS = ("OPENAI_API_KEY", "TOGETHER_API_KEY", "OPENAI_BASE_URL", "TOGETHER_BASE_URL")


def blocker(d: Path, *modules: str) -> Path:
    """A folder for PYTHONPATH whose sitecustomize makes ``import MODULE`` fail as if it were not installed."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "sitecustomize.py").write_text(textwrap.dedent(f"""\
        import sys

        BLOCKED = {tuple(modules)!r}


        class _NotInstalled:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None


        sys.meta_path.insert(0, _NotInstalled())
        """))
    return d


@pytest.fixture
def clean_env(tmp_path, monkeypatch):
    """FTC_HOME in tmp_path, no provider key or base URL from the machine running the tests."""
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    return {"FTC_HOME": str(tmp_path / "home"), **{v: "" for v in KEY_VARS}}


def jobs_in_store(home: Path) -> list[dict]:
    from ftclient.store import Store

    if not (home / "ftc.db").exists() and not any(home.glob("*.db")):
        return []
    with Store() as st:
        return [j.to_dict() for j in st.list_jobs(limit=None)]


def _no_traceback(r) -> None:
    assert "Traceback" not in r.err and "internal error" not in r.err, r.err


# --------------------------------------------------------------------------- the SDK is not installed


def test_the_blocker_really_hides_the_sdk(tmp_path, ftc_proc, clean_env):
    """The simulation itself: with the blocker, openai cannot be imported; without it, it can."""
    import subprocess
    import sys

    block = blocker(tmp_path / "block", "openai")
    code = "import importlib.util as u, sys\ntry:\n import openai\nexcept ModuleNotFoundError:\n sys.exit(3)\n"
    env = {**os.environ, "PYTHONPATH": str(block)}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 3
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_train_without_the_hosted_sdk_is_exit_2_with_the_install_line_and_no_job(tmp_path, ftc_proc, clean_env):
    spec = write_job(tmp_path / "job")
    env = {**clean_env, "PYTHONPATH": str(blocker(tmp_path / "block", "openai")),
           "OPENAI_API_KEY": "sk-" "test-0123456789abcdefghij"}
    r = ftc_proc("train", spec, "--backend", "openai", "--yes", "--detach", env=env)
    _no_traceback(r)
    assert r.code == 2, r.err
    assert HOSTED_LINE in r.err and "the openai backend needs openai" in r.err
    assert "uploading" not in r.err
    assert jobs_in_store(tmp_path / "home") == []
    # a dry run shows the plan and says what a real run would stop at
    r = ftc_proc("train", spec, "--backend", "openai", "--dry-run", env=env)
    _no_traceback(r)
    assert r.code == 0 and "Fine-tuning plan" in r.out and HOSTED_LINE in r.err and "a real submission stops here" in r.err
    assert jobs_in_store(tmp_path / "home") == []


def test_train_local_without_the_training_stack_names_what_is_missing(tmp_path, ftc_proc, clean_env):
    spec = write_job(tmp_path / "job")
    env = {**clean_env, "PYTHONPATH": str(blocker(tmp_path / "block", "peft", "trl"))}
    r = ftc_proc("train", spec, "--backend", "local", "--yes", "--detach", env=env)
    _no_traceback(r)
    assert r.code == 2, r.err
    assert LOCAL_LINE in r.err and "peft and trl" in r.err and "torch" not in r.err.split("hint")[0]
    assert jobs_in_store(tmp_path / "home") == []


def test_resume_of_a_job_whose_sdk_is_missing_leaves_it_as_it_was(tmp_path, ftc_proc, clean_env):
    from ftclient.spec import load_spec
    from ftclient.store import Store

    spec = load_spec(write_job(tmp_path / "job"))
    with Store() as st:  # what the crash left: recorded, never sent
        job = st.new_job("openai", spec.model_dump(mode="json"), model="gpt-4.1-mini-2025-04-14")
        st.release(job.id)
        before = st.get_job(job.id).to_dict()
    env = {**clean_env, "PYTHONPATH": str(blocker(tmp_path / "block", "openai")),
           "OPENAI_API_KEY": "sk-" "test-0123456789abcdefghij"}
    for args in (("jobs", "resume", "--detach"), ("jobs", "resume", job.id, "--detach"), ("jobs", "watch", job.id)):
        r = ftc_proc(*args, env=env)
        _no_traceback(r)
        if args[1] == "watch":  # never sent: nothing to watch (a usage error, not an SDK one)
            assert r.code == 2 and "resume" in r.err
            continue
        assert r.code == 2, r.err
        assert HOSTED_LINE in r.err and job.id in r.err
    with Store() as st:
        after = st.get_job(job.id).to_dict()
        assert st.operations(job.id) == []
    assert after["state"] == "pending" and after == before
    # a job never sent can still be cancelled without the SDK
    r = ftc_proc("jobs", "cancel", job.id, env=env)
    _no_traceback(r)
    assert r.code == 0 and "cancelled" in r.out


def test_chat_with_a_hosted_model_without_its_sdk(tmp_path, ftc_proc, clean_env):
    env = {**clean_env, "PYTHONPATH": str(blocker(tmp_path / "block", "together")),
           "TOGETHER_API_KEY": "tgp_v1_" "test0123456789abcdefghij"}
    r = ftc_proc("chat", "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", "hi", "--backend", "together", env=env)
    _no_traceback(r)
    assert r.code == 2 and HOSTED_LINE in r.err and "the together backend needs together" in r.err


def test_requirements_are_declared_by_the_backends(clean_env):
    """The core asks each backend; it names no provider itself."""
    for name, extra in (("openai", "hosted"), ("together", "hosted"), ("local", "local")):
        be = B.get_backend(name)
        assert be.requires and be.install_extra == extra
        assert B.missing_requirements(be) is None  # all installed in the test environment

    class Plugin:
        name = "acme"
        requires = ("acme_sdk_that_is_not_installed",)
        install_extra = None

    e = B.missing_requirements(Plugin())
    assert e is not None and e.exit_code == 2
    assert "pip install acme_sdk_that_is_not_installed" in e.message


# --------------------------------------------------------------------------- no API key


@pytest.mark.parametrize("backend,var", [("openai", "OPENAI_API_KEY"), ("together", "TOGETHER_API_KEY")])
def test_train_without_a_key_is_exit_2_before_anything_is_recorded(tmp_path, ftc, clean_env, backend, var):
    spec = write_job(tmp_path / "job")
    r = ftc("train", spec, "--backend", backend, "--yes", "--detach")
    _no_traceback(r)
    assert r.code == 2, r.err
    assert var in r.err and f"ftc keys set {backend}" in r.err
    assert "uploading" not in r.err and "submitted" not in r.err
    assert jobs_in_store(tmp_path / "home") == []


def test_dry_run_without_a_key_shows_the_plan_and_warns(tmp_path, ftc, clean_env):
    spec = write_job(tmp_path / "job")
    r = ftc("train", spec, "--backend", "openai", "--dry-run")
    _no_traceback(r)
    assert r.code == 0
    assert "Fine-tuning plan" in r.out and "missing" in r.out and "OPENAI_API_KEY" in r.out
    assert "warning:" in r.err and "OPENAI_API_KEY" in r.err and "a real submission stops here" in r.err
    r = ftc("train", spec, "--backend", "openai", "--dry-run", "--json")
    assert r.code == 0
    plan = r.json()["plan"]
    assert plan["ready"] is False and "OPENAI_API_KEY" in plan["not_ready"][0]["message"]
    assert plan["estimate_usd"] is not None  # the rest of the plan is made as usual
    assert jobs_in_store(tmp_path / "home") == []


def test_a_key_in_the_key_file_counts(tmp_path, ftc, clean_env):
    from ftclient.secrets import set_key

    spec = write_job(tmp_path / "job")
    set_key("openai", "sk-" "stored-0123456789abcdefghij")
    r = ftc("train", spec, "--backend", "openai", "--dry-run", "--json")
    assert r.code == 0 and r.json()["plan"]["ready"] is True and r.json()["plan"]["not_ready"] == []
    assert "stored-0123456789" not in r.out + r.err


def test_resume_without_a_key_leaves_the_job_pending_not_failed(tmp_path, ftc, clean_env):
    from ftclient.spec import load_spec
    from ftclient.store import Store

    spec = load_spec(write_job(tmp_path / "job"))
    with Store() as st:
        job = st.new_job("openai", spec.model_dump(mode="json"), model="gpt-4.1-mini-2025-04-14")
        st.release(job.id)
    r = ftc("jobs", "resume", "--detach")
    _no_traceback(r)
    assert r.code == 2 and "OPENAI_API_KEY" in r.err and job.id in r.err
    with Store() as st:
        assert st.get_job(job.id).state == "pending" and st.operations(job.id) == []


def test_python_api_plan_and_dry_run(tmp_path, clean_env):
    from ftclient import jobs as J
    from ftclient.errors import ConfigError

    spec = write_job(tmp_path / "job")
    with pytest.raises(ConfigError) as ei:
        J.submit(spec, "together")
    assert "TOGETHER_API_KEY" in ei.value.message and ei.value.exit_code == 2
    p = J.submit(spec, "together", dry_run=True)
    assert isinstance(p, J.Plan) and not p.ready and "TOGETHER_API_KEY" in p.not_ready[0].message
    with pytest.raises(ConfigError):
        J.submit(p)  # a dry run's plan is checked again before anything is recorded
    assert jobs_in_store(tmp_path / "home") == []
    # a backend built with a ready client needs no key of its own
    from ftclient.providers.openai import OpenAIBackend

    assert B.missing_key(OpenAIBackend()) is not None
    assert B.missing_key(OpenAIBackend(client=object())) is None


# --------------------------------------------------------------------------- ftc eval


def eval_runs(home: Path) -> list:
    from ftclient.store import Store

    if not home.exists():
        return []
    with Store() as st:
        return st.list_eval_runs()


def test_eval_of_a_hosted_model_without_its_sdk(tmp_path, ftc_proc, clean_env):
    write_job(tmp_path / "job")
    env = {**clean_env, "PYTHONPATH": str(blocker(tmp_path / "block", "openai")),
           "OPENAI_API_KEY": "sk-" "test-0123456789abcdefghij"}
    r = ftc_proc("eval", "openai:gpt-4.1-mini-2025-04-14", "--data", tmp_path / "job" / "train.jsonl", env=env)
    _no_traceback(r)
    assert r.code == 2 and HOSTED_LINE in r.err and "the openai backend needs openai" in r.err
    # an OpenAI-compatible server is asked through the same SDK
    r = ftc_proc("eval", "openai-compatible:http://127.0.0.1:9/v1#m", "--data", tmp_path / "job" / "train.jsonl",
                 env=env)
    _no_traceback(r)
    assert r.code == 2 and HOSTED_LINE in r.err
    assert eval_runs(tmp_path / "home") == []


def test_eval_of_a_hosted_model_without_a_key_records_no_run(tmp_path, ftc, clean_env):
    write_job(tmp_path / "job")
    r = ftc("eval", "together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", "--data",
            tmp_path / "job" / "train.jsonl")
    _no_traceback(r)
    assert r.code == 2 and "TOGETHER_API_KEY" in r.err and "ftc keys set together" in r.err
    assert eval_runs(tmp_path / "home") == []
