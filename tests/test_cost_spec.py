"""``ftc cost estimate/compare --spec``: the spec's data, epochs, method, adapter and budget."""

import json

from ftclient.spec import example_spec

LINE = {"messages": [{"role": "system", "content": "Route it."}, {"role": "user", "content": "Where is my card?"},
                     {"role": "assistant", "content": "card_arrival"}]}


def _project(tmp_path, budget: float, epochs: int = 2):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.jsonl").write_text("".join(json.dumps(LINE) + "\n" for _ in range(40)))
    spec = example_spec().replace("budget_usd: 25", f"budget_usd: {budget}").replace("  epochs: 3", f"  epochs: {epochs}")
    (tmp_path / "job.yaml").write_text(spec)
    return tmp_path / "job.yaml"


def test_estimate_takes_model_epochs_and_budget_from_the_spec(ftc, tmp_path):
    spec = _project(tmp_path, budget=0.0001, epochs=2)
    r = ftc("cost", "estimate", "--spec", spec, "--json")
    assert r.code == 0, r.err
    d = r.json()
    # no --model: the model of the spec's first hosted backend block, by backend name
    assert d["epochs"] == 2 and d["model"] == "fireworks:accounts/fireworks/models/llama-v3p1-8b-instruct"
    assert d["billed_tokens"] == 2 * d["tokens_per_epoch"]
    assert d["budget_usd"] == 0.0001 and d["within_budget"] is (d["cost_usd"] <= 0.0001)
    # An explicit flag wins over the spec.
    r = ftc("cost", "estimate", "--spec", spec, "--epochs", "5", "--json")
    assert r.json()["epochs"] == 5


def test_compare_marks_each_row_against_the_spec_budget(ftc, tmp_path):
    spec = _project(tmp_path, budget=1.0)
    r = ftc("cost", "compare", "--spec", spec, "--json",
            "--models", "openai:gpt-4.1-nano,together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference")
    assert r.code == 0, r.err
    rows = {row["backend"]: row for row in r.json()["rows"]}
    for row in rows.values():
        assert row["within_budget"] is (row["training_cost_usd"] <= 1.0)
    # Together charges no minimum: this small job costs its tokens, well within $1.
    assert rows["together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"]["within_budget"] is True
    (tmp_path / "tight").mkdir()
    spec = _project(tmp_path / "tight", budget=1e-6)
    r = ftc("cost", "compare", "--spec", spec, "--json", "--models", "openai:gpt-4.1-mini")
    assert [row["within_budget"] for row in r.json()["rows"]] == [False]


def test_no_file_and_no_spec_is_a_usage_error(ftc):
    r = ftc("cost", "compare")
    assert r.code == 2 and "--spec" in r.err
    r = ftc("cost", "estimate", "--model", "openai:gpt-4.1-mini")
    assert r.code == 2
