"""Metadata in a model file is data only: an `eager` entry may name a registered architecture, never a function.

Each crafted TorchScript file below carries a `disco_inspect.json` whose `eager` entry tries to make the loader
call something it should not; the load must fail with a DiscoInspectError before anything is imported or called.
"""

import json
import os

import pytest
import torch
from torch import nn

from disco_inspect.errors import DiscoInspectError
from disco_inspect.models.classifiers import architectures, load_classifier

SCENE_CNN = "disco_inspect.world.scene_classifiers:SceneCNN"


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


def _crafted(path, eager):
    """A tiny TorchScript classifier whose metadata holds ``eager`` (as an attacker would write it)."""
    meta = {"preprocessing": {"input_size": [8, 8]}, "label_names": ["a", "b"], "eager": eager}
    torch.jit.save(
        torch.jit.script(_Tiny().eval()), str(path), _extra_files={"disco_inspect.json": json.dumps(meta)}
    )
    return path


class _Touch:
    """Unpickling this creates a directory: evidence that a pickle was loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_metadata_cannot_call_a_project_function_that_writes_files(tmp_path):
    pwned = tmp_path / "pwned.txt"
    path = _crafted(
        tmp_path / "evil.pt",
        {"factory": "disco_inspect.io:atomic_write_text", "kwargs": {"path": str(pwned), "text": "x"}},
    )
    with pytest.raises(
        DiscoInspectError,
        match=r"(?s)'disco_inspect\.io:atomic_write_text'.*evil\.pt.*"
        r"register_architecture",
    ):
        load_classifier(path)
    assert not pwned.exists()


def test_metadata_cannot_call_the_loader_to_bypass_pickle_consent(tmp_path):
    marker = tmp_path / "unpickled"
    torch.save({"payload": _Touch(marker)}, tmp_path / "evil_pickle.pt")
    path = _crafted(
        tmp_path / "evil.pt",
        {
            "factory": "disco_inspect.models.classifiers:load_classifier",
            "kwargs": {"source": str(tmp_path / "evil_pickle.pt"), "trust_pickle": True},
        },
    )
    with pytest.raises(DiscoInspectError, match=r"(?s)load_classifier.*evil\.pt"):
        load_classifier(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"num_classes": {"__class__": "x"}}, r"num_classes"),
        ({"num_classes": 2, "width": [[1]]}, r"width"),
        ({"num classes": 2}, r"num classes"),
        ("num_classes=2", r"kwargs"),
    ],
)
def test_metadata_kwargs_must_be_plain_json_scalars(tmp_path, kwargs, bad):
    path = _crafted(tmp_path / "odd.pt", {"factory": SCENE_CNN, "kwargs": kwargs})
    with pytest.raises(DiscoInspectError, match=rf"(?s){bad}.*odd\.pt"):
        load_classifier(path)


def test_a_registered_factory_must_build_a_module(tmp_path, monkeypatch):
    from disco_inspect.models.classifiers import register_architecture

    calls = []
    monkeypatch.setattr(architectures, "_ARCHITECTURES", dict(architectures._ARCHITECTURES))
    register_architecture("tests:not_a_module", lambda **kw: calls.append(kw) or object())
    path = _crafted(tmp_path / "obj.pt", {"factory": "tests:not_a_module", "kwargs": {"n": 2}})
    with pytest.raises(DiscoInspectError, match=r"(?s)'tests:not_a_module'.*obj\.pt.*`object`.*nn\.Module"):
        load_classifier(path)
    assert calls == [{"n": 2}]
    with pytest.raises(DiscoInspectError, match=r"callable"):
        register_architecture("tests:none", None)


def test_a_registered_architecture_is_rebuilt_eagerly(tmp_path, monkeypatch):
    from disco_inspect.models.classifiers import register_architecture

    monkeypatch.setattr(architectures, "_ARCHITECTURES", dict(architectures._ARCHITECTURES))
    register_architecture("tests:tiny", _Tiny)
    path = _crafted(tmp_path / "tiny.pt", {"factory": "tests:tiny", "kwargs": {}})
    clf = load_classifier(path)
    assert type(clf.module) is _Tiny


def test_shipped_world_classifier_still_loads_as_an_eager_scene_cnn():
    from disco_inspect.world.make import resolve_model
    from disco_inspect.world.scene_classifiers import SceneCNN

    clf = load_classifier(resolve_model("world:biased_circle_green"))
    assert isinstance(clf.module, SceneCNN) and not isinstance(clf.module, torch.jit.ScriptModule)
    assert clf.label_names[0] == "circle"
