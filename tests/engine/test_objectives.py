"""Objectives: the margin objective keeps a signal when the class is already recognised; `auto` picks it then."""

import pytest
import torch

from disco_inspect import DiscoConfig, DiscoInspectError, train_token
from disco_inspect.engine.objectives import (
    OBJECTIVE_CHOICES,
    LogOddsMargin,
    TowardClass,
    regime,
    resolve_objective,
)


def _grad_norm(objective, logits):
    logits = logits.clone().requires_grad_(True)
    objective(logits).sum().backward()
    return float(logits.grad.norm())


def test_margin_keeps_a_gradient_when_saturated():
    saturated = torch.tensor([[12.0, 0.0, 0.0, 0.0]])  # p(target) = 0.99998
    ce = _grad_norm(TowardClass(0), saturated)
    margin = _grad_norm(LogOddsMargin(0), saturated)
    assert ce < 1e-4 and margin > 0.5, (ce, margin)
    # and it agrees with cross-entropy on the direction: raise the target logit
    logits = saturated.clone().requires_grad_(True)
    LogOddsMargin(0)(logits).sum().backward()
    assert logits.grad[0, 0] < 0 and (logits.grad[0, 1:] > 0).all()


def test_margin_stops_at_its_cap():
    logits = torch.tensor([[40.0, 0.0, 0.0]], requires_grad=True)
    LogOddsMargin(0, cap=20.0)(logits).sum().backward()
    assert float(logits.grad.abs().sum()) == 0.0


def test_auto_resolves_by_the_baseline():
    assert resolve_objective("auto", 0.95) == "margin" and regime(0.95) == "saturated"
    assert resolve_objective("auto", 0.6) == "toward" and regime(0.6) == "learning"
    assert resolve_objective("toward", 0.99) == "toward"


def test_config_accepts_exactly_the_registered_objectives():
    for name in OBJECTIVE_CHOICES:
        DiscoConfig(objective=name)
    with pytest.raises(DiscoInspectError, match="objective"):
        DiscoConfig(objective="hinge")


def test_saturated_class_is_detected_and_trained_with_the_margin(tmp_path, new_world_pipeline):
    """On the world's clean classifier the circle is recognised at baseline (p ~ 1): cross-entropy has no signal.
    `auto` switches to the margin objective, the run says so, and the margin rises."""
    from disco_inspect import load_classifier
    from disco_inspect.world.presets import world_config

    pipe = new_world_pipeline()
    clf = load_classifier("world:clean")
    cfg = world_config(n_images=4, seed_pool=0, max_iters=6, patience=10)
    run = train_token(pipe, clf, "circle", config=cfg, out=tmp_path / "run", progress=False)
    assert run.regime == "saturated" and run.objective == "margin"
    losses = [r["loss"] for r in run.trajectory]
    assert losses[-1] < losses[0], losses  # -margin falls: the classifier grows more confident
    assert all(r["grad_norm"] > 0 for r in run.trajectory)
