"""The Fireworks part of the test emulator (tests/emulator.py), for tests only.

    with ProviderEmulator("fireworks") as emu:            # account_id="ftc-test" by default
        client = fireworks.Fireworks(api_key=emu.api_key, account_id=emu.account_id,
                                     base_url=emu.base_url, max_retries=0)
        ...
        emu.check_responses()   # every JSON body sent parses STRICTLY with the SDK's own type

``ProviderEmulator`` mixes ``FireworksMixin`` in; everything here is used only when the
provider is "fireworks". With an overridden base URL the ``fireworks`` SDK (1.x) sends the
control plane as ``/v1/accounts/{account_id}/...`` and chat as ``/v1/chat/completions`` on
that same root, so ``emu.base_url`` is the bare root.

There is no Fireworks OpenAPI document offline. The reference is the SDK: every route
answers the body of the SDK type its method casts to, and ``check_responses`` proves each
one with ``strict_validate`` (pydantic strict validation, no unknown key at any depth, every
Literal one the SDK knows). Error bodies have no SDK type; they follow what the real API
was seen to send: the control plane answers grpc-gateway's google.rpc.Status
``{"code": <int>, "message": str, "details": []}``, inference answers
``{"error": {"message", "code", "type": "error", "param"?}}``.

Jobs (SFT and DPO): JOB_STATE_CREATING -> JOB_STATE_PENDING -> JOB_STATE_RUNNING (N steps,
``jobProgress`` rising) -> JOB_STATE_WRITING_RESULTS -> JOB_STATE_COMPLETED (the output
model is created, READY) | JOB_STATE_FAILED (``status {code, message}``) |
``:cancel`` -> JOB_STATE_CANCELLING -> JOB_STATE_CANCELLED. See docs/testing-providers.md.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import sys
import time
import typing
import uuid
from typing import Any
from urllib.parse import quote, unquote

import pydantic
from fireworks_check import ControlPlaneError, InferenceError, sdk_type, strict_validate

__all__ = ["FW_BASE_MODELS", "FW_TERMINAL", "NOT_DEPLOYED", "FireworksMixin", "sdk_type", "strict_validate"]

FW_TERMINAL = ("JOB_STATE_COMPLETED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")

#: google.rpc.Code names -> numbers (what grpc-gateway writes as ``code``).
GRPC = {"OK": 0, "CANCELLED": 1, "UNKNOWN": 2, "INVALID_ARGUMENT": 3, "DEADLINE_EXCEEDED": 4, "NOT_FOUND": 5,
        "ALREADY_EXISTS": 6, "PERMISSION_DENIED": 7, "RESOURCE_EXHAUSTED": 8, "FAILED_PRECONDITION": 9,
        "ABORTED": 10, "OUT_OF_RANGE": 11, "UNIMPLEMENTED": 12, "INTERNAL": 13, "UNAVAILABLE": 14,
        "DATA_LOSS": 15, "UNAUTHENTICATED": 16}
_HTTP_GRPC = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
              409: "ALREADY_EXISTS", 412: "FAILED_PRECONDITION", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
              500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}

#: What the inference endpoint answers for a model it does not serve (a LoRA without a
#: deployment included: LoRA models are served on on-demand deployments only).
NOT_DEPLOYED = "Model not found, inaccessible, and/or not deployed"

_ID = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")

#: Base models under accounts/fireworks (name -> facts). flux is not tunable (and no chat model).
FW_BASE_MODELS = {
    "llama-v3p1-8b-instruct": {"display": "Llama 3.1 8B Instruct", "params": 8_030_261_248, "ctx": 131072,
                               "type": "llama", "tunable": True},
    "qwen2p5-7b-instruct": {"display": "Qwen2.5 7B Instruct", "params": 7_615_616_512, "ctx": 32768,
                            "type": "qwen2", "tunable": True},
    "llama-v3p1-70b-instruct": {"display": "Llama 3.1 70B Instruct", "params": 70_553_706_496, "ctx": 131072,
                                "type": "llama", "tunable": True},
    "flux-1-dev-fp8": {"display": "FLUX.1 [dev] FP8", "params": 11_901_408_320, "ctx": 0, "type": "flux",
                       "tunable": False, "kind": "FLUMINA_BASE_MODEL"},
}
_LORA_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
#: kind -> (collection, create's id query parameter, what it is called, SDK type)
_FW_KIND = {"sft": ("supervisedFineTuningJobs", "supervisedFineTuningJobId", "supervised fine-tuning job",
                    "SupervisedFineTuningJob"),
            "dpo": ("dpoJobs", "dpoJobId", "DPO job", "DpoJob")}
#: Output-only fields of the job types (never taken from a create body).
_OUTPUT_ONLY = {"name", "state", "status", "createTime", "updateTime", "completedTime", "createdBy", "jobProgress",
                "estimatedCost", "trainerLogsSignedUrl"}
_DS_OUTPUT_ONLY = {"name", "state", "status", "createTime", "updateTime", "createdBy", "averageTurnCount",
                   "estimatedTokenCount"}


# --------------------------------------------------------------------------- request parsing


def _filter_to(cls: Any, data: Any, drop: set = frozenset()) -> Any:
    """Keep of ``data`` only the keys ``cls`` knows (recursively), as grpc-gateway discards
    unknown request fields."""
    if not isinstance(data, dict):
        return data
    out = {}
    for n, f in cls.model_fields.items():
        key = f.alias or n
        if key in data and key not in drop:
            sub = _model_in(f.annotation)
            out[key] = _filter_to(sub, data[key]) if sub is not None else copy.deepcopy(data[key])
    return out


def _model_in(tp: Any) -> Any:
    if isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        return tp
    for arg in typing.get_args(tp) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------- the mixin


class FireworksMixin:
    """Fireworks' routes and state for ``ProviderEmulator("fireworks")``."""

    # ---------------------------------------------------------------- public helpers

    def dataset_fails(self, reason: str) -> None:
        """Fireworks: the next dataset processed (``:upload`` or ``:validateUpload``) fails
        with ``reason``: the call answers 400 INVALID_ARGUMENT and the dataset stays
        UPLOADING with ``status {code: INVALID_ARGUMENT, message: reason}``."""
        with self._lock:
            self._fw_only()._fw_dataset_failures.append(reason)

    def deploy(self, model: str) -> str:
        """Fireworks: put ``model`` (a model name or an id in the account) on an on-demand
        deployment, so chat completions serve it. Returns the deployment's name."""
        with self._lock:
            name = self._fw_only()._fw_model_name(model)
            if name not in self.models and name not in self._fw_base_names():
                raise KeyError(f"no such model: {model}")
            dep = f"accounts/{self.account_id}/deployments/emu-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
            self.deployed[name] = dep
            return dep

    def undeploy(self, model: str) -> None:
        with self._lock:
            self._fw_only().deployed.pop(self._fw_model_name(model), None)

    def dataset(self, dataset_id: str) -> dict:
        """The dataset as Fireworks would send it now."""
        with self._lock:
            return copy.deepcopy(self._fw_only()._fw_ds_wire(self.datasets[dataset_id]))

    # ---------------------------------------------------------------- plumbing

    def _fw_only(self) -> FireworksMixin:
        if self.provider != "fireworks":
            raise ValueError(f"this helper is for the Fireworks emulator, not {self.provider!r}")
        return self

    def _fw_init(self) -> None:
        self.datasets: dict[str, dict] = {}  # dataset id -> record (content in "_content")
        self.models: dict[str, dict] = {}  # output model name -> record (completed jobs only)
        self.deployed: dict[str, str] = {}  # model name -> deployment name (see deploy())
        self._fw_dataset_failures: list[str] = []
        self._fw_tokens: dict[str, tuple] = {}  # signed-URL token -> (kind, key, filename)
        self._fw_created = time.time()

    def _fw_base(self):
        for cls in type(self).__mro__:
            if cls.__name__ == "ProviderEmulator":
                return sys.modules[cls.__module__]
        raise RuntimeError("FireworksMixin is for ProviderEmulator")

    def _fw_err(self, status: int, grpc: str, message: str, param: str | None = None) -> Exception:
        return self._fw_base()._ApiError(status, message, err_code=grpc, param=param)

    @staticmethod
    def _fw_is_inference(path: str) -> bool:
        return path.startswith(("/v1/chat/", "/v1/completions", "/inference/"))

    def _fw_error_body(self, e: Any, path: str) -> dict:
        grpc = e.err_code if e.err_code in GRPC else _HTTP_GRPC.get(e.status, "UNKNOWN")
        if self._fw_is_inference(path):
            err = {"message": e.message, "code": "UNAUTHORIZED" if e.status == 401 else grpc, "type": "error"}
            if e.param:
                err["param"] = e.param
            return {"error": err}
        return {"code": GRPC[grpc], "message": e.message, "details": []}

    def _fw_check_auth(self, header: str | None) -> None:
        given = header[7:].strip() if header and header.startswith("Bearer ") else ""
        if given != self.api_key:
            raise self._fw_err(401, "UNAUTHENTICATED", "The API key you provided is invalid." if given else
                               "Missing API key: send 'Authorization: Bearer <FIREWORKS_API_KEY>'.")

    def _fw_job_key(self, job_id: str) -> str:
        if job_id in self.jobs:
            return job_id
        hits = [k for k, j in self.jobs.items() if j["id"] == job_id]
        if len(hits) != 1:
            raise KeyError(job_id if not hits else f"{job_id} is ambiguous: {hits}")
        return hits[0]

    def _fw_iso(self, ts: float | None) -> str | None:
        return None if ts is None else self._fw_base()._iso(ts)

    def _fw_account(self, account: str, *, public_models: bool = False) -> None:
        if account == self.account_id or (public_models and account == "fireworks"):
            return
        raise self._fw_err(403, "PERMISSION_DENIED", "")  # what the API was seen to send: no message

    def _fw_id(self, value: Any, what: str) -> str:
        if not isinstance(value, str) or not _ID.fullmatch(value):
            raise self._fw_err(400, "INVALID_ARGUMENT", f"invalid {what} {value!r}: must be 1-63 characters of "
                                                        "a-z, 0-9 and '-', starting and ending with a letter or digit")
        return value

    def _fw_page(self, req: Any, items: list, key: str, wire) -> dict:
        q = req.query
        try:
            size = int((q.get("pageSize") or ["50"])[0] or 50)
        except ValueError:
            raise self._fw_err(400, "INVALID_ARGUMENT", "invalid pageSize") from None
        size = 50 if size <= 0 else min(size, 200)
        token = (q.get("pageToken") or [""])[0]
        start = 0
        if token:
            try:
                start = int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("o:"))
            except ValueError:  # not base64, not UTF-8, not a number
                raise self._fw_err(400, "INVALID_ARGUMENT", f"invalid page token {token!r}") from None
        order = (q.get("orderBy") or [""])[0].replace(" ", "").lower()
        if order.startswith(("create_time", "createtime")):
            items = sorted(items, key=lambda r: (r["created"], r["name"]))
        if order.endswith("desc"):
            items = list(reversed(items))
        page = items[start:start + size]
        more = start + size < len(items)
        nxt = base64.urlsafe_b64encode(f"o:{start + size}".encode()).decode() if more else ""
        return {key: [wire(r) for r in page], "nextPageToken": nxt}

    # ---------------------------------------------------------------- routes

    def _fw_routes(self):
        A = r"/v1/accounts/(?P<account>[^/:]+)"
        D = r"(?P<dataset_id>[^/:]+)"
        J = r"(?P<job_id>[^/:]+)"
        M = r"(?P<model_id>[^/:]+)"
        FW = "fireworks"
        routes = [
            ("GET", r"/v1/accounts", self._fw_account_list, "Accounts"),
            ("GET", A, self._fw_account_get, "Account"),
            ("POST", rf"{A}/datasets", self._fw_ds_create, "Dataset"),
            ("GET", rf"{A}/datasets", self._fw_ds_list, "Datasets"),
            ("GET", rf"{A}/datasets/{D}", self._fw_ds_get, "Dataset"),
            ("DELETE", rf"{A}/datasets/{D}", self._fw_ds_delete, "object"),
            ("POST", rf"{A}/datasets/{D}:upload", self._fw_ds_upload, "DatasetUploadResponse"),
            ("POST", rf"{A}/datasets/{D}:getUploadEndpoint", self._fw_ds_upload_endpoint,
             "DatasetGetUploadEndpointResponse"),
            ("POST", rf"{A}/datasets/{D}:validateUpload", self._fw_ds_validate, "object"),
            ("GET", rf"{A}/datasets/{D}:getDownloadEndpoint", self._fw_ds_download_endpoint,
             "DatasetGetDownloadEndpointResponse"),
            # signed URLs (no Authorization: the signature is the token in the path)
            ("PUT", r"/_fw_signed/(?P<token>[A-Za-z0-9_-]+)/(?P<filename>[^/]+)", self._fw_signed_put, None),
            ("GET", r"/_fw_signed/(?P<token>[A-Za-z0-9_-]+)/(?P<filename>[^/]+)", self._fw_signed_get, None),
            ("GET", rf"{A}/models", self._fw_model_list, "Models"),
            ("GET", rf"{A}/models/{M}", self._fw_model_get, "Model"),
            ("POST", r"/v1/chat/completions", self._fw_chat, "CompletionCreateResponse"),
        ]
        for coll, kind, page, one in (("supervisedFineTuningJobs", "sft", "SupervisedFineTuningJobs",
                                       "SupervisedFineTuningJob"), ("dpoJobs", "dpo", "DpoJobs", "DpoJob")):
            def bind(fn, kind=kind):
                return lambda req, **kw: fn(req, kind=kind, **kw)
            routes += [
                ("POST", rf"{A}/{coll}", bind(self._fw_job_create), one),
                ("GET", rf"{A}/{coll}", bind(self._fw_job_list), page),
                ("GET", rf"{A}/{coll}/{J}", bind(self._fw_job_get), one),
                ("DELETE", rf"{A}/{coll}/{J}", bind(self._fw_job_delete), "object"),
                ("POST", rf"{A}/{coll}/{J}:cancel", bind(self._fw_job_cancel), "object"),
                ("POST", rf"{A}/{coll}/{J}:resume", bind(self._fw_job_resume), one),
            ]
        routes.append(("GET", rf"{A}/dpoJobs/{J}:getMetricsFileEndpoint", self._fw_metrics_endpoint,
                       "DpoJobGetMetricsFileEndpointResponse"))
        out = []
        for method, rx, handler, tname in routes:
            if handler in (self._fw_signed_put, self._fw_signed_get):
                handler = _no_auth(handler)
            out.append((method, re.compile(rx), handler, (FW, tname) if tname else None))
        return out

    # ---------------------------------------------------------------- accounts

    def _fw_email(self) -> str:
        return f"{self.account_id}@example.com"

    def _fw_account_wire(self) -> dict:
        t = self._fw_iso(self._fw_created)
        return {"name": f"accounts/{self.account_id}", "displayName": self.account_id, "email": self._fw_email(),
                "createTime": t, "updateTime": t, "state": "READY", "status": {"code": "OK", "message": ""},
                "suspendState": "UNSUSPENDED"}

    def _fw_account_list(self, req: Any):
        rec = {"name": f"accounts/{self.account_id}", "created": self._fw_created}
        return self._fw_page(req, [rec], "accounts", lambda r: self._fw_account_wire())

    def _fw_account_get(self, req: Any, account: str):
        self._fw_account(account)
        return self._fw_account_wire()

    # ---------------------------------------------------------------- datasets

    def _fw_ds(self, account: str, dataset_id: str) -> dict:
        self._fw_account(account)
        dataset_id = unquote(dataset_id)
        if dataset_id not in self.datasets:
            raise self._fw_err(404, "NOT_FOUND", f'dataset "accounts/{account}/datasets/{dataset_id}" not found')
        return self.datasets[dataset_id]

    def _fw_ds_ready(self, ds: dict) -> bool:
        return ds["_processed"] and time.time() >= ds["_ready_at"]

    def _fw_ds_wire(self, ds: dict) -> dict:
        out = dict(copy.deepcopy(ds["_spec"]))
        out.update({"name": ds["name"], "createTime": self._fw_iso(ds["created"]),
                    "updateTime": self._fw_iso(ds["updated"]), "createdBy": self._fw_email(),
                    "state": "READY" if self._fw_ds_ready(ds) else "UPLOADING",
                    "status": copy.deepcopy(ds["_status"])})
        if ds["_processed"]:
            out["exampleCount"] = str(ds["_examples"])
            out["estimatedTokenCount"] = str(ds["_tokens"])
            if ds["_format"]:
                out["format"] = ds["_format"]
        return out

    def _fw_ds_create(self, req: Any, account: str):
        import fireworks.types as t

        self._fw_account(account)
        b = req.body if isinstance(req.body, dict) else {}
        ds_id = self._fw_id(b.get("datasetId"), "dataset id")
        if not isinstance(b.get("dataset"), dict):
            raise self._fw_err(400, "INVALID_ARGUMENT", "dataset is required", param="dataset")
        name = f"accounts/{account}/datasets/{ds_id}"
        if ds_id in self.datasets:
            raise self._fw_err(409, "ALREADY_EXISTS", f'dataset "{name}" already exists')
        spec = _filter_to(t.Dataset, b["dataset"], _DS_OUTPUT_ONLY)
        self._fw_proto_check(t.Dataset, spec)
        now = time.time()
        ds = {"id": ds_id, "name": name, "created": now, "updated": now, "_spec": spec, "_processed": False,
              "_ready_at": 0.0, "_content": b"", "sha256": None, "_examples": 0, "_tokens": 0, "_format": None,
              "_files": {}, "_status": {"code": "OK", "message": ""}}
        self.datasets[ds_id] = ds
        if spec.get("externalUrl"):  # a dataset that lives elsewhere: nothing to upload
            ds.update({"_processed": True, "_examples": int(spec.get("exampleCount") or 0)})
        return self._fw_ds_wire(ds)

    def _fw_proto_check(self, cls: Any, data: dict) -> None:
        """A value of the wrong type or an enum value the API does not know is a 400, as the
        gateway's JSON parsing would refuse it."""
        try:
            cls.model_validate_json(json.dumps(data), strict=True)
        except pydantic.ValidationError as e:
            raise self._fw_err(400, "INVALID_ARGUMENT", f"invalid request: {e.errors()[0]['msg']} at "
                                                        f"{'.'.join(map(str, e.errors()[0]['loc']))}") from None

    def _fw_ds_list(self, req: Any, account: str):
        self._fw_account(account)
        items = sorted(self.datasets.values(), key=lambda d: d["name"])
        return self._fw_page(req, items, "datasets", self._fw_ds_wire)

    def _fw_ds_get(self, req: Any, account: str, dataset_id: str):
        return self._fw_ds_wire(self._fw_ds(account, dataset_id))

    def _fw_ds_delete(self, req: Any, account: str, dataset_id: str):
        ds = self._fw_ds(account, dataset_id)
        del self.datasets[ds["id"]]
        return {}

    def _fw_ds_uploading(self, ds: dict) -> None:
        if ds["_processed"]:
            raise self._fw_err(400, "FAILED_PRECONDITION", f'dataset "{ds["name"]}" is already uploaded')

    def _fw_process(self, ds: dict, content: bytes) -> None:
        """Store the uploaded bytes and count them; a queued or a found problem fails it."""
        ds["_content"], ds["sha256"], ds["updated"] = content, hashlib.sha256(content).hexdigest(), time.time()
        problem = self._fw_dataset_failures.pop(0) if self._fw_dataset_failures else None
        lines = [ln for ln in content.decode("utf-8", "replace").splitlines() if ln.strip()]
        if problem is None and not lines:
            problem = "the dataset is empty"
        first = None
        for n, ln in enumerate(lines, 1):
            if problem is not None:
                break
            try:
                row = json.loads(ln)
            except ValueError:
                problem = f"line {n}: not valid JSON"
                break
            first = row if first is None else first
        if problem is not None:
            ds["_status"] = {"code": "INVALID_ARGUMENT", "message": problem}
            raise self._fw_err(400, "INVALID_ARGUMENT", f'dataset "{ds["name"]}" failed validation: {problem}')
        fmt = ds["_spec"].get("format")
        if fmt in (None, "FORMAT_UNSPECIFIED") and isinstance(first, dict):
            fmt = "CHAT" if "messages" in first else "COMPLETION" if "prompt" in first else fmt
        ds.update({"_processed": True, "_examples": len(lines), "_tokens": len(content.split()), "_format": fmt,
                   "_ready_at": time.time() + self.file_processing_delay,
                   "_status": {"code": "OK", "message": ""}})

    def _fw_ds_upload(self, req: Any, account: str, dataset_id: str):
        ds = self._fw_ds(account, dataset_id)
        form = req.body if isinstance(req.body, dict) else {}
        up = form.get("file")
        if not isinstance(up, dict):
            raise self._fw_err(400, "INVALID_ARGUMENT", "file is required (multipart field 'file')", param="file")
        self._fw_ds_uploading(ds)
        ds["_files"] = {up["filename"]: {"size": len(up["content"]), "content": up["content"]}}
        self._fw_process(ds, up["content"])
        return {"id": ds["id"], "object": "file", "bytes": len(up["content"]), "created_at": int(time.time()),
                "filename": up["filename"], "purpose": "fine-tune"}

    def _fw_sign(self, kind: str, key: str, filename: str) -> str:
        token = uuid.uuid4().hex
        self._fw_tokens[token] = (kind, key, filename)
        return f"{self.root_url}/_fw_signed/{token}/{quote(filename, safe='')}"

    def _fw_ds_upload_endpoint(self, req: Any, account: str, dataset_id: str):
        ds = self._fw_ds(account, dataset_id)
        self._fw_ds_uploading(ds)
        sizes = (req.body or {}).get("filenameToSize") if isinstance(req.body, dict) else None
        if not isinstance(sizes, dict) or not sizes:
            raise self._fw_err(400, "INVALID_ARGUMENT", "filenameToSize is required", param="filenameToSize")
        files = {}
        for fname, size in sizes.items():
            if "/" in fname or not fname or not str(size).isdigit():
                raise self._fw_err(400, "INVALID_ARGUMENT", f"invalid file {fname!r} of size {size!r}")
            files[fname] = {"size": int(size), "content": None}
        ds["_files"] = files  # each call replaces the registered files
        return {"filenameToSignedUrls": {f: self._fw_sign("upload", ds["id"], f) for f in files}}

    def _fw_signed_put(self, req: Any, token: str, filename: str):
        kind, key, fname = self._fw_tokens.get(token, (None, None, None))
        ds = self.datasets.get(key) if kind == "upload" else None
        if ds is None or fname != unquote(filename) or fname not in ds["_files"]:
            return 403, self._fw_base()._NO_BODY  # a storage signature that does not match
        content = req._raw
        want = ds["_files"][fname]["size"]
        rng = next((v for k, v in req.headers.items() if k.lower() == "x-goog-content-length-range"), None)
        if len(content) != want or (rng and not _in_range(len(content), rng)):
            return 400, self._fw_base()._NO_BODY
        ds["_files"][fname]["content"] = content
        return 200, self._fw_base()._NO_BODY

    def _fw_signed_get(self, req: Any, token: str, filename: str):
        kind, key, fname = self._fw_tokens.get(token, (None, None, None))
        if kind == "download" and key in self.datasets and fname == unquote(filename):
            return self._fw_base()._Binary(self.datasets[key]["_content"])
        if kind == "metrics" and key in self.jobs:
            return self._fw_base()._Binary(b"".join(json.dumps(m).encode() + b"\n"
                                                    for m in self.jobs[key]["_metrics"]))
        return 404, self._fw_base()._NO_BODY

    def _fw_ds_validate(self, req: Any, account: str, dataset_id: str):
        ds = self._fw_ds(account, dataset_id)
        self._fw_ds_uploading(ds)
        if not ds["_files"]:
            raise self._fw_err(400, "FAILED_PRECONDITION", f'dataset "{ds["name"]}" has no upload to validate; '
                                                           "call getUploadEndpoint first")
        missing = sorted(f for f, v in ds["_files"].items() if v["content"] is None)
        if missing:
            raise self._fw_err(400, "FAILED_PRECONDITION", f"files not uploaded: {', '.join(missing)}")
        parts = [ds["_files"][f]["content"] for f in sorted(ds["_files"])]
        self._fw_process(ds, b"".join(p if p.endswith(b"\n") else p + b"\n" for p in parts))
        return {}

    def _fw_ds_download_endpoint(self, req: Any, account: str, dataset_id: str):
        ds = self._fw_ds(account, dataset_id)
        if not self._fw_ds_ready(ds):
            raise self._fw_err(400, "FAILED_PRECONDITION", f'dataset "{ds["name"]}" is not ready')
        files = sorted(ds["_files"]) or [f"{ds['id']}.jsonl"]
        return {"filenameToSignedUrls": {files[0]: self._fw_sign("download", ds["id"], files[0])}}

    # ---------------------------------------------------------------- models

    def _fw_base_names(self) -> dict:
        return {f"accounts/fireworks/models/{k}": v for k, v in FW_BASE_MODELS.items()}

    def _fw_model_name(self, model: str) -> str:
        return model if model.startswith("accounts/") else f"accounts/{self.account_id}/models/{model}"

    def _fw_base_wire(self, name: str) -> dict:
        m = self._fw_base_names()[name]
        t = self._fw_iso(self._fw_created - 86400 * 30)
        kind = m.get("kind", "HF_BASE_MODEL")
        out = {"name": name, "displayName": m["display"], "createTime": t, "updateTime": t, "kind": kind,
               "state": "READY", "status": {"code": "OK", "message": ""}, "public": True,
               "tunable": m["tunable"], "supportsLora": m["tunable"], "supportsServerless": kind == "HF_BASE_MODEL",
               "supportsTools": kind == "HF_BASE_MODEL",
               "baseModelDetails": {"checkpointFormat": "HUGGINGFACE", "parameterCount": str(m["params"]),
                                    "modelType": m["type"], "tunable": m["tunable"], "worldSize": 1,
                                    "defaultPrecision": "BF16", "moe": False}}
        if m["ctx"]:
            out["contextLength"] = m["ctx"]
        return out

    def _fw_out_wire(self, rec: dict) -> dict:
        t = self._fw_iso(rec["created"])
        out = {"name": rec["name"], "displayName": rec["display"], "createTime": t, "updateTime": t,
               "kind": rec["kind"], "state": "READY", "status": {"code": "OK", "message": ""}, "public": False,
               "fineTuningJob": rec["job"], "contextLength": rec["ctx"], "supportsServerless": False,
               "tunable": rec["kind"] == "HF_PEFT_ADDON"}
        if rec["kind"] == "HF_PEFT_ADDON":
            out["peftDetails"] = {"baseModel": rec["base"], "r": rec["rank"], "targetModules": list(_LORA_MODULES)}
        else:
            out["baseModelDetails"] = copy.deepcopy(self._fw_base_wire(rec["base"])["baseModelDetails"])
        dep = self.deployed.get(rec["name"])
        if dep:
            out["deployedModelRefs"] = [{"name": f"accounts/{self.account_id}/deployedModels/{rec['id']}-emu",
                                         "deployment": dep, "state": "DEPLOYED", "default": True, "public": False}]
        return out

    def _fw_model_list(self, req: Any, account: str):
        self._fw_account(account, public_models=True)
        if account == "fireworks":
            items = [{"name": n, "created": 0} for n in sorted(self._fw_base_names())]
            return self._fw_page(req, items, "models", lambda r: self._fw_base_wire(r["name"]))
        for j in list(self.jobs.values()):
            self._tick(j)
        items = sorted(self.models.values(), key=lambda m: m["name"])
        return self._fw_page(req, items, "models", self._fw_out_wire)

    def _fw_model_get(self, req: Any, account: str, model_id: str):
        self._fw_account(account, public_models=True)
        name = f"accounts/{account}/models/{unquote(model_id)}"
        for j in list(self.jobs.values()):
            self._tick(j)
        if name in self._fw_base_names():
            return self._fw_base_wire(name)
        if name in self.models:
            return self._fw_out_wire(self.models[name])
        raise self._fw_err(404, "NOT_FOUND", f'model "{name}" not found')

    def _fw_resolve_base(self, name: Any, field: str) -> tuple[str, dict]:
        """(base model name, its facts) of a baseModel / warmStartFrom value, or the API's error."""
        if not isinstance(name, str) or not re.fullmatch(r"accounts/[^/]+/models/[^/]+", name):
            raise self._fw_err(400, "INVALID_ARGUMENT", f"invalid {field} {name!r}: expected "
                                                        "accounts/<account>/models/<model>", param=field)
        acct = name.split("/")[1]
        if acct not in ("fireworks", self.account_id):
            raise self._fw_err(403, "PERMISSION_DENIED", "")
        if field == "warmStartFrom":
            rec = self.models.get(name)
            if rec is None:
                raise self._fw_err(404, "NOT_FOUND", f'model "{name}" not found', param=field)
            if rec["kind"] != "HF_PEFT_ADDON":
                raise self._fw_err(400, "INVALID_ARGUMENT", f"warm_start_from must be a PEFT addon model, "
                                                            f"{name} is not", param=field)
            return rec["base"], self._fw_base_names()[rec["base"]]
        facts = self._fw_base_names().get(name)
        if facts is None:
            if name in self.models:
                raise self._fw_err(400, "INVALID_ARGUMENT", f"base model {name} is not a base model; use "
                                                            "warm_start_from for a PEFT addon", param=field)
            raise self._fw_err(404, "NOT_FOUND", f'model "{name}" not found', param=field)
        if not facts["tunable"]:
            raise self._fw_err(400, "INVALID_ARGUMENT", f"base model {name} is not tunable", param=field)
        return name, facts

    # ---------------------------------------------------------------- jobs

    def _fw_job(self, account: str, job_id: str, kind: str) -> dict:
        self._fw_account(account)
        coll, _, what, _ = _FW_KIND[kind]
        name = f"accounts/{account}/{coll}/{unquote(job_id)}"
        if name not in self.jobs:
            raise self._fw_err(404, "NOT_FOUND", f'{what} "{name}" not found')
        return self.jobs[name]

    def _fw_dataset_ref(self, value: Any, field: str, *, required: bool) -> str | None:
        if value in (None, "") and not required:
            return None
        if not isinstance(value, str) or not value:
            raise self._fw_err(400, "INVALID_ARGUMENT", f"{field} is required", param=field)
        mo = re.fullmatch(r"accounts/([^/]+)/datasets/([^/]+)", value)
        if not mo:
            raise self._fw_err(400, "INVALID_ARGUMENT", f"invalid {field} {value!r}: expected "
                                                        "accounts/<account>/datasets/<dataset>", param=field)
        if mo.group(1) != self.account_id:
            raise self._fw_err(403, "PERMISSION_DENIED", "")
        ds = self.datasets.get(mo.group(2))
        if ds is None:
            raise self._fw_err(404, "NOT_FOUND", f'dataset "{value}" not found', param=field)
        if not self._fw_ds_ready(ds):
            raise self._fw_err(400, "FAILED_PRECONDITION", f'dataset "{value}" is not ready (state UPLOADING)',
                               param=field)
        return value

    def _fw_job_create(self, req: Any, account: str, kind: str):
        import fireworks.types as t
        from fireworks.types.shared import TrainingConfig

        self._fw_account(account)
        coll, id_param, what, tname = _FW_KIND[kind]
        b = req.body if isinstance(req.body, dict) else {}
        given = (req.query.get(id_param) or [None])[0]
        jid = self._fw_id(given, "job id") if given is not None else str(uuid.uuid4())
        name = f"accounts/{account}/{coll}/{jid}"
        if name in self.jobs:
            raise self._fw_err(409, "ALREADY_EXISTS", f'{what} "{name}" already exists')
        cls = getattr(t, tname)
        spec = _filter_to(cls, b, _OUTPUT_ONLY)
        if isinstance(spec.get("wandbConfig"), dict):
            spec["wandbConfig"].pop("apiKey", None)  # a secret is not echoed
        cfg = spec if kind == "sft" else spec.setdefault("trainingConfig", {})
        self._fw_proto_check(cls, {"dataset": "", **spec})
        spec["dataset"] = self._fw_dataset_ref(b.get("dataset"), "dataset", required=True)
        if kind == "sft":
            self._fw_dataset_ref(spec.get("evaluationDataset"), "evaluationDataset", required=False)
        if bool(cfg.get("baseModel")) == bool(cfg.get("warmStartFrom")):
            raise self._fw_err(400, "INVALID_ARGUMENT", "exactly one of base_model and warm_start_from must be set",
                               param="baseModel")
        field = "baseModel" if cfg.get("baseModel") else "warmStartFrom"
        base, facts = self._fw_resolve_base(cfg[field], field)
        out_id = cfg.get("outputModel") or jid
        if out_id.startswith("accounts/"):
            if not out_id.startswith(f"accounts/{account}/models/"):
                raise self._fw_err(400, "INVALID_ARGUMENT", f"invalid output_model {out_id!r}", param="outputModel")
            out_id = out_id.split("/")[-1]
        out_name = f"accounts/{account}/models/{self._fw_id(out_id, 'output model id')}"
        if out_name in self.models or any(j["_output"] == out_name and j["_state"] not in
                                          ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED") for j in self.jobs.values()):
            raise self._fw_err(409, "ALREADY_EXISTS", f'model "{out_name}" already exists', param="outputModel")
        for key, default in (("epochs", 1), ("loraRank", 8), ("learningRate", 0.0001)):
            if cfg.get(key) is None:
                cfg[key] = default
        epochs, rank = cfg["epochs"], cfg["loraRank"]
        if not 1 <= epochs <= 100:
            raise self._fw_err(400, "INVALID_ARGUMENT", "epochs must be between 1 and 100", param="epochs")
        if not 0 <= rank <= 64:  # 0: a full fine-tune (the emulator's convention: HF_BASE_MODEL output)
            raise self._fw_err(400, "INVALID_ARGUMENT", "lora_rank must be between 0 and 64", param="loraRank")
        cfg["outputModel"] = out_name
        if kind == "dpo":
            spec.setdefault("lossConfig", {"method": "DPO"})
            self._fw_proto_check(TrainingConfig, cfg)
        ds = self.datasets[spec["dataset"].split("/")[-1]]
        tokens = ds["_tokens"] * epochs
        per_m = 0.50 if facts["params"] <= 16e9 else 3.00
        failure = self._job_failures.pop(0) if self._job_failures else None
        now = time.time()
        job = {"id": jid, "name": name, "_kind": kind, "_spec": spec, "_cfg": cfg, "_base": base,
               "_output": out_name, "_rank": rank, "_ctx": facts["ctx"], "_state": "JOB_STATE_CREATING",
               "_phase": 0, "_t0": now, "_step": 0, "_failure": failure, "_status": {"code": "OK", "message": ""},
               "created": now, "updated": now, "completed": None, "_tokens": tokens, "_progress": None,
               "_cost": round(tokens * per_m / 1e6, 9), "_metrics": []}
        self.jobs[name] = job
        return self._fw_job_wire(job)

    def _fw_job_wire(self, job: dict) -> dict:
        out = copy.deepcopy(job["_spec"])
        out.update({"name": job["name"], "state": job["_state"], "status": copy.deepcopy(job["_status"]),
                    "createTime": self._fw_iso(job["created"]), "createdBy": self._fw_email()})
        if job["_kind"] == "sft":  # DpoJob has no updateTime
            out["updateTime"] = self._fw_iso(job["updated"])
        if job["completed"] is not None:
            out["completedTime"] = self._fw_iso(job["completed"])
        if job["_kind"] == "sft":
            units = int(job["_cost"])
            out["estimatedCost"] = {"currencyCode": "USD", "units": str(units),
                                    "nanos": round((job["_cost"] - units) * 1e9)}
            if job["_progress"] is not None:
                out["jobProgress"] = dict(job["_progress"])
        return out

    def _fw_fail_code(self, job: dict) -> str:
        code = str(job["_failure"].get("code") or "")
        if code.upper() in GRPC and code.upper() != "OK":
            return code.upper()
        return "INVALID_ARGUMENT" if code in ("invalid_training_file", "invalid_file_format") else "INTERNAL"

    def _fw_fail(self, job: dict) -> None:
        job["_state"], job["completed"] = "JOB_STATE_FAILED", time.time()
        job["_status"] = {"code": self._fw_fail_code(job), "message": job["_failure"]["message"]}

    def _fw_step(self, job: dict) -> None:
        st, n = job["_state"], self.running_steps
        if st == "JOB_STATE_CREATING":
            job["_state"] = "JOB_STATE_PENDING"
        elif st == "JOB_STATE_PENDING":
            if job["_failure"] and self._fw_fail_code(job) in ("INVALID_ARGUMENT", "FAILED_PRECONDITION"):
                self._fw_fail(job)  # a problem with the data or the settings: it never runs
            else:
                job["_state"] = "JOB_STATE_RUNNING"
                job["_progress"] = {"percent": 0, "epoch": 0, "inputTokens": 0}
        elif st == "JOB_STATE_RUNNING":
            if job["_step"] < n:
                job["_step"] += 1
                s, epochs = job["_step"], job["_cfg"]["epochs"]
                job["_progress"] = {"percent": 100 * s // n, "epoch": min(epochs - 1, s * epochs // n),
                                    "inputTokens": job["_tokens"] * s // n}
                job["_metrics"].append({"step": s, "epoch": job["_progress"]["epoch"],
                                        "loss": round(2.0 / (1 + s), 4)})
            elif job["_failure"]:
                self._fw_fail(job)
            else:
                job["_state"] = "JOB_STATE_WRITING_RESULTS"
        elif st == "JOB_STATE_WRITING_RESULTS":
            job["_state"], job["completed"] = "JOB_STATE_COMPLETED", time.time()
            out = job["_output"]
            self.models[out] = {"name": out, "id": out.split("/")[-1], "created": job["completed"],
                                "display": job["_spec"].get("displayName") or out.split("/")[-1],
                                "kind": "HF_PEFT_ADDON" if job["_rank"] else "HF_BASE_MODEL",
                                "base": job["_base"], "rank": job["_rank"], "job": job["name"],
                                "ctx": job["_ctx"]}
        elif st == "JOB_STATE_CANCELLING":
            job["_state"], job["completed"] = "JOB_STATE_CANCELLED", time.time()
            job["_status"] = {"code": "CANCELLED", "message": "The job was cancelled."}
        job["updated"] = time.time()

    def _fw_job_get(self, req: Any, account: str, job_id: str, kind: str):
        job = self._fw_job(account, job_id, kind)
        self._tick(job, poll=True)
        return self._fw_job_wire(job)

    def _fw_job_list(self, req: Any, account: str, kind: str):
        self._fw_account(account)
        items = sorted((j for j in self.jobs.values() if j["_kind"] == kind), key=lambda j: j["name"])
        for j in items:
            self._tick(j)
        coll = _FW_KIND[kind][0]
        return self._fw_page(req, items, coll, self._fw_job_wire)

    def _fw_job_delete(self, req: Any, account: str, job_id: str, kind: str):
        job = self._fw_job(account, job_id, kind)
        del self.jobs[job["name"]]
        return {}

    def _fw_job_cancel(self, req: Any, account: str, job_id: str, kind: str):
        job = self._fw_job(account, job_id, kind)
        if self._terminal(job) or job["_state"] == "JOB_STATE_CANCELLING":
            raise self._fw_err(400, "FAILED_PRECONDITION", f'job "{job["name"]}" is {job["_state"]} and cannot '
                                                           "be cancelled")
        job["_state"], job["updated"] = "JOB_STATE_CANCELLING", time.time()
        return {}

    def _fw_job_resume(self, req: Any, account: str, job_id: str, kind: str):
        job = self._fw_job(account, job_id, kind)
        if job["_state"] not in ("JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_PAUSED",
                                 "JOB_STATE_EARLY_STOPPED"):
            raise self._fw_err(400, "FAILED_PRECONDITION", f'job "{job["name"]}" is {job["_state"]} and cannot '
                                                           "be resumed")
        job.update({"_state": "JOB_STATE_PENDING", "_failure": None, "completed": None, "updated": time.time(),
                    "_status": {"code": "OK", "message": ""}})
        return self._fw_job_wire(job)

    def _fw_metrics_endpoint(self, req: Any, account: str, job_id: str):
        job = self._fw_job(account, job_id, "dpo")
        return {"signedUrl": self._fw_sign("metrics", job["name"], "metrics.jsonl")}

    # ---------------------------------------------------------------- chat

    def _fw_chat(self, req: Any):
        b = req.body if isinstance(req.body, dict) else {}
        model, messages = b.get("model"), b.get("messages")
        if not model or not isinstance(model, str):
            raise self._fw_err(400, "INVALID_ARGUMENT", "model is required", param="model")
        if not isinstance(messages, list) or not messages:
            raise self._fw_err(400, "INVALID_ARGUMENT", "messages is required", param="messages")
        if b.get("stream"):
            raise self._fw_err(400, "INVALID_ARGUMENT", "The emulator does not stream.", param="stream")
        name = model.split("#")[0]  # "<model>#<deployment>" addresses one deployment
        base = self._fw_base_names().get(name)
        served = (base is not None and base.get("kind", "HF_BASE_MODEL") == "HF_BASE_MODEL") or (
            name in self.models and name in self.deployed)
        if not served:
            raise self._fw_err(404, "NOT_FOUND", NOT_DEPLOYED, param="model")
        text = self._reply_text(messages, name)
        pt = sum(self._tokens(m.get("content") or "") for m in messages if isinstance(m, dict))
        ct = self._tokens(text)
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": name, "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                            "finish_reason": "stop"}],
                "usage": {"prompt_tokens": pt, "total_tokens": pt + ct, "completion_tokens": ct}}

    # ---------------------------------------------------------------- checking

    def _fw_check_responses(self) -> int:
        """Every JSON body sent parses strictly with the SDK type of its route (2xx), or with the
        control-plane / inference error shape (errors). Returns how many were checked."""
        if self.internal_errors:
            raise AssertionError("the emulator itself failed:\n" + "\n".join(self.internal_errors))
        with self._lock:
            sent = list(self.responses)
        checked = 0
        for r in sent:
            if r.body is None:
                continue
            what = f"{r.method} {r.path} -> {r.status}"
            try:
                if 200 <= r.status < 300:
                    if not r.spec_op:
                        raise AssertionError("a JSON body on a route with no SDK type to check it against")
                    strict_validate(r.spec_op[1], r.body)
                else:
                    strict_validate(InferenceError if self._fw_is_inference(r.path) else ControlPlaneError, r.body)
            except AssertionError as e:
                raise AssertionError(f"emulator response {what}:\n{e}") from None
            checked += 1
        return checked


def _no_auth(fn):
    def handler(req, **kw):
        return fn(req, **kw)
    handler._no_auth = True
    return handler


def _in_range(n: int, header: str) -> bool:
    try:
        lo, hi = (int(x) for x in header.split(","))
    except ValueError:
        return False
    return lo <= n <= hi
