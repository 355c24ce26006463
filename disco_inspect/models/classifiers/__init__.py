"""Image classifiers under audit: loading, differentiable preprocessing and class-name lookup.

A :class:`Classifier` wraps any module that maps a normalised image batch to logits ``[B, C]``.
Its ``forward`` takes images in ``[0, 1]`` and applies :class:`Preprocessing` (resize → centre crop →
normalise) with differentiable torch ops, so gradients reach the images (the DisCo token is trained
through the classifier). The classifier's own parameters are frozen.

:func:`load_classifier` accepts an ``nn.Module``, a TorchScript file (optionally carrying
``disco_inspect.json`` metadata, see :func:`save_torchscript_classifier`), a state dict
(``.pt``/``.pth``/``.bin``/``.safetensors``) together with a timm architecture name, an ONNX file, or —
only with explicit consent — a fully pickled module.

The modules import one way, bottom to top: ``_common``, :mod:`.preprocessing` and :mod:`.labels`;
:mod:`.wrapper` (:class:`Classifier`); :mod:`.architectures` (the ``eager`` table); :mod:`.export`
(:func:`save_torchscript_classifier`) and :mod:`.loading` (:func:`resolve_format`, :func:`load_classifier`).
This package re-exports their public names (and the private ones other code imported from the former module).
"""

from __future__ import annotations

from ._common import ACCEPTED_FORMATS, METADATA_NAME
from .architectures import _ARCHITECTURES as _ARCHITECTURES  # the table, as the former module offered it
from .architectures import register_architecture
from .export import save_torchscript_classifier
from .labels import imagenet_label_names, load_label_file
from .loading import load_classifier, resolve_format
from .preprocessing import HF_PROCESSOR_CONFIG, IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS, Preprocessing
from .wrapper import Classifier

__all__ = [
    "ACCEPTED_FORMATS",
    "HF_PROCESSOR_CONFIG",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INTERPOLATIONS",
    "METADATA_NAME",
    "Classifier",
    "Preprocessing",
    "imagenet_label_names",
    "load_classifier",
    "load_label_file",
    "register_architecture",
    "resolve_format",
    "save_torchscript_classifier",
]
