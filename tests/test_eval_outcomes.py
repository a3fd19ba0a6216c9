"""How an evaluation's outcome is shown and counted: failure reasons grouped (warning,
``ftc eval show``, ``--json``), the ``partial`` state and exit 1, latency that spans
sessions, ``ftc eval list`` at 80 columns, ``ftc chat`` with ``ftc eval``'s model
references, and ``ftc compare``'s names, all-zero scores and label placement.

The server is the local OpenAI-compatible fake (tests/compat_server.py) talked to through
the real openai SDK; expected figures come from each test's own set-up.
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compat_server import CompatServer, status  # noqa: E402

from ftclient.retry import RetryPolicy  # noqa: E402
from ftclient.store import Store, failure_reasons, format_failures  # noqa: E402

FAST = RetryPolicy(base=0.01, max_wait=0.05, deadline=30)
PINNED = "Server is pinned to 'HuggingFaceTB/SmolLM2-135M-Instruct'"


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    for var in ("OPENAI_API_KEY", "TOGETHER_API_KEY", "OPENAI_BASE_URL", "TOGETHER_BASE_URL",
                "OPENAI_COMPATIBLE_API_KEY", "FTC_PRICES", "COLUMNS"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server(monkeypatch):
    pytest.importorskip("openai")
    srv = CompatServer()
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", srv.api_key)
    yield srv
    srv.close()


def q(i: int) -> str:
    return f"question {i}"


def dataset(tmp_path: Path, n: int) -> tuple[Path, dict]:
    rows = [{"messages": [{"role": "user", "content": q(i)}, {"role": "assistant", "content": f"a{i}"}]}
            for i in range(n)]
    p = tmp_path / "eval.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return p, {q(i): f"a{i}" for i in range(n)}


def ref(srv: CompatServer) -> str:
    return f"openai-compatible:{srv.base_url}#m"


# --------------------------------------------------------------------------- failure reasons


def test_failure_reasons_are_grouped_most_frequent_first():
    errors = ["timeout"] * 3 + [None] * 4 + ["HTTP 400: pinned\nsecond line", "HTTP 400:  pinned"] + \
        [f"odd {i}" for i in range(6)]
    groups = failure_reasons(errors, limit=3)
    assert groups[0] == {"reason": "timeout", "count": 3}
    assert groups[1] == {"reason": "HTTP 400: pinned", "count": 2}  # first line, whitespace made one
    assert groups[2] == {"reason": "odd 0", "count": 1}
    assert groups[3] == {"reason": "5 other reasons", "count": 5}
    assert sum(g["count"] for g in groups) == len([e for e in errors if e is not None])
    assert format_failures(groups[:2]) == "5 failed: 3 x timeout; 2 x HTTP 400: pinned"
    # a request id differs per request and the model asked is the same for all: left out
    same = failure_reasons([f"openai-compatible rejected chat with ft:m:acme::x1: HTTP 400 bad request: {PINNED} "
                            f"(request id req_{i})" for i in range(3)])
    assert same == [{"reason": f"HTTP 400 bad request: {PINNED}", "count": 3}]


def _fail_some(server: CompatServer, n: int, pinned: set, broken: set) -> None:
    server.fail(status(400, message=PINNED), when=lambda p: p in {q(i) for i in pinned}, times=10 * n)
    server.fail(status(422, message="prompt too long"), when=lambda p: p in {q(i) for i in broken}, times=10 * n)


def test_failed_examples_reasons_in_the_warning_show_and_json_and_the_run_is_partial(ftc, server, tmp_path):
    n, pinned, broken = 10, {1, 4, 7}, {2}
    data, answers = dataset(tmp_path, n)
    server.answer = answers
    _fail_some(server, n, pinned, broken)
    r = ftc("eval", ref(server), "--data", data, "--json", "--concurrency", "1")
    assert r.code == 1, r.err  # any failed example: exit 1
    s = r.json()
    assert (s["completed"], s["failed"]) == (n - 4, 4)
    counts = {g["count"]: g["reason"] for g in s["failures"]}
    assert set(counts) == {3, 1} and PINNED in counts[3] and "prompt too long" in counts[1]
    assert s["failures"][0]["count"] == 3  # most frequent first
    # the end-of-run warning names the reasons with their counts
    assert "4 failed: 3 x" in r.err and PINNED in r.err and "1 x" in r.err and "prompt too long" in r.err
    assert "partial" in r.err
    with Store(tmp_path / "home" / "ftc.db") as st:
        assert st.get_eval_run(s["run_id"]).state == "partial"
    shown = ftc("eval", "show", s["run_id"], "--json")
    assert shown.code == 0 and shown.json()["failures"] == s["failures"]
    human = ftc("eval", "show", s["run_id"])
    assert human.code == 0 and "why failed" in human.out and "3 x" in human.out and PINNED in human.out
    assert "(partial)" in human.out
    listed = ftc("eval", "list")
    assert "partial" in listed.out


def test_rerunning_a_partial_run_retries_only_the_failed_examples_and_completes(ftc, server, tmp_path):
    n = 6
    data, answers = dataset(tmp_path, n)
    server.answer = answers
    server.fail(status(400, message=PINNED), when=lambda p: p == q(3), times=1)
    r = ftc("eval", ref(server), "--data", data, "--json")
    assert r.code == 1 and r.json()["failed"] == 1
    server.reset_counters()
    r2 = ftc("eval", ref(server), "--data", data, "--json")
    assert r2.code == 0, r2.err
    assert server.requests == 1 and server.prompts == [q(3)]
    s = r2.json()
    assert (s["completed"], s["failed"], s["failures"]) == (n, 0, [])
    with Store(tmp_path / "home" / "ftc.db") as st:
        assert st.get_eval_run(s["run_id"]).state == "complete"


def test_show_groups_the_reasons_of_a_summary_stored_before_they_were_recorded(ftc, tmp_path):
    with Store(tmp_path / "home" / "ftc.db") as st:
        st.put_eval_run("eval-0ld000000001", model_ref="openai:gpt-4o-mini", data_path="d.jsonl",
                        data_sha256="0" * 64, params={})
        for i in range(3):
            st.save_eval_result("eval-0ld000000001", idx=i, example_key=f"k{i}", output=None, latency_s=None,
                                tokens_in=None, tokens_out=None, error="HTTP 500 internal server error")
        old = {"run_id": "eval-0ld000000001", "model_ref": "openai:gpt-4o-mini", "backend": "openai",
               "model": "gpt-4o-mini", "data": "d.jsonl", "examples": 3, "completed": 0, "failed": 3,
               "metric": "exact", "metrics": {"score": 0.0}}
        st.finish_eval_run("eval-0ld000000001", old, state="complete")
    r = ftc("eval", "show", "eval-0ld", "--json")
    assert r.code == 0 and r.json()["failures"] == [{"reason": "HTTP 500 internal server error", "count": 3}]


# --------------------------------------------------------------------------- sessions


def test_a_resumed_runs_latency_says_it_spans_sessions(ftc, server, tmp_path):
    n = 6
    data, answers = dataset(tmp_path, n)
    server.answer = answers
    server.fail(status(400, message=PINNED), when=lambda p: p in (q(0), q(5)), times=2)
    first = ftc("eval", ref(server), "--data", data, "--json")
    assert first.code == 1 and first.json()["sessions"] == 1
    assert not any("sessions" in x for x in first.json()["notes"])
    second = ftc("eval", ref(server), "--data", data, "--json")
    s = second.json()
    assert second.code == 0 and s["sessions"] == 2
    assert any("span 2 sessions" in x and "2 answer(s) from the latest, 4 from earlier" in x for x in s["notes"])
    human = ftc("eval", "show", s["run_id"])
    assert "from 2 sessions" in human.out
    with Store(tmp_path / "home" / "ftc.db") as st:
        run = st.get_eval_run(s["run_id"])
        by_session = sorted(r.session for r in st.eval_results(run.id).values())
    assert run.sessions == 2 and by_session == [1, 1, 1, 1, 2, 2]
    # --fresh starts the count over
    third = ftc("eval", ref(server), "--data", data, "--json", "--fresh")
    assert third.code == 0 and third.json()["sessions"] == 1


def test_the_compare_report_caveats_latency_from_several_sessions():
    from ftclient.report import build_report

    from test_report import run

    r = build_report([dict(run("eval-a", "openai", "gpt-4o-mini", score=0.8, cost_1k=0.1), sessions=3),
                      dict(run("eval-b", "openai", "gpt-4.1", score=0.8, cost_1k=0.5), sessions=1)],
                     queries_per_month=1000)
    assert "latency_sessions" in r.option("eval-a").caveat_kinds()
    assert "3 sessions" in " ".join(c["text"] for c in r.option("eval-a").caveats)
    assert "latency_sessions" not in r.option("eval-b").caveat_kinds()


# --------------------------------------------------------------------------- ftc compare


def _store(summaries: list, states: dict) -> None:
    with Store() as st:
        for s in summaries:
            st.put_eval_run(s["run_id"], model_ref=s["model_ref"], data_path=s["data"], data_sha256=s["data_sha256"],
                            params={})
            st.finish_eval_run(s["run_id"], s, state=states.get(s["run_id"], "complete"))


def test_compare_takes_a_partial_run_with_a_caveat_naming_the_reasons(ftc, tmp_path):
    from test_report import run

    part = dict(run("eval-part", "openai", "gpt-4o-mini", score=0.8, cost_1k=0.1, failed=38, examples=40),
                failures=[{"reason": "read timeout", "count": 30}, {"reason": PINNED, "count": 8}])
    full = run("eval-full", "openai", "gpt-4.1", score=0.8, cost_1k=0.5)
    _store([part, full], {"eval-part": "partial"})
    r = ftc("compare", "eval-part", "eval-full", "--out", tmp_path / "rep", "--json")
    assert r.code == 0, r.err
    o = next(x for x in r.json()["options"] if x["run_id"] == "eval-part")
    text = " ".join(c["text"] for c in o["caveats"])
    assert "partial" in text and "38 failed: 30 x read timeout; 8 x" in text and PINNED in text


def test_every_option_scoring_zero_is_not_a_recommendation():
    from ftclient.report import build_report

    from test_report import run

    r = build_report([run("eval-a", "openai", "gpt-4o-mini", score=0.0, cost_1k=0.1),
                      run("eval-b", "openai", "gpt-4.1", score=0.0, cost_1k=0.5)], queries_per_month=1000)
    rec = r.recommendation
    assert rec["recommended"] is None
    assert "No option answered any example right" in rec["text"] and "most accurate" not in rec["text"]
    assert r.winner_by_volume == []
    md = r.to_markdown(None)
    assert "within the tolerance" not in md and "**" not in rec["text"]
    # one option above 0 is still recommended as before
    r2 = build_report([run("eval-a", "openai", "gpt-4o-mini", score=0.0, cost_1k=0.1),
                       run("eval-b", "openai", "gpt-4.1", score=0.05, cost_1k=0.5)], queries_per_month=1000)
    assert r2.recommendation["recommended"] == r2.option("eval-b").name


def test_one_model_is_named_the_same_way_whichever_backend_served_it():
    from ftclient.report import build_report

    from test_report import run

    served = run("eval-srv", "openai-compatible", "SmolLM2-135M-Instruct.Q4_1", score=0.5, base=None)
    served["base_model"] = None
    local = run("eval-loc", "local", "default", base="default", score=0.5)
    gguf = run("eval-gguf", "local", "/models/SmolLM2-135M-Instruct-Q4_1.gguf", score=0.5)
    r = build_report([served, local, gguf], queries_per_month=1000)
    names = {o.run_id: o.name for o in r.options}
    assert names["eval-loc"] == "local:SmolLM2-135M-Instruct"
    assert names["eval-srv"] == "openai-compatible:SmolLM2-135M-Instruct (Q4_1)"
    assert names["eval-gguf"] == "local:SmolLM2-135M-Instruct (Q4_1)"


def _label_boxes(fig):
    from matplotlib.text import Annotation, Text

    fig.canvas.draw()  # every label where it is drawn
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    return [Text.get_window_extent(t, renderer) for t in ax.get_children() if isinstance(t, Annotation)]


def test_report_png_labels_do_not_overlap(monkeypatch):
    pytest.importorskip("matplotlib")
    from ftclient import report as R
    from ftclient.report import figure

    from test_report import run

    # five options with almost the same score and cost: their labels start on top of each other
    summaries = [run(f"eval-{i}", "openai", f"gpt-4o-mini-variant-{i}", score=0.80 + i * 0.001, cost_1k=0.10 + i * 1e-4)
                 for i in range(5)]
    rep = R.build_report(summaries, queries_per_month=1000)

    def overlapping(boxes):
        return [(a, b) for a, b in itertools.combinations(boxes, 2) if a.overlaps(b)]

    boxes = _label_boxes(R.render_figure(rep))
    assert len(boxes) == 5 and not overlapping(boxes)
    # the same figure without the placement: the labels do overlap (the set-up is a real test)
    monkeypatch.setattr(figure, "_place_labels", lambda *a, **k: None)
    assert overlapping(_label_boxes(R.render_figure(rep)))


# --------------------------------------------------------------------------- ftc eval list


def test_eval_list_at_80_columns_keeps_key_columns_whole(ftc_proc, tmp_path):
    home = tmp_path / "home"
    with Store(home / "ftc.db") as st:
        for i, state in enumerate(("complete", "partial", "interrupted")):
            rid = f"eval-{i:012d}"
            mref = f"openai-compatible:http://127.0.0.1:8000/v1#SmolLM2-135M-Instruct-{i}"
            st.put_eval_run(rid, model_ref=mref, data_path="/very/long/path/to/data/eval.jsonl",
                            data_sha256="0" * 64, params={})
            st.finish_eval_run(rid, {"metric": "contains", "metrics": {"score": 0.8125}, "completed": 38,
                                     "examples": 40, "cost_per_1k_queries_usd": 0.0123}, state=state)
    r = ftc_proc("eval", "list", env={"FTC_HOME": str(home), "COLUMNS": "80"})
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert max(len(x) for x in lines) <= 80
    for i, state in enumerate(("complete", "partial", "interrupted")):
        row = next(x for x in lines if f"eval-{i:012d}" in x)  # the run id on one line, whole
        assert state in row and "0.812" in row and "38/40" in row
    assert "left out to fit 80 columns" in r.out
    wide = ftc_proc("eval", "list", env={"FTC_HOME": str(home), "COLUMNS": "200"})
    assert "left out" not in wide.out and "$0.0123" in wide.out and "contains" in wide.out


# --------------------------------------------------------------------------- ftc chat


def _local_stand_in(state_path):
    """The fake backend registered as ``local``: it answers without loading a model, saying
    which model it was asked for (no model download in a test)."""
    from fake_backend import FakeBackend

    class Local(FakeBackend):
        name = "local"

    return lambda **kw: Local(state_path=state_path, **kw)


def test_chat_takes_the_model_references_eval_takes(ftc, server, tmp_path):
    from ftclient.backends import register_backend, unregister_backend

    server.answer = {"hello": "hi from the server"}
    r = ftc("chat", ref(server), "hello", "--json")
    assert r.code == 0, r.err
    assert r.json()["text"] == "hi from the server" and r.json()["backend"] == "openai-compatible"
    assert server.requests == 1

    register_backend("local", _local_stand_in(tmp_path / "fake.json"), replace=True)
    try:
        r = ftc("chat", "local:default", "hello", "--json")
    finally:
        unregister_backend("local")
    assert r.code == 0, r.err
    assert r.json() == {"backend": "local", "model": "default", "job_id": None, "text": "echo from default: hello"}

    r = ftc("chat", "openai-compatible:http://127.0.0.1:1/v1#m", "hello", "--backend", "openai")
    assert r.code == 2 and "--backend" in r.err
    r = ftc("chat", "nojob", "hello")
    assert r.code == 2 and "local:default" in r.err  # the hint shows the reference syntax
