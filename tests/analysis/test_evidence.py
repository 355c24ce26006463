"""The user's images as evidence, on rendered world scenes: a planted reliance is found in the real data, a clean
classifier gets nothing, a shortcut that is never absent from the training distribution is not judgeable (with the
counts), images of another class are listed, too few images cannot conclude; the triangulation lines a factor's
evidence up side by side."""

import pytest
import torch

from disco_inspect import load_classifier
from disco_inspect.analysis.evidence import MIN_USABLE, image_evidence, triangulate
from disco_inspect.analysis.factors import Factor, FactorAudit, Intervention
from disco_inspect.editing.images import ImageLoad
from disco_inspect.world.scenes import generate_scenes
from disco_inspect.world.scorer import OracleScorer


@pytest.fixture(scope="module")
def scorer():
    return OracleScorer()


def _load(images):
    return ImageLoad(images=images, paths=[f"img{i:02d}.png" for i in range(len(images))])


def _circles(n=64, seed=5):
    """Rendered circles, every other factor drawn uniformly (both sides of every concept are seen)."""
    return generate_scenes(n, seed=seed, fixed={"shape": "circle"}).images


def _training_split(bias, n=64, seed=5):
    """Circles as a validation split of the classifier's own training distribution (the bias at its rate)."""
    scenes = generate_scenes(8 * n, seed=seed, bias=bias)
    return scenes.images[scenes.factors["shape"] == 0][:n]


def test_the_planted_green_background_is_found_in_the_real_data(scorer):
    ev = image_evidence(load_classifier("world:biased_circle_green"), 0, _load(_circles()), scorer)
    green = ev.real_data.slices["background=green"]
    assert green.significant and green.effect > 0.2 and green.n_present >= 5
    # the circles it puts elsewhere are listed with the class it chose, not dropped
    assert ev.off_class and all(o["top1"] != "circle" for o in ev.off_class)
    assert ev.n_read == 64 and ev.real_data.n_images == 64


def test_a_clean_classifier_gets_nothing_from_the_real_data(scorer):
    ev = image_evidence(load_classifier("world:clean"), 0, _load(_circles()), scorer)
    assert ev.real_data.significant == [] and ev.off_class == []


def test_log_odds_would_flag_a_clean_classifiers_confidence(scorer):
    """Why the real data compare probabilities by default: the clean classifier is accurate on every value, yet far
    surer of some, and log-odds call that significant."""
    ev = image_evidence(load_classifier("world:clean"), 0, _load(_circles()), scorer, scale="logodds")
    assert ev.scale == "logodds" and ev.real_data.significant


def test_a_shortcut_never_absent_from_the_training_split_is_not_judgeable(scorer):
    images = _training_split("circle: background=green @ 0.97")
    ev = image_evidence(load_classifier("world:biased_circle_green"), 0, _load(images), scorer)
    green = ev.real_data.slices["background=green"]
    assert not green.judgeable and green.n_absent < 5 and green.n_present + green.n_absent == len(images)
    assert "not judgeable on these images" in green.reason and f"{green.n_absent} without" in green.reason


def test_too_few_images_cannot_conclude(scorer):
    ev = image_evidence(load_classifier("world:clean"), 0, _load(_circles(MIN_USABLE - 1)), scorer)
    assert ev.real_data is None and ev.cannot_conclude.startswith(f"cannot conclude: {MIN_USABLE - 1} usable")
    assert ev.to_dict()["n_read"] == MIN_USABLE - 1


def _factor(concept, confirmed, effect=0.3):
    iv = Intervention("p", ["c"], 0.9, 0.6, effect, effect - 0.1, effect + 0.1, 0.001, 16, confirmed, 0.01)
    return Factor(concept, 0.2, 0.5, 0.3, 0.2, 0.4, 0.001, 0.01, None, True, intervention=iv)


def test_triangulation_lines_the_evidence_up_and_says_what_agrees(scorer):
    ev = image_evidence(load_classifier("world:biased_circle_green"), 0, _load(_circles()), scorer)
    audit = FactorAudit(
        [_factor("background=green", True), _factor("texture=dots", False, 0.0)], 0.05, 0.05, 32
    )
    out = triangulate(audit, ev)
    green, dots = out.get("background=green").evidence, out.get("texture=dots").evidence
    assert green["agree"] == ["generated", "real_data"] and not green["only_user_images"]
    assert green["real_data"]["unit"] == "your images" and green["generated"]["n"] == 16
    assert dots["agree"] == [] and not dots["generated"]["supports"]
    assert "triangulation" in out.method
    # confirmation and ranking are unchanged by the lines
    assert [f.confirmed for f in out.factors] == [f.confirmed for f in audit.factors]
    # without images: only the generated line
    assert triangulate(audit, None).get("background=green").evidence["real_data"] is None


def test_triangulation_says_when_only_the_real_data_support_a_factor(scorer):
    ev = image_evidence(load_classifier("world:biased_circle_green"), 0, _load(_circles()), scorer)
    out = triangulate(FactorAudit([_factor("background=green", False, 0.0)], 0.05, 0.05, 32), ev)
    line = out.get("background=green").evidence
    assert line["only_user_images"] and not out.get("background=green").confirmed
    assert torch.isfinite(torch.tensor(line["real_data"]["effect"]))


def test_images_of_other_classes_show_false_positive_reliance(scorer):
    """From a labelled tree: on squares and triangles, a green background raises p(circle) for the classifier that
    learned the shortcut, and not for the clean one."""
    scenes = generate_scenes(200, seed=21)
    others = _load(scenes.images[scenes.factors["shape"] != 0])
    mine = _load(_circles())
    biased = image_evidence(load_classifier("world:biased_circle_green"), 0, mine, scorer, others=others)
    assert biased.n_other == len(others.images)
    assert "background=green" in biased.other_classes.significant
    clean = image_evidence(load_classifier("world:clean"), 0, mine, scorer, others=others)
    assert clean.other_classes.significant == []
    line = triangulate(FactorAudit([_factor("background=green", True)], 0.05, 0.05, 32), biased)
    assert line.get("background=green").evidence["other_classes"]["supports"]


def test_the_edit_shortlist_takes_confirmed_then_data_supported_then_by_generated_effect():
    from types import SimpleNamespace as NS

    from disco_inspect.analysis.evidence import edit_shortlist

    def factor(concept, confirmed, effect):
        return NS(concept=concept, confirmed=confirmed, intervention=NS(effect=effect))

    factors = NS(
        factors=[
            factor("a", False, 0.3),
            factor("b", True, 0.1),
            factor("c", False, 0.2),
            factor("d", False, 0.0),
        ]
    )
    slices = {"d": NS(significant=True, effect=0.4), "c": NS(significant=False, effect=0.9)}
    evidence = NS(real_data=NS(slices=slices))
    concepts, rule = edit_shortlist(factors, evidence, 3)
    assert concepts == ["b", "d", "a"] and rule.startswith(
        "at most 3: the concepts the generated scan confirmed"
    )
    assert edit_shortlist(factors, None, 9)[0] == ["b", "a", "c", "d"]
