"""The intervention scan finds what the classifier relies on without the token, with false-discovery control;
with a reference classifier it separates a shortcut from what both models share."""

import pytest
import torch

from disco_inspect import DiscoInspectError, load_classifier, load_pipeline
from disco_inspect.analysis.scan import scan_interventions
from disco_inspect.world.scorer import OracleScorer

SEEDS = list(range(500, 512))  # 12: the exact sign-flip test can reach q < .05 across 20 concepts
GEN = {"num_inference_steps": 10, "guidance_scale": 4.0}


@pytest.fixture(scope="module")
def world():
    return load_pipeline("world"), OracleScorer()


def test_scan_confirms_the_planted_background_and_the_reference_separates_it(world):
    pipe, scorer = world
    biased = load_classifier("world:biased_circle_green")
    clean = load_classifier("world:clean")
    res = scan_interventions(pipe, biased, 0, "circle", scorer, SEEDS, reference=clean, progress=False, **GEN)
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
