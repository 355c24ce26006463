"""The bundled world: scenes with known factors, its text-to-image model, the oracle and its scorer, classifiers
with planted biases and presets; :mod:`.benchmarks` holds the ground-truth benchmarks of the audit. A user of the
layers below; none of them imports it."""

from __future__ import annotations

from .._lazy import attach

__all__, __getattr__, __dir__ = attach(
    __name__,
    {
        "generate_scenes": ".scenes",
        "render_scenes": ".scenes",
        "BiasSpec": ".bias",
        "load_oracle": ".oracle",
        "OracleScorer": ".scorer",
        "world_config": ".presets",
        "WORLD_EDIT": ".presets",
        "train_world_classifier": ".scene_classifiers",
        "train_on_images": ".scene_classifiers",
        "bias_accuracy": ".scene_classifiers",
        "run_benchmark": ".benchmarks.handpicked",
        "run_random_benchmark": ".benchmarks.randomised",
        "run_saturated_benchmark": ".benchmarks.randomised",
        "run_edit_benchmark": ".benchmarks.edits",
        "fewshot_table": ".benchmarks.fewshot",
        "format_fewshot_table": ".benchmarks.fewshot",
        "world_fid_table": ".benchmarks.oracle_fid",
    },
)
