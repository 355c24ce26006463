"""Counterfactual edits of the user's own images: DDIM + null-text inversion, prompt-to-prompt edits with the
learned class token, stochastic embeddings for diverse edits, and image metrics.

Contributor note: ``inversion`` (invert, Inversion) <- ``controller`` (prompt-to-prompt attention) <- ``edit``
(deterministic and stochastic edits) <- ``stochastic`` (the paper's VAEs) ; ``metrics`` and ``images`` are leaves.
"""
from __future__ import annotations

__all__ = ["Inversion", "invert", "EditResult", "edit", "load_images", "ImageLoad"]


def __getattr__(name: str):  # lazy: importing the package must not import diffusers
    import importlib

    where = {"Inversion": "inversion", "invert": "inversion", "EditResult": "edit", "edit": "edit",
             "load_images": "images", "ImageLoad": "images"}
    if name in where:
        return getattr(importlib.import_module(f"{__name__}.{where[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
