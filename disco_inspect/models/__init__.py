"""Loading what is audited and what generates: diffusion pipelines, tokenizers, classifiers."""

from __future__ import annotations

from .._lazy import attach

__all__, __getattr__, __dir__ = attach(
    __name__,
    {
        "load_pipeline": ".pipelines",
        "set_scheduler": ".pipelines",
        "describe_pipeline": ".pipelines",
        "clip_tokenizer": ".tokenizers",
        "Classifier": ".classifiers",
        "Preprocessing": ".classifiers",
        "load_classifier": ".classifiers",
        "save_torchscript_classifier": ".classifiers",
        "register_architecture": ".classifiers",
        "classifier_fingerprint": ".fingerprint",
    },
)
