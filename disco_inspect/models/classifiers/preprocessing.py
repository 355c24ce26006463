"""Differentiable eval-time preprocessing (resize → centre crop → normalise) and where its fields come from.

:class:`Preprocessing` has timm semantics; its fields can be read from timm's data config
(:meth:`Preprocessing.from_timm`) or a Hugging Face image processor (:meth:`Preprocessing.from_image_processor`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import DiscoInspectError

__all__ = ["HF_PROCESSOR_CONFIG", "IMAGENET_MEAN", "IMAGENET_STD", "INTERPOLATIONS", "Preprocessing"]

logger = logging.getLogger(__name__)

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


@dataclass
class Preprocessing:
    """Eval-time preprocessing with timm semantics, implemented with differentiable torch ops.

    The shorter side is resized to ``input_size / crop_pct``, the centre ``input_size`` is cropped and the
    result is normalised with ``mean``/``std``.
    """

    input_size: tuple[int, int] = (224, 224)
    """(H, W) the model sees."""
    interpolation: str = "bicubic"
    """One of ``"bilinear"``, ``"bicubic"``, ``"nearest"``."""
    crop_pct: float = 1.0
    """Fraction of the resized image kept by the centre crop, in (0, 1]."""
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        self.input_size = _parse_input_size(self.input_size)
        if not isinstance(self.interpolation, str) or self.interpolation.lower() not in INTERPOLATIONS:
            raise DiscoInspectError(
                f"`preprocessing.interpolation` must be one of {', '.join(map(repr, INTERPOLATIONS))}, "
                f"got {self.interpolation!r}."
            )
        self.interpolation = self.interpolation.lower()
        try:
            crop = float(self.crop_pct)
        except (TypeError, ValueError):
            crop = float("nan")
        if not (0.0 < crop <= 1.0):
            raise DiscoInspectError(
                f"`preprocessing.crop_pct` must be a number in (0, 1] (1.0 = no crop), got {self.crop_pct!r}."
            )
        self.crop_pct = crop
        self.mean = _parse_triple("mean", self.mean)
        self.std = _parse_triple("std", self.std)
        if any(s <= 0 for s in self.std):
            raise DiscoInspectError(f"`preprocessing.std` must be positive, got {list(self.std)}.")

    # -- serialisation -----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        return {
            "input_size": list(self.input_size),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Inverse of :meth:`to_dict`; missing keys take the defaults, unknown keys are an error."""
        if isinstance(data, Preprocessing):
            return dataclasses.replace(data)
        if not isinstance(data, Mapping):
            raise DiscoInspectError(
                f"`preprocessing` must be a dict with keys {', '.join(_PRE_FIELDS)}, got {type(data).__name__}."
            )
        unknown = sorted(set(data) - set(_PRE_FIELDS))
        if unknown:
            raise DiscoInspectError(
                f"Unknown `preprocessing` key(s) {', '.join(map(repr, unknown))}; valid keys are "
                f"{', '.join(_PRE_FIELDS)}."
            )
        return cls(**dict(data))

    @classmethod
    def from_timm(cls, model: nn.Module) -> Preprocessing:
        """The eval preprocessing timm's data config declares for ``model``."""
        from timm.data import resolve_data_config

        cfg = resolve_data_config({}, model=model)
        interpolation = str(cfg.get("interpolation", "bicubic")).lower()
        if interpolation not in INTERPOLATIONS:
            logger.warning("timm interpolation %r is not supported; using 'bicubic'.", interpolation)
            interpolation = "bicubic"
        crop_pct = float(cfg.get("crop_pct") or 1.0)
        if crop_pct > 1.0:
            logger.warning("timm crop_pct %.3f > 1 is not supported; using 1.0 (no crop).", crop_pct)
            crop_pct = 1.0
        crop_mode = cfg.get("crop_mode", "center")
        if crop_mode not in (None, "center"):
            logger.warning("timm crop_mode %r is not supported; using a centre crop.", crop_mode)
        return cls(
            input_size=tuple(cfg["input_size"][-2:]),
            interpolation=interpolation,
            crop_pct=crop_pct,
            mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
            std=tuple(cfg.get("std", IMAGENET_STD)),
        )

    @classmethod
    def from_image_processor(cls, processor: Any) -> Preprocessing:
        """The eval preprocessing a Hugging Face image processor declares (missing fields take the defaults).

        ``processor``: an image processor object (e.g. ``ViTImageProcessor``), its config dict, or a local folder
        (or file) holding ``preprocessor_config.json``. Read: ``image_mean``/``image_std`` (identity when
        ``do_normalize`` is false), ``size`` (``{"height", "width"}``, ``{"shortest_edge"}`` or an int),
        ``crop_size`` when ``do_center_crop`` (-> ``crop_pct``) and ``resample`` (PIL 0/2/3 -> nearest/bilinear/
        bicubic). A ``{"height", "width"}`` resize of a non-square image keeps its aspect ratio and centre-crops
        here, where Hugging Face squashes it; square images are resized identically.
        """
        return cls.from_dict(_image_processor_fields(processor))

    # -- the transform -----------------------------------------------------------------------------

    def resize_size(self, height: int, width: int) -> tuple[int, int]:
        """Size an ``height x width`` image is resized to before the centre crop."""
        th, tw = self.input_size
        sh, sw = math.floor(th / self.crop_pct), math.floor(tw / self.crop_pct)
        if sh == sw:  # torchvision Resize(int): shorter side -> sh, aspect ratio kept
            if height <= width:
                nh, nw = sh, int(sh * width / height)
            else:
                nh, nw = int(sw * height / width), sw
        else:  # timm ResizeKeepRatio: smallest scale that covers (sh, sw)
            ratio = min(height / sh, width / sw)
            nh, nw = round(height / ratio), round(width / ratio)
        return max(nh, th), max(nw, tw)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Resize → centre crop → normalise a float batch ``[B, 3, H, W]`` in ``[0, 1]`` (differentiable)."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise DiscoInspectError(
                f"Classifier input must be a float tensor [batch, 3, H, W] in [0, 1], got {shape}."
            )
        if not images.is_floating_point():
            raise DiscoInspectError(
                f"Classifier input must be float in [0, 1], got dtype {images.dtype}; use `images.float() / 255`."
            )
        h, w = images.shape[-2:]
        nh, nw = self.resize_size(h, w)
        x = images
        if (nh, nw) != (h, w):
            if self.interpolation == "nearest":
                x = F.interpolate(x, size=(nh, nw), mode="nearest")
            else:
                x = F.interpolate(
                    x, size=(nh, nw), mode=self.interpolation, align_corners=False, antialias=nh < h or nw < w
                )
        th, tw = self.input_size
        top, left = int(round((nh - th) / 2.0)), int(round((nw - tw) / 2.0))
        x = x[..., top : top + th, left : left + tw]
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std


_PRE_FIELDS = tuple(f.name for f in dataclasses.fields(Preprocessing))


def _parse_input_size(value: Any) -> tuple[int, int]:
    size: Any = value
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    try:
        size = tuple(size)
        if len(size) == 3:  # timm-style (C, H, W)
            size = size[1:]
        ok = len(size) == 2 and all(float(s) == int(s) and int(s) > 0 for s in size)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise DiscoInspectError(
            f"`preprocessing.input_size` must be (height, width) with positive integers, got {value!r}."
        )
    return int(size[0]), int(size[1])


def _parse_triple(name: str, value: Any) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        out = ()
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise DiscoInspectError(
            f"`preprocessing.{name}` must be 3 numbers (one per RGB channel), got {value!r}."
        )
    return out  # type: ignore[return-value]


def _merge_preprocessing(
    base: Preprocessing, *layers: Mapping[str, Any] | Preprocessing | None
) -> Preprocessing:
    """``base`` with each layer's keys applied on top (later layers win)."""
    merged = base.to_dict()
    for layer in layers:
        if layer is None:
            continue
        if isinstance(layer, Preprocessing):
            layer = layer.to_dict()
        if not isinstance(layer, Mapping):
            raise DiscoInspectError(
                f"`preprocessing` must be a dict with keys {', '.join(_PRE_FIELDS)}, got {type(layer).__name__}."
            )
        Preprocessing.from_dict({**merged, **layer})  # validates unknown keys and values
        merged.update(layer)
    return Preprocessing.from_dict(merged)


#: PIL resampling codes Hugging Face image processors store as ``resample``.
_PIL_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}

#: File name of a saved Hugging Face image processor (``save_pretrained``).
HF_PROCESSOR_CONFIG = "preprocessor_config.json"


def _image_processor_config(processor: Any) -> dict[str, Any]:
    """The config dict of an image processor object, a config dict, or a local folder/file holding its JSON."""
    if isinstance(processor, Mapping):
        return dict(processor)
    if isinstance(processor, (str, os.PathLike)):
        path = Path(processor).expanduser()
        file = path / HF_PROCESSOR_CONFIG if path.is_dir() else path
        if not file.is_file():
            raise DiscoInspectError(
                f"`image_processor` `{path}` holds no {HF_PROCESSOR_CONFIG}; pass the folder an image processor was "
                "saved to (save_pretrained), its JSON file, or the image processor object."
            )
        try:
            cfg = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DiscoInspectError(
                f"Cannot read image processor config `{file}` as JSON ({e}); fix or re-save it."
            ) from e
        if not isinstance(cfg, dict):
            raise DiscoInspectError(
                f"Image processor config `{file}` must hold a JSON object, got {type(cfg).__name__}."
            )
        return cfg
    to_dict = getattr(processor, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    raise DiscoInspectError(
        f"`image_processor` must be a Hugging Face image processor, its config dict or a local folder holding "
        f"{HF_PROCESSOR_CONFIG}, got {type(processor).__name__}."
    )


def _hw(value: Any) -> tuple[int, int] | None:
    """(height, width) of a HF ``size``/``crop_size`` given as an int or ``{"height", "width"}``, else ``None``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, Mapping) and {"height", "width"} <= set(value):
        return int(value["height"]), int(value["width"])
    return None


def _image_processor_fields(processor: Any) -> dict[str, Any]:
    """:class:`Preprocessing` fields declared by an image processor (see :meth:`Preprocessing.from_image_processor`)."""
    cfg = _image_processor_config(processor)
    out: dict[str, Any] = {}
    if cfg.get("do_normalize", True) is False:
        out["mean"], out["std"] = [0.0] * 3, [1.0] * 3
    else:
        for key, field in (("image_mean", "mean"), ("image_std", "std")):
            value = cfg.get(key)
            if value is None:
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = [value] * 3
            if not isinstance(value, (list, tuple)) or len(value) != 3:
                raise DiscoInspectError(
                    f"`{key}` in the image processor config must be 3 numbers (one per RGB channel), got {value!r}; "
                    f'pass `preprocessing={{"{field}": [r, g, b]}}` instead.'
                )
            out[field] = list(value)
    size = cfg.get("size") if cfg.get("do_resize", True) is not False else None
    crop = _hw(cfg.get("crop_size")) if cfg.get("do_center_crop", "crop_size" in cfg) else None
    shortest = size.get("shortest_edge") if isinstance(size, Mapping) else None
    if crop is not None:
        out["input_size"] = list(crop)
        if isinstance(shortest, int) and shortest >= max(crop):
            pct = min(crop) / shortest
            if math.floor(min(crop) / pct) < shortest:  # float rounding would resize one pixel short
                pct = min(crop) / (shortest + 1e-6)
            out["crop_pct"] = pct
    elif _hw(size) is not None:
        out["input_size"], out["crop_pct"] = list(_hw(size)), 1.0
    elif isinstance(shortest, int):
        out["input_size"], out["crop_pct"] = [shortest, shortest], 1.0
    elif size is not None:
        logger.warning(
            'Image processor size %r is not supported; pass `preprocessing={"input_size": ...}`.', size
        )
    resample = cfg.get("resample")
    if resample is not None:
        try:
            out["interpolation"] = _PIL_RESAMPLE[int(resample)]
        except (KeyError, TypeError, ValueError):
            logger.warning("Image processor resample %r is not supported; using bicubic.", resample)
    return out
