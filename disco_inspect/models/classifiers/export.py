"""Saving a classifier as TorchScript with its labels, preprocessing and ``eager`` architecture as metadata."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import DiscoInspectError
from ...io import atomic_write
from ._common import METADATA_NAME, _first_line, _quiet_jit
from .architectures import _check_eager_spec
from .labels import _check_labels
from .preprocessing import Preprocessing
from .wrapper import Classifier

__all__ = ["save_torchscript_classifier"]

logger = logging.getLogger(__name__)


def save_torchscript_classifier(
    module: nn.Module,
    path: str | Path,
    *,
    label_names: Sequence[str] | None = None,
    preprocessing: Preprocessing | Mapping[str, Any] | None = None,
    eager: Mapping[str, Any] | None = None,
) -> Path:
    """Script (or, failing that, trace) ``module`` and save it with label/preprocessing metadata, atomically.

    ``module`` may be a :class:`Classifier`; its labels and preprocessing are then the defaults. The metadata
    lands in the archive's ``disco_inspect.json`` extra file, which :func:`load_classifier` reads back.
    ``eager`` = ``{"factory": key, "kwargs": {...}}`` names an architecture registered with
    :func:`register_architecture` that :func:`load_classifier` rebuilds as an eager module (hookable, e.g. for
    GradCAM); kwargs are JSON scalars or lists of them.
    """
    if isinstance(module, Classifier):
        label_names = module.label_names if label_names is None else label_names
        preprocessing = module.preprocessing if preprocessing is None else preprocessing
        module = module.module
    if not isinstance(module, nn.Module):
        raise DiscoInspectError(f"`module` must be a torch.nn.Module, got {type(module).__name__}.")
    pre = Preprocessing() if preprocessing is None else Preprocessing.from_dict(preprocessing)
    meta: dict[str, Any] = {"preprocessing": pre.to_dict()}
    if eager is not None:
        meta["eager"] = _check_eager_spec(eager, "`eager` (save_torchscript_classifier)")
    if label_names is not None:
        meta["label_names"] = _check_labels(label_names, "`label_names`")
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)

    if isinstance(module, torch.jit.ScriptModule):
        scripted = module
    else:
        was_training = module.training
        module.eval()
        try:
            try:
                with _quiet_jit():
                    scripted = torch.jit.script(module)
            except Exception as script_error:
                logger.info("torch.jit.script failed (%s); tracing instead.", _first_line(script_error))
                dummy = torch.rand(2, 3, *pre.input_size)
                param = next(module.parameters(), None)
                if param is not None:
                    dummy = dummy.to(param.device)
                try:
                    with torch.no_grad(), _quiet_jit():
                        scripted = torch.jit.trace(module, dummy)
                except Exception as e:
                    raise DiscoInspectError(
                        f"Cannot convert {type(module).__name__} to TorchScript: scripting failed "
                        f"({_first_line(script_error)}) and tracing with a [2, 3, {pre.input_size[0]}, "
                        f"{pre.input_size[1]}] input failed ({_first_line(e)}). Save a state dict with a timm "
                        "`arch` or export ONNX instead."
                    ) from e
        finally:
            module.train(was_training)
    scripted.eval()

    def _save(tmp: str) -> None:
        with _quiet_jit():
            torch.jit.save(scripted, tmp, _extra_files={METADATA_NAME: json.dumps(meta)})

    atomic_write(path, _save)
    logger.info("Saved TorchScript classifier to %s", path)
    return path
