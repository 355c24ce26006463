"""What the token changed and why: concept scoring, statistics, factors, interventions, attributions, masks, FID."""

from __future__ import annotations

from .._lazy import attach

__all__, __getattr__, __dir__ = attach(
    __name__,
    {
        "ConceptScorer": ".concepts",
        "OpenClipScorer": ".concepts",
        "load_concepts": ".concepts",
        "load_concept_file": ".concepts",
        "discover_factors": ".factors",
        "Factor": ".factors",
        "FactorAudit": ".factors",
        "Intervention": ".factors",
        "intervene": ".intervention",
        "scan_interventions": ".scan",
        "paired_shift": ".stats",
        "benjamini_hochberg": ".stats",
        "attribute": ".attribution",
        "context_reliance": ".attribution",
        "object_masks": ".attention",
        "frechet_distance": ".fid",
        "fid_table": ".fid",
        "merge_fid_tables": ".fid",
        "format_fid_table": ".fid",
        "features_from_classifier": ".fid",
    },
)
