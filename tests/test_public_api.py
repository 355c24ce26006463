"""The flat public API resolves, and importing the package stays light."""

import subprocess
import sys
from pathlib import Path

import pytest

import disco_inspect


def test_every_exported_name_resolves():
    for name in disco_inspect.__all__:
        assert getattr(disco_inspect, name) is not None, name


def test_import_is_lazy():
    code = "import sys, disco_inspect; print(any(m.startswith(('diffusers', 'transformers', 'timm')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_audit_is_the_function_even_after_its_module_loaded():
    code = (
        "from disco_inspect import AuditSettings, audit, AuditResult; import disco_inspect as di; "
        "print(callable(audit) and di.audit is audit and not hasattr(audit, '__path__'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_invert_and_edit_are_functions():
    code = (
        "import disco_inspect as di; import disco_inspect.editing.edit; "
        "print(callable(di.invert) and callable(di.edit) and di.edit.__module__ == 'disco_inspect.editing.edit')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_the_top_level_is_small_and_has_no_former_names():
    assert len(disco_inspect.__all__) <= 18
    assert not hasattr(disco_inspect, "generate")  # lives in disco_inspect.engine.sampling only
    with pytest.raises(ImportError):
        from disco_inspect import generate  # noqa: F401


def test_every_subpackage_lists_what_it_offers():
    import importlib

    for pkg in ("models", "engine", "editing", "analysis", "report", "world"):
        module = importlib.import_module(f"disco_inspect.{pkg}")
        assert module.__all__, pkg
        for name in module.__all__:
            assert getattr(module, name) is not None, f"{pkg}.{name}"


@pytest.mark.parametrize(
    "old",
    [
        "disco_inspect.engine.run",
        "disco_inspect.engine.result",
        "disco_inspect.engine.scoring",
        "disco_inspect.world.classifiers",
        "disco_inspect.world.factors",
    ],
)
def test_former_module_names_are_gone(old):
    import importlib

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def test_no_two_modules_share_a_name_across_the_layers():
    """Names explain themselves: no module or package name is used twice (``__init__``/``__main__`` aside)."""
    root = Path(disco_inspect.__file__).parent
    seen: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        if path.stem.startswith("__"):
            continue
        for name, where in ((path.stem, path), (path.parent.name, path.parent)):
            if where == root or seen.get(name) == where:
                continue
            assert name not in seen, (
                f"{where.relative_to(root)} and {seen[name].relative_to(root)} share a name"
            )
            seen[name] = where
