"""Check JSON bodies against the providers' official OpenAPI documents (tests only).

    from openapi_check import validate_response
    validate_response("openai", "GET", "/fine_tuning/jobs/{fine_tuning_job_id}", 200, body)

``spec_name`` is ``"openai"`` or ``"together"`` (the files ``<name>-openapi.yaml`` in
``tests/specs/``: the parts of the official documents the tests use, cut by
``tests/specs/subset.py``; or the full documents in ``$FTC_SPECS_DIR``), or a path to a
YAML file. Each document is parsed once per process (libyaml's CSafeLoader when present:
the full OpenAI file is 3 MB) and then normalised from the OpenAPI dialect to plain JSON
Schema 2020-12 (see ``_normalise_schema``), and ``$ref``s are resolved against the whole
document through a ``referencing`` registry.

Both documents declare ``openapi: 3.1.0`` but still carry OpenAPI 3.0 idioms that a strict
2020-12 validator would misread; the normalisation handles each of them, and
docs/testing-providers.md lists them.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

#: The vendored subsets of the official documents (tests/specs/README.md).
VENDORED = Path(__file__).resolve().parent / "specs"


def specs_dir() -> Path:
    """``$FTC_SPECS_DIR`` (e.g. the full published documents) or the vendored subsets."""
    return Path(os.environ.get("FTC_SPECS_DIR") or VENDORED)


# Where each provider's API lives, and which component describes its error bodies.
ERROR_SCHEMAS = {
    "openai": "#/components/schemas/ErrorResponse",
    "together": "#/components/schemas/ErrorData",
}

_lock = threading.Lock()
_raw: dict[str, dict] = {}
_prepared: dict[str, "_Prepared"] = {}


def spec_path(spec_name: str | os.PathLike) -> Path:
    s = str(spec_name)
    if s.endswith((".yaml", ".yml", ".json")) or os.sep in s:
        return Path(s)
    return specs_dir() / f"{s}-openapi.yaml"


def load_spec(path: str | os.PathLike) -> dict:
    """The parsed document, as published (cached per path; do not mutate it)."""
    key = str(Path(spec_path(path)).resolve())
    with _lock:
        if key not in _raw:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            with open(key, "rb") as fh:
                _raw[key] = yaml.load(fh, Loader=loader)
        return _raw[key]


# --------------------------------------------------------------------------- normalising

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then",
               "else", "unevaluatedItems", "unevaluatedProperties", "additionalItems")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
# Keys whose values are documentation or vendor data, never schemas.
_OPAQUE = ("example", "examples", "default", "const", "enum", "description", "x-oaiMeta",
           "x-codeSamples")


def _types_of(schema: Any) -> set[str] | None:
    """The JSON types a (normalised) sub-schema can take, or None when unknown."""
    if not isinstance(schema, dict):
        return None
    t = schema.get("type")
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return set(t)
    for key in ("oneOf", "anyOf"):
        if key in schema:
            out: set[str] = set()
            for sub in schema[key]:
                st = _types_of(sub)
                if st is None:
                    return None
                out |= st
            return out
    return None


def _normalise_schema(s: Any) -> Any:
    """Rewrite one schema (recursively) from OpenAPI's dialect to JSON Schema 2020-12."""
    if isinstance(s, bool) or not isinstance(s, dict):
        return s
    s = dict(s)
    for key in _SCHEMA_MAPS:
        if isinstance(s.get(key), dict):
            s[key] = {k: _normalise_schema(v) for k, v in s[key].items()}
    for key in _SCHEMA_ONE:
        if isinstance(s.get(key), dict):
            s[key] = _normalise_schema(s[key])
    for key in _SCHEMA_LISTS:
        if isinstance(s.get(key), list):
            s[key] = [_normalise_schema(v) for v in s[key]]

    # (a) OpenAPI 3.0 boolean exclusiveMinimum/Maximum next to minimum/maximum
    #     (OpenAI: `minimum: 0, exclusiveMinimum: true`). Read as 2020-12, `true` == 1 is
    #     taken as the bound itself, so a learning_rate_multiplier of 0.5 would be rejected.
    for excl, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(s.get(excl), bool):
            if s.pop(excl) and bound in s:
                s[excl] = s.pop(bound)

    # (b) `allOf: [{nullable: true}, {$ref: ...}]` (Together): the nullable marker sits in
    #     its own branch; lift it so that it applies to the whole.
    nullable = s.pop("nullable", None) is True
    if isinstance(s.get("allOf"), list):
        kept = []
        for sub in s["allOf"]:
            if isinstance(sub, dict) and sub.get("anyOf") == [{"type": "null"}, {}]:
                nullable = True  # a branch that was `{nullable: true}` alone, normalised below
            else:
                kept.append(sub)
        s["allOf"] = kept
        if not kept:
            del s["allOf"]

    # (c) `type` beside `oneOf`/`anyOf` whose branches allow other types (Together:
    #     `train_on_inputs: {oneOf: [boolean, "auto"], type: boolean}`). OpenAPI tools treat
    #     the composition as authoritative; as 2020-12 the sibling `type` would forbid "auto".
    if isinstance(s.get("type"), str) and ("oneOf" in s or "anyOf" in s):
        branch_types = set()
        for key in ("oneOf", "anyOf"):
            for sub in s.get(key, []):
                branch_types |= _types_of(sub) or set()
        if branch_types and not branch_types <= {s["type"], "null"}:
            del s["type"]

    # (f) `oneOf` whose branches overlap (Together `lr_scheduler_args`: a cosine
    #     {min_lr_ratio, num_cycles} also matches LinearLRSchedulerArgs {min_lr_ratio}, as
    #     neither closes its properties). Both documents are written for SDK generators that
    #     take the first/best matching branch, so `oneOf` is read as `anyOf`.
    if isinstance(s.get("oneOf"), list):
        branches = s.pop("oneOf")
        if "anyOf" in s:
            s["allOf"] = [*s.get("allOf", []), {"anyOf": branches}]
        else:
            s["anyOf"] = branches

    # (d) an enum that lists null under a non-null `type` (Together FinetuneEventLevels).
    if isinstance(s.get("enum"), list) and None in s["enum"]:
        nullable = True

    # (e) `nullable: true` (OpenAPI 3.0; both 3.1 documents still use it): allow null.
    if nullable:
        if not s:
            return {"anyOf": [{"type": "null"}, {}]}
        t = s.get("type")
        composite = any(k in s for k in ("$ref", "allOf", "anyOf", "oneOf", "not"))
        if isinstance(t, str) and not composite:
            s["type"] = [t, "null"]
            if isinstance(s.get("enum"), list) and None not in s["enum"]:
                s["enum"] = [*s["enum"], None]
        elif isinstance(t, list) and not composite:
            if "null" not in t:
                s["type"] = [*t, "null"]
        else:
            s = {"anyOf": [{"type": "null"}, s]}
    return s


def _normalise_doc(node: Any, in_schema_map: bool = False) -> Any:
    """Walk the whole document; normalise every schema, leave examples and docs alone."""
    if isinstance(node, list):
        return [_normalise_doc(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k == "schema" and isinstance(v, dict):
            out[k] = _normalise_schema(v)
        elif k == "schemas" and isinstance(v, dict):
            out[k] = {name: _normalise_schema(sub) for name, sub in v.items()}
        elif k in _OPAQUE or (isinstance(k, str) and k.startswith("x-")):
            out[k] = v
        else:
            out[k] = _normalise_doc(v)
    return out


class _Prepared:
    def __init__(self, name: str, doc: dict):
        self.name = name
        self.uri = f"urn:ftc-openapi:{name}"
        self.doc = _normalise_doc(doc)
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(self.uri, resource)
        self._validators: dict[str, Draft202012Validator] = {}
        self._vlock = threading.Lock()

    def validator(self, pointer: str) -> Draft202012Validator:
        with self._vlock:
            v = self._validators.get(pointer)
            if v is None:
                v = Draft202012Validator({"$ref": f"{self.uri}{pointer}"}, registry=self.registry)
                self._validators[pointer] = v
            return v


def _prepared_spec(spec_name: str | os.PathLike) -> _Prepared:
    key = str(Path(spec_path(spec_name)).resolve())
    with _lock:
        p = _prepared.get(key)
    if p is None:
        doc = load_spec(spec_name)
        p = _Prepared(Path(key).stem.replace("-openapi", ""), doc)
        with _lock:
            p = _prepared.setdefault(key, p)
    return p


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _response_pointer(doc: dict, method: str, path_template: str, status: int | str) -> str:
    paths = doc.get("paths", {})
    if path_template not in paths:
        close = [p for p in paths if p.rstrip("/").split("/")[-1] == path_template.rstrip("/").split("/")[-1]]
        raise KeyError(f"path {path_template!r} is not in the document"
                       + (f"; similar: {close[:5]}" if close else ""))
    op = paths[path_template].get(method.lower())
    if op is None:
        raise KeyError(f"{method.upper()} {path_template} is not in the document "
                       f"(methods: {[m.upper() for m in paths[path_template] if m != 'parameters']})")
    responses = op.get("responses", {})
    # YAML may have parsed an unquoted 200 as an int.
    candidates = [str(status), int(status) if str(status).isdigit() else None, f"{str(status)[0]}XX", "default"]
    for key in candidates:
        if key is not None and key in responses:
            resp = responses[key]
            break
    else:
        raise KeyError(f"{method.upper()} {path_template} documents no {status} response "
                       f"(documented: {sorted(map(str, responses))})")
    if "$ref" in resp:  # components/responses
        ref = resp["$ref"]
        resp = _resolve_local(doc, ref)
        base = ref[1:]
    else:
        base = f"/paths/{_escape(path_template)}/{method.lower()}/responses/{_escape(str(key))}"
    content = resp.get("content") or {}
    if "application/json" not in content or "schema" not in content["application/json"]:
        raise KeyError(f"{method.upper()} {path_template} {status}: no application/json schema "
                       f"(content types: {sorted(content)})")
    return f"#{base}/content/application~1json/schema"


def _resolve_local(doc: dict, ref: str) -> Any:
    node: Any = doc
    for token in ref.lstrip("#/").split("/"):
        node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def response_schema(spec: dict | str, method: str, path_template: str, status: int | str = 200) -> dict:
    """The (normalised) JSON schema of a response: the content schema, with a top-level
    ``$ref`` chain followed (so ``FineTuningJob`` itself rather than ``{"$ref": ...}``).

    ``spec`` is a spec name/path, or a document returned by ``load_spec`` (normalised on
    the fly). Nested ``$ref``s are left as they are (relative to the document).
    """
    doc = spec if isinstance(spec, dict) else _prepared_spec(spec).doc
    node = _resolve_local(doc, _response_pointer(doc, method, path_template, status))
    seen = set()
    while isinstance(node, dict) and set(node) == {"$ref"} and node["$ref"].startswith("#") \
            and node["$ref"] not in seen:
        seen.add(node["$ref"])
        node = _resolve_local(doc, node["$ref"])
    return _normalise_schema(node) if isinstance(spec, dict) else node


def _format_error(err: ValidationError, what: str, body: Any) -> str:
    def where(e: ValidationError) -> str:
        return "$" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path)

    lines = [f"{what}: body does not match the official schema", f"  at {where(err)}: {err.message}"]
    if err.context:
        for sub in sorted(err.context, key=lambda e: (len(e.absolute_path), str(e.message)))[:6]:
            lines.append(f"    (branch) at {where(sub)}: {sub.message}")
    lines.append(f"  schema path: {'/'.join(map(str, err.absolute_schema_path))}")
    text = json.dumps(body, default=str)
    lines.append(f"  body: {text[:600]}{'...' if len(text) > 600 else ''}")
    return "\n".join(lines)


def _check(p: _Prepared, pointer: str, body: Any, what: str) -> None:
    errors = list(p.validator(pointer).iter_errors(body))
    if errors:
        err = best_match(errors)
        msg = _format_error(err, what, body)
        if len(errors) > 1:
            msg += f"\n  ({len(errors) - 1} more error(s))"
        raise AssertionError(msg)


def validate_response(spec_name: str, method: str, path_template: str, status: int | str, body: Any) -> None:
    """Raise AssertionError (readable) unless ``body`` matches the documented response."""
    p = _prepared_spec(spec_name)
    pointer = _response_pointer(p.doc, method, path_template, status)
    _check(p, pointer, body, f"{p.name} {method.upper()} {path_template} -> {status}")


def validate_schema(spec_name: str, pointer: str, body: Any) -> None:
    """Validate against any schema in the document, e.g. ``#/components/schemas/FineTuningJob``."""
    p = _prepared_spec(spec_name)
    _resolve_local(p.doc, pointer)  # KeyError early when the pointer is wrong
    _check(p, pointer, body, f"{p.name} {pointer}")


def validate_error(spec_name: str, body: Any) -> None:
    """Validate an error body against the provider's error component."""
    validate_schema(spec_name, ERROR_SCHEMAS[Path(str(spec_name)).stem.replace("-openapi", "")], body)


def has_response_schema(spec_name: str, method: str, path_template: str, status: int | str) -> bool:
    p = _prepared_spec(spec_name)
    try:
        _response_pointer(p.doc, method, path_template, status)
    except KeyError:
        return False
    return True
