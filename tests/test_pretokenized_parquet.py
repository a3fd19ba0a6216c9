"""Together's pre-tokenized Parquet files end to end: exact token counts (no tokenizer),
``ftc cost estimate`` / ``ftc cost compare``, ``ftc train --dry-run`` and a real submission
through the together SDK against the test emulator (the file uploaded as it is, once);
OpenAI and local training refuse the file with one clear message."""

from __future__ import annotations

import hashlib
import sys

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from ftclient import backends as B  # noqa: E402
from ftclient.prices import load_catalogue  # noqa: E402

MODEL = "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
REF = f"together:{MODEL}"
PAD = 0


def _rows(n=24, pad_to=None):
    """Rows of different lengths: 4 prompt tokens masked out (-100), the rest trained on;
    with ``pad_to``, padded to that length (attention 0, label -100)."""
    rows = []
    for i in range(n):
        k = 7 + (i * 5) % 23
        ids = [1000 + (i * 31 + j) % 5000 for j in range(k)]
        mask = [1] * k
        labels = [-100] * 4 + ids[4:]
        if pad_to is not None:
            extra = pad_to - k
            ids, mask, labels = ids + [PAD] * extra, mask + [0] * extra, labels + [-100] * extra
        rows.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return rows


def _write(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), str(path), row_group_size=7)
    return path


def _lengths(rows):
    return [len(r["input_ids"]) for r in rows]


def _price(method="sft", adapter="lora"):
    return load_catalogue().model(REF).training_price(method, adapter)


def _spec(d, train="train.parquet", epochs=2, **together):
    extra = "".join(f"  {k}: {v}\n" for k, v in together.items())
    (d / "job.yaml").write_text(f"name: pretok\ndata:\n  train: {train}\nhyperparameters:\n  epochs: {epochs}\n"
                                f"together:\n  model: {MODEL}\n  suffix: pretok\n{extra}")
    return d / "job.yaml"


def _clean(r):
    assert "Traceback" not in r.out + r.err, r.err


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    """FTC_HOME in tmp_path, instant polling, the backend registry restored afterwards."""
    from ftclient import jobs as J

    before = dict(B._REGISTERED)
    monkeypatch.setenv("FTC_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(J, "DEFAULT_POLL", J.PollPolicy(initial=0, max_interval=0, sleep=lambda s: None))
    yield
    B._REGISTERED.clear()
    B._REGISTERED.update(before)


# --------------------------------------------------------------------------- counts


def test_counts_are_the_rows_own_token_counts_across_batches(tmp_path, monkeypatch):
    from ftclient.data import parquet as P

    monkeypatch.setattr(P, "BATCH_ROWS", 5)  # several batches, not aligned with the row groups
    rows = _rows(23, pad_to=40)
    c = P.read_counts(_write(tmp_path / "t.parquet", rows))
    assert list(c.totals) == [40] * 23  # padding included: every position goes through the model
    attended = [sum(r["attention_mask"]) for r in rows]
    trained = [sum(1 for v in r["labels"] if v != -100) for r in rows]
    assert list(c.completion) == trained
    assert list(c.prompt) == [a - t for a, t in zip(attended, trained)] and set(c.prompt) == {4}
    assert c.exact and c.basis.startswith("exact (pre-tokenized)")


def test_without_labels_every_attended_token_is_trained(tmp_path):
    from ftclient.data.parquet import read_counts

    rows = [{"input_ids": r["input_ids"], "attention_mask": r["attention_mask"]} for r in _rows(6)]
    c = read_counts(_write(tmp_path / "t.parquet", rows))
    assert list(c.totals) == list(c.completion) == _lengths(rows) and set(c.prompt) == {0}


def test_bad_files_are_data_errors(tmp_path, ftc):
    _write(tmp_path / "nocol.parquet", [{"tokens": [1, 2, 3]}])
    _write(tmp_path / "empty_row.parquet", [{"input_ids": [1, 2]}, {"input_ids": []}])
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    for name, words in (("nocol", "no 'input_ids' column"), ("empty_row", "row 2: 'input_ids' is empty"),
                        ("junk", "not a readable Parquet file")):
        r = ftc("cost", "estimate", tmp_path / f"{name}.parquet", "--model", REF)
        _clean(r)
        assert r.code == 1 and words in r.err, r.err


def test_missing_pyarrow_is_exit_2_with_the_install_line(tmp_path, ftc, monkeypatch):
    path = _write(tmp_path / "train.parquet", _rows(3))
    for mod in ("pyarrow", "pyarrow.parquet", "pyarrow.compute"):
        monkeypatch.setitem(sys.modules, mod, None)
    r = ftc("cost", "estimate", path, "--model", REF)
    _clean(r)
    assert r.code == 2 and 'pip install "ftclient[parquet]"' in r.err


# --------------------------------------------------------------------------- cost


def test_estimate_is_the_sum_of_lengths_x_epochs_x_price(tmp_path, ftc):
    rows = _rows(24)
    path = _write(tmp_path / "train.parquet", rows)
    r = ftc("cost", "estimate", path, "--model", REF, "--epochs", "3", "--json")
    _clean(r)
    assert r.code == 0, r.err
    d = r.json()
    tokens = sum(_lengths(rows))
    assert d["examples"] == 24 and d["tokens_per_epoch"] == tokens and d["billed_tokens"] == tokens * 3
    assert d["cost_usd"] == pytest.approx(round(tokens * 3 / 1e6 * _price(), 4))
    assert d["token_count_exact"] is True and d["cost_exact"] is True
    assert d["token_count_basis"].startswith("exact (pre-tokenized)")
    # the human view says the same
    r = ftc("cost", "estimate", path, "--model", REF, "--epochs", "3")
    assert r.code == 0 and f"{tokens * 3:,}" in r.out and "exact (pre-tokenized)" in r.out


def test_estimate_with_a_spec_prices_its_together_model(tmp_path, ftc):
    rows = _rows(10)
    _write(tmp_path / "train.parquet", rows)
    r = ftc("cost", "estimate", "--spec", _spec(tmp_path, epochs=4), "--json")
    _clean(r)
    assert r.code == 0, r.err
    d = r.json()
    assert d["model"] == REF and d["billed_tokens"] == 4 * sum(_lengths(rows))


def test_rows_over_the_models_limit_are_billed_at_the_cap(tmp_path, ftc):
    rows = _rows(24)
    path = _write(tmp_path / "train.parquet", rows)
    prices = tmp_path / "prices.yaml"
    prices.write_text(f"models:\n  {REF}: {{max_example_tokens: 15}}\n")
    d = ftc("cost", "estimate", path, "--model", REF, "--epochs", "2", "--prices", prices, "--json").json()
    lengths = _lengths(rows)
    assert d["tokens_per_epoch"] == sum(min(n, 15) for n in lengths) < sum(lengths)
    assert d["examples_over_limit"] == sum(1 for n in lengths if n > 15) > 0
    assert d["billed_tokens"] == 2 * d["tokens_per_epoch"]


def test_compare_with_a_spec_prices_the_specs_together_model_only(tmp_path, ftc):
    rows = _rows(30)
    _write(tmp_path / "train.parquet", rows)
    spec = _spec(tmp_path, epochs=2)
    r = ftc("cost", "compare", "--spec", spec, "--json")
    _clean(r)
    assert r.code == 0, r.err
    d = r.json()
    (row,) = d["rows"]
    tokens = sum(_lengths(rows))
    assert row["backend"] == REF and row["billed_tokens"] == tokens * 2 and d["examples"] == 30
    assert row["training_cost_usd"] == pytest.approx(round(tokens * 2 / 1e6 * _price(), 4))
    assert row["token_count_exact"] is True and row["token_count_basis"].startswith("exact (pre-tokenized)")
    skipped = {s["backend"]: s["reason"] for s in d["not_compared"]}
    assert "openai:gpt-4.1-mini" in skipped and "modal:h100" in skipped
    assert all("not pre-tokenized Parquet" in why for why in skipped.values())
    assert "pre-tokenized" in d["tokens_per_query"]["basis"]
    r = ftc("cost", "compare", "--spec", spec)
    assert r.code == 0 and "not compared: " in r.out and "openai:gpt-4.1-mini (" in r.out


@pytest.mark.parametrize("args", [
    ("cost", "estimate", "{p}", "--model", "openai:gpt-4.1-mini"),
    ("cost", "estimate", "{p}", "--model", "local:default"),
    ("cost", "estimate", "{p}", "--model", "modal:h100"),
    ("cost", "compare", "{p}", "--models", f"{REF},openai:gpt-4.1-mini"),
])
def test_backends_that_take_jsonl_refuse_the_file(tmp_path, ftc, args):
    path = _write(tmp_path / "train.parquet", _rows(12))
    r = ftc(*[a.replace("{p}", str(path)) for a in args])
    _clean(r)
    assert r.code == 1 and "pre-tokenized Parquet file" in r.err and "needs JSONL chat records" in r.err, r.err


def test_dpo_on_a_parquet_file_is_refused(tmp_path, ftc):
    path = _write(tmp_path / "train.parquet", _rows(12))
    r = ftc("cost", "estimate", path, "--model", REF, "--method", "dpo")
    _clean(r)
    assert r.code == 1 and "for SFT" in r.err


def test_openai_and_local_training_refuse_before_any_request(tmp_path, ftc, monkeypatch):
    _write(tmp_path / "train.parquet", _rows(12))
    (tmp_path / "job.yaml").write_text("name: pretok\ndata:\n  train: train.parquet\nopenai:\n  model: gpt-4.1-mini\n")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-used")
    for backend in ("openai", "local"):
        r = ftc("train", tmp_path / "job.yaml", "--backend", backend, "--dry-run")
        _clean(r)
        assert r.code == 1 and "parquet_not_supported" in r.err and "not Parquet" in r.err, r.err


def test_openai_submission_is_refused_before_any_request_and_records_no_job(tmp_path, ftc, monkeypatch):
    pytest.importorskip("openai")
    from emulator import ProviderEmulator

    from ftclient import jobs as J
    from ftclient.providers.openai import OpenAIBackend

    if "openai" not in B.available_backends():
        B.register_backend("openai", OpenAIBackend)
    _write(tmp_path / "train.parquet", _rows(12))
    (tmp_path / "job.yaml").write_text("name: pretok\ndata:\n  train: train.parquet\nopenai:\n  model: gpt-4.1-mini\n")
    with ProviderEmulator("openai") as emu:
        for k, v in emu.env.items():
            monkeypatch.setenv(k, v)
        r = ftc("train", tmp_path / "job.yaml", "--backend", "openai", "--yes")
        _clean(r)
        assert r.code == 1 and "parquet_not_supported" in r.err and "nothing was sent" in r.err, r.err
        assert emu.requests == [] and J.list_jobs() == []


# --------------------------------------------------------------------------- train, through the emulator


def test_dry_run_shows_the_exact_estimate_and_sends_nothing(tmp_path, ftc, together_emu):
    rows = _rows(20)
    _write(tmp_path / "train.parquet", rows)
    r = ftc("train", _spec(tmp_path, epochs=3), "--backend", "together", "--dry-run", "--json")
    _clean(r)
    assert r.code == 0, r.err
    plan = r.json()["plan"]
    tokens = sum(_lengths(rows))
    assert plan["estimate_usd"] == pytest.approx(tokens * 3 / 1e6 * _price(), abs=1e-4)
    (v,) = plan["validation"]
    assert v["ok"] and v["examples"] == 20
    (u,) = plan["uploads"]
    assert u["path"].endswith("train.parquet") and not u["already_uploaded"]
    assert together_emu.requests == []


def test_train_uploads_the_parquet_file_as_is_once(tmp_path, ftc, together_emu):
    rows = _rows(40)
    path = _write(tmp_path / "train.parquet", rows)
    spec = _spec(tmp_path, epochs=2)
    r = ftc("train", spec, "--backend", "together", "--yes", "--json")
    _clean(r)
    assert r.code == 0, r.err
    d = r.json()
    assert d["job"]["state"] == "succeeded" and d["status"]["state"] == "succeeded"
    tokens = sum(_lengths(rows))
    assert d["plan"]["estimate"]["billed_tokens"] == tokens * 2

    (begin,) = together_emu.requests_to(r"/v1/files$", "POST")
    assert begin.body["file_type"] == "parquet" and begin.body["file_name"] == "train.parquet"
    (f,) = together_emu.files.values()
    assert f["_content"] == path.read_bytes() and f["file_type"] == "parquet"  # the bytes, unchanged
    assert f["_lines"] == 40
    (job,) = together_emu.jobs.values()
    assert job["training_file"] == f["id"] and job["model"] == MODEL
    # Together's own count of the file (the emulator reads input_ids) agrees with ftc's exact one
    assert job["token_count"] == tokens

    # the same content again: no second upload, the provider's file is reused
    r = ftc("train", spec, "--backend", "together", "--yes", "--json")
    _clean(r)
    assert r.code == 0, r.err
    assert len(together_emu.requests_to(r"/v1/files$", "POST")) == 1 and len(together_emu.files) == 1
    assert {j["training_file"] for j in together_emu.jobs.values()} == {f["id"]}
    assert hashlib.sha256(path.read_bytes()).hexdigest() == d["plan"]["uploads"][0]["sha256"]
