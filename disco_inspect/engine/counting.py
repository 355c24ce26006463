"""What an audit costs, counted: UNet evaluations (with and without gradients), VAE decodes and encodes, classifier
images, per stage.

The counts are rows, not calls: a classifier-free-guidance step on 8 images is 16 UNet evaluations, whatever the
batching. They are taken by forward pre-hooks on the pipeline's real modules (``unet``, ``vae.decoder``,
``vae.encoder``) and on the classifier, attached for the length of one stage only, so nothing lingers on the user's
pipeline. :func:`~disco_inspect.planner.plan_audit` predicts the same numbers without running anything (per stage a
:class:`StagePlan`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

#: The counted quantities, as report.json's ``calls`` section and the plan name them.
COUNTS = ("unet", "unet_grad", "vae_decode", "vae_encode", "classifier_images")


@dataclass
class StagePlan:
    """One stage: images it generates and each count of :data:`~disco_inspect.engine.counting.COUNTS` as
    ``(least, most)``."""

    images: tuple[int, int]
    calls: dict[str, tuple[int, int]]
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ranges as ``[least, most]``."""
        return {
            "images": list(self.images),
            "calls": {k: list(v) for k, v in self.calls.items()},
            "note": self.note,
        }


def stage(images: tuple[int, int], least: dict[str, int], most: dict[str, int], note: str = "") -> StagePlan:
    """A stage from its least and most counts."""
    return StagePlan(images, {k: (least.get(k, 0), most.get(k, 0)) for k in COUNTS}, note)


def add_counts(*parts: dict[str, int]) -> dict[str, int]:
    """Counts summed."""
    return {k: sum(p.get(k, 0) for p in parts) for k in COUNTS}


def _rows(args: tuple[Any, ...], kwargs: dict[str, Any], name: str) -> int:
    """Batch rows of a module call: its first positional tensor or the keyword ``name``."""
    x = args[0] if args else kwargs.get(name)
    return int(x.shape[0]) if isinstance(x, torch.Tensor) else 0


class StageClock:
    """Per stage, wall time (``timings``) and counted model calls (``calls``) of ``pipe`` and ``classifier``.

    ``with clock.stage("token"): ...`` times the block and counts what it runs; a stage entered twice adds up."""

    def __init__(self, pipe: Any = None, classifier: Any = None) -> None:
        self.timings: dict[str, float] = {}
        self.calls: dict[str, dict[str, int]] = {}
        self._modules = _counted_modules(pipe, classifier)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time and count the block as stage ``name``."""
        counts: Counter[str] = Counter()
        handles = [
            m.register_forward_pre_hook(_hook(key, arg, counts), with_kwargs=True)
            for key, arg, m in self._modules
        ]
        t = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t
            for h in handles:
                h.remove()
            done = self.calls.setdefault(name, dict.fromkeys(COUNTS, 0))
            for k, v in counts.items():
                done[k] += v

    def total(self) -> dict[str, int]:
        """The counts summed over every stage."""
        return {k: sum(c[k] for c in self.calls.values()) for k in COUNTS}


def _hook(key: str, arg: str, counts: Counter[str]) -> Any:
    """A forward pre-hook adding the call's rows to ``counts[key]`` (UNet rows under autograd to ``unet_grad``)."""

    def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        rows = _rows(args, kwargs, arg)
        counts[f"{key}_grad" if key == "unet" and torch.is_grad_enabled() else key] += rows

    return hook


def _counted_modules(pipe: Any, classifier: Any) -> list[tuple[str, str, torch.nn.Module]]:
    """(count, keyword of the batched input, module) for every part of ``pipe`` and ``classifier`` that is counted."""
    vae = getattr(pipe, "vae", None)
    parts = [
        ("unet", "sample", getattr(pipe, "unet", None)),
        ("vae_decode", "z", getattr(vae, "decoder", None)),
        ("vae_encode", "x", getattr(vae, "encoder", None)),
        ("classifier_images", "x", classifier),
    ]
    return [(k, a, m) for k, a, m in parts if isinstance(m, torch.nn.Module)]
