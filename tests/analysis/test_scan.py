"""The intervention scan finds what the classifier relies on without the token, with false-discovery control;
with a reference classifier it separates a shortcut from what both models share."""

import pytest
import torch

from disco_inspect import DiscoInspectError, load_classifier
from disco_inspect.analysis.scan import scan_interventions
from disco_inspect.world.scorer import OracleScorer

SEEDS = list(range(500, 512))  # 12: the exact sign-flip test can reach q < .05 across 20 concepts
GEN = {"num_inference_steps": 10, "guidance_scale": 4.0}


@pytest.fixture(scope="module")
def world(world_pipeline):
    return world_pipeline, OracleScorer()


def test_scan_confirms_the_planted_background_and_the_reference_separates_it(world):
    pipe, scorer = world
    biased = load_classifier("world:biased_circle_green")
    clean = load_classifier("world:clean")
    res = scan_interventions(
        pipe, biased, 0, "circle", scorer, SEEDS, references=[clean], progress=False, **GEN
    )
    green = res.interventions["background=green"]
    assert green.confirmed and green.q_value < 0.05 and green.effect > 0.2
    assert max(res.interventions.values(), key=lambda iv: iv.effect) is green
    assert green.reference["differential"]["significant"] and green.reference["differential"]["effect"] > 0.2
    # every distinct prompt generated once: 20 concepts of 5 factors share their prompts
    assert len(res.prompts) == 20 and set(res.target_probs) == set(res.prompts)


def test_scan_of_a_clean_classifier_confirms_nothing(world):
    pipe, scorer = world
    res = scan_interventions(
        pipe, load_classifier("world:clean"), 0, "circle", scorer, SEEDS, progress=False, **GEN
    )
    assert not [c for c, iv in res.interventions.items() if iv.confirmed]


def test_scan_needs_interventions_and_seeds(world):
    pipe, _ = world

    class NoInterventions:
        concepts = ["x"]

        def score(self, images):
            return torch.zeros(len(images), 1)

    with pytest.raises(DiscoInspectError, match="intervention"):
        scan_interventions(
            pipe, load_classifier("world:clean"), 0, "circle", NoInterventions(), SEEDS, progress=False
        )
    with pytest.raises(DiscoInspectError, match="4 paired seeds"):
        scan_interventions(
            pipe, load_classifier("world:clean"), 0, "circle", world[1], [1, 2], progress=False
        )


class _Confident(torch.nn.Module):
    """A classifier made near-certain of class 0 everywhere: its target logit raised by a constant, so p(target)
    rounds to ~1 while the log-odds differences between images are unchanged."""

    def __init__(self, inner, boost=12.0):
        super().__init__()
        self.inner, self.boost = inner, boost

    def forward(self, x):
        logits = self.inner(x).float().clone()
        logits[:, 0] += self.boost
        return logits


def test_target_log_odds_is_exact_where_the_probability_rounds_to_one():
    from disco_inspect.engine.records import target_log_odds, target_probabilities

    clf = torch.nn.Identity()
    logits = torch.tensor([[30.0, 0.0, 0.0], [0.0, 1.0, -1.0], [-2.0, 3.0, 0.5]])
    lo = target_log_odds(clf, logits, 0)
    p = logits.double().softmax(-1)[:, 0]
    assert target_probabilities(clf, logits, 0)[0] == 1.0  # float32 p saturates ...
    assert torch.allclose(lo[1:], (p / (1 - p)).log()[1:], atol=1e-6)  # where 1 - p is representable
    # ... its log-odds do not: log(e^30 / (e^0 + e^0))
    assert lo[0] == pytest.approx(30 - torch.log(torch.tensor(2.0)).item(), abs=1e-4)


def test_log_odds_scan_finds_the_shortcut_that_saturation_hides(world):
    pipe, scorer = world
    confident = _Confident(load_classifier("world:biased_circle_green"))
    on_p = scan_interventions(pipe, confident, 0, "circle", scorer, SEEDS, progress=False, **GEN)
    assert not [c for c, iv in on_p.interventions.items() if iv.confirmed]  # p ~ 1 everywhere: no signal
    res = scan_interventions(
        pipe, confident, 0, "circle", scorer, SEEDS, scale="logodds", min_effect=1.0, progress=False, **GEN
    )
    green = res.interventions["background=green"]
    assert green.scale == "logodds" and green.confirmed and green.effect > 1.0
    assert max(res.interventions.values(), key=lambda iv: iv.effect) is green
    assert green.target_prob_factor > 0.99  # the probabilities stay reported on their own scale


def test_confirmation_can_require_the_differential_effect(world):
    pipe, scorer = world
    biased = load_classifier("world:biased_circle_green")
    kw = {"require_differential": True, "progress": False, **GEN}
    res = scan_interventions(
        pipe, biased, 0, "circle", scorer, SEEDS, references=[load_classifier("world:clean")], **kw
    )
    assert res.interventions["background=green"].confirmed
    assert res.interventions["background=green"].reference["differential"]["significant"]
    # against itself every differential is exactly 0: whatever the model shares with its reference is never
    # confirmed, however large its own effect
    same = scan_interventions(pipe, biased, 0, "circle", scorer, SEEDS, references=[biased], **kw)
    assert same.interventions["background=green"].effect > 0.2
    assert not [c for c, iv in same.interventions.items() if iv.confirmed]


def test_scan_refuses_an_unknown_scale_and_a_differential_without_reference(world):
    pipe, scorer = world
    clf = load_classifier("world:clean")
    with pytest.raises(DiscoInspectError, match="'odds'.*'p' or 'logodds'"):
        scan_interventions(pipe, clf, 0, "circle", scorer, SEEDS, scale="odds", progress=False)
    with pytest.raises(DiscoInspectError, match="require_differential.*reference"):
        scan_interventions(pipe, clf, 0, "circle", scorer, SEEDS, require_differential=True, progress=False)


class _Tempered(torch.nn.Module):
    """One more model of a population: the same classifier at another softmax temperature."""

    def __init__(self, inner, temperature):
        super().__init__()
        self.inner, self.temperature = inner, temperature

    def forward(self, x):
        return self.inner(x).float() / self.temperature


@pytest.mark.slow
def test_several_references_make_the_spread_between_models_the_null(world):
    """Against a population of clean models (here one clean classifier at five temperatures), the planted
    background lies beyond their spread and is confirmed; one more member of the population has nothing beyond it."""
    pipe, scorer = world
    clean = load_classifier("world:clean")
    refs = [_Tempered(clean, t) for t in (0.8, 0.9, 1.0, 1.1, 1.25)]
    kw = {"require_differential": True, "progress": False, **GEN}
    biased = load_classifier("world:biased_circle_green")
    res = scan_interventions(
        pipe, biased, 0, "circle", scorer, SEEDS, references=refs, reference_targets=[0] * 5, **kw
    )
    green = res.interventions["background=green"]
    between = green.reference["between_models"]
    assert between["n_models"] == 5 and len(between["ref_effects"]) == 5
    assert between["significant"] and between["effect"] > 0.2 and green.confirmed
    assert max(res.interventions.values(), key=lambda iv: iv.reference["differential"]["effect"]) is green
    member = _Tempered(clean, 1.05)
    res = scan_interventions(
        pipe, member, 0, "circle", scorer, SEEDS, references=refs, reference_targets=[0] * 5, **kw
    )
    assert not [c for c, iv in res.interventions.items() if iv.confirmed]


# -- adaptive seeds: a two-stage design spends more seeds only on undecided concepts ---------------------------------


def test_adaptive_seeds_measure_only_the_undecided_concepts_again(world):
    """With 4 stage-1 seeds no concept can stop for efficacy (the smallest sign-flip p is 1/16): the planted green
    background is undecided, is measured again on the extra seeds, and is confirmed on the combined p-value; the
    concepts stopped at stage 1 keep their 4 seeds, and only the continued concepts' prompts are generated again."""
    pipe, _ = world
    scorer = OracleScorer(factors=["background"])
    biased = load_classifier("world:biased_circle_green")
    res = scan_interventions(
        pipe, biased, 0, "circle", scorer, SEEDS[:4], extra_seeds=SEEDS[4:], progress=False, **GEN
    )
    green = res.interventions["background=green"]
    assert green.sequential["decision"] == "continued to stage 2" and green.n == 12
    assert green.p_value == green.sequential["combined_p"] and green.confirmed
    assert res.design["max_seeds"] == 12 and "background=green" in res.design["continued"]
    for c, iv in res.interventions.items():
        assert iv.n == (12 if c in res.design["continued"] else 4), c
        assert iv.sequential["stage1_seeds"] == 4
    again = {
        p
        for c in res.design["continued"]
        for p in (res.interventions[c].factor_prompt, *res.interventions[c].contrast_prompts)
    }
    assert {p for p, v in res.target_probs.items() if len(v) == 12} == again


def test_without_extra_seeds_the_scan_is_the_fixed_design(world):
    pipe, _ = world
    res = scan_interventions(
        pipe,
        load_classifier("world:clean"),
        0,
        "circle",
        OracleScorer(factors=["size"]),
        SEEDS[:4],
        progress=False,
        **GEN,
    )
    assert res.design == {} and all(iv.sequential is None and iv.n == 4 for iv in res.interventions.values())
