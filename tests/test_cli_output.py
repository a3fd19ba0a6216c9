"""Tables written to a pipe or a log are laid out at their natural width: no name is split
mid-word or cropped to 80 columns. A terminal, or COLUMNS, keeps its own width."""

from __future__ import annotations

import json
import os

import pytest


@pytest.fixture
def no_columns(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    return {k: v for k, v in os.environ.items() if k != "COLUMNS"}


def train_file(tmp_path, rows: int = 20):
    p = tmp_path / "train.jsonl"
    with open(p, "w", encoding="utf-8") as f:
        for i in range(rows):
            f.write(json.dumps({"messages": [{"role": "user", "content": f"where is my card number {i}"},
                                             {"role": "assistant", "content": "card_arrival"}]}) + "\n")
    return p


def _line_with(text: str, out: str) -> str | None:
    return next((line for line in out.splitlines() if text in line), None)


def test_cost_compare_to_a_pipe_keeps_every_backend_name_whole(tmp_path, ftc_proc, no_columns):
    data = train_file(tmp_path)
    env = {"FTC_HOME": str(tmp_path / "home")}
    r = ftc_proc("cost", "compare", data, "--json", env=env)
    assert r.code == 0, r.err
    labels = [row["label"] for row in json.loads(r.out)["rows"]]
    assert max(len(lab) for lab in labels) > 30  # long enough to have been cut at 80 columns
    r = ftc_proc("cost", "compare", data, env=env)  # stdout is a pipe here
    assert r.code == 0, r.err
    for lab in labels:
        line = _line_with(lab, r.out)
        assert line is not None, f"{lab!r} is not whole on one line of:\n{r.out}"
        assert line.lstrip().startswith(("│", "|")) or line.startswith("  ")  # a table row (or its note)
    # the table's rows are wider than 80 columns now, and nothing was cropped with an ellipsis
    assert max(len(line) for line in r.out.splitlines()) > 80 and "…" not in r.out


def test_columns_still_sets_the_width(tmp_path, ftc_proc, no_columns):
    data = train_file(tmp_path)
    r = ftc_proc("cost", "compare", data, env={"FTC_HOME": str(tmp_path / "home"), "COLUMNS": "70"})
    assert r.code == 0
    table = [line for line in r.out.splitlines() if line.startswith(("┃", "│", "┏", "└"))]
    assert table and max(len(line) for line in table) <= 70


def test_jobs_list_to_a_pipe_shows_whole_names(tmp_path, ftc, no_columns, monkeypatch):
    from ftclient.store import Store

    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    base = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    tuned = "someone_1234/Meta-Llama-3.1-8B-Instruct-Reference-support-intents-5e7c1a2b"
    with Store() as st:
        job = st.new_job("together", {"name": "x"}, model=base, estimate_usd=12.5)
        st.update_state(job.id, "running")
        st.update_state(job.id, "succeeded", fine_tuned_model=tuned, provider_job_id="ft-0123456789")
    r = ftc("jobs", "list")  # CliRunner's stdout is no terminal
    assert r.code == 0, r.err
    line = _line_with(job.id, r.out)
    assert line is not None, r.out
    for text in (job.id, "together", "succeeded", base, tuned, "$12.50"):
        assert text in line, f"{text!r} not whole on the job's line:\n{r.out}"


def test_a_terminal_keeps_its_own_width(monkeypatch):
    """A console on a terminal is not widened (its width comes from the terminal or COLUMNS)."""
    import io

    from ftclient.cli.output import PIPE_WIDTH, _Console

    monkeypatch.delenv("COLUMNS", raising=False)
    piped = _Console(file=io.StringIO())
    assert piped.width == PIPE_WIDTH
    tty = _Console(file=io.StringIO(), force_terminal=True)
    assert tty.width != PIPE_WIDTH
    monkeypatch.setenv("COLUMNS", "100")
    assert _Console(file=io.StringIO()).width == 100
    fixed = _Console(file=io.StringIO(), width=60)
    assert fixed.width == 60


def test_a_hidden_progress_bar_does_not_import_rich_progress():
    """--json, or stderr that is no terminal: the commands' bar calls do nothing, and rich's
    progress module is not imported for it; on a terminal the bar is rich's."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from ftclient.cli import output\n"
            "with output.progress(enabled={enabled}) as b:\n"
            "    t = b.add_task('x', total=3); b.update(t, completed=1); b.advance(t); b.remove_task(t)\n"
            "    b.stop(); b.start()\n"
            "    seen = (type(b).__name__, b.disable, 'rich.progress' in sys.modules)\n"
            "print(*seen)\n")  # after the bar: a live bar on a terminal takes over stdout
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}

    def run(enabled: bool, **extra: str) -> str:
        r = subprocess.run([sys.executable, "-c", code.format(enabled=enabled)], capture_output=True, text=True,
                           env={**env, **extra}, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    assert run(False) == "_Hidden True False"
    assert run(True) == "_Hidden True False"  # stderr is a pipe here
    assert run(True, FORCE_COLOR="1") == "Progress False True"  # a terminal, as rich sees it
    assert run(False, FORCE_COLOR="1") == "_Hidden True False"
