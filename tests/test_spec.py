from pathlib import Path

import pytest
import yaml

from ftclient.errors import SpecError
from ftclient.spec import JobSpec, example_spec, load_spec, parse_spec


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_example_spec_is_valid_and_resolves_paths(tmp_path):
    p = write(tmp_path, example_spec())
    job = load_spec(p)
    assert job.name == "support-intents"
    assert job.data.train == tmp_path / "data" / "train.jsonl"
    assert job.hyperparameters.lora.r == 16
    assert job.model_for("openai") == "gpt-4.1-mini-2025-04-14"
    assert job.model_for("local") == "default"


@pytest.mark.parametrize("given, where", [
    ("./models/mine", "models/mine"),
    ("../shared-models/m.gguf", "../shared-models/m.gguf"),
    ("weights/m.gguf", "weights/m.gguf"),
    ("side-by-side", "side-by-side"),  # no path syntax, but a folder next to the spec
])
def test_a_model_path_is_relative_to_the_spec_file(tmp_path, monkeypatch, given, where):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "side-by-side").mkdir()
    monkeypatch.chdir(tmp_path)  # somewhere else than the spec's folder
    p = write(tmp_path / "cfg", f"name: x\nbase_model: {given}\nlocal:\n  model: {given}\ndata:\n  train: t.jsonl\n")
    job = load_spec(p)
    want = str(tmp_path / "cfg" / where)
    assert job.base_model == want and job.model_for("local") == want


@pytest.mark.parametrize("ref", ["default", "HuggingFaceTB/SmolLM2-360M-Instruct", "gpt-4.1-mini-2025-04-14",
                                 "/opt/models/m"])
def test_model_names_and_absolute_paths_stay_as_given(tmp_path, ref):
    job = load_spec(write(tmp_path, f"name: x\nbase_model: {ref}\ndata:\n  train: t.jsonl\n"))
    assert job.base_model == ref


def test_defaults_from_minimal_spec():
    job = parse_spec({"name": "x", "data": {"train": "t.jsonl"}})
    assert (job.method, job.adapter, job.base_model) == ("sft", "lora", "default")
    assert job.hyperparameters.epochs == 3 and job.hyperparameters.learning_rate is None
    assert job.budget_usd is None


@pytest.mark.parametrize(
    "patch, expected",
    [
        ({"hyperparameters": {"epoch": 2}}, "did you mean 'hyperparameters.epochs'"),
        ({"hyperparameters": {"lora": {"rank": 8}}}, "unknown key 'hyperparameters.lora.rank'"),
        ({"togther": {}}, "did you mean 'together'"),
        ({"local": {"packng": False}}, "did you mean 'local.packing'"),
        ({"budget_usd": -1}, "budget_usd"),
        ({"method": "ppo"}, "method"),
        ({"adapter": "lora8"}, "adapter"),
        ({"hyperparameters": {"lora": {"dropout": 1.5}}}, "hyperparameters.lora.dropout"),
    ],
)
def test_bad_specs_name_the_problem(patch, expected):
    data = {"name": "x", "data": {"train": "t.jsonl"}}
    for k, v in patch.items():
        data[k] = v
    with pytest.raises(SpecError) as e:
        parse_spec(data)
    assert expected in e.value.message


def test_every_problem_is_listed_at_once():
    with pytest.raises(SpecError) as e:
        parse_spec({"name": "bad name!", "data": {}, "epochs": 3})
    msg = e.value.message
    assert "name" in msg and "data.train" in msg and "unknown key 'epochs'" in msg


def test_unknown_key_far_from_any_lists_valid_keys():
    with pytest.raises(SpecError) as e:
        parse_spec({"name": "x", "data": {"train": "t", "zzzzzz": 1}})
    assert "valid keys here: eval, train" in e.value.message


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "name: [x\n", "\x00\x01binary"])
def test_unloadable_files_are_spec_or_data_errors(tmp_path, text):
    from ftclient.errors import FtcError

    p = write(tmp_path, text)
    with pytest.raises(FtcError):
        load_spec(p)


def test_roundtrip_through_yaml(tmp_path):
    job = parse_spec({"name": "x", "data": {"train": "t.jsonl"}, "method": "dpo", "budget_usd": 4})
    dumped = yaml.safe_dump(job.model_dump(mode="json"))
    again = load_spec(write(tmp_path, dumped))
    assert again.method == "dpo" and again.budget_usd == 4
    assert JobSpec.model_validate(job.model_dump()) == job


def test_cli_spec_init_and_check(ftc, tmp_path):
    p = tmp_path / "job.yaml"
    r = ftc("spec", "init", p)
    assert r.code == 0 and p.exists()
    r = ftc("spec", "init", p)
    assert r.code == 2 and "already exists" in r.err
    r = ftc("spec", "check", p, "--json")
    assert r.code == 0
    assert r.json()["spec"]["name"] == "support-intents"
    assert len(r.json()["missing_files"]) == 2
    p.write_text(p.read_text().replace("  epochs: 3", "  epochz: 3"))
    r = ftc("spec", "check", p)
    assert r.code == 2 and "did you mean 'hyperparameters.epochs'" in r.err


def test_readme_shows_exactly_what_spec_init_writes(ftc, tmp_path):
    """The README's "The job spec" section shows the file `ftc spec init` writes, byte for byte."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The job spec"):]
    section = section[: section.index("\n## ", 1)]
    m = re.search(r"`ftc spec init` writes this[^\n]*\n\n```yaml\n(.*?)```\n", section, re.S)
    assert m, "the README's job spec section has no yaml block after `ftc spec init` writes this"
    out = tmp_path / "job.yaml"
    r = ftc("spec", "init", out)
    assert r.code == 0
    assert m.group(1) == out.read_text(encoding="utf-8")


def test_a_backends_block_comes_from_the_registry():
    """A backend brings its own spec block (its ``options`` model); without it installed,
    the block is an unknown key like any other."""
    from pydantic import Field

    from ftclient.backends import register_backend, unregister_backend
    from ftclient.spec import StrictModel, parse_spec

    class AcmeOptions(StrictModel):
        model: str | None = None
        region: str = Field(default="eu", pattern="^(eu|us)$")

    class AcmeBackend:
        name = "acme"
        options = AcmeOptions

    doc = {"name": "x", "data": {"train": "t.jsonl"}, "acme": {"model": "acme-7b", "region": "us"}}
    with pytest.raises(SpecError, match="unknown key 'acme'"):
        parse_spec(doc)
    register_backend("acme", AcmeBackend)
    try:
        spec = parse_spec(doc)
        assert spec.acme.region == "us" and spec.model_for("acme") == "acme-7b"
        assert parse_spec({"name": "x", "data": {"train": "t.jsonl"}}).acme.region == "eu"  # a default block
        with pytest.raises(SpecError, match="acme.regoin.*did you mean 'acme.region'"):
            parse_spec({**doc, "acme": {"regoin": "us"}})
        with pytest.raises(SpecError, match="acme.region"):
            parse_spec({**doc, "acme": {"region": "mars"}})
    finally:
        unregister_backend("acme")
    with pytest.raises(SpecError, match="unknown key 'acme'"):
        parse_spec(doc)
