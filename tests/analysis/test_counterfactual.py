"""The real-image counterfactual scan on rendered world scenes: editing real circles toward a green background raises
p(circle) for the classifier trained with that shortcut; edits are measured to have taken; a concept whose edits do
not take is "not editable here", never "no effect"."""

import pytest
import torch

from disco_inspect import load_classifier
from disco_inspect.analysis.counterfactual import counterfactual_scan
from disco_inspect.world.presets import WORLD_EDIT
from disco_inspect.world.scenes import generate_scenes
from disco_inspect.world.scorer import OracleScorer

pytestmark = pytest.mark.slow
CONCEPTS = ["background=green", "texture=dots"]


@pytest.fixture(scope="module")
def inverted(world_pipeline):
    from disco_inspect.editing.inversion import invert

    images = generate_scenes(8, seed=11, fixed={"shape": "circle"}).images
    return world_pipeline, invert(
        world_pipeline, images, "a circle", num_inference_steps=20, guidance_scale=4.0, progress=False
    )


def test_editing_real_circles_toward_the_shortcut_raises_p_circle(inverted):
    pipe, inv = inverted
    res = counterfactual_scan(
        pipe,
        inv,
        load_classifier("world:biased_circle_green"),
        0,
        "circle",
        OracleScorer(),
        CONCEPTS,
        shortlist_rule="test",
        progress=False,
        edit_options={k: WORLD_EDIT[k] for k in ("cross_replace", "self_replace")},
    )
    green = res.concepts["background=green"]
    assert green.editable and green.took_rate >= 0.75
    assert green.significant and green.effect > 0.2 and green.n_images == 8
    assert res.significant[0] == "background=green"
    ex = res.examples["background=green"]
    assert ex["factor"].shape == ex["source"].shape and len(ex["p_factor"]) == 3
    # the edit kept the shape: the oracle still reads circles
    assert (OracleScorer().oracle.probabilities(ex["factor"])["shape"].argmax(1) == 0).all()
    assert res.to_dict()["shortlist_rule"] == "test"
    # what else the green-background edits moved is measured: no other background rose, every name is a bank concept
    assert set(green.also_moved) <= set(OracleScorer().concepts) - {"background=green"}
    assert not any(k.startswith("background=") for k in green.also_moved)


class _Blind(OracleScorer):
    """A scorer that reads nothing: every edit looks the same to it."""

    def score(self, images):
        return torch.zeros(len(images), len(self.concepts))


def test_edits_that_do_not_take_are_not_editable_not_no_effect(inverted):
    pipe, inv = inverted
    res = counterfactual_scan(
        pipe,
        inv,
        load_classifier("world:biased_circle_green"),
        0,
        "circle",
        _Blind(),
        CONCEPTS[:1],
        progress=False,
    )
    green = res.concepts["background=green"]
    assert not green.editable and green.effect is None and green.q_value is None
    assert green.reason.startswith("not editable here: the edits took on 0%")
    assert res.significant == [] and res.to_dict()["editable_rate"] == 0
