"""Constants and helpers every classifier module shares (the package's bottom layer).

:data:`METADATA_NAME` is the metadata entry written by :mod:`.export` and read by :mod:`.loading`;
:data:`ACCEPTED_FORMATS` is the list of accepted model files that error messages quote.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["ACCEPTED_FORMATS", "METADATA_NAME"]

#: Name of the JSON metadata entry stored inside TorchScript archives (and ONNX ``metadata_props``).
METADATA_NAME = "disco_inspect.json"

ACCEPTED_FORMATS = (
    "a TorchScript file (torch.jit.save), a state dict (.pt/.pth/.bin via torch.save(model.state_dict()) or "
    ".safetensors) together with `arch=`/`--arch` naming its timm architecture, an ONNX file (.onnx), or a "
    "pickled module (torch.save(model)) with `trust_pickle=True`/`--trust-pickle`"
)


def _first_line(e: BaseException, limit: int = 300) -> str:
    """The first line of ``e``'s message; for a TorchScript interpreter failure, its last line (the real cause)."""
    lines = [line for line in str(e).strip().splitlines() if line.strip()] or [""]
    text = lines[-1].strip() if "TorchScript interpreter" in lines[0] else lines[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence torch's "`torch.jit.*` is deprecated" FutureWarnings (they break runs with -W error)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit", category=FutureWarning)
        yield
