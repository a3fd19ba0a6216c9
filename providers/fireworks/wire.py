"""What ftc sends Fireworks: resource names and ids, and the create arguments of a job.

Fireworks lets the client choose the ids of datasets and jobs, so ftc derives them: a dataset
from the sha256 of its content, a job from its client token (see :mod:`.backend`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ftclient.errors import SpecError

if TYPE_CHECKING:  # pragma: no cover
    from ftclient.spec import JobSpec

__all__ = [
    "PROVIDER",
    "PUBLIC_ACCOUNT",
    "ID_MAX",
    "COLLECTIONS",
    "full_model_name",
    "split_name",
    "dataset_id_for",
    "job_id_for",
    "output_model_for",
    "sft_arguments",
    "dpo_arguments",
]

PROVIDER = "fireworks"
#: The account of Fireworks' own base models (``accounts/fireworks/models/...``).
PUBLIC_ACCOUNT = "fireworks"
#: Fireworks resource ids: lowercase letters, digits and dashes, at most 63 characters.
ID_MAX = 63

#: The two job collections, by the spec's method.
COLLECTIONS = {"sft": "supervisedFineTuningJobs", "dpo": "dpoJobs"}

_NAME_RX = re.compile(r"^accounts/([^/]+)/(models|datasets|supervisedFineTuningJobs|dpoJobs)/([^/]+)$")


# --------------------------------------------------------------------------- names


def full_model_name(model: str) -> str:
    """``llama-v3p1-8b-instruct`` -> ``accounts/fireworks/models/llama-v3p1-8b-instruct``; a
    full name (``accounts/A/models/M``) is kept."""
    m = (model or "").strip()
    if not m:
        raise SpecError("fireworks: no base model", hint="Set fireworks.model (or base_model), e.g. "
                                                         "accounts/fireworks/models/llama-v3p1-8b-instruct.")
    if m.startswith("accounts/"):
        if not _NAME_RX.match(m) or "/models/" not in m:
            raise SpecError(f"fireworks: {m!r} is not a model name", hint="Use accounts/ACCOUNT/models/MODEL.")
        return m
    if "/" in m:
        raise SpecError(f"fireworks: {m!r} is not a Fireworks model name (it looks like a Hugging Face id)",
                        hint="Use the Fireworks name, e.g. accounts/fireworks/models/llama-v3p1-8b-instruct "
                             "(the model library lists them).")
    return f"accounts/{PUBLIC_ACCOUNT}/models/{m}"


def split_name(name: str) -> tuple[str, str, str]:
    """``accounts/A/COLLECTION/ID`` -> (A, COLLECTION, ID); ValueError for anything else."""
    m = _NAME_RX.match(name or "")
    if not m:
        raise ValueError(f"not a Fireworks resource name: {name!r}")
    return m.group(1), m.group(2), m.group(3)


def _clean_id(text: str) -> str:
    s = re.sub(r"[^a-z0-9-]+", "-", (text or "").lower())
    return re.sub(r"-{2,}", "-", s).strip("-")


def dataset_id_for(sha256: str) -> str:
    """The dataset id of a file: ``ftc-<sha256[:32]>`` (one dataset per content)."""
    digest = re.sub(r"[^0-9a-f]", "", (sha256 or "").lower())
    if len(digest) < 32:
        raise ValueError("a dataset id needs the file's sha256")
    return f"ftc-{digest[:32]}"


def job_id_for(client_token: str, method: str) -> str:
    """The job id of a job created with ``client_token``: ``ftc-sft-<token>`` / ``ftc-dpo-<token>``."""
    tag = re.sub(r"[^0-9a-f]", "", (client_token or "").lower())
    if len(tag) < 8:
        raise ValueError(f"client token {client_token!r} has fewer than 8 hex digits")
    return f"ftc-{method}-{tag}"[:ID_MAX]


def output_model_for(spec: "JobSpec", client_token: str) -> str:
    """The fine-tuned model's id: ``fireworks.output_model``, else ``<spec name>-<token[:8]>``."""
    own = getattr(spec.fireworks, "output_model", None)
    if own:
        cleaned = _clean_id(own)
        if cleaned != own or len(own) > ID_MAX:
            raise SpecError(f"fireworks.output_model {own!r} is not a Fireworks id",
                            hint=f"Use lowercase letters, digits and dashes (at most {ID_MAX}), e.g. {cleaned[:ID_MAX]!r}.")
        return own
    tag = job_id_for(client_token, "x")[len("ftc-x-"):][:8]
    base = _clean_id(spec.name)[: ID_MAX - len(tag) - 1].rstrip("-")
    return f"{base}-{tag}" if base else f"ftc-{tag}"


# --------------------------------------------------------------------------- requests


def _common_training(spec: "JobSpec", *, client_token: str) -> dict[str, Any]:
    """The training settings SFT and DPO share (SDK keyword names)."""
    hp = spec.hyperparameters
    fw = spec.fireworks
    out: dict[str, Any] = {
        "base_model": full_model_name(spec.model_for(PROVIDER)),
        "epochs": int(hp.epochs),
        "lora_rank": int(hp.lora.r),
        "output_model": output_model_for(spec, client_token),
    }
    if hp.learning_rate is not None:
        out["learning_rate"] = float(hp.learning_rate)
    if hp.batch_size:
        out["batch_size_samples"] = int(hp.batch_size)
    if fw.max_context_length is not None:
        out["max_context_length"] = int(fw.max_context_length)
    elif "max_seq_len" in hp.model_fields_set:
        out["max_context_length"] = int(hp.max_seq_len)
    return out


def sft_arguments(spec: "JobSpec", *, dataset: str, evaluation_dataset: str | None = None,
                  client_token: str) -> dict[str, Any]:
    """Keyword arguments of ``supervised_fine_tuning_jobs.create``.

    ============================  ================================================
    ``fireworks.model``/base      ``base_model`` (short names get ``accounts/fireworks/models/``)
    ``epochs``                    ``epochs``
    ``learning_rate``             ``learning_rate`` (omitted when null: Fireworks' default)
    ``batch_size``                ``batch_size_samples`` (omitted when null)
    ``lora.r``                    ``lora_rank``
    ``fireworks.max_context_length`` or ``max_seq_len``  ``max_context_length``
    ``fireworks.output_model``    ``output_model`` (default ``<name>-<token[:8]>``)
    eval file                     ``evaluation_dataset``
    ``fireworks.early_stop``      ``early_stop``
    ``fireworks.is_turbo``        ``is_turbo``
    client token                  ``supervised_fine_tuning_job_id`` = ``ftc-sft-<token>``
    ============================  ================================================
    """
    args = {"dataset": dataset, "supervised_fine_tuning_job_id": job_id_for(client_token, "sft"),
            "display_name": spec.name, **_common_training(spec, client_token=client_token)}
    if evaluation_dataset:
        args["evaluation_dataset"] = evaluation_dataset
    if spec.fireworks.early_stop:
        args["early_stop"] = True
    if spec.fireworks.is_turbo:
        args["is_turbo"] = True
    return args


def dpo_arguments(spec: "JobSpec", *, dataset: str, client_token: str) -> dict[str, Any]:
    """Keyword arguments of ``dpo_jobs.create``: the training settings of :func:`sft_arguments`
    in ``training_config``, ``dpo_beta`` as ``loss_config.dpo.beta``, the job id
    ``ftc-dpo-<token>``."""
    beta = float(spec.hyperparameters.dpo_beta)
    return {"dataset": dataset, "dpo_job_id": job_id_for(client_token, "dpo"), "display_name": spec.name,
            "training_config": _common_training(spec, client_token=client_token),
            "loss_config": {"method": "DPO", "dpo": {"beta": beta}}}
