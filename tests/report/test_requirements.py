"""One table of optional packages: ``errors.EXTRAS`` matches pyproject.toml, and the report's up-front check uses it."""

import re
import sys
from pathlib import Path

import pytest
import tomllib

from disco_inspect.errors import EXTRAS, DiscoInspectError
from disco_inspect.report.requirements import (
    ATTRIBUTION_PACKAGES,
    REPORT_PACKAGES,
    check_report_dependencies,
)

ROOT = Path(__file__).resolve().parents[2]


def _names(reqs):
    return {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def test_every_optional_package_is_in_the_extra_errors_names():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for package, extra in EXTRAS.items():
        assert package.lower().replace("_", "-") in _names(extras[extra]), f"{package} is not in [{extra}]"


def test_the_report_checks_the_report_extra_and_jinja2():
    assert set(REPORT_PACKAGES) | set(ATTRIBUTION_PACKAGES) == {"jinja2"} | {
        p for p, extra in EXTRAS.items() if extra == "report"
    }
    assert ATTRIBUTION_PACKAGES == ("captum",)


@pytest.mark.parametrize("package", ["plotly", "matplotlib", "jsonschema", "captum"])
def test_a_missing_report_package_names_its_extra(package, monkeypatch):
    monkeypatch.setitem(sys.modules, package, None)  # as if it were not installed
    with pytest.raises(DiscoInspectError, match=rf"`{package}`.*disco-inspect\[report\]"):
        check_report_dependencies()


def test_captum_is_only_needed_for_attributions(monkeypatch):
    monkeypatch.setitem(sys.modules, "captum", None)
    check_report_dependencies(attributions=False)
