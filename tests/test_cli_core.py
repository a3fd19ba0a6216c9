"""The CLI's shell: start-up imports, exit codes, error rendering."""

import json
import subprocess
import sys

import pytest

HEAVY = ["torch", "transformers", "trl", "peft", "accelerate", "openai", "together", "tokenizers",
         "matplotlib", "datasets", "numpy"]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_importing_the_cli_pulls_no_heavy_module():
    mods = _modules_after("import ftclient, ftclient.cli.main")
    assert not [m for m in HEAVY if m in mods]


def test_help_imports_no_command_module_or_heavy_module():
    mods = _modules_after(
        "from ftclient.cli.main import cli\n"
        "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass"
    )
    assert not [m for m in HEAVY if m in mods]
    assert "ftclient.cli.cost_cmd" not in mods and "pydantic" not in mods


@pytest.mark.parametrize("module", ["ftclient.cli.spec_cmd", "ftclient.cli.data_cmd", "ftclient.cli.cost_cmd",
                                    "ftclient.cli.prepare_cmd", "ftclient.cli.validate_cmd", "ftclient.cli.demo_cmd",
                                    "ftclient.cli.keys_cmd", "ftclient.cli.train_cmd", "ftclient.cli.jobs_cmd",
                                    "ftclient.cli.chat_cmd", "ftclient.jobs", "ftclient.backends", "ftclient.store",
                                    "ftclient.retry", "ftclient.local_backend.backend"])
def test_command_modules_import_no_heavy_module(module):
    mods = _modules_after(f"import {module}")
    assert not [m for m in HEAVY if m in mods], module


def test_version_and_unknown_command(ftc_proc):
    r = ftc_proc("--version")
    assert r.code == 0 and "0.1.0" in r.out
    r = ftc_proc("dta")
    assert r.code == 2 and "Did you mean 'data'" in r.err and "Traceback" not in r.err


def test_user_error_has_no_traceback_unless_debug(ftc_proc, tmp_path):
    r = ftc_proc("spec", "check", tmp_path / "missing.yaml")
    assert r.code == 2 and "no such file" in r.err and "Traceback" not in r.err
    r = ftc_proc("--debug", "spec", "check", tmp_path / "missing.yaml")
    assert r.code != 0 and "Traceback" in r.err


def test_python_api_mirrors_the_cli():
    import ftclient

    for name in ["load_spec", "JobSpec", "prepare", "validate_file", "count_tokens", "estimate_cost",
                 "compare_costs", "load_catalogue", "submit", "watch", "resume", "chat", "get_backend", "Store"]:
        assert callable(getattr(ftclient, name)), name
    with pytest.raises(AttributeError):
        ftclient.nope  # noqa: B018
