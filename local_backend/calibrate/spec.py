"""The job spec of a local run to estimate or calibrate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # pragma: no cover
    from ftclient.spec import JobSpec

DEFAULT_BATCH_SIZE = 8  # = train.DEFAULT_BATCH_SIZE (checked by the tests)


def local_model_name(model_ref: str) -> str:
    """``local:MODEL`` -> ``MODEL`` (``local:`` alone -> ``default``)."""
    ref = (model_ref or "").strip()
    if ref.lower().startswith("local:"):
        ref = ref[len("local:"):]
    return ref.strip() or "default"


def spec_for(data: "str | os.PathLike", model: Optional[str] = None, *, spec: Optional["JobSpec"] = None,
             epochs: Optional[int] = None, method: Optional[str] = None, adapter: Optional[str] = None,
             batch_size: Optional[int] = None, max_seq_len: Optional[int] = None,
             eval_data: "str | os.PathLike | None" = None) -> "JobSpec":
    """A job spec for a local run on ``data``: ``spec`` (if given) with the given values put over it."""
    from ftclient.spec import parse_spec

    if spec is not None:
        d = spec.model_dump(mode="json")
    else:
        d = {"name": "cost-estimate", "data": {"train": str(data)}}
    d.setdefault("data", {})["train"] = str(Path(data).expanduser().resolve())
    if eval_data is not None:
        d["data"]["eval"] = str(Path(eval_data).expanduser().resolve())
    hp = d.setdefault("hyperparameters", {})
    if model is not None:
        d["base_model"] = local_model_name(model)
        if d.get("local", {}).get("model"):
            d["local"]["model"] = None
    if method is not None:
        d["method"] = method.lower()
    if adapter is not None:
        d["adapter"] = adapter.lower()
    if epochs is not None:
        hp["epochs"] = epochs
    if batch_size is not None:
        hp["batch_size"] = batch_size
    if max_seq_len is not None:
        hp["max_seq_len"] = max_seq_len
    return parse_spec(d, source="local estimate")
