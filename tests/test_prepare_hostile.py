"""``ftc data prepare`` and the data readers against hostile input: lone surrogates,
non-finite numbers, empty paths, FIFOs and other special files, and the temporary files
a killed run leaves behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ftclient.cli.main import main
from ftclient.data.prepare import prepare
from ftclient import fileio
from ftclient.fileio import atomic_writer

def run_cli(*args: str, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return e.value.code, out, " ".join(err.split())


def _rows(n: int = 6) -> list[dict]:
    return [{"prompt": f"question number {i} about something", "completion": f"answer {i}"} for i in range(n)]


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _valid_utf8(path: Path) -> None:
    path.read_bytes().decode("utf-8")  # strict


# --- lone surrogates --------------------------------------------------------------------------


@pytest.mark.parametrize("container", ["jsonl", "json"])
def test_a_lone_surrogate_is_a_data_error_with_its_line_and_nothing_is_written(tmp_path, capsys, container):
    rows = [json.dumps(r) for r in _rows()]
    rows.insert(3, '{"prompt": "bad \\ud800 text", "completion": "x"}')  # line 4
    if container == "jsonl":
        src = _jsonl(tmp_path / "d.jsonl", rows)
    else:
        src = tmp_path / "d.json"
        src.write_text("[\n" + ",\n".join(rows) + "\n]\n", encoding="utf-8")  # the bad record on line 5
    out = tmp_path / "o"
    rc, _, err = run_cli("data", "prepare", str(src), "--out-dir", str(out), capsys=capsys)
    line = 4 if container == "jsonl" else 5
    assert rc == 1, err
    assert f"d.{container}:{line}: a JSON string holds a lone surrogate escape (\\ud800)" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_surrogate_pairs_and_escaped_backslashes_are_kept(tmp_path, capsys):
    rows = [json.dumps(r) for r in _rows()]
    rows.append('{"prompt": "emoji \\ud83d\\ude00 here", "completion": "a path C:\\\\ud800"}')
    src = _jsonl(tmp_path / "d.jsonl", rows)
    out = tmp_path / "o"
    rc, _, err = run_cli("data", "prepare", str(src), "--out-dir", str(out), "--eval-fraction", "0", capsys=capsys)
    assert rc == 0, err
    _valid_utf8(out / "train.jsonl")
    text = (out / "train.jsonl").read_text(encoding="utf-8")
    assert "emoji \U0001F600 here" in text and "C:\\\\ud800" in text
    rc, _, err = run_cli("data", "validate", str(out / "train.jsonl"), "--provider", "together", capsys=capsys)
    assert rc in (0, 1) and "not valid UTF-8" not in err, err


def test_undecodable_system_prompt_bytes_are_a_usage_error(tmp_path):
    src = _jsonl(tmp_path / "d.jsonl", [json.dumps(r) for r in _rows()])
    with pytest.raises(Exception) as e:
        prepare(src, tmp_path / "o", system="route \udcff this")  # what argv gives for the byte 0xff
    assert getattr(e.value, "exit_code", None) == 2 and "--system" in str(e.value)
    assert not (tmp_path / "o").exists()


# --- non-finite numbers -------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("container", ["jsonl", "json"])
def test_a_non_finite_number_is_a_data_error_with_its_line(tmp_path, capsys, number, container):
    rows = [json.dumps(r) for r in _rows()]
    rows.insert(2, '{"prompt": "how big?", "completion": %s}' % number)  # line 3
    if container == "jsonl":
        src = _jsonl(tmp_path / "d.jsonl", rows)
    else:
        src = tmp_path / "d.json"
        src.write_text("[\n" + ",\n".join(rows) + "\n]\n", encoding="utf-8")  # line 4
    out = tmp_path / "o"
    rc, _, err = run_cli("data", "prepare", str(src), "--out-dir", str(out), capsys=capsys)
    line = 3 if container == "jsonl" else 4
    assert rc == 1, err
    assert f"d.{container}:{line}: " in err and number in err
    assert "inf" not in err.replace("Infinity", "").replace("finite", "")
    assert not out.exists()


def test_large_finite_numbers_are_still_text(tmp_path, capsys):
    rows = [json.dumps(r) for r in _rows()] + ['{"prompt": "how big?", "completion": 1e300}']
    src = _jsonl(tmp_path / "d.jsonl", rows)
    out = tmp_path / "o"
    rc, _, err = run_cli("data", "prepare", str(src), "--out-dir", str(out), "--eval-fraction", "0", capsys=capsys)
    assert rc == 0, err
    assert '"content":"1e+300"' in (out / "train.jsonl").read_text()


def test_a_long_finite_number_across_the_read_buffer_is_not_taken_for_infinity(tmp_path):
    # 400 digits, a point, then an exponent that brings it back down: a prefix of it overflows
    number = "1" + "0" * 399 + ".5e-300"
    pad = "x" * (65536 - 40)  # puts the number across the first 64 KiB chunk
    src = tmp_path / "d.json"
    src.write_text('[{"prompt": "%s", "completion": "a"},\n {"prompt": "b", "completion": %s}]' % (pad, number))
    rep = prepare(src, tmp_path / "o", eval_fraction=0)
    assert rep.counts["kept"] == 2


# --- empty paths, special files -----------------------------------------------------------------


def test_an_empty_out_dir_or_input_is_a_usage_error(tmp_path, capsys, monkeypatch):
    src = _jsonl(tmp_path / "d.jsonl", [json.dumps(r) for r in _rows()])
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    rc, _, err = run_cli("data", "prepare", str(src), "--out-dir", "", capsys=capsys)
    assert rc == 2 and "--out-dir is empty" in err, err
    rc, _, err = run_cli("data", "prepare", "", "--out-dir", "o", capsys=capsys)
    assert rc == 2 and "empty" in err, err
    rc, _, err = run_cli("data", "validate", "", "--provider", "openai", capsys=capsys)
    assert rc == 2, err
    assert list(work.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_not_a_regular_file_and_is_not_read(tmp_path, capsys):
    fifo = tmp_path / "data.jsonl"
    os.mkfifo(fifo)
    # No writer ever opens the FIFO: reading it would block the test (the alarm ends it).
    old = signal.signal(signal.SIGALRM, lambda *a: (_ for _ in ()).throw(TimeoutError("blocked on the FIFO")))
    signal.alarm(20)
    try:
        rc, _, err = run_cli("data", "prepare", str(fifo), "--out-dir", str(tmp_path / "o"), capsys=capsys)
        assert rc == 2 and "not a regular file (a FIFO" in err, err
        rc, _, err = run_cli("data", "validate", str(fifo), "--provider", "openai", capsys=capsys)
        assert rc == 2 and "not a regular file" in err, err
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    assert not (tmp_path / "o").exists()


def test_a_socket_a_device_and_a_directory_are_not_regular_files(tmp_path, capsys):
    cases = [str(tmp_path)]
    if os.path.exists("/dev/null"):
        cases.append("/dev/null")
    if hasattr(socket, "AF_UNIX"):
        path = tmp_path / "s.jsonl"
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(str(path))
        cases.append(str(path))
    for c in cases:
        rc, _, err = run_cli("data", "prepare", c, "--out-dir", str(tmp_path / "o"), capsys=capsys)
        assert rc == 2 and "not a regular file" in err, (c, err)


# --- temporary files of killed runs -------------------------------------------------------------

KILLED_WRITER = """
import os, signal, sys
from ftclient.fileio import atomic_writer
with atomic_writer(sys.argv[1], "wb") as f:
    f.write(b"x" * 100000)
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _temps(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


def _age(d: Path, seconds: float) -> None:
    for name in _temps(d):
        t = time.time() - seconds
        os.utime(d / name, (t, t))


def test_a_killed_prepare_leaves_temp_files_that_the_next_run_removes(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    for name in ("train.jsonl", "eval.jsonl", "report.json"):
        p = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(out / name)], timeout=60)
        assert p.returncode == -signal.SIGKILL
    left = _temps(out)
    assert len(left) == 3 and all(n.startswith((".train.jsonl.", ".eval.jsonl.", ".report.json.")) for n in left)
    _age(out, getattr(fileio, 'STALE_TEMP_AGE_S', 10) + 5)
    src = _jsonl(tmp_path / "d.jsonl", ["{bad json"])  # even a run that fails on the data cleans up
    rc, _, err = run_cli("data", "prepare", str(src), "--out-dir", str(out), capsys=capsys)
    assert rc == 1, err
    assert _temps(out) == []
    assert list(out.iterdir()) == []


def test_a_live_writers_temp_file_is_left_alone(tmp_path):
    target = tmp_path / "train.jsonl"
    other = tmp_path / ".other.jsonl.abcdefgh.tmp"  # not a temp of this target
    other.write_text("x")
    started, finish = threading.Event(), threading.Event()
    removed: list[int] = []

    def writer() -> None:
        with atomic_writer(target) as f:
            f.write("partial")
            f.flush()
            started.set()
            finish.wait(30)

    t = threading.Thread(target=writer)
    t.start()
    try:
        assert started.wait(30)
        _age(tmp_path, getattr(fileio, 'STALE_TEMP_AGE_S', 10) + 5)
        # another process cleaning up: the live writer holds its lock
        code = ("import sys; from ftclient.fileio import remove_stale_temps; "
                "print(remove_stale_temps(sys.argv[1], ['train.jsonl']))")
        p = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
        removed.append(int(p.stdout))
    finally:
        finish.set()
        t.join(30)
    assert removed == [0]
    assert target.read_text() == "partial"
    assert other.exists() and _temps(tmp_path) == [other.name]


def test_a_fresh_unlocked_temp_file_is_left_alone(tmp_path):
    fresh = tmp_path / ".train.jsonl.abcd1234.tmp"
    fresh.write_text("x")
    assert fileio.remove_stale_temps(tmp_path, ["train.jsonl"]) == 0 and fresh.exists()
    _age(tmp_path, getattr(fileio, 'STALE_TEMP_AGE_S', 10) + 5)
    assert fileio.remove_stale_temps(tmp_path, ["train.jsonl"]) == 1 and not fresh.exists()


def test_empty_paths_of_train_and_jobs_download_are_usage_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    rc, _, err = run_cli("train", "", "--backend", "openai", "--dry-run", capsys=capsys)
    assert rc == 2 and "SPEC is empty" in err, err
    rc, _, err = run_cli("jobs", "download", "ftc-x", "--out", "", capsys=capsys)
    assert rc == 2 and "--out is empty" in err, err
