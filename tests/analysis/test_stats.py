"""Paired statistics: planted shifts are found, null data is not, q-values match Benjamini–Hochberg."""

import math

import pytest
import torch

from disco_inspect.analysis.stats import benjamini_hochberg, correlation, paired_shift
from disco_inspect.errors import DiscoInspectError


def test_planted_shift_is_detected_and_interval_covers_it():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(40, 3, generator=g)
    b = a.clone()
    b[:, 0] += 0.3 + 0.05 * torch.randn(40, generator=g)
    b[:, 1] += 0.05 * torch.randn(40, generator=g)  # noise only
    s = paired_shift(a, b)
    assert s.p_value[0] < 0.001 and s.p_value[1] > 0.05
    assert s.ci_low[0] < 0.3 < s.ci_high[0]
    assert math.isclose(float(s.effect[2]), 0.0, abs_tol=1e-12) and s.p_value[2] == 1.0
    again = paired_shift(a, b)
    assert torch.equal(s.p_value, again.p_value) and torch.equal(s.ci_low, again.ci_low)  # seeded


def test_exact_sign_flip_p_value_for_small_samples():
    a = torch.zeros(6, 1)
    b = torch.full((6, 1), 0.2)
    # every pair moved up: only the all-plus pattern reaches the observed mean -> p = 1 / 2^6
    assert float(paired_shift(a, b).p_value[0]) == pytest.approx(1 / 64)
    # the margin turns "any rise" into "a rise larger than the margin"
    assert float(paired_shift(a, b, margin=0.25).p_value[0]) == 1.0
    assert float(paired_shift(b, a, alternative="less").p_value[0]) == pytest.approx(1 / 64)


def test_null_data_rejects_at_about_the_nominal_rate():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(24, 400, generator=g), torch.rand(24, 400, generator=g)
    rate = float((paired_shift(a, b, n_perm=2000, n_boot=10).p_value < 0.05).float().mean())
    assert rate < 0.08


def test_benjamini_hochberg_matches_hand_computation():
    p = torch.tensor([0.01, 0.04, 0.03, 0.005])
    # sorted: .005 (x4/1=.02), .01 (x4/2=.02), .03 (x4/3=.04), .04 (x4/4=.04)
    assert torch.allclose(benjamini_hochberg(p), torch.tensor([0.02, 0.04, 0.04, 0.02], dtype=torch.float64))
    assert benjamini_hochberg(torch.tensor([0.9, 0.8])).max() <= 1.0


def test_correlation_and_constant_series():
    x = torch.arange(10.0)
    y = torch.stack([2 * x + 1, -x, torch.ones(10)], 1)
    r = correlation(x, y)
    assert r[0] == pytest.approx(1.0) and r[1] == pytest.approx(-1.0) and math.isnan(float(r[2]))


@pytest.mark.parametrize(
    "a, b", [(torch.zeros(5, 2), torch.zeros(5, 3)), (torch.zeros(1, 2), torch.zeros(1, 2))]
)
def test_bad_inputs_raise_one_clear_error(a, b):
    with pytest.raises(DiscoInspectError):
        paired_shift(a, b)
    with pytest.raises(DiscoInspectError, match="alternative"):
        paired_shift(torch.zeros(4), torch.zeros(4), alternative="bigger")


def test_student_t_tail_matches_the_tables():
    from disco_inspect.analysis.stats import student_t_sf

    assert student_t_sf(2.776, 4) == pytest.approx(0.025, abs=1e-4)  # t_{0.975, 4}
    assert student_t_sf(12.706, 1) == pytest.approx(0.025, abs=1e-5)  # t_{0.975, 1}
    assert student_t_sf(1.96, 1e6) == pytest.approx(0.025, abs=1e-4)  # the normal limit
    assert student_t_sf(0.0, 3) == pytest.approx(0.5) and student_t_sf(-2.776, 4) == pytest.approx(
        0.975, abs=1e-4
    )


def test_student_t_quantile_matches_the_tables():
    from disco_inspect.analysis.stats import student_t_ppf, student_t_sf

    for df, t in ((1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (29, 2.045), (30, 2.042), (120, 1.980)):
        assert student_t_ppf(0.975, df) == pytest.approx(t, abs=5e-4)  # t_{0.975, df}
    assert student_t_ppf(0.025, 4) == pytest.approx(-2.776, abs=5e-4) and student_t_ppf(0.5, 7) == 0.0
    assert student_t_ppf(0.95, 10) == pytest.approx(1.812, abs=5e-4)
    assert student_t_sf(student_t_ppf(0.99, 3.5), 3.5) == pytest.approx(0.01, abs=1e-10)
    with pytest.raises(DiscoInspectError, match="`q`"):
        student_t_ppf(1.0, 4)


def test_between_models_flags_only_what_lies_beyond_the_references_spread():
    from disco_inspect.analysis.stats import between_models

    refs = torch.tensor(
        [[0.0, 5.0], [1.0, 9.0], [-1.0, 7.0], [0.5, 3.0], [-0.5, 6.0]]
    )  # concept 2 varies a lot
    res = between_models(torch.tensor([6.0, 10.0]), refs)
    assert res.n_models == 5 and res.effect.tolist() == pytest.approx([6.0, 4.0])
    assert res.p_value[0] < 0.002  # far outside a tight spread: t = 6.9 on 4 degrees of freedom
    assert res.p_value[1] > 0.05  # large, but within what the references show
    assert between_models(torch.tensor([6.0, 10.0]), refs, margin=5.0).p_value[0] > res.p_value[0]
    with pytest.raises(DiscoInspectError, match="R >= 2"):
        between_models(torch.tensor([1.0]), torch.tensor([[1.0]]))


# -- the two-stage p-value (adaptive seeds) -------------------------------------------------------------------------


def test_two_stage_p_is_valid_at_every_level():
    """Under H0 (independent uniform stage p-values) P(p <= u) <= u for every u: BH may take it."""
    from disco_inspect.analysis.stats import two_stage_p

    g = torch.Generator().manual_seed(0)
    p1, p2 = (
        torch.rand(40_000, generator=g, dtype=torch.float64),
        torch.rand(40_000, generator=g, dtype=torch.float64),
    )
    p = torch.tensor([two_stage_p(float(a), float(b), 0.002, 0.5) for a, b in zip(p1, p2, strict=True)])
    for u in (0.001, 0.002, 0.005, 0.01, 0.05, 0.2, 0.5, 0.8):
        assert float((p <= u).double().mean()) <= u * 1.1 + 0.002, u


def test_two_stage_p_stops_early_and_rewards_a_strong_second_stage():
    from disco_inspect.analysis.stats import two_stage_p

    assert two_stage_p(0.001, None, 0.002, 0.5) == 0.001  # efficacy
    assert two_stage_p(0.7, None, 0.002, 0.5) == 0.7  # futility
    strong, weak = two_stage_p(0.03, 1e-4, 0.002, 0.5), two_stage_p(0.03, 0.5, 0.002, 0.5)
    assert 0.002 < strong < 0.0021 < weak <= 0.5
    with pytest.raises(DiscoInspectError, match="stage-2"):
        two_stage_p(0.03, None, 0.002, 0.5)
