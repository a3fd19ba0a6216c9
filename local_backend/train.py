"""Local fine-tuning with TRL + PEFT: spec -> plan -> trainer -> adapter.

    plan = make_plan(spec)                 # what will run, shown by the CLI (plan.describe())
    result = train(spec, output_dir=d)     # SFT or DPO, LoRA / QLoRA / full
    model, tok = load_for_inference(result.model_dir)   # (ftclient.local_backend.inference)
    generate(model, tok, [[{"role": "user", "content": "hi"}]])

Layout of ``output_dir``::

    checkpoint-<step>/   Trainer checkpoints every ``local.checkpoint_every`` steps (resumable)
    final/               the adapter (LoRA/QLoRA) or full model, tokenizer, ftc_train.json
    merged/              base + adapter merged (``train(..., merge=True)``)

Several processes (``local.gpus > 1``): :func:`train` is what every rank runs, started by
accelerate's launcher (the tracked job's worker does that, see ``worker.py``); the plan
carries ``num_processes`` and ``distributed`` (ddp | fsdp | deepspeed), the Trainer does
the rest, and only the main process writes ``final/``.

torch/transformers/trl/peft are imported inside functions only.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

from ftclient.errors import ConfigError, DataError, FtcError

# Inference lives in .inference; these names stay importable from here.
from .inference import META_FILE, generate, load_for_inference  # noqa: F401

if TYPE_CHECKING:  # pragma: no cover
    from ftclient.spec import JobSpec

log = logging.getLogger("ftclient.local")

FINAL_DIR = "final"
MERGED_DIR = "merged"

DEFAULT_LR = {("sft", "lora"): 2e-4, ("sft", "qlora"): 2e-4, ("sft", "full"): 2e-5,
              ("dpo", "lora"): 5e-5, ("dpo", "qlora"): 5e-5, ("dpo", "full"): 1e-6}
DEFAULT_BATCH_SIZE = 8


# ----------------------------------------------------------------------------- devices and plan

@dataclass(frozen=True)
class Devices:
    """What this machine offers (probed once; tests pass their own)."""

    cuda: bool = False
    cuda_bf16: bool = False
    mps: bool = False
    cuda_name: Optional[str] = None
    cuda_count: int = 0  # CUDA GPUs visible (0 with cuda=True counts as one)

    @property
    def gpus(self) -> int:
        return max(self.cuda_count, 1) if self.cuda else 0

    @classmethod
    def probe(cls) -> "Devices":
        import torch

        cuda = torch.cuda.is_available()
        mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
        return cls(cuda=cuda, cuda_bf16=bool(cuda and torch.cuda.is_bf16_supported()), mps=mps,
                   cuda_name=torch.cuda.get_device_name(0) if cuda else None,
                   cuda_count=torch.cuda.device_count() if cuda else 0)


STRATEGIES = {
    "ddp": "DDP (a full copy of the model per process, gradients averaged)",
    "fsdp": "FSDP (weights, gradients and optimizer state sharded across processes)",
    "deepspeed": "DeepSpeed",
}


@dataclass
class TrainPlan:
    """Everything the local trainer will do, derived from the spec and the machine."""

    method: str
    adapter: str
    base_model: str
    device: str
    precision: str  # bf16 | fp16 | fp32 (mixed precision on cuda; fp32 on cpu/mps by default)
    model_dtype: str  # dtype the base weights are loaded in
    batch_size: int
    gradient_accumulation_steps: int
    epochs: int
    learning_rate: float
    max_seq_len: int
    packing: bool
    padding_free: bool
    gradient_checkpointing: bool
    save_steps: int
    seed: int
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    target_modules: Any
    dpo_beta: float
    assistant_only_loss: bool
    train_file: str
    eval_file: Optional[str] = None
    notes: list[str] = field(default_factory=list)
    num_processes: int = 1  # training processes (ranks): one per GPU, or CPU processes over gloo
    distributed: Optional[str] = None  # ddp | fsdp | deepspeed when num_processes > 1
    deepspeed_config: Optional[str] = None

    @property
    def effective_batch_size(self) -> int:
        """Examples per optimizer step: batch x accumulation x processes."""
        return self.batch_size * self.gradient_accumulation_steps * self.num_processes

    def describe_processes(self) -> str:
        """E.g. ``2 GPUs (cuda, nccl), DDP (...)``; ``1 process`` for a single-process run."""
        if self.num_processes <= 1:
            return "1 process"
        where = (f"{self.num_processes} GPUs (cuda, nccl)" if self.device == "cuda"
                 else f"{self.num_processes} {self.device} processes (gloo)")
        how = STRATEGIES.get(self.distributed or "ddp", str(self.distributed))
        if self.distributed == "deepspeed" and self.deepspeed_config:
            how += f" ({Path(self.deepspeed_config).name})"
        return f"{where}, {how}, launched by accelerate"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """(what, value) pairs: what the run will do, for the CLI's plan table."""
        adapter = self.adapter
        if self.adapter in ("lora", "qlora"):
            tm = self.target_modules if isinstance(self.target_modules, str) else ",".join(self.target_modules)
            adapter += f" (r={self.lora_r}, alpha={self.lora_alpha}, dropout={self.lora_dropout}, modules={tm})"
            if self.adapter == "qlora":
                adapter += ", base in 4-bit NF4"
        rows = [
            ("method", self.method.upper() + (f" (beta {self.dpo_beta})" if self.method == "dpo" else "")),
            ("base model", self.base_model),
            ("adapter", adapter),
            ("device", f"{self.device}, {self.precision}" + (f" (weights {self.model_dtype})" if self.model_dtype != self.precision else "")),
            *([("processes", self.describe_processes())] if self.num_processes > 1 else []),
            ("batch", f"{self.batch_size} x {self.gradient_accumulation_steps} accumulation"
                      + (f" x {self.num_processes} processes" if self.num_processes > 1 else "")
                      + f" = {self.effective_batch_size}"),
            ("epochs", str(self.epochs)),
            ("learning rate", f"{self.learning_rate:g}"),
            ("max_seq_len", str(self.max_seq_len) + (" (packed, padding-free)" if self.packing else "")),
            ("loss on", "assistant tokens only" if self.assistant_only_loss else ("chosen vs rejected replies" if self.method == "dpo" else "all tokens")),
            ("gradient checkpointing", "on" if self.gradient_checkpointing else "off"),
            ("checkpoints", f"every {self.save_steps} steps"),
            ("seed", str(self.seed)),
        ]
        return rows

    def describe(self) -> str:
        rows = self.rows()
        width = max(len(k) for k, _ in rows)
        lines = [f"{k.ljust(width)}  {v}" for k, v in rows]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def make_plan(spec: "JobSpec", *, devices: Optional[Devices] = None) -> TrainPlan:
    """Derive the :class:`TrainPlan`; raises ConfigError for what cannot run here (QLoRA without CUDA, ...)."""
    hp, loc = spec.hyperparameters, spec.local
    devices = devices if devices is not None else Devices.probe()
    notes: list[str] = []

    device = loc.device
    if device == "auto":
        device = "cuda" if devices.cuda else ("mps" if devices.mps else "cpu")
    elif device == "cuda" and not devices.cuda:
        raise ConfigError("local.device is 'cuda' but no CUDA GPU is available here",
                          hint="Set local.device: auto (or cpu), or run on a machine with an NVIDIA GPU.")
    elif device == "mps" and not devices.mps:
        raise ConfigError("local.device is 'mps' but Apple's Metal backend is not available here",
                          hint="Set local.device: auto (or cpu).")

    if spec.adapter == "qlora":
        if device != "cuda":
            raise ConfigError(
                f"QLoRA needs a CUDA GPU (4-bit bitsandbytes); this run would use {device}",
                hint="Set adapter: lora -- same LoRA adapter, base weights kept in full/half precision.")
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise ConfigError("QLoRA needs the bitsandbytes package", hint="pip install bitsandbytes") from None

    precision = loc.precision
    if precision == "auto":
        precision = ("bf16" if devices.cuda_bf16 else "fp16") if device == "cuda" else "fp32"
    if precision == "fp16" and device == "cpu":
        raise ConfigError("precision fp16 is not supported on CPU", hint="Use precision: fp32 (or bf16) on CPU.")
    if precision == "bf16" and device == "cuda" and not devices.cuda_bf16:
        raise ConfigError(f"this GPU ({devices.cuda_name or 'cuda'}) does not support bf16",
                          hint="Use precision: fp16 (or auto).")
    if precision == "bf16" and device == "cpu":
        notes.append("bf16 autocast on CPU is slower than fp32 on most CPUs")
    # Weights: bf16 weights for bf16 runs; fp16 weights only under frozen (LoRA) bases; else fp32 master weights.
    if precision == "bf16":
        model_dtype = "bf16"
    elif precision == "fp16" and spec.adapter in ("lora", "qlora"):
        model_dtype = "fp16"
    else:
        model_dtype = "fp32"

    lr = hp.learning_rate or DEFAULT_LR[(spec.method, spec.adapter)]
    batch_size = hp.batch_size or DEFAULT_BATCH_SIZE
    packing = bool(loc.packing and spec.method == "sft")
    if loc.packing and spec.method == "dpo":
        notes.append("packing does not apply to DPO; pairs are padded per batch")
    elif packing and device != "cuda":
        # Padding-free packing pays off with varlen attention kernels on CUDA. Without them the packed row
        # gets a dense block-diagonal mask: measured on 2 CPU cores with SmolLM2-135M, ~2x slower per token
        # than padded batches of short examples, and far fewer optimizer steps per epoch.
        packing = False
        notes.append(f"packing is off on {device} (padding-free packing needs CUDA attention kernels to pay off)")
    num_processes, distributed, ds_config = _processes(spec, device, devices, notes)

    return TrainPlan(
        method=spec.method, adapter=spec.adapter, base_model=spec.model_for("local"),
        device=device, precision=precision, model_dtype=model_dtype,
        batch_size=batch_size, gradient_accumulation_steps=loc.gradient_accumulation_steps,
        epochs=hp.epochs, learning_rate=lr, max_seq_len=hp.max_seq_len,
        packing=packing, padding_free=packing, gradient_checkpointing=loc.gradient_checkpointing,
        save_steps=loc.checkpoint_every, seed=hp.seed,
        lora_r=hp.lora.r, lora_alpha=hp.lora.alpha, lora_dropout=hp.lora.dropout,
        target_modules=hp.lora.target_modules if isinstance(hp.lora.target_modules, str) else list(hp.lora.target_modules),
        dpo_beta=hp.dpo_beta, assistant_only_loss=spec.method == "sft",
        train_file=str(spec.data.train), eval_file=str(spec.data.eval) if spec.data.eval else None,
        notes=notes, num_processes=num_processes, distributed=distributed, deepspeed_config=ds_config,
    )


def _processes(spec: "JobSpec", device: str, devices: Devices, notes: list[str]) -> tuple[int, Optional[str], Optional[str]]:
    """(num_processes, distributed, deepspeed_config) for ``local.gpus`` / ``local.distributed``."""
    loc = spec.local
    n = loc.gpus
    if n <= 1:
        if loc.distributed != "ddp":
            notes.append(f"local.distributed: {loc.distributed} applies to several processes (local.gpus > 1); "
                         "this run uses one")
        return 1, None, None
    if device == "mps":
        raise ConfigError(f"local.gpus is {n}, but Apple's Metal backend runs one process",
                          hint="Set local.gpus: 1 (or pass --gpus 1); local.device: cpu runs several CPU processes.")
    if device == "cuda" and n > devices.gpus:
        have = devices.gpus
        raise ConfigError(f"local.gpus is {n}, but this machine has {have} CUDA GPU{'s' if have != 1 else ''}"
                          + (f" ({devices.cuda_name})" if devices.cuda_name else ""),
                          hint=f"Set local.gpus: {have} (or pass --gpus {have}), or run where {n} GPUs are visible "
                               "(CUDA_VISIBLE_DEVICES).")
    strategy = loc.distributed
    ds_config = None
    if strategy == "deepspeed":
        if importlib.util.find_spec("deepspeed") is None:
            raise ConfigError("distributed: deepspeed needs the deepspeed package, which is not installed",
                              hint="pip install deepspeed -- or use distributed: ddp (or fsdp), which need nothing more.")
        if device != "cuda":
            raise ConfigError(f"distributed: deepspeed needs CUDA GPUs; this run would use {device}",
                              hint="Use distributed: ddp (or fsdp) for CPU processes.")
        path = Path(loc.deepspeed_config) if loc.deepspeed_config else None
        if path is None or not path.is_file():
            raise ConfigError(f"local.deepspeed_config: {path} is not a file",
                              hint="Point it at a DeepSpeed JSON config (relative to the spec file).")
        ds_config = str(path)
    if strategy == "fsdp" and device != "cuda":
        # Verified with accelerate 1.15: it turns FSDP on only for GPU-type process groups; CPU processes
        # (MULTI_CPU) would silently run plain DDP. (torch's FSDP2 itself does run over gloo.)
        raise ConfigError(f"distributed: fsdp needs CUDA GPUs; accelerate does not shard across {device} processes",
                          hint="Use distributed: ddp to run several CPU processes; fsdp on a machine with several GPUs.")
    if strategy == "fsdp" and spec.adapter == "qlora":
        raise ConfigError("distributed: fsdp with adapter: qlora is not supported (4-bit weights cannot be sharded "
                          "the way ftc loads them)",
                          hint="Use distributed: ddp -- each GPU holds the small 4-bit base -- or adapter: lora with fsdp.")
    if device == "cpu":
        cores = os.cpu_count() or 1
        if n > cores:
            notes.append(f"{n} CPU processes on {cores} cores: they share the cores, so this is slower than one process")
    return n, strategy, ds_config


# ----------------------------------------------------------------------------- data

def _read_jsonl(path: Path) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise DataError(f"{path}: training file not found", hint="Write it with `ftc data prepare`.")
    rows = []
    with open(path, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: not valid JSON ({e.msg})", hint="Check it with `ftc data validate`.") from None
            if not isinstance(rec, dict):
                raise DataError(f"{path}:{n}: a record must be a JSON object")
            rows.append((n, rec))
    if not rows:
        raise DataError(f"{path}: no records", hint="Write it with `ftc data prepare`.")
    return rows


def _messages(path: Path, n: int, msgs: Any, what: str) -> list[dict[str, str]]:
    if not isinstance(msgs, list) or not msgs:
        raise DataError(f"{path}:{n}: '{what}' must be a non-empty list of messages")
    out = []
    for m in msgs:
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
            raise DataError(f"{path}:{n}: every message in '{what}' needs a role (system/user/assistant) and text content",
                            hint="Clean the file with `ftc data prepare`.")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def sft_rows(path: Path) -> list[dict]:
    """``{"messages": [...]}`` records, checked; each must contain an assistant message."""
    rows = []
    for n, rec in _read_jsonl(Path(path)):
        if "messages" not in rec:
            kind = "a DPO preference record" if "preferred_output" in rec else "not a ChatML record"
            raise DataError(f"{path}:{n}: {kind}; method sft needs {{\"messages\": [...]}}",
                            hint="Set method: dpo for preference data, or prepare the file with `ftc data prepare`.")
        msgs = _messages(Path(path), n, rec["messages"], "messages")
        if not any(m["role"] == "assistant" for m in msgs):
            raise DataError(f"{path}:{n}: no assistant message to learn from")
        rows.append({"messages": msgs})
    return rows


def dpo_rows(path: Path) -> list[dict]:
    """OpenAI preference records -> TRL conversational ``prompt``/``chosen``/``rejected``."""
    rows = []
    for n, rec in _read_jsonl(Path(path)):
        if "preferred_output" not in rec or "non_preferred_output" not in rec:
            raise DataError(f"{path}:{n}: not a preference record; method dpo needs "
                            "{\"input\": {\"messages\": [...]}, \"preferred_output\": [...], \"non_preferred_output\": [...]}",
                            hint="Set method: sft for ChatML data, or prepare the file with `ftc data prepare`.")
        inp = rec.get("input")
        prompt = _messages(Path(path), n, inp.get("messages") if isinstance(inp, dict) else None, "input.messages")
        chosen = _messages(Path(path), n, rec["preferred_output"], "preferred_output")
        rejected = _messages(Path(path), n, rec["non_preferred_output"], "non_preferred_output")
        rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
    return rows


def _quiet_datasets() -> None:
    try:
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


def load_dataset_for(plan: TrainPlan, path: Path):
    from datasets import Dataset

    rows = sft_rows(path) if plan.method == "sft" else dpo_rows(path)
    return Dataset.from_list(rows)


# ----------------------------------------------------------------------------- trainer

class _SaveOnStop:
    """When a callback stops training early, save a checkpoint at that step (resume is exact)."""

    def __new__(cls):
        from transformers import TrainerCallback

        class SaveOnStop(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if control.should_training_stop and state.global_step < state.max_steps:
                    control.should_save = True
                return control

        return SaveOnStop()


def _peft_config(plan: TrainPlan):
    from peft import LoraConfig

    return LoraConfig(r=plan.lora_r, lora_alpha=plan.lora_alpha, lora_dropout=plan.lora_dropout,
                      target_modules=plan.target_modules, bias="none", task_type="CAUSAL_LM")


def _quant_config(plan: TrainPlan):
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16 if plan.precision == "bf16" else torch.float16)


def _checkpointing_args(plan: TrainPlan) -> dict[str, Any]:
    # transformers 5 renamed gradient_checkpointing -> activation_checkpointing (the old name warns).
    from transformers import TrainingArguments

    kwargs = {"use_reentrant": False} if plan.gradient_checkpointing else None
    if "activation_checkpointing" in TrainingArguments.__dataclass_fields__:
        return {"activation_checkpointing": plan.gradient_checkpointing, "activation_checkpointing_kwargs": kwargs}
    return {"gradient_checkpointing": plan.gradient_checkpointing, "gradient_checkpointing_kwargs": kwargs}


def _training_args(plan: TrainPlan, output_dir: Path, has_eval: bool) -> dict[str, Any]:
    return dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=plan.batch_size,
        per_device_eval_batch_size=plan.batch_size,
        gradient_accumulation_steps=plan.gradient_accumulation_steps,
        num_train_epochs=plan.epochs,
        learning_rate=plan.learning_rate,
        max_length=plan.max_seq_len,
        seed=plan.seed,
        data_seed=plan.seed,
        save_strategy="steps",
        save_steps=plan.save_steps,
        save_total_limit=3,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=plan.save_steps if has_eval else None,
        logging_steps=1,
        logging_first_step=True,
        report_to="none",
        disable_tqdm=True,
        **_checkpointing_args(plan),
        bf16=plan.precision == "bf16",
        fp16=plan.precision == "fp16",
        use_cpu=plan.device == "cpu",
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        **_distributed_args(plan),
    )


def _distributed_args(plan: TrainPlan) -> dict[str, Any]:
    """TrainingArguments for a run of several processes (nothing for one process).

    The ranks are started by accelerate's launcher (torchrun underneath), which sets
    RANK/WORLD_SIZE/MASTER_ADDR; the Trainer's accelerator joins the process group: gloo
    for CPU processes, nccl on GPUs. FSDP and DeepSpeed are switched on here, through the
    Trainer, not through launcher flags."""
    if plan.num_processes <= 1:
        return {}
    out: dict[str, Any] = {
        "ddp_backend": "gloo" if plan.device == "cpu" else None,
        # every trainable weight (LoRA or full) takes part in each forward pass
        "ddp_find_unused_parameters": False,
    }
    if plan.distributed == "fsdp":
        out["fsdp"] = True
        out["fsdp_config"] = {"version": 2, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                              "state_dict_type": "FULL_STATE_DICT", "reshard_after_forward": True}
    elif plan.distributed == "deepspeed":
        out["deepspeed"] = plan.deepspeed_config
    return out


def _load_device(plan: TrainPlan) -> str:
    """Where this process loads the model: its own GPU when several processes share a machine."""
    if plan.num_processes > 1 and plan.device == "cuda":
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return plan.device


def build_trainer(spec: "JobSpec", *, output_dir: "str | os.PathLike", model: Any = None, tokenizer: Any = None,
                  callbacks: Sequence[Any] = (), plan: Optional[TrainPlan] = None):
    """A ready TRL ``SFTTrainer`` / ``DPOTrainer`` for ``spec`` (model loaded unless given)."""
    from .models import load_model_and_tokenizer, quiet_offline_libraries, resolve_model, training_chat_template

    quiet_offline_libraries()
    plan = plan or make_plan(spec)
    output_dir = Path(output_dir)
    _quiet_datasets()
    train_ds = load_dataset_for(plan, Path(plan.train_file))
    eval_ds = load_dataset_for(plan, Path(plan.eval_file)) if plan.eval_file else None

    if model is None or tokenizer is None:
        source = resolve_model(plan.base_model)
        qc = _quant_config(plan) if plan.adapter == "qlora" else None
        loaded_model, loaded_tok = load_model_and_tokenizer(source, dtype=plan.model_dtype, device=_load_device(plan),
                                                            quantization_config=qc)
        model = model if model is not None else loaded_model
        tokenizer = tokenizer if tokenizer is not None else loaded_tok
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"model '{plan.base_model}' has no chat template",
                          hint="Use an instruct/chat model (its tokenizer defines how messages are laid out).")

    original_template = tokenizer.chat_template
    if plan.method == "sft":
        tpl = training_chat_template(tokenizer)
        if tpl is None:
            plan.assistant_only_loss = False
            plan.notes.append("the chat template cannot mark assistant replies; loss is on all tokens")
            log.warning("chat template of %s has no {%% generation %%} markers and no known equivalent; "
                        "training on all tokens", plan.base_model)
        else:
            tokenizer.chat_template = tpl
    if plan.adapter == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=plan.gradient_checkpointing)

    peft_config = _peft_config(plan) if plan.adapter in ("lora", "qlora") else None
    cbs = [*callbacks, _SaveOnStop()]
    args = _training_args(plan, output_dir, eval_ds is not None)
    if plan.method == "sft":
        from trl import SFTConfig, SFTTrainer

        config = SFTConfig(**args, packing=plan.packing, packing_strategy="bfd",
                           assistant_only_loss=plan.assistant_only_loss)
        trainer = SFTTrainer(model=model, args=config, train_dataset=train_ds, eval_dataset=eval_ds,
                             processing_class=tokenizer, peft_config=peft_config, callbacks=cbs)
    else:
        from trl import DPOConfig, DPOTrainer

        ref_model = None
        if peft_config is None:  # full DPO: a frozen copy of the base is the reference
            from .models import load_model_and_tokenizer as _load

            ref_model, _ = _load(resolve_model(plan.base_model), dtype=plan.model_dtype, device=_load_device(plan))
        config = DPOConfig(**args, beta=plan.dpo_beta)
        trainer = DPOTrainer(model=model, ref_model=ref_model, args=config, train_dataset=train_ds,
                             eval_dataset=eval_ds, processing_class=tokenizer, peft_config=peft_config,
                             callbacks=cbs)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # (the tracked job renders progress itself)
    trainer.ftc_plan = plan
    trainer.ftc_original_chat_template = original_template
    return trainer


# ----------------------------------------------------------------------------- train

@dataclass
class TrainResult:
    output_dir: Path
    model_dir: Optional[Path]  # final adapter / model (None if stopped before the end)
    merged_dir: Optional[Path]
    completed: bool
    steps: int
    max_steps: int
    final_loss: Optional[float]  # last logged training loss
    train_loss: Optional[float]  # mean training loss over the run
    eval_loss: Optional[float]  # on data.eval at the end (None without eval data)
    tokens_seen: int  # non-padding input tokens, whole run (including before a resume)
    tokens_per_s: float  # this session
    wall_s: float  # this session
    last_checkpoint: Optional[Path]
    resumed_from: Optional[Path]
    losses: list[tuple[int, float]] = field(default_factory=list)
    plan: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("output_dir", "model_dir", "merged_dir", "last_checkpoint", "resumed_from"):
            d[k] = str(d[k]) if d[k] is not None else None
        return d


def is_oom(exc: BaseException) -> bool:
    name = type(exc).__name__
    text = str(exc)
    return (name == "OutOfMemoryError" or "CUDA out of memory" in text or "MPS backend out of memory" in text
            or "CUBLAS_STATUS_ALLOC_FAILED" in text)


def oom_error(plan: TrainPlan) -> FtcError:
    """The message for an out-of-memory during training, with concrete settings to change."""
    tips = []
    if plan.batch_size > 1:
        half = max(1, plan.batch_size // 2)
        tips.append(f"hyperparameters.batch_size: {half} with local.gradient_accumulation_steps: "
                    f"{plan.gradient_accumulation_steps * (plan.batch_size // half)} (same effective batch)")
    if not plan.gradient_checkpointing:
        tips.append("local.gradient_checkpointing: true")
    if plan.adapter == "full":
        tips.append("adapter: lora (trains ~1% of the weights)")
    elif plan.adapter == "lora" and plan.device == "cuda":
        tips.append("adapter: qlora (4-bit base weights)")
    if plan.max_seq_len > 256:
        tips.append(f"hyperparameters.max_seq_len: {plan.max_seq_len // 2}")
    return FtcError(f"out of {plan.device} memory while training {plan.base_model} "
                    f"(batch {plan.batch_size}, max_seq_len {plan.max_seq_len}, {plan.adapter})",
                    hint="Try: " + "; ".join(tips) if tips else "Use a smaller model.")


def _last_checkpoint(output_dir: Path) -> Optional[Path]:
    from transformers.trainer_utils import get_last_checkpoint

    if not output_dir.is_dir():
        return None
    last = get_last_checkpoint(str(output_dir))
    return Path(last) if last else None


def _atomic_save(target: Path, save) -> None:
    import shutil
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        save(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def train(spec: "JobSpec", *, output_dir: "str | os.PathLike | None" = None, resume: bool = False,
          merge: bool = False, callbacks: Iterable[Any] = (), plan: Optional[TrainPlan] = None,
          model: Any = None, tokenizer: Any = None) -> TrainResult:
    """Run the fine-tune; ``resume=True`` continues from the last checkpoint in ``output_dir``."""
    if output_dir is None:
        output_dir = spec.local.output_dir
    if output_dir is None:
        raise ConfigError("no output directory for local training", hint="Set local.output_dir in the spec.")
    output_dir = Path(output_dir)
    plan = plan or make_plan(spec)
    output_dir.mkdir(parents=True, exist_ok=True)
    resume_from = _last_checkpoint(output_dir) if resume else None
    if resume and resume_from is None:
        log.info("no checkpoint in %s; starting from the beginning", output_dir)

    trainer = build_trainer(spec, output_dir=output_dir, model=model, tokenizer=tokenizer,
                            callbacks=list(callbacks), plan=plan)
    t0 = time.monotonic()
    try:
        out = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except Exception as e:
        if is_oom(e):
            raise oom_error(plan) from e
        raise
    wall = time.monotonic() - t0
    state = trainer.state
    completed = state.global_step >= state.max_steps
    losses = [(int(h["step"]), float(h["loss"])) for h in state.log_history if "loss" in h]
    tokens = int(state.num_input_tokens_seen or 0)
    session_tokens = tokens - int(getattr(trainer, "_initial_num_input_tokens_seen", 0) or 0)

    model_dir = merged_dir = None
    eval_loss = None
    tok = trainer.processing_class
    if completed and trainer.eval_dataset is not None:
        eval_loss = trainer.evaluate().get("eval_loss")
    if completed:
        tok.chat_template = trainer.ftc_original_chat_template  # ship the model's own template
        meta = {"base_model": plan.base_model, "method": plan.method, "adapter": plan.adapter,
                "steps": state.global_step, "plan": plan.to_dict()}

        def save_final(d: Path) -> None:
            trainer.model.save_pretrained(d)
            tok.save_pretrained(d)
            (d / META_FILE).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")

        model_dir = output_dir / FINAL_DIR
        if plan.num_processes > 1:
            _save_final_distributed(trainer, model_dir, tok, meta)
        else:
            _atomic_save(model_dir, save_final)
        if merge and plan.adapter in ("lora", "qlora"):
            merged_dir = output_dir / MERGED_DIR
            if trainer.accelerator.is_main_process:
                _atomic_save(merged_dir, lambda d: _save_merged(trainer, plan, model_dir, d, tok, meta))
            if plan.num_processes > 1:
                trainer.accelerator.wait_for_everyone()
    last = _last_checkpoint(output_dir)
    final_loss = losses[-1][1] if losses else None
    train_loss = out.training_loss if out is not None and not math.isnan(out.training_loss) else None
    return TrainResult(
        output_dir=output_dir, model_dir=model_dir, merged_dir=merged_dir, completed=completed,
        steps=state.global_step, max_steps=state.max_steps, final_loss=final_loss, train_loss=train_loss,
        eval_loss=eval_loss,
        tokens_seen=tokens, tokens_per_s=session_tokens / wall if wall > 0 else 0.0, wall_s=wall,
        last_checkpoint=last, resumed_from=resume_from, losses=losses, plan=plan.to_dict(),
    )


def _save_final_distributed(trainer: Any, target: Path, tok: Any, meta: dict) -> None:
    """``final/`` from several processes: every rank takes part in ``save_model`` (FSDP and
    DeepSpeed gather the sharded weights), the main process writes and renames it."""
    import shutil

    acc = trainer.accelerator
    tmp = target.parent / f".{target.name}.partial"
    if acc.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    acc.wait_for_everyone()
    trainer.save_model(str(tmp))
    if acc.is_main_process:
        tok.save_pretrained(tmp)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
        (tmp / "training_args.bin").unlink(missing_ok=True)
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)
    acc.wait_for_everyone()


def _save_merged(trainer: Any, plan: TrainPlan, adapter_dir: Path, out: Path, tok: Any, meta: dict) -> None:
    if plan.adapter == "qlora" or plan.num_processes > 1:
        # QLoRA: merge into an unquantised copy of the base, not the 4-bit one. Several processes: the
        # trained model may be sharded (FSDP/DeepSpeed); the main process merges the saved adapter.
        from peft import PeftModel

        from .models import load_model_and_tokenizer, resolve_model

        base, _ = load_model_and_tokenizer(resolve_model(plan.base_model), dtype=plan.model_dtype, device=_load_device(plan))
        merged = PeftModel.from_pretrained(base, str(adapter_dir)).merge_and_unload()
    else:
        merged = trainer.model.merge_and_unload()
    merged.save_pretrained(out)
    tok.save_pretrained(out)
    (out / META_FILE).write_text(json.dumps({**meta, "merged": True}, indent=2, default=str), encoding="utf-8")
