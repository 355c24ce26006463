"""Image classifiers under audit: loading, differentiable preprocessing and class-name lookup.

A :class:`Classifier` wraps any module that maps a normalised image batch to logits ``[B, C]``.
Its ``forward`` takes images in ``[0, 1]`` and applies :class:`Preprocessing` (resize → centre crop →
normalise) with differentiable torch ops, so gradients reach the images (the DisCo token is trained
through the classifier). The classifier's own parameters are frozen.

:func:`load_classifier` accepts an ``nn.Module``, a TorchScript file (optionally carrying
``disco_inspect.json`` metadata, see :func:`save_torchscript_classifier`), a state dict
(``.pt``/``.pth``/``.bin``/``.safetensors``) together with a timm architecture name, an ONNX file, or —
only with explicit consent — a fully pickled module.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
import logging
import math
import operator
import os
import re
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DiscoInspectError, missing_extra
from ..io import atomic_write

logger = logging.getLogger(__name__)

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: Name of the JSON metadata entry stored inside TorchScript archives (and ONNX ``metadata_props``).
METADATA_NAME = "disco_inspect.json"

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")

ACCEPTED_FORMATS = (
    "a TorchScript file (torch.jit.save), a state dict (.pt/.pth/.bin via torch.save(model.state_dict()) or "
    ".safetensors) together with `arch=`/`--arch` naming its timm architecture, an ONNX file (.onnx), or a "
    "pickled module (torch.save(model)) with `trust_pickle=True`/`--trust-pickle`"
)

_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")
_STATE_DICT_PREFIXES = ("module.", "_orig_mod.")


# --------------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------------


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
                x = F.interpolate(x, size=(nh, nw), mode=self.interpolation, align_corners=False,
                                  antialias=nh < h or nw < w)
        th, tw = self.input_size
        top, left = int(round((nh - th) / 2.0)), int(round((nw - tw) / 2.0))
        x = x[..., top:top + th, left:left + tw]
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


def _merge_preprocessing(base: Preprocessing, *layers: Mapping[str, Any] | Preprocessing | None) -> Preprocessing:
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
            raise DiscoInspectError(f"Cannot read image processor config `{file}` as JSON ({e}); fix or re-save it.") from e
        if not isinstance(cfg, dict):
            raise DiscoInspectError(f"Image processor config `{file}` must hold a JSON object, got {type(cfg).__name__}.")
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
                    f"pass `preprocessing={{\"{field}\": [r, g, b]}}` instead."
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
        logger.warning("Image processor size %r is not supported; pass `preprocessing={\"input_size\": ...}`.", size)
    resample = cfg.get("resample")
    if resample is not None:
        try:
            out["interpolation"] = _PIL_RESAMPLE[int(resample)]
        except (KeyError, TypeError, ValueError):
            logger.warning("Image processor resample %r is not supported; using bicubic.", resample)
    return out


def _is_hf_model(module: nn.Module) -> bool:
    """A transformers ``PreTrainedModel`` (checked by class name, without importing transformers)."""
    return any(c.__name__ == "PreTrainedModel" and c.__module__.startswith("transformers.")
               for c in type(module).__mro__)


def _from_hf_model(module: nn.Module, *, has_processor: bool) -> _Loaded:
    """Preprocessing and labels of a Hugging Face image model, from its config and a processor saved beside it."""
    config = getattr(module, "config", None)
    name = str(getattr(config, "name_or_path", "") or "")
    fields: dict[str, Any] = {}
    if _hw(getattr(config, "image_size", None)) is not None:
        fields["input_size"] = list(_hw(config.image_size))
    if name and (Path(name).expanduser() / HF_PROCESSOR_CONFIG).is_file():
        fields.update(_image_processor_fields(name))
    elif not has_processor:
        logger.warning(
            "No %s found beside the Hugging Face model %s; mean/std default to ImageNet's. Pass "
            "`image_processor=` (the processor or its local folder) or `preprocessing=`.",
            HF_PROCESSOR_CONFIG, name or type(module).__name__,
        )
    id2label = getattr(config, "id2label", None) or {}
    num_classes = _positive_int(getattr(config, "num_labels", None))
    labels = None
    try:
        names = [id2label[i] for i in range(len(id2label))]
    except (KeyError, TypeError):
        names = []
    if names and not all(re.fullmatch(r"LABEL_\d+", str(n)) for n in names):
        labels = _check_labels(names, f"`id2label` of the Hugging Face model {name or type(module).__name__}")
    return _Loaded(module, f"hf:{name or type(module).__name__}", base=_merge_preprocessing(Preprocessing(), fields),
                   file_labels=labels, num_classes=num_classes)


# --------------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------------


def _norm_key(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text).casefold()


def _synonyms(label: str) -> list[str]:
    parts = [p.strip() for p in label.split(",")]
    return [p for p in parts if p] or [label.strip()]


def load_label_file(path: str | Path) -> list[str]:
    """Read class names: a text file (one per line) or JSON (a list, or a dict index → name).

    JSON dicts may also map name → index, hold ``id2label`` (Hugging Face ``config.json``) or
    ``label_names`` (disco-inspect metadata), or map index → ``[wnid, name]`` (Keras ImageNet index).
    Text lines of the form ``n01440764 tench, Tinca tinca`` (``synset_words.txt``) drop the WordNet id.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DiscoInspectError(
            f"Label file `{path}` (`labels`/`--labels`) does not exist; pass a text file with one class name per "
            "line or a JSON list."
        )
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DiscoInspectError(f"Cannot read label file `{path}` as UTF-8 text: {e}.") from e
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DiscoInspectError(f"Label file `{path}` is not valid JSON ({e}); fix it or use a text file.") from e
        return _labels_from_json(data, path)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    blank = [i + 1 for i, line in enumerate(lines) if not line.strip()]
    if not lines or blank:
        where = f"line {blank[0]} is blank" if blank else "it is empty"
        raise DiscoInspectError(
            f"Label file `{path}` must hold one class name per line (line i = class i-1), but {where}."
        )
    labels = [line.strip() for line in lines]
    if all(re.match(r"^n\d{8}\s+\S", label) for label in labels):
        labels = [label.split(None, 1)[1].strip() for label in labels]
    return labels


def _labels_from_json(data: Any, path: Path) -> list[str]:
    if isinstance(data, dict):
        for key in ("label_names", "id2label"):
            if key in data:
                return _labels_from_json(data[key], path)
    if isinstance(data, list):
        labels = data
    elif isinstance(data, dict) and data:
        items = list(data.items())
        if all(isinstance(v, int) and not isinstance(v, bool) for _, v in items) and not all(
            str(k).strip().isdigit() for k, _ in items
        ):
            items = [(v, k) for k, v in items]  # name -> index
        try:
            indexed = {int(k): v for k, v in items}
        except (TypeError, ValueError) as e:
            raise DiscoInspectError(
                f"Label file `{path}`: a JSON dict must map class indices (0..N-1) to names; found key "
                f"{items[0][0]!r}."
            ) from e
        missing = sorted(set(range(len(indexed))) - set(indexed))
        if missing:
            raise DiscoInspectError(
                f"Label file `{path}`: the JSON dict must cover indices 0..{len(indexed) - 1} without gaps; "
                f"missing {missing[:5]}."
            )
        labels = [indexed[i] for i in range(len(indexed))]
    else:
        raise DiscoInspectError(
            f"Label file `{path}` must hold a JSON list of names or a dict index → name, got {type(data).__name__}."
        )
    labels = [v[-1] if isinstance(v, list) and v and all(isinstance(s, str) for s in v) else v for v in labels]
    return _check_labels(labels, f"label file `{path}`")


def _check_labels(labels: Any, what: str = "`labels`") -> list[str]:
    if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
        raise DiscoInspectError(f"{what} must be a list of class names, got {type(labels).__name__}.")
    out = list(labels)
    if not out:
        raise DiscoInspectError(f"{what} is empty; give one name per classifier output.")
    for i, label in enumerate(out):
        if not isinstance(label, str) or not label.strip():
            raise DiscoInspectError(f"{what}: entry {i} must be a non-empty string, got {label!r}.")
    return [label.strip() for label in out]


def _coerce_labels(labels: str | os.PathLike[str] | Sequence[str] | None) -> list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, (str, os.PathLike)):
        return load_label_file(labels)
    return _check_labels(labels)


def imagenet_label_names(num_classes: int) -> list[str] | None:
    """ImageNet class descriptions (timm's tables) for a known ImageNet class count, else ``None``."""
    try:
        from timm.data import ImageNetInfo
        from timm.data.imagenet_info import infer_imagenet_subset
    except ImportError:  # pragma: no cover - timm is a core dependency
        return None
    subset = infer_imagenet_subset({"num_classes": num_classes})
    if subset is None:
        return None
    info = ImageNetInfo(subset)
    return [info.index_to_description(i) for i in range(num_classes)]


def _default_labels(num_classes: int) -> list[str]:
    names = imagenet_label_names(num_classes)
    if names is not None:
        logger.info("No labels given; assuming the %d ImageNet classes (pass `labels` otherwise).", num_classes)
        return names
    logger.info("No labels given; naming the %d outputs class_0..class_%d.", num_classes, num_classes - 1)
    return [f"class_{i}" for i in range(num_classes)]


# --------------------------------------------------------------------------------------------------
# Classifier
# --------------------------------------------------------------------------------------------------


def _fmt_shape(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return str(list(x.shape))
    return type(x).__name__


class Classifier(nn.Module):
    """A frozen image classifier: ``forward(images in [0, 1]) -> logits [B, num_classes]``.

    Args:
        module: any ``nn.Module`` / TorchScript module mapping a normalised batch to logits (or to an object
            with a ``.logits`` attribute, as Hugging Face models return).
        preprocessing: :class:`Preprocessing` or its dict (default: ImageNet 224 px bicubic).
        label_names: one name per output; ``None`` probes the output size and uses ImageNet names for
            ImageNet-sized outputs, ``class_i`` otherwise.
        source: description for reports.
    """

    def __init__(
        self,
        module: nn.Module,
        preprocessing: Preprocessing | Mapping[str, Any] | None = None,
        label_names: Sequence[str] | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise DiscoInspectError(
                f"The classifier must be a torch.nn.Module, got {type(module).__name__}; pass a module or a "
                f"model file ({ACCEPTED_FORMATS})."
            )
        self.module = module
        if preprocessing is None:
            preprocessing = Preprocessing()
        elif not isinstance(preprocessing, Preprocessing):
            preprocessing = Preprocessing.from_dict(preprocessing)
        self.preprocessing: Preprocessing = preprocessing
        self.source: str = source or f"module:{type(module).__name__}"
        for p in module.parameters():  # (ScriptModules have no requires_grad_)
            p.requires_grad_(False)
        module.eval()
        self.labels_known = label_names is not None
        if label_names is None:
            label_names = _default_labels(self._probe().shape[1])
        self.label_names: list[str] = _check_labels(label_names, "`label_names`")

    # -- forward -----------------------------------------------------------------------------------

    def forward(self, images01: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, C]`` for images ``[B, 3, H, W]`` in ``[0, 1]``; differentiable w.r.t. the images."""
        x = self.preprocessing(images01)
        param = next(self.module.parameters(), None)
        if param is not None and param.is_floating_point() and (x.dtype, x.device) != (param.dtype, param.device):
            x = x.to(device=param.device, dtype=param.dtype)
        out = self.module(x)
        if not isinstance(out, torch.Tensor) and isinstance(getattr(out, "logits", None), torch.Tensor):
            out = out.logits
        return out

    def train(self, mode: bool = True) -> Classifier:
        """Set the wrapper's flag; the wrapped model always stays in eval mode (it is audited, never trained)."""
        super().train(mode)
        self.module.eval()
        return self

    @property
    def num_classes(self) -> int:
        """Number of classes (= number of label names)."""
        return len(self.label_names)

    # -- checks ------------------------------------------------------------------------------------

    def _probe(self, image_size: tuple[int, int] | None = None) -> torch.Tensor:
        """One no-grad forward of 2 random images; returns logits after checking they are [2, C] floats."""
        h, w = image_size or self.preprocessing.input_size
        self.module.eval()
        param = next(self.module.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        gen = torch.Generator().manual_seed(0)
        images = torch.rand(2, 3, int(h), int(w), generator=gen).to(device)
        try:
            with torch.no_grad():
                out = self(images)
        except DiscoInspectError:
            raise
        except Exception as e:
            raise DiscoInspectError(
                f"The classifier `{self.source}` failed on a batch of shape [2, 3, {h}, {w}] (preprocessed to "
                f"[2, 3, {self.preprocessing.input_size[0]}, {self.preprocessing.input_size[1]}]): "
                f"{type(e).__name__}: {_first_line(e)}. It must take a normalised RGB batch [batch, 3, H, W] and "
                "return logits [batch, num_classes]; check `preprocessing` (input_size) and the model."
            ) from e
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2 or not out.is_floating_point():
            got = _fmt_shape(out) + (f" ({out.dtype})" if isinstance(out, torch.Tensor) else "")
            raise DiscoInspectError(
                f"The classifier `{self.source}` returned {got} for a batch of 2 images; the model must return "
                "float logits [batch, num_classes] (e.g. [2, 1000]). Wrap it so that it pools/flattens spatial "
                "outputs and returns only the logits tensor."
            )
        return out

    def check_output(self, image_size: tuple[int, int] = (64, 64)) -> None:
        """Run 2 random ``image_size`` images through the classifier and check the logits' shape.

        Raises :class:`DiscoInspectError` unless the output is a float tensor ``[2, num_classes]``.
        """
        out = self._probe(image_size)
        if out.shape[1] != self.num_classes:
            raise DiscoInspectError(
                f"The classifier `{self.source}` outputs {out.shape[1]} classes but {self.num_classes} label names "
                f"were given (`labels`/`--labels`); pass exactly {out.shape[1]} names, one per output."
            )
        if not torch.isfinite(out).all():
            logger.warning("The classifier %s returned non-finite logits on random images.", self.source)

    # -- classes -----------------------------------------------------------------------------------

    def _check_index(self, index: int, given: Any) -> int:
        if not 0 <= index < self.num_classes:
            raise DiscoInspectError(
                f"Class index {given!r} (`target`/`--class`) is out of range; use an index "
                f"0..{self.num_classes - 1} or a label name."
            )
        return index

    def resolve_class(self, name_or_index: str | int) -> int:
        """The 0-based index for a class index, digit string or (case/space/_/- insensitive) name or synonym."""
        given = name_or_index
        if not isinstance(given, (str, bool)) and hasattr(given, "__index__"):
            return self._check_index(operator.index(given), given)
        if not isinstance(given, str):
            raise DiscoInspectError(
                f"Class {given!r} (`target`/`--class`) must be a label name or an index 0..{self.num_classes - 1}."
            )
        text = given.strip()
        if text.isdigit():
            return self._check_index(int(text), given)
        key = _norm_key(text)
        tiers: list[list[int]] = [[], [], []]  # whole label, first synonym, any synonym
        for i, label in enumerate(self.label_names):
            syns = _synonyms(label)
            if _norm_key(label) == key:
                tiers[0].append(i)
            elif _norm_key(syns[0]) == key:
                tiers[1].append(i)
            elif any(_norm_key(s) == key for s in syns[1:]):
                tiers[2].append(i)
        for hits in tiers:
            if len(hits) == 1:
                return hits[0]
            if len(hits) > 1:
                options = ", ".join(f"{i} ({self.label_names[i]!r})" for i in hits[:10])
                raise DiscoInspectError(
                    f"Class {given!r} (`target`/`--class`) is ambiguous: it names classes {options}; pass the index "
                    "you mean instead."
                )
        raise DiscoInspectError(self._unknown_class_message(given))

    def _unknown_class_message(self, given: str) -> str:
        display: dict[str, tuple[str, int]] = {}
        for i, label in enumerate(self.label_names):
            for syn in _synonyms(label):
                display.setdefault(syn.casefold(), (syn, i))
        query = given.strip().casefold()
        close = difflib.get_close_matches(query, list(display), n=5, cutoff=0.6)
        words = [k for k in display if query and re.search(rf"\b{re.escape(query)}\b", k) and k not in close]
        picks = (close + words)[:5]
        hint = f"Use a label name or an index 0..{self.num_classes - 1}."
        if picks:
            options = ", ".join(f"{display[k][0]!r} ({display[k][1]})" for k in picks)
            return f"Unknown class {given!r} for `target`/`--class`; did you mean {options}? {hint}"
        examples = ", ".join(repr(n) for n in self.label_names[:5])
        return f"Unknown class {given!r} for `target`/`--class` (labels are e.g. {examples}). {hint}"

    def class_name(self, index: int) -> str:
        """Human name for prompts: the label's first comma-separated synonym, underscores as spaces."""
        idx = self.resolve_class(index)
        name = _synonyms(self.label_names[idx])[0].replace("_", " ")
        return re.sub(r"\s+", " ", name).strip() or self.label_names[idx]

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary for reports."""
        return {
            "source": self.source,
            "module": type(self.module).__name__,
            "num_classes": self.num_classes,
            "preprocessing": self.preprocessing.to_dict(),
            "first_labels": self.label_names[:10],
        }

    def extra_repr(self) -> str:
        return f"source={self.source!r}, num_classes={self.num_classes}"


def _first_line(e: BaseException, limit: int = 300) -> str:
    text = (str(e).strip().splitlines() or [""])[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence torch's "`torch.jit.*` is deprecated" FutureWarnings (they break runs with -W error)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit", category=FutureWarning)
        yield


# --------------------------------------------------------------------------------------------------
# Architectures a TorchScript file may be rebuilt as (eager modules are hookable, e.g. for GradCAM)
# --------------------------------------------------------------------------------------------------

#: Architecture key -> factory returning an ``nn.Module``. A TorchScript file's ``eager`` metadata names a key of
#: this table; the loader never imports or calls a name taken from a file. A string value is a lazy
#: ``"module:attribute"`` reference written here in the source (``models`` must not import ``world`` at import
#: time); it is resolved on first use. Contributor note: add built-ins here, users call :func:`register_architecture`.
_ARCHITECTURES: dict[str, Callable[..., nn.Module] | str] = {
    "disco_inspect.world.classifiers:SceneCNN": "disco_inspect.world.classifiers:SceneCNN",
}

_EAGER_KEYS = ("factory", "kwargs")


def register_architecture(key: str, factory: Callable[..., nn.Module]) -> None:
    """Let TorchScript files whose ``eager`` metadata names ``key`` be rebuilt as ``factory(**kwargs)``.

    ``factory`` (a module class or a function) must return an ``nn.Module`` whose state dict matches the scripted
    weights; ``kwargs`` come from the file and are plain JSON scalars (or lists of them). Registering is the
    consent: a file can only pick among registered architectures.
    """
    if not isinstance(key, str) or not key.strip():
        raise DiscoInspectError(f"`key` must be a non-empty string naming the architecture, got {key!r}.")
    if not callable(factory):
        raise DiscoInspectError(
            f"`factory` for architecture {key!r} must be callable (an nn.Module class or a function returning one), "
            f"got {factory!r}."
        )
    _ARCHITECTURES[key] = factory


def _architecture(key: str, path: Path) -> Callable[..., nn.Module]:
    """The factory registered as ``key`` (a lazy built-in reference is imported here, from this file's table)."""
    factory = _ARCHITECTURES[key]
    if isinstance(factory, str):
        mod_name, _, attr = factory.partition(":")
        try:
            factory = getattr(importlib.import_module(mod_name), attr)
        except (ImportError, AttributeError) as e:  # pragma: no cover - a broken built-in entry
            raise DiscoInspectError(
                f"The built-in architecture {key!r} needed by `{path}` cannot be imported ({_first_line(e)}); "
                "reinstall disco-inspect."
            ) from e
        _ARCHITECTURES[key] = factory
    return factory


def _check_eager_spec(spec: Any, where: str) -> dict[str, Any]:
    """Validate an ``eager`` spec as data: a registered key plus JSON-scalar kwargs. Nothing is imported or called."""
    fix = "re-save the model with save_torchscript_classifier, or drop the `eager` entry to use the TorchScript module"
    if not isinstance(spec, Mapping):
        raise DiscoInspectError(
            f"`eager` in {where} must be an object {{\"factory\": key, \"kwargs\": {{...}}}}, got {spec!r}; {fix}."
        )
    unknown = sorted(str(k) for k in spec if k not in _EAGER_KEYS)
    if unknown:
        raise DiscoInspectError(
            f"Unknown `eager` key(s) {', '.join(map(repr, unknown))} in {where}; valid keys are "
            f"{', '.join(_EAGER_KEYS)}; {fix}."
        )
    key = spec.get("factory")
    if not isinstance(key, str) or key not in _ARCHITECTURES:
        known = ", ".join(map(repr, sorted(_ARCHITECTURES)))
        raise DiscoInspectError(
            f"`eager.factory` {key!r} in {where} is not a registered architecture (registered: {known}). Model "
            "metadata is data, never a function to call: if you trust this architecture, register it first with "
            f"`disco_inspect.models.classifiers.register_architecture({key!r}, YourModuleClass)`; otherwise {fix}."
        )
    kwargs = spec.get("kwargs")
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, Mapping):
        raise DiscoInspectError(
            f"`eager.kwargs` in {where} must be an object of keyword arguments, got {kwargs!r}; {fix}."
        )
    scalars = (str, int, float, bool, type(None))
    for name, value in kwargs.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise DiscoInspectError(
                f"`eager.kwargs` key {name!r} in {where} is not a Python identifier; {fix}."
            )
        if not (isinstance(value, scalars)
                or (isinstance(value, list) and all(isinstance(v, scalars) for v in value))):
            raise DiscoInspectError(
                f"`eager.kwargs.{name}` = {value!r} in {where} is not allowed: kwargs values must be JSON strings, "
                f"numbers, booleans, null or lists of those; {fix}."
            )
    return {"factory": key, "kwargs": dict(kwargs)}


# --------------------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


@dataclass
class _Loaded:
    module: nn.Module
    source: str
    base: Preprocessing | None = None
    """Preprocessing from timm's config (or None → defaults)."""
    file_preprocessing: dict[str, Any] | None = None
    file_labels: list[str] | None = None
    num_classes: int | None = None


def load_classifier(
    source: Any,
    *,
    arch: str | None = None,
    labels: str | Path | Sequence[str] | None = None,
    trust_pickle: bool = False,
    preprocessing: Mapping[str, Any] | Preprocessing | None = None,
    image_processor: Any = None,
    check: bool = True,
) -> Classifier:
    """Load a classifier to audit from a module or a model file.

    Args:
        source: a :class:`Classifier` (returned, with overrides applied), an ``nn.Module``, or a path to a
            TorchScript file, a state dict (``.pt/.pth/.bin/.safetensors``, needs ``arch``), an ``.onnx`` file
            or a pickled module (needs ``trust_pickle``), or ``world:NAME`` for a shipped world classifier.
        arch: timm architecture of a state dict (created with ``pretrained=False``; nothing is downloaded).
        labels: class names: a list, a text file (one per line) or a JSON file (list or index → name).
        trust_pickle: allow unpickling a whole module; this can run arbitrary code, so only for trusted files.
        preprocessing: :class:`Preprocessing` fields overriding the image processor, the file's metadata, timm's
            config and defaults.
        image_processor: a Hugging Face image processor, its config dict or a local folder holding
            ``preprocessor_config.json`` (see :meth:`Preprocessing.from_image_processor`). A Hugging Face model
            whose ``config.name_or_path`` is a local folder holding one reads it without this.
        check: run 2 random images through the classifier to check the logits' shape and label count.
    """
    if isinstance(source, str) and ":" in source and not Path(source).exists():
        from .. import registry

        prefix = source.split(":", 1)[0]
        if registry.has("model_source", prefix):  # e.g. world:NAME, filled by the face (models never import world)
            source = registry.resolve("model_source", prefix)(source)
    explicit_labels = _coerce_labels(labels)
    if preprocessing is not None and not isinstance(preprocessing, (Mapping, Preprocessing)):
        raise DiscoInspectError(
            f"`preprocessing` must be a dict with keys {', '.join(_PRE_FIELDS)}, got {type(preprocessing).__name__}."
        )
    processor_pre = None if image_processor is None else _image_processor_fields(image_processor)

    if isinstance(source, Classifier):
        if arch is not None:
            logger.warning("`arch=%s` is ignored for an already built Classifier.", arch)
        if explicit_labels is None and preprocessing is None and processor_pre is None:
            clf = source
        else:
            clf = Classifier(
                source.module,
                _merge_preprocessing(source.preprocessing, processor_pre, preprocessing),
                explicit_labels if explicit_labels is not None else source.label_names,
                source=source.source,
            )
        if check:
            clf.check_output()
        return clf

    if isinstance(source, nn.Module):
        if arch is not None:
            logger.warning("`arch=%s` is ignored when a module is given.", arch)
        loaded = _Loaded(source, f"module:{type(source).__name__}")
        if _is_hf_model(source):
            loaded = _from_hf_model(source, has_processor=processor_pre is not None or preprocessing is not None)
        elif _is_timm_model(source):
            loaded.base = Preprocessing.from_timm(source)
            loaded.num_classes = _positive_int(getattr(source, "num_classes", None))
    elif isinstance(source, (str, os.PathLike)):
        loaded = _load_path(Path(source).expanduser(), arch=arch, trust_pickle=trust_pickle)
    else:
        raise DiscoInspectError(
            f"Cannot load a classifier from a {type(source).__name__}; pass an nn.Module or a path to "
            f"{ACCEPTED_FORMATS}."
        )

    pre = _merge_preprocessing(loaded.base or Preprocessing(), loaded.file_preprocessing, processor_pre, preprocessing)
    label_names = explicit_labels if explicit_labels is not None else loaded.file_labels
    if label_names is None and loaded.num_classes is not None:
        label_names = _default_labels(loaded.num_classes)
    clf = Classifier(loaded.module, pre, label_names, source=loaded.source)
    if check:
        clf.check_output()
    logger.info("Loaded classifier %s (%d classes)", clf.source, clf.num_classes)
    return clf


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _is_timm_model(module: nn.Module) -> bool:
    return type(module).__module__.startswith("timm.") and hasattr(module, "pretrained_cfg")


def _load_path(path: Path, *, arch: str | None, trust_pickle: bool) -> _Loaded:
    if not path.exists():
        raise DiscoInspectError(
            f"Model file `{path}` does not exist; pass the path to {ACCEPTED_FORMATS}."
        )
    if not path.is_file():
        raise DiscoInspectError(f"Model path `{path}` is not a file; pass the path to {ACCEPTED_FORMATS}.")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        _warn_arch_ignored(arch, "an ONNX file")
        return _load_onnx(path)
    if suffix == ".safetensors":
        return _from_state_dict(_load_safetensors(path), path, arch)

    reasons: list[str] = []
    extra = {METADATA_NAME: ""}
    try:
        with _quiet_jit():
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as e:
        if _is_torchscript_zip(path):
            raise DiscoInspectError(
                f"`{path}` is a TorchScript archive but cannot be loaded ({type(e).__name__}: {_first_line(e)}); "
                "re-export it with this torch version or save a state dict instead."
            ) from e
        reasons.append(f"TorchScript: {_first_line(e, 160)}")
    else:
        _warn_arch_ignored(arch, "a TorchScript file")
        meta = _parse_metadata(extra[METADATA_NAME], path)
        if meta.get("eager"):
            module = _eager_module(meta["eager"], module, path)
        return _Loaded(module, f"torchscript:{path}", file_preprocessing=meta.get("preprocessing"),
                       file_labels=meta.get("label_names"))

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        unsafe = _unsafe_globals(path)
        if unsafe is None and "Unsupported global" in str(e):
            unsafe = [m.group(1) for m in re.finditer(r"GLOBAL ([\w.]+)", str(e))] or ["?"]
        if unsafe is None:
            reasons.append(f"torch.load: {_first_line(e, 160)}")
            raise DiscoInspectError(
                f"Cannot read `{path}` as a classifier: it is corrupt or not a supported format "
                f"({'; '.join(reasons)}). Accepted: {ACCEPTED_FORMATS}."
            ) from e
        if not trust_pickle:
            names = ", ".join(f"`{n}`" for n in unsafe[:4]) + (", ..." if len(unsafe) > 4 else "")
            raise DiscoInspectError(
                f"`{path}` holds pickled Python objects ({names}), e.g. a whole module saved with torch.save(model). "
                "Loading a pickle can run arbitrary code, so pass `trust_pickle=True` (CLI `--trust-pickle`) only "
                "for a file you trust, or save the model as TorchScript (save_torchscript_classifier) or as a "
                "state dict (torch.save(model.state_dict())) with `arch=`/`--arch` instead."
            ) from e
        obj = _load_pickle(path)
        module = _find_module(obj)
        if module is not None:
            _warn_arch_ignored(arch, "a pickled module")
            return _Loaded(module, f"pickle:{path}")
    state_dict = _find_state_dict(obj)
    if state_dict is None:
        raise DiscoInspectError(
            f"`{path}` holds a {type(obj).__name__} that is neither a module nor a state dict of tensors; "
            f"pass {ACCEPTED_FORMATS}."
        )
    return _from_state_dict(state_dict, path, arch)


def _eager_module(spec: Mapping[str, Any], scripted: nn.Module, path: Path) -> nn.Module:
    """Rebuild the registered architecture a (checked) ``eager`` spec names and load the scripted weights into it.

    ``spec`` comes from :func:`_check_eager_spec`: its key is in the architecture table and its kwargs are plain
    JSON scalars, so nothing named by the file is imported or called.
    """
    key, kwargs = spec["factory"], spec["kwargs"]
    factory = _architecture(key, path)
    try:
        eager = factory(**kwargs)
    except Exception as e:
        raise DiscoInspectError(
            f"The `eager` architecture {key!r} in the `{METADATA_NAME}` metadata of `{path}` could not be built with "
            f"kwargs {kwargs} ({type(e).__name__}: {_first_line(e)}); fix the kwargs or re-save the model with "
            "save_torchscript_classifier."
        ) from e
    if not isinstance(eager, nn.Module):
        raise DiscoInspectError(
            f"The `eager` architecture {key!r} in the `{METADATA_NAME}` metadata of `{path}` returned a "
            f"`{type(eager).__name__}` instead of an nn.Module; register a factory that returns an nn.Module with "
            "register_architecture."
        )
    try:
        eager.load_state_dict(scripted.state_dict())
    except Exception as e:
        raise DiscoInspectError(
            f"The weights in `{path}` do not fit the `eager` architecture {key!r} with kwargs {kwargs} "
            f"({_first_line(e)}); fix the kwargs in its `{METADATA_NAME}` metadata or re-save the model with "
            "save_torchscript_classifier."
        ) from e
    return eager.eval()


def _warn_arch_ignored(arch: str | None, what: str) -> None:
    if arch is not None:
        logger.warning("`arch=%s` is ignored for %s (the file holds the architecture).", arch, what)


def _is_torchscript_zip(path: Path) -> bool:
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _parse_metadata(raw: str | bytes, path: Path) -> dict[str, Any]:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    if not raw:
        return {}
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as e:
        raise DiscoInspectError(
            f"The `{METADATA_NAME}` metadata in `{path}` is not valid JSON ({e}); re-save the model with "
            "save_torchscript_classifier."
        ) from e
    if not isinstance(meta, dict):
        raise DiscoInspectError(f"The `{METADATA_NAME}` metadata in `{path}` must be a JSON object.")
    out: dict[str, Any] = {}
    if meta.get("label_names") is not None:
        out["label_names"] = _check_labels(meta["label_names"], f"`label_names` in the metadata of `{path}`")
    if meta.get("preprocessing") is not None:
        out["preprocessing"] = dict(meta["preprocessing"])
    if meta.get("eager") is not None:
        out["eager"] = _check_eager_spec(meta["eager"], f"the `{METADATA_NAME}` metadata of `{path}`")
    return out


def _unsafe_globals(path: Path) -> list[str] | None:
    """Globals a weights-only load would refuse, or ``None`` if the file is not a readable torch checkpoint."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path)) or None
    except Exception:
        return None


def _load_pickle(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except (AttributeError, ModuleNotFoundError, ImportError) as e:
        raise DiscoInspectError(
            f"`{path}` is a pickled module whose code cannot be imported ({_first_line(e)}); import or define its "
            "class before loading, or save it as TorchScript (save_torchscript_classifier) instead."
        ) from e
    except Exception as e:
        raise DiscoInspectError(
            f"Cannot unpickle `{path}` ({type(e).__name__}: {_first_line(e)}); the file may be corrupt. "
            f"Accepted: {ACCEPTED_FORMATS}."
        ) from e


def _find_module(obj: Any) -> nn.Module | None:
    if isinstance(obj, nn.Module):
        return obj
    if isinstance(obj, Mapping):
        for key in ("model", "module", "net", "ema"):
            if isinstance(obj.get(key), nn.Module):
                return obj[key]
    return None


def _is_tensor_dict(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(k, str) for k in obj)
            and all(isinstance(v, torch.Tensor) for v in obj.values()))


def _find_state_dict(obj: Any) -> dict[str, torch.Tensor] | None:
    if not _is_tensor_dict(obj):
        if not isinstance(obj, Mapping):
            return None
        obj = next((obj[k] for k in _STATE_DICT_KEYS if _is_tensor_dict(obj.get(k))), None)
        if obj is None:
            return None
    sd = dict(obj)
    for prefix in _STATE_DICT_PREFIXES:
        if all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as e:  # pragma: no cover - safetensors is a core dependency
        raise DiscoInspectError(
            "The package `safetensors` is not installed; reinstall disco-inspect (`pip install safetensors`)."
        ) from e
    try:
        sd = load_file(str(path), device="cpu")
    except Exception as e:
        raise DiscoInspectError(
            f"Cannot read `{path}` as a .safetensors state dict ({type(e).__name__}: {_first_line(e)}); the file "
            f"may be corrupt. Accepted: {ACCEPTED_FORMATS}."
        ) from e
    return _find_state_dict(sd) or {}


def _head_num_classes(arch: str, state_dict: Mapping[str, torch.Tensor]) -> int | None:
    """Number of classes of the state dict's classifier head (from timm's ``classifier`` name)."""
    try:
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(arch)
    except Exception:
        cfg = None
    heads = getattr(cfg, "classifier", None) or "fc"
    for head in (heads,) if isinstance(heads, str) else tuple(heads):
        weight = state_dict.get(f"{head}.weight")
        if isinstance(weight, torch.Tensor) and weight.ndim >= 2:
            return int(weight.shape[0])
    return None


def _from_state_dict(state_dict: dict[str, torch.Tensor], path: Path, arch: str | None) -> _Loaded:
    if not state_dict:
        raise DiscoInspectError(f"`{path}` holds no tensors; pass {ACCEPTED_FORMATS}.")
    if arch is None:
        raise DiscoInspectError(
            f"`{path}` is a state dict (weights only); pass its timm architecture with `arch=` (CLI `--arch`), "
            "e.g. `arch=\"resnet50\"`, or save the model as TorchScript instead."
        )
    try:
        import timm
    except ImportError as e:  # pragma: no cover - timm is a core dependency
        raise DiscoInspectError("The package `timm` is not installed; `pip install timm`.") from e
    num_classes = _head_num_classes(arch, state_dict)
    kwargs: dict[str, Any] = {"pretrained": False}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    try:
        model = timm.create_model(arch, **kwargs)
    except Exception as e:
        if not timm.is_model(arch.split(".")[0]):
            close = difflib.get_close_matches(arch, timm.list_models(), n=5)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else "; see timm.list_models()."
            raise DiscoInspectError(f"Unknown timm architecture {arch!r} (`arch`/`--arch`){hint}") from e
        raise DiscoInspectError(
            f"timm could not create `arch={arch!r}`: {type(e).__name__}: {_first_line(e)}."
        ) from e
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as e:
        raise DiscoInspectError(_mismatch_message(model, state_dict, path, arch)) from e
    return _Loaded(model, f"timm:{arch}:{path}", base=Preprocessing.from_timm(model),
                   num_classes=_positive_int(getattr(model, "num_classes", None)))


def _mismatch_message(model: nn.Module, state_dict: Mapping[str, torch.Tensor], path: Path, arch: str) -> str:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [f"{k} (file {list(state_dict[k].shape)} vs model {list(expected[k].shape)})"
              for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
    parts = []
    for what, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if keys:
            parts.append(f"{len(keys)} {what}: {', '.join(keys[:5])}{', ...' if len(keys) > 5 else ''}")
    detail = "; ".join(parts) or "incompatible weights"
    return (
        f"The state dict in `{path}` does not fit the timm architecture `arch={arch!r}` ({detail}). Pass the "
        "architecture the weights were saved from with `arch=`/`--arch`."
    )


class _PerImage(nn.Module):
    """Runs a batch-size-1 model image by image (for ONNX graphs exported with a fixed batch of 1)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.module(x[i:i + 1]) for i in range(x.shape[0])])


def _load_onnx(path: Path) -> _Loaded:
    try:
        import onnx
    except ImportError as e:
        raise missing_extra("onnx") from e
    try:
        from onnx2torch import convert
    except ImportError as e:
        raise missing_extra("onnx2torch") from e
    try:
        model = onnx.load(str(path))
    except Exception as e:
        raise DiscoInspectError(
            f"Cannot read `{path}` as ONNX ({type(e).__name__}: {_first_line(e)}); the file may be corrupt. "
            f"Accepted: {ACCEPTED_FORMATS}."
        ) from e
    file_pre: dict[str, Any] = {}
    batch_one = False
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise DiscoInspectError(
            f"The ONNX model `{path}` has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); a classifier "
            "must take exactly one image batch [batch, 3, H, W]."
        )
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) == 4:
        batch_one = dims[0] == 1
        if dims[2] and dims[3]:
            file_pre["input_size"] = [dims[2], dims[3]]
    meta_raw = next((p.value for p in model.metadata_props if p.key == METADATA_NAME), "")
    meta = _parse_metadata(meta_raw, path)
    file_pre.update(meta.get("preprocessing") or {})
    try:
        module = convert(model)
    except Exception as e:
        raise DiscoInspectError(
            f"onnx2torch cannot convert `{path}` ({type(e).__name__}: {_first_line(e)}); export the model as "
            "TorchScript or a state dict instead."
        ) from e
    if batch_one:
        logger.info("ONNX model %s has a fixed batch size of 1; images will be run one at a time.", path)
        module = _PerImage(module)
    return _Loaded(module, f"onnx:{path}", file_preprocessing=file_pre or None, file_labels=meta.get("label_names"))
