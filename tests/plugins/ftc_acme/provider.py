"""Acme's fine-tuning service, simulated in-process for the tests.

The state lives in one JSON file (``$ACME_STATE``), locked with flock, so that every ftc
process of a test talks to the same provider. Training is memorising: a fine-tuned model
answers a prompt it was trained on with the trained answer; the base model answers
"unknown". Each status request moves a job one phase on.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Iterator

STEPS = 1
PHASES = ["queued"] + ["running"] * STEPS + ["succeeded"]


def state_path() -> Path:
    return Path(os.environ["ACME_STATE"])


@contextlib.contextmanager
def state() -> Iterator[dict[str, Any]]:
    path = state_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(str(path) + ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            try:
                data = json.loads(path.read_text())
            except (FileNotFoundError, ValueError):
                data = {"files": {}, "jobs": {}, "seq": 0, "calls": []}
            yield data
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upload(content: str) -> str:
    with state() as s:
        s["seq"] += 1
        fid = f"acme-file-{s['seq']}"
        s["files"][fid] = content
        s["calls"].append("upload")
        return fid


def create(model: str, training_file: str, client_token: str, priority: str) -> dict[str, Any]:
    with state() as s:
        s["seq"] += 1
        jid = f"acme-job-{s['seq']}"
        s["jobs"][jid] = {"id": jid, "model": model, "training_file": training_file, "token": client_token,
                          "priority": priority, "polls": 0, "phase": "queued", "cancelled": False, "events": []}
        s["calls"].append("create")
        return dict(s["jobs"][jid], status="queued")


def find(client_token: str) -> str | None:
    with state() as s:
        return next((j["id"] for j in s["jobs"].values() if j["token"] == client_token), None)


def poll(jid: str) -> dict[str, Any]:
    with state() as s:
        j = s["jobs"][jid]
        if j["cancelled"]:
            j["phase"] = "cancelled"
        elif j["phase"] not in ("succeeded", "cancelled"):
            j["phase"] = PHASES[min(j["polls"], len(PHASES) - 1)]
            j["polls"] += 1
            step = max(0, min(STEPS, j["polls"] - 1)) if j["phase"] == "running" else None
            j["events"].append({"id": f"ev-{len(j['events']) + 1}", "message": f"{j['phase']}"
                                + (f" step {step}/{STEPS}" if step else ""), "step": step})
        return dict(j)


def cancel(jid: str) -> dict[str, Any]:
    with state() as s:
        s["jobs"][jid]["cancelled"] = True
        s["calls"].append("cancel")
    return poll(jid)


def fine_tuned_name(job: dict[str, Any]) -> str:
    return f"{job['model']}:ft-{job['id']}"


def answer(model: str, prompt: str) -> str:
    """What ``model`` answers to ``prompt``."""
    with state() as s:
        s["calls"].append("chat")
        for j in s["jobs"].values():
            if j["phase"] == "succeeded" and fine_tuned_name(j) == model:
                for line in s["files"][j["training_file"]].splitlines():
                    rec = json.loads(line)
                    msgs = rec["messages"]
                    if msgs[-2]["content"] == prompt:
                        return msgs[-1]["content"]
    return "unknown"
