"""The one exception type of disco-inspect."""

from __future__ import annotations


class DiscoInspectError(Exception):
    """Raised for every user-facing failure.

    The message always names the offending value and says how to fix it, e.g.
    ``Unknown class 'lobstr' for `--class`; did you mean 'lobster'? Use a label name or an index 0..999.``
    """


#: Optional packages (pip names) -> the extra of ``pyproject.toml`` that installs them: the one table of them
#: (``report/requirements.py`` reads it; tests/report/test_requirements.py keeps it true).
EXTRAS: dict[str, str] = {
    "plotly": "report",
    "matplotlib": "report",
    "captum": "report",
    "jsonschema": "report",
    "onnx": "onnx",
    "onnx2torch": "onnx",
}


def missing_extra(package: str) -> DiscoInspectError:
    """Error for a package that is not installed: names the extra that holds it, or says it is a core dependency."""
    extra = EXTRAS.get(package)
    if extra is None:
        return DiscoInspectError(
            f"The package `{package}` is not installed, but disco-inspect needs it; reinstall disco-inspect as "
            f"README says (or `pip install {package}`)."
        )
    return DiscoInspectError(
        f"The optional package `{package}` is not installed; install it with "
        f'`pip install "disco-inspect[{extra}]"` (or `pip install {package}`).'
    )
