"""``ftc serve``: a fine-tuned model on this machine behind an OpenAI-compatible API, until Ctrl-C."""

from __future__ import annotations

import json
import shlex
import signal
import sys
from typing import Any

import click

from . import output


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the server as Ctrl-C does


def _examples(url: str, model: str) -> list[str]:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 64})
    return [
        f"curl -s {url}/chat/completions -H 'Content-Type: application/json' -d {shlex.quote(body)}",
        f"ftc eval {shlex.quote(f'openai-compatible:{url}#{model}')} --data eval.jsonl",
        (f"python -c 'import openai; c = openai.OpenAI(base_url=\"{url}\", api_key=\"unused\"); "
         f"print(c.chat.completions.create(model=\"{model}\", "
         "messages=[{\"role\": \"user\", \"content\": \"hello\"}]).choices[0].message.content)'"),
    ]


@click.command()
@click.argument("model_or_job")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="The port to listen on; 0 takes any free port (the URL printed says which).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on. Anything but loopback exposes the model to the network "
                   "(the server checks no API key).")
@click.option("--name", default=None,
              help="The model name clients send (default: the job's id, else the model folder's name).")
@click.option("--startup-timeout", "startup_timeout", type=click.FloatRange(min=1), default=600.0,
              show_default=True, help="Seconds to wait for the server to load the model and answer.")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON line (url, model, pid, port...) once the server answers.")
def serve(model_or_job, port, host, name, startup_timeout, as_json) -> None:
    """Serve MODEL_OR_JOB (an ftc job id, local:PATH or a model folder) over an OpenAI-compatible
    API (/v1/chat/completions, /v1/models) on this machine, until Ctrl-C.

    \b
      ftc serve ftc-20261206-748fc6
      ftc serve local:./out/final --port 0 --json
      ftc eval openai-compatible:http://127.0.0.1:8000/v1#ftc-20261206-748fc6 --data eval.jsonl
    """
    from ..errors import FtcError
    from ..serve import is_loopback, serve_model

    if not is_loopback(host):
        output.warn(f"--host {host} exposes the model to the network: anyone who can reach this machine can use it "
                    "(the server checks no API key). The default, 127.0.0.1, serves this machine only.")
    before = signal.signal(signal.SIGTERM, _interrupt)
    srv = None
    try:
        with output.progress(enabled=not as_json) as bar:
            task = bar.add_task(f"serving {model_or_job}", total=None)

            def said(msg: str, frac: float | None) -> None:
                bar.update(task, description=msg, completed=None if frac is None else frac * 100,
                           total=None if frac is None else 100)

            srv = serve_model(model_or_job, host=host, port=port, name=name, progress=said,
                              startup_timeout_s=startup_timeout)
        info = srv.info()
        if as_json:
            sys.stdout.write(json.dumps(info, default=str) + "\n")
        else:
            _tell(info)
        sys.stdout.flush()
        try:
            while srv.wait(1.0) is None:
                pass
        except KeyboardInterrupt:
            srv.stop()
            output.info(f"stopped serving {info['model']} at {info['url']}")
            return
        tail = srv.log_tail() if hasattr(srv, "log_tail") else ""
        raise FtcError(f"the server of {info['model']} stopped by itself (exit code {srv.wait(0)})"
                       + (f"; the last lines of its log:\n{tail}" if tail else ""),
                       hint="Start it again; run with --debug for ftc's own traceback.")
    finally:
        if srv is not None:
            srv.stop()
        signal.signal(signal.SIGTERM, before)


def _tell(info: dict) -> None:
    url, model = info["url"], info["model"]
    say = output.out.print
    say(f"serving {model} at {url} ({info.get('engine', 'server')}, pid {info['pid']}); Ctrl-C stops it",
        markup=False, highlight=False)
    say(f"  model name (what clients send): {model}", markup=False, highlight=False)
    say("  try it:", markup=False, highlight=False)
    for line in _examples(url, model):
        say(f"    {line}", markup=False, highlight=False, soft_wrap=True)
    if info.get("merged_from"):
        how = "reused the merged copy" if info.get("cache") == "reused" else "merged once into"
        output.info(f"adapter {info['merged_from']}: {how} {info.get('served')}")
    if info.get("log"):
        output.info(f"server log: {info['log']}")
