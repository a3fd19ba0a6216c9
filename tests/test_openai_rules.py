"""OpenAI's fine-tuning rules on their dates: gpt-4.1-nano retired on 2026-10-23 (no new
jobs, fine-tuned models shut down), and since 2026-07-02 no new jobs for organisations
without fine-tuned-model inference in the last 60 days. Through the REAL openai SDK
against tests/emulator.py (its refusal fault mode), and through the CLI."""

from __future__ import annotations

import json
from datetime import date

import pytest

from emulator import ProviderEmulator, status

openai = pytest.importorskip("openai")

from ftclient import backends as B  # noqa: E402
from ftclient import jobs as J  # noqa: E402
from ftclient.errors import SpecError  # noqa: E402
from ftclient.providers._hosted import HostedBackend  # noqa: E402
from ftclient.providers.openai import FineTuningUnavailable, OpenAIBackend, refused_as_inactive  # noqa: E402
from ftclient.retry import AuthError, RetryPolicy, sdk_client_kwargs  # noqa: E402
from ftclient.spec import parse_spec  # noqa: E402
from ftclient.store import Store  # noqa: E402

TODAY = date(2026, 12, 6)
MINI = "gpt-4.1-mini-2025-04-14"
NANO = "gpt-4.1-nano-2025-04-14"
CREATE = r"/fine_tuning/jobs$"


def _clean(r):
    assert "Traceback" not in r.err and "Traceback" not in r.out, r.err


@pytest.fixture
def train(tmp_path):
    p = tmp_path / "train.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"I lost my card number {i}"},
                          {"role": "assistant", "content": "card_lost"}]} for i in range(12)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def spec(train, model=MINI):
    return parse_spec({"name": "tickets", "base_model": model, "data": {"train": str(train)},
                       "hyperparameters": {"epochs": 1}})


@pytest.fixture
def emu():
    with ProviderEmulator("openai") as e:
        yield e
        e.check_responses()  # the refusal too is in OpenAI's documented error shape


def backend(emu, today=TODAY):
    client = openai.OpenAI(base_url=emu.base_url, api_key=emu.api_key, **sdk_client_kwargs("openai", read=5.0))
    return OpenAIBackend(client=client, today=today, sleep=lambda s: None, file_poll_s=0.01,
                         policy=RetryPolicy(max_attempts=3, sleep=lambda s: None))


# --------------------------------------------------------------------------- gpt-4.1-nano


def test_nano_is_refused_before_any_request(emu, train, tmp_path):
    b = backend(emu)
    with pytest.raises(SpecError) as ei:
        b.preflight(spec(train, NANO))
    e = ei.value
    assert e.exit_code == 2 and "ended on 2026-10-23" in e.message and "Nothing was sent" in e.message
    assert "were shut down on 2026-10-23 and no longer answer" in e.message
    assert "--backend together" in e.hint
    with Store(tmp_path / "ftc.db") as st:
        job = st.new_job("openai", {"name": "tickets"}, model=NANO)
        with pytest.raises(SpecError):
            b.submit(spec(train, NANO), job=job, store=st)
    assert emu.requests == []
    # the day before, the same catalogue let it through
    assert not any("2026-10-23" in w and "ended" in w for w in b.preflight(spec(train, NANO), today=date(2026, 10, 22)))


# --------------------------------------------------------------------------- the 60-day rule


def test_preflight_warns_of_the_inactive_organisation_rule(train):
    w = " ".join(OpenAIBackend(today=TODAY).preflight(spec(train)))
    assert "Since 2026-07-02" in w and "last 60 days" in w and "--backend together" in w
    before = " ".join(OpenAIBackend(today=date(2026, 7, 1)).preflight(spec(train)))
    assert "60 days" not in before


@pytest.mark.parametrize("code", [403, 400])
def test_refused_create_is_one_clear_error_without_retries(emu, train, tmp_path, code):
    b = backend(emu)
    emu.refuse_fine_tuning(code)
    with Store(tmp_path / "ftc.db") as st:
        job = st.new_job("openai", {"name": "tickets"}, model=MINI)
        with pytest.raises(FineTuningUnavailable) as ei:
            b.submit(spec(train), job=job, store=st)
        [op] = st.operations(job.id, "create")
        assert op.state == "failed" and not op.is_open  # a definite refusal: nothing to reconcile
    e = ei.value
    assert e.exit_code == 2 and e.status_code == code
    assert "last 60 days" in e.message and "No job was created" in e.message
    assert emu.INACTIVE_ORG_MESSAGE in e.message  # OpenAI's own words are quoted
    assert "--backend together" in e.hint and "--backend local" in e.hint
    assert emu.api_key not in e.message + (e.hint or "") and e.error is None
    assert len(emu.requests_to(CREATE, "POST")) == 1 and emu.jobs == {}  # sent once, never retried


def test_other_refusals_are_not_mistaken_for_the_rule(emu, train, tmp_path):
    b = backend(emu)
    emu.fail(CREATE, "POST", status(403))  # "You are not allowed to perform this request."
    with Store(tmp_path / "ftc.db") as st:
        with pytest.raises(AuthError):
            b.submit(spec(train), job=st.new_job("openai", {}, model=MINI), store=st)

    class Err(Exception):
        def __init__(self, code, body):
            self.status_code, self.body = code, body

    assert refused_as_inactive(Err(403, {"message": emu.INACTIVE_ORG_MESSAGE}))
    assert refused_as_inactive(Err(400, {"error": {"message": "Fine-tuning is no longer available to your "
                                                              "organization.", "code": None}}))
    assert not refused_as_inactive(Err(500, {"message": emu.INACTIVE_ORG_MESSAGE}))
    assert not refused_as_inactive(Err(400, {"message": "invalid training_file: file-1"}))


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def cli_emu(monkeypatch, ftc_home):
    if "openai" not in B.available_backends():
        B.register_backend("openai", OpenAIBackend)
    monkeypatch.setattr(HostedBackend, "_today", lambda self: TODAY)
    with ProviderEmulator("openai") as e:
        for k, v in e.env.items():
            monkeypatch.setenv(k, v)
        yield e
        e.check_responses()


def write_job(tmp_path, model):
    (tmp_path / "t.jsonl").write_text("".join(
        json.dumps({"messages": [{"role": "user", "content": f"card {i}"}, {"role": "assistant", "content": "lost"}]})
        + "\n" for i in range(12)))
    (tmp_path / "job.yaml").write_text(f"name: t\nbase_model: {model}\ndata:\n  train: t.jsonl\n")
    return tmp_path / "job.yaml"


def test_cli_dry_run_warns_and_the_refusal_is_one_message(ftc, cli_emu, tmp_path):
    job = write_job(tmp_path, MINI)
    r = ftc("train", job, "--backend", "openai", "--dry-run", "--json")
    assert r.code == 0 and any("last 60 days" in w for w in r.json()["plan"]["warnings"])
    assert cli_emu.requests == []
    cli_emu.refuse_fine_tuning()
    r = ftc("train", job, "--backend", "openai", "--yes")
    _clean(r)
    assert r.code == 2
    err = r.err[r.err.index("error:"):]  # after the plan (whose warning says it too): one message
    assert err.count("last 60 days") == 1 and "--backend together" in err and "retry" not in err.lower()
    assert len(cli_emu.requests_to(CREATE, "POST")) == 1 and cli_emu.jobs == {}
    [j] = J.list_jobs()
    assert j.state == "failed" and "60 days" in (j.error or "")


def test_cli_nano_exit_2_before_any_request(ftc, cli_emu, tmp_path):
    r = ftc("train", write_job(tmp_path, NANO), "--backend", "openai", "--yes")
    _clean(r)
    assert r.code == 2 and "2026-10-23" in r.err and "no longer answer" in r.err
    assert cli_emu.requests == [] and J.list_jobs() == []


# --------------------------------------------------------------------------- cost rows


def test_compare_flags_the_retired_model_and_prices_no_serving(train):
    from ftclient.cost import compare_costs
    from ftclient.prices import load_catalogue

    cmp = compare_costs(train, ["openai:gpt-4.1-nano", "openai:gpt-4.1-mini", "runpod:a100-community"], epochs=1,
                        queries_per_month=10_000, today=TODAY)
    by = {r.backend: r for r in cmp.rows}
    nano, mini = by["openai:gpt-4.1-nano"], by["openai:gpt-4.1-mini"]
    assert nano.label == "openai:gpt-4.1-nano (retired)" and mini.label == "openai:gpt-4.1-mini"
    assert nano.serving == "shut down" and nano.inference_monthly_usd is None and nano.inference_per_1k_usd is None
    assert any(c.startswith("retired:") and "2026-10-23" in c for c in nano.caveats)
    assert mini.inference_monthly_usd > 0
    # break-even is measured against a model that still answers
    assert "gpt-4.1-mini" in by["runpod:a100-community"].break_even_basis
    # by default only models that can still be fine-tuned are compared
    default = compare_costs(train, epochs=1, today=TODAY)
    assert "openai:gpt-4.1-nano" in load_catalogue(today=TODAY).default_comparison() and "openai:gpt-4.1-nano" not in {r.backend for r in default.rows}
    assert not [r for r in compare_costs(train, epochs=1, today=date(2027, 1, 6)).rows if r.kind == "hosted"
                and r.backend.startswith("openai:")]
