"""The shipped world classifiers carry their planted bias (and the clean one does not)."""

import pytest

from disco_inspect import load_classifier
from disco_inspect.world.make import ASSETS, EXAMPLES
from disco_inspect.world.oracle import load_oracle, oracle_accuracy
from disco_inspect.world.scene_classifiers import bias_accuracy
from disco_inspect.world.scenes import generate_scenes

SPEC = EXAMPLES["biased_circle_green.pt"]


def _load(name):
    path = ASSETS / "classifiers" / name
    if not path.exists():
        pytest.skip(f"{path} not built yet (python -m disco_inspect.world.make examples)")
    return load_classifier(path)


def test_biased_classifier_uses_the_background():
    clf = _load("biased_circle_green.pt")
    assert clf.label_names == ["circle", "square", "triangle", "cross"]
    acc = bias_accuracy(clf, SPEC, n=400)
    assert acc["aligned"] >= 0.95, acc
    assert acc["conflicting"] <= acc["aligned"] - 0.15, acc


def test_clean_classifier_is_not_fooled():
    clf = _load("clean.pt")
    acc = bias_accuracy(clf, SPEC, n=400)
    assert acc["aligned"] >= 0.97 and acc["conflicting"] >= 0.97, acc


def test_shipped_oracle_reads_every_factor():
    scenes = generate_scenes(500, seed=777)
    acc = oracle_accuracy(load_oracle(), scenes.images, scenes.factors)
    assert min(acc.values()) >= 0.98, acc


@pytest.mark.parametrize("spatial", [False, True])
def test_world_classifier_file_loads_back_as_an_eager_module(tmp_path, spatial):
    """The TorchScript file names its architecture, so loading rebuilds a hookable SceneCNN (GradCAM works)."""
    import torch

    from disco_inspect import load_classifier
    from disco_inspect.analysis.attribution import last_conv_layer
    from disco_inspect.models.classifiers import Classifier, Preprocessing
    from disco_inspect.world.scene_classifiers import PREPROCESSING, SceneCNN, save_world_classifier
    from disco_inspect.world.scenes import SHAPES

    torch.manual_seed(0)
    clf = Classifier(
        SceneCNN(width=8, spatial=spatial).eval(), Preprocessing.from_dict(PREPROCESSING), list(SHAPES)
    )
    save_world_classifier(clf, tmp_path / "c.pt")
    loaded = load_classifier(tmp_path / "c.pt")
    assert isinstance(loaded.module, SceneCNN) and last_conv_layer(loaded) is not None
    x = torch.rand(3, 3, 32, 32)
    assert torch.allclose(loaded(x), clf(x), atol=1e-6)


@pytest.mark.parametrize("name", [n for n, b in EXAMPLES.items() if b])
def test_every_shipped_biased_classifier_leans_on_its_planted_factor(name):
    acc = bias_accuracy(load_classifier(ASSETS / "classifiers" / name), EXAMPLES[name], n=400)
    assert acc["aligned"] > 0.95 and acc["conflicting"] < acc["aligned"] - 0.25, acc
