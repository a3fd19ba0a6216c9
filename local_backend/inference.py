"""Local inference: load a trained adapter / full model / base model and generate replies.

    model, tok = load_for_inference(job_output / "final")
    generate(model, tok, [[{"role": "user", "content": "hi"}]])

torch/transformers/peft are imported inside functions only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ftclient.errors import ConfigError

META_FILE = "ftc_train.json"  # written next to every trained model by .train


def auto_device() -> str:
    """The device ``auto`` means: cuda, else mps, else cpu."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_for_inference(model_dir: "str | os.PathLike", *, device: str = "auto", dtype: Any = None):
    """(model, tokenizer) for a directory written by :func:`train` -- an adapter (its base is
    loaded and the adapter applied) or a full/merged model -- or for any base model ref."""
    from .models import load_model_and_tokenizer, resolve_model

    device = auto_device() if device == "auto" else device
    dtype = dtype or ("bf16" if device == "cuda" else "fp32")
    p = Path(model_dir)
    if (p / "adapter_config.json").is_file():
        from peft import PeftModel
        from transformers import AutoTokenizer

        base_ref = None
        if (p / META_FILE).is_file():
            base_ref = json.loads((p / META_FILE).read_text(encoding="utf-8")).get("base_model")
        if not base_ref:
            base_ref = json.loads((p / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
        if not base_ref:
            raise ConfigError(f"{p}: adapter does not name its base model")
        base, _ = load_model_and_tokenizer(resolve_model(base_ref), dtype=dtype, device=device)
        model = PeftModel.from_pretrained(base, str(p))
        tokenizer = AutoTokenizer.from_pretrained(str(p))
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
    else:
        model, tokenizer = load_model_and_tokenizer(resolve_model(str(p) if p.exists() else str(model_dir)),
                                                    dtype=dtype, device=device)
    model.eval()
    return model, tokenizer


@dataclass
class Generation:
    """One reply and its token counts: the prompt as fed (chat template applied, no padding) and
    the reply as generated, up to and including its end-of-turn token."""

    text: str
    prompt_tokens: int
    completion_tokens: int


def generate_with_usage(model: Any, tokenizer: Any, messages_list: Sequence[Sequence[dict]],
                        max_new_tokens: int = 64, batch_size: int = 8) -> list[Generation]:
    """Greedy replies for a list of conversations, in batches with left padding, with the
    tokens each one took."""
    import torch

    template = tokenizer.chat_template
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    eos = [tokenizer.eos_token_id]
    cfg_eos = getattr(model.generation_config, "eos_token_id", None)
    eos += [e for e in (cfg_eos if isinstance(cfg_eos, list) else [cfg_eos]) if e is not None and e not in eos]
    stops = {e for e in eos if e is not None}
    out: list[Generation] = []
    try:
        model.eval()
        device = next(model.parameters()).device
        for i in range(0, len(messages_list), max(1, batch_size)):
            chunk = messages_list[i:i + batch_size]
            texts = [tokenizer.apply_chat_template(list(m), tokenize=False, add_generation_prompt=True,
                                                   chat_template=template) for m in chunk]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.inference_mode():
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                     temperature=None, top_p=None, top_k=None,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=eos)
            new = gen[:, enc["input_ids"].shape[1]:]
            replies = tokenizer.batch_decode(new, skip_special_tokens=True)
            for row, n_prompt, reply in zip(new.tolist(), enc["attention_mask"].sum(dim=1).tolist(), replies):
                # After the first stop token the row is padding (generate fills finished rows).
                n_out = next((k + 1 for k, tok_id in enumerate(row) if tok_id in stops), len(row))
                out.append(Generation(reply.strip(), int(n_prompt), n_out))
    finally:
        tokenizer.padding_side = old_side
    return out


def generate(model: Any, tokenizer: Any, messages_list: Sequence[Sequence[dict]], max_new_tokens: int = 64,
             batch_size: int = 8) -> list[str]:
    """Greedy replies for a list of conversations, in batches with left padding."""
    return [g.text for g in generate_with_usage(model, tokenizer, messages_list, max_new_tokens, batch_size)]
