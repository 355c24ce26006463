"""The cost plan's stages that do not generate from prompts: the attributions, and the user's images (the real-data
slice, the inversion and token edit, the real-image counterfactual scan).

Counted as :mod:`~disco_inspect.engine.counting` counts them (rows, not calls), from the same settings the audit
reads: the editing preset of the pipeline (:class:`~disco_inspect.editor.EditSettings`), the inversion method
(rows per image and step: the DDIM pivot 1; direct adds one guided step, negative-prompt nothing, null-text one
conditional prediction, 1 to ``inner_steps`` Adam updates under autograd and one guided step), the
counterfactual scan's shared source rows (:func:`~disco_inspect.editing.edit.edit_to_prompts`). Which concepts the
scan shortlists is known only after the generated scan, so its prompts are a range over the possible shortlists.
The plan assumes nothing is cached: a resumed run reads its inversions and edits back and costs less.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from .engine.counting import StagePlan, stage

#: Above this many possible shortlists the scan's prompt range is taken greedily (narrowest / widest concepts).
MAX_SHORTLISTS = 5000


def count_user_images(user_images: Any, class_name: str, classifier: Any = None) -> tuple[int, int]:
    """``(images of the class, images of the other classes)`` that ``user_images`` names (a count, a folder, a glob,
    files, or a labelled tree ``DIR/<class>/...``), found without reading them (an unreadable file still counts)."""
    from .editing.images import class_folders, find_images

    if isinstance(user_images, int):
        return user_images, 0
    tree = class_folders(user_images)
    if tree is None:
        return len(find_images(user_images)), 0

    def mine(name: str) -> bool:
        if classifier is None:
            return name == class_name
        return classifier.resolve_class(name) == classifier.resolve_class(class_name)

    counts = {name: len(find_images(folder)) for name, folder in tree.items()}
    return sum(v for k, v in counts.items() if mine(k)), sum(v for k, v in counts.items() if not mine(k))


def attribution_stage(pipe: Any, settings: Any, classifier: Any = None) -> StagePlan:
    """Captum on the first evaluation images, with and without the token: classifier rows only."""
    from .analysis.attribution import classifier_rows, last_conv_layer
    from .engine.sampling import image_size

    n = min(settings.attribution_images, settings.eval_seeds)
    cam = classifier is None or last_conv_layer(classifier) is not None
    rows = 2 * n * classifier_rows(settings.attribution_methods, *image_size(pipe), grad_cam=cam)
    return stage((0, 0), {"classifier_images": rows}, {"classifier_images": rows}, f"{n} images per side")


def image_stages(
    pipe: Any,
    class_name: str,
    images: tuple[int, int],
    *,
    scorer: Any,
    settings: Any,
    edit_settings: Any = None,
    classifier: Any = None,
) -> tuple[dict[str, StagePlan], list[str]]:
    """The stages of the user's ``images`` (of the class, of other classes): ``real_data``, ``edits`` and
    ``real_edits``, and what is not planned (a VAE-sampled stochastic edit's training)."""
    from .analysis.evidence import MIN_USABLE
    from .editor import EditSettings

    n, others = images
    knobs = (edit_settings or EditSettings()).resolved(pipe)
    stages = {
        "real_data": _real_data(n, others, settings.real_data_scale, MIN_USABLE),
        "edits": _edits(pipe, n, knobs, classifier),
    }
    n_scan = min(settings.real_edit_images, n)
    if settings.real_edit_images and hasattr(scorer, "intervention") and n_scan >= MIN_USABLE:
        stages["real_edits"] = _real_edits(pipe, class_name, n_scan, knobs, scorer, settings)
    vae = (
        [f"edits: training the {knobs['method']} VAE"] if knobs["method"] in ("null-vae", "cond-vae") else []
    )
    return stages, vae


def _real_data(n: int, others: int, scale: str, min_usable: int) -> StagePlan:
    """The classifier on every image (log-odds once more on a judgeable set when the scale asks), then on the
    other classes' images."""
    again = (0, 0) if n < min_usable or scale == "p" else ((n, n) if scale == "logodds" else (0, n))
    least, most = n + again[0] + others, n + again[1] + others
    return stage((0, 0), {"classifier_images": least}, {"classifier_images": most}, f"{n} + {others} images")


def _cfg_rows(pipe: Any, knobs: dict[str, Any]) -> tuple[int, int]:
    """``(steps, rows of one guided step)`` of the editing preset."""
    from .engine.sampling import uses_cfg

    return int(knobs["num_inference_steps"]), 2 if uses_cfg(pipe, knobs["guidance_scale"]) else 1


def _edits(pipe: Any, n: int, knobs: dict[str, Any], classifier: Any) -> StagePlan:
    """Invert the images, edit them with the token (deterministic, then ``samples`` stochastic edits), measure:
    plain-DDIM reconstructions, the VAE's round trip, the classifier on each image and its feature distances."""
    from .engine.sampling import uses_cfg

    steps, c = _cfg_rows(pipe, knobs)
    method = knobs["inversion"]
    tune = method == "null-text" and uses_cfg(pipe, knobs["guidance_scale"]) and knobs["inner_steps"] > 0
    extra = {"direct": c, "negative-prompt": 0}.get(method, c + (1 if tune else 0))
    grad = (steps, steps * knobs["inner_steps"]) if tune else (0, 0)
    s = knobs["samples"] if knobs["method"] != "none" else 0
    edit_rows = 2 + (1 + s if s else 0)  # source + token edit; source + samples
    unet = n * steps * (1 + extra + c * edit_rows + c)  # pivot, inversion, edits, plain reconstruction
    decodes = n * (edit_rows + 2)  # the edits, the plain reconstruction, the VAE's round trip
    probe = 2 if classifier is None or _has_linear(classifier) else 0  # classifier_features' probe
    clf = n * (3 + s + 2 + (2 * s if s else 0) + (s if s >= 2 else 0)) + probe
    counts = {"unet": unet, "vae_decode": decodes, "vae_encode": 2 * n, "classifier_images": clf}
    least, most = {**counts, "unet_grad": n * grad[0]}, {**counts, "unet_grad": n * grad[1]}
    return stage((decodes, decodes), least, most, f"{n} images, {method} inversion, {s} samples each")


def _has_linear(classifier: Any) -> bool:
    """Whether the classifier's feature distance probes it (it has a last Linear layer)."""
    from .editing.metrics import last_linear

    module = getattr(classifier, "module", None)
    return module is not None and last_linear(module) is not None


def _real_edits(
    pipe: Any, class_name: str, n: int, knobs: dict[str, Any], scorer: Any, settings: Any
) -> StagePlan:
    """Each image edited toward every distinct prompt of the shortlist (one shared source row per pass of
    prompts), then the classifier on each edit (twice on log-odds)."""
    from .editing.edit import MAX_ROWS

    steps, c = _cfg_rows(pipe, knobs)
    k = min(settings.real_edit_concepts, len(scorer.concepts))
    sets = [_prompt_set(scorer, c, class_name) for c in scorer.concepts]
    # without the full scan only the top factors are intervened on: the shortlist may hold only those
    lo, hi = (
        prompt_range(sets, k if settings.scan else min(k, settings.confirm_top))[0],
        prompt_range(sets, k)[1],
    )
    per = max(1, MAX_ROWS // 4 - 1)  # edit_to_prompts' prompts per pass at its batch of 4 images
    scale = {"p": (1, 1), "logodds": (2, 2)}.get(settings.real_data_scale, (1, 2))

    def counts(p: int, times: int) -> dict[str, int]:
        rows = n * (p + math.ceil(p / per))
        return {"unet": rows * steps * c, "vae_decode": rows, "classifier_images": n * p * times}

    least, most = counts(lo, scale[0]), counts(hi, scale[1])
    note = f"{n} images x {k} concepts ({lo}-{hi} prompts)"
    return stage((least["vae_decode"], most["vae_decode"]), least, most, note)


def _prompt_set(scorer: Any, concept: str, class_name: str) -> set[str]:
    """The factor prompt and the contrast prompts the scan edits toward for ``concept``."""
    factor, contrasts = scorer.intervention(concept, class_name)
    return {factor, *contrasts}


def prompt_range(prompt_sets: Sequence[set[str]], k: int) -> tuple[int, int]:
    """The fewest and most distinct prompts ``k`` of the concepts' prompt sets can need (exhaustively up to
    :data:`MAX_SHORTLISTS` choices, else from the ``k`` narrowest and the ``k`` widest)."""
    if k <= 0 or not prompt_sets:
        return 0, 0
    if math.comb(len(prompt_sets), k) <= MAX_SHORTLISTS:
        sizes = [len(set().union(*c)) for c in itertools.combinations(prompt_sets, k)]
        return min(sizes), max(sizes)
    ordered = sorted(prompt_sets, key=len)
    return len(set().union(*ordered[:k])), len(set().union(*ordered[-k:]))
