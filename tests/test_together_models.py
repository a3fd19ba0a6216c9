"""Together models beyond ftc's catalogue: learned from the provider (supported list and
limits, through the REAL together SDK against tests/emulator.py), priced by Together's
published size tier, and the budget kept on Together's own quote; offline estimates."""

from __future__ import annotations

import json

import pytest

from emulator import status

together = pytest.importorskip("together")

from ftclient import jobs as J  # noqa: E402
from ftclient.errors import SpecError  # noqa: E402
from ftclient.providers.together import TogetherBackend  # noqa: E402
from ftclient.retry import RetryPolicy, sdk_client_kwargs  # noqa: E402
from ftclient.spec import parse_spec  # noqa: E402
from ftclient.store import Store  # noqa: E402

UNLISTED = "meta-llama/Llama-3.2-3B-Instruct"  # Together fine-tunes it; ftc's catalogue does not list it
NO_SIZE = "mistralai/Mistral-Nemo-Instruct-2407"  # supported, but no size in its name
TIER_PRICE = 0.48  # Together's published SFT LoRA price per 1M tokens, up to 16B (prices.yaml)


def _clean(r):
    assert "Traceback" not in r.err and "Traceback" not in r.out, r.err


def _rows(n=40):
    return [{"messages": [{"role": "user", "content": f"I lost my card number {i}. " * 20},
                          {"role": "assistant", "content": "card_lost"}]} for i in range(n)]


def write_spec(tmp_path, model):
    d = tmp_path / "tg"
    d.mkdir(exist_ok=True)
    (d / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    (d / "job.yaml").write_text(f"name: sizes\ndata:\n  train: train.jsonl\nhyperparameters:\n  epochs: 2\n"
                                f"together:\n  model: {model}\n  suffix: sizes\n")
    return d / "job.yaml"


@pytest.fixture
def emu(ftc_home, together_emu):
    """The real TogetherBackend (together SDK) against the emulator, via the environment; every
    body sent, the supported list and the limits too, is checked as documented."""
    yield together_emu


def paths(emu):
    return [f"{r.method} {r.path}" for r in emu.requests]


# --------------------------------------------------------------------------- ftc train


def test_train_a_model_the_catalogue_does_not_list(ftc, emu, tmp_path):
    spec = write_spec(tmp_path, UNLISTED)
    r = ftc("train", spec, "--backend", "together", "--dry-run", "--json")
    _clean(r)
    assert r.code == 0, r.err
    plan = r.json()["plan"]
    est = plan["estimate"]
    # priced offline by the size tier, and the basis says so
    assert plan["estimate_usd"] == pytest.approx(est["billed_tokens"] / 1e6 * TIER_PRICE)
    assert "size tier 3B (up to 16B; 3B read from the name) x published per-token price (SFT, LoRA)" \
        in est["cost_basis"]
    details = dict(plan["details"])
    assert details["price"].startswith(f"${TIER_PRICE:g} per 1M tokens: size tier 3B")
    assert "budget applies to it too" in details["provider quote"]
    assert not any("not in ftc's price catalogue and" in w for w in plan["warnings"])
    assert emu.requests == []  # a dry run sends nothing

    r = ftc("train", spec, "--backend", "together", "--dry-run")  # the human plan shows the tier price
    assert r.code == 0 and "size tier 3B" in r.out and "$0.48 per 1M tokens" in r.out

    r = ftc("train", spec, "--backend", "together", "--yes", "--detach", "--budget", "5")
    _clean(r)
    assert r.code == 0, r.err
    assert "estimate: ftc $" in r.err and "together $" in r.err and "(budget $5.00)" in r.err
    [job] = emu.jobs.values()
    assert job["model"] == UNLISTED
    seen = paths(emu)
    # Together's limits for the model are asked before anything is uploaded (and reused for the request)
    assert seen.index("GET /v1/fine-tunes/models/limits") < seen.index("POST /v1/files")
    assert seen.count("GET /v1/fine-tunes/models/limits") == 1
    assert seen[-2:] == ["POST /v1/fine-tunes/estimate-price", "POST /v1/fine-tunes"]
    assert "GET /v1/fine-tunes/models/supported" not in seen  # only needed to explain a refusal


def test_the_budget_applies_to_togethers_quote(ftc, emu, tmp_path):
    spec = write_spec(tmp_path, UNLISTED)
    quote = {"estimation_available": True, "estimated_total_price": 50.0, "allowed_to_proceed": True,
             "user_limit": 100.0, "estimated_train_token_count": 100000.0, "estimated_eval_token_count": 0.0}
    emu.fail(r"/estimate-price$", "POST", status(200, body=quote))
    r = ftc("train", spec, "--backend", "together", "--yes", "--detach", "--budget", "1")
    _clean(r)
    assert r.code == 1 and "provider's estimate $50.00 is above the budget $1.00" in r.err
    assert emu.jobs == {} and emu.requests_to(r"/v1/fine-tunes$", "POST") == []


def test_a_model_together_does_not_list_is_refused_before_upload(ftc, emu, tmp_path):
    wrong = "meta-llama/Llama-3.2-3B-Instruckt"
    spec = write_spec(tmp_path, wrong)
    r = ftc("train", spec, "--backend", "together", "--yes", "--detach", "--budget", "5")
    _clean(r)
    assert r.code == 2, r.err
    assert f"together does not fine-tune '{wrong}'" in r.err and "nothing was uploaded" in r.err
    assert "Did you mean meta-llama/Llama-3.2-3B-Instruct" in r.err
    assert paths(emu) == ["GET /v1/fine-tunes/models/limits", "GET /v1/fine-tunes/models/supported"]
    assert emu.files == {} and emu.jobs == {}
    [job] = J.list_jobs()
    assert job.state == "failed" and not job.provider_job_id


def test_a_supported_model_of_unknown_size_trains_on_the_quote(ftc, emu, tmp_path):
    spec = write_spec(tmp_path, NO_SIZE)
    r = ftc("train", spec, "--backend", "together", "--dry-run", "--json")
    assert r.code == 0, r.err
    plan = r.json()["plan"]
    assert plan["estimate_usd"] is None
    # a CostEstimate of the tokens without a figure: Together's quote gives the price
    est = plan["estimate"]
    assert est["cost_usd"] is None and est["model"] == f"together:{NO_SIZE}" and est["epochs"] == 2
    assert est["examples"] == 40 and est["billed_tokens"] == 2 * est["tokens_per_epoch"] > 0
    assert "ftc cannot price" in est["cost_basis"]
    assert any("its size is unknown" in w and "Together's quote" in w for w in plan["warnings"])
    assert dict(plan["details"])["price"] == "unknown to ftc (its size is unknown)"
    r = ftc("train", spec, "--backend", "together", "--yes", "--detach", "--budget", "5")
    _clean(r)
    assert r.code == 0, r.err
    assert "estimate: ftc unknown, together $" in r.err
    assert [j["model"] for j in emu.jobs.values()] == [NO_SIZE]


# --------------------------------------------------------------------------- the backend calls


def backend_for(emu):
    client = together.Together(base_url=emu.base_url, api_key=emu.api_key, **sdk_client_kwargs("together"))
    return TogetherBackend(client=client, policy=RetryPolicy(sleep=lambda s: None), sleep=lambda s: None,
                           file_poll_s=0)


def test_supported_list_and_limits_through_the_sdk_under_the_retry_policy(emu, tmp_path):
    be = backend_for(emu)
    emu.fail(r"/models/supported$", "GET", [status(503), status(429, headers={"Retry-After": "0"})])
    models = be.supported_models()
    assert UNLISTED in models and set(models) == set(emu.SUPPORTED_MODELS)
    assert len(emu.requests_to(r"/models/supported$", "GET")) == 3  # two retried, then the list
    assert be.supported_models() == models and len(emu.requests_to(r"/models/supported$")) == 3  # cached
    spec = parse_spec({"name": "s", "base_model": UNLISTED, "data": {"train": "t.jsonl"}}, base_dir=tmp_path)
    be._check_model(spec)
    [req] = emu.requests_to(r"/models/limits$", "GET")
    assert req.query["model_name"] == [UNLISTED]
    bad = parse_spec({"name": "s", "base_model": "Qwen/Qwen3-8b-instrct", "data": {"train": "t.jsonl"}},
                     base_dir=tmp_path)
    with pytest.raises(SpecError) as ei:
        be._check_model(bad)
    assert ei.value.exit_code == 2 and "Qwen/Qwen3-8B" in ei.value.hint


def test_submit_refuses_an_unsupported_model_before_any_upload(emu, tmp_path):
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(12)))
    spec = parse_spec({"name": "s", "base_model": "acme/never-heard-of-it", "data": {"train": "t.jsonl"}},
                      base_dir=tmp_path)
    with Store(tmp_path / "ftc.db") as st:
        job = st.new_job("together", spec.model_dump(mode="json"), model="acme/never-heard-of-it")
        with pytest.raises(SpecError, match="not among the 8 models Together lists"):
            backend_for(emu).submit(spec, job=job, store=st)
        assert not st.operations(job.id, "upload") and not st.operations(job.id, "create")
    assert emu.requests_to(r"/v1/files") == [] and emu.jobs == {}


# --------------------------------------------------------------------------- offline


@pytest.fixture
def data(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in _rows(20)))
    return p


def test_offline_estimate_of_an_unlisted_model_from_its_size(ftc, data, monkeypatch):
    monkeypatch.delenv("TOGETHER_API_KEY", raising=False)
    r = ftc("cost", "estimate", data, "--model", f"together:{UNLISTED}", "--epochs", "2", "--json")
    _clean(r)
    assert r.code == 0, r.err
    d = r.json()
    assert d["cost_usd"] == pytest.approx(d["billed_tokens"] / 1e6 * TIER_PRICE, abs=1e-4)  # JSON: 4 places
    assert d["price"]["tier"] == "up to 16B" and d["price"]["training_per_1m"] == TIER_PRICE
    assert "size tier 3B (up to 16B; 3B read from the name)" in d["cost_basis"]
    assert any("not in ftc's price catalogue" in c for c in d["caveats"])
    big = ftc("cost", "estimate", data, "--model", "together:Qwen/Qwen2.5-32B-Instruct", "--epochs", "2",
              "--json").json()
    assert big["price"]["tier"] == "16.1-69B" and big["price"]["training_per_1m"] == 1.50


def test_offline_estimate_of_a_model_of_unknown_size_is_a_clear_usage_error(ftc, data):
    r = ftc("cost", "estimate", data, "--model", f"together:{NO_SIZE}")
    _clean(r)
    assert r.code == 2
    assert "size is unknown" in r.err and "params_b" in r.err


def test_compare_row_of_an_unlisted_model(data):
    from ftclient.cost import compare_costs

    cmp = compare_costs(data, [f"together:{UNLISTED}", "openai:gpt-4.1-mini"], epochs=1, queries_per_month=1000)
    row = next(r for r in cmp.rows if r.backend == f"together:{UNLISTED}")
    assert row.training_cost_usd == pytest.approx(row.billed_tokens / 1e6 * TIER_PRICE)
    assert "size tier 3B" in row.training_basis
    # no dedicated-endpoint price known for it: serving is unknown, not $0
    assert row.inference_monthly_usd is None and row.inference_basis.startswith("unknown:")
