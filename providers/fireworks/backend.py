"""Fireworks AI fine-tuning as an ftc backend.

``FireworksBackend`` maps the provider-neutral :class:`~ftclient.spec.JobSpec` onto
Fireworks' fine-tuning API through the official ``fireworks-ai`` SDK (package
``fireworks``, 1.x, over ``httpx``). The shared submit flow (upload once per content,
write-ahead create, reconciliation after an ambiguous create) lives in
:class:`ftclient.providers._hosted.HostedBackend` and the core; this module supplies
Fireworks' hooks and the read-side calls (status, events, checkpoints, cancel, result, chat).

Everything that turns a spec into a request, or a Fireworks object into a neutral record,
is a plain module-level function in :mod:`.wire` (what ftc sends: names, ids, ``sft_arguments``, ``dpo_arguments``) or
:mod:`.records` (what Fireworks answers: ``job_status``, ``job_events``), so it can be tested
without a client.
The SDK is imported only when a client is built or a request is made.

Facts this module relies on (fireworks-ai 1.2.30, checked in its source, and Fireworks'
fine-tuning documentation):

* Every control-plane resource lives under an account: ``accounts/{account_id}/...``. The
  account is ``FIREWORKS_ACCOUNT_ID`` (as the SDK reads it), else the one account the key
  lists (``GET /v1/accounts``).
* **Ids are chosen by the client.** A dataset is created with its ``datasetId``; a job with
  ``supervisedFineTuningJobId`` / ``dpoJobId``. A second create with an id that exists is
  refused (409 ALREADY_EXISTS) and creates nothing. ftc names the dataset after the sha256
  of its content (``ftc-<sha256[:32]>``: the same file is one dataset, whoever uploads it)
  and the job after the job's client token (``ftc-sft-<token>``/``ftc-dpo-<token>``), so
  the create is idempotent at Fireworks itself and reconciliation is one ``GET`` by id.
* Datasets up to 150 MB are uploaded in one multipart request (``:upload``); larger ones
  through a signed URL (``:getUploadEndpoint``, a ``PUT`` of the bytes to that URL without
  the API key, then ``:validateUpload``). A dataset is usable when its state is ``READY``.
* Fireworks fine-tunes LoRA adapters only (its docs: "Fireworks uses LoRA"); a spec asking
  for full fine-tuning is refused before any request. DPO's ``beta`` must lie in (0, 0.5).
* A LoRA fine-tuned model is served only on a dedicated (on-demand) deployment, billed per
  GPU-hour (Fireworks' docs on deploying fine-tuned models); serverless serving of LoRA
  models is not offered. The status says so, with the catalogue's hourly rate.
* Fine-tuning jobs have no event list in the API: ftc's events are the job's own record
  (created, its state and status message, completed), and its only checkpoint is the
  output model once the job completed.
"""

from __future__ import annotations

import logging
import os
import warnings
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ftclient.backends import Checkpoint, JobEvent, JobState, JobStatus, lazy_attr, to_datetime
from ftclient.errors import ConfigError, SpecError, UsageError
from ftclient.fileio import sha256_file
from ftclient.retry import ProviderError, RequestRejected, sdk_client_kwargs
from ftclient.secrets import get_key

from .._hosted import HostedBackend, as_dict
from .records import FireworksJobStatus, job_events, job_status, state_of, status_message
from .validation import FireworksChecker
from .wire import (
    COLLECTIONS,
    ID_MAX,
    PROVIDER,
    PUBLIC_ACCOUNT,
    dataset_id_for,
    dpo_arguments,
    full_model_name,
    job_id_for,
    output_model_for,
    sft_arguments,
    split_name,
)

if TYPE_CHECKING:  # pragma: no cover
    from ftclient.spec import JobSpec

__all__ = ["FireworksBackend", "KEY_ENV", "ACCOUNT_ENV", "SIMPLE_UPLOAD_MAX_BYTES", "DEPLOYMENT_NOTE"]

log = logging.getLogger("ftclient.providers.fireworks")

KEY_ENV = "FIREWORKS_API_KEY"
ACCOUNT_ENV = "FIREWORKS_ACCOUNT_ID"
#: Files up to this size go up in one multipart request (Fireworks: "less than 150 MB").
SIMPLE_UPLOAD_MAX_BYTES = 150 * 1000 * 1000

DEPLOYMENT_NOTE = ("A LoRA fine-tuned model on Fireworks is served only on a dedicated (on-demand) deployment, "
                   "billed per GPU-hour while it runs{rate}: create one (`firectl deployment create MODEL`, or the "
                   "Fireworks console) before calling the model, and let it scale to zero or delete it when done.")

def _changed(model: Any, field: str) -> bool:
    """Whether a spec section's ``field`` differs from ftc's default (a value the user chose)."""
    return getattr(model, field) != type(model).model_fields[field].default


# --------------------------------------------------------------------------- backend


class FireworksBackend(HostedBackend):
    """Fine-tuning on Fireworks AI (``ftc train --backend fireworks``)."""

    name = PROVIDER
    key_env = KEY_ENV
    key_prefixes = ("fw_",)
    sdk = "fireworks"
    display = "Fireworks"
    #: The ``fireworks:`` block of a job spec.
    options = lazy_attr(".options:FireworksOptions", __package__)
    #: Its block in the commented example spec of ``ftc spec init``.
    spec_example = """\
fireworks:
  model: accounts/fireworks/models/llama-v3p1-8b-instruct
"""
    #: Its models' prices and size tiers, merged into ftc's price catalogue.
    price_catalogue = "prices.yaml"
    #: The request field that bounds a reply's length.
    chat_token_param = "max_tokens"
    #: What ``ftc eval`` adds when Fireworks does not serve a model (a LoRA fine-tune needs a deployment).
    undeployed_hint = DEPLOYMENT_NOTE.format(rate="")
    #: A model name for examples in messages (and ``ftc demo --with fireworks``).
    example_model = "accounts/fireworks/models/llama-v3p1-8b-instruct"

    def __init__(self, *, account_id: str | None = None, **kw: Any):
        super().__init__(**kw)
        self._account = account_id

    # ------------------------------------------------------------------ offline

    @staticmethod
    def data_checker(model: str | None, method: str | None) -> Any:
        """Fireworks' rules for a training file (``ftc data validate --provider fireworks``)."""
        return FireworksChecker(model, method)

    def preflight(self, spec: "JobSpec", *, today: date | None = None) -> list[str]:
        """Checks before anything is sent: SpecError for a job Fireworks will not take
        (full fine-tuning, a DPO beta outside (0, 0.5), a name that is no Fireworks model);
        warnings for what it ignores or how the model is served."""
        warns: list[str] = list(super().preflight(spec, today=today))
        model = spec.model_for(PROVIDER)
        if model == "default":
            raise SpecError("fireworks: no base model: base_model is 'default' (the local SmolLM2 model), "
                            "which Fireworks does not fine-tune",
                            hint="Set fireworks.model (or base_model), e.g. accounts/fireworks/models/llama-v3p1-8b-instruct.")
        full = full_model_name(model)
        output_model_for(spec, "0" * 32)  # a fireworks.output_model Fireworks would refuse: before any upload
        if spec.adapter == "full":
            raise SpecError("fireworks fine-tunes LoRA adapters only: adapter 'full' cannot be submitted. Nothing was sent.",
                            hint="Use adapter: lora on Fireworks, or full fine-tuning on --backend together or --backend local.")
        if spec.adapter == "qlora":
            warns.append("fireworks has no QLoRA: adapter 'qlora' is submitted as LoRA with the same rank "
                         "(Fireworks trains on its own GPUs, so the 4-bit memory saving has no use there)")
        if spec.method == "dpo":
            beta = float(spec.hyperparameters.dpo_beta)
            if not 0 < beta < 0.5:
                raise SpecError(f"fireworks takes a DPO beta between 0 and 0.5 (exclusive), not {beta:g}. Nothing was sent.",
                                hint="Set hyperparameters.dpo_beta, e.g. 0.1.")
        hp, lora = spec.hyperparameters, spec.hyperparameters.lora
        ignored = [k for k in ("alpha", "dropout", "target_modules") if _changed(lora, k)]
        if ignored:
            warns.append(f"fireworks sets LoRA {', '.join(ignored)} itself: only the rank (lora.r = {lora.r}) is sent")
        if _changed(hp, "seed"):
            warns.append(f"fireworks takes no random seed: hyperparameters.seed ({hp.seed}) is not sent")
        if spec.data.eval is not None and spec.method == "dpo":
            warns.append("fireworks DPO jobs take no evaluation dataset: the eval file is not uploaded")
        entry = self._catalogue_entry(full)
        if entry is None:
            warns.append(f"fireworks model {full!r} is not in ftc's price catalogue and its size is unknown, so ftc "
                         "cannot price it: add it to a prices file (--prices FILE or $FTC_PRICES) with its params_b")
        elif not entry.listed:
            warns.append(f"fireworks model {full!r} is not in ftc's price catalogue: priced by Fireworks' size tier "
                         f"({entry.tier_basis(spec.method, spec.adapter) or 'from its size'}); Fireworks checks the "
                         "name before anything is uploaded")
        note = self._serving_note(full)
        if note:
            warns.append(note)
        return warns

    # ------------------------------------------------------------------ catalogue

    def _catalogue_entry(self, model: str) -> Any:
        try:
            return self.catalogue.model(f"{PROVIDER}:{model}")
        except ConfigError:
            return None

    def _serving_note(self, model: str) -> str:
        entry = self._catalogue_entry(model)
        rate = ""
        if entry is not None and entry.dedicated_endpoint_per_hour:
            gpu = f" ({entry.dedicated_gpu})" if entry.dedicated_gpu else ""
            rate = f" (about ${entry.dedicated_endpoint_per_hour:g}/h{gpu} per ftc's catalogue)"
        return DEPLOYMENT_NOTE.format(rate=rate)

    def describe_run(self, spec: "JobSpec") -> list[tuple[str, str]]:
        """Plan rows: the job id ftc gives the job and how the model is served afterwards."""
        return [("job id", f"{job_id_for('0' * 32, spec.method).rsplit('-', 1)[0]}-<client token>: "
                           "a second create with it is refused by Fireworks, so the job exists at most once"),
                ("serving", "a dedicated deployment, billed per GPU-hour (LoRA models are not served serverless)")]

    download_refusal = ("ftc does not download Fireworks models yet (Fireworks hands a model's files out through "
                        "signed URLs; its own CLI, firectl, downloads them)")

    # ------------------------------------------------------------------ client

    def _make_client(self) -> Any:
        """``fireworks.Fireworks`` with ftc's key, retries off and per-attempt timeouts; the base
        URL comes from ``FIREWORKS_BASE_URL`` as the SDK reads it."""
        import fireworks

        return fireworks.Fireworks(api_key=get_key(PROVIDER), account_id=self._account or os.environ.get(ACCOUNT_ENV),
                                   **sdk_client_kwargs(self.sdk))

    @property
    def account_id(self) -> str:
        """The account jobs run in: the constructor's, ``FIREWORKS_ACCOUNT_ID``, the client's, else
        the one account the key lists (``GET /v1/accounts``)."""
        if self._account:
            return self._account
        own = os.environ.get(ACCOUNT_ENV) or getattr(self.client, "account_id", None)
        if own:
            self._account = str(own)
            return self._account
        listed = as_dict(self._call("list accounts", lambda: self.client.accounts.list()))
        names = [str(a.get("name") or "") for a in listed.get("accounts") or []]
        ids = [n.split("/", 1)[1] for n in names if n.startswith("accounts/")]
        if len(ids) != 1:
            raise ConfigError(
                f"fireworks: cannot tell which account to use: the key lists {len(ids)} account(s)"
                + (f" ({', '.join(ids[:5])})" if ids else ""),
                hint=f"Set {ACCOUNT_ENV} to your account id (the Fireworks console shows it).")
        self._account = ids[0]
        return self._account

    def async_chat_client(self, *, timeout_s: float, max_reply_bytes: int, concurrency: int) -> Any:
        """The fireworks SDK's async client for ``ftc eval``: replies read through a transport that
        stops at ``max_reply_bytes``; the base URL is the SDK's default or FIREWORKS_BASE_URL."""
        import fireworks
        import httpx

        from ftclient.evaluation import capped_http_client, request_timeouts

        http = capped_http_client(fireworks, httpx, max_reply_bytes=max_reply_bytes, connections=concurrency)
        return fireworks.AsyncFireworks(api_key=get_key(self.name), account_id=self._account or os.environ.get(ACCOUNT_ENV),
                                        http_client=http, **sdk_client_kwargs(self.sdk, **request_timeouts(timeout_s)))

    # ------------------------------------------------------------------ hooks for HostedBackend

    def _upload(self, path: Path, purpose: str = "fine-tune") -> str:
        """Create the dataset named after the file's sha256 (or find it), and upload the bytes
        unless Fireworks has them already; returns the dataset's resource name."""
        path = Path(path)
        ds_id = dataset_id_for(sha256_file(path))
        account = self.account_id
        try:
            self.client.datasets.create(account_id=account, dataset_id=ds_id,
                                        dataset={"displayName": path.name[:ID_MAX], "userUploaded": {}})
        except Exception as e:
            if getattr(e, "status_code", None) != 409:
                raise
            existing = as_dict(self.client.datasets.get(ds_id, account_id=account))
            if existing.get("state") == "READY":
                log.info("fireworks: dataset %s already holds %s", ds_id, path.name)
                return str(existing.get("name") or f"accounts/{account}/datasets/{ds_id}")
        size = path.stat().st_size
        if size <= SIMPLE_UPLOAD_MAX_BYTES:
            with open(path, "rb") as f:
                self.client.datasets.upload(ds_id, account_id=account, file=(path.name, f, "application/jsonl"))
        else:
            self._signed_upload(account, ds_id, path, size)
        return f"accounts/{account}/datasets/{ds_id}"

    def _signed_upload(self, account: str, ds_id: str, path: Path, size: int) -> None:
        """A large file: a signed URL from Fireworks, the bytes streamed to it with a plain HTTP
        client (the signed URL is the credential: the API key is not sent there), then Fireworks
        is asked to check the upload."""
        import httpx

        resp = as_dict(self.client.datasets.get_upload_endpoint(ds_id, account_id=account,
                                                                 filename_to_size={path.name: str(size)}))
        urls = resp.get("filenameToSignedUrls") or {}
        url = urls.get(path.name) or (next(iter(urls.values())) if urls else None)
        if not url:
            raise ProviderError(f"Fireworks gave no upload URL for {path.name}", provider=PROVIDER, op="upload")

        def chunks() -> Any:
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    yield block

        timeout = sdk_client_kwargs(self.sdk)["timeout"]
        with httpx.Client(timeout=timeout) as http:
            put = http.put(url, content=chunks(), headers={"Content-Type": "application/octet-stream",
                                                           "Content-Length": str(size)})
        if put.status_code >= 300:
            raise RequestRejected(f"the upload of {path.name} to Fireworks' signed URL was refused "
                                  f"(HTTP {put.status_code})", provider=PROVIDER, op="upload",
                                  status_code=put.status_code)
        self.client.datasets.validate_upload(ds_id, account_id=account, body={})

    def _file_state(self, file_id: str) -> str:
        """``processed`` (READY) | ``pending`` (UPLOADING) | ``error`` (a status other than OK)
        | ``missing`` (404) for a dataset."""
        try:
            account, _, ds_id = split_name(file_id)
        except ValueError:
            return "missing"
        try:
            ds = as_dict(self.client.datasets.get(ds_id, account_id=account))
        except Exception as e:
            if getattr(e, "status_code", None) == 404:
                return "missing"
            raise
        if ds.get("state") == "READY":
            return "processed"
        if status_message(ds):
            return "error"
        return "pending"

    def _file_error(self, file_id: str) -> str | None:
        account, _, ds_id = split_name(file_id)
        ds = as_dict(self._call(f"check dataset {ds_id}", lambda: self.client.datasets.get(ds_id, account_id=account)))
        return status_message(ds)

    def _check_model(self, spec: "JobSpec") -> None:
        """Before any upload: Fireworks' record of the base model (``GET .../models/{id}``). Not
        found, or not tunable: SpecError naming the catalogue's Fireworks models."""
        full = full_model_name(spec.model_for(PROVIDER))
        account, _, model_id = split_name(full)
        try:
            m = as_dict(self._call("get model", lambda: self.client.models.get(model_id, account_id=account)))
        except RequestRejected as e:
            if e.status_code not in (400, 403, 404):
                raise
            raise SpecError(f"fireworks has no model {full!r} (it answered {e.status_code}); nothing was uploaded",
                            hint=self._known_models_hint()) from None
        if m.get("tunable") is False:
            raise SpecError(f"fireworks does not fine-tune {full!r} (the model is not tunable); nothing was uploaded",
                            hint=self._known_models_hint())

    def _known_models_hint(self) -> str:
        names = [r.partition(":")[2] for r in self.catalogue.model_refs() if r.startswith(f"{PROVIDER}:")]
        if names:
            return f"Fireworks models in ftc's catalogue: {', '.join(names[:5])}; the Fireworks model library lists all."
        return "Check the name in the Fireworks model library (models marked Tunable)."

    def _create_request(self, spec: "JobSpec", *, training_file: str, validation_file: str | None,
                        client_token: str, job: Any = None) -> dict[str, Any]:
        """The exact create arguments (recorded write-ahead by the base), with the account."""
        if spec.method == "dpo":
            args = dpo_arguments(spec, dataset=training_file, client_token=client_token)
        else:
            args = sft_arguments(spec, dataset=training_file, evaluation_dataset=validation_file,
                                 client_token=client_token)
        return {"account_id": self.account_id, "method": spec.method, **args}

    def _create(self, spec: "JobSpec", *, training_file: str, validation_file: str | None, client_token: str,
                job: Any = None) -> dict[str, Any]:
        """The create request. Fireworks refuses a second job with the same id (409): then the
        job exists already, and it is returned instead of a new one."""
        req = self._create_request(spec, training_file=training_file, validation_file=validation_file,
                                   client_token=client_token)
        account, method = req.pop("account_id"), req.pop("method")
        jobs = self.client.dpo_jobs if method == "dpo" else self.client.supervised_fine_tuning_jobs
        job_id = req.get("dpo_job_id") or req.get("supervised_fine_tuning_job_id")
        try:
            out = as_dict(jobs.create(account_id=account, **req))
        except Exception as e:
            if getattr(e, "status_code", None) != 409:
                raise
            log.info("fireworks: job %s exists already (a create was repeated); using it", job_id)
            out = as_dict(jobs.get(job_id, account_id=account))
        # The job's id in ftc is its resource name (it carries the account and the kind of job).
        out["id"] = str(out.get("name") or f"accounts/{account}/{COLLECTIONS[method]}/{job_id}")
        return out

    def create_job(self, spec: Any, *, training_file: str | None, validation_file: str | None, client_token: str,
                   job: Any) -> dict:
        """The create, under the retry policy as an idempotent call: the job's id is derived from
        its client token and Fireworks refuses a second job with that id (:meth:`_create` then
        returns the first), so a create whose answer was lost can be sent again safely."""
        return self._call("create fine-tuning job", lambda: self._create(
            spec, training_file=training_file, validation_file=validation_file, client_token=client_token, job=job),
            idempotent=True)

    def _raw_state(self, raw: Mapping[str, Any]) -> JobState | None:
        if not raw.get("state"):
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return state_of(raw)

    def _find_job(self, client_token: str, *, since: datetime | None = None) -> str | None:
        """The job created with ``client_token``: its id is derived from the token, so one ``GET``
        per method (SFT, then DPO) finds it; 404 on both means it was never created."""
        account = self.account_id
        for method, jobs in (("sft", self.client.supervised_fine_tuning_jobs), ("dpo", self.client.dpo_jobs)):
            job_id = job_id_for(client_token, method)
            try:
                found = as_dict(jobs.get(job_id, account_id=account))
            except Exception as e:
                if getattr(e, "status_code", None) == 404:
                    continue
                raise
            return str(found.get("name") or f"accounts/{account}/{COLLECTIONS[method]}/{job_id}")
        return None

    # ------------------------------------------------------------------ read side

    def _jobs_of(self, provider_job_id: str) -> tuple[Any, str, str]:
        """(the SDK's job resource, account, job id) of a job's resource name."""
        try:
            account, collection, job_id = split_name(provider_job_id)
        except ValueError:
            raise UsageError(f"{provider_job_id!r} is not a Fireworks job name",
                             hint="Fireworks jobs are named accounts/ACCOUNT/supervisedFineTuningJobs/ID "
                                  "(or .../dpoJobs/ID); `ftc jobs list` shows them.") from None
        if collection not in COLLECTIONS.values():
            raise UsageError(f"{provider_job_id!r} is not a Fireworks fine-tuning job")
        jobs = self.client.dpo_jobs if collection == "dpoJobs" else self.client.supervised_fine_tuning_jobs
        return jobs, account, job_id

    def _retrieve(self, provider_job_id: str) -> dict[str, Any]:
        jobs, account, job_id = self._jobs_of(provider_job_id)
        return as_dict(self._call("get job", lambda: jobs.get(job_id, account_id=account)))

    def _status_of(self, job: Mapping[str, Any]) -> FireworksJobStatus:
        config = job.get("trainingConfig") if isinstance(job.get("trainingConfig"), Mapping) else {}
        base = job.get("baseModel") or config.get("baseModel")
        return job_status(job, serving_note=self._serving_note(str(base)) if base else DEPLOYMENT_NOTE.format(rate=""))

    def status(self, provider_job_id: str) -> JobStatus:
        """The job (``GET .../{id}``) as a neutral status; a failed job's ``error`` is Fireworks'
        own status message."""
        return self._status_of(self._retrieve(provider_job_id))

    def events(self, provider_job_id: str, after: str | None = None) -> list[JobEvent]:
        """The job's record as events (Fireworks has no event list), oldest first."""
        return job_events(self._retrieve(provider_job_id), after=after)

    def checkpoints(self, provider_job_id: str) -> list[Checkpoint]:
        """The output model once the job succeeded (Fireworks lists no intermediate checkpoints)."""
        job = self._retrieve(provider_job_id)
        st = job_status(job)
        if st.fine_tuned_model is None:
            return []
        try:
            created = to_datetime(job.get("completedTime"))
        except ValueError:
            created = None
        return [Checkpoint(id=st.fine_tuned_model, step=None, created_at=created, model_ref=st.fine_tuned_model,
                           metrics={})]

    def cancel(self, provider_job_id: str) -> JobStatus:
        """``POST .../{id}:cancel``. A job that already ended is not an error: its final status is returned."""
        jobs, account, job_id = self._jobs_of(provider_job_id)
        try:
            self._call("cancel job", lambda: jobs.cancel(job_id, account_id=account, body={}))
        except RequestRejected as e:
            if e.status_code not in (400, 409):
                raise
            st = self.status(provider_job_id)
            if st.final:
                return st
            raise
        return self.status(provider_job_id)

    def result(self, provider_job_id: str) -> str | None:
        """The output model's name once the job completed."""
        return self.status(provider_job_id).fine_tuned_model

    def chat(self, model: str, messages: Sequence[Mapping[str, Any]], **kw: Any) -> str:
        """One chat completion; the reply's text. A fine-tuned LoRA model answers only once a
        dedicated deployment serves it (see the status's ``serving_note``)."""
        msgs = [dict(m) for m in messages]
        full = full_model_name(model) if not model.startswith("accounts/") else model
        try:
            return self._chat_text(f"chat with {full}", lambda: self.client.chat.completions.with_streaming_response.create(
                model=full, messages=msgs, **kw),
                hint="The reply was not a chat completion; check FIREWORKS_BASE_URL or try again.")
        except RequestRejected as e:
            if e.status_code == 404 and not full.startswith(f"accounts/{PUBLIC_ACCOUNT}/"):
                raise UsageError(f"fireworks does not serve {full} now: a fine-tuned model answers only on a dedicated "
                                 "deployment", hint=self.undeployed_hint) from None
            raise
