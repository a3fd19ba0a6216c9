"""Token counts of fine-tuning examples, offline.

``get_counter(model_ref)`` returns a counter for one model:

* OpenAI models (``openai:gpt-4.1-mini``...): exact. tiktoken with the BPE file that
  ships inside ftclient (``resources/tiktoken``), read from disk and checked against
  the sha256 that tiktoken itself expects (``tiktoken.load.check_hash``), so no
  download is ever attempted. Examples are counted with the per-message formula of
  OpenAI's cookbook (see :class:`OpenAICounter`).
* Open models (``together:``, ``fireworks:``, ``local:``, ``hf:``): exact when the
  model's own tokenizer and chat template are available offline (a local folder or
  the Hugging Face cache: its ``tokenizer.json`` is read with the ``tokenizers`` library and
  the template rendered with jinja2, no transformers or torch; transformers only for a
  tokenizer without ``tokenizer.json``); otherwise a clearly
  labelled approximation (:class:`ApproxCounter`) whose measured error is in its
  ``basis``.

Every counter has ``basis`` (how the number is made), ``exact``, ``count_record`` and
``count_records`` (batched, uses all CPU cores; OpenAI counts of
:data:`PROCESS_MIN_RECORDS` records or more are spread over forked worker processes on
Linux, since their per-record preparation is Python, else over threads). ``count_tokens(path_or_records,
model_ref)`` reads a JSONL file and returns :class:`TokenStats`.

Modules: :mod:`.encodings` (the bundled tiktoken files), :mod:`.parallel` (batched
counting over threads and forked worker processes; :data:`PROCESS_MIN_RECORDS` is set
there), :mod:`.records` (the SFT and DPO record shapes), :mod:`.openai`
(:class:`OpenAICounter`), :mod:`.approx` (:class:`ApproxCounter`), :mod:`.hf`
(:class:`HFCounter`, :class:`LightTokenizer` and finding a tokenizer offline),
:mod:`.registry` (:func:`get_counter`) and :mod:`.stats` (:class:`TokenStats`,
:func:`count_tokens`). Nothing heavy is imported here: tiktoken, tokenizers, jinja2 and
transformers only when a count needs them.
"""

from __future__ import annotations

from .approx import APPROX_ERROR_NOTE, APPROX_FACTOR, APPROX_PROFILES, ApproxCounter
from .encodings import ENCODING_SHA256, RESOURCES, encoding_for_model, load_encoding
from .hf import HFCounter, LightTokenizer, cached_snapshot, find_local_tokenizer, light_counter, tokenizer_dir
from .openai import REPLY_PRIMING, TOKENS_PER_MESSAGE, TOKENS_PER_NAME, OpenAICounter
from .parallel import PROCESS_MIN_RECORDS, batch_unit_counts, flat_counts, string_counts
from .records import content_text, record_conversations
from .registry import HF_PREFIX, get_counter, open_model_prefixes, split_ref
from .stats import TokenStats, as_records, count_tokens, read_records, stats_from_counts

__all__ = [
    "APPROX_ERROR_NOTE",
    "APPROX_FACTOR",
    "APPROX_PROFILES",
    "ENCODING_SHA256",
    "PROCESS_MIN_RECORDS",
    "HF_PREFIX",
    "open_model_prefixes",
    "REPLY_PRIMING",
    "RESOURCES",
    "TOKENS_PER_MESSAGE",
    "TOKENS_PER_NAME",
    "ApproxCounter",
    "HFCounter",
    "LightTokenizer",
    "OpenAICounter",
    "TokenStats",
    "as_records",
    "batch_unit_counts",
    "cached_snapshot",
    "content_text",
    "count_tokens",
    "encoding_for_model",
    "find_local_tokenizer",
    "flat_counts",
    "get_counter",
    "light_counter",
    "load_encoding",
    "read_records",
    "record_conversations",
    "split_ref",
    "stats_from_counts",
    "string_counts",
    "tokenizer_dir",
]
