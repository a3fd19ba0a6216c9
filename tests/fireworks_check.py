"""Strict checking of JSON bodies against the official ``fireworks`` SDK's own types.

    from fireworks_check import strict_validate
    strict_validate("SupervisedFineTuningJob", body)      # or a class; raises AssertionError

There is no Fireworks OpenAPI document offline, so the SDK (fireworks-ai 1.x, Stainless) is
the reference. Its models allow extra fields and its response parsing is lax (``construct``:
an unknown enum value or a key it does not know passes silently, and camelCase keys even
land in ``model_extra`` beside their fields), so parsing with the SDK proves nothing.
``strict_validate`` re-parses the raw body with pydantic in strict JSON mode (types and
every Literal value must be the SDK's) and then walks it: every key, at every depth, in
lists, dicts and nested models, must be a field of its model under its wire name (the
alias). Error bodies, which have no SDK type, are checked against ``ControlPlaneError``
(grpc-gateway's google.rpc.Status) and ``InferenceError``. Used by tests/emulator_fireworks.py.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import pydantic

__all__ = ["ControlPlaneError", "InferenceError", "sdk_type", "strict_validate"]


class ControlPlaneError(pydantic.BaseModel):
    """grpc-gateway's error body (google.rpc.Status), as the control plane sends it."""
    model_config = pydantic.ConfigDict(extra="forbid")
    code: Literal[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]
    message: str
    details: list[dict[str, Any]]


class _InferenceErrorDetail(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    message: str
    code: str
    type: Literal["error"]
    param: str | None = None


class InferenceError(pydantic.BaseModel):
    """The inference endpoint's error body (``/v1/chat/completions``)."""
    model_config = pydantic.ConfigDict(extra="forbid")
    error: _InferenceErrorDetail
    request_id: str | None = None


def sdk_type(name: str) -> Any:
    """The ``fireworks`` SDK type (or list page type) named in the route table."""
    import fireworks.pagination as pg
    import fireworks.types as t
    from fireworks.types.chat import CompletionCreateResponse

    pages = {"Accounts": (pg.SyncCursorAccounts, t.Account), "Datasets": (pg.SyncCursorDatasets, t.Dataset),
             "Models": (pg.SyncCursorModels, t.Model),
             "SupervisedFineTuningJobs": (pg.SyncCursorSupervisedFineTuningJobs, t.SupervisedFineTuningJob),
             "DpoJobs": (pg.SyncCursorDpoJobs, t.DpoJob)}
    if name in pages:
        page, item = pages[name]
        return page[item]
    if name == "CompletionCreateResponse":
        return CompletionCreateResponse
    if name in ("ControlPlaneError", "InferenceError"):
        return globals()[name]
    return getattr(t, name)


def strict_validate(tp: Any, body: Any) -> Any:
    """Parse ``body`` with the pydantic model ``tp`` (a class or a name for ``sdk_type``) in
    strict JSON mode, then walk it: every key at every level (lists, dicts and nested models
    included) must be a field of its model under the field's wire name (its alias), and
    ``model_extra`` must be empty. Stainless models allow extra fields and so would accept
    anything; this does not. ``"object"`` (delete, cancel, validateUpload) must be ``{}``.
    Raises AssertionError naming the JSON path; returns the parsed model."""
    if tp == "object":
        if body != {}:
            raise AssertionError(f"$: expected an empty object (google.protobuf.Empty), got {body!r:.300}")
        return body
    cls = sdk_type(tp) if isinstance(tp, str) else tp
    try:
        obj = cls.model_validate_json(json.dumps(body), strict=True)
    except pydantic.ValidationError as e:
        raise AssertionError(f"{getattr(cls, '__name__', cls)}: {e}\nbody: {json.dumps(body)[:800]}") from None
    _walk(obj, body, "$")
    return obj


def _walk(value: Any, raw: Any, path: str) -> None:
    if isinstance(value, pydantic.BaseModel):
        if not isinstance(raw, dict):
            what = type(value).__name__
            raise AssertionError(f"{path}: expected an object for {what}, got {raw!r:.200}")  # noqa: TRY004
        fields = type(value).model_fields
        wire = {(f.alias or n): n for n, f in fields.items()}
        for key, sub in raw.items():
            if key not in wire:
                raise AssertionError(f"{path}.{key}: not a field of {type(value).__name__} "
                                     f"(known: {', '.join(sorted(wire))})")
            _walk(getattr(value, wire[key]), sub, f"{path}.{key}")
        if value.model_extra:
            raise AssertionError(f"{path}: unknown keys {sorted(value.model_extra)} in {type(value).__name__}")
    elif isinstance(value, list):
        if not isinstance(raw, list) or len(raw) != len(value):
            raise AssertionError(f"{path}: expected a list, got {raw!r:.200}")
        for i, (v, r) in enumerate(zip(value, raw)):
            _walk(v, r, f"{path}[{i}]")
    elif isinstance(value, dict) and isinstance(raw, dict):
        for k, v in value.items():
            if k in raw:
                _walk(v, raw[k], f"{path}.{k}")
