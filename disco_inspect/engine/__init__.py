"""The DisCo engine: the class token, the denoising loop, the optimisation, run folders and evaluation."""

from __future__ import annotations

from .._lazy import attach

__all__, __getattr__, __dir__ = attach(
    __name__,
    {
        "train_token": ".optimize",
        "RunInterrupted": ".optimize",
        "TokenRun": ".token_run",
        "evaluate_accuracy": ".evaluate",
        "AccuracyResult": ".evaluate",
        "generate": ".sampling",
        "ClassToken": ".token",
        "save_token": ".token",
        "load_token": ".token",
        "install_token": ".token",
        "put_token": ".token",
        "TowardClass": ".objectives",
        "AwayFromClass": ".objectives",
        "LogOddsMargin": ".objectives",
        "target_probabilities": ".records",
    },
)
