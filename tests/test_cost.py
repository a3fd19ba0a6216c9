"""Cost estimate and comparison: billing arithmetic, minimums, FLOPs model,
break-even, budget, plot, CLI shapes and exit codes."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
from click.testing import CliRunner

from ftclient import cost, tokens
from ftclient.cli.main import cli, main
from ftclient.errors import ConfigError, DataError, FtcError
from ftclient.prices import HOURS_PER_MONTH, load_catalogue

TODAY = dt.date(2026, 11, 22)
TICKETS = [
    ("I am still waiting on my card?", "card_arrival"),
    ("What can I do if my card still hasn't arrived after 2 weeks?", "card_arrival"),
    ("How do I top up with Apple Pay?", "top_up_by_apple_pay"),
    ("My transfer was declined, why?", "declined_transfer"),
    ("Can I change my PIN at an ATM?", "change_pin"),
]


def sft(user, label, system="Route the ticket to one intent."):
    return {"messages": [{"role": "system", "content": system}, {"role": "user", "content": user},
                         {"role": "assistant", "content": label}]}


@pytest.fixture
def data(tmp_path):
    p = tmp_path / "train.jsonl"
    p.write_text("".join(json.dumps(sft(u, c)) + "\n" for u, c in TICKETS * 4))
    return p


@pytest.fixture(scope="module")
def enc():
    return tokens.load_encoding("o200k_base")


def cookbook(enc, msgs):
    return sum(3 + sum(len(enc.encode_ordinary(v)) for v in m.values() if isinstance(v, str)) for m in msgs) + 3


def test_default_epochs_heuristic():
    # 3 epochs, unless n*3 < 100 (then 100 // n, at most 25) or n*3 > 25000 (then 25000 // n, at least 1)
    assert cost.default_epochs(1000) == 3
    assert cost.default_epochs(20) == 100 // 20
    assert cost.default_epochs(2) == 25
    assert cost.default_epochs(10000) == 25000 // 10000
    assert cost.default_epochs(30000) == 1


def test_openai_estimate_arithmetic(data, enc):
    est = cost.estimate_cost(data, "openai:gpt-4.1-mini", epochs=2, today=TODAY)
    per_ex = [cookbook(enc, sft(u, c)["messages"]) for u, c in TICKETS * 4]
    assert est.tokens_per_epoch == sum(per_ex)
    assert est.billed_tokens == 2 * sum(per_ex)
    price = load_catalogue(None, today=TODAY).model("openai:gpt-4.1-mini").training_price()
    assert est.cost_usd == pytest.approx(est.billed_tokens / 1e6 * price)
    assert est.token_count_exact and est.cost_exact and not est.min_charge_applied
    d = est.to_dict()
    for k in ("examples", "tokens_per_epoch", "epochs", "billed_tokens", "cost_usd", "token_count_basis", "price"):
        assert k in d
    assert d["price"]["source"].startswith("https://") and d["price"]["stale"] is False
    assert any("2027-01-06" in c for c in d["caveats"])


def test_default_epochs_used_and_said(data):
    est = cost.estimate_cost(data, "openai:gpt-4o-mini", today=TODAY)
    assert est.epochs == cost.default_epochs(len(TICKETS) * 4)
    assert "heuristic" in est.epochs_basis


def test_example_cap(tmp_path, data, enc):
    f = tmp_path / "p.yaml"
    f.write_text("models:\n  openai:gpt-4.1-mini: {max_example_tokens: 30}\n")
    est = cost.estimate_cost(data, "openai:gpt-4.1-mini", epochs=1, prices=f, today=TODAY)
    per_ex = [cookbook(enc, sft(u, c)["messages"]) for u, c in TICKETS * 4]
    assert est.tokens_per_epoch == sum(min(t, 30) for t in per_ex)
    assert est.examples_over_limit == sum(t > 30 for t in per_ex)


def test_together_charges_no_minimum_but_a_prices_file_minimum_applies(data, tmp_path):
    ref = "together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    est = cost.estimate_cost(data, ref, epochs=1, today=TODAY)
    # Together's pricing page: no minimum charge; a tiny file costs its tokens only.
    assert est.cost_usd == est.cost_before_minimum_usd == pytest.approx(est.billed_tokens / 1e6 * 0.48)
    assert est.cost_usd < 0.01 and not est.min_charge_applied and est.min_charge_usd == 0.0
    assert est.token_count_exact is False and "estimated" in est.token_count_basis
    assert "size tier 8.03B (up to 16B) x published per-token price (SFT, LoRA)" in est.cost_basis
    f = tmp_path / "p.yaml"
    f.write_text("tiers:\n  together: {min_charge_usd: 4.0}\n")
    est = cost.estimate_cost(data, ref, epochs=1, prices=f, today=TODAY)
    assert est.min_charge_applied and est.cost_usd == 4.0 and "minimum charge $4 applied" in est.cost_basis


def test_dpo_and_full_use_their_tier_price(data):
    ref = "together:meta-llama/Meta-Llama-3.1-70B-Instruct-Reference"
    est = cost.estimate_cost(data, ref, epochs=1, method="dpo", adapter="full", today=TODAY)
    assert est.price["training_per_1m"] == 8.00
    assert est.cost_before_minimum_usd == pytest.approx(est.billed_tokens / 1e6 * 8.00)


def test_self_hosted_flops_model(data):
    cat = load_catalogue(None, today=TODAY)
    est = cost.estimate_cost(data, "runpod:a100-community", epochs=3, prices=cat)
    sh = est.self_hosted
    params = cat.open_model("llama-3.1-8b").params_b * 1e9
    a = cost.ASSUMPTIONS
    assert sh["flops"] == pytest.approx(4 * params * est.billed_tokens)
    peak = cat.gpu("runpod:a100-community").spec.bf16_tflops * 1e12
    hours = sh["flops"] / (peak * a.train_mfu) / 3600 + a.setup_hours
    assert sh["duration_hours"] == pytest.approx(hours)
    assert sh["billed_gpu_hours"] == math.ceil(hours)  # hourly instance
    assert est.cost_usd == pytest.approx(math.ceil(hours) * 1.19)
    full = cost.estimate_cost(data, "modal:h100", epochs=3, adapter="full", prices=cat)
    assert full.self_hosted["flops"] == pytest.approx(6 * params * full.billed_tokens)
    assert full.self_hosted["billed_gpu_hours"] == pytest.approx(full.self_hosted["duration_hours"])  # per second
    assert not full.self_hosted["fits"] and any("GB" in c for c in full.caveats)


def test_break_even_arithmetic():
    assert cost.break_even_volume(0.001, 0.0005, 0.0, None) == 0.0
    assert cost.break_even_volume(0.001, 0.002, 0.0, None) == "never"
    assert cost.break_even_volume(0.001, 0.0, 730.0, 1_000_000) == pytest.approx(730_000)
    assert cost.break_even_volume(0.001, 0.0, 730.0, 500_000) == "never"


def test_compare_rows(data):
    q = 50_000
    cmp = cost.compare_costs(data, epochs=3, queries_per_month=q, tokens_per_query_in=100,
                             tokens_per_query_out=10, budget_usd=2.0, today=TODAY)
    by = {r.backend: r for r in cmp.rows}
    cat = load_catalogue(None, today=TODAY)
    # the defaults that can still be fine-tuned today; gpt-4.1-nano retired on 2026-10-23
    open_ = {m for m in cat.default_comparison() if not (cat.has_model(m) and cat.model(m).training_closed())}
    assert open_ <= set(by) and "openai:gpt-4.1-nano" not in by and "openai:gpt-4.1-mini" in open_
    # hosted per token
    m = cat.model("openai:gpt-4o-mini")
    per_q = (100 * m.inference_input_per_1m + 10 * m.inference_output_per_1m) / 1e6
    r = by["openai:gpt-4o-mini"]
    assert r.inference_monthly_usd == pytest.approx(per_q * q)
    assert r.inference_per_1k_usd == pytest.approx(per_q * 1000)
    assert r.inference_exact is True and r.training_exact is True
    # Together LoRA: dedicated endpoint always on
    t = by["together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"]
    ep = cat.model("together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference").dedicated_endpoint_per_hour
    assert t.inference_monthly_usd == pytest.approx(ep * HOURS_PER_MONTH)
    assert not t.min_charge_applied and t.within_budget is True  # no minimum: cents, not $4
    assert t.training_cost_usd == pytest.approx(t.billed_tokens / 1e6 * 0.48)
    # break-even of an always-on instance vs the cheapest per-token hosted row
    hosted = [x for x in cmp.rows if x.kind == "hosted" and x.serving.startswith("serverless")]
    cheapest = min(x.inference_per_1k_usd for x in hosted) / 1000
    lam = by["lambda:h100"]
    assert lam.break_even_queries_per_month == pytest.approx(4.29 * HOURS_PER_MONTH / cheapest)
    assert lam.inference_monthly_usd == pytest.approx(4.29 * HOURS_PER_MONTH)
    # budget flags follow training cost
    for x in cmp.rows:
        assert x.within_budget == (x.training_cost_usd <= 2.0)
    d = cmp.to_dict()
    assert d["queries_per_month"] == q and len(d["rows"]) == len(cmp.rows)
    assert all(not k.startswith("_") for k in d["rows"][0])
    assert d["assumptions"]["train_mfu"] == cost.ASSUMPTIONS.train_mfu


def test_compare_own_gpu_and_default_query_size(data, enc):
    cmp = cost.compare_costs(data, ["openai:gpt-4.1-mini"], epochs=1, gpu_prices={"own:rtx4090": 0.25},
                             queries_per_month=1000, today=TODAY)
    own = next(r for r in cmp.rows if r.backend == "own:rtx4090")
    assert own.usd_per_gpu_hour == 0.25 and own.kind == "self-hosted"
    r = next(r for r in cmp.rows if r.backend == "openai:gpt-4.1-mini")
    msgs = [sft(u, c)["messages"] for u, c in TICKETS * 4]
    pin = sum(cookbook(enc, m[:2]) for m in msgs) / len(msgs)
    pout = sum(len(enc.encode_ordinary(m[2]["content"])) for m in msgs) / len(msgs)
    e = load_catalogue(None, today=TODAY).model("openai:gpt-4.1-mini")
    assert r.inference_monthly_usd == pytest.approx(1000 * (pin * e.inference_input_per_1m + pout * e.inference_output_per_1m) / 1e6)
    assert r.inference_exact is False  # derived from the data's means


def test_compare_errors(data):
    with pytest.raises(ConfigError) as e:
        cost.compare_costs(data, "openai:gpt-4.1-mini,runpod:a100-comunity", today=TODAY)
    assert "runpod:a100-community" in e.value.hint
    with pytest.raises(FtcError):
        cost.compare_costs(data, ",", today=TODAY)
    with pytest.raises(DataError):
        cost.compare_costs([], today=TODAY)


def test_plot_written_and_not_on_error(data, tmp_path):
    from ftclient.plot import plot_comparison

    cmp = cost.compare_costs(data, epochs=1, budget_usd=1.0, today=TODAY)
    out = tmp_path / "sub" / "chart.png"
    plot_comparison(cmp, out)
    blob = out.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n" and len(blob) > 5000
    bad = tmp_path / "bad.png"
    res = CliRunner().invoke(cli, ["cost", "compare", str(data), "--models", "openai:nope", "--plot", str(bad)])
    assert res.exit_code != 0 and not bad.exists()
    assert list(tmp_path.glob(".bad.png*")) == []


def test_a_cost_estimate_with_an_unknown_figure_and_the_public_names(data):
    import dataclasses

    import ftclient

    assert ftclient.CostEstimate is cost.CostEstimate and ftclient.LocalCostEstimate is cost.LocalCostEstimate
    assert issubclass(cost.LocalCostEstimate, cost.CostEstimate)
    est = cost.estimate_cost(data, "openai:gpt-4o-mini", epochs=2)
    unknown = dataclasses.replace(est, cost_usd=None, cost_before_minimum_usd=None, cost_basis="unknown")
    d = unknown.to_dict()  # None stays None: an unknown figure, never a made-up one
    assert d["cost_usd"] is None and d["cost_before_minimum_usd"] is None and d["billed_tokens"] == est.billed_tokens
    assert json.loads(json.dumps(d))["cost_usd"] is None
    assert est.to_dict()["cost_usd"] == round(est.cost_usd, 4)


# ---------------------------------------------------------------------- CLI
def test_cli_estimate_json(data):
    res = CliRunner().invoke(cli, ["cost", "estimate", str(data), "--model", "openai:gpt-4o-mini", "--epochs", "2", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["epochs"] == 2 and d["billed_tokens"] == 2 * d["tokens_per_epoch"]
    assert d["token_count_basis"].startswith("exact:")


def test_cli_compare_json_and_table(data, tmp_path):
    png = tmp_path / "c.png"
    r = CliRunner().invoke(cli, ["cost", "compare", str(data), "--epochs", "1", "--budget", "3", "--json",
                                 "--gpu-price", "own:rtx4090=0.2", "--plot", str(png)])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert {row["backend"] for row in d["rows"]} >= {"openai:gpt-4.1-mini", "modal:h100", "own:rtx4090"}
    assert d["plot"] == str(png) and png.stat().st_size > 0
    for row in d["rows"]:
        for k in ("training_cost_usd", "training_exact", "inference_monthly_usd", "break_even_queries_per_month",
                  "within_budget", "token_count_basis", "price"):
            assert k in row
    r = CliRunner().invoke(cli, ["cost", "compare", str(data), "--epochs", "1"])
    assert r.exit_code == 0 and "openai:gpt-4" in r.output and "break-even" in r.output


def test_the_default_comparison_is_what_the_catalogues_mark(data, tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("models:\n  openai:gpt-4o-mini: {compare: none}\n  openai:gpt-4o: {compare: default}\n"
                 "gpus:\n  lambda:h100: {compare: none}\n")
    r = CliRunner().invoke(cli, ["cost", "compare", str(data), "--epochs", "1", "--prices", str(f), "--json"])
    assert r.exit_code == 0, r.output
    shown = [row["backend"] for row in json.loads(r.stdout)["rows"]]
    cat = load_catalogue(f, today=TODAY)
    assert "openai:gpt-4o" in shown and "openai:gpt-4o-mini" not in shown and "lambda:h100" not in shown
    assert "openai:gpt-4o" in cat.default_comparison() and "modal:h100" in shown  # the others stay


def test_cli_stale_flag_shown(data, tmp_path):
    f = tmp_path / "old.yaml"
    f.write_text("models:\n  openai:gpt-4o-mini: {as_of: 2020-01-01}\n")
    r = CliRunner().invoke(cli, ["cost", "estimate", str(data), "-m", "openai:gpt-4o-mini", "--prices", str(f)])
    assert r.exit_code == 0 and "STALE" in r.output
    r = CliRunner().invoke(cli, ["cost", "estimate", str(data), "-m", "openai:gpt-4o-mini", "--prices", str(f), "--json"])
    assert json.loads(r.stdout)["price"]["stale"] is True


def run_main(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    return e.value.code, capsys.readouterr().err


def test_cli_exit_codes(data, tmp_path, capsys):
    code, err = run_main(["cost", "estimate", str(data), "--model", "openai:gpt-4.1-mnii"], capsys)
    assert code == 2 and "Did you mean" in err and "Traceback" not in err
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(sft("a", "b")) + "\n{oops\n")
    code, err = run_main(["cost", "compare", str(bad)], capsys)
    assert code == 1 and "bad.jsonl:2" in err
    code, err = run_main(["cost", "compare", str(tmp_path / "missing.jsonl")], capsys)
    assert code == 2 and "no such file" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, err = run_main(["cost", "estimate", str(empty), "-m", "openai:gpt-4o-mini"], capsys)
    assert code == 1 and "empty" in err
    code, err = run_main(["cost", "compare", str(data), "--gpu-price", "own:rtx4090"], capsys)
    assert code == 2 and "USD_PER_HOUR" in err


def test_serverless_hours_follow_the_idle_window_model():
    import math

    from ftclient.prices import HOURS_PER_MONTH

    a = cost.Assumptions(serverless_scaledown_s=60.0, serverless_cold_start_s=30.0)
    month_s = HOURS_PER_MONTH * 3600
    # A volume at which a container is up half of the month: r * W = ln 2.
    q = math.log(2) / 60.0 * month_s
    expected = HOURS_PER_MONTH * 0.5 + q * 0.5 * 30.0 / 3600
    assert cost.serverless_gpu_hours(q, 0.001, a) == pytest.approx(expected, rel=1e-9)
    # Rare queries: nearly every one is a cold start plus a full window.
    assert cost.serverless_gpu_hours(10, 0.001, a) == pytest.approx(10 * (60 + 30) / 3600, rel=1e-3)
    # Busy time beyond one container's month is billed as busy time.
    assert cost.serverless_gpu_hours(1e9, 0.01, a) == pytest.approx(1e9 * 0.01 / 3600)
    assert cost.serverless_gpu_hours(0, 0.01, a) == 0.0


def test_break_even_for_costs_that_are_not_linear():
    # One GPU at $1/h, up min(730 h, 0.01 h per query): cheaper than $0.0001 per query above 7.3M queries.
    monthly = lambda v: min(730.0, v * 0.01) * 1.0  # noqa: E731
    assert cost.break_even_monthly(0.0001, monthly) == pytest.approx(7.3e6, rel=2e-3)
    assert cost.break_even_monthly(0.0001, lambda v: v * 0.001) == "never"
    assert cost.break_even_monthly(0.01, lambda v: v * 0.001) == 0.0


def test_scale_to_zero_gpu_is_not_free_at_moderate_volume(tmp_path):
    data = tmp_path / "t.jsonl"
    data.write_text("".join(
        json.dumps({"messages": [{"role": "user", "content": f"question {i} about my card"},
                                 {"role": "assistant", "content": "card_arrival"}]}) + "\n" for i in range(50)))
    # a per-token hosted option to break even against (a Fireworks fine-tune is served on a
    # dedicated deployment, per hour, so it is none)
    cmp = cost.compare_costs(data, ["openai:gpt-4o-mini", "modal:h100"],
                             epochs=1, queries_per_month=100_000)
    modal = next(r for r in cmp.rows if r.backend == "modal:h100")
    # 100K queries a month keep a 60 s window open ~90% of the time: hundreds of GPU-hours.
    assert modal.inference_monthly_usd > 0.8 * 730 * 3.95
    assert modal.break_even_queries_per_month == "never" or modal.break_even_queries_per_month > 1e6


# --------------------------------------------------------------- the self-hosted rows' model
def _spec_project(tmp_path, base_model="default"):
    from ftclient.spec import example_spec

    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "train.jsonl").write_text("".join(json.dumps(sft(u, c)) + "\n" for u, c in TICKETS * 4))
    spec = example_spec().replace("base_model: default ", f"base_model: {base_model} ", 1)
    assert f"base_model: {base_model}" in spec
    (tmp_path / "job.yaml").write_text(spec)
    return tmp_path / "job.yaml"


def _safetensors(path, shapes):
    """A safetensors file with these tensor shapes (zero data): header length, JSON header, data."""
    import struct

    header, off = {}, 0
    for i, shape in enumerate(shapes):
        n = 4 * math.prod(shape)
        header[f"t{i}"] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"\0" * off)


def test_compare_with_a_spec_prices_the_self_hosted_rows_for_the_specs_model(tmp_path):
    spec = _spec_project(tmp_path)
    gpus = "modal:h100,runpod:rtx4090-community"
    r = CliRunner().invoke(cli, ["cost", "compare", "--spec", str(spec), "--models", gpus, "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    # base_model: default is the local backend's SmolLM2-135M-Instruct: 135M parameters, not Llama's 8B
    assert d["self_host"]["model"] == "default" and "SmolLM2-135M-Instruct" in d["self_host_model"]
    small = load_catalogue(None).open_model("smollm2-135m").params_b
    assert d["self_host"]["params_b"] == small == 0.135
    rows = {row["backend"]: row for row in d["rows"]}
    for row in rows.values():
        assert "SmolLM2-135M-Instruct" in row["model"]
        assert row["training_flops"] == pytest.approx(4 * small * 1e9 * row["billed_tokens"])  # LoRA: 4 x N x D
    # --self-host-model wins over the spec; the same rows priced for Llama 3.1 8B cost more to train
    r8 = CliRunner().invoke(cli, ["cost", "compare", "--spec", str(spec), "--models", gpus, "--json",
                                  "--self-host-model", "llama-3.1-8b"])
    big = json.loads(r8.stdout)
    assert big["self_host"]["params_b"] == 8.03
    h100, h100_8b = rows["modal:h100"], {x["backend"]: x for x in big["rows"]}["modal:h100"]
    assert h100_8b["training_flops"] / h100_8b["billed_tokens"] == pytest.approx(4 * 8.03e9)
    assert h100_8b["training_cost_usd"] > h100["training_cost_usd"]
    # the table names the model and its size
    t = CliRunner().invoke(cli, ["cost", "compare", "--spec", str(spec), "--models", gpus])
    assert t.exit_code == 0
    assert "self-hosted rows: default (SmolLM2-135M-Instruct), 0.135B params" in " ".join(t.output.split())
    # ftc cost estimate on a GPU offer trains the spec's model too
    e = CliRunner().invoke(cli, ["cost", "estimate", "--spec", str(spec), "--model", "modal:h100", "--json"])
    assert e.exit_code == 0, e.output
    est = json.loads(e.stdout)
    assert "SmolLM2-135M-Instruct" in est["model"]
    assert est["self_hosted"]["flops"] == pytest.approx(4 * small * 1e9 * est["billed_tokens"])


def test_a_model_folder_is_sized_from_its_weights_headers_or_its_config(tmp_path):
    cat = load_catalogue(None, today=TODAY)
    m = tmp_path / "my-model"
    m.mkdir()
    # SmolLM2-135M's config: the Llama-style count is its published 134,515,008 parameters
    cfg = {"model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30, "vocab_size": 49152,
           "intermediate_size": 1536, "num_attention_heads": 9, "num_key_value_heads": 3, "tie_word_embeddings": True}
    (m / "config.json").write_text(json.dumps(cfg))
    got = cost.resolve_self_host_model(str(m), cat)
    assert got.params_b * 1e9 == pytest.approx(134_515_008)
    assert not got.params_exact and "config.json" in got.params_basis
    # with weights, their headers give the exact count (and only the header is read)
    _safetensors(m / "model.safetensors", [(1000, 30), (7,)])
    got = cost.resolve_self_host_model(str(m), cat)
    assert got.params_b * 1e9 == pytest.approx(30_007) and got.params_exact and "safetensors" in got.params_basis
    # a spec whose base_model is that folder prices its rows with that count
    spec = _spec_project(tmp_path, base_model="./my-model")
    r = CliRunner().invoke(cli, ["cost", "compare", "--spec", str(spec), "--models", "modal:h100", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["self_host"]["params_b"] * 1e9 == pytest.approx(30_007) and d["self_host"]["params_exact"]
    row = d["rows"][0]
    assert row["training_flops"] == pytest.approx(4 * 30_007 * row["billed_tokens"])


def test_a_gguf_file_is_sized_from_its_tensor_table(tmp_path):
    import struct

    def s(text):
        b = text.encode()
        return struct.pack("<Q", len(b)) + b

    # GGUF v3: 2 metadata pairs (a string, an array of strings), 2 tensors of 4x6 and 10 elements
    kv = (s("general.name") + struct.pack("<I", 8) + s("tiny")
          + s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 2) + s("a") + s("bb"))
    tensors = (s("w") + struct.pack("<I2QIQ", 2, 4, 6, 0, 0) + s("b") + struct.pack("<I1QIQ", 1, 10, 0, 96))
    f = tmp_path / "tiny-Q4.gguf"
    f.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2, 2) + kv + tensors + b"\0" * 64)
    got = cost.resolve_self_host_model(str(f), load_catalogue(None, today=TODAY))
    assert got.params_b * 1e9 == pytest.approx(34) and got.params_exact and "GGUF" in got.params_basis


def test_self_host_model_by_hf_id_name_or_catalogue_and_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # nothing cached
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    cat = load_catalogue(None, today=TODAY)
    known = cost.resolve_self_host_model("HuggingFaceTB/SmolLM2-135M-Instruct", cat)
    assert known.params_b == 0.135 and "open_models.smollm2-135m" in known.params_basis
    named = cost.resolve_self_host_model("Qwen/Qwen2.5-0.5B-Instruct", cat)
    assert named.params_b == pytest.approx(0.5) and "from the name" in named.params_basis
    # an HF cache snapshot with a config.json is read (refs/main names the snapshot)
    snap = tmp_path / "hf" / "hub" / "models--acme--tiny" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("abc")
    _safetensors(snap / "model.safetensors", [(5, 5)])
    cached = cost.resolve_self_host_model("acme/tiny", cat)
    assert cached.params_b * 1e9 == pytest.approx(25) and cached.params_exact
    with pytest.raises(ConfigError, match="size of model 'acme/mystery' is unknown"):
        cost.resolve_self_host_model("acme/mystery", cat)
    spec = _spec_project(tmp_path, base_model="acme/mystery")
    r = CliRunner().invoke(cli, ["cost", "compare", "--spec", str(spec), "--models", "modal:h100"])
    assert r.exit_code == 2 and "--self-host-model" in r.output
