"""Evaluation throughput against a rate-limited OpenAI-compatible server on 127.0.0.1.

The server (tests/compat_server.py) enforces ``--limit`` requests per minute over a
sliding window of ``--window`` seconds (the limit scaled to the window, the way providers
quantise per-minute limits) and answers after ``--latency`` seconds (+ up to ``--jitter``).
``ftc``'s evaluator runs through the real openai SDK with ``rpm=--limit``; the script
prints the achieved requests per minute as a share of the limit (goal: >= 90 %, with
zero failed requests and no 429s), measured both by the client (answers / time from the
first request to the last answer) and by the server (admitted requests over the span
between the first and the last admission).

With ``--also-unpaced`` it runs the same evaluation once more without a client-side limit,
to show what the server's 429s cost when only the retry policy keeps the run going.

Usage: python benchmarks/eval_throughput.py [--limit 600] [--examples 300] [--latency 0.2]
       [--window 10] [--concurrency 8] [--also-unpaced]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def make_data(path: Path, n: int) -> dict:
    answers = {}
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            q = f"Ticket {i}: my card number {i} has not arrived after {i % 17} days, what should I do?"
            label = ("card_arrival", "lost_card", "top_up", "exchange_rate")[i % 4]
            answers[q] = label
            f.write(json.dumps({"messages": [
                {"role": "system", "content": "Route the ticket to one intent."},
                {"role": "user", "content": q},
                {"role": "assistant", "content": label}]}) + "\n")
    return answers


def run_once(args, data: Path, answers: dict, *, paced: bool) -> dict:
    from compat_server import CompatServer

    from ftclient.evaluation import evaluate
    from ftclient.retry import RetryPolicy
    from ftclient.store import Store

    with CompatServer(answers, rpm=args.limit, window_s=args.window, latency=args.latency,
                      jitter=args.jitter) as srv:
        os.environ["OPENAI_COMPATIBLE_API_KEY"] = srv.api_key
        with tempfile.TemporaryDirectory() as home:
            with Store(Path(home) / "ftc.db") as st:
                t = time.perf_counter()
                s = evaluate(f"openai-compatible:{srv.base_url}#bench", data, metric="label",
                             concurrency=args.concurrency, rpm=args.limit if paced else None, store=st,
                             policy=RetryPolicy(max_attempts=50, deadline=600))
                wall = time.perf_counter() - t
        adm = [t for t, _ in srv.admitted]
        server_rpm = (len(adm) - 1) / (adm[-1] - adm[0]) * 60 if len(adm) > 1 else 0.0
        return {
            "paced": paced,
            "completed": s["completed"],
            "failed": s["failed"],
            "score": s["metrics"]["score"],
            "client_rpm": s["throughput_qps"] * 60,
            "server_rpm": server_rpm,
            "requests": srv.requests,
            "rate_limited": srv.rate_limited,
            "max_in_window": srv.max_in_window(),
            "window_cap": int(args.limit * args.window / 60),
            "max_in_flight": srv.max_in_flight,
            "latency_p50": s["latency_s"]["p50"],
            "wall_s": wall,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=float, default=600, help="server and client limit, requests per minute")
    ap.add_argument("--examples", type=int, default=300)
    ap.add_argument("--latency", type=float, default=0.2, help="server latency per request, seconds")
    ap.add_argument("--jitter", type=float, default=0.1, help="extra random latency, up to this many seconds")
    ap.add_argument("--window", type=float, default=10.0, help="the server's sliding window, seconds")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--also-unpaced", action="store_true", help="also run without the client's rate limiter")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "eval.jsonl"
        answers = make_data(data, args.examples)
        runs = [run_once(args, data, answers, paced=True)]
        if args.also_unpaced:
            runs.append(run_once(args, data, answers, paced=False))

    if args.json:
        print(json.dumps({"args": vars(args), "runs": runs}, indent=2))
        return
    print(f"eval throughput, {_dt.date.today().isoformat()}: {args.examples} examples, limit {args.limit:g} "
          f"requests/min enforced over {args.window:g} s windows ({int(args.limit * args.window / 60)} a window), "
          f"server latency {args.latency:g} s + up to {args.jitter:g} s, concurrency {args.concurrency}")
    for r in runs:
        ratio = r["client_rpm"] / args.limit
        tag = "client paced at --rpm" if r["paced"] else "no client limit (429s + retries only)"
        print(f"- {tag}: achieved {r['client_rpm']:.1f} requests/min by the client, {r['server_rpm']:.1f} at the "
              f"server = {ratio:.1%} of the limit; completed {r['completed']}, failed {r['failed']}, "
              f"requests {r['requests']}, 429s {r['rate_limited']}, most in a window {r['max_in_window']:.0f}/"
              f"{r['window_cap']}, max in flight {r['max_in_flight']}, p50 latency {r['latency_p50'] * 1000:.0f} ms, "
              f"wall {r['wall_s']:.1f} s")
    r = runs[0]
    ok = r["client_rpm"] / args.limit >= 0.9 and r["failed"] == 0
    print(f"goal (>= 90 % of the limit, 0 failed): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
