"""disco-inspect: audit image classifiers through Discriminative Class Tokens.

Tier 1, here: the calls a user makes (about fifteen names). Tier 2: ``disco_inspect.models`` (pipelines,
classifiers), ``.engine`` (token, sampling, evaluation), ``.editing`` (inversion, edits, image metrics),
``.analysis`` (concept scoring, statistics, interventions, attributions), ``.report`` and ``.world`` (the bundled
world), each with its own ``__all__``.

Contributor note: ``_PUBLIC`` below is the lazy-import table (name -> defining module, imported on first use, so
``import disco_inspect`` loads no diffusers/timm/captum).
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import registry as _registry
from ._lazy import attach
from .config import DiscoConfig
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

_PUBLIC = {
    "audit": "disco_inspect.auditor",
    "AuditSettings": "disco_inspect.auditor",
    "AuditResult": "disco_inspect.auditor",
    "plan_audit": "disco_inspect.planner",
    "train_token": "disco_inspect.engine.optimize",
    "TokenRun": "disco_inspect.engine.token_run",
    "evaluate_accuracy": "disco_inspect.engine.evaluate",
    "load_pipeline": "disco_inspect.models.pipelines",
    "load_classifier": "disco_inspect.models.classifiers",
    "Classifier": "disco_inspect.models.classifiers",
    "invert": "disco_inspect.editing.inversion",
    "edit": "disco_inspect.editing.edit",
    "edit_images": "disco_inspect.editor",
    "ConceptScorer": "disco_inspect.analysis.concepts",
    "OpenClipScorer": "disco_inspect.analysis.concepts",
}

__all__, __getattr__, __dir__ = attach(
    __name__,
    _PUBLIC,
    eager={"DiscoConfig": DiscoConfig, "DiscoInspectError": DiscoInspectError, "__version__": __version__},
)
