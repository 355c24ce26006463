"""The one exception type of disco-inspect."""
from __future__ import annotations


class DiscoInspectError(Exception):
    """Raised for every user-facing failure.

    The message always names the offending value and says how to fix it, e.g.
    ``Unknown class 'lobstr' for `--class`; did you mean 'lobster'? Use a label name or an index 0..999.``
    """


def require(condition: bool, message: str) -> None:
    """Raise :class:`DiscoInspectError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise DiscoInspectError(message)


def missing_extra(package: str, extra: str) -> DiscoInspectError:
    """Error for an optional dependency that is not installed."""
    return DiscoInspectError(
        f"The optional package `{package}` is not installed; install it with "
        f"`pip install \"disco-inspect[{extra}]\"` (or `pip install {package}`)."
    )
