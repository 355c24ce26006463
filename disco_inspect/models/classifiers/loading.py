"""Loading a classifier to audit: one format decision (:func:`resolve_format`), then one loader per format.

:func:`load_classifier` accepts an ``nn.Module``, a TorchScript file (optionally carrying
``disco_inspect.json`` metadata, see :func:`~.export.save_torchscript_classifier`), a state dict
(``.pt``/``.pth``/``.bin``/``.safetensors``) together with a timm architecture name, an ONNX file, or —
only with explicit consent — a fully pickled module. :func:`resolve_format` names the format of a source once
(from its type, a file's suffix and a look at its bytes that unpickles nothing) and :data:`_LOADERS` maps each
format to the function that loads it.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...errors import DiscoInspectError, missing_extra
from ._common import ACCEPTED_FORMATS, METADATA_NAME, _first_line, _quiet_jit
from .architectures import _check_eager_spec, _eager_module
from .labels import _check_labels, _coerce_labels, _default_labels
from .preprocessing import (
    _PRE_FIELDS,
    HF_PROCESSOR_CONFIG,
    Preprocessing,
    _hw,
    _image_processor_fields,
    _merge_preprocessing,
)
from .wrapper import Classifier

__all__ = ["load_classifier", "resolve_format"]

logger = logging.getLogger(__name__)

_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")
_STATE_DICT_PREFIXES = ("module.", "_orig_mod.")


@dataclass
class _Loaded:
    module: nn.Module
    source: str
    base: Preprocessing | None = None
    """Preprocessing from timm's config (or None → defaults)."""
    file_preprocessing: dict[str, Any] | None = None
    file_labels: list[str] | None = None
    num_classes: int | None = None


@dataclass(frozen=True)
class _Request:
    """The options of :func:`load_classifier` a loader may read besides the source."""

    arch: str | None
    trust_pickle: bool
    has_processor: bool
    """An image processor or explicit preprocessing was given (a Hugging Face model then needs no processor file)."""


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
        from ... import registry

        prefix = source.split(":", 1)[0]
        if registry.has(
            "model_source", prefix
        ):  # e.g. world:NAME, filled by the face (models never import world)
            source = registry.resolve("model_source", prefix)(source)
    explicit_labels = _coerce_labels(labels)
    if preprocessing is not None and not isinstance(preprocessing, (Mapping, Preprocessing)):
        raise DiscoInspectError(
            f"`preprocessing` must be a dict with keys {', '.join(_PRE_FIELDS)}, got {type(preprocessing).__name__}."
        )
    processor_pre = None if image_processor is None else _image_processor_fields(image_processor)

    fmt = resolve_format(source)
    if fmt == "classifier":  # already built: nothing to load
        return _reuse_classifier(
            source,
            arch=arch,
            labels=explicit_labels,
            preprocessing=preprocessing,
            processor_pre=processor_pre,
            check=check,
        )
    request = _Request(
        arch, trust_pickle, has_processor=processor_pre is not None or preprocessing is not None
    )
    loaded = _LOADERS[fmt](source, request)

    pre = _merge_preprocessing(
        loaded.base or Preprocessing(), loaded.file_preprocessing, processor_pre, preprocessing
    )
    label_names = explicit_labels if explicit_labels is not None else loaded.file_labels
    if label_names is None and loaded.num_classes is not None:
        label_names = _default_labels(loaded.num_classes)
    clf = Classifier(loaded.module, pre, label_names, source=loaded.source)
    if check:
        clf.check_output()
    logger.debug("Loaded classifier %s (%d classes)", clf.source, clf.num_classes)
    return clf


def _reuse_classifier(
    clf: Classifier,
    *,
    arch: str | None,
    labels: list[str] | None,
    preprocessing: Mapping[str, Any] | Preprocessing | None,
    processor_pre: dict[str, Any] | None,
    check: bool,
) -> Classifier:
    """A built :class:`Classifier`: returned as is, or rebuilt around its module with the overrides applied."""
    if arch is not None:
        logger.warning("`arch=%s` is ignored for an already built Classifier.", arch)
    if labels is None and preprocessing is None and processor_pre is None:
        out = clf
    else:
        out = Classifier(
            clf.module,
            _merge_preprocessing(clf.preprocessing, processor_pre, preprocessing),
            labels if labels is not None else clf.label_names,
            source=clf.source,
        )
    if check:
        out.check_output()
    return out


# --------------------------------------------------------------------------------------------------
# The format decision
# --------------------------------------------------------------------------------------------------

#: File suffixes that name their format (any other file is told apart by its content).
_SUFFIX_FORMATS = {".onnx": "onnx", ".safetensors": "safetensors"}

#: Bytes 4..8 of a TorchScript flatbuffer file (``torch.jit.load`` reads those as well as zip archives).
_FLATBUFFER_MAGIC = b"PTMF"


def resolve_format(source: Any) -> str:
    """The format of a classifier source, decided once before anything is loaded; a key of :data:`_LOADERS`.

    In the style of timm's ``_resolve_pretrained_source``: one small decision, after which
    :func:`load_classifier` runs the one loader registered for the answer.

    - ``"classifier"``: an already built :class:`Classifier` (reused, nothing is loaded);
    - ``"hf"``: a transformers ``PreTrainedModel``; ``"timm_module"``: a timm model; ``"module"``: any other
      ``nn.Module``;
    - for a path (``str``/``PathLike``): ``"onnx"`` and ``"safetensors"`` by suffix; ``"torchscript"`` for a
      TorchScript zip archive (or flatbuffer); ``"pickle"`` for a ``torch.save`` checkpoint whose pickle names
      globals a weights-only load refuses (e.g. a whole module: needs ``trust_pickle``); ``"state_dict"`` for any
      other file, read with a weights-only ``torch.load`` (whose loader reports a corrupt file).

    Telling the files apart reads the zip listing and the pickle's opcodes; nothing is unpickled or executed.
    ``world:NAME`` is resolved to its file by :func:`load_classifier` first. Raises :class:`DiscoInspectError`
    for a path that does not exist or is not a file, and for a source of any other type.
    """
    if isinstance(source, nn.Module):
        if isinstance(source, Classifier):
            return "classifier"
        if _is_hf_model(source):
            return "hf"
        return "timm_module" if _is_timm_model(source) else "module"
    if not isinstance(source, (str, os.PathLike)):
        raise DiscoInspectError(
            f"Cannot load a classifier from a {type(source).__name__}; pass an nn.Module or a path to "
            f"{ACCEPTED_FORMATS}."
        )
    path = Path(source).expanduser()
    if not path.exists():
        raise DiscoInspectError(f"Model file `{path}` does not exist; pass the path to {ACCEPTED_FORMATS}.")
    if not path.is_file():
        raise DiscoInspectError(f"Model path `{path}` is not a file; pass the path to {ACCEPTED_FORMATS}.")
    if path.suffix.lower() in _SUFFIX_FORMATS:
        return _SUFFIX_FORMATS[path.suffix.lower()]
    if _is_torchscript_zip(path) or _is_flatbuffer(path):
        return "torchscript"
    return "pickle" if _unsafe_globals(path) else "state_dict"


def _is_timm_model(module: nn.Module) -> bool:
    return type(module).__module__.startswith("timm.") and hasattr(module, "pretrained_cfg")


def _is_hf_model(module: nn.Module) -> bool:
    """A transformers ``PreTrainedModel`` (checked by class name, without importing transformers)."""
    return any(
        c.__name__ == "PreTrainedModel" and c.__module__.startswith("transformers.")
        for c in type(module).__mro__
    )


def _is_flatbuffer(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(8)[4:] == _FLATBUFFER_MAGIC
    except OSError:
        return False


# --------------------------------------------------------------------------------------------------
# One loader per format
# --------------------------------------------------------------------------------------------------


def _load_module(module: nn.Module, request: _Request) -> _Loaded:
    """Any ``nn.Module``: used as given, with the default preprocessing."""
    _warn_module_arch(request.arch)
    return _Loaded(module, f"module:{type(module).__name__}")


def _load_timm_module(module: nn.Module, request: _Request) -> _Loaded:
    """A timm model: its data config gives the preprocessing and its ``num_classes`` the default labels."""
    _warn_module_arch(request.arch)
    return _Loaded(
        module,
        f"module:{type(module).__name__}",
        base=Preprocessing.from_timm(module),
        num_classes=_positive_int(getattr(module, "num_classes", None)),
    )


def _load_hf_model(module: nn.Module, request: _Request) -> _Loaded:
    """A Hugging Face image model: see :func:`_from_hf_model`."""
    _warn_module_arch(request.arch)
    return _from_hf_model(module, has_processor=request.has_processor)


def _load_onnx_file(source: str | os.PathLike[str], request: _Request) -> _Loaded:
    _warn_arch_ignored(request.arch, "an ONNX file")
    return _load_onnx(_path(source))


def _load_safetensors_file(source: str | os.PathLike[str], request: _Request) -> _Loaded:
    path = _path(source)
    return _from_state_dict(_load_safetensors(path), path, request.arch)


def _load_torchscript(source: str | os.PathLike[str], request: _Request) -> _Loaded:
    """A TorchScript file, with its metadata; an ``eager`` entry rebuilds a registered architecture."""
    path = _path(source)
    extra = {METADATA_NAME: ""}
    failure = ""
    try:
        with _quiet_jit():
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as e:
        if _is_torchscript_zip(path):
            raise DiscoInspectError(
                f"`{path}` is a TorchScript archive but cannot be loaded ({type(e).__name__}: {_first_line(e)}); "
                "re-export it with this torch version or save a state dict instead."
            ) from e
        failure = f"TorchScript: {_first_line(e, 160)}"
    if failure:  # a flatbuffer-looking file torch.jit cannot read: try it as a torch.save checkpoint
        return _load_checkpoint(path, request, torchscript_failure=failure)
    _warn_arch_ignored(request.arch, "a TorchScript file")
    meta = _parse_metadata(extra[METADATA_NAME], path)
    if meta.get("eager"):
        module = _eager_module(meta["eager"], module, path)
    return _Loaded(
        module,
        f"torchscript:{path}",
        file_preprocessing=meta.get("preprocessing"),
        file_labels=meta.get("label_names"),
    )


def _load_pickle_file(source: str | os.PathLike[str], request: _Request) -> _Loaded:
    """A ``torch.save`` checkpoint holding pickled objects (e.g. ``torch.save(model)``); needs ``trust_pickle``."""
    path = _path(source)
    return _unpickle(path, _unsafe_globals(path) or ["?"], request)


def _load_state_dict_file(source: str | os.PathLike[str], request: _Request) -> _Loaded:
    return _load_checkpoint(_path(source), request)


#: Format (see :func:`resolve_format`) -> its loader. ``"classifier"`` is not here: a built one is reused.
_LOADERS: dict[str, Callable[[Any, _Request], _Loaded]] = {
    "hf": _load_hf_model,
    "timm_module": _load_timm_module,
    "module": _load_module,
    "torchscript": _load_torchscript,
    "onnx": _load_onnx_file,
    "safetensors": _load_safetensors_file,
    "pickle": _load_pickle_file,
    "state_dict": _load_state_dict_file,
}


# --------------------------------------------------------------------------------------------------
# Loader helpers
# --------------------------------------------------------------------------------------------------


def _path(source: str | os.PathLike[str]) -> Path:
    return Path(source).expanduser()


def _warn_module_arch(arch: str | None) -> None:
    if arch is not None:
        logger.warning("`arch=%s` is ignored when a module is given.", arch)


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


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
            HF_PROCESSOR_CONFIG,
            name or type(module).__name__,
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
    return _Loaded(
        module,
        f"hf:{name or type(module).__name__}",
        base=_merge_preprocessing(Preprocessing(), fields),
        file_labels=labels,
        num_classes=num_classes,
    )


def _load_checkpoint(path: Path, request: _Request, *, torchscript_failure: str | None = None) -> _Loaded:
    """A ``torch.save`` checkpoint read weights-only: a state dict, or a training checkpoint holding one.

    The globals of a legacy (non-zip) checkpoint cannot be listed before loading, so a pickled module saved that
    way is recognised here, when the weights-only load refuses it, and then needs consent like any pickle.
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        unsafe = _unsafe_globals(path)
        if unsafe is None and "Unsupported global" in str(e):
            unsafe = [m.group(1) for m in re.finditer(r"GLOBAL ([\w.]+)", str(e))] or ["?"]
        if unsafe is None:
            reasons = [
                torchscript_failure or _torchscript_failure(path),
                f"torch.load: {_first_line(e, 160)}",
            ]
            raise DiscoInspectError(
                f"Cannot read `{path}` as a classifier: it is corrupt or not a supported format "
                f"({'; '.join(reasons)}). Accepted: {ACCEPTED_FORMATS}."
            ) from e
        return _unpickle(path, unsafe, request, cause=e)
    return _from_checkpoint(obj, path, request.arch)


def _torchscript_failure(path: Path) -> str:
    """Why ``torch.jit.load`` refuses ``path`` (named with torch.load's reason when no format reads a file)."""
    try:
        with _quiet_jit():
            torch.jit.load(str(path), map_location="cpu", _extra_files={METADATA_NAME: ""})
    except Exception as e:
        return f"TorchScript: {_first_line(e, 160)}"
    return "TorchScript: not a TorchScript archive"  # pragma: no cover - resolve_format would have said torchscript


def _unpickle(
    path: Path, unsafe: list[str], request: _Request, cause: BaseException | None = None
) -> _Loaded:
    """Unpickle a checkpoint that names the globals ``unsafe``, only with ``trust_pickle``."""
    if not request.trust_pickle:
        names = ", ".join(f"`{n}`" for n in unsafe[:4]) + (", ..." if len(unsafe) > 4 else "")
        raise DiscoInspectError(
            f"`{path}` holds pickled Python objects ({names}), e.g. a whole module saved with torch.save(model). "
            "Loading a pickle can run arbitrary code, so pass `trust_pickle=True` (CLI `--trust-pickle`) only "
            "for a file you trust, or save the model as TorchScript (save_torchscript_classifier) or as a "
            "state dict (torch.save(model.state_dict())) with `arch=`/`--arch` instead."
        ) from cause
    obj = _load_pickle(path)
    module = _find_module(obj)
    if module is not None:
        _warn_arch_ignored(request.arch, "a pickled module")
        return _Loaded(module, f"pickle:{path}")
    return _from_checkpoint(obj, path, request.arch)


def _from_checkpoint(obj: Any, path: Path, arch: str | None) -> _Loaded:
    state_dict = _find_state_dict(obj)
    if state_dict is None:
        raise DiscoInspectError(
            f"`{path}` holds a {type(obj).__name__} that is neither a module nor a state dict of tensors; "
            f"pass {ACCEPTED_FORMATS}."
        )
    return _from_state_dict(state_dict, path, arch)


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
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


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
            sd = {k[len(prefix) :]: v for k, v in sd.items()}
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
            'e.g. `arch="resnet50"`, or save the model as TorchScript instead.'
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
    return _Loaded(
        model,
        f"timm:{arch}:{path}",
        base=Preprocessing.from_timm(model),
        num_classes=_positive_int(getattr(model, "num_classes", None)),
    )


def _mismatch_message(model: nn.Module, state_dict: Mapping[str, torch.Tensor], path: Path, arch: str) -> str:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k} (file {list(state_dict[k].shape)} vs model {list(expected[k].shape)})"
        for k in expected
        if k in state_dict and state_dict[k].shape != expected[k].shape
    ]
    parts = []
    for what, keys in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape mismatches", shapes),
    ):
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
        return torch.cat([self.module(x[i : i + 1]) for i in range(x.shape[0])])


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
    return _Loaded(
        module, f"onnx:{path}", file_preprocessing=file_pre or None, file_labels=meta.get("label_names")
    )
