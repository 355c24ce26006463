"""Factor discovery ranks a planted concept first and finds nothing in unchanged images."""

import json

import pytest
import torch

from disco_inspect.analysis.factors import discover_factors
from disco_inspect.errors import DiscoInspectError

CONCEPTS = ["background=green", "background=gray", "texture=stripes", "object=sun"]


def _scores(shift: float, n: int = 32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    base = (torch.rand(n, len(CONCEPTS), generator=g) < 0.3).float()
    tok = base.clone()
    flip = torch.rand(n, generator=g) < shift  # the token turns some backgrounds green
    tok[flip, 0], tok[flip, 1] = 1.0, 0.0
    return base, tok


def test_planted_concept_ranks_first_with_evidence():
    base, tok = _scores(0.6)
    traj_target = [0.3, 0.4, 0.5, 0.6, 0.7]
    traj = torch.tensor(
        [
            [0.3, 0.4, 0.2, 0.1],
            [0.4, 0.35, 0.2, 0.1],
            [0.5, 0.3, 0.25, 0.1],
            [0.6, 0.2, 0.2, 0.1],
            [0.7, 0.1, 0.2, 0.1],
        ]
    )
    audit = discover_factors(CONCEPTS, base, tok, trajectory_scores=traj, trajectory_target=traj_target)
    top = audit.factors[0]
    assert top.concept == "background=green" and top.rank == 1 and top.significant
    assert top.effect > 0.3 and top.ci_low > 0.05 and top.q_value < 0.05
    assert top.trajectory_corr == pytest.approx(1.0)
    assert [f.concept for f in audit.significant] == ["background=green"]
    assert audit.get("object=sun").q_value > 0.05
    json.dumps(audit.to_dict(), allow_nan=False)  # strict JSON


def test_unchanged_images_and_tiny_shifts_give_no_factor():
    base, _ = _scores(0.0)
    assert discover_factors(CONCEPTS, base, base.clone()).significant == []
    # a real but small rise (below min_effect) is not reported as a factor
    tok = (base + 0.03).clamp(max=1)
    assert discover_factors(CONCEPTS, base, tok, min_effect=0.05).significant == []


def test_bad_settings_name_the_value():
    base, tok = _scores(0.5)
    with pytest.raises(DiscoInspectError, match="alpha"):
        discover_factors(CONCEPTS, base, tok, alpha=1.5)
    with pytest.raises(DiscoInspectError, match="column"):
        discover_factors(CONCEPTS[:2], base, tok)


def test_confirmed_factors_rank_first_by_their_effect_on_the_classifier():
    from disco_inspect.analysis.factors import Intervention

    base, tok = _scores(0.6)
    tok[:, 2] = 1.0  # a second, larger shift: texture=stripes everywhere
    audit = discover_factors(CONCEPTS, base, tok)
    assert [f.concept for f in audit.significant][:2] == ["texture=stripes", "background=green"]

    def intervention(effect):
        return Intervention(
            "f", ["c"], 0.9, 0.9 - effect, effect, effect - 0.1, effect + 0.1, 0.001, 16, effect > 0.05
        )

    audit.get("texture=stripes").intervention = intervention(0.1)
    audit.get("background=green").intervention = intervention(0.4)
    audit.rank_by_reliance()
    assert [(f.concept, f.rank) for f in audit.factors[:2]] == [
        ("background=green", 1),
        ("texture=stripes", 2),
    ]
    assert "ranking" in audit.to_dict()["method"]


def test_null_control_makes_drift_alone_not_significant():
    """Concept 0 rises as much under control tokens as under the learned one (drift of inserting a token); concept 1
    rises only under the learned token. Against the baseline both look significant; against the control only 1."""
    from disco_inspect.analysis.factors import discover_factors

    g = torch.Generator().manual_seed(0)
    n = 32
    base = torch.rand(n, 2, generator=g) * 0.1
    token = base.clone()
    token[:, 0] += 0.5
    token[:, 1] += 0.5
    control = base.clone()
    control[:, 0] += 0.5 + 0.02 * torch.randn(n, generator=g)
    plain = discover_factors(["drift", "taught"], base, token)
    assert plain.get("drift").significant and plain.get("taught").significant
    audit = discover_factors(["drift", "taught"], base, token, control_scores=control)
    assert not audit.get("drift").significant and audit.get("taught").significant
    drift = audit.get("drift")
    assert drift.control["rate"] > 0.5 and abs(drift.control["effect"]) < 0.05
    assert drift.control["baseline_q_value"] < 0.05  # the plain test is kept beside it
    assert drift.effect > 0.4  # the displayed shift is still token - baseline
    assert audit.get("taught").nominated_by == "token"
