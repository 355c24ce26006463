"""disco-inspect: audit image classifiers through Discriminative Class Tokens.

The public API is re-exported here; heavy parts (diffusers, timm, captum) load lazily on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from . import registry as _registry
from .config import PAPER_TEMPLATES, DiscoConfig
from .errors import DiscoInspectError

# The bundled world's parts that lower layers look up instead of importing upward (see registry.py).
for _kind, _name, _ref in (
    ("model_source", "world", "disco_inspect.world.make:resolve_model"),
    ("text_encoder", "minilm", "disco_inspect.world.model:load_text_encoder"),
    ("disco_config", "world", "disco_inspect.world.presets:world_config"),
    ("edit_defaults", "world", "disco_inspect.world.presets:edit_defaults"),
    ("scorer", "world", "disco_inspect.world.scorer:OracleScorer"),
):
    _registry.register(_kind, _name, _ref)

_LAZY = {
    "load_pipeline": "disco_inspect.models.pipelines",
    "set_scheduler": "disco_inspect.models.pipelines",
    "clip_tokenizer": "disco_inspect.models.tokenizers",
    "Classifier": "disco_inspect.models.classifiers",
    "Preprocessing": "disco_inspect.models.classifiers",
    "load_classifier": "disco_inspect.models.classifiers",
    "save_torchscript_classifier": "disco_inspect.models.classifiers",
    "train_token": "disco_inspect.engine.optimize",
    "TokenRun": "disco_inspect.engine.result",
    "evaluate_accuracy": "disco_inspect.engine.evaluate",
    "AccuracyResult": "disco_inspect.engine.evaluate",
    "generate": "disco_inspect.engine.sampling",
    "ClassToken": "disco_inspect.engine.token",
    "save_token": "disco_inspect.engine.token",
    "load_token": "disco_inspect.engine.token",
    "install_token": "disco_inspect.engine.token",
    "TowardClass": "disco_inspect.engine.objectives",
    "AwayFromClass": "disco_inspect.engine.objectives",
    "ConceptScorer": "disco_inspect.analysis.concepts",
    "OracleScorer": "disco_inspect.world.scorer",
    "OpenClipScorer": "disco_inspect.analysis.concepts",
    "load_concepts": "disco_inspect.analysis.concepts",
    "load_concept_file": "disco_inspect.analysis.concepts",
    "discover_factors": "disco_inspect.analysis.factors",
    "Factor": "disco_inspect.analysis.factors",
    "FactorAudit": "disco_inspect.analysis.factors",
    "Intervention": "disco_inspect.analysis.factors",
    "intervene": "disco_inspect.analysis.intervention",
    "attribute": "disco_inspect.analysis.attribution",
    "context_reliance": "disco_inspect.analysis.attribution",
    "object_masks": "disco_inspect.analysis.attention",
    "invert": "disco_inspect.editing.inversion",
    "Inversion": "disco_inspect.editing.inversion",
    "edit": "disco_inspect.editing.edit",
    "EditResult": "disco_inspect.editing.edit",
    "edit_images": "disco_inspect.editor",
    "EditSettings": "disco_inspect.editor",
    "audit": "disco_inspect.auditor",
    "AuditSettings": "disco_inspect.auditor",
    "AuditResult": "disco_inspect.auditor",
    "validate_report": "disco_inspect.report.schema",
    "REPORT_SCHEMA": "disco_inspect.report.schema",
    "world_config": "disco_inspect.world.presets",
    "run_benchmark": "disco_inspect.world.benchmark",
    "generate_scenes": "disco_inspect.world.scenes",
    "BiasSpec": "disco_inspect.world.bias",
    "load_oracle": "disco_inspect.world.oracle",
}

__all__ = ["DiscoConfig", "DiscoInspectError", "PAPER_TEMPLATES", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'disco_inspect' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
