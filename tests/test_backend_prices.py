"""A backend hands the core its own price catalogue entries (``price_catalogue``).

The core file (``ftclient/resources/prices.yaml``) keeps the providers without a backend,
open models, GPUs and CPUs; each backend's class names a YAML file beside its module with
its own ``models:`` and ``tiers:``, merged over the core file and under the user's file.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from ftclient import backends
from ftclient.backends import ENTRY_POINT_GROUP, available_backends, backend_attr, register_backend, unregister_backend
from ftclient.errors import ConfigError
from ftclient.prices import CATALOGUE_FILE, PriceCatalogueError, backend_catalogues, load_catalogue

TODAY = dt.date(2026, 11, 22)
NAME = "pricey"

GOOD = """\
# Pricey's prices (made up for the tests).
version: 1
models:
  pricey:small:
    training_per_1m: 2.50
    inference: {input_per_1m: 0.10, output_per_1m: 0.40}
    source: https://pricey.example/pricing
    as_of: 2026-11-22
  pricey:org/Big-Model-20B:
    tier: pricey
    params_b: 20
    source: https://pricey.example/pricing
    as_of: 2026-11-22
tiers:
  pricey:
    source: https://pricey.example/pricing
    as_of: 2026-11-22
    levels:
      - {max_params_b: 16, sft: {lora: 0.40, full: 0.50}}
      - {max_params_b: 70, sft: {lora: 1.40, full: 1.60}}
"""


def _backend(catalogue):
    class Pricey:
        name = NAME
        price_catalogue = str(catalogue)

    return Pricey


@pytest.fixture
def pricey(tmp_path):
    """Register the ``pricey`` backend in-process with its catalogue at a tmp file (written by the test)."""
    path = tmp_path / "pricey-prices.yaml"
    register_backend(NAME, _backend(path))
    try:
        yield path
    finally:
        unregister_backend(NAME)


# ------------------------------------------------------------------ the shipped catalogues


def test_openai_and_together_price_their_models_from_their_own_files():
    for name in ("openai", "together"):
        declared = backend_attr(name, "price_catalogue")
        assert declared == "prices.yaml", name
        module = sys.modules[available_backends()[name].value.partition(":")[0]]
        path = Path(module.__file__).parent / declared
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert raw["version"] == 1 and raw["models"], name
        assert set(raw) <= {"version", "models", "tiers"}, name
        assert all(k.startswith(f"{name}:") for k in raw["models"]), name
        assert all(k == name for k in raw.get("tiers", {})), name
        # where the prices come from and when they were checked, said in the file
        head = path.read_text(encoding="utf-8").split("version:")[0]
        assert "Where the prices come from" in head and "2026-11-22" in head, name
    found = dict(backend_catalogues()[0])
    assert {"openai", "together"} <= set(found)
    cat = load_catalogue(None, today=TODAY)
    assert cat.files[0] == str(CATALOGUE_FILE)
    assert str(found["openai"]) in cat.files and str(found["together"]) in cat.files


def test_every_model_has_one_home():
    """A model entry comes from the backend its key names, or from the core file when that
    provider ships no catalogue of its own; never from both."""
    core = yaml.safe_load(CATALOGUE_FILE.read_text(encoding="utf-8"))
    installed = set(available_backends())
    shipping = {name for name, _ in backend_catalogues(ask_all=True)[0]}
    cat = load_catalogue(None, today=TODAY)
    assert cat.model_refs()
    for ref in cat.model_refs():
        prefix = ref.partition(":")[0]
        assert prefix in installed or ref in core["models"], ref
        if prefix in shipping:
            assert ref not in core["models"], f"{ref} is priced by its backend and the core file"
    for tier in core.get("tiers") or {}:
        assert tier not in shipping, f"tiers.{tier} is in the core file and its backend's"


def test_the_moved_prices_are_the_same():
    """The figures of openai:gpt-4o-mini and a Together model as they were in the core file."""
    cat = load_catalogue(None, today=TODAY)
    m = cat.model("openai:gpt-4o-mini")
    assert (m.training_price(), m.inference_input_per_1m, m.inference_output_per_1m) == (3.00, 0.30, 1.20)
    assert (m.train_cutoff, m.inference_shutdown) == (dt.date(2027, 1, 6), dt.date(2027, 1, 14))
    assert (m.max_example_tokens, m.encoding, m.serving, m.inference_is_fine_tuned) == (65536, "o200k_base",
                                                                                       "serverless", True)
    assert (m.source, m.as_of, m.verified) == ("https://openai.com/api/pricing/", dt.date(2026, 11, 22), True)
    assert cat.model("openai:gpt-4.1-nano").train_cutoff == dt.date(2026, 10, 23)

    t = cat.model("together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference")
    prices = [t.training_price(meth, ad) for meth in ("sft", "dpo") for ad in ("lora", "full")]
    assert prices == [0.48, 0.54, 1.20, 1.35]
    assert (t.params_b, t.inference_input_per_1m, t.inference_output_per_1m) == (8.03, 0.18, 0.18)
    assert (t.serving, t.dedicated_gpu, t.dedicated_endpoint_per_hour, t.max_example_tokens) == ("dedicated", "h100",
                                                                                               3.36, 131072)
    assert (t.source, t.as_of, t.min_charge_usd) == ("https://www.together.ai/pricing", dt.date(2026, 11, 22), 0.0)
    big = cat.model("together:meta-llama/Meta-Llama-3.1-70B-Instruct-Reference")
    assert (big.training_price("sft", "lora"), big.training_price("dpo", "full")) == (2.90, 8.00)
    # Together's tier still prices a model the catalogue does not list, from its size.
    unlisted = cat.model("together:Qwen/Qwen3-4B-Instruct")
    assert not unlisted.listed and unlisted.training_price() == 0.48 and unlisted.serving == "dedicated"
    # Fireworks' prices moved to its backend with the same training figures; its fine-tuned
    # models are served on a dedicated deployment, as Fireworks' docs say.
    fw = cat.model("fireworks:accounts/fireworks/models/llama-v3p1-8b-instruct")
    assert (fw.training_price("sft", "lora"), fw.training_price("dpo", "lora")) == (0.50, 1.00)
    assert (fw.serving, fw.dedicated_endpoint_per_hour) == ("dedicated", 3.89)
    assert not any(ref.startswith("fireworks:") for ref in yaml.safe_load(CATALOGUE_FILE.read_text())["models"] or {})


def test_a_user_file_still_overrides_a_backend_entry(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("models:\n  openai:gpt-4o-mini: {training_per_1m: 2.0}\n  together:x/Mine-3B: {tier: together, "
                 "params_b: 3, source: mine, as_of: 2026-11-22}\n")
    cat = load_catalogue(f, today=TODAY)
    assert cat.model("openai:gpt-4o-mini").training_price() == 2.0
    assert cat.model("openai:gpt-4o-mini").inference_output_per_1m == 1.20  # the rest from the backend's file
    assert cat.model("together:x/Mine-3B").training_price() == 0.48
    assert cat.files[-1] == str(f)


def test_listing_prices_imports_no_backend_that_ships_none():
    """The local backend's folder holds no YAML file: its class is not imported to ask."""
    code = ("import sys, json\nfrom ftclient.prices import load_catalogue\ncat = load_catalogue()\n"
            "print(json.dumps([list(cat.unasked), 'ftclient.local_backend.backend' in sys.modules, "
            "'ftclient.providers.openai.backend' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    unasked, local_imported, openai_imported = json.loads(out.strip().splitlines()[-1])
    assert "local" in unasked and not local_imported and openai_imported


# ------------------------------------------------------------------ a backend registered in-process


def test_a_registered_backend_prices_its_models(pricey, tmp_path):
    pricey.write_text(GOOD)
    assert (NAME, pricey) in backend_catalogues()[0]
    cat = load_catalogue(None, today=TODAY)
    assert str(pricey) in cat.files
    small = cat.model("pricey:small")
    assert (small.training_price(), small.inference_output_per_1m, small.source) == (2.5, 0.40,
                                                                                  "https://pricey.example/pricing")
    big = cat.model("pricey:Big-Model-20B")  # short name, priced by its own tier
    assert big.training_price("sft", "full") == 1.60 and big.tier_label() == "16.1-70B"
    # a changed file is read again
    pricey.write_text(GOOD.replace("training_per_1m: 2.50", "training_per_1m: 2.75"))
    assert load_catalogue(None, today=TODAY).model("pricey:small").training_price() == 2.75
    # gone with the registration
    unregister_backend(NAME)
    assert not load_catalogue(None, today=TODAY).has_model("pricey:small")


def _error(path: Path) -> PriceCatalogueError:
    with pytest.raises(PriceCatalogueError) as e:
        load_catalogue(None, today=TODAY)
    err = e.value
    assert isinstance(err, ConfigError) and err.exit_code == 2
    assert err.backend == NAME and err.path == str(path)
    assert f"the {NAME} backend's price catalogue {path}" in err.message and err.hint
    return err


def test_a_missing_catalogue_is_one_clear_error(pricey):
    assert "not there" in _error(pricey).message


def test_bad_yaml_is_one_clear_error(pricey):
    pricey.write_text("models:\n  pricey:small: {training_per_1m: [1.0\n")
    assert "not valid YAML" in _error(pricey).message


@pytest.mark.parametrize("text, says", [
    ("- just\n- a list\n", "is a mapping"),
    ("version: 1\ngpus:\n  pricey:h100: {usd_per_hour: 1.0}\n", "unknown section 'gpus'"),
    ("version: one\n", "version"),
    ("models: [pricey:small]\n", "models: must be a mapping"),
    ("models:\n  pricey:small: 2.5\n", "models.pricey:small: must be a mapping"),
    ("models:\n  pricey:small: {training_per_1m: cheap}\n", "training_per_1m: 'cheap' is not a number"),
    ("models:\n  pricey:small: {training_per_1m: 1, as_of: soon}\n", "is not a date"),
    ("models:\n  pricey:big: {tier: nowhere, params_b: 3}\n", "unknown tier 'nowhere'"),
    ("tiers:\n  pricey: {levels: [{sft: {lora: 1.0}}]}\n", "max_params_b"),
    ("tiers:\n  pricey: {levels: 3}\n", "levels"),
    ("tiers:\n  pricey: {levels: [{max_params_b: 16, sft: {lora: cheap}}]}\n", "levels[0].sft"),
])
def test_a_catalogue_of_the_wrong_layout_is_one_clear_error(pricey, text, says):
    pricey.write_text(text)
    assert says in _error(pricey).message


@pytest.mark.parametrize("text, key", [
    ("models:\n  openai:gpt-4o-mini: {training_per_1m: 0.01}\n", "openai:gpt-4o-mini"),
    ("models:\n  small: {training_per_1m: 0.01}\n", "small"),
    ("models:\n  pricey2:small: {training_per_1m: 0.01}\n", "pricey2:small"),
    ("tiers:\n  together: {levels: []}\n", "tiers.together"),
])
def test_a_backend_prices_only_its_own_models(pricey, text, key):
    pricey.write_text(text)
    err = _error(pricey)
    assert key in err.message and ("its own models" in err.message or "named after it" in err.message)
    # and nothing of it reached the catalogue
    unregister_backend(NAME)
    assert load_catalogue(None, today=TODAY).model("openai:gpt-4o-mini").training_price() == 3.0


def test_a_declaration_that_names_no_file_is_refused(tmp_path):
    for declared, says in ((42, "must name a YAML file"), ("sub/prices.yaml", "beside the backend's module"),
                           ("prices.json", "beside the backend's module")):
        cls = _backend("x")
        cls.price_catalogue = declared
        register_backend(NAME, cls, replace=True)
        try:
            with pytest.raises(PriceCatalogueError, match=says):
                load_catalogue(None, today=TODAY)
        finally:
            unregister_backend(NAME)


def test_the_cli_reports_a_broken_catalogue_without_a_traceback(pricey, tmp_path, ftc):
    pricey.write_text("models:\n  together:cheap: {training_per_1m: 0.01}\n")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "yo"}]}) + "\n")
    r = ftc("cost", "compare", str(data))
    assert r.code == 2
    assert f"the {NAME} backend's price catalogue {pricey}" in r.err and "together:cheap" in r.err
    assert "Traceback" not in r.err + r.out


# ------------------------------------------------------------------ an installed entry point


def _install(monkeypatch, tmp_path: Path, module: str, *, ship: str | None, declared: str = "prices.yaml") -> None:
    """An installed backend ``module`` (a package on the path, its entry point the only one)."""
    pkg = tmp_path / "site" / module
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent(f"""\
        class Backend:
            name = "{NAME}"
            price_catalogue = {declared!r}
        """))
    if ship is not None:
        (pkg / "prices.yaml").write_text(ship)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    ep = importlib.metadata.EntryPoint(name=NAME, value=f"{module}:Backend", group=ENTRY_POINT_GROUP)
    real = backends.installed_entry_points

    def installed(group: str = ENTRY_POINT_GROUP) -> list:
        return [ep] if group == ENTRY_POINT_GROUP else real(group)

    monkeypatch.setattr(backends, "installed_entry_points", installed)


def test_an_installed_backend_ships_its_catalogue_beside_its_module(monkeypatch, tmp_path):
    _install(monkeypatch, tmp_path, "ftc_pricey_shipping", ship=GOOD)
    cat = load_catalogue(None, today=TODAY)
    assert cat.model("pricey:small").training_price() == 2.5
    assert str(tmp_path / "site" / "ftc_pricey_shipping" / "prices.yaml") in cat.files


def test_a_backend_that_ships_no_yaml_is_not_imported_until_its_model_is_asked_for(monkeypatch, tmp_path):
    _install(monkeypatch, tmp_path, "ftc_pricey_forgot", ship=None)
    cat = load_catalogue(None, today=TODAY)
    assert cat.unasked == (NAME,) and "ftc_pricey_forgot" not in sys.modules
    assert cat.gpu("modal:h100").usd_per_hour > 0  # the rest of the catalogue works
    # its model is looked up: the backend is asked, and the file it declares is not there
    with pytest.raises(PriceCatalogueError, match="not there") as e:
        cat.model("pricey:small")
    assert e.value.backend == NAME and e.value.path.endswith("prices.yaml")


def test_an_installed_backend_whose_catalogue_lies_elsewhere_is_told_where_to_ship_it(monkeypatch, tmp_path):
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text(GOOD)
    _install(monkeypatch, tmp_path, "ftc_pricey_elsewhere", ship=None, declared=str(elsewhere))
    cat = load_catalogue(None, today=TODAY)
    with pytest.raises(PriceCatalogueError, match="not in the folder of ftc_pricey_elsewhere"):
        cat.model("pricey:small")
