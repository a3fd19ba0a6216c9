"""Submit, watch, resume and manage fine-tuning jobs: the Python API behind ``ftc train``
and ``ftc jobs``.

Everything here works through one backend (``ftclient.backends.get_backend``) and the
job store (``ftclient.store.Store``); the CLI only parses arguments and renders what
these functions return.

* :func:`plan` / :func:`submit`: load the spec, run the backend's offline checks
  (preflight, data validation, estimate), apply the budget -- all before any network
  request and before a job is recorded -- then record the job and hand it to
  :func:`create_once` (write-ahead, resumable: the backend performs only the provider
  calls). When the provider quotes its own price
  the budget applies to that figure too.
* :func:`watch`: poll a job with backoff until it ends, storing its state and events.
* :func:`resume`: finish what killed processes left: reconcile and submit again (the
  backend never creates a second job), then watch.
* :func:`cancel`, :func:`show`, :func:`list_jobs`, :func:`events`, :func:`checkpoints`,
  :func:`download`, :func:`chat`.

The modules: :mod:`~ftclient.jobs._plan` (:class:`Plan`, the checks and the estimate's
USD figure), :mod:`~ftclient.jobs._submit` (:class:`Quote`, the confirmation, the
hand-over to the backend), :mod:`~ftclient.jobs._watch` (:class:`PollPolicy`, the
polling budget), :mod:`~ftclient.jobs._resume`, :mod:`~ftclient.jobs._manage` (cancel
and the queries), :mod:`~ftclient.jobs._chat`, and :mod:`~ftclient.jobs._common` (the
backend of a job, :class:`Interrupted`).
"""

from __future__ import annotations

from ._chat import ChatReply, chat
from ._common import Interrupted
from ._manage import JobView, cancel, checkpoints, download, events, list_jobs, show
from ._plan import Plan, plan
from ._resume import ResumeOutcome, resume
from ..submission import Declined, create_once, ensure_uploaded
from ._submit import Quote, submit
from ._watch import PollPolicy, WatchUpdate, refresh, watch

__all__ = [
    "Plan",
    "Quote",
    "PollPolicy",
    "DEFAULT_POLL",
    "WatchUpdate",
    "ResumeOutcome",
    "JobView",
    "ChatReply",
    "Declined",
    "Interrupted",
    "create_once",
    "ensure_uploaded",
    "plan",
    "submit",
    "watch",
    "refresh",
    "resume",
    "cancel",
    "show",
    "list_jobs",
    "events",
    "checkpoints",
    "download",
    "chat",
]

#: The policy :func:`watch` uses when none is given (tests may replace it: :func:`watch`
#: reads ``ftclient.jobs.DEFAULT_POLL`` each time it is called).
DEFAULT_POLL = PollPolicy()
