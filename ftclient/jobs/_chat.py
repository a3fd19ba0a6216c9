"""One chat completion from a fine-tuned (or base) model: :func:`chat`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..backends import available_backends, check_ready
from ..errors import UsageError
from ..paths import store_path
from ..store import opened
from ._common import backend_named

if TYPE_CHECKING:  # pragma: no cover
    from ..store import Store

__all__ = ["ChatReply", "chat"]


@dataclass
class ChatReply:
    backend: str
    model: str
    text: str
    job_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model, "job_id": self.job_id, "text": self.text}


def chat(model_or_job: str, prompt: str, *, backend: str | None = None, system: str | None = None,
         store: "Store | None" = None, on_retry: Callable | None = None, **kw: Any) -> ChatReply:
    """One chat completion from a fine-tuned (or base) model.

    ``model_or_job``: an ftc job id (or unique prefix, or the provider's job id) whose
    result is known -- its backend and fine-tuned model are used -- or, with
    ``backend``, a model id as the provider names it.
    """
    ref = (model_or_job or "").strip()
    if not ref:
        raise UsageError("give a model id or an ftc job id")
    if not prompt:
        raise UsageError("give a prompt")
    job = None
    if backend is None or ref.startswith("ftc-"):
        if backend is None and not store_path().exists() and store is None:
            raise UsageError(f"no job {ref!r} (no job has been submitted yet)",
                             hint="Give a model id with its backend: ftc chat MODEL 'hi' --backend "
                                  + "|".join(available_backends()) + ".")
        with opened(store) as st:
            try:
                job = st.get_job(ref)
            except UsageError as e:
                if backend is None:
                    raise UsageError(e.message, hint="For a model id, name its backend: --backend "
                                     + "|".join(available_backends()) + ".") from None
            if job is not None and not job.fine_tuned_model and job.provider_job_id and job.state == "succeeded":
                model = backend_named(job.backend, on_retry).result(job.provider_job_id)
                if model:
                    job = st.update_state(job.id, job.state, fine_tuned_model=model)
    if job is not None:
        if not job.fine_tuned_model:
            hint = (f"Watch it with `ftc jobs watch {job.id}`." if not job.is_final
                    else f"It ended {job.state}" + (f": {job.error}" if job.error else "") + ".")
            raise UsageError(f"{job.id} has no fine-tuned model yet (it is {job.state})", hint=hint)
        name, model = job.backend, job.fine_tuned_model
    else:
        name, model = backend, ref  # type: ignore[assignment]
    be = backend_named(name, on_retry)
    check_ready(be)  # the API key too, before the request
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    text = be.chat(model, messages, **kw)
    return ChatReply(backend=getattr(be, "name", name), model=model, text=text, job_id=job.id if job else None)
