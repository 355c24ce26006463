"""Real-data reliance: a planted dependence on a concept is found on real images, a clean one is not, and a concept
with too few images on a side is reported as not judgeable, with its counts."""

import pytest
import torch

from disco_inspect.analysis.reliance import TERTILE_RULE, concept_groups, real_data_reliance
from disco_inspect.errors import DiscoInspectError


def _images(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    has_a = torch.rand(n, generator=g) < 0.5
    has_b = torch.rand(n, generator=g) < 0.5
    rare = torch.zeros(n, dtype=torch.bool)
    rare[:3] = True
    present = torch.stack([has_a, has_b, rare], 1)
    return present, g


def test_a_planted_reliance_is_found_and_an_unrelated_concept_is_not():
    present, g = _images()
    # the classifier is surer of the class when concept "a" is present; "b" does nothing
    values = (
        0.6
        + 0.25 * present[:, 0].double()
        + 0.05 * torch.randn(len(present), generator=g, dtype=torch.float64)
    )
    res = real_data_reliance(["a", "b", "rare"], present, ~present, values, margin=0.05)
    a, b = res.slices["a"], res.slices["b"]
    assert a.significant and a.q_value < 0.05
    assert a.ci_low < 0.25 < a.ci_high
    assert a.n_present + a.n_absent == 60
    assert not b.significant and b.judgeable and b.p_value > 0.05
    assert res.significant == ["a"]


def test_a_concept_with_too_few_images_on_a_side_is_not_judgeable_with_its_counts():
    present, g = _images()
    values = torch.rand(len(present), generator=g, dtype=torch.float64)
    res = real_data_reliance(["a", "b", "rare"], present, ~present, values, min_group=5)
    rare = res.slices["rare"]
    assert not rare.judgeable and rare.effect is None and rare.q_value is None
    assert (rare.n_present, rare.n_absent) == (3, 57)
    assert "3 with the concept and 57 without" in rare.reason
    assert res.not_judgeable == ["rare"]
    # BH runs over the two judged concepts only
    assert all(res.slices[c].q_value is not None for c in ("a", "b"))


def test_a_clean_classifier_gets_no_real_data_reliance():
    hits = 0
    for seed in range(10):
        present, g = _images(seed=seed)
        values = torch.rand(len(present), generator=g, dtype=torch.float64)
        hits += len(real_data_reliance(["a", "b", "rare"], present, ~present, values).significant)
    assert hits <= 1


def test_deterministic_and_recorded():
    present, g = _images()
    values = torch.rand(len(present), generator=g, dtype=torch.float64)
    one = real_data_reliance(["a", "b", "rare"], present, ~present, values, rule="r").to_dict()
    two = real_data_reliance(["a", "b", "rare"], present, ~present, values, rule="r").to_dict()
    assert one == two
    assert one["slices"]["rare"]["judgeable"] is False and "permutation" in one["method"]


def test_tertile_rule_for_scorers_without_their_own():
    scores = torch.arange(12, dtype=torch.float64)[:, None].repeat(1, 2)
    present, absent, rule = concept_groups(object(), scores)
    assert rule == TERTILE_RULE
    assert present[:, 0].nonzero().flatten().tolist() == [8, 9, 10, 11]
    assert absent[:, 0].nonzero().flatten().tolist() == [0, 1, 2, 3]


def test_the_oracle_reads_presence_per_factor():
    from disco_inspect.world.scenes import FACTOR_VALUES, generate_scenes
    from disco_inspect.world.scorer import OracleScorer

    scorer = OracleScorer()
    scenes = generate_scenes(16, seed=3)
    present, absent, rule = concept_groups(scorer, scorer.score(scenes.images))
    assert "oracle" in rule and torch.equal(present, ~absent)
    bg = [i for i, c in enumerate(scorer.concepts) if c.startswith("background=")]
    assert present[:, bg].sum(1).tolist() == [1] * 16  # one background read per image
    truth = scenes.factors["background"]
    read = present[:, bg].float().argmax(1)
    assert (read == truth).float().mean() > 0.9, FACTOR_VALUES["background"]


def test_bad_shapes_are_refused():
    with pytest.raises(DiscoInspectError, match=r"present.*\[N, K\]"):
        real_data_reliance(
            ["a"], torch.ones(4, 2, dtype=torch.bool), torch.ones(4, 2, dtype=torch.bool), torch.ones(4)
        )
