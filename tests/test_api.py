"""The Python API as ``ftclient`` exports it: every public name stays what it is whatever
was imported before, is visible to ``dir``/``help`` and to type checkers, and the errors a
caller catches are among them."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import pkgutil
import pydoc
import subprocess
import sys
from pathlib import Path

import ftclient
from ftclient.errors import FtcError

INIT = Path(ftclient.__file__)
PUBLIC = [n for n in ftclient.__all__ if n != "__version__"]

# Imports every submodule of ftclient (the backends' packages included), before and after
# touching the public names, and reports what each public name then is.
_PROBE = r"""
import importlib, json, pkgutil, sys, types
import ftclient

order = sys.argv[1]
names = [n for n in ftclient.__all__ if n != "__version__"]

def import_all():
    seen = []
    for pkg in ("ftclient", "ftclient.providers", "ftclient.local_backend"):
        mod = importlib.import_module(pkg)
        seen.append(pkg)
        for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
            if info.name.rsplit(".", 1)[-1] == "__main__":
                continue  # runs the CLI
            importlib.import_module(info.name)
            seen.append(info.name)
    return seen

if order == "names-first":
    for n in names:
        getattr(ftclient, n)
seen = import_all()
out = {}
for n in names:
    v = getattr(ftclient, n)
    from_import = {}
    exec(f"from ftclient import {n} as x", {}, from_import)
    home = importlib.import_module(ftclient._API[n])
    out[n] = {"module": isinstance(v, types.ModuleType), "callable": callable(v),
              "same": v is getattr(home, n) and from_import["x"] is v,
              "kind": "class" if isinstance(v, type) else type(v).__name__}
print(json.dumps({"names": out, "submodules": seen}))
"""


def _probe(order: str) -> dict:
    r = subprocess.run([sys.executable, "-c", _PROBE, order], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_no_public_name_is_replaced_by_a_submodule():
    for order in ("modules-first", "names-first"):
        res = _probe(order)
        subs = res["submodules"]
        assert "ftclient.evaluation" in subs and "ftclient.local_backend.models" in subs and "ftclient.cli.main" in subs
        # No submodule of the package is named like a public name ...
        children = {s.split(".")[1] for s in subs if s.count(".") >= 1}
        assert not children & set(PUBLIC), children & set(PUBLIC)
        # ... and after importing all of them each name is still the function or class it was.
        for name, got in res["names"].items():
            assert not got["module"], (order, name)
            assert got["callable"] and got["same"], (order, name, got)
            assert got["kind"] in ("class", "function"), (order, name, got)


def test_evaluate_after_importing_its_module_is_the_function():
    code = ("import ftclient.evaluation, ftclient.cli.eval_cmd\n"
            "from ftclient import evaluate\n"
            "import inspect; print(inspect.isfunction(evaluate), evaluate.__module__)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "ftclient.evaluation"]


def test_dir_and_help_show_the_public_names():
    names = dir(ftclient)
    assert set(PUBLIC) <= set(names) and "__version__" in names
    assert "_API" not in names and "TYPE_CHECKING" not in names  # helpers of __init__ stay out
    text = pydoc.render_doc(ftclient, renderer=pydoc.plaintext)
    for name in PUBLIC:
        assert name in text, name
    # help() documents the functions and classes themselves, not only their names
    assert "evaluate(" in text and "build_report(" in text and "class FtcError" in text


def test_all_matches_the_lazy_table_and_the_type_checking_imports():
    """What a type checker reads (the literal ``__all__`` and the ``TYPE_CHECKING`` imports)
    names exactly the lazily imported names, from the same modules."""
    tree = ast.parse(INIT.read_text(encoding="utf-8"))
    literal_all = None
    typed: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            literal_all = ast.literal_eval(node.value)
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.level == 1, ast.dump(imp)
                for alias in imp.names:
                    assert alias.asname == alias.name, f"{alias.name}: re-export it as `import {alias.name} as {alias.name}`"
                    typed[alias.name] = f"ftclient.{imp.module}"
    assert literal_all == ftclient.__all__
    assert sorted(PUBLIC) == sorted(ftclient._API)
    assert typed == ftclient._API


def test_every_public_name_resolves_to_what_its_module_defines():
    for name in PUBLIC:
        value = getattr(ftclient, name)
        assert value is getattr(importlib.import_module(ftclient._API[name]), name)
        assert inspect.isclass(value) or inspect.isfunction(value), name
    ns: dict = {}
    exec("from ftclient import *", ns)
    assert set(PUBLIC) <= set(ns)


def test_the_errors_a_caller_catches_are_exported():
    from ftclient import evaluation, jobs

    exported = {n: getattr(ftclient, n) for n in PUBLIC if isinstance(getattr(ftclient, n), type)
                and issubclass(getattr(ftclient, n), BaseException)}
    assert {"FtcError", "DataError", "UsageError", "SpecError", "ConfigError", "BudgetExceeded", "Interrupted",
            "Declined", "ProviderError", "AuthError", "RequestRejected", "RetryExhausted", "AmbiguousResult",
            "StoreError", "DuplicateSubmission"} <= set(exported)
    # Both Ctrl-C errors (submit/watch, evaluate) are caught as ftclient.Interrupted, exit 130.
    for cls in (jobs.Interrupted, evaluation.Interrupted):
        assert issubclass(cls, ftclient.Interrupted) and cls.exit_code == 130
    # Every public FtcError subclass of the core is exported, or is caught by an exported class
    # of the same name.
    for info in pkgutil.walk_packages(ftclient.__path__, "ftclient."):
        if info.name.endswith("__main__") or ".cli" in info.name:
            continue
        mod = importlib.import_module(info.name)
        for name, obj in vars(mod).items():
            if (inspect.isclass(obj) and issubclass(obj, FtcError) and obj.__module__ == mod.__name__
                    and not name.startswith("_")):
                assert name in exported and issubclass(obj, exported[name]), f"{info.name}.{name} is not exported"


def _summary(job_id: str) -> dict:
    """An eval summary of a fine-tuned hosted model, shaped as ``ftclient.evaluate`` returns it."""
    return {
        "run_id": "eval-ft", "model_ref": "openai:ft:gpt-4.1-mini-2025-04-14:acme::x1", "backend": "openai",
        "model": "ft:gpt-4.1-mini-2025-04-14:acme::x1", "job_id": job_id, "base_model": "gpt-4.1-mini-2025-04-14",
        "fine_tuned": True, "data": "data/eval.jsonl", "data_sha256": "ab" * 32, "examples": 20, "completed": 20,
        "failed": 0, "metric": "label", "metrics": {"score": 0.9, "accuracy": 0.9},
        "latency_s": {"p50": 0.4, "p95": 0.9, "mean": 0.6},
        "tokens": {"input": 1280, "output": 120, "input_per_query": 64.0, "output_per_query": 6.0},
        "cost_per_1k_queries_usd": 0.1, "cost_basis": "measured tokens x catalogue", "throughput_qps": 5.0,
        "wall_s": 4.0, "started_at": "2026-11-22T10:00:00+00:00", "finished_at": "2026-11-22T10:00:04+00:00",
        "notes": [],
    }


def test_build_report_reads_the_jobs_from_the_store(tmp_path, monkeypatch):
    """``build_report(runs)`` without ``jobs=`` finds each run's job in the job store."""
    from ftclient import Store, build_report

    home = tmp_path / "home"
    monkeypatch.setenv("FTC_HOME", str(home))
    # No store yet: no job is known, and none is created by looking.
    r = build_report([_summary("ftc-20261122-aaaaaa")], queries_per_month=1_000)
    assert "no_job" in r.options[0].caveat_kinds() and not (home / "ftc.db").exists()

    with Store() as st:
        job = st.new_job("openai", {"name": "t"}, model="gpt-4.1-mini-2025-04-14", estimate_usd=1.5)
        st.update_state(job.id, "succeeded", cost_so_far_usd=1.75)
    o = build_report([_summary(job.id)], queries_per_month=1_000).options[0]
    assert o.training_cost_usd == 1.75 and "no_job" not in o.caveat_kinds() and o.job_state == "succeeded"
    # jobs= still overrides the store ({} looks nothing up); store= names another store.
    assert "no_job" in build_report([_summary(job.id)], jobs={}, queries_per_month=1_000).options[0].caveat_kinds()
    with Store(tmp_path / "other.db") as other:
        o2 = build_report([_summary(job.id)], store=other, queries_per_month=1_000).options[0]
    assert o2.training_cost_usd is None and "no_job" in o2.caveat_kinds()
