"""A local job whose worker keeps dying fails with the last distinct lines of its log,
each whole: the message the demo (and ``ftc jobs show``) prints never starts mid-word
and never repeats the same line once per restart."""

from __future__ import annotations

import json

from ftclient.local_backend.backend import LocalBackend
from ftclient.local_backend.logtail import log_tail
from ftclient.local_backend import worker as w

DIED = ("/opt/venv/bin/python3: Error while finding module specification for 'ftclient.local_backend.worker' "
        "(ModuleNotFoundError: No module named 'ftclient.local_backend')")


def test_log_tail_keeps_lines_whole_and_distinct(tmp_path):
    log = tmp_path / "train.log"
    noise = "".join(f"step {i}: loss 0.{i:03d} and some more words to make the log long\n" for i in range(200))
    log.write_text(noise + (DIED + "\n") * 4, encoding="utf-8")
    assert log_tail(log) == "\n".join(
        [f"step {i}: loss 0.{i:03d} and some more words to make the log long" for i in (197, 198, 199)] + [DIED])
    assert log_tail(log, lines=1) == DIED
    # a short budget keeps fewer lines, never a piece of one
    assert log_tail(log, max_chars=len(DIED) + 10) == DIED
    # a window that starts inside a line leaves that partial line out
    out = log_tail(log, window=len(DIED) * 2 + 30)
    assert out.splitlines()[-1] == DIED and all(line in (DIED,) or line.startswith("step ") for line in out.splitlines())
    # a line that repeats is shown once, where it last appears
    log.write_text("Traceback (most recent call last):\nKeyError: 'x'\nTraceback (most recent call last):\n"
                   "ValueError: bad\n\n", encoding="utf-8")
    assert log_tail(log).splitlines() == ["KeyError: 'x'", "Traceback (most recent call last):", "ValueError: bad"]
    # one line longer than the budget keeps its beginning
    long = "E" * 3000
    log.write_text(long + "\n", encoding="utf-8")
    assert log_tail(log, max_chars=100) == "E" * 97 + "..."
    assert log_tail(tmp_path / "missing.log") == ""


def test_a_job_whose_worker_keeps_dying_fails_with_the_whole_last_line_once(tmp_path, monkeypatch):
    from ftclient import jobs as J
    from ftclient.paths import job_dir
    from ftclient.store import Store

    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    with Store() as st:
        job = st.new_job("local", {"name": "x"}, model="default")
        st.update_state(job.id, "queued", provider_job_id=f"local-{job.id}")
        st.release(job.id)
    d = job_dir(job.id, create=True)
    (d / w.SPEC_FILE).write_text(json.dumps({"name": "x"}), encoding="utf-8")
    # the worker was restarted 3 times and is gone (no process has this pid)
    (d / w.WORKER_FILE).write_text(json.dumps({"pid": 2 ** 22 + 12345, "restarts": 3}), encoding="utf-8")
    # a log whose last 600 bytes start in the middle of a word, the same line once per start
    first = "starting the training worker for " + job.id
    (d / w.LOG_FILE).write_text(first + "\n" + (DIED + "\n") * 4, encoding="utf-8")
    assert len(DIED) + 1 < 600 < 4 * (len(DIED) + 1)

    j, status = J.refresh(job.id, backend=LocalBackend(max_restarts=3))
    assert j.state == "failed" and status.state.value == "failed"
    head, _, tail = j.error.partition(":\n")
    assert head.startswith("the training worker died 4 times without finishing")
    assert tail == first + "\n" + DIED  # whole lines, each once
    assert j.error.count("Error while finding module specification") == 1
