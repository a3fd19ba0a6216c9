"""Asking a model run on this machine: its backend loads it once (``load_generator``) and
answers the examples in batches."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..backends import get_backend
from ._examples import Example
from ._progress import _Session

if TYPE_CHECKING:  # pragma: no cover
    from ..modelref import ModelRef
    from ..store import Store


def _run_local(ref: "ModelRef", todo: list[Example], st: "Store", run_id: str, sess: _Session, *,
               batch_size: int, max_tokens: int, device: str) -> None:
    t = time.perf_counter()
    gen = get_backend(ref.backend).load_generator(ref.model, device=device)
    load_s = time.perf_counter() - t
    sess.device = gen.device or sess.device
    sess.notes.append(f"model loaded in {load_s:.1f} s on {sess.device or device} (counted in wall_s, "
                      "not in throughput)")
    prog = sess.progress

    for i in range(0, len(todo), batch_size):
        chunk = todo[i:i + batch_size]
        t = time.perf_counter()
        outs = gen.generate([ex.messages for ex in chunk], max_new_tokens=max_tokens)
        dt = time.perf_counter() - t
        sess.active_s += dt
        for ex, g in zip(chunk, outs):
            st.save_eval_result(run_id, idx=ex.idx, example_key=ex.key, output=g.text, latency_s=dt / len(chunk),
                                tokens_in=g.prompt_tokens, tokens_out=g.completion_tokens)
            prog.completed += 1
            prog.sent += 1
            sess.new_completed += 1
        sess.tick()
