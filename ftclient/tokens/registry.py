"""The token counter of a model reference: :func:`get_counter`, cached per process.

A backend that counts its own models' tokens hands the counter (``token_counter(name,
tokenizer=)``: the OpenAI backend its exact :class:`.OpenAICounter`, the local backend the
offline counter of its default and GGUF models); any other model is an open model: the
exact :class:`.HFCounter` when its own tokenizer and chat template are available offline,
else the labelled :class:`.ApproxCounter`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..backends import available_backends, backend_attr, get_backend, owner_of
from ..errors import ConfigError
from .approx import ApproxCounter
from .hf import find_local_tokenizer, load_hf_counter

#: The prefix of a Hugging Face repo id or model folder (``hf:Qwen/Qwen2.5-7B-Instruct``).
HF_PREFIX = "hf"


def open_model_prefixes() -> tuple[str, ...]:
    """Prefixes of open-weight models that are no installed backend: ``hf`` and every provider
    the price catalogue prices without a backend (the GPU hosts of its self-hosted rows, hosted
    providers that have no backend installed)."""
    from ..prices import load_catalogue  # the catalogue only for a prefix that is no backend

    installed = available_backends()
    return (HF_PREFIX, *sorted(p for p in load_catalogue().providers() if p not in installed))


def split_ref(model_ref: str) -> tuple[str, str]:
    """'provider:model' -> (provider, model). A bare name belongs to the backend that claims it
    (:func:`ftclient.backends.owner_of`: ``gpt-4.1-mini`` is OpenAI's)."""
    if not isinstance(model_ref, str) or not model_ref.strip():
        raise ConfigError("empty model reference", hint="Use PROVIDER:MODEL, e.g. openai:gpt-4.1-mini.")
    ref = model_ref.strip()
    if ":" in ref and not ref.startswith("ft:"):
        provider, _, name = ref.partition(":")
        provider = provider.lower()
        if not name:
            raise ConfigError(f"{model_ref!r}: no model name after '{provider}:'")
        return provider, name
    owner = owner_of(ref)
    if owner:
        return owner, ref
    raise ConfigError(
        f"{model_ref!r}: give the provider, as PROVIDER:MODEL",
        hint="e.g. openai:gpt-4.1-mini, together:meta-llama/Meta-Llama-3.1-8B-Instruct-Reference, local:./my-model",
    )


_counters: dict[tuple[str, str | None], Any] = {}


def get_counter(model_ref: str, *, tokenizer: str | None = None):
    """The token counter for ``model_ref`` (``openai:gpt-4.1-mini``, ``together:...``,
    ``fireworks:...``, ``local:PATH``, ``hf:REPO_ID``).

    ``tokenizer``: a local folder or HF repo id whose tokenizer to use for an open
    model (e.g. the HF id behind a Together model name).
    """
    key = (model_ref, tokenizer)
    c = _counters.get(key)
    if c is not None:
        return c
    provider, name = split_ref(model_ref)
    installed = available_backends()
    own = None
    if provider in installed and backend_attr(provider, "token_counter"):
        own = get_backend(provider).token_counter(name, tokenizer=tokenizer)
    if own is not None:
        c = own
    elif provider in installed or provider == HF_PREFIX or provider in open_model_prefixes():
        src = None
        for cand in (tokenizer, name):
            if cand and find_local_tokenizer(cand):
                src = cand
                break
        if src is None:
            if Path(name).expanduser().exists():
                raise ConfigError(
                    f"{name}: no tokenizer files there (tokenizer.json / tokenizer_config.json)",
                    hint="Point local: at a model folder saved with save_pretrained().",
                )
            c = ApproxCounter(model_ref, family=tokenizer)
        else:
            c = load_hf_counter(src)
    else:
        raise ConfigError(
            f"unknown provider {provider!r} in {model_ref!r}",
            hint=f"Use one of: {', '.join([*installed, *open_model_prefixes()])}.",
        )
    _counters[key] = c
    return c

