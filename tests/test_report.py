"""The comparison report (ftclient.report) and ``ftc compare``: the recommendation rule,
break-even volumes, caveats that change the answer, the files, and the CLI over a store."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import struct

import pytest

from ftclient.cost import serverless_gpu_hours
from ftclient.errors import UsageError
from ftclient.prices import HOURS_PER_MONTH, load_catalogue
from ftclient.report import DEFAULT_SELF_HOST_GPU, build_report, pick, wilson_interval, write_report

TODAY = dt.date(2026, 11, 22)
SHA = "ab" * 32
TIN, TOUT = 64.0, 6.0  # tokens per query


@pytest.fixture(scope="module")
def cat():
    return load_catalogue(today=TODAY)


def per_1k(cat, ref, tin=TIN, tout=TOUT):
    """Cost per 1K queries the way the evaluator prices a hosted model: tokens x catalogue price."""
    e = cat.model(ref)
    return (tin * e.inference_input_per_1m + tout * e.inference_output_per_1m) / 1e6 * 1000


def run(run_id, backend, model, *, score, cost_1k=None, base=None, ft=False, job=None, sha=SHA, examples=200,
        failed=0, metric="label", p50=0.4, p95=0.9, qps=5.0, tin=TIN, tout=TOUT):
    return {
        "run_id": run_id, "model_ref": f"{backend}:{model}", "backend": backend, "model": model, "job_id": job,
        "base_model": base if base is not None else model, "fine_tuned": ft, "data": "data/eval.jsonl",
        "data_sha256": sha, "examples": examples, "completed": examples - failed, "failed": failed, "metric": metric,
        "metrics": {"score": score, "accuracy": score, "macro_f1": score - 0.01},
        "latency_s": {"p50": p50, "p95": p95, "mean": (p50 + p95) / 2},
        "tokens": {"input": int(tin * examples), "output": int(tout * examples), "input_per_query": tin,
                   "output_per_query": tout},
        "cost_per_1k_queries_usd": cost_1k, "cost_basis": "measured tokens x catalogue" if cost_1k else "none",
        "throughput_qps": qps, "wall_s": 60.0, "started_at": "2026-11-22T10:00:00+00:00",
        "finished_at": "2026-11-22T10:01:00+00:00", "notes": [],
    }


@pytest.fixture
def runs(cat):
    """A big base model, a small fine-tuned one as accurate (within 2 points) and cheaper per
    token, a local fine-tuned model (self-hosted: the cheapest way to serve it), and a weak cheap one."""
    return [
        run("eval-big", "openai", "gpt-4.1", score=0.86, cost_1k=per_1k(cat, "openai:gpt-4.1")),
        run("eval-small", "openai", "ft:gpt-4.1-mini-2025-04-14:acme::x1", base="gpt-4.1-mini-2025-04-14", ft=True,
            score=0.85, cost_1k=per_1k(cat, "openai:gpt-4.1-mini"), job="ftc-20261122-aaaaaa"),
        run("eval-local", "local", "/jobs/ftc-20261122-bbbbbb/output/final", base="default", ft=True, score=0.855,
            job="ftc-20261122-bbbbbb", p50=0.05, p95=0.08),
        run("eval-weak", "openai", "gpt-4o-mini", score=0.60, cost_1k=per_1k(cat, "openai:gpt-4o-mini") / 10),
    ]


def monthly(report, name, q):
    return report.option(name).monthly_cost(q)


def expected_winner(report, q, tol):
    """The rule, evaluated independently of pick(): best score, ties within tol to the cheapest."""
    elig = [o for o in report.options if o.eligible and o.score is not None]
    best = max(o.score for o in elig)
    bar = [o for o in elig if o.score >= best - tol - 1e-12]
    return min(bar, key=lambda o: (o.monthly_cost(q) is None, o.monthly_cost(q) or 0.0)).name


# ------------------------------------------------------------------------------ the rule
def test_cheaper_small_finetuned_model_as_accurate_wins_at_low_volume(runs, cat):
    q = 1_000
    r = build_report(runs, queries_per_month=q, today=TODAY)
    names = {o.run_id: o.name for o in r.options}
    small, big, local = names["eval-small"], names["eval-big"], names["eval-local"]
    # The inputs: small is within the tolerance of the best and cheaper per query than big.
    assert r.option(big).score - r.option(small).score <= r.tolerance
    assert monthly(r, small, q) == pytest.approx(q * per_1k(cat, "openai:gpt-4.1-mini") / 1000)
    assert monthly(r, big, q) == pytest.approx(q * per_1k(cat, "openai:gpt-4.1") / 1000)
    gpu = cat.gpu(DEFAULT_SELF_HOST_GPU)
    ways = {p["offer"]: p for p in r.option(local).plans_at(q)}
    assert ways[DEFAULT_SELF_HOST_GPU]["monthly_usd"] == pytest.approx(gpu.usd_per_hour * HOURS_PER_MONTH)  # always on
    # the local model costs its cheapest way to serve it: here a per-second GPU, idle most of the month
    l4 = ways["modal:l4"]
    l4_hours = serverless_gpu_hours(q, l4["busy_s_per_query"])
    assert l4["monthly_usd"] == pytest.approx(l4_hours * cat.gpu("modal:l4").usd_per_hour)
    assert monthly(r, local, q) == min(p["monthly_usd"] for p in ways.values()) == l4["monthly_usd"]
    assert r.recommendation["recommended"] == expected_winner(r, q, r.tolerance) == small
    assert r.recommendation["most_accurate"] == big
    assert r.recommendation["cheapest_meeting_bar"] == small
    # the weak option is cheapest overall but below the bar: named, not recommended
    assert r.recommendation["cheapest_overall"] == names["eval-weak"]
    assert names["eval-weak"] not in r.recommendation["bar"]["meeting"]
    assert "2 points" in r.rule and f"{q:,} queries/month" in r.rule
    assert small in r.to_markdown() and r.rule in r.to_markdown()


def test_outside_the_tolerance_the_more_accurate_option_wins_even_if_dearer(runs):
    q = 1_000
    tight = build_report(runs, queries_per_month=q, today=TODAY, tolerance=0.001)
    best = max(tight.options, key=lambda o: o.score)
    assert tight.recommendation["recommended"] == best.name == expected_winner(tight, q, 0.001)
    assert best.monthly_usd > min(o.monthly_usd for o in tight.options if o.score >= best.score - 0.02)


def test_winner_changes_with_volume_where_the_costs_cross(runs):
    r = build_report(runs, queries_per_month=1_000, today=TODAY)
    ranges = r.winner_by_volume
    assert len(ranges) >= 2
    for a, b in zip(ranges, ranges[1:]):
        v = a["to"]
        assert v == b["from"]
        assert expected_winner(r, v * 0.999, r.tolerance) == a["winner"]
        assert expected_winner(r, v * 1.001, r.tolerance) == b["winner"]
    assert "The winner changes with volume" in r.to_markdown() and r.recommendation["changes_with_volume"]
    hi = build_report(runs, queries_per_month=int(ranges[-1]["from"] * 2), today=TODAY)
    assert hi.recommendation["recommended"] == ranges[-1]["winner"]


# --------------------------------------------------------------------------- break-even
@pytest.mark.parametrize("gpu", [DEFAULT_SELF_HOST_GPU, "modal:l4"])
def test_break_even_is_where_the_two_monthly_costs_cross(runs, gpu, cat):
    r = build_report(runs, queries_per_month=1_000, today=TODAY, self_host_gpu=gpu)
    be = r.break_even
    cloud, own = r.option(be["cloud"]), r.option(be["self_hosted"])
    assert cloud.kind == "hosted" and own.kind == "self-hosted"
    v = be["queries_per_month"]
    assert isinstance(v, (int, float)) and v > 0
    for lo, hi in ((0.99, 1.01), (0.999, 1.001)):
        assert own.monthly_cost(v * lo) > cloud.monthly_cost(v * lo)
        assert own.monthly_cost(v * hi) < cloud.monthly_cost(v * hi)
    # the self-hosted curve is the cheapest way at each volume: the crossings of the two curves
    assert "crossings" in be["method"] and be["crossings"][0] == v
    way = own.plan_at(v)
    assert be["at_break_even"]["self_hosted_way"] == way["offer"]
    assert be["at_break_even"]["cloud_monthly_usd"] == pytest.approx(v * cloud.cost_per_1k_usd / 1000, rel=1e-4)
    assert be["at_break_even"]["self_hosted_monthly_usd"] == pytest.approx(way["monthly_usd"], rel=1e-4)
    if not cat.gpu(gpu).serverless:  # the always-on GPU is cheapest there: its fixed monthly cost / the price per query
        assert way["offer"] == gpu
        assert v == pytest.approx(cat.gpu(gpu).usd_per_hour * HOURS_PER_MONTH / (cloud.cost_per_1k_usd / 1000), rel=1e-6)
    else:  # only per-second GPUs: the cheapest of them, busy most of the month at that volume
        assert cat.gpu(way["offer"]).serverless
    assert f"{v:,}" in r.to_markdown()


def test_break_even_never_when_self_hosting_is_dearer_at_any_volume(cat):
    # A per-token price so low that one GPU's capacity is reached before the fixed cost pays off.
    tiny = run("eval-tiny", "openai", "gpt-4o-mini", score=0.9, cost_1k=1e-9)
    local = run("eval-local", "local", "/m", base="default", ft=True, score=0.9)
    r = build_report([tiny, local], queries_per_month=1_000, today=TODAY)
    assert r.break_even["direction"] == "never" and r.break_even["queries_per_month"] is None
    o = r.option(r.break_even["self_hosted"])
    cap = next(p for p in o.plans_at(1e3) if p["offer"] == DEFAULT_SELF_HOST_GPU)["capacity_queries_per_month"]
    for v in (1e3, 1e6, 1e9, cap):
        assert o.monthly_cost(v) > r.option(r.break_even["cloud"]).monthly_cost(v)


def test_break_even_needs_both_kinds(runs):
    r = build_report([x for x in runs if x["backend"] != "local"], queries_per_month=1_000, today=TODAY)
    assert r.break_even["queries_per_month"] is None and "self-hosted" in r.break_even["text"]


def test_break_even_against_a_dedicated_endpoint_is_a_crossing_of_flat_costs(cat):
    tog = run("eval-tog", "together", "acme/Meta-Llama-3.1-8B-Instruct-Reference-ftc-1",
              base="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", ft=True, score=0.9, cost_1k=0.01)
    local = run("eval-local", "local", "/m", base="default", ft=True, score=0.9)
    r = build_report([tog, local], queries_per_month=10_000, today=TODAY)
    cloud, own = r.option(r.break_even["cloud"]), r.option(r.break_even["self_hosted"])
    for v in (1.0, 1e4, 1e8):
        assert cloud.monthly_cost(v) == pytest.approx(
            cat.model("together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference").dedicated_endpoint_per_hour
            * HOURS_PER_MONTH)
    first = r.break_even["crossings"][0] if r.break_even["crossings"] else None
    if first is None:  # one GPU's fixed cost is below the endpoint's at every volume scanned
        assert all(own.monthly_cost(v) < cloud.monthly_cost(v) for v in (1.0, 1e6, 1e11))
    else:
        assert own.monthly_cost(first * 0.999) < cloud.monthly_cost(first * 0.999)
        assert own.monthly_cost(first * 1.001) >= cloud.monthly_cost(first * 1.001)


# ------------------------------------------------------------------------------ caveats
def test_together_finetuned_needs_a_dedicated_endpoint_and_that_changes_the_answer(cat):
    ref = "together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    entry = cat.model(ref)
    assert entry.serving == "dedicated"
    tog = run("eval-tog", "together", "acme/Meta-Llama-3.1-8B-Instruct-Reference-ftc-1",
              base="meta-llama/Meta-Llama-3.1-8B-Instruct-Reference", ft=True, score=0.90, cost_1k=per_1k(cat, ref))
    oai = run("eval-oai", "openai", "ft:gpt-4o-mini-2024-07-18:acme::x", base="gpt-4o-mini-2024-07-18", ft=True,
              score=0.895, cost_1k=per_1k(cat, "openai:gpt-4o-mini"))
    q = 10_000
    assert per_1k(cat, ref) < per_1k(cat, "openai:gpt-4o-mini")  # per token, Together would be cheaper
    r = build_report([tog, oai], queries_per_month=q, today=TODAY)
    t = r.option("eval-tog")
    fixed = entry.dedicated_endpoint_per_hour * HOURS_PER_MONTH
    assert "dedicated_endpoint" in t.caveat_kinds()
    assert t.monthly_usd == pytest.approx(fixed) and t.cost_per_1k_usd == pytest.approx(fixed / q * 1000)
    assert t.serving.startswith("dedicated endpoint")
    assert r.recommendation["recommended"] == r.option("eval-oai").name
    assert any(c["kind"] == "dedicated_endpoint" and c["option"] == t.name for c in r.recommendation["caveats"])
    # a base (not fine-tuned) Together model is served per token: no such caveat
    base = build_report([dict(tog, fine_tuned=False, model=tog["base_model"], run_id="eval-base")],
                        queries_per_month=q, today=TODAY)
    assert "dedicated_endpoint" not in base.options[0].caveat_kinds()
    assert base.options[0].monthly_usd == pytest.approx(q * per_1k(cat, ref) / 1000)


def test_openai_retirement_dates_come_from_the_catalogue(cat):
    e = cat.model("openai:gpt-4o-mini")
    oai = run("eval-oai", "openai", "ft:gpt-4o-mini-2024-07-18:acme::x", base="gpt-4o-mini-2024-07-18", ft=True,
              score=0.9, cost_1k=per_1k(cat, "openai:gpt-4o-mini"))
    local = run("eval-local", "local", "/m", base="default", ft=True, score=0.9)
    r = build_report([oai, local], queries_per_month=1_000, today=TODAY)
    o = r.option("eval-oai")
    texts = " ".join(c["text"] for c in o.caveats if c["kind"] == "retirement")
    assert e.inference_shutdown.isoformat() in texts and e.train_cutoff.isoformat() in texts
    assert f"{(e.inference_shutdown - TODAY).days} days" in texts
    assert r.recommendation["recommended"] == o.name
    assert {c["kind"] for c in r.recommendation["caveats"]} >= {"retirement"}
    md = r.to_markdown()
    assert "Caveats that change the answer" in md and e.inference_shutdown.isoformat() in md
    # after the shutdown the option is left out, and the recommendation moves on
    later = build_report([oai, local], queries_per_month=1_000, today=e.inference_shutdown + dt.timedelta(days=1))
    lo = later.option("eval-oai")
    assert not lo.eligible and "retired" in lo.caveat_kinds()
    assert later.recommendation["recommended"] == later.option("eval-local").name
    assert any(c["kind"] == "retired" for c in later.recommendation["caveats"])


def test_different_data_warns_loudly_and_different_metrics_are_refused(runs):
    other = dict(runs[1], data_sha256="cd" * 32)
    r = build_report([runs[0], other], queries_per_month=1_000, today=TODAY)
    assert [w["kind"] for w in r.warnings] == ["different_data"]
    assert not r.comparable and r.recommendation["comparable"] is False
    assert r.recommendation["text"].startswith("NOT COMPARABLE")
    md = r.to_markdown()
    assert "**WARNING:**" in md and "DIFFERENT DATA" in md
    assert r.to_dict()["comparable"] is False
    same = build_report(runs[:2], queries_per_month=1_000, today=TODAY)
    assert same.comparable and same.warnings == []
    fewer = build_report([runs[0], dict(runs[1], examples=50)], queries_per_month=1_000, today=TODAY)
    assert [w["kind"] for w in fewer.warnings] == ["different_examples"]
    with pytest.raises(UsageError, match="different metrics"):
        build_report([runs[0], dict(runs[1], metric="exact")], queries_per_month=1_000, today=TODAY)


def test_failed_examples_and_missing_cost_are_caveats(runs):
    failed = dict(runs[1], failed=7, completed=193)
    nocost = run("eval-compat", "openai-compatible", "llama3.2", score=0.86, qps=0.0)
    r = build_report([runs[0], failed, nocost], queries_per_month=1_000, today=TODAY)
    f = r.option(failed["run_id"])
    assert "failed_examples" in f.caveat_kinds() and "7 of 200" in " ".join(c["text"] for c in f.caveats)
    n = r.option("eval-compat")
    assert not n.has_cost and "no_cost" in n.caveat_kinds() and n.monthly_usd is None
    # n has the best score but no cost: in a tie it ranks after every priced option
    assert n.score == max(o.score for o in r.options)
    assert r.recommendation["recommended"] != n.name
    w, bar = pick(r.options, 1_000, r.tolerance)
    assert n in bar and w.has_cost


def test_self_hosted_from_measured_throughput_when_the_model_size_is_unknown(cat):
    gpu = cat.gpu(DEFAULT_SELF_HOST_GPU)
    compat = run("eval-compat", "openai-compatible", "llama3.2", base="", score=0.8, qps=3.0)
    own = run("eval-own", "local", "/models/mystery", base="/models/mystery", score=0.8, qps=0.5)
    known = run("eval-known", "local", "/jobs/x/final", base="HuggingFaceTB/SmolLM2-135M-Instruct", ft=True,
                score=0.8, qps=0.5)
    for q in (1_000, 10_000_000):
        r = build_report([compat, own, known], queries_per_month=q, today=TODAY)
        for rid, qps in (("eval-compat", 3.0), ("eval-own", 0.5)):
            o = r.option(rid)
            assert o.kind == "self-hosted" and "measured_throughput" in o.caveat_kinds()
            cap = HOURS_PER_MONTH * 3600 * qps  # queries one GPU serves a month at the measured rate
            assert o.monthly_usd == pytest.approx(math.ceil(q / cap) * gpu.usd_per_hour * HOURS_PER_MONTH)
        k = r.option("eval-known")
        assert "measured_throughput" not in k.caveat_kinds() and k.catalogue_model == "smollm2-135m"
        ways = {p["offer"]: p for p in k.plans_at(q)}
        assert ways[gpu.ref]["monthly_usd"] == pytest.approx(gpu.usd_per_hour * HOURS_PER_MONTH)  # far below capacity
        assert ways[gpu.ref]["units"] == 1 and ways[gpu.ref]["utilisation"] < 0.01
        assert k.monthly_usd == min(p["monthly_usd"] for p in ways.values())


def test_training_cost_and_time_from_the_jobs(runs):
    jobs = {
        "ftc-20261122-aaaaaa": {"backend": "openai", "state": "succeeded", "estimate_usd": 1.5,
                                "cost_so_far_usd": 1.75, "created_at": "2026-11-22T08:00:00+00:00",
                                "finished_at": "2026-11-22T08:42:30+00:00"},
        "ftc-20261122-bbbbbb": {"backend": "local", "state": "succeeded", "estimate_usd": 0.0,
                                "cost_so_far_usd": None, "created_at": "2026-11-22T08:00:00+00:00",
                                "finished_at": "2026-11-22T09:00:00+00:00",
                                "result": {"wall_s": 100.0, "total_wall_s": 321.5}},
    }
    r = build_report(runs, jobs=jobs, queries_per_month=1_000, today=TODAY)
    small, local = r.option("eval-small"), r.option("eval-local")
    assert small.training_cost_usd == 1.75 and "cost_so_far_usd" in small.training_cost_basis
    assert small.training_time_s == 42 * 60 + 30 and "submission" in small.training_time_basis
    assert local.training_cost_usd == 0.0 and "estimate_usd" in local.training_cost_basis
    assert local.training_time_s == 321.5 and "total_wall_s" in local.training_time_basis
    jobs["ftc-20261122-aaaaaa"] = dict(jobs["ftc-20261122-aaaaaa"], cost_so_far_usd=None, state="failed")
    r2 = build_report(runs, jobs=jobs, queries_per_month=1_000, today=TODAY)
    assert r2.option("eval-small").training_cost_usd == 1.5
    assert "job_not_succeeded" in r2.option("eval-small").caveat_kinds()
    r3 = build_report(runs, jobs={}, queries_per_month=1_000, today=TODAY)
    assert "no_job" in r3.option("eval-small").caveat_kinds()
    assert r3.option("eval-big").training_cost_usd is None and "no_job" not in r3.option("eval-big").caveat_kinds()


def test_bad_inputs_are_usage_errors(runs):
    with pytest.raises(UsageError, match="no eval runs"):
        build_report([], queries_per_month=1_000)
    with pytest.raises(UsageError, match="queries per month"):
        build_report(runs, queries_per_month=0)
    with pytest.raises(UsageError, match="lacks"):
        build_report([{"run_id": "x"}], queries_per_month=1_000)
    r = build_report([runs[0], runs[0]], queries_per_month=1_000, today=TODAY)
    assert len(r.options) == 1 and r.warnings[0]["kind"] == "duplicate_run"


def test_gpu_price_override_prices_self_hosting(runs, cat):
    r = build_report(runs, queries_per_month=1_000, today=TODAY, gpu_price_per_hour=0.1)
    ways = {p["offer"]: p for p in r.option("eval-local").plans_at(1_000)}
    assert ways[DEFAULT_SELF_HOST_GPU]["monthly_usd"] == pytest.approx(0.1 * HOURS_PER_MONTH)
    assert r.option("eval-local").monthly_usd == min(p["monthly_usd"] for p in ways.values())
    base = build_report(runs, queries_per_month=1_000, today=TODAY)
    assert r.break_even["queries_per_month"] == pytest.approx(
        base.break_even["queries_per_month"] * 0.1 / cat.gpu(DEFAULT_SELF_HOST_GPU).usd_per_hour, rel=1e-6)


# -------------------------------------------------------------------------------- files
def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_write_report_writes_md_json_png(runs, tmp_path):
    r = build_report(runs, queries_per_month=1_000, today=TODAY)
    out = tmp_path / "report"
    paths = write_report(r, out)
    assert {p.name for p in out.iterdir()} == {"report.md", "report.json", "report.png"}  # no temp files left
    d = json.loads(paths["json"].read_text())
    assert d == json.loads(json.dumps(r.to_dict()))
    assert d["recommendation"]["recommended"] == r.recommendation["recommended"]
    assert [o["run_id"] for o in d["options"]] == [x["run_id"] for x in runs]
    md = paths["md"].read_text()
    assert "](report.png)" in md and all(o.name in md for o in r.options)
    w, h = png_size(paths["png"].read_bytes())
    assert 600 <= w <= 3000 and 400 <= h <= 3000
    assert paths["png"].stat().st_size > 10_000
    # a second write replaces the files whole
    r2 = build_report(runs[:2], queries_per_month=5_000, today=TODAY)
    write_report(r2, out)
    assert json.loads(paths["json"].read_text())["queries_per_month"] == 5_000
    assert {p.name for p in out.iterdir()} == {"report.md", "report.json", "report.png"}


def test_write_report_refuses_a_file_as_out_dir(runs, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UsageError, match="not a directory"):
        write_report(build_report(runs, queries_per_month=1_000, today=TODAY), f)


def test_no_matplotlib_or_pydantic_at_import():
    import subprocess
    import sys

    code = ("import sys, ftclient.report, ftclient.cli.compare_cmd; "
            "print(sorted(m for m in ('matplotlib', 'pydantic', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------------- CLI
@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FTC_PRICES", raising=False)
    return tmp_path / "home"


def _store_runs(summaries, states=None):
    from ftclient.store import Store

    with Store() as st:
        for i, s in enumerate(summaries):
            st.put_eval_run(s["run_id"], model_ref=s["model_ref"], data_path=s["data"], data_sha256=s["data_sha256"],
                            params={"max_tokens": 16})
            state = (states or {}).get(s["run_id"], "complete")
            if state != "running":
                st.finish_eval_run(s["run_id"], s, state=state)


def test_cli_compare_runs_and_a_job(home, ftc, runs, tmp_path):
    from ftclient.paths import job_dir
    from ftclient.store import Store

    with Store() as st:
        job = st.new_job("local", {"base_model": "default"}, model="default", estimate_usd=0.0)
        st.update_state(job.id, "succeeded")
    d = job_dir(job.id, create=True)
    (d / "result.json").write_text(json.dumps({"wall_s": 90.0, "total_wall_s": 123.0}))
    local = dict(runs[2], job_id=job.id, run_id="eval-0123456789ab")
    older = dict(local, run_id="eval-ffffffffffff", finished_at="2026-11-21T10:00:00+00:00",
                 metrics={"score": 0.1})
    summaries = [runs[0], runs[1], local, older]
    _store_runs(summaries)
    out = tmp_path / "rep"
    # a job id stands for its newest complete eval run
    r = ftc("compare", "eval-big", "eval-sm", job.id, "--out", out, "--queries-per-month", "2000", "--json")
    assert r.code == 0, r.err
    d = r.json()
    assert [o["run_id"] for o in d["options"]] == ["eval-big", "eval-small", "eval-0123456789ab"]
    assert d == json.loads((out / "report.json").read_text())
    assert (out / "report.md").is_file() and (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    lo = next(o for o in d["options"] if o["run_id"] == "eval-0123456789ab")
    assert lo["training"]["time_s"] == 123.0 and lo["training"]["cost_usd"] == 0.0
    # the same figures as the Python API over the same summaries and jobs
    with Store() as st:
        jobs = {job.id: dict(st.get_job(job.id).to_dict(), result={"wall_s": 90.0, "total_wall_s": 123.0})}
    api = build_report([runs[0], runs[1], local], jobs=jobs, queries_per_month=2000).to_dict()
    assert d["recommendation"] == api["recommendation"] and d["break_even"] == api["break_even"]
    # the table
    t = ftc("compare", "eval-big", "eval-small", "--out", out)
    assert t.code == 0, t.err
    assert "winner" in t.out and api["options"][0]["name"] in t.out and "Break-even" in t.out
    assert "report written to" in t.err


def test_cli_compare_errors(home, ftc, runs, tmp_path):
    from ftclient.store import Store

    _store_runs([runs[0], dict(runs[1], run_id="eval-running"), dict(runs[3], run_id="eval-metric", metric="exact")],
                states={"eval-running": "running"})
    out = tmp_path / "rep"
    r = ftc("compare", "--out", out)
    assert r.code == 2 and "at least one" in r.err
    r = ftc("compare", "nosuchthing", "--out", out)
    assert r.code == 2 and "no eval run or job matches 'nosuchthing'" in r.err
    r = ftc("compare", "eval-running", "--out", out)
    assert r.code == 2 and "running, not complete" in r.err
    r = ftc("compare", "eval-big", "eval-metric", "--out", out)
    assert r.code == 2 and "different metrics" in r.err
    r = ftc("compare", "eval-", "--out", out)
    assert r.code == 2 and "matches 3" in r.err
    with Store() as st:
        job = st.new_job("openai", {"x": 1}, model="gpt-4.1-mini")
    r = ftc("compare", job.id, "--out", out)
    assert r.code == 2 and "no complete eval run" in r.err
    r = ftc("compare", "eval-big", "--out", out, "--queries-per-month", "0")
    assert r.code == 2
    assert not out.exists()  # nothing written on an error
    f = tmp_path / "afile"
    f.write_text("x")
    r = ftc("compare", "eval-big", "--out", f)
    assert r.code == 2


# ------------------------------------------------------------- serving a small model cheaply
def cpu_run(run_id, model, *, score, n=48, ft=True, qps=3.2, cpus=4, load=(5.1, 7.9, 7.2), device="cpu",
            tin=62.0, tout=5.0):
    """A local run of the default model (SmolLM2-135M) measured on this machine's CPU, as ftc demo makes."""
    s = run(run_id, "local", model, base="default", ft=ft, score=score, examples=n, qps=qps, tin=tin, tout=tout,
            p50=0.31, p95=0.52)
    s["metrics"]["n"] = n
    s["machine"] = {"device": device, "cpu_count": cpus,
                    "load_avg_1m": {"start": load[0], "max": load[1], "end": load[2]}}
    return s


@pytest.fixture
def demo_runs():
    """The demo's two runs: the base model and the fine-tuned one, 48 examples each, on a loaded CPU."""
    return [cpu_run("eval-base", "default", score=3 / 48, ft=False), cpu_run("eval-ft", "/jobs/x/final", score=43 / 48)]


def expected_ways(cat, q, *, qps=3.2, cpus=4, tin=62.0, tout=5.0):
    """Every serving way of a 135M model at volume q, computed here from the catalogue."""
    from ftclient.cost import ASSUMPTIONS, self_host_inference

    month_s = HOURS_PER_MONTH * 3600
    out = {}
    for ref in cat.cpu_refs():
        c = cat.cpu(ref)
        cap = qps * min(1.0, c.vcpus / cpus) * month_s
        n = math.ceil(q / cap)
        out[ref] = {"monthly": n * c.usd_per_hour * HOURS_PER_MONTH, "units": n, "busy": q / (n * cap)}
    for ref in [DEFAULT_SELF_HOST_GPU] + [g for g in cat.gpu_refs() if cat.gpu(g).serverless]:
        g = cat.gpu(ref)
        gpu_s = self_host_inference(0.135, g, tin, tout, ASSUMPTIONS)["gpu_seconds_per_query"]
        if g.serverless:
            hours = serverless_gpu_hours(q, gpu_s)
            out[ref] = {"monthly": hours * g.usd_per_hour, "units": 1, "busy": q * gpu_s / 3600 / hours}
        else:
            n = max(1, math.ceil(q * gpu_s / month_s))
            out[ref] = {"monthly": n * g.usd_per_hour * HOURS_PER_MONTH, "units": n, "busy": q * gpu_s / (n * month_s)}
    return out


def test_a_small_model_is_served_the_cheapest_way_and_the_idle_gpu_is_shown(demo_runs, cat):
    from ftclient.report.format import pct_text

    q = 100_000
    r = build_report(demo_runs, jobs={}, queries_per_month=q, today=TODAY)
    ft = r.option("eval-ft")
    want = expected_ways(cat, q)
    got = {p["offer"]: p for p in ft.plans_at(q)}
    assert set(got) == set(want)
    for ref, w in want.items():
        assert got[ref]["monthly_usd"] == pytest.approx(w["monthly"]) and got[ref]["units"] == w["units"]
        assert got[ref]["utilisation"] == pytest.approx(w["busy"])
    cheapest = min(want, key=lambda k: want[k]["monthly"])
    # a 135M model at 100,000 queries a month: one small CPU instance, not an always-on RTX 4090
    assert cat.cpu_refs() and cheapest in cat.cpu_refs()
    assert ft.monthly_usd == pytest.approx(want[cheapest]["monthly"])
    assert ft.monthly_usd < want[DEFAULT_SELF_HOST_GPU]["monthly"]
    assert r.recommendation["recommended"] == ft.name and r.recommendation["serving"].startswith("CPU: " + cheapest)
    assert r.recommendation["monthly_inference_usd"] == pytest.approx(want[cheapest]["monthly"], abs=1e-4)
    # the always-on GPU is named with how little of it the volume uses
    gpu = want[DEFAULT_SELF_HOST_GPU]
    assert gpu["busy"] < 1e-3
    assert (f"({DEFAULT_SELF_HOST_GPU}) ${gpu['monthly']:,.2f}/month, {pct_text(gpu['busy'])} of the billed GPU time busy"
            in r.recommendation["text"])
    # the per-second GPU bills its idle windows: at one query every ~26 s a container is up most of the month
    l4 = got["modal:l4"]
    assert l4["billed_hours"] > 0.8 * HOURS_PER_MONTH and l4["utilisation"] < 1e-3


def test_cpu_serving_uses_the_measured_throughput_scaled_to_the_instance(cat):
    q = 1_500_000
    r = build_report([cpu_run("eval-ft", "/m", score=0.9, qps=2.0, cpus=16, load=(0.5, 3.0, 2.0))], jobs={},
                     queries_per_month=q, today=TODAY)
    o = r.option("eval-ft")
    for p in o.plans_at(q):
        if p["way"] != "cpu_always_on":
            continue
        c = cat.cpu(p["offer"])
        cap = 2.0 * c.vcpus / 16 * HOURS_PER_MONTH * 3600  # 2 queries/s on 16 CPUs -> on 2 vCPUs
        assert p["capacity_queries_per_month"] == pytest.approx(cap)
        assert p["units"] == math.ceil(q / cap) == 3
        assert p["monthly_usd"] == pytest.approx(3 * c.usd_per_hour * HOURS_PER_MONTH)
        assert p["utilisation"] == pytest.approx(q / (3 * cap))
    assert "machine_load" not in o.caveat_kinds()  # load 3.0 on 16 CPUs: a quiet machine


def test_serving_ways_that_could_not_be_priced_say_why(cat):
    gpu_run = cpu_run("eval-cuda", "/m", score=0.9, device="cuda:0")
    old = cpu_run("eval-old", "/m2", score=0.9)
    del old["machine"]
    r = build_report([gpu_run, old], jobs={}, queries_per_month=10_000, today=TODAY)
    cuda, o = r.option("eval-cuda"), r.option("eval-old")
    assert any(x["way"] == "cpu_always_on" and "ran on cuda:0" in x["why"] for x in cuda.not_compared)
    assert all(p["way"] != "cpu_always_on" for p in cuda.plans_at(10_000))
    assert "latency_cpu" not in cuda.caveat_kinds()
    assert any("older ftc" in x["why"] for x in o.not_compared) and "machine_unknown" in o.caveat_kinds()
    md = r.to_markdown()
    assert "Not priced: CPU instance, always on: the eval ran on cuda:0" in md


def test_wilson_interval():
    lo, hi = wilson_interval(43, 48)
    assert (round(lo * 100, 1), round(hi * 100, 1)) == (77.8, 95.5)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(10, 10)[0] == pytest.approx(0.7225, abs=1e-4) and wilson_interval(10, 10)[1] == 1.0
    a, b = wilson_interval(30, 100)
    c, d = wilson_interval(70, 100)
    assert a == pytest.approx(1 - d) and b == pytest.approx(1 - c)  # symmetric


def test_caveats_are_the_real_ones_and_never_none_when_they_apply(demo_runs):
    r = build_report(demo_runs, jobs={}, queries_per_month=100_000, today=TODAY)
    ft = r.option("eval-ft")
    assert {"sample_size", "latency_cpu", "machine_load"} <= set(ft.caveat_kinds())
    md = r.to_markdown()
    caveats = md.split("## Caveats")[1].split("## How each figure")[0]
    assert "None." not in caveats
    assert "48 examples: 89.6% (95% CI 77.8-95.5%)" in caveats and "48 examples: 89.6% (95% CI 77.8-95.5%)" in md
    assert "load average up to 7.90 on 4 CPUs" in caveats and "measured on this machine's CPU (4 CPUs)" in caveats
    rec_kinds = {c["kind"] for c in r.recommendation["caveats"]}
    assert {"sample_size", "machine_load"} <= rec_kinds
    # a large sample on a quiet machine: no sample-size or load caveat
    quiet = cpu_run("eval-q", "/q", score=0.9, n=5000, load=(0.2, 1.0, 0.8))
    q = build_report([quiet], jobs={}, queries_per_month=100_000, today=TODAY).option("eval-q")
    assert "sample_size" not in q.caveat_kinds() and "machine_load" not in q.caveat_kinds()
    assert q.score_ci95[1] - q.score_ci95[0] < 2 * 0.02


def test_hosted_options_not_evaluated_are_listed_with_their_cost(demo_runs, cat):
    q = 100_000
    r = build_report(demo_runs, jobs={}, queries_per_month=q, today=TODAY)
    names = [x["model"] for x in r.not_compared]
    for ref in cat.model_refs():
        e = cat.model(ref)
        retired = e.training_closed(TODAY) or e.shut_down(TODAY)
        assert (ref in names) == (e.serving == "serverless" and not retired)
    for x in r.not_compared:
        e = cat.model(x["model"])
        per_q = (62 * e.inference_input_per_1m + 5 * e.inference_output_per_1m) / 1e6
        assert x["cost_per_1k_queries_usd"] == pytest.approx(per_q * 1000, abs=1e-6)
        assert x["monthly_usd"] == pytest.approx(per_q * q, abs=1e-4) and "not evaluated" in x["why"]
    ft = r.option("eval-ft")
    cheaper = [x["name"] for x in r.not_compared if x["monthly_usd"] < ft.monthly_usd]
    nc = next(c for c in r.recommendation["caveats"] if c["kind"] == "not_evaluated")
    assert cheaper and all(n in nc["text"] for n in cheaper)
    md = r.to_markdown()
    assert "## Not compared" in md and all(x["name"] in md for x in r.not_compared)
    # an evaluated hosted model is compared, not listed
    oai = run("eval-oai", "openai", "ft:gpt-4o-mini-2024-07-18:acme::x", base="gpt-4o-mini-2024-07-18", ft=True,
              score=0.8, cost_1k=per_1k(cat, "openai:gpt-4o-mini"), examples=48)
    r2 = build_report(demo_runs + [oai], jobs={}, queries_per_month=q, today=TODAY)
    assert "openai:gpt-4o-mini" not in [x["model"] for x in r2.not_compared]


def test_not_compared_figures_come_from_the_cost_stage_when_given(demo_runs, tmp_path):
    from ftclient.cost import compare_costs

    records = [{"messages": [{"role": "system", "content": "Route it."},
                             {"role": "user", "content": f"Where is card {i}?"},
                             {"role": "assistant", "content": "card_arrival"}]} for i in range(20)]
    q = 100_000
    costs = compare_costs(records, epochs=1, queries_per_month=q, self_host_model="default", today=TODAY)
    r = build_report(demo_runs, jobs={}, queries_per_month=q, today=TODAY, costs=costs)
    hosted = {row.model: row for row in costs.rows if row.kind == "hosted" and row.serving != "shut down"}
    assert {x["model"] for x in r.not_compared} == set(hosted)
    for x in r.not_compared:
        row = hosted[x["model"]]
        assert "cost stage" in x["basis"]
        assert x["monthly_usd"] == pytest.approx(row.inference_monthly_usd, abs=1e-3)
        assert x["monthly_usd"] == pytest.approx(x["cost_per_1k_queries_usd"] * q / 1000, abs=1e-3)
    assert r.to_dict() == build_report(demo_runs, jobs={}, queries_per_month=q, today=TODAY,
                                       costs=costs.to_dict()).to_dict()
    # with no cloud option evaluated, the break-even is given against the cheapest per-token price, for scale
    ref = r.break_even["reference"]
    own = r.option(r.break_even["self_hosted"])
    v, h = ref["queries_per_month"], ref["cost_per_1k_queries_usd"] / 1000
    assert own.monthly_cost(v * 0.999) > v * 0.999 * h and own.monthly_cost(v * 1.001) < v * 1.001 * h


def _table_rows(md, heading):
    section = md.split(heading)[1].split("\n## ")[0]
    rows = [ln for ln in section.splitlines() if ln.startswith("| ") and not ln.startswith("| ---")]
    head = [c.strip() for c in rows[0].strip("|").split(" | ")]
    return [dict(zip(head, [c.strip() for c in ln.strip("|").split(" | ")])) for ln in rows[1:]]


def _usd(cell):
    return float(cell.replace("$", "").replace(",", ""))


def test_report_json_and_md_figures_recompute_from_their_inputs(demo_runs, cat, tmp_path):
    """What a reader checking the arithmetic does: every figure of report.json and report.md from its inputs."""
    q = 100_000
    oai = run("eval-oai", "openai", "ft:gpt-4o-mini-2024-07-18:acme::x", base="gpt-4o-mini-2024-07-18", ft=True,
              score=0.88, cost_1k=per_1k(cat, "openai:gpt-4o-mini"), examples=48)
    write_report(build_report(demo_runs + [oai], jobs={}, queries_per_month=q, today=TODAY), tmp_path)
    d = json.loads((tmp_path / "report.json").read_text())
    md = (tmp_path / "report.md").read_text()
    month_h = HOURS_PER_MONTH
    by = {o["name"]: o for o in d["options"]}
    for o in d["options"]:
        # $/month = $/1K x volume / 1000
        assert o["monthly_inference_usd"] == pytest.approx(o["cost_per_1k_queries_usd"] * q / 1000, abs=1e-3)
        n = o["score_n"]
        lo, hi = o["score_ci95"]
        k = round(o["metrics"]["score"] * n)
        z = 1.959963984540054
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        assert (lo, hi) == (pytest.approx(centre - half, abs=1e-6), pytest.approx(centre + half, abs=1e-6))
        for pl in o["serving_plans"]:
            assert pl["monthly_usd"] == pytest.approx(pl["cost_per_1k_queries_usd"] * q / 1000, abs=1e-3)
            if pl["billing"] == "hourly":
                assert pl["monthly_usd"] == pytest.approx(pl["units"] * pl["usd_per_hour"] * month_h, abs=1e-3)
                assert pl["units"] == max(1, math.ceil(q / pl["capacity_queries_per_month"]))
                busy_s = q * pl["busy_s_per_query"]
                assert pl["utilisation"] == pytest.approx(busy_s / (pl["units"] * month_h * 3600), rel=1e-3)
            else:
                assert pl["monthly_usd"] == pytest.approx(pl["billed_hours"] * pl["usd_per_hour"], abs=1e-3)
                assert pl["utilisation"] == pytest.approx(q * pl["busy_s_per_query"] / 3600 / pl["billed_hours"],
                                                          rel=1e-3)
        if o["serving_plans"]:  # an option costs its cheapest way
            assert o["monthly_inference_usd"] == pytest.approx(min(p["monthly_usd"] for p in o["serving_plans"]),
                                                               abs=1e-4)
            assert o["serving"] == o["serving_plans"][0]["serving"]
    # the rule, from the figures: best score, within 2 points the cheapest
    elig = [o for o in d["options"] if o["eligible"]]
    best = max(o["score"] for o in elig)
    bar = [o for o in elig if o["score"] >= best - d["tolerance"] - 1e-12]
    rec = d["recommendation"]
    assert rec["recommended"] == min(bar, key=lambda o: o["monthly_inference_usd"])["name"]
    assert rec["monthly_inference_usd"] == by[rec["recommended"]]["monthly_inference_usd"]
    # break-even: both monthly costs equal there
    be = d["break_even"]["at_break_even"]
    cloud = by[d["break_even"]["cloud"]]
    assert be["cloud_monthly_usd"] == pytest.approx(be["queries_per_month"] * cloud["cost_per_1k_queries_usd"] / 1000,
                                                    rel=1e-4)
    assert be["self_hosted_monthly_usd"] == pytest.approx(be["cloud_monthly_usd"], rel=1e-3)
    for x in d["not_compared"]:
        assert x["monthly_usd"] == pytest.approx(x["cost_per_1k_queries_usd"] * q / 1000, abs=1e-3)
    # report.md as printed: per month = per 1K x volume / 1000, to the cent (per 1K shown to 1/100 cent)
    checked = 0
    for heading, k1, km in (("## Options", "per 1K queries", "per month"),
                            ("## Not compared", "per 1K queries", "per month")):
        for row in _table_rows(md, heading):
            assert abs(_usd(row[k1]) * q / 1000 - _usd(row[km])) <= 0.005 * q / 1000 + 0.006
            checked += 1
    for section in md.split("## Serving the self-hosted models")[1].split("\n## ")[0].split("**")[2::2]:
        for ln in section.splitlines():
            if ln.startswith("| ") and "$" in ln:
                cells = [c.strip() for c in ln.strip("|").split(" | ")]
                assert abs(_usd(cells[3]) * q / 1000 - _usd(cells[2])) <= 0.005 * q / 1000 + 0.006
                checked += 1
    assert checked >= 10
    # the recommendation's own figures
    m = re.search(r"\$([\d,.]+)/month inference \(\$([\d.]+) per 1K queries", md)
    assert m and abs(float(m.group(2)) * q / 1000 - _usd(m.group(1))) <= 0.006
    assert f"{rec['monthly_inference_usd']:,.2f}" in m.group(1)
