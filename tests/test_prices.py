"""The price catalogue: loading, provenance, override, stale flag, tiers, errors."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from ftclient.errors import ConfigError
from ftclient.prices import CATALOGUE_FILE, STALE_AFTER_DAYS, load_catalogue

TODAY = dt.date(2026, 11, 22)


def test_every_entry_has_source_and_date():
    raw = yaml.safe_load(CATALOGUE_FILE.read_text())
    cat = load_catalogue(None, today=TODAY)
    assert cat.model_refs() and raw["gpus"]
    for ref in cat.model_refs():
        m = cat.model(ref)
        assert m.source and m.source.startswith("https://"), ref
        assert m.as_of is not None, ref
        assert m.training_price("sft", "lora") > 0
    for ref in cat.gpu_refs():
        g = cat.gpu(ref)
        assert g.source and g.as_of and g.usd_per_hour > 0 and g.spec is not None, ref
        assert g.billing in ("per_second", "hourly")


def test_brief_figures_present():
    cat = load_catalogue(None, today=TODAY)
    assert cat.model("openai:gpt-4o-mini").training_price() == 3.0
    assert cat.model("openai:gpt-4.1-mini").training_price() == 5.0
    assert cat.model("openai:gpt-4.1-nano").training_price() == 1.5
    assert cat.model("openai:gpt-4.1").training_price() == cat.model("openai:gpt-4o").training_price() == 25.0
    m = cat.model("openai:gpt-4.1-mini")
    assert m.train_cutoff == dt.date(2027, 1, 6) and m.inference_shutdown == dt.date(2027, 1, 14)
    assert m.max_example_tokens == 65536
    assert cat.gpu("modal", "h100").usd_per_hour == 3.95
    assert cat.gpu("runpod:rtx4090-community").usd_per_hour == 0.34


def test_together_tiers_by_size_and_method():
    cat = load_catalogue(None, today=TODAY)
    small = cat.model("together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference")
    big = cat.model("together:meta-llama/Meta-Llama-3.1-70B-Instruct-Reference")
    assert (small.training_price("sft", "lora"), small.training_price("sft", "full")) == (0.48, 0.54)
    assert (small.training_price("dpo", "lora"), small.training_price("dpo", "full")) == (1.20, 1.35)
    assert small.training_price("sft", "qlora") == 0.48
    assert (big.training_price("sft", "lora"), big.training_price("dpo", "full")) == (2.90, 8.00)
    # Together's pricing page: "There is no minimum charge" -- none in the catalogue either.
    assert small.min_charge_usd == big.min_charge_usd == 0.0
    for ref in cat.model_refs():
        assert cat.model(ref).min_charge_usd == 0.0, ref


def test_a_minimum_charge_is_still_data_a_prices_file_can_give(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("tiers:\n  together: {min_charge_usd: 2.5}\n")
    cat = load_catalogue(f, today=TODAY)
    assert cat.model("together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference").min_charge_usd == 2.5


def test_retirement_dates_are_data_read_against_today():
    """OpenAI: no new jobs from 2027-01-06 and fine-tuned models off from 2027-01-14 for the
    gpt-4o / gpt-4.1 families; gpt-4.1-nano retired on 2026-10-23 (both)."""
    on = dt.date(2026, 12, 6)
    cat = load_catalogue(None, today=on)
    for name in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini"):
        m = cat.model(f"openai:{name}")
        assert (m.train_cutoff, m.inference_shutdown) == (dt.date(2027, 1, 6), dt.date(2027, 1, 14)), name
        assert not m.training_closed() and not m.shut_down()
        assert m.training_closed(dt.date(2027, 1, 6)) and not m.shut_down(dt.date(2027, 1, 13))
        assert m.shut_down(dt.date(2027, 1, 14))
        assert "31 days left" in m.retirement_text() and "retired" not in " ".join(m.caveats())
    nano = cat.model("openai:gpt-4.1-nano-2025-04-14")
    assert nano.train_cutoff == nano.inference_shutdown == dt.date(2026, 10, 23)
    assert nano.training_closed() and nano.shut_down()
    assert not nano.training_closed(dt.date(2026, 10, 22)) and not nano.shut_down(dt.date(2026, 10, 22))
    [c] = [c for c in nano.caveats() if "2026-10-23" in c]
    assert c.startswith("retired:") and "ended on 2026-10-23" in c and "no longer answer" in c
    # the dates, not a note, decide: a prices file that moves them moves the verdict
    assert "retired" not in " ".join(load_catalogue(None, today=dt.date(2026, 10, 1))
                                      .model("openai:gpt-4.1-nano").caveats())


@pytest.mark.parametrize("name,size", [
    ("Llama-3.2-3B-Instruct", 3.0), ("Qwen2.5-0.5B-Instruct", 0.5), ("SmolLM2-135M-Instruct", 0.135),
    ("gemma-2-9b-it", 9.0), ("Meta-Llama-3.1-70B-Instruct-Reference", 70.0), ("Qwen3-30B-A3B", 30.0),
    ("Mixtral-8x7B-Instruct-v0.1", 56.0), ("Qwen2.5-7B-Instruct-1M", 7.0), ("Mistral-Nemo-Instruct-2407", None),
    ("Llama-3.1-Nemotron-70B-Instruct-HF", 70.0), ("phi-2", None),
])
def test_parameter_count_from_the_name(name, size):
    from ftclient.prices import params_from_name

    got = params_from_name(f"org/{name}")
    assert (got[0] if got else None) == size
    if got:
        assert "read from the name" in got[1]


def test_unlisted_model_priced_by_its_size_tier():
    cat = load_catalogue(None, today=TODAY)
    m = cat.model("together:meta-llama/Llama-3.2-3B-Instruct")
    assert not m.listed and m.params_b == 3.0 and m.tier_label() == "up to 16B"
    assert (m.training_price("sft", "lora"), m.training_price("dpo", "full")) == (0.48, 1.35)
    assert m.tier_basis("sft", "lora") == ("size tier 3B (up to 16B; 3B read from the name) x published "
                                           "per-token price (SFT, LoRA)")
    assert m.source == "https://www.together.ai/pricing" and m.as_of == dt.date(2026, 11, 22)
    assert m.inference_input_per_1m is None and m.serving == "dedicated"
    assert any("not in ftc's price catalogue" in c for c in m.caveats())
    assert cat.has_model("together:meta-llama/Llama-3.2-3B-Instruct")
    mid = cat.model("together:Qwen/Qwen2.5-32B-Instruct")
    assert mid.tier_label() == "16.1-69B" and mid.training_price() == 1.50
    # a size the catalogue knows beats the name: the catalogue's entry with that HF id
    known = cat.model("together:meta-llama/Llama-3.1-8B-Instruct")
    assert known.params_b == 8.03 and "catalogue" in known.params_basis
    # above the largest tier in the catalogue: no price, said so
    with pytest.raises(ConfigError, match="above the largest"):
        cat.model("together:meta-llama/Llama-3.1-405B-Instruct").training_price()
    # only providers whose tier says prices_unlisted: OpenAI models are never guessed
    with pytest.raises(ConfigError, match="unknown model"):
        cat.model("openai:gpt-9-mini")
    assert not cat.has_model("modal:h100")


def test_unlisted_model_of_unknown_size_is_a_clear_config_error():
    cat = load_catalogue(None, today=TODAY)
    with pytest.raises(ConfigError) as e:
        cat.model("together:mistralai/Mistral-Nemo-Instruct-2407")
    assert e.value.exit_code == 2 and "size is unknown" in e.value.message
    assert "params_b" in e.value.hint and "--prices" in e.value.hint
    assert not cat.has_model("together:mistralai/Mistral-Nemo-Instruct-2407")


def test_tier_selection_logic(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(
        """
tiers:
  toy:
    source: https://example.com/toy
    as_of: 2026-11-01
    levels:
      - {max_params_b: 10, sft: {lora: 1, full: 2}, dpo: {lora: 3, full: 4}}
      - {max_params_b: 50, sft: {lora: 5, full: 6}, dpo: {lora: 7, full: 8}}
models:
  toy:small: {tier: toy, params_b: 10}
  toy:mid: {tier: toy, params_b: 10.5}
  toy:huge: {tier: toy, params_b: 51}
"""
    )
    cat = load_catalogue(f, today=TODAY)
    assert cat.model("toy:small").training_price("dpo", "full") == 4
    assert cat.model("toy:mid").training_price("sft", "lora") == 5
    assert cat.model("toy:mid").source == "https://example.com/toy"  # inherited from the tier
    with pytest.raises(ConfigError, match="above the largest"):
        cat.model("toy:huge").training_price()
    with pytest.raises(ConfigError):
        cat.model("toy:small").training_price("rlhf")


def test_user_override_merges_field_by_field(tmp_path, monkeypatch):
    f = tmp_path / "mine.yaml"
    f.write_text("models:\n  openai:gpt-4.1-mini:\n    training_per_1m: 4.0\n    as_of: 2026-11-20\n")
    cat = load_catalogue(f, today=TODAY)
    m = cat.model("openai:gpt-4.1-mini")
    assert m.training_price() == 4.0
    assert m.inference_output_per_1m == load_catalogue(None, today=TODAY).model("openai:gpt-4.1-mini").inference_output_per_1m
    assert str(f) in cat.files
    monkeypatch.setenv("FTC_PRICES", str(f))
    assert load_catalogue(today=TODAY).model("openai:gpt-4.1-mini").training_price() == 4.0


def test_stale_flag_relative_to_today():
    cat = load_catalogue(None, today=TODAY)
    as_of = cat.model("openai:gpt-4o-mini").as_of
    fresh = load_catalogue(None, today=as_of + dt.timedelta(days=STALE_AFTER_DAYS)).model("openai:gpt-4o-mini")
    old = load_catalogue(None, today=as_of + dt.timedelta(days=STALE_AFTER_DAYS + 1)).model("openai:gpt-4o-mini")
    assert not fresh.stale and old.stale
    assert old.provenance()["stale"] is True
    assert any("older than" in c for c in old.caveats())
    g = load_catalogue(None, today=as_of + dt.timedelta(days=400)).gpu("lambda:h100")
    assert g.stale


def test_unknown_names_suggest_closest():
    cat = load_catalogue(None, today=TODAY)
    with pytest.raises(ConfigError) as e:
        cat.model("openai:gpt-4.1-mnii")
    assert "openai:gpt-4.1-mini" in e.value.hint
    with pytest.raises(ConfigError) as e:
        cat.gpu("runpod", "a100-comunity")
    assert "runpod:a100-community" in e.value.hint
    with pytest.raises(ConfigError) as e:
        cat.gpu("own:rtx4090")
    assert "--gpu-price" in e.value.hint


def test_model_aliases():
    cat = load_catalogue(None, today=TODAY)
    assert cat.model("gpt-4o-mini-2024-07-18").ref == "openai:gpt-4o-mini"
    assert cat.model("together:Meta-Llama-3.1-8B-Instruct-Reference").params_b == 8.03
    assert cat.model("fireworks:llama-v3p1-8b-instruct").provider == "fireworks"


def test_own_gpu_price():
    cat = load_catalogue(None, today=TODAY)
    cat.set_gpu_price("own:rtx4090", 0.25)
    g = cat.gpu("own", "rtx4090")
    assert g.usd_per_hour == 0.25 and g.spec.name == "rtx4090" and not g.stale
    with pytest.raises(ConfigError):
        cat.set_gpu_price("own:warp-drive", 1.0)


def test_bad_user_files(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("modles: {}\n")
    with pytest.raises(ConfigError) as e:
        load_catalogue(f, today=TODAY)
    assert "models" in e.value.hint
    f.write_text("models: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_catalogue(f, today=TODAY)
    with pytest.raises(ConfigError, match="not found"):
        load_catalogue(tmp_path / "nope.yaml", today=TODAY)
    f.write_text("gpus:\n  modal:h100: {usd_per_hour: cheap}\n")
    with pytest.raises(ConfigError, match="not a number"):
        load_catalogue(f, today=TODAY).gpu("modal:h100")
