"""Acme: a third backend that lives only in the tests.

It is installed into the test environment as its own distribution (``ftc-acme``, entry
point ``acme = ftc_acme:AcmeBackend`` in the group ``ftclient.backends``), and hands ftc
everything through the registry: its spec options (the ``acme:`` block), its data checker,
its token counter, its prices (``prices.yaml`` beside this file), its estimate, its job
lifecycle (the provider calls of ftc's write-ahead create, then status, events, cancel,
result), its chat clients (sync, and async for ``ftc eval``), its model names and its key
variable. Nothing under ``ftclient/`` names it. Its service is simulated in-process
(:mod:`ftc_acme.provider`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from ftclient.backends import JobEvent, JobState, JobStatus, map_state
from ftclient.spec import StrictModel
from ftclient.submission import BackendBase
from ftclient.validation.common import DataChecker, Findings, TokenSetup

from . import provider

__all__ = ["AcmeBackend", "AcmeChecker", "AcmeCounter", "AcmeOptions"]

STATES = {"queued": JobState.QUEUED, "running": JobState.RUNNING, "succeeded": JobState.SUCCEEDED,
          "cancelled": JobState.CANCELLED}
MAX_WORDS = 200  # Acme's per-example limit, in its own tokens


class AcmeOptions(StrictModel):
    """The ``acme:`` block of a job spec."""

    model: str | None = None
    priority: Literal["normal", "low"] = "normal"


class AcmeCounter:
    """Acme bills one token per word of content and 4 per message."""

    exact = True
    basis = "exact: Acme counts one token per word and 4 per message"

    def count_split(self, records: Sequence[Mapping[str, Any]]) -> tuple[list[int], list[int], list[int]]:
        total, prompt, completion = [], [], []
        for rec in records:
            p = c = 0
            for m in rec.get("messages") or []:
                n = len(str(m.get("content") or "").split()) + 4
                if m.get("role") == "assistant":
                    c += n
                else:
                    p += n
            total.append(p + c)
            prompt.append(p)
            completion.append(c)
        return total, prompt, completion

    def count_records(self, records: Sequence[Mapping[str, Any]]) -> list[int]:
        return self.count_split(records)[0]

    def count_record(self, record: Mapping[str, Any]) -> int:
        return self.count_records([record])[0]


class AcmeChecker(DataChecker):
    """Acme's data rules: chat examples of a user turn then an assistant turn, nothing shouted."""

    provider = "acme"
    display = "Acme"
    min_examples = 2

    def __init__(self, model: str | None, method: str | None):
        self.model, self.method = model, method

    def check(self, rec: dict, ln: int, F: Findings) -> str | None:
        msgs = rec.get("messages")
        if not isinstance(msgs, list) or len(msgs) < 2:
            F.error(ln, "acme_needs_two_turns", "Acme needs a user turn and an assistant turn")
            return None
        if msgs[-1].get("role") != "assistant":
            F.error(ln, "acme_last_not_assistant", "Acme trains on the last message, which must be the assistant's")
        for m in msgs:
            text = str(m.get("content") or "")
            if text.isupper() and len(text) > 3:
                F.warning(ln, "acme_shouting", "Acme's models learn to shout from all-capital text")
        return "conversation"

    def token_setup(self, max_seq_len: int | None, notes: list[str]) -> TokenSetup | None:
        return TokenSetup(AcmeCounter(), MAX_WORDS, "Acme's per-example limit")


class _Raw:
    """A raw chat response as the SDKs give it: the body bytes."""

    def __init__(self, body: dict[str, Any]):
        self.content = json.dumps(body).encode()


class _Completions:
    def __init__(self) -> None:
        self.with_raw_response = self

    async def create(self, *, model: str, messages: Sequence[Mapping[str, Any]], **kw: Any) -> _Raw:
        text = provider.answer(model, str(messages[-1].get("content") or ""))
        counter = AcmeCounter()
        _, p, c = counter.count_split([{"messages": [*messages, {"role": "assistant", "content": text}]}])
        return _Raw({"id": "acme-chat", "object": "chat.completion", "model": model,
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": p[0], "completion_tokens": c[0], "total_tokens": p[0] + c[0]}})


class AcmeAsyncClient:
    """Acme's async chat client, the shape ``ftc eval`` asks: ``chat.completions``."""

    base_url = "https://api.acme.example/v1"

    def __init__(self) -> None:
        self.chat = type("Chat", (), {})()
        self.chat.completions = _Completions()

    async def __aenter__(self) -> "AcmeAsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None


class AcmeBackend(BackendBase):
    name = "acme"
    display = "Acme"
    key_env = "ACME_API_KEY"
    key_prefixes = ("acme-",)
    example_model = "acme-small"
    options = AcmeOptions
    spec_example = "acme:\n  priority: normal                 # normal | low\n"
    price_catalogue = "prices.yaml"
    uploads_files = True
    reconcile_attempts = 1  # Acme's job list never lags
    chat_token_param = "max_tokens"

    def __init__(self, **kw: Any):
        self.on_retry = kw.get("on_retry")

    # -- offline ----------------------------------------------------------------------------------

    @staticmethod
    def data_checker(model: str | None, method: str | None) -> AcmeChecker:
        return AcmeChecker(model, method)

    @staticmethod
    def token_counter(name: str, *, tokenizer: str | None = None) -> AcmeCounter:
        return AcmeCounter()

    @staticmethod
    def fine_tuned_base(model: str) -> tuple[bool, str | None]:
        base, sep, _ = model.partition(":ft-")
        return (True, base) if sep else (False, None)

    def validate(self, spec: Any, data_path: Any) -> Any:
        from ftclient.validation import validate_file

        return validate_file(data_path, self.name, model=spec.model_for(self.name), method=spec.method)

    def estimate(self, spec: Any) -> Any:
        from ftclient.cost import estimate_cost

        return estimate_cost(spec.data.train, f"{self.name}:{spec.model_for(self.name)}",
                             epochs=spec.hyperparameters.epochs, method=spec.method, adapter=spec.adapter)

    def preflight(self, spec: Any, *, today: Any = None) -> list[str]:
        return []

    # -- the provider calls of a submission --------------------------------------------------------

    def upload_file(self, path: Path, purpose: str) -> str:
        return provider.upload(Path(path).read_text(encoding="utf-8"))

    def create_request(self, spec: Any, *, training_file: str | None, validation_file: str | None,
                       client_token: str, job: Any) -> dict[str, Any]:
        return {"model": spec.model_for(self.name), "training_file": training_file, "client_token": client_token,
                "priority": spec.acme.priority}

    def create_job(self, spec: Any, *, training_file: str | None, validation_file: str | None, client_token: str,
                   job: Any) -> Mapping[str, Any]:
        req = self.create_request(spec, training_file=training_file, validation_file=validation_file,
                                  client_token=client_token, job=job)
        return provider.create(req["model"], req["training_file"], client_token, req["priority"])

    def job_state(self, raw: Mapping[str, Any]) -> JobState | None:
        return map_state(raw.get("status"), STATES, provider=self.name)

    def find_by_client_token(self, client_token: str, *, since: Any = None) -> str | None:
        return provider.find(client_token)

    # -- the job ------------------------------------------------------------------------------------

    def _status(self, j: Mapping[str, Any]) -> JobStatus:
        phase = j["phase"]
        step = j["events"][-1].get("step") if j["events"] else None
        return JobStatus(STATES[phase], provider_state=phase, step=step if phase == "running" else None,
                         total_steps=provider.STEPS,
                         fine_tuned_model=provider.fine_tuned_name(j) if phase == "succeeded" else None)

    def status(self, provider_job_id: str) -> JobStatus:
        return self._status(provider.poll(provider_job_id))

    def events(self, provider_job_id: str, after: str | None = None) -> list[JobEvent]:
        with provider.state() as s:
            evs = list(s["jobs"][provider_job_id]["events"])
        ids = [e["id"] for e in evs]
        if after in ids:
            evs = evs[ids.index(after) + 1:]
        return [JobEvent(e["id"], message=e["message"]) for e in evs]

    def checkpoints(self, provider_job_id: str) -> list:
        return []

    def cancel(self, provider_job_id: str) -> JobStatus:
        return self._status(provider.cancel(provider_job_id))

    def result(self, provider_job_id: str) -> str | None:
        with provider.state() as s:
            j = s["jobs"][provider_job_id]
        return provider.fine_tuned_name(j) if j["phase"] == "succeeded" else None

    # -- chat ----------------------------------------------------------------------------------------

    def chat(self, model: str, messages: Sequence[Mapping[str, Any]], **kw: Any) -> str:
        return provider.answer(model, str(messages[-1].get("content") or ""))

    def async_chat_client(self, *, timeout_s: float, max_reply_bytes: int, concurrency: int) -> AcmeAsyncClient:
        return AcmeAsyncClient()
