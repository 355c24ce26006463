"""Planted biases of the world: "class X mostly appears with factor value V".

The CLI syntax is ``"<shape>: <factor>=<value> @ <rate>"``, e.g. ``"circle: background=green @ 0.99"``
(whitespace-tolerant, so ``"circle:texture=stripes@0.95"`` works too). See
:func:`disco_inspect.world.scenes.sample_factors` for the exact sampling rule a bias induces.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from ..errors import DiscoInspectError
from .vocabulary import FACTOR_VALUES, SHAPES

logger = logging.getLogger(__name__)

#: Factors a bias can tie to a class (every factor except the class itself).
BIAS_FACTORS: tuple[str, ...] = ("background", "texture", "object", "color", "size")

_SYNTAX = "'<shape>: <factor>=<value> @ <rate>', e.g. 'circle: background=green @ 0.99'"
_PATTERN = re.compile(
    r"^\s*(?P<shape>[^:=@\s]+)\s*:\s*(?P<factor>[^:=@\s]+)\s*=\s*(?P<value>[^:=@\s]+)\s*@\s*(?P<rate>\S+)\s*$"
)


def _hint(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


@dataclass(frozen=True)
class BiasSpec:
    """Class ``shape`` takes ``factor == value`` with probability ``rate``; other classes rarely do.

    Names are normalised to lower case; ``rate`` must lie in ``(0, 1]``.
    """

    shape: str
    factor: str
    value: str
    rate: float

    def __post_init__(self) -> None:
        shape = str(self.shape).strip().lower()
        factor = str(self.factor).strip().lower()
        value = str(self.value).strip().lower()
        if shape not in SHAPES:
            raise DiscoInspectError(
                f"Unknown shape {self.shape!r} for the bias `shape`; {_hint(shape, SHAPES)}"
                f"valid shapes are {', '.join(SHAPES)}."
            )
        if factor not in BIAS_FACTORS:
            why = "the shape is the class itself; " if factor == "shape" else _hint(factor, BIAS_FACTORS)
            raise DiscoInspectError(
                f"Unknown factor {self.factor!r} for the bias `factor`; {why}"
                f"valid factors are {', '.join(BIAS_FACTORS)}."
            )
        values = FACTOR_VALUES[factor]
        if value not in values:
            raise DiscoInspectError(
                f"Unknown {factor} {self.value!r} for the bias `value`; {_hint(value, values)}"
                f"valid {factor} values are {', '.join(values)}."
            )
        try:
            rate = float(self.rate)
        except (TypeError, ValueError):
            rate = math.nan
        if isinstance(self.rate, bool) or not 0.0 < rate <= 1.0:
            raise DiscoInspectError(
                f"`rate` = {self.rate!r} is invalid for a bias; use a probability in (0, 1], e.g. 0.99."
            )
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "factor", factor)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "rate", rate)

    @classmethod
    def parse(cls, text: str) -> BiasSpec:
        """Parse the CLI syntax ``"circle: background=green @ 0.99"``."""
        if not isinstance(text, str):
            raise DiscoInspectError(f"`bias` = {text!r} is not a string; write it as {_SYNTAX}.")
        match = _PATTERN.match(text)
        if match is None:
            raise DiscoInspectError(f"`bias` = {text!r} cannot be parsed; write it as {_SYNTAX}.")
        rate_text = match["rate"]
        try:
            rate = float(rate_text)
        except ValueError:
            raise DiscoInspectError(
                f"Rate `{rate_text}` in bias {text!r} is not a number; use a probability in (0, 1], e.g. 0.99."
            ) from None
        try:
            return cls(match["shape"], match["factor"], match["value"], rate)
        except DiscoInspectError as e:
            raise DiscoInspectError(f"In bias {text!r}: {e}") from None

    def __str__(self) -> str:
        """The canonical text, which :meth:`parse` reads back to an equal spec."""
        return f"{self.shape}: {self.factor}={self.value} @ {self.rate!r}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict with keys ``shape``, ``factor``, ``value``, ``rate``."""
        return {"shape": self.shape, "factor": self.factor, "value": self.value, "rate": self.rate}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BiasSpec:
        """Inverse of :meth:`to_dict`; rejects missing or unknown keys."""
        keys = ("shape", "factor", "value", "rate")
        if not isinstance(data, dict):
            raise DiscoInspectError(f"`bias` = {data!r} is not a dict; pass a dict with keys {list(keys)}.")
        missing = [k for k in keys if k not in data]
        unknown = sorted(set(data) - set(keys))
        if missing or unknown:
            raise DiscoInspectError(
                f"Bias dict {data!r} has missing keys {missing} / unknown keys {unknown}; "
                f"it needs exactly {list(keys)}."
            )
        return cls(data["shape"], data["factor"], data["value"], data["rate"])
