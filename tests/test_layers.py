"""The layer rules, read from the source with ``ast`` (imports inside functions count too).

* The core (``ftclient``, its CLI included) imports no backend: neither
  ``ftclient.providers`` nor ``ftclient.local_backend``. It reaches backends only through the
  entry-point registry (``ftclient.backends.get_backend``).
* A backend imports neither another backend nor the CLI.
* Every package of the source tree is in the wheel (``[tool.setuptools] packages``), and so is
  every data file (``[tool.setuptools.package-data]``: the core's resources, each backend's
  price catalogue), so a non-editable install has all of it.

The backends live outside the ``ftclient/`` folder (``providers/``, ``local_backend/``) and
are installed under ``ftclient.`` by ``package-dir``; import-linter's graph builder walks
only the root package's own folder, so these rules are read here from the same mapping.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    pytest.skip("tomllib needs Python 3.11", allow_module_level=True)

CORE = "ftclient"
BACKENDS = ("ftclient.providers", "ftclient.local_backend")
CLI = "ftclient.cli"


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _package_dirs() -> dict[str, Path]:
    """{package name: its folder}, from ``package-dir``."""
    mapping = _pyproject()["tool"]["setuptools"]["package-dir"]
    return {pkg: ROOT / folder for pkg, folder in mapping.items()}


def _modules() -> dict[str, Path]:
    """{dotted module name: file} of every module the project installs."""
    out: dict[str, Path] = {}
    for pkg, folder in _package_dirs().items():
        for f in folder.rglob("*.py"):
            if "__pycache__" in f.parts:
                continue
            parts = [p for p in f.relative_to(folder).with_suffix("").parts if p != "__init__"]
            out[".".join([pkg, *parts])] = f
    return out


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement in the file, at any depth."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    here = module.split(".") if is_pkg else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            found += [(f"{target}.{a.name}", node.lineno) for a in node.names]  # `from pkg import module`
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _violations(rule) -> list[str]:
    bad = []
    for module, path in sorted(_modules().items()):
        for target, line in _imports(module, path):
            why = rule(module, target)
            if why:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {target} ({why})")
    return sorted(set(bad))


def test_the_module_map_sees_every_layer():
    mods = _modules()
    assert "ftclient.cli.main" in mods and "ftclient.backends" in mods
    assert "ftclient.providers.openai" in mods or "ftclient.providers.openai.backend" in mods
    assert "ftclient.local_backend.backend" in mods
    # a relative import inside a function is read (the parser is not fooled by nesting)
    src = ROOT / "ftclient" / "cost" / "local.py"
    assert any(t == "ftclient.backends" for t, _ in _imports("ftclient.cost.local", src))


def test_the_core_imports_no_backend():
    def rule(module: str, target: str) -> str | None:
        if any(_within(module, b) for b in BACKENDS):
            return None
        if any(_within(target, b) for b in BACKENDS):
            return "the core reaches backends only through ftclient.backends.get_backend"
        return None

    assert _violations(rule) == []


def test_backends_import_neither_each_other_nor_the_cli():
    def rule(module: str, target: str) -> str | None:
        mine = next((b for b in BACKENDS if _within(module, b)), None)
        if mine is None:
            return None
        if _within(target, CLI):
            return "a backend does not import the CLI"
        other = next((b for b in BACKENDS if b != mine and _within(target, b)), None)
        return f"a backend does not import another ({other})" if other else None

    assert _violations(rule) == []


def test_every_package_is_in_the_wheel():
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    packages = {m for m, p in _modules().items() if p.name == "__init__.py"}
    assert packages - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


def _folder_of(package: str) -> Path:
    """The source folder of a dotted package, through ``package-dir``."""
    mapping = _pyproject()["tool"]["setuptools"]["package-dir"]
    base = max((p for p in mapping if _within(package, p)), key=len)
    rest = package[len(base):].lstrip(".")
    return ROOT / mapping[base] / Path(*rest.split(".")) if rest else ROOT / mapping[base]


def _package_data() -> set[Path]:
    """Every file ``[tool.setuptools.package-data]`` puts in the wheel (globbed as setuptools does)."""
    cfg = _pyproject()["tool"]["setuptools"]
    data = cfg.get("package-data", {})
    out: set[Path] = set()
    for pkg in cfg["packages"]:
        for pattern in data.get(pkg, []) + data.get("*", []):
            out |= {p for p in _folder_of(pkg).glob(pattern) if p.is_file()}
    return out


def test_every_data_file_is_in_the_wheel():
    files = {f for folder in _package_dirs().values() for f in folder.rglob("*")
             if f.is_file() and "__pycache__" not in f.parts and f.suffix not in (".py", ".pyc")}
    missing = sorted(str(f.relative_to(ROOT)) for f in files - _package_data())
    assert missing == [], "add these to [tool.setuptools.package-data] in pyproject.toml"


def test_every_backend_price_catalogue_is_package_data():
    """The file a backend's class names in ``price_catalogue`` lies beside the module its entry
    point names, and the wheel has it."""
    import importlib

    declared = _package_data()
    shipped = {}
    for name, value in _pyproject()["project"]["entry-points"]["ftclient.backends"].items():
        module, _, attr = value.partition(":")
        catalogue = getattr(getattr(importlib.import_module(module), attr), "price_catalogue", None)
        if catalogue:
            src = _modules()[module]
            shipped[name] = src.parent / catalogue
    assert {"openai", "together"} <= set(shipped)
    for name, path in shipped.items():
        assert path.is_file(), f"{name}: {path} is not there"
        assert path in declared, f"{name}: add {path.relative_to(ROOT)} to [tool.setuptools.package-data]"
