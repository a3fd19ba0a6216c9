"""Exact token counts of OpenAI models: tiktoken with the bundled encoding + the cookbook formula.

The encoding (``o200k_base`` or ``cl100k_base``, by model) is the file that ships inside
ftclient (:mod:`.encodings`); examples are counted with the per-message formula of
OpenAI's cookbook (see :class:`OpenAICounter`), batched over all cores
(:mod:`.parallel`).
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Sequence

from ..errors import DataError
from . import parallel
from .encodings import encoding_for_model, load_encoding
from .parallel import flat_counts, sums
from .records import content_text, record_conversations

# The cookbook's constants (num_tokens_from_messages).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3


class OpenAICounter:
    """Exact OpenAI counts: tiktoken + the cookbook's per-message formula.

    ``num_tokens_from_messages`` ('How to count tokens with tiktoken', used by 'Data
    preparation and analysis for chat model fine-tuning'):
    3 tokens per message, the encoded string value of every key (role, content,
    name, tool_call_id...), +1 when the key is ``name``, +3 for the reply priming.

    Beyond the cookbook (which only handles string values):
    * non-string values are not encoded: ``weight`` (0/1), ``null`` content;
    * content as a list of parts: the ``text`` of each text part is encoded; image
      or audio parts are not counted (OpenAI bills them otherwise);
    * ``tool_calls``: each call's ``function.name`` and ``function.arguments`` are
      encoded (ids and types not); record-level ``tools``/``functions``
      definitions: their compact JSON is encoded. OpenAI does not publish how it
      renders tools, so these two parts are close, not guaranteed exact;
    * DPO: the formula over input messages + preferred + non-preferred output
      (prompt counted once, one reply priming).
    """

    exact = True

    def __init__(self, model: str, encoding: str | None = None, *, encoding_file: str | os.PathLike | None = None):
        self.model = model
        self.encoding_name = encoding or encoding_for_model(model)
        self._encoding_file = encoding_file
        self._enc = None
        self._rcost: dict[str, int] | None = None
        self.basis = (
            f"exact: tiktoken {self.encoding_name} (bundled, sha256-verified) "
            "+ OpenAI cookbook per-message formula"
        )

    @property
    def encoding(self):
        if self._enc is None:
            self._enc = load_encoding(self.encoding_name, self._encoding_file)
        return self._enc

    # Each record -> strings to encode + fixed tokens, in 3 units (prompt, completion,
    # rest) so that one pass also gives prompt and completion sizes for inference.
    @staticmethod
    def _msg(m: dict, other: list[str], content_out: list[str]) -> int:
        fixed = TOKENS_PER_MESSAGE
        for key, value in m.items():
            if key == "content":
                if isinstance(value, str):
                    content_out.append(value)
                elif isinstance(value, list):
                    content_out.append(content_text(value))
            elif isinstance(value, str):
                other.append(value)
                if key == "name":
                    fixed += TOKENS_PER_NAME
            elif key == "tool_calls" and isinstance(value, list):
                for call in value:
                    fn = call.get("function") if isinstance(call, dict) else None
                    if isinstance(fn, dict):
                        for k in ("name", "arguments"):
                            if isinstance(fn.get(k), str):
                                content_out.append(fn[k])
        return fixed

    def _role_costs(self) -> dict[str, int]:
        """``TOKENS_PER_MESSAGE`` + the tokens of the role, for the usual roles."""
        rc = self._rcost
        if rc is None:
            eo = self.encoding.encode_ordinary
            rc = self._rcost = {
                r: TOKENS_PER_MESSAGE + len(eo(r))
                for r in ("system", "user", "assistant", "developer", "tool", "function")
            }
        return rc

    def _prepare(self, records: Iterable[Any], offset: int = 0):
        """The strings to encode, in three consecutive units per record (prompt,
        completion, rest), the units' ends, and the fixed tokens of prompt and rest.
        ``offset``: index of the first record (for the example number of an error)."""
        flat: list[str] = []
        app = flat.append
        ends: list[int] = []
        mark = ends.append
        fixed_p: list[int] = []
        fixed_r: list[int] = []
        add_p = fixed_p.append
        add_r = fixed_r.append
        msg = self._msg
        rcost = self._role_costs().get
        a_cost = rcost("assistant")
        for i, r in enumerate(records, offset):
            # Fast path, the usual SFT shape: {"messages": [{"role": str, "content": str},
            # ..., {"role": "assistant", "content": str}]} with usual roles, whose
            # tokens come from _role_costs. Same result as the general path below,
            # which handles everything else.
            if type(r) is dict and len(r) == 1:
                msgs = r.get("messages")
                if type(msgs) is list and msgs:
                    start = len(flat)
                    fp = REPLY_PRIMING - a_cost  # the last message's cost is added below
                    for m in msgs:
                        if (
                            type(m) is dict
                            and len(m) == 2
                            and type(c := m.get("content")) is str
                            and type(role := m.get("role")) is str
                            and (k := rcost(role)) is not None
                        ):
                            app(c)
                            fp += k
                        else:
                            break
                    else:
                        if role == "assistant":
                            e = len(flat)
                            ends += (e - 1, e, e)
                            add_p(fp)
                            add_r(a_cost)
                            continue
                    del flat[start:]  # not the usual shape after all
            try:
                msgs, pref, npref = record_conversations(r)
            except ValueError as e:
                raise DataError(f"example {i + 1}: {e}") from None
            fp = REPLY_PRIMING
            fr = 0
            tools = r.get("tools") or r.get("functions")
            if tools is None and isinstance(r.get("input"), dict):
                tools = r["input"].get("tools") or r["input"].get("functions")
            if tools:
                app(json.dumps(tools, ensure_ascii=False, separators=(",", ":")))
            if pref is None:
                # SFT: the completion is the last assistant message, the prompt what precedes it.
                last = len(msgs) - 1
                while last >= 0 and msgs[last].get("role") != "assistant":
                    last -= 1
                prompt_msgs = msgs[:last] if last >= 0 else msgs
                out_msgs = [msgs[last]] if last >= 0 else []
                tail = msgs[last + 1 :] if last >= 0 else []
            else:
                prompt_msgs, out_msgs, tail = msgs, pref[:1], pref[1:] + npref
            for m in prompt_msgs:
                if len(m) == 2 and type(m.get("content")) is str and type(m.get("role")) is str:
                    app(m["role"])
                    app(m["content"])
                    fp += TOKENS_PER_MESSAGE
                else:
                    fp += msg(m, flat, flat)
            mark(len(flat))
            rest: list[str] = []
            for m in out_msgs:
                fr += msg(m, rest, flat)
            mark(len(flat))
            for m in tail:
                fr += msg(m, rest, rest)
            flat.extend(rest)
            mark(len(flat))
            add_p(fp)
            add_r(fr)
        return flat, ends, fixed_p, fixed_r

    def _split_serial(
        self, records: Iterable[Any], offset: int = 0, threads: int | None = None
    ) -> tuple[list[int], list[int], list[int]]:
        """(total, prompt, completion) in this process: one batched encoding of all
        the strings (over ``threads`` threads)."""
        flat, ends, fixed_p, fixed_r = self._prepare(records, offset)
        counts = sums(flat_counts(self.encoding, flat, threads), ends)
        prompt = list(map(int.__add__, counts[0::3], fixed_p))
        completion = counts[1::3]
        other = list(map(int.__add__, counts[2::3], fixed_r))
        total = list(map(int.__add__, map(int.__add__, prompt, completion), other))
        return total, prompt, completion

    def _split_counts(
        self, records: Sequence[Any], *, process_min: int | None = None
    ) -> tuple[list[int], list[int], list[int]]:
        """(total, prompt, completion) per record. ``process_min``: records from which
        on forked worker processes are used (default :data:`.parallel.PROCESS_MIN_RECORDS`,
        read there at each call)."""
        if not hasattr(records, "__len__"):
            records = list(records)
        n = len(records)
        nproc = min(parallel.n_threads(), n)
        if (
            nproc > 1
            and n >= (parallel.PROCESS_MIN_RECORDS if process_min is None else process_min)
            and parallel.can_fork()
        ):
            return self._split_forked(records, nproc)
        return self._split_serial(records)

    def _split_forked(self, records: Sequence[Any], nproc: int) -> tuple[list[int], list[int], list[int]]:
        """(total, prompt, completion) per record, over ``nproc`` forked worker processes
        (:func:`.parallel.split_forked`), which inherit the encoding built here."""
        self._role_costs()  # builds the encoding before the fork
        return parallel.split_forked(self._split_serial, records, nproc)

    def count_records(self, records: Sequence[Any]) -> list[int]:
        return self._split_counts(records)[0]

    def count_record(self, record: Any) -> int:
        return self.count_records([record])[0]

    def count_split(self, records: Sequence[Any]) -> tuple[list[int], list[int], list[int]]:
        """(total, prompt, completion) per record. prompt: what an inference request
        bills as input (messages before the last assistant one, + reply priming);
        completion: tokens of the last assistant content (DPO: the preferred one)."""
        return self._split_counts(records)

