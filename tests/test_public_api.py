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
