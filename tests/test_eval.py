"""Evaluation end to end: the real openai / together SDKs against a local OpenAI-compatible
server (tests/compat_server.py), the local backend's batched generation on a tiny random
model, resume after Ctrl-C and after kill -9, rate limits, retries, and ``ftc eval``.

Every expected figure is derived from the test's own set-up (the server's answer table, its
token counting, the price catalogue), never typed in.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compat_server import CompatServer, count_tokens, drop, prompt_tokens, status  # noqa: E402

from ftclient.errors import DataError, UsageError  # noqa: E402
from ftclient.evaluation import (  # noqa: E402
    RATE_SAFETY,
    SUMMARY_KEYS,
    Interrupted,
    RateGate,
    _quantile,
    estimate_tokens,
    evaluate,
    load_examples,
)
from ftclient.retry import AuthError, RequestRejected, RetryExhausted, RetryPolicy, async_retry_call  # noqa: E402
from ftclient.store import Store  # noqa: E402

openai = pytest.importorskip("openai")
pytest.importorskip("aiolimiter")

SYSTEM = "Route the ticket to one intent."
LABELS = ["lost_card", "top_up", "exchange_rate", "card_arrival"]
FAST = RetryPolicy(base=0.01, max_wait=0.05, deadline=30)
# The summary contract the report module reads (written out here on purpose).
CONTRACT = ["run_id", "model_ref", "backend", "model", "job_id", "base_model", "fine_tuned", "data", "data_sha256",
            "examples", "completed", "failed", "metric", "metrics", "latency_s", "tokens",
            "cost_per_1k_queries_usd", "cost_basis", "throughput_qps", "wall_s", "started_at", "finished_at", "notes",
            "machine", "failures", "sessions"]


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    for var in ("OPENAI_API_KEY", "TOGETHER_API_KEY", "OPENAI_BASE_URL", "TOGETHER_BASE_URL", "FIREWORKS_API_KEY",
                "FIREWORKS_BASE_URL", "FIREWORKS_ACCOUNT_ID", "OPENAI_COMPATIBLE_API_KEY", "FTC_PRICES"):
        monkeypatch.delenv(var, raising=False)


def question(i: int) -> str:
    return f"ticket number {i}: please help"


def dataset(tmp_path: Path, n: int = 12, wrong: tuple = (), name: str = "eval.jsonl") -> tuple[Path, dict]:
    """n examples; the server answers the label, except for the indices in ``wrong``."""
    rows, answers = [], {}
    for i in range(n):
        lab = LABELS[i % len(LABELS)]
        rows.append({"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question(i)},
                                  {"role": "assistant", "content": lab}]})
        answers[question(i)] = "something_else" if i in wrong else lab
    p = tmp_path / name
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return p, answers


@pytest.fixture
def server(monkeypatch):
    srv = CompatServer()
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", srv.api_key)
    yield srv
    srv.close()


def ref(srv: CompatServer, model: str = "intent-model") -> str:
    return f"openai-compatible:{srv.base_url}#{model}"


def store_at(tmp_path: Path) -> Store:
    return Store(tmp_path / "home" / "ftc.db")


# --------------------------------------------------------------------------- hosted, through the SDK


def test_hosted_eval_scores_and_measures(server, tmp_path):
    data, answers = dataset(tmp_path, n=12, wrong=(1, 6))
    server.answer, server.latency = answers, 0.02
    s = evaluate(ref(server), data, metric="label", concurrency=4, policy=FAST)
    assert list(s) == CONTRACT == list(SUMMARY_KEYS)
    # where latency was measured: this machine's CPUs and their load (the report's caveats read it)
    assert s["machine"]["cpu_count"] == os.cpu_count() and s["machine"]["device"] is None
    assert all(isinstance(v, float) for v in s["machine"]["load_avg_1m"].values())
    right = sum(1 for i in range(12) if answers[question(i)] == LABELS[i % 4])
    assert (s["examples"], s["completed"], s["failed"]) == (12, 12, 0)
    assert s["metrics"]["score"] == s["metrics"]["accuracy"] == pytest.approx(right / 12)
    assert s["metrics"]["confusion"]["labels"] == sorted(LABELS)
    assert s["backend"] == "openai-compatible" and s["model"] == "intent-model" and s["model_ref"] == ref(server)
    assert s["job_id"] is None and s["fine_tuned"] is False
    # latency: the server's 20 ms at least, per request
    lat = s["latency_s"]
    assert 0.02 <= lat["p50"] <= lat["p95"] and lat["mean"] >= 0.02
    # tokens: the API's usage figures (the server counts with prompt_tokens)
    examples, _ = load_examples(data)
    assert s["tokens"]["input"] == sum(prompt_tokens(ex.messages) for ex in examples)
    assert s["tokens"]["output"] == sum(count_tokens(answers[question(i)]) for i in range(12))
    assert s["tokens"]["input_per_query"] == pytest.approx(s["tokens"]["input"] / 12)
    assert s["throughput_qps"] > 0 and s["wall_s"] > 0
    # no GPU price: no cost, and the basis says what is missing
    assert s["cost_per_1k_queries_usd"] is None and "--gpu-price-per-hour" in s["cost_basis"]
    assert server.requests == 12 and server.max_in_flight <= 4
    assert all(b["model"] == "intent-model" and b["max_tokens"] == 128 and b["temperature"] == 0
               for b in server.bodies)
    with store_at(tmp_path) as st:
        run = st.get_eval_run(s["run_id"])
        assert run.state == "complete" and run.summary == s
        assert len(st.eval_results(run.id)) == 12
    assert server.check_responses() == 12


def test_429_500_and_a_dropped_connection_are_retried(server, tmp_path):
    data, answers = dataset(tmp_path, n=8)
    server.answer = answers
    server.fail(status(429, {"retry-after-ms": "40"}), status(500), drop())
    events = []
    s = evaluate(ref(server), data, metric="exact", concurrency=1, policy=FAST, on_retry=events.append)
    assert (s["completed"], s["failed"]) == (8, 0) and s["metrics"]["score"] == 1.0
    assert server.requests == 8 + 3  # one extra attempt per fault, no SDK retries
    assert [e.status_code for e in events] == [429, 500, None]
    assert events[0].server_wait and events[0].wait == pytest.approx(0.04)
    assert events[2].reason == "server closed the connection"
    assert any("HTTP 429" in n for n in s["notes"])
    server.check_responses()


def test_a_429_pauses_every_request(server, tmp_path):
    data, answers = dataset(tmp_path, n=16)
    server.answer, server.latency = answers, 0.1
    server.fail(status(429, {"retry-after-ms": "300"}))
    s = evaluate(ref(server), data, concurrency=4, policy=FAST)
    assert s["completed"] == 16 and server.requests == 17
    t429 = next(t for t, code in server.answered if code == 429)
    # requests already in flight finish (they end ~0.1 s after t429, when their tasks would
    # send the next ones); nothing new is admitted while everyone waits
    assert not [t for t, _ in server.admitted if t429 + 0.06 < t < t429 + 0.27]


def test_a_rejected_example_fails_alone_and_is_retried_on_the_next_run(server, tmp_path):
    data, answers = dataset(tmp_path, n=6)
    server.answer = answers
    server.fail(status(400, message="This model's maximum context length is exceeded."),
                when=lambda p: p == question(3))
    s = evaluate(ref(server), data, policy=FAST)
    assert (s["completed"], s["failed"]) == (5, 1) and s["metrics"]["n"] == 5
    assert any("1 example(s) failed" in n for n in s["notes"])
    with store_at(tmp_path) as st:
        bad = [r for r in st.eval_results(s["run_id"]).values() if not r.ok]
    assert len(bad) == 1 and bad[0].idx == 3 and "HTTP 400" in bad[0].error and "context length" in bad[0].error
    assert server.requests == 6
    s2 = evaluate(ref(server), data, policy=FAST)  # resumes: only the failed example is sent
    assert server.requests == 7 and server.prompts[-1] == question(3)
    assert (s2["completed"], s2["failed"], s2["run_id"]) == (6, 0, s["run_id"])


def test_retries_end_after_the_attempt_budget(server, tmp_path):
    data, answers = dataset(tmp_path, n=4)
    server.answer = answers
    server.fail(status(503), when=lambda p: p == question(2), times=99)
    s = evaluate(ref(server), data, policy=FAST.with_(max_attempts=3))
    assert (s["completed"], s["failed"]) == (3, 1)
    assert server.prompts.count(question(2)) == 3 and server.requests == 3 + 3


def test_a_wrong_key_stops_the_run_at_once(server, tmp_path, monkeypatch):
    data, answers = dataset(tmp_path, n=20)
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", "sk-" + "wrong" * 6)
    with pytest.raises(AuthError) as ei:
        evaluate(ref(server), data, concurrency=2, policy=FAST)
    assert "OPENAI_COMPATIBLE_API_KEY" in ei.value.message and ei.value.exit_code == 2
    assert server.requests == 0  # 401s are answered before a request counts
    with store_at(tmp_path) as st:
        (run,) = st.list_eval_runs()
        assert run.state == "interrupted" and any("stopped" in n for n in run.summary["notes"])


def test_concurrency_is_bounded(server, tmp_path):
    data, answers = dataset(tmp_path, n=12)
    server.answer, server.latency = answers, 0.12
    s = evaluate(ref(server), data, concurrency=3, policy=FAST)
    assert s["completed"] == 12
    assert server.max_in_flight == 3


def test_metric_change_reuses_the_answers_and_fresh_starts_over(server, tmp_path):
    data, answers = dataset(tmp_path, n=6, wrong=(0,))
    server.answer = answers
    a = evaluate(ref(server), data, metric="label", policy=FAST)
    b = evaluate(ref(server), data, metric="contains", policy=FAST)
    assert server.requests == 6 and a["run_id"] == b["run_id"] and b["metric"] == "contains"
    assert b["metrics"]["score"] == pytest.approx(5 / 6)
    assert any("came from the store" in n for n in b["notes"])
    assert b["throughput_qps"] == a["throughput_qps"]
    c = evaluate(ref(server), data, policy=FAST, fresh=True)
    assert server.requests == 12 and c["run_id"] == a["run_id"]
    d = evaluate(ref(server), data, policy=FAST, max_tokens=7)  # other generation params: another run
    assert d["run_id"] != a["run_id"] and server.requests == 18


# --------------------------------------------------------------------------- resume


def test_resume_after_ctrl_c_sends_only_the_missing_examples(server, tmp_path):
    data, answers = dataset(tmp_path, n=12)
    server.answer, server.latency = answers, 0.01

    def stop_after_five(p):
        if p.sent >= 5:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as ei:
        evaluate(ref(server), data, concurrency=2, policy=FAST, on_progress=stop_after_five)
    assert ei.value.exit_code == 130 and "again" in ei.value.hint
    with store_at(tmp_path) as st:
        (run,) = st.list_eval_runs()
        stored = st.eval_results(run.id)
    assert run.state == "interrupted" and len(stored) >= 5
    assert run.summary["completed"] == len(stored) and any("interrupted" in n for n in run.summary["notes"])
    server.reset_counters()
    s = evaluate(ref(server), data, concurrency=2, policy=FAST)
    assert server.requests == 12 - len(stored)
    assert set(server.prompts).isdisjoint({ex.messages[-1]["content"] for ex in load_examples(data)[0]
                                           if ex.key in stored})
    assert (s["completed"], s["run_id"]) == (12, run.id)
    assert any(f"{len(stored)} stored answer(s) reused" in n for n in s["notes"])


def test_resume_after_kill_9(server, tmp_path):
    data, answers = dataset(tmp_path, n=14)
    server.answer, server.latency = answers, 0.15
    code = ("import sys; from ftclient.evaluation import evaluate; "
            "evaluate(sys.argv[1], sys.argv[2], concurrency=2)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.Popen([sys.executable, "-c", code, ref(server), str(data)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        n = 0
        while time.monotonic() < deadline and n < 4:
            time.sleep(0.05)
            if (tmp_path / "home" / "ftc.db").exists():
                with store_at(tmp_path) as st:
                    runs = st.list_eval_runs()
                    n = len(st.eval_results(runs[0].id)) if runs else 0
            assert p.poll() is None, p.stderr.read().decode()
        assert n >= 4
        with store_at(tmp_path) as st:
            (live,) = st.list_eval_runs()
        assert (live.state, live.pid) == ("running", p.pid)
        with pytest.raises(UsageError, match=f"pid {p.pid}"):  # not sent twice at once
            evaluate(ref(server), data, concurrency=2, policy=FAST)
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    with store_at(tmp_path) as st:
        (run,) = st.list_eval_runs()
        stored = len(st.eval_results(run.id))
    assert run.state == "interrupted" and stored < 14  # killed: its process is gone
    before = server.requests
    s = evaluate(ref(server), data, concurrency=4, policy=FAST)
    assert server.requests - before == 14 - stored
    assert s["completed"] == 14 and s["run_id"] == run.id


# --------------------------------------------------------------------------- rate limits


def test_requests_per_minute_stay_under_the_limit(monkeypatch, tmp_path):
    # 1200/min enforced per second (20 in any 1 s window), as providers quantise limits
    with CompatServer(rpm=1200, window_s=1.0, latency=0.01) as srv:
        monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", srv.api_key)
        data, answers = dataset(tmp_path, n=30)
        srv.answer = answers
        s = evaluate(ref(srv), data, rpm=1200, concurrency=8, policy=FAST)
        assert s["completed"] == 30 and srv.rate_limited == 0 and srv.requests == 30
        assert srv.max_in_window(1.0) <= 20
        assert s["throughput_qps"] >= 0.6 * 20  # paced at 97 %; the benchmark measures it exactly


def test_tokens_per_minute_stay_under_the_limit(monkeypatch, tmp_path):
    data, answers = dataset(tmp_path, n=20)
    examples, _ = load_examples(data)
    charge = max(estimate_tokens(ex.messages) for ex in examples) + 8
    tpm = 60 * 20 * charge  # room for ~20 requests a second
    with CompatServer(answers, tpm=tpm, window_s=1.0) as srv:
        monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", srv.api_key)
        s = evaluate(ref(srv), data, tpm=tpm, max_tokens=8, concurrency=8, policy=FAST)
        assert s["completed"] == 20 and srv.rate_limited == 0
        assert srv.max_in_window(1.0, tokens=True) <= tpm / 60
        assert s["throughput_qps"] >= 0.6 * 20 * RATE_SAFETY


def test_without_a_client_limit_the_server_429s_are_absorbed(monkeypatch, tmp_path):
    with CompatServer(rpm=600, window_s=1.0) as srv:
        monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", srv.api_key)
        data, answers = dataset(tmp_path, n=16)
        srv.answer = answers
        s = evaluate(ref(srv), data, concurrency=6, policy=FAST.with_(max_attempts=20))
        assert (s["completed"], s["failed"]) == (16, 0)
        assert srv.rate_limited > 0 and srv.requests == 16 + srv.rate_limited
        assert srv.max_in_window(1.0) <= 10


def test_a_request_larger_than_the_token_limit_is_a_usage_error(server, tmp_path):
    data, _ = dataset(tmp_path, n=2)
    with pytest.raises(UsageError, match="more than --tpm"):
        evaluate(ref(server), data, tpm=50, max_tokens=100)
    assert server.requests == 0


def test_rate_gate_pause_holds_everyone():
    async def main():
        gate = RateGate()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        gate.pause(0.2)
        gate.pause(0.05)  # a shorter pause does not shorten the longer one
        ends = await asyncio.gather(*[gate.acquire() for _ in range(3)])
        return [loop.time() - t0 for _ in ends], gate.pauses

    waits, pauses = asyncio.run(main())
    assert all(w >= 0.19 for w in waits) and pauses == 2


# --------------------------------------------------------------------------- async_retry_call


class Sleeper:
    def __init__(self):
        self.waits = []

    def __call__(self, s):
        self.waits.append(s)


def _chat(srv):
    client = openai.AsyncOpenAI(base_url=srv.base_url, api_key=srv.api_key, max_retries=0)

    async def call():
        return await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])

    return client, call


@pytest.mark.parametrize("headers,wait", [({"retry-after-ms": "250"}, 0.25), ({"Retry-After": "2"}, 2.0)])
def test_async_retry_honours_retry_after(server, headers, wait):
    server.fail(status(429, headers))
    sl, events = Sleeper(), []

    async def main():
        client, call = _chat(server)
        async with client:
            return await async_retry_call(call, op="chat", idempotent=True, policy=RetryPolicy(sleep=sl),
                                          provider="openai", on_retry=events.append)

    r = asyncio.run(main())
    assert r.choices[0].message.content == "hi" and server.requests == 2
    assert sl.waits == [wait] and events[0].server_wait and events[0].status_code == 429


def test_async_retry_gives_up_after_the_budget(server):
    server.fail(status(500), times=10)
    sl = Sleeper()

    async def main():
        client, call = _chat(server)
        async with client:
            return await async_retry_call(call, op="chat", idempotent=True,
                                          policy=RetryPolicy(sleep=sl, max_attempts=4, base=0.5))

    with pytest.raises(RetryExhausted) as ei:
        asyncio.run(main())
    assert server.requests == 4 and len(sl.waits) == 3 and ei.value.attempts == 4
    assert all(0 <= w <= 0.5 * 2 ** n for n, w in enumerate(sl.waits))
    assert "HTTP 500" in ei.value.message and "4 attempts" in ei.value.message


def test_async_retry_does_not_retry_refusals(server):
    server.fail(status(400))

    async def main():
        client, call = _chat(server)
        async with client:
            return await async_retry_call(call, idempotent=True, policy=RetryPolicy(sleep=Sleeper()))

    with pytest.raises(RequestRejected) as ei:
        asyncio.run(main())
    assert server.requests == 1 and ei.value.status_code == 400


def test_async_retry_gives_up_at_once_when_retry_after_passes_the_deadline(server):
    server.fail(status(429, {"Retry-After": "300"}))
    sl = Sleeper()

    async def main():
        client, call = _chat(server)
        async with client:
            return await async_retry_call(call, idempotent=True, policy=RetryPolicy(sleep=sl, deadline=60))

    with pytest.raises(RetryExhausted, match="gave up at once"):
        asyncio.run(main())
    assert sl.waits == [] and server.requests == 1


def test_async_retry_real_sleep_and_an_ambiguous_create(server):
    server.fail(status(502))

    async def main():
        client, call = _chat(server)
        async with client:
            t = time.monotonic()
            try:
                await async_retry_call(call, idempotent=False, policy=RetryPolicy(base=0.01))
            except Exception as e:  # noqa: BLE001
                return e, time.monotonic() - t

    err, _ = asyncio.run(main())
    assert type(err).__name__ == "AmbiguousResult" and server.requests == 1


# --------------------------------------------------------------------------- hosted SDKs and cost


def test_openai_model_is_priced_from_the_catalogue(server, tmp_path, monkeypatch):
    from ftclient.prices import load_catalogue

    data, answers = dataset(tmp_path, n=5)
    server.answer = answers
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", server.api_key)
    s = evaluate("openai:gpt-4o-mini", data, policy=FAST, max_tokens=16)
    entry = load_catalogue().model("openai:gpt-4o-mini")
    tin, tout = s["tokens"]["input_per_query"], s["tokens"]["output_per_query"]
    want = (tin * entry.inference_input_per_1m + tout * entry.inference_output_per_1m) / 1e6 * 1000
    assert s["cost_per_1k_queries_usd"] == pytest.approx(want)
    assert "openai:gpt-4o-mini" in s["cost_basis"] and "inference price" in s["cost_basis"]
    assert all(b["max_completion_tokens"] == 16 for b in server.bodies)  # the OpenAI API's current name


def test_together_uses_its_own_async_client(server, tmp_path, monkeypatch):
    from ftclient.prices import load_catalogue

    data, answers = dataset(tmp_path, n=4)
    server.answer = answers
    model = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    monkeypatch.setenv("TOGETHER_BASE_URL", server.root_url)  # without /v1, as the SDK wants it
    monkeypatch.setenv("TOGETHER_API_KEY", server.api_key)
    s = evaluate(f"together:{model}", data, metric="label", policy=FAST)
    assert s["completed"] == 4 and s["metrics"]["score"] == 1.0 and s["tokens"]["input"] > 0
    entry = load_catalogue().model(f"together:{model}")
    tin, tout = s["tokens"]["input_per_query"], s["tokens"]["output_per_query"]
    want = (tin * entry.inference_input_per_1m + tout * entry.inference_output_per_1m) / 1e6 * 1000
    assert s["cost_per_1k_queries_usd"] == pytest.approx(want)
    assert all(b["model"] == model for b in server.bodies)


def test_fireworks_uses_its_own_async_client(server, tmp_path, monkeypatch):
    pytest.importorskip("fireworks")
    from ftclient.prices import load_catalogue

    data, answers = dataset(tmp_path, n=4)
    server.answer = answers
    model = "accounts/fireworks/models/llama-v3p1-8b-instruct"
    monkeypatch.setenv("FIREWORKS_BASE_URL", server.root_url)  # the SDK adds /v1/chat/completions to it
    monkeypatch.setenv("FIREWORKS_API_KEY", server.api_key)
    s = evaluate(f"fireworks:{model}", data, metric="label", policy=FAST, max_tokens=16)
    assert s["completed"] == 4 and s["metrics"]["score"] == 1.0 and s["tokens"]["input"] > 0
    entry = load_catalogue().model(f"fireworks:{model}")
    tin, tout = s["tokens"]["input_per_query"], s["tokens"]["output_per_query"]
    want = (tin * entry.inference_input_per_1m + tout * entry.inference_output_per_1m) / 1e6 * 1000
    assert s["cost_per_1k_queries_usd"] == pytest.approx(want)
    assert all(b["model"] == model and b["max_tokens"] == 16 for b in server.bodies)


def test_fine_tuned_job_is_priced_by_its_base_model(server, tmp_path, monkeypatch):
    data, answers = dataset(tmp_path, n=3)
    server.answer = answers
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", server.api_key)
    ft = "ft:gpt-4o-mini-2024-07-18:acme::Zz9"
    with store_at(tmp_path) as st:
        job = st.new_job("openai", {"base_model": "gpt-4o-mini-2024-07-18"}, model="gpt-4o-mini-2024-07-18")
        st.update_state(job.id, "succeeded", fine_tuned_model=ft, provider_job_id="ftjob-7")
        s = evaluate(job.id, data, store=st, policy=FAST)
    assert (s["job_id"], s["model"], s["fine_tuned"], s["base_model"]) == (job.id, ft, True, "gpt-4o-mini-2024-07-18")
    assert s["model_ref"] == f"openai:{ft}" and "fine-tuned model inference price" in s["cost_basis"]
    assert s["cost_per_1k_queries_usd"] > 0 and all(b["model"] == ft for b in server.bodies)


def test_a_model_missing_from_the_catalogue_has_no_cost_and_says_why(server, tmp_path, monkeypatch):
    data, answers = dataset(tmp_path, n=2)
    server.answer = answers
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", server.api_key)
    s = evaluate("openai:our-private-model", data, policy=FAST)
    assert s["cost_per_1k_queries_usd"] is None and "not in the price catalogue" in s["cost_basis"]


def test_self_hosted_cost_from_gpu_price(server, tmp_path):
    from ftclient.prices import load_catalogue

    data, answers = dataset(tmp_path, n=4)
    server.answer = answers
    s = evaluate(ref(server), data, gpu_price_per_hour=2.5, policy=FAST)
    assert s["cost_per_1k_queries_usd"] == pytest.approx(2.5 * 1000 / (3600 * s["throughput_qps"]))
    s2 = evaluate(ref(server), data, gpu="runpod:a100-community", policy=FAST)  # cached answers, same throughput
    price = load_catalogue().gpu("runpod:a100-community").usd_per_hour
    assert s2["cost_per_1k_queries_usd"] == pytest.approx(price * 1000 / (3600 * s2["throughput_qps"]))
    assert "runpod:a100-community" in s2["cost_basis"]


# --------------------------------------------------------------------------- data


def test_data_errors_name_the_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x"}]})
                 + "\n\n" + json.dumps({"messages": [{"role": "user", "content": "no answer"}]}) + "\n")
    with pytest.raises(DataError, match="line 3: no assistant message"):
        load_examples(p)
    p.write_text("{not json\n")
    with pytest.raises(DataError, match="line 1: not JSON"):
        load_examples(p)
    with pytest.raises(UsageError, match="no such file"):
        load_examples(tmp_path / "missing.jsonl")


def test_examples_prompt_reference_and_keys(tmp_path):
    rec = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                        {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"},
                        {"role": "assistant", "content": [{"type": "text", "text": "a2"}]}]}
    p = tmp_path / "d.jsonl"
    p.write_text((json.dumps(rec) + "\n") * 3)
    ex, sha = load_examples(p, max_examples=2)
    assert len(ex) == 2 and len(sha) == 64
    assert ex[0].reference == "a2" and [m["content"] for m in ex[0].messages] == ["s", "q", "a1", "q2"]
    assert ex[0].key != ex[1].key and ex[1].key.startswith(ex[0].key)  # duplicates get their own keys


def test_quantiles():
    assert _quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert _quantile([1.0, 2.0, 3.0, 4.0], 0.95) == pytest.approx(3.85)
    assert _quantile([], 0.5) == 0.0 and _quantile([7.0], 0.95) == 7.0


def test_bad_arguments_are_usage_errors(server, tmp_path):
    data, _ = dataset(tmp_path, n=2)
    for kw in ({"metric": "acuracy"}, {"concurrency": 0}, {"rpm": -1}, {"max_examples": 0}, {"temperature": 3}):
        with pytest.raises(UsageError):
            evaluate(ref(server), data, **kw)
    assert server.requests == 0


# --------------------------------------------------------------------------- local


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tiny_model import build_tiny_model

    from ftclient.local_backend import models as lm

    lm.quiet_offline_libraries()
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def test_local_eval_uses_batched_generation(tiny, tmp_path, monkeypatch):
    from tiny_model import sft_records, write_jsonl
    from transformers import AutoTokenizer

    from ftclient.local_backend import inference

    data = write_jsonl(tmp_path / "eval.jsonl", sft_records())
    batches = []
    real = inference.generate_with_usage

    def spy(model, tok, messages_list, **kw):
        batches.append(len(messages_list))
        return real(model, tok, messages_list, **kw)

    monkeypatch.setattr(inference, "generate_with_usage", spy)
    s = evaluate(f"local:{tiny}", data, metric="label", batch_size=5, max_tokens=3, gpu_price_per_hour=1.2,
                 device="cpu")
    n = len(sft_records())
    assert batches == [5, 5, n - 10]
    assert (s["backend"], s["examples"], s["completed"], s["failed"]) == ("local", n, n, 0)
    assert s["model_ref"] == f"local:{tiny.resolve()}" and s["fine_tuned"] is False
    tok = AutoTokenizer.from_pretrained(str(tiny))
    examples, _ = load_examples(data)
    want_in = sum(len(tok(tok.apply_chat_template(ex.messages, tokenize=False, add_generation_prompt=True),
                          add_special_tokens=False)["input_ids"]) for ex in examples)
    # every reply took 1 to max_tokens generated tokens (its end-of-turn token included)
    assert s["tokens"]["input"] == want_in and n <= s["tokens"]["output"] <= 3 * n
    assert s["latency_s"]["p50"] > 0 and s["throughput_qps"] > 0
    assert s["cost_per_1k_queries_usd"] == pytest.approx(1.2 * 1000 / (3600 * s["throughput_qps"]))
    assert any("per example" in note for note in s["notes"]) and "throughput" in s["cost_basis"]
    assert 0.0 <= s["metrics"]["score"] <= 1.0 and "confusion" in s["metrics"]


def test_local_job_reference(tiny, tmp_path):
    from tiny_model import sft_records, write_jsonl

    data = write_jsonl(tmp_path / "eval.jsonl", sft_records())
    with store_at(tmp_path) as st:
        job = st.new_job("local", {"base_model": "default"}, model="default")
        st.update_state(job.id, "succeeded", fine_tuned_model=str(tiny), provider_job_id=f"local-{job.id}")
        s = evaluate(f"local:{job.id}", data, store=st, max_examples=3, max_tokens=2, batch_size=2, device="cpu")
    assert (s["model_ref"], s["job_id"], s["fine_tuned"], s["base_model"]) == (f"local:{job.id}", job.id, True,
                                                                              "default")
    assert s["examples"] == 3 and s["completed"] == 3 and s["cost_per_1k_queries_usd"] is None


# --------------------------------------------------------------------------- the CLI


def test_cli_eval_json_list_and_show(ftc, server, tmp_path):
    data, answers = dataset(tmp_path, n=6, wrong=(2,))
    server.answer = answers
    r = ftc("eval", ref(server), "--data", data, "--metric", "label", "--json", "--concurrency", "3")
    assert r.code == 0, r.err
    s = r.json()
    assert list(s) == CONTRACT and s["metrics"]["score"] == pytest.approx(5 / 6)
    assert s["run_id"] in r.err  # the start line on stderr
    r = ftc("eval", "list", "--json")
    assert r.code == 0 and [x["id"] for x in r.json()] == [s["run_id"]]
    r = ftc("eval", "show", s["run_id"][:9], "--json")
    assert r.code == 0 and r.json() == s
    r = ftc("eval", "show", s["run_id"])
    assert r.code == 0 and "accuracy" in r.out and "Per label" in r.out and "Confusion" in r.out
    r = ftc("eval", "list")
    assert r.code == 0 and s["run_id"] in r.out
    # human output of a run (cached now), and the explicit `run` spelling
    r = ftc("eval", "run", ref(server), "--data", data, "--metric", "label")
    assert r.code == 0 and s["run_id"] in r.out and "0.833" in r.out
    assert server.requests == 6


def test_cli_errors(ftc, server, tmp_path):
    data, _ = dataset(tmp_path, n=2)
    r = ftc("eval", ref(server), "--data", data, "--metric", "acuracy")
    assert r.code == 2
    r = ftc("eval", "ftc-20261122-a3f9c2", "--data", data)
    assert r.code == 2 and "no job" in r.err
    r = ftc("eval", "openia:gpt-4o", "--data", data)
    assert r.code == 2 and "openai:gpt-4o" in r.err
    r = ftc("eval", ref(server), "--data", tmp_path / "missing.jsonl")
    assert r.code == 2 and "no such file" in r.err
    r = ftc("eval", "show", "eval-nope")
    assert r.code == 2 and "no evaluation run" in r.err
    r = ftc("eval", "list")
    assert r.code == 0 and "No evaluation runs" in r.err
    assert server.requests == 0


def test_cli_every_example_failing_exits_1(ftc, server, tmp_path):
    data, _ = dataset(tmp_path, n=2)
    server.fail(status(400), times=10)
    r = ftc("eval", ref(server), "--data", data, "--json")
    assert r.code == 1 and r.json()["failed"] == 2 and "failed" in r.err


def test_cli_show_of_an_unfinished_run(ftc, tmp_path):
    with store_at(tmp_path) as st:
        st.put_eval_run("eval-feedbeef0001", model_ref="openai:gpt-4o-mini", data_path="d.jsonl",
                        data_sha256="0" * 64, params={})
    r = ftc("eval", "show", "feedbeef")
    assert r.code == 0 and "no summary yet" in r.err
    r = ftc("eval", "show", "feedbeef", "--json")
    assert r.code == 2


def test_help_does_not_import_sdks_or_torch():
    code = ("import sys; from click.testing import CliRunner; from ftclient.cli.main import cli; "
            "r = CliRunner().invoke(cli, ['eval', '--help']); assert r.exit_code == 0, r.output; "
            "bad = [m for m in ('openai', 'together', 'torch', 'aiolimiter', 'transformers') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert p.returncode == 0, p.stdout + p.stderr
