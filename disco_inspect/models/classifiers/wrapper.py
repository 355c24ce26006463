"""The :class:`Classifier` wrapper: a frozen module behind differentiable preprocessing, with class-name lookup.

A :class:`Classifier` wraps any module that maps a normalised image batch to logits ``[B, C]``.
Its ``forward`` takes images in ``[0, 1]`` and applies :class:`~.preprocessing.Preprocessing` (resize → centre
crop → normalise) with differentiable torch ops, so gradients reach the images (the DisCo token is trained
through the classifier). The classifier's own parameters are frozen.
"""

from __future__ import annotations

import difflib
import logging
import operator
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ...errors import DiscoInspectError
from ._common import ACCEPTED_FORMATS, _first_line
from .labels import _check_labels, _default_labels, _norm_key, _synonyms
from .preprocessing import Preprocessing

__all__ = ["Classifier"]

logger = logging.getLogger(__name__)


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
        if (
            param is not None
            and param.is_floating_point()
            and (x.dtype, x.device) != (param.dtype, param.device)
        ):
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
        if (
            not isinstance(out, torch.Tensor)
            or out.ndim != 2
            or out.shape[0] != 2
            or not out.is_floating_point()
        ):
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
