"""``ftc export``: a fine-tuned model as a folder other tools load."""

from __future__ import annotations

from pathlib import Path

import click

from . import output


@click.command()
@click.argument("model_or_job")
@click.option("--format", "fmt", required=True, metavar="FORMAT",
              help="adapter (the PEFT adapter, tokenizer, model card), merged (the adapter merged into the "
                   "base weights: a transformers checkpoint that loads without PEFT), gguf (one .gguf file; "
                   "--quant f16, bf16, q8_0, q5_1, q5_0, q4_1 or q4_0), ollama (the .gguf file with a Modelfile and the `ollama create` line) "
                   "or vllm (a folder and the `vllm serve` command line that serves it).")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A new (or empty) folder to write; it appears whole or not at all.")
@click.option("--quant", default=None, help="gguf and ollama: f16 (default), bf16, q8_0, q5_1, q5_0, q4_1 or q4_0.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def export(model_or_job, fmt, out, quant, as_json) -> None:
    """Write the model of MODEL_OR_JOB (an ftc job id, local:PATH or a model folder) as FORMAT.

    \b
      ftc export ftc-20261206-748fc6 --format merged --out my-model/
      ftc export ftc-20261206-748fc6 --format adapter --out my-adapter/
      ftc export ftc-20261206-748fc6 --format ollama --out my-ollama/
    """
    from ..export import export_model

    with output.progress(enabled=not as_json) as bar:
        task = bar.add_task(f"exporting {model_or_job} as {fmt}", total=None)

        def said(msg: str, frac: float | None) -> None:
            bar.update(task, description=msg, completed=None if frac is None else frac * 100,
                       total=None if frac is None else 100)

        res = export_model(model_or_job, fmt, out, quant=quant, progress=said)
    if as_json:
        output.emit_json(res)
        return
    size = res.get("bytes") or 0
    output.out.print(f"wrote {res['format']} to {res['out']} ({size / 2**20:,.1f} MiB: {', '.join(res['files'])})",
                     markup=False, highlight=False)
    for warning in res.get("warnings") or []:
        output.err.print(f"warning: {warning}", markup=False, highlight=False)
    if res.get("command"):
        what = "make it an Ollama model" if res["format"] == "ollama" else "serve it"
        output.out.print(f"{what}: {res['command']}  (from {res['out']}, or run its script there)",
                         markup=False, highlight=False)
