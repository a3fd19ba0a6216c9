"""A pre-tokenized Parquet file in an estimate or a comparison: which backends can train on it."""

from __future__ import annotations

from typing import Any, Sequence

from ..backends import backend_attr
from ..data.parquet import is_parquet_path, not_jsonl_error, parquet_backends
from ..errors import DataError, FtcError
from ..prices import Catalogue
from .local import is_local_ref
from .selfhost import is_self_host


def _parquet_refusal(ref: str, cat: Catalogue) -> str | None:
    """What cannot train ``ref`` on a pre-tokenized Parquet file (e.g. "OpenAI fine-tuning");
    None when it can."""
    if is_local_ref(ref):
        return "local training"
    if is_self_host(ref, cat):
        return "self-hosted training (ftc's local training stack)"

    provider = ref.partition(":")[0].strip().lower()
    name = backend_attr(provider, "display") or provider.capitalize()
    return None if provider in parquet_backends() else f"{name} fine-tuning"


def parquet_defaults(path_or_records: Any, refs: list[str], cat: Catalogue,
                     spec: Any) -> tuple[list[str], list[dict[str, str]]]:
    """The default refs for a pre-tokenized Parquet file (unchanged for other data): those
    that can train on it -- the spec's model for a backend that takes such files (Together's)
    when it has one that ftc can price, since the file's token ids are that model's -- and the
    others with the reason."""
    if not is_parquet_path(path_or_records):
        return refs, []
    skipped: list[dict[str, str]] = []
    own = chosen = None
    takers = parquet_backends()
    for name in takers if spec is not None and hasattr(spec, "model_for") else ():
        model = spec.model_for(name)
        if model and model != "default":
            own, chosen = model, f"{name}:{model}"
            break
    if chosen:
        try:
            cat.model(chosen).training_price("sft", getattr(spec, "adapter", "lora") or "lora")
        except FtcError as e:
            skipped.append({"backend": chosen, "reason": f"ftc cannot price it: {e.message}"})
            chosen = None
    keep: list[str] = [chosen] if chosen else []
    for r in refs:
        why = _parquet_refusal(r, cat)
        if why is not None:
            skipped.append({"backend": r, "reason": f"{why} needs JSONL chat records, not pre-tokenized Parquet"})
        elif chosen is not None and r.lower() != chosen.lower():
            skipped.append({"backend": r, "reason": f"the file's token ids are for the spec's model, {own}"})
        elif r not in keep:
            keep.append(r)
    if not keep:
        raise DataError(f"{path_or_records}: a pre-tokenized Parquet file, and none of the default backends can "
                        "train on it", hint="Name a model of a backend that takes it: "
                        + (", ".join(f"--models {t}:MODEL" for t in takers) or "none is installed") + ".")
    return keep, skipped


def check_parquet(path_or_records: Any, refs: Sequence[str], cat: Catalogue, method: str) -> bool:
    """For a pre-tokenized Parquet file: DataError (before it is read) when a ref cannot train
    on it or the method is not SFT. Returns whether the data is such a file."""
    if not is_parquet_path(path_or_records):
        return False
    refused = [f"{why} ({r})" for r, why in ((r, _parquet_refusal(r, cat)) for r in refs) if why]
    if refused:
        raise not_jsonl_error(path_or_records, " and ".join(refused), plural=len(refused) > 1)
    if method != "sft":
        raise DataError(f"{path_or_records}: pre-tokenized Parquet data is for SFT; {method.upper()} needs "
                        "preference records in JSONL", hint="Use --method sft, or give DPO records as JSONL.")
    return True
