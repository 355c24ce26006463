"""Counterfactual edits of the user's own images: DDIM inversion (direct, null-text or negative-prompt), prompt-to-prompt edits with the
learned class token, stochastic embeddings for diverse edits, and image metrics.

Contributor note: ``inversion`` <- ``controller`` (prompt-to-prompt attention) <- ``edit`` <- ``stochastic`` (the
paper's VAEs); ``measure`` uses ``metrics``; ``images`` is a leaf."""

from __future__ import annotations

from .._lazy import attach

__all__, __getattr__, __dir__ = attach(
    __name__,
    {
        "invert": ".inversion",
        "Inversion": ".inversion",
        "reconstruct": ".inversion",
        "edit": ".edit",
        "EditResult": ".edit",
        "load_images": ".images",
        "ImageLoad": ".images",
        "measure_edits": ".measure",
        "psnr": ".metrics",
        "ssim": ".metrics",
        "classifier_features": ".metrics",
        "lpips_distance": ".metrics",
        "NullVAE": ".stochastic",
        "CondVAE": ".stochastic",
    },
)
