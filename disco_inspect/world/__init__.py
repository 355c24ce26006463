"""The bundled world: scenes with known factors, its text-to-image model, the oracle and its scorer, classifiers
with planted biases, presets and the ground-truth benchmarks. A user of the layers below; none of them imports it."""

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
        "run_benchmark": ".benchmark",
        "run_random_benchmark": ".random_benchmark",
        "run_saturated_benchmark": ".random_benchmark",
        "run_edit_benchmark": ".edit_benchmark",
        "fewshot_table": ".fewshot",
        "format_fewshot_table": ".fewshot",
        "world_fid_table": ".oracle_fid",
    },
)
