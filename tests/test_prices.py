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
    assert raw["models"] and raw["gpus"]
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
    assert small.min_charge_usd == 4.0


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
