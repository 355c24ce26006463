"""Defaults that depend on the pipeline: the world pipeline gets the world's presets and scorer (looked up in
:mod:`disco_inspect.registry`, which the face fills), every other pipeline the papers' settings.

Orchestration layer: used by :mod:`disco_inspect.auditor`, :mod:`disco_inspect.editor` and the CLI.
"""

from __future__ import annotations

from typing import Any

from . import registry
from .config import DiscoConfig
from .errors import DiscoInspectError

#: The source prompt of edits when the user gives none (the token goes before ``{class_name}``).
EDIT_PROMPT = "a photo of a {class_name}"
#: Mokady et al.'s null-text inversion setting for Stable Diffusion: 50 DDIM steps at CFG 7.5.
EDIT_STEPS = 50
EDIT_GUIDANCE = 7.5


def preset_name(pipe: Any) -> str | None:
    """The name of the pipeline's preset (``"world"`` for the bundled world), or None."""
    source = str(getattr(pipe, "_disco_source", ""))
    return source if registry.has("disco_config", source) else None


def is_world_pipeline(pipe: Any) -> bool:
    """True for the bundled world's pipeline (``load_pipeline("world")``)."""
    return preset_name(pipe) == "world"


def default_config(pipe: Any) -> DiscoConfig:
    """The paper's defaults with ``objective="auto"``, or the pipeline's preset (the world's:
    :func:`disco_inspect.world.presets.world_config`)."""
    name = preset_name(pipe)
    if name is not None:
        return registry.resolve("disco_config", name)()
    return DiscoConfig(objective="auto")  # the paper's settings; a saturated class gets the margin objective


def default_scorer(pipe: Any) -> Any:
    """The pipeline's registered concept scorer (the world's oracle); otherwise an error naming how to give one."""
    name = preset_name(pipe)
    if name is not None and registry.has("scorer", name):
        return registry.resolve("scorer", name)()
    raise DiscoInspectError(
        "No concept scorer for this pipeline: pass `scorer=OpenClipScorer.from_pretrained(arch, weights)` "
        "(CLI: --clip-arch ViT-B-32 --clip-weights FILE; weights must be local)."
    )


def edit_defaults(pipe: Any) -> dict[str, Any]:
    """Editing defaults: Mokady et al.'s 50 steps at CFG 7.5 and prompt-to-prompt's 0.8/0.4 for Stable Diffusion;
    the pipeline's preset on top (the world's: :data:`disco_inspect.world.presets.WORLD_EDIT`)."""
    from .editing.edit import CROSS_REPLACE, NOISE_SIGMA, SELF_REPLACE

    base: dict[str, Any] = {
        "prompt": EDIT_PROMPT,
        "num_inference_steps": EDIT_STEPS,
        "guidance_scale": EDIT_GUIDANCE,
        "cross_replace": CROSS_REPLACE,
        "self_replace": SELF_REPLACE,
        "sigma": NOISE_SIGMA,
    }
    name = preset_name(pipe)
    if name is not None and registry.has("edit_defaults", name):
        base.update(registry.resolve("edit_defaults", name)())
    return base
