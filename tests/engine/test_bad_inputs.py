"""Every bad input gives one DiscoInspectError naming the value and the fix, and leaves nothing half-written."""

import json
import shutil

import pytest
import torch
from torch import nn

from disco_inspect import DiscoConfig, DiscoInspectError, load_classifier, load_pipeline, train_token
from disco_inspect.cli import main
from disco_inspect.models.classifiers import Classifier
from disco_inspect.testing import TinyCNN, tiny_classifier

FAST = DiscoConfig(n_images=2, num_inference_steps=2, guidance_scale=3.0, max_iters=2)


def _no_folder(path):
    assert not path.exists(), f"{path} was left behind"


def test_unknown_class_name_suggests_near_matches(tiny_pipe, tiny_clf, tmp_path):
    with pytest.raises(DiscoInspectError, match=r"(?s)'triangel'.*triangle"):
        train_token(tiny_pipe, tiny_clf, "triangel", config=FAST, out=tmp_path / "r", progress=False)
    _no_folder(tmp_path / "r")


def test_class_index_out_of_range(tiny_pipe, tiny_clf, tmp_path):
    with pytest.raises(DiscoInspectError, match=r"(?s)7.*0.*3"):
        train_token(tiny_pipe, tiny_clf, 7, config=FAST, out=tmp_path / "r", progress=False)
    _no_folder(tmp_path / "r")


class _Spatial(nn.Module):
    def forward(self, x):
        return torch.zeros(x.shape[0], 4, 2)


def test_classifier_with_wrong_output_shape(tiny_pipe, tiny_clf, tmp_path):
    bad = Classifier(_Spatial(), tiny_clf.preprocessing, tiny_clf.label_names, source="spatial")
    with pytest.raises(DiscoInspectError, match=r"(?s)\[2, 4, 2\]|\(2, 4, 2\)|2, 4, 2"):
        train_token(tiny_pipe, bad, "circle", config=FAST, out=tmp_path / "r", progress=False)
    _no_folder(tmp_path / "r")


class _NanLater(nn.Module):
    """Finite for the shape probe and the baseline, NaN once training starts."""

    def __init__(self):
        super().__init__()
        self.inner = TinyCNN(4)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = self.inner(x)
        return out * float("nan") if self.calls > 2 else out


def test_non_finite_loss(tiny_pipe, tiny_clf, tmp_path):
    bad = Classifier(_NanLater(), tiny_clf.preprocessing, tiny_clf.label_names, source="nan")
    with pytest.raises(DiscoInspectError, match=r"(?s)not finite.*lr"):
        train_token(tiny_pipe, bad, "circle", config=FAST, out=tmp_path / "r", progress=False)
    _no_folder(tmp_path / "r")


def test_missing_and_corrupt_model_file(tmp_path):
    with pytest.raises(DiscoInspectError, match="nope.pt"):
        load_classifier(tmp_path / "nope.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(DiscoInspectError, match="corrupt.pt"):
        load_classifier(corrupt)


def test_pickled_module_needs_consent(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save(TinyCNN(4), path)
    with pytest.raises(DiscoInspectError, match="trust_pickle"):
        load_classifier(path)
    assert load_classifier(path, trust_pickle=True).num_classes == 4


def test_pipeline_folder_without_text_encoder(tiny_pipe, tmp_path):
    folder = tmp_path / "pipe"
    tiny_pipe.save_pretrained(folder)
    shutil.rmtree(folder / "text_encoder")
    index = json.loads((folder / "model_index.json").read_text())
    index["text_encoder"] = [None, None]
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(DiscoInspectError, match=r"(?s)text_encoder.*Stable Diffusion"):
        load_pipeline(folder)


def test_cli_reports_errors_in_one_line(tmp_path, capsys):
    clf = tiny_classifier()
    from disco_inspect.models.classifiers import save_torchscript_classifier

    save_torchscript_classifier(
        clf.module,
        tmp_path / "clf.pt",
        label_names=clf.label_names,
        preprocessing=clf.preprocessing.to_dict(),
    )
    code = main(
        [
            "train",
            str(tmp_path / "clf.pt"),
            "--class",
            "lobster",
            "--pipeline",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "r"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("disco-inspect: error:") and "lobster" in err
    assert "Traceback" not in err
    _no_folder(tmp_path / "r")


def test_bad_config_values_are_named():
    with pytest.raises(DiscoInspectError, match="grad_steps"):
        DiscoConfig(num_inference_steps=4, grad_steps=9)
    with pytest.raises(DiscoInspectError, match="templates"):
        DiscoConfig(templates=("a photo of a {class_name}",))
