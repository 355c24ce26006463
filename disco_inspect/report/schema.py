"""JSON Schema (draft 2020-12) of ``report.json``; documented in ``docs/report-schema.md``.

Print it with ``python -m disco_inspect.report.schema``; validate with :func:`validate_report`.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import DiscoInspectError

SCHEMA_VERSION = "1.2"

_num = {"type": "number"}
_num_or_null = {"type": ["number", "null"]}
_prob = {"type": "number", "minimum": 0, "maximum": 1}
_interval = {"effect": _num, "ci_low": _num, "ci_high": _num, "p_value": _prob}

_INTERVENTION = {
    "type": ["object", "null"],
    "required": [
        "factor_prompt",
        "contrast_prompts",
        "target_prob_factor",
        "target_prob_contrast",
        "effect",
        "ci_low",
        "ci_high",
        "p_value",
        "n",
        "confirmed",
    ],
    "properties": {
        "factor_prompt": {"type": "string"},
        "contrast_prompts": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "target_prob_factor": _prob,
        "target_prob_contrast": _prob,
        **_interval,
        "n": {"type": "integer", "minimum": 2},
        "confirmed": {"type": "boolean"},
        "q_value": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "scale": {"enum": ["p", "logodds"]},
        "sequential": {
            "type": ["object", "null"],
            "required": ["stage1_seeds", "stage1_p", "decision"],
            "properties": {
                "stage1_seeds": {"type": "integer", "minimum": 2},
                "stage1_p": _prob,
                "decision": {"type": "string"},
                "stage2_seeds": {"type": "integer", "minimum": 1},
                "stage2_p": _prob,
                "combined_p": _prob,
            },
        },
        "reference": {
            "type": ["object", "null"],
            "required": ["target_prob_factor", "target_prob_contrast", "effect", "differential"],
            "properties": {
                "target_prob_factor": _prob,
                "target_prob_contrast": _prob,
                "effect": _num,
                "differential": {
                    "type": "object",
                    "required": [*_interval, "q_value", "significant"],
                    "properties": {**_interval, "q_value": _prob, "significant": {"type": "boolean"}},
                },
                "between_models": {
                    "type": "object",
                    "required": [
                        "n_models",
                        "ref_effects",
                        "ref_sd",
                        "effect",
                        "t",
                        "p_value",
                        "q_value",
                        "significant",
                    ],
                    "properties": {
                        "n_models": {"type": "integer", "minimum": 2},
                        "ref_effects": {"type": "array", "items": _num, "minItems": 2},
                        "ref_sd": _num,
                        "effect": _num,
                        "t": _num,
                        "p_value": _prob,
                        "q_value": _prob,
                        "significant": {"type": "boolean"},
                    },
                },
            },
        },
    },
}

_CONTROL = {
    "type": ["object", "null"],
    "required": ["rate", "effect", "ci_low", "ci_high", "baseline_p_value", "baseline_q_value"],
    "properties": {
        "rate": _prob,
        "effect": _num,
        "ci_low": _num,
        "ci_high": _num,
        "baseline_p_value": _prob,
        "baseline_q_value": _prob,
    },
}

_LINE = {
    "type": ["object", "null"],
    "required": ["n", "unit", "supports"],
    "properties": {
        "n": {"type": "integer", "minimum": 0},
        "unit": {"type": "string"},
        "supports": {"type": "boolean"},
        "contradicts": {"type": "boolean"},
        "judgeable": {"type": "boolean"},
        "reason": {"type": "string"},
        "effect": _num,
        "ci_low": _num,
        "ci_high": _num,
        "q_value": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "scale": {"enum": ["p", "logodds"]},
        "n_present": {"type": "integer", "minimum": 0},
        "n_absent": {"type": "integer", "minimum": 0},
        "took_rate": _prob,
        "editable": {"type": "boolean"},
        "also_moved": {"type": "array", "items": {"type": "string"}},
    },
}

_EVIDENCE = {
    "type": ["object", "null"],
    "required": ["generated", "real_data", "real_edit", "agree", "contradicted_by", "only_user_images"],
    "properties": {
        "generated": _LINE,
        "real_data": _LINE,
        "real_edit": _LINE,
        "other_classes": _LINE,
        "agree": {"type": "array", "items": {"type": "string"}},
        "contradicted_by": {"type": "array", "items": {"type": "string"}},
        "only_user_images": {"type": "boolean"},
    },
}

_SLICE = {
    "type": "object",
    "required": ["concept", "n_present", "n_absent", "judgeable", "significant"],
    "properties": {
        "concept": {"type": "string"},
        "n_present": {"type": "integer", "minimum": 0},
        "n_absent": {"type": "integer", "minimum": 0},
        "judgeable": {"type": "boolean"},
        "reason": {"type": ["string", "null"]},
        "mean_present": _num_or_null,
        "mean_absent": _num_or_null,
        "effect": _num_or_null,
        "ci_low": _num_or_null,
        "ci_high": _num_or_null,
        "p_value": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "q_value": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "significant": {"type": "boolean"},
    },
}

_RELIANCE = {
    "type": ["object", "null"],
    "required": ["slices", "n_images", "scale", "margin", "alpha", "rule", "min_group", "method"],
    "properties": {"slices": {"type": "object", "additionalProperties": _SLICE}},
}

_IMAGES = {
    "type": ["object", "null"],
    "required": [
        "n_read",
        "unreadable",
        "off_class",
        "n_off_class",
        "mean_target_prob",
        "regime",
        "real_data",
    ],
    "properties": {
        "n_read": {"type": "integer", "minimum": 1},
        "unreadable": {"type": "array", "items": {"type": "object"}},
        "off_class": {
            "type": "array",
            "items": {"type": "object", "required": ["file", "top1", "p_target"]},
        },
        "n_off_class": {"type": "integer", "minimum": 0},
        "n_unreadable": {"type": "integer", "minimum": 0},
        "mean_target_prob": _prob,
        "regime": {"enum": ["saturated", "learning", "unknown"]},
        "scale": {"enum": ["p", "logodds"]},
        "cannot_conclude": {"type": ["string", "null"]},
        "real_data": _RELIANCE,
        "other_classes": _RELIANCE,
        "n_other": {"type": "integer", "minimum": 0},
    },
}

_FACTOR = {
    "type": "object",
    "required": [
        "rank",
        "concept",
        "baseline_rate",
        "token_rate",
        "effect",
        "ci_low",
        "ci_high",
        "p_value",
        "q_value",
        "trajectory_corr",
        "significant",
        "confirmed",
        "intervention",
    ],
    "properties": {
        "rank": {"type": "integer", "minimum": 1},
        "concept": {"type": "string"},
        "baseline_rate": _prob,
        "token_rate": _prob,
        **_interval,
        "q_value": _prob,
        "trajectory_corr": {"type": ["number", "null"], "minimum": -1.000001, "maximum": 1.000001},
        "significant": {"type": "boolean"},
        "confirmed": {"type": "boolean"},
        "intervention": _INTERVENTION,
        "control": _CONTROL,
        "nominated_by": {"enum": ["both", "token", "scan", None]},
        "evidence": _EVIDENCE,
    },
}

_CONTEXT = {
    "type": "object",
    "required": ["context_reliance", "per_image"],
    "properties": {"context_reliance": _prob, "per_image": {"type": "array", "items": _prob}},
}

REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "disco-inspect report.json",
    "type": "object",
    "required": [
        "schema_version",
        "created",
        "audited",
        "token",
        "trajectory",
        "evaluation",
        "factors",
        "timings",
    ],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "created": {"type": "string"},
        "audited": {
            "type": "object",
            "required": [
                "class_name",
                "target_index",
                "classifier",
                "pipeline",
                "config",
                "settings",
                "scorer",
                "concepts",
                "versions",
                "seeds",
                "prompts",
            ],
            "properties": {
                "class_name": {"type": "string"},
                "target_index": {"type": "integer", "minimum": 0},
                "classifier": {"type": "object"},
                "pipeline": {"type": "object"},
                "config": {"type": "object"},
                "settings": {"type": "object"},
                "scorer": {"type": "string"},
                "concepts": {"type": "array", "items": {"type": "string"}},
                "versions": {"type": "object", "additionalProperties": {"type": "string"}},
                "seeds": {
                    "type": "object",
                    "required": ["train", "eval", "intervention"],
                    "additionalProperties": {"type": "array", "items": {"type": "integer"}},
                },
                "prompts": {
                    "type": "object",
                    "required": ["baseline", "token"],
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        "token": {
            "type": "object",
            "required": ["token", "stopped", "best_step", "iterations", "token_file"],
            "properties": {
                "token": {"type": "string"},
                "stopped": {"type": "string"},
                "best_step": {"type": "integer"},
                "iterations": {"type": "integer", "minimum": 0},
                "token_file": {"type": ["string", "null"]},
                "objective": {"enum": ["toward", "away", "margin"]},
                "regime": {"enum": ["learning", "saturated", "unknown"]},
                "baseline_target_prob": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            },
        },
        "control": {
            "type": ["object", "null"],
            "required": ["distance", "draws", "controls"],
            "properties": {
                "distance": _num,
                "draws": {"type": "integer", "minimum": 0},
                "controls": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["target_prob"],
                        "properties": {"target_prob": _prob},
                    },
                },
            },
        },
        "reference": {
            "type": ["object", "null"],
            "required": ["classifier", "target_index", "baseline_target_probs", "token_target_probs"],
            "properties": {
                "classifier": {"type": "object"},
                "models": {"type": "array", "items": {"type": "object"}, "minItems": 2},
                "target_index": {"type": "integer", "minimum": 0},
                "baseline_target_probs": {"type": "array", "items": _prob},
                "token_target_probs": {"type": "array", "items": _prob},
            },
        },
        "trajectory": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["step", "loss", "accuracy", "top5_accuracy", "target_prob_mean"],
                "properties": {
                    "step": {"type": "integer"},
                    "loss": _num,
                    "accuracy": _prob,
                    "top5_accuracy": _prob,
                    "target_prob_mean": _prob,
                    "token_dist": _num_or_null,
                },
            },
        },
        "evaluation": {
            "type": "object",
            "required": [
                "n_pairs",
                "baseline_target_prob",
                "token_target_prob",
                "target_prob_shift",
                "baseline_target_probs",
                "token_target_probs",
            ],
            "properties": {
                "n_pairs": {"type": "integer", "minimum": 1},
                "baseline_target_prob": _prob,
                "token_target_prob": _prob,
                "target_prob_shift": {"type": "object", "required": list(_interval), "properties": _interval},
                "baseline_target_probs": {"type": "array", "items": _prob},
                "token_target_probs": {"type": "array", "items": _prob},
            },
        },
        "factors": {
            "type": "object",
            "required": ["alpha", "min_effect", "n_pairs", "method", "ranked"],
            "properties": {
                "alpha": _prob,
                "min_effect": _num,
                "n_pairs": {"type": "integer"},
                "method": {"type": "object"},
                "ranked": {"type": "array", "items": _FACTOR},
                "reported": {"type": "array", "items": {"type": "string"}},
                "candidates": {"type": "array", "items": {"type": "string"}},
            },
        },
        "trajectory_concepts": {"type": ["object", "null"]},
        "attribution": {
            "type": ["object", "null"],
            "properties": {
                "n_images": {"type": "integer"},
                "methods": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["baseline", "token"],
                        "properties": {"baseline": _CONTEXT, "token": _CONTEXT},
                    },
                },
                "skipped": {"type": "object", "additionalProperties": {"type": "string"}},
                "mask_area": {"type": "object", "additionalProperties": _prob},
            },
        },
        "evidence": {
            "type": "object",
            "required": ["summary", "generated_seeds", "images", "real_edits"],
            "properties": {
                "summary": {"type": "string"},
                "generated_seeds": {
                    "type": ["object", "null"],
                    "required": ["min", "max"],
                    "properties": {"min": {"type": "integer"}, "max": {"type": "integer"}},
                },
                "images": _IMAGES,
                "real_edits": {
                    "type": ["object", "null"],
                    "required": [
                        "concepts",
                        "n_images",
                        "scale",
                        "shortlist_rule",
                        "method",
                        "editable_rate",
                    ],
                    "properties": {
                        "concepts": {
                            "type": "object",
                            "additionalProperties": {
                                "type": "object",
                                "required": ["concept", "n_images", "took_rate", "editable", "significant"],
                            },
                        },
                        "n_images": {"type": "integer", "minimum": 2},
                        "editable_rate": _num_or_null,
                    },
                },
            },
        },
        "timings": {"type": "object", "additionalProperties": _num},
        "calls": {
            "description": "Per stage (and 'total'), the model calls it made: 'unet' and 'unet_grad' (UNet "
            "evaluations, rows of a batch, without and with gradients; a guided step on 8 images is 16), "
            "'vae_decode', 'vae_encode' (images), 'classifier_images'. None for a result loaded without them.",
            "type": ["object", "null"],
            "additionalProperties": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 0},
            },
        },
        "edits": {
            "type": "object",
            "required": ["href", "method", "summary", "images", "failures"],
            "properties": {
                "href": {"type": "string"},
                "method": {"type": "string"},
                "inversion": {"type": "string"},
                "summary": {"type": "object"},
                "images": {"type": "array", "items": {"type": "object"}},
                "failures": {"type": "array", "items": {"type": "object"}},
            },
        },
    },
}


def validate_report(doc: dict[str, Any]) -> None:
    """Raise :class:`DiscoInspectError` if ``doc`` does not follow :data:`REPORT_SCHEMA`."""
    try:
        import jsonschema
    except ImportError as e:  # pragma: no cover - jsonschema is a report dependency
        from ..errors import missing_extra

        raise missing_extra("jsonschema") from e
    errors = sorted(
        jsonschema.Draft202012Validator(REPORT_SCHEMA).iter_errors(doc), key=lambda e: list(e.path)
    )
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.path) or "(root)"
        raise DiscoInspectError(f"report.json does not follow the schema at `{where}`: {e.message}.")


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(REPORT_SCHEMA, indent=2))
