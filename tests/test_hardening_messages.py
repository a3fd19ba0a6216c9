"""Hostile input that must end in one clear message and exit 1 or 2: budgets that are not
numbers, rich markup in paths, labels and homes, deep or huge input, full or read-only disks,
hand-edited store rows -- never a traceback, never exit 70."""

from __future__ import annotations

import json
import math

import pytest

from fake_backend import home, prov, spec  # noqa: F401  (fixtures)
from fake_backend import FakeBackend, network_calls, register, write_spec
from ftclient import jobs as J
from ftclient.errors import BudgetExceeded, UsageError
from ftclient.store import Store


def _store_jobs(home):
    if not (home / "ftc.db").exists():
        return []
    with Store(home / "ftc.db") as st:
        return st.list_jobs()


def _clean(r) -> None:
    """One message, no traceback, not exit 70."""
    text = r.out + r.err
    assert r.code in (0, 1, 2), (r.code, text)
    assert "Traceback" not in text and "internal error" not in text, text


# --------------------------------------------------------------------------- budget


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999", "-1", "ten"])
def test_train_refuses_a_budget_that_is_not_a_finite_number(ftc, prov, spec, home, value):
    register(prov, estimate_usd=1.25)
    r = ftc("train", spec, "--backend", "fake", "--yes", "--budget", value)
    assert r.code == 2, (r.code, r.out, r.err)
    assert "budget" in r.err
    assert network_calls(prov) == [] and _store_jobs(home) == []


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_cost_and_resume_refuse_a_budget_that_is_not_a_finite_number(ftc, tmp_path, home, value):
    data = write_spec(tmp_path / "d").parent / "train.jsonl"
    r = ftc("cost", "compare", data, "--budget", value)
    assert r.code == 2 and "--budget" in r.err, (r.code, r.err)
    r = ftc("jobs", "resume", "--budget", value)
    assert r.code == 2 and "--budget" in r.err, (r.code, r.err)


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
@pytest.mark.parametrize("args", [("cost", "compare", "{data}", "--gpu-price-per-hour"),
                                  ("cost", "estimate", "{data}", "--model", "local:default", "--gpu-price-per-hour"),
                                  ("eval", "local:default", "--data", "{data}", "--gpu-price-per-hour"),
                                  ("demo", "--offline-only", "--price-per-hour")])
def test_an_hourly_price_must_be_a_finite_number(ftc, tmp_path, home, value, args):
    data = write_spec(tmp_path / "d").parent / "train.jsonl"
    r = ftc(*[a.format(data=data) for a in args], value)
    assert r.code == 2 and "price-per-hour" in r.err and "not a usable price" in r.err, (r.code, r.err)


def test_an_error_text_from_a_provider_is_shown_without_terminal_escapes(tmp_path):
    from ftclient.cli.main import _print_error
    from ftclient.cli.output import err

    with err.capture() as cap:
        _print_error("the server said: \x1b]0;owned\x07\x1b[2Jhi\x1b[31m!", "retry \x1b[1mlater")
    text = cap.get()
    assert "\x1b" not in text and "owned" not in text and "hi!" in text and "retry later" in text


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e999", "-0.5"])
def test_a_spec_budget_must_be_a_finite_number(ftc, prov, tmp_path, home, value):
    register(prov, estimate_usd=1.25)
    spec_path = write_spec(tmp_path / "s")
    spec_path.write_text(spec_path.read_text() + f"budget_usd: {value}\n")
    r = ftc("train", spec_path, "--backend", "fake", "--yes")
    assert r.code == 2 and "budget_usd" in r.err, (r.code, r.err)
    assert network_calls(prov) == [] and _store_jobs(home) == []
    r = ftc("spec", "check", spec_path)
    assert r.code == 2 and "budget_usd" in r.err


@pytest.mark.parametrize("budget", [math.nan, math.inf, -1.0])
def test_the_python_api_refuses_a_budget_that_is_not_a_finite_number(prov, spec, home, budget):
    register(prov, estimate_usd=1.25)
    with pytest.raises(UsageError, match="budget"):
        J.plan(spec, "fake", budget=budget)
    p = J.plan(spec, "fake")
    with pytest.raises(UsageError, match="budget"):
        J.submit(p, budget=budget)
    assert network_calls(prov) == [] and _store_jobs(home) == []


@pytest.mark.parametrize("estimate", [math.nan, math.inf, -3.0, 10**400])
def test_an_estimate_that_is_not_a_price_never_passes_a_budget(prov, spec, home, estimate):
    register(prov, estimate_usd=estimate)
    with pytest.raises(BudgetExceeded) as e:
        J.submit(spec, "fake", budget=100)
    assert e.value.exit_code == 1 and "not a usable price" in e.value.message
    assert network_calls(prov) == [] and _store_jobs(home) == []


@pytest.mark.parametrize("quote", [math.nan, math.inf, -5.0])
def test_a_provider_quote_that_is_not_a_price_never_passes_a_budget(prov, spec, home, quote):
    register(prov, estimate_usd=1.0, quote=quote)
    asked = []
    with pytest.raises(BudgetExceeded) as e:
        J.submit(spec, "fake", budget=100, confirm=lambda q: asked.append(q) or True)
    assert "provider's estimate is not a usable price" in e.value.message
    assert asked == []
    assert FakeBackend.provider_state(prov)["jobs"] == {}  # nothing was created
    (job,) = _store_jobs(home)
    assert job.state == "cancelled"


def test_a_provider_quote_that_is_not_a_price_is_unknown_without_a_budget(prov, spec, home):
    register(prov, estimate_usd=1.0, quote=math.nan)
    asked = []
    with pytest.raises(J.Declined):
        J.submit(spec, "fake", confirm=lambda q: asked.append(q) or False)
    (q,) = asked
    assert q.provider_usd is None  # unknown, never nan: the person asked sees no fake figure


def test_plan_within_budget_is_never_true_for_a_figure_that_is_not_a_price():
    from ftclient.budget import within_budget

    assert within_budget(1.0, 2.0) is True and within_budget(3.0, 2.0) is False
    assert within_budget(None, 2.0) is None and within_budget(1.0, None) is None
    for bad in (math.nan, math.inf, -1.0):
        assert within_budget(bad, 2.0) is False
        assert within_budget(1.0, bad) is False


# --------------------------------------------------------------------------- markup in user text

import csv  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

MARKUP_LABELS = ["[/bold]", "[red]", "[link=x]"]
KEY = "sk-" + "abcdefghijklmnopqrstuvwxyz012345"


def _labelled_csv(path: Path, rows: int = 45) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(rows):
            w.writerow([f"message number {i} about the account", MARKUP_LABELS[i % 3]])
    return path


def test_labels_and_paths_with_markup_are_printed_as_text(ftc, tmp_path, ftc_home):
    (tmp_path / "[").mkdir()
    src = _labelled_csv(tmp_path / "[" / "x]in.csv")  # [/x]in.csv
    out_dir = tmp_path / "out[" / "bold]"  # out[/bold]
    r = ftc("data", "prepare", src, "--input-col", "text", "--output-col", "label", "--out-dir", out_dir)
    _clean(r)
    assert r.code == 0, r.err
    for label in MARKUP_LABELS:
        assert label in r.out  # shown as written, in the label table
    assert str(out_dir / "train.jsonl") in r.out
    assert (out_dir / "train.jsonl").is_file()


@pytest.mark.parametrize("content,code", [
    (None, 0),                     # a valid file: the OK line names the path
    ('{"messages": [\n', 1),       # a broken one: the problem table too
])
def test_validate_prints_a_path_with_markup_as_text(ftc, tmp_path, ftc_home, content, code):
    src = _labelled_csv(tmp_path / "in.csv")
    assert ftc("data", "prepare", src, "--input-col", "text", "--output-col", "label",
               "--out-dir", tmp_path / "d").code == 0
    target = tmp_path / "data" / "[" / "x].jsonl"  # data/[/x].jsonl
    target.parent.mkdir(parents=True)
    if content is None:
        shutil.copy(tmp_path / "d" / "train.jsonl", target)
    else:
        target.write_text(content, encoding="utf-8")
    r = ftc("data", "validate", target, "--provider", "openai")
    _clean(r)
    assert r.code == code, (r.out, r.err)
    assert str(target) in r.out


def test_an_ftc_home_with_markup_is_printed_as_text(ftc, tmp_path, monkeypatch):
    home = tmp_path / "home[/bold]"
    monkeypatch.setenv("FTC_HOME", str(home))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    r = ftc("keys", "set", "openai", input=KEY + "\n")
    _clean(r)
    assert r.code == 0 and str(home / "keys.json") in r.err
    assert KEY not in r.out + r.err
    r = ftc("keys", "remove", "openai")
    _clean(r)
    assert r.code == 0 and str(home / "keys.json") in r.err


def test_a_warning_with_markup_is_printed_as_text(ftc, tmp_path, ftc_home):
    spec_path = tmp_path / "job.yaml"
    spec_path.write_text("name: x\ndata:\n  train: '[/bold]missing.jsonl'\n", encoding="utf-8")
    r = ftc("spec", "check", spec_path)
    _clean(r)
    assert r.code == 0 and "[/bold]missing.jsonl" in r.err


# --------------------------------------------------------------------------- a hand-edited store


def test_a_hand_edited_job_row_does_not_crash_list_or_show(ftc, ftc_home):
    with Store() as st:
        bad = st.new_job("fake", {"name": "x"}, model="m[/x]")
        good = st.new_job("fake", {"name": "y"}, model="m")
        for sql in ("UPDATE jobs SET state = '[/bold]garbage', spec_json = '{not json', estimate_usd = 'abc', "
                    "step = 'zz', attempts = 'many', loss = 'x', backend = '[/b]', created_at = x'ff00' WHERE id = ?",):
            st._conn.execute(sql, (bad.id,))
        st._conn.execute("UPDATE jobs SET estimate_usd = 9e999, total_steps = 2.5 WHERE id = ?", (good.id,))
    r = ftc("jobs", "list")
    _clean(r)
    assert r.code == 0 and "[/bold]garbage" in r.out and "m[/x]" in r.out
    r = ftc("jobs", "list", "--json")
    _clean(r)
    rows = {j["id"]: j for j in r.json()}
    assert rows[bad.id]["state"] == "[/bold]garbage" and rows[bad.id]["estimate_usd"] is None
    assert rows[good.id]["estimate_usd"] is None  # infinite: not a figure
    for job_id in (bad.id, good.id):
        for extra in ((), ("--json",)):
            r = ftc("jobs", "show", job_id, "--no-refresh", *extra)
            _clean(r)
            assert r.code == 0, (r.out, r.err)


# --------------------------------------------------------------------------- deep and huge input


def test_content_nested_3000_deep_is_a_data_error_in_cost_estimate(ftc, tmp_path, ftc_home):
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"messages":[{"role":"user","content":' + "[" * 3000 + "]" * 3000
                    + '},{"role":"assistant","content":"x"}]}\n', encoding="utf-8")
    for args in (("cost", "estimate", deep, "--model", "gpt-4o-mini-2024-07-18"), ("cost", "compare", deep)):
        r = ftc(*args)
        _clean(r)
        assert r.code == 1 and "nested too deeply" in r.err and "hint:" in r.err, (r.code, r.err)


def test_epochs_with_5000_digits_is_a_spec_error(ftc, prov, tmp_path, home):
    register(prov)
    spec_path = write_spec(tmp_path / "s")
    spec_path.write_text(spec_path.read_text().replace("epochs: 2", "epochs: " + "9" * 5000))
    for args in (("spec", "check", spec_path), ("train", spec_path, "--backend", "fake", "--yes")):
        r = ftc(*args)
        _clean(r)
        assert r.code == 2 and "digits" in r.err and "hint:" in r.err, (r.code, r.err)
    assert network_calls(prov) == []


# --------------------------------------------------------------------------- full and read-only disks
# A full disk is a file size limit (RLIMIT_FSIZE) in a child process: its writes fail with
# EFBIG, as they would with ENOSPC on a full disk; SIGXFSZ is ignored so the write returns
# the error instead of killing the process.


def _limited(limit_bytes: int):
    import resource
    import signal

    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return pre


def _run(args, *, env_home: Path, limit: int | None = None, input: str | None = None, cwd=None):
    env = {**os.environ, "FTC_HOME": str(env_home)}
    env.pop("OPENAI_API_KEY", None)
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, input=input, cwd=cwd,
                       preexec_fn=_limited(limit) if limit is not None else None, timeout=120)
    return p


def _ftc_run(*args, **kw):
    p = _run(["-m", "ftclient", *[str(a) for a in args]], **kw)

    class R:
        code, out, err = p.returncode, p.stdout, p.stderr
    return R


def test_prepare_on_a_full_disk_is_one_message_and_leaves_nothing(tmp_path):
    src = _labelled_csv(tmp_path / "in.csv")
    out_dir = tmp_path / "out"
    r = _ftc_run("data", "prepare", src, "--input-col", "text", "--output-col", "label", "--out-dir", out_dir,
                 env_home=tmp_path / "home", limit=2000)
    _clean(r)
    assert r.code == 1 and "cannot write" in r.err and "hint:" in r.err, (r.code, r.err)
    assert not out_dir.exists() or not any(out_dir.iterdir())


def test_an_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("the old report\n", encoding="utf-8")
    code = ("from ftclient.fileio import write_text_atomic\n"
            "from ftclient.errors import FtcError\n"
            "try:\n"
            f"    write_text_atomic({str(target)!r}, 'x' * 100000)\n"
            "except FtcError as e:\n"
            "    print(type(e).__name__, e.exit_code, e.message, '|', e.hint)\n")
    p = _run(["-c", code], env_home=tmp_path / "home", limit=4096)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("DataError 1 ") and "cannot write" in p.stdout, p.stdout
    assert target.read_text(encoding="utf-8") == "the old report\n"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["report.json"]  # no temporary file left


def test_keys_set_on_a_full_ftc_home_is_one_message(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    r = _ftc_run("keys", "set", "openai", env_home=home, limit=10, input=KEY + "\n")
    _clean(r)
    assert r.code == 1 and "keys.json" in r.err and "cannot write" in r.err and "hint:" in r.err, (r.code, r.err)
    assert KEY not in r.out + r.err
    assert not (home / "keys.json").exists() and list(home.iterdir()) == []


class _ReadOnly:
    """Make a directory (and the files in it) read-only for this process, for real: chmod for
    an ordinary user; for root (whom modes do not stop) the immutable attribute."""

    def __init__(self, d: Path):
        self.d, self.paths, self.how = d, [d, *d.iterdir()], None

    def __enter__(self):
        if os.geteuid() != 0:
            for p in self.paths:
                p.chmod(0o555 if p.is_dir() else 0o444)
            self.how = "chmod"
            return self
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: cannot make a directory read-only")
        p = subprocess.run(["chattr", "+i", *map(str, self.paths)], capture_output=True)
        if p.returncode != 0:
            pytest.skip("the file system does not take the immutable attribute")
        self.how = "chattr"
        return self

    def __exit__(self, *exc):
        if self.how == "chmod":
            for p in self.paths:
                p.chmod(0o755 if p.is_dir() else 0o644)
        elif self.how == "chattr":
            subprocess.run(["chattr", "-i", *map(str, self.paths)], capture_output=True)


def test_keys_set_on_a_read_only_ftc_home_is_one_message(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with _ReadOnly(home):
        r = _ftc_run("keys", "set", "openai", env_home=home, input=KEY + "\n")
    _clean(r)
    assert r.code == 2 and "keys.json" in r.err and "cannot write" in r.err and "FTC_HOME" in r.err, (r.code, r.err)
    assert KEY not in r.out + r.err


# --------------------------------------------------------------------------- broken or unwritable store


def _healthy_store(home: Path) -> tuple[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    with Store(home / "ftc.db") as st:
        job = st.new_job("openai", {"name": "kept"}, model="m")
    return job.id, hashlib.sha256((home / "ftc.db").read_bytes()).hexdigest()


def _still_there(home: Path, job_id: str) -> None:
    with Store(home / "ftc.db") as st:
        assert st.get_job(job_id).id == job_id


def test_a_full_disk_is_not_reported_as_a_broken_store(tmp_path):
    home = tmp_path / "home"
    job_id, _ = _healthy_store(home)
    r = _ftc_run("jobs", "list", env_home=home, limit=0)
    _clean(r)
    assert r.code == 2 and "cannot be written" in r.err and "hint:" in r.err, (r.code, r.err)
    assert "Move the file" not in r.err and "move the file" not in r.err and "keep it" in r.err
    _still_there(home, job_id)


def test_a_full_disk_while_recording_a_job_is_one_message(tmp_path):
    home = tmp_path / "home"
    job_id, _ = _healthy_store(home)
    code = ("import resource\n"
            "from ftclient.store import Store\n"
            "from ftclient.errors import FtcError\n"
            f"st = Store({str(home / 'ftc.db')!r})\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))\n"
            "try:\n"
            "    st.new_job('openai', {'name': 'x' * 100000})\n"
            "except FtcError as e:\n"
            "    print(type(e).__name__, e.exit_code, e.message, '|', e.hint)\n")
    p = _run(["-c", code], env_home=home, limit=None)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("StoreError 1 ") and "cannot be written" in p.stdout, p.stdout
    assert "keep it" in p.stdout and "move the file" not in p.stdout.lower()
    _still_there(home, job_id)


def test_a_read_only_store_is_not_reported_as_a_broken_store(tmp_path):
    home = tmp_path / "home"
    job_id, sha = _healthy_store(home)
    with _ReadOnly(home):
        r = _ftc_run("jobs", "list", env_home=home)
    _clean(r)
    if r.code == 0:  # a store that only needs reading may well be read
        assert job_id in r.out
    else:
        assert r.code == 2 and "cannot be written" in r.err and "keep it" in r.err, (r.code, r.err)
        assert "move the file" not in r.err.lower()
    _still_there(home, job_id)


@pytest.mark.parametrize("content", [b"this is not a database at all", b"SQLite format 3\x00" + b"\xff" * 5000])
def test_a_broken_store_is_reported_as_one_to_move_away(ftc, ftc_home, content):
    ftc_home.mkdir(parents=True)
    (ftc_home / "ftc.db").write_bytes(content)
    r = ftc("jobs", "list")
    _clean(r)
    assert r.code == 2 and "not a usable ftc job store" in r.err and "move the file away" in r.err, r.err
