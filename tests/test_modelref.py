"""Model references: every syntax, the canonical form, and the errors with their hints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftclient.errors import UsageError
from ftclient.modelref import parse_model_ref
from ftclient.store import Store

OA_BASE = "gpt-4o-mini-2024-07-18"
OA_FT = f"ft:{OA_BASE}:acme::Ab12Cd"


pytestmark = pytest.mark.usefixtures("ftc_home")  # (st: a store of its own, from conftest)


def finished(st: Store, backend: str, model: str, fine_tuned: str, provider_id: str):
    job = st.new_job(backend, {"base_model": model}, model=model)
    return st.update_state(job.id, "succeeded", fine_tuned_model=fine_tuned, provider_job_id=provider_id)


def adapter_dir(tmp_path: Path, base: str = "default") -> Path:
    d = tmp_path / "run" / "final"
    d.mkdir(parents=True)
    (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/somewhere/else"}))
    (d / "ftc_train.json").write_text(json.dumps({"base_model": base}))
    return d


# --------------------------------------------------------------------------- hosted


def test_openai_base_model():
    r = parse_model_ref("openai:gpt-4o-mini")
    assert (r.backend, r.model, r.canonical, r.base_model, r.fine_tuned, r.job_id, r.base_url) == \
        ("openai", "gpt-4o-mini", "openai:gpt-4o-mini", "gpt-4o-mini", False, None, None)


def test_openai_fine_tuned_model_keeps_its_colons():
    r = parse_model_ref(f"  openai:{OA_FT} ")
    assert r.model == OA_FT and r.canonical == f"openai:{OA_FT}"
    assert r.fine_tuned and r.base_model == OA_BASE


def test_together_model():
    r = parse_model_ref("together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference")
    assert r.backend == "together" and r.model == "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference"
    assert not r.fine_tuned and r.hosted


def test_openai_compatible():
    r = parse_model_ref("openai-compatible:http://127.0.0.1:11434/v1/#llama3.2")
    assert r.backend == "openai-compatible" and r.model == "llama3.2"
    assert r.base_url == "http://127.0.0.1:11434/v1"
    assert r.canonical == "openai-compatible:http://127.0.0.1:11434/v1#llama3.2"
    assert r.base_model is None and not r.fine_tuned


@pytest.mark.parametrize("text,words", [
    ("openai-compatible:http://127.0.0.1:8000/v1", ["no model after '#'"]),
    ("openai-compatible:http://127.0.0.1:8000/v1#", ["no model after '#'"]),
    ("openai-compatible:ftp://host/v1#m", ["not an http(s) URL"]),
    ("openai-compatible:#m", ["not an http(s) URL"]),
    ("openai:", ["needs a model name"]),
    ("together:  ", ["needs a model name"]),
    ("openai:gpt 4o", ["needs a model name"]),
    ("", ["give a model reference"]),
])
def test_malformed_references(text, words):
    with pytest.raises(UsageError) as ei:
        parse_model_ref(text)
    assert all(w in ei.value.message for w in words)
    assert ei.value.exit_code == 2


def test_a_misspelt_backend_gets_a_suggestion():
    with pytest.raises(UsageError) as ei:
        parse_model_ref("openia:gpt-4o-mini")
    assert "unknown backend 'openia'" in ei.value.message
    assert "Did you mean openai:gpt-4o-mini?" in ei.value.hint


def test_an_openai_model_id_without_its_backend():
    with pytest.raises(UsageError) as ei:
        parse_model_ref(OA_FT)
    assert f"openai:{OA_FT}" in ei.value.hint


def test_a_path_without_local_gets_a_suggestion(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    with pytest.raises(UsageError) as ei:
        parse_model_ref(str(d))
    assert f"local:{d}" in ei.value.hint


# --------------------------------------------------------------------------- jobs


def test_a_bare_hosted_job_id_is_its_fine_tuned_model(st):
    job = finished(st, "openai", OA_BASE, OA_FT, "ftjob-abc123")
    for text in (job.id, job.id[:16], job.id[13:17], "ftjob-abc123"):  # id, prefix, random part, provider id
        r = parse_model_ref(text, store=st)
        assert (r.backend, r.model, r.job_id, r.base_model, r.fine_tuned) == ("openai", OA_FT, job.id, OA_BASE, True)
        assert r.canonical == f"openai:{OA_FT}"
    # the model named directly is recognised as that job's
    r = parse_model_ref(f"openai:{OA_FT}", store=st)
    assert r.job_id == job.id and r.base_model == OA_BASE


def test_an_unfinished_job_is_refused_with_a_hint(st):
    job = st.new_job("together", {"base_model": "m"}, model="m")
    st.update_state(job.id, "running", provider_job_id="ft-1")
    with pytest.raises(UsageError) as ei:
        parse_model_ref(job.id, store=st, refresh=False)
    assert "no fine-tuned model" in ei.value.message and "running" in ei.value.message
    assert f"ftc jobs watch {job.id}" in ei.value.hint


def test_a_failed_job_says_how_it_ended(st):
    job = st.new_job("openai", {"base_model": "m"}, model="m")
    st.update_state(job.id, "failed", error="training data rejected", provider_job_id="ftjob-9")
    with pytest.raises(UsageError, match="ended failed: training data rejected"):
        parse_model_ref(job.id, store=st, refresh=False)


def test_an_unknown_job_suggests_close_ids(st):
    job = finished(st, "openai", OA_BASE, OA_FT, "ftjob-1")
    typo = job.id[:-1] + ("0" if job.id[-1] != "0" else "1")
    with pytest.raises(UsageError) as ei:
        parse_model_ref(typo, store=st)
    assert f"no job matches {typo!r}" in ei.value.message
    assert job.id in ei.value.hint and "openai:MODEL" in ei.value.hint


def test_without_a_store_a_bare_id_is_unknown_and_no_store_is_created(tmp_path):
    with pytest.raises(UsageError, match="no job has been submitted yet"):
        parse_model_ref("ftc-20261122-a3f9c2")
    assert not (tmp_path / "home" / "ftc.db").exists()


# --------------------------------------------------------------------------- local


def test_local_job_and_bare_local_job_id(st, tmp_path):
    d = adapter_dir(tmp_path)
    job = finished(st, "local", "default", str(d), "local-x")
    for text in (f"local:{job.id}", job.id):
        r = parse_model_ref(text, store=st)
        assert (r.backend, r.model, r.job_id, r.base_model, r.fine_tuned) == ("local", str(d), job.id, "default", True)
        assert r.canonical == f"local:{job.id}"


def test_local_job_of_another_backend_is_refused(st):
    job = finished(st, "openai", OA_BASE, OA_FT, "ftjob-2")
    with pytest.raises(UsageError) as ei:
        parse_model_ref(f"local:{job.id}", store=st)
    assert "ran on openai" in ei.value.message and job.id in ei.value.hint


def test_unfinished_local_job(st):
    job = st.new_job("local", {"base_model": "default"}, model="default")
    st.update_state(job.id, "running", provider_job_id=f"local-{job.id}")
    with pytest.raises(UsageError, match="no fine-tuned model"):
        parse_model_ref(f"local:{job.id}", store=st, refresh=False)


def test_local_adapter_directory(tmp_path, monkeypatch):
    d = adapter_dir(tmp_path, base="HuggingFaceTB/SmolLM2-135M-Instruct")
    monkeypatch.chdir(tmp_path)
    r = parse_model_ref("local:run/final")
    assert r.model == str(d.resolve()) and r.canonical == f"local:{d.resolve()}"
    assert r.fine_tuned and r.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_local_full_model_directory_is_a_base_model(tmp_path):
    d = tmp_path / "plain"
    d.mkdir()
    (d / "config.json").write_text("{}")
    r = parse_model_ref(f"local:{d}")
    assert not r.fine_tuned and r.base_model == str(d.resolve())


def test_local_default():
    r = parse_model_ref("local:default")
    assert (r.backend, r.model, r.canonical, r.base_model, r.fine_tuned) == \
        ("local", "default", "local:default", "default", False)


@pytest.mark.parametrize("rest,words", [
    ("./nope", "no such file or directory"),
    ("", "needs a job id"),
    ("ftc-20990101-zzzzzz", "no job matches"),
])
def test_local_errors(rest, words, st):
    with pytest.raises(UsageError, match=words):
        parse_model_ref(f"local:{rest}", store=st)


def test_local_directory_that_is_no_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="not a model directory"):
        parse_model_ref(f"local:{tmp_path / 'empty'}")


def test_local_unknown_base_model_name(st):
    with pytest.raises(UsageError) as ei:
        parse_model_ref("local:nobody/no-such-model-xyz", store=st)
    assert "not a job, a model directory or a cached base model" in ei.value.message
