"""The package surface: `import rise` stays light, the public names resolve, one version source."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import rise

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "accelerate", "datasets", "peft", "numpy", "yaml", "ray")


def _modules_after(code: str) -> set[str]:
    """Top-level modules a fresh interpreter holds after running `code`."""
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"})
    return {m.split(".")[0] for m in out.stdout.split()}


@pytest.mark.parametrize("code", ["import rise", "import rise; rise.__version__; dir(rise)",
                                  "import rise; rise.get_task('arith'); rise.InputError",
                                  "import rise.run, rise.ray_exec"])  # the configs hold ray.* keys, not ray
def test_import_rise_loads_no_heavy_library(code):
    loaded = _modules_after(code)
    assert "rise" in loaded
    assert not loaded & set(HEAVY), f"{code!r} imported {sorted(loaded & set(HEAVY))}"


@pytest.mark.parametrize("name", rise.__all__)
def test_every_public_name_resolves(name):
    assert getattr(rise, name) is not None
    assert name in dir(rise)


@pytest.mark.parametrize("name, module, attr", [
    ("run_pipeline", "rise.run", "run"),
    ("convert_rollouts", "rise.convert", "convert"),
    ("CollectConfig", "rise.collect", "CollectConfig"),
])
def test_public_names_are_the_modules_objects(name, module, attr):
    import importlib

    assert getattr(rise, name) is getattr(importlib.import_module(module), attr)


def test_submodules_stay_modules_after_the_lazy_names_load():
    import importlib
    import types

    rise.convert_rollouts, rise.run_pipeline  # noqa: B018 - loads rise.convert and rise.run
    for name in ("convert", "run"):
        assert isinstance(getattr(rise, name), types.ModuleType)
        assert importlib.import_module(f"rise.{name}") is getattr(rise, name)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rise.nope  # noqa: B018 - the access is the test


def test_version_comes_from_pyproject_only():
    """pyproject.toml holds the one version; the installed metadata carries it, or the source
    tree reports an explicit unknown rather than a second, stale copy."""
    from importlib.metadata import PackageNotFoundError, version

    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    declared = next(line.split('"')[1] for line in text.splitlines() if line.startswith("version ="))
    try:
        installed = version("recursive-introspection")
    except PackageNotFoundError:
        assert rise.__version__ == "0+unknown"
    else:
        assert rise.__version__ == installed == declared
    assert declared not in (ROOT / "src" / "rise" / "__init__.py").read_text(encoding="utf-8")


def _modules() -> list[str]:
    src = ROOT / "src"
    names = []
    for path in sorted((src / "rise").rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.parametrize("module", _modules())
def test_design_doc_lists_every_module(module):
    """docs/design.md's module table has one row per module under src/rise."""
    table = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    assert f"| `{module}` |" in table, f"{module} is missing from the module table of docs/design.md"
