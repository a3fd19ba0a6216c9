"""Token counts of an open model whose tokenizer is not available offline: a labelled approximation.

The example is counted in ``o200k_base`` by the cookbook formula (:class:`.OpenAICounter`),
scaled by a factor and given per-example template tokens chosen by model family
(:data:`APPROX_PROFILES`); the measured error of each profile is in the counter's
``basis``.
"""

from __future__ import annotations

import re

from .openai import OpenAICounter

# Approximation for open models without their tokenizer: factor x the o200k count
# of the example by the cookbook formula (a ChatML-like rendering) + a fixed number
# of tokens per example for templates that add text (Llama 3.1-3.3 put a 'Cutting
# Knowledge Date' preamble in the system message). Profiles chosen by model name.
# Measured by benchmarks/token_approx_error.py on banking77 (10,003 SFT examples,
# system + user + assistant) against the real tokenizers and templates.
APPROX_PROFILES: list[tuple[str, str, float, int, str]] = [
    # (name regex, profile, factor, tokens per example, measured error)
    (r"llama-?3\.[123]", "Llama-3.1/3.2/3.3 template", 1.03, 20,
     "total +0.0%, per example mean |error| 0.7%, p95 1.9% vs the Llama-3.1 tokenizer + template"),
    (r"llama-?3|llama3", "Llama-3 template", 1.03, 0,
     "total +0.0%, per example mean |error| 1.0%, p95 3.0% vs the Llama-3 tokenizer + template"),
    (r"qwen", "Qwen ChatML template", 1.00, 0,
     "total -0.3%, per example mean |error| 1.0%, p95 3.2% vs the Qwen2.5/3 tokenizer + ChatML"),
    (r"smollm", "SmolLM2 ChatML template", 1.00, 0,
     "not measured (SmolLM2's GGUF tokenizer needs torch to load here); the Qwen ChatML factor"),
    (r"", "generic ChatML", 1.03, 0,
     "not measured for this family; the measured families were within 0.3% in total and 1% per example on average"),
]
APPROX_FACTOR = 1.03  # the generic profile's factor
APPROX_ERROR_NOTE = (
    "calibrated and measured on banking77 (short support tickets), benchmarks/token_approx_error.py; "
    "other data may differ"
)


class ApproxCounter:
    """Open model without its tokenizer offline: an approximation, labelled as such.

    count = round(factor x o200k count of the example by the cookbook formula
    (3 tokens per message + role + content, +3) + per-example template tokens),
    with factor and template tokens from the model family's profile
    (:data:`APPROX_PROFILES`), whose measured error is given in ``basis``.
    """

    exact = False

    def __init__(self, model_ref: str, reason: str = "its tokenizer is not available offline", *,
                 family: str | None = None):
        self.model = model_ref
        # The family from the reference and, where known, the Hugging Face id behind it (a
        # provider's own name, such as Fireworks' llama-v3p1-8b-instruct, may not say it).
        low = f"{model_ref} {family or ''}".lower()
        for pattern, profile, factor, extra, error in APPROX_PROFILES:
            if re.search(pattern, low):
                break
        self.profile, self.factor, self.extra = profile, factor, extra
        self._base = OpenAICounter("gpt-4o", "o200k_base")
        self.basis = (
            f"estimated: {reason}; tiktoken o200k count of the ChatML rendering x {factor:g}"
            + (f" + {extra} template tokens" if extra else "")
            + f" ({profile} profile; measured error: {error}; {APPROX_ERROR_NOTE})"
        )

    def scale(self, total, prompt, completion):
        f, x = self.factor, self.extra
        return (
            [round(t * f) + x for t in total],
            [round(p * f) + x for p in prompt],
            [round(c * f) for c in completion],
        )

    def count_split(self, records):
        return self.scale(*self._base.count_split(records))

    def count_records(self, records):
        return self.count_split(records)[0]

    def count_record(self, record):
        return self.count_records([record])[0]

