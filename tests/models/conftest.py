"""Shared checks of the real-family tests (random weights in real configurations)."""

from __future__ import annotations

import pytest
import torch


def _audit_through_the_scan(pipe: object, tmp_path, steps: int = 2, guidance: float = 3.0) -> dict:
    """`report` with the tiny colour scorer's 2 concepts (every one scanned on 4 paired seeds), `evaluate` the learned
    token, then `edit` one image with it: what each stage of the report counted, as report.json holds it."""
    import json

    from disco_inspect.auditor import AuditSettings, audit
    from disco_inspect.config import DiscoConfig
    from disco_inspect.engine.evaluate import evaluate_accuracy
    from disco_inspect.report.schema import validate_report
    from disco_inspect.testing import ColourScorer, tiny_classifier

    clf = tiny_classifier(seed=0, input_size=64)
    cfg = DiscoConfig(max_iters=2, n_images=1, num_inference_steps=steps, guidance_scale=guidance, seed=0)
    settings = AuditSettings(eval_seeds=4, intervention_seeds=4, attribution_images=0, null_control=False)
    res = audit(
        pipe, clf, 0, scorer=ColourScorer(), config=cfg, settings=settings, out=tmp_path, progress=False
    )
    assert sorted(f.concept for f in res.factors.factors if f.intervention is not None) == ["green", "red"]
    assert all(f.intervention.n == 4 for f in res.factors.factors)
    doc = json.loads((tmp_path / "report.json").read_text())
    validate_report(doc)
    acc = evaluate_accuracy(
        pipe, clf, 0, res.run, n_seeds=2, num_inference_steps=steps, guidance_scale=guidance
    )
    assert acc.seeds and 0.0 <= acc.token["accuracy"] <= 1.0 and 0.0 <= acc.baseline["accuracy"] <= 1.0
    _edit_one_image(pipe, res.run.token_path, clf.class_name(0), steps, guidance)
    return doc["calls"]


def _edit_one_image(pipe: object, token_file, class_name: str, steps: int, guidance: float) -> None:
    """`edit` one image with the learned token: inversion (null-text where guidance is on, 2 inner steps) and the
    token edit give finite images of the input's shape."""
    from disco_inspect.editing.edit import edit
    from disco_inspect.editing.inversion import invert, reconstruct

    images = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    inv = invert(
        pipe,
        images,
        f"a photo of a {class_name}",
        num_inference_steps=steps,
        guidance_scale=guidance,
        inner_steps=2,
        progress=False,
    )
    assert torch.isfinite(reconstruct(pipe, inv)).all()
    res = edit(pipe, inv, token_file, class_name=class_name, progress=False)
    assert res.edits.shape == images.shape and torch.isfinite(res.edits).all()


@pytest.fixture
def audit_through_the_scan():
    """``report`` through the scan on 2 concepts, then ``evaluate``, on a given pipeline: report.json's calls."""
    return _audit_through_the_scan
