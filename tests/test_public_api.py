"""The flat public API resolves, and importing the package stays light."""
import subprocess
import sys

import disco_inspect


def test_every_exported_name_resolves():
    for name in disco_inspect.__all__:
        assert getattr(disco_inspect, name) is not None, name


def test_import_is_lazy():
    code = "import sys, disco_inspect; print(any(m.startswith(('diffusers', 'transformers', 'timm')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_audit_is_the_function_even_after_its_module_loaded():
    code = ("from disco_inspect import AuditSettings, audit, AuditResult; import disco_inspect as di; "
            "print(callable(audit) and di.audit is audit and not hasattr(audit, '__path__'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_invert_and_edit_are_functions():
    code = ("import disco_inspect as di; import disco_inspect.editing.edit; "
            "print(callable(di.invert) and callable(di.edit) and di.edit.__module__ == 'disco_inspect.editing.edit')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
