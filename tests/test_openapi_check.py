"""The OpenAPI schema checker used to hold the provider emulator (and cassettes) to the
providers' official documents (the vendored subsets in tests/specs/, or the full documents
in $FTC_SPECS_DIR)."""

from __future__ import annotations

import copy

import pytest

import openapi_check as oc
from openapi_check import _normalise_schema, response_schema, validate_error, validate_response, validate_schema

OA_JOB_PATH = "/fine_tuning/jobs/{fine_tuning_job_id}"
TG_JOB_PATH = "/fine-tunes/{id}"

OPENAI_JOB = {
    "object": "fine_tuning.job",
    "id": "ftjob-abc123",
    "model": "gpt-4o-mini-2024-07-18",
    "created_at": 1721764800,
    "finished_at": None,
    "fine_tuned_model": None,
    "organization_id": "org-123",
    "result_files": [],
    "status": "queued",
    "validation_file": None,
    "training_file": "file-abc123",
    "trained_tokens": None,
    "error": None,
    "seed": 42,
    "hyperparameters": {"batch_size": "auto", "learning_rate_multiplier": 0.5, "n_epochs": 3},
    "method": {"type": "supervised",
               "supervised": {"hyperparameters": {"batch_size": "auto", "learning_rate_multiplier": 0.5,
                                                  "n_epochs": 3}}},
    "metadata": {"team": "support"},
    "integrations": None,
    "estimated_finish": None,
}

TOGETHER_JOB = {
    "id": "ft-01234567-89ab-cdef-0123-456789abcdef",
    "status": "running",
    "model": "meta-llama/Meta-Llama-3.1-8B-Instruct-Reference",
    "model_output_name": "me/Meta-Llama-3.1-8B-Instruct-Reference-tix-01234567",
    "training_file": "file-1",
    "created_at": "2026-11-22T10:00:00.000Z",
    "updated_at": "2026-11-22T10:05:00.000Z",
    "n_epochs": 3,
    "batch_size": "max",
    "learning_rate": 1e-5,
    "train_on_inputs": "auto",
    "training_method": {"method": "sft", "train_on_inputs": "auto"},
    "training_type": {"type": "Lora", "lora_r": 8, "lora_alpha": 16},
    "lr_scheduler": {"lr_scheduler_type": "cosine", "lr_scheduler_args": {"min_lr_ratio": 0.0, "num_cycles": 0.5}},
    "events": [{
        "object": "fine-tune-event", "created_at": "2026-11-22T10:00:00Z", "level": None, "message": "queued",
        "type": "job_pending", "param_count": 1, "token_count": 2, "total_steps": 3, "wandb_url": "", "step": 0,
        "checkpoint_path": "", "model_path": "", "training_offset": 0, "hash": "x"}],
}


def _raises(spec, method, path, body, *needles):
    with pytest.raises(AssertionError) as ei:
        validate_response(spec, method, path, 200, body)
    text = str(ei.value)
    for n in needles:
        assert n in text, text
    return text


# ----------------------------------------------------------------- OpenAI


def test_openai_accepts_a_correct_fine_tuning_job():
    validate_response("openai", "GET", OA_JOB_PATH, 200, OPENAI_JOB)
    validate_response("openai", "POST", "/fine_tuning/jobs", 200, OPENAI_JOB)
    validate_response("openai", "GET", "/fine_tuning/jobs", 200,
                      {"object": "list", "data": [OPENAI_JOB], "has_more": False})


def test_openai_rejects_a_missing_required_field():
    body = copy.deepcopy(OPENAI_JOB)
    del body["status"]
    _raises("openai", "GET", OA_JOB_PATH, body, "'status' is a required property", "GET /fine_tuning/jobs/")


def test_openai_rejects_a_wrong_type_and_names_the_place():
    body = copy.deepcopy(OPENAI_JOB)
    body["created_at"] = "yesterday"
    _raises("openai", "GET", OA_JOB_PATH, body, "$.created_at", "'yesterday' is not of type 'integer'")
    body = copy.deepcopy(OPENAI_JOB)
    body["status"] = "done"
    _raises("openai", "GET", OA_JOB_PATH, body, "$.status")
    body = {"object": "list", "data": [dict(OPENAI_JOB, seed="42")], "has_more": False}
    _raises("openai", "GET", "/fine_tuning/jobs", body, "$.data[0].seed")


def test_openai_boolean_exclusive_minimum_is_read_as_openapi_3_0():
    # `minimum: 0, exclusiveMinimum: true` must mean "> 0", not "> true (== 1)".
    validate_response("openai", "GET", OA_JOB_PATH, 200, OPENAI_JOB)  # 0.5 passes
    body = copy.deepcopy(OPENAI_JOB)
    body["hyperparameters"]["learning_rate_multiplier"] = 0
    _raises("openai", "GET", OA_JOB_PATH, body, "learning_rate_multiplier")


def test_openai_error_body_shape():
    validate_error("openai", {"error": {"message": "bad key", "type": "invalid_request_error", "param": None,
                                        "code": "invalid_api_key"}})
    with pytest.raises(AssertionError, match="'code' is a required property"):
        validate_error("openai", {"error": {"message": "bad key", "type": "invalid_request_error", "param": None}})


# ----------------------------------------------------------------- Together


def test_together_accepts_a_correct_fine_tune():
    validate_response("together", "GET", TG_JOB_PATH, 200, TOGETHER_JOB)


def test_together_rejects_missing_field_and_wrong_type():
    body = copy.deepcopy(TOGETHER_JOB)
    del body["status"]
    _raises("together", "GET", TG_JOB_PATH, body, "'status' is a required property")
    body = copy.deepcopy(TOGETHER_JOB)
    body["n_epochs"] = "3"
    _raises("together", "GET", TG_JOB_PATH, body, "$.n_epochs", "not of type 'integer'")
    body = copy.deepcopy(TOGETHER_JOB)
    body["status"] = "succeeded"  # OpenAI's word, not Together's
    _raises("together", "GET", TG_JOB_PATH, body, "$.status")
    body = copy.deepcopy(TOGETHER_JOB)
    del body["events"][0]["hash"]
    _raises("together", "GET", TG_JOB_PATH, body, "$.events[0]", "'hash' is a required property")


def test_together_truncated_list_requires_timestamps_and_integer_batch_size():
    item = {"id": "ft-1", "status": "queued", "created_at": "2026-11-22T10:00:00Z",
            "updated_at": "2026-11-22T10:00:00Z", "random_seed": None, "batch_size": 8}
    validate_response("together", "GET", "/fine-tunes", 200, {"data": [item]})  # nullable random_seed
    _raises("together", "GET", "/fine-tunes", {"data": [dict(item, batch_size="max")]}, "$.data[0].batch_size")
    bad = dict(item)
    del bad["updated_at"]
    _raises("together", "GET", "/fine-tunes", {"data": [bad]}, "'updated_at' is a required property")


def test_together_error_body_shape():
    validate_error("together", {"error": {"message": "nope", "type": "invalid_request_error", "param": None,
                                          "code": None}})
    with pytest.raises(AssertionError):
        validate_error("together", {"message": "nope"})


# ----------------------------------------------------------------- API and quirks


def test_response_schema_follows_the_top_level_ref():
    s = response_schema("openai", "GET", OA_JOB_PATH, 200)
    assert "status" in s["required"] and s["properties"]["object"]["enum"] == ["fine_tuning.job"]
    s = response_schema(oc.load_spec("together"), "GET", TG_JOB_PATH)
    assert s["required"] == ["id", "status"]


def test_unknown_operation_is_a_readable_key_error():
    with pytest.raises(KeyError, match="not in the document"):
        validate_response("openai", "GET", "/fine_tuning/job/{id}", 200, {})
    with pytest.raises(KeyError, match="documents no 404 response"):
        validate_response("openai", "GET", OA_JOB_PATH, 404, {})
    with pytest.raises(KeyError):
        validate_schema("openai", "#/components/schemas/NoSuchThing", {})


def test_load_spec_is_cached():
    assert oc.load_spec("openai") is oc.load_spec("openai")


@pytest.mark.parametrize("schema, good, bad", [
    ({"type": "string", "nullable": True}, [None, "x"], [1]),
    ({"allOf": [{"nullable": True}, {"type": "object"}]}, [None, {}], ["x"]),
    ({"type": "string", "enum": [None, "info"]}, [None, "info"], ["warn"]),
    ({"type": "number", "minimum": 0, "exclusiveMinimum": True}, [0.5, 2], [0, -1]),
    ({"type": "number", "maximum": 2, "exclusiveMaximum": True}, [1.5], [2]),
    ({"oneOf": [{"type": "boolean"}, {"type": "string", "enum": ["auto"]}], "type": "boolean"},
     [True, "auto"], ["no", 1]),
    ({"oneOf": [{"type": "object", "properties": {"a": {"type": "number"}}},
                {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}}]},
     [{"a": 1, "b": 2}], [{"a": "x"}]),
    ({"type": "object", "properties": {"nullable": {"type": "string"}, "type": {"type": "integer"}}},
     [{"nullable": "x", "type": 1}], [{"type": "x"}]),
])
def test_normalisation_of_openapi_idioms(schema, good, bad):
    from jsonschema import Draft202012Validator

    v = Draft202012Validator(_normalise_schema(schema))
    for g in good:
        assert v.is_valid(g), (schema, g)
    for b in bad:
        assert not v.is_valid(b), (schema, b)


# ----------------------------------------------------------------- the vendored documents


def _vendored(name: str):
    return oc.VENDORED / f"{name}-openapi.yaml"


def _subset_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("specs_subset", oc.VENDORED / "subset.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_vendored_subsets_are_the_default(monkeypatch):
    monkeypatch.delenv("FTC_SPECS_DIR", raising=False)
    assert oc.specs_dir() == oc.VENDORED
    for name in ("openai", "together"):
        assert oc.spec_path(name) == _vendored(name) and _vendored(name).is_file()
    monkeypatch.setenv("FTC_SPECS_DIR", "/elsewhere")
    assert oc.spec_path("openai").parent.name == "elsewhere"


@pytest.mark.parametrize("name", ["openai", "together"])
def test_a_vendored_subset_is_closed_and_regenerates_to_itself(name):
    # Every $ref (and discriminator target) resolves inside the subset, and cutting the
    # subset again gives the same document: nothing it reaches was left out.
    subset = _subset_script()
    doc = oc.load_spec(_vendored(name))
    assert subset.check(doc) > 50
    assert subset.subset(doc, name) == doc
    assert doc["components"]["schemas"], name


def test_a_dangling_ref_is_found():
    subset = _subset_script()
    doc = copy.deepcopy(oc.load_spec(_vendored("together")))
    doc["components"]["schemas"].pop("ErrorData")
    with pytest.raises(KeyError, match="ErrorData"):
        subset.check(doc)


@pytest.mark.parametrize("name", ["openai", "together"])
def test_every_emulator_operation_is_in_the_vendored_subset(name):
    from emulator import ProviderEmulator

    paths = oc.load_spec(_vendored(name))["paths"]
    ops = 0
    for method, _rx, _handler, tmpl in ProviderEmulator(name)._routes:
        if tmpl is None:  # not a documented operation (Together's upload redirect, download)
            continue
        method, path = tmpl if isinstance(tmpl, tuple) else (method, tmpl)
        assert method.lower() in paths.get(path, {}), f"{name}: {method} {path} is not vendored"
        ops += 1
    assert ops >= 8


def test_the_vendored_subset_rejects_a_non_conforming_body(monkeypatch):
    # Checked through the files themselves, so that an $FTC_SPECS_DIR cannot stand in.
    monkeypatch.delenv("FTC_SPECS_DIR", raising=False)
    oa, tg = str(_vendored("openai")), str(_vendored("together"))
    validate_response(oa, "GET", OA_JOB_PATH, 200, OPENAI_JOB)
    validate_response(tg, "GET", TG_JOB_PATH, 200, TOGETHER_JOB)
    _raises(oa, "GET", OA_JOB_PATH, dict(OPENAI_JOB, status="done"), "$.status")
    _raises(oa, "GET", "/fine_tuning/jobs", {"object": "list", "data": [dict(OPENAI_JOB, seed="42")],
                                              "has_more": False}, "$.data[0].seed")
    _raises(tg, "GET", TG_JOB_PATH, dict(TOGETHER_JOB, n_epochs="3"), "$.n_epochs")
    with pytest.raises(AssertionError):
        validate_error(tg, {"message": "nope"})
    # A request body, too (Together's create schema, reached through its $refs).
    create = "#/paths/~1fine-tunes/post/requestBody/content/application~1json/schema"
    validate_schema(tg, create, {"training_file": "file-1", "model": "m"})
    with pytest.raises(AssertionError, match="n_epochs"):
        validate_schema(tg, create, {"training_file": "file-1", "model": "m", "n_epochs": "three"})
