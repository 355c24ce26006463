"""Classifier loading, differentiable preprocessing and class lookup (tiny models only)."""

import json
import os

import pytest
import timm
import torch
from torch import nn

from disco_inspect.errors import DiscoInspectError
from disco_inspect.models.classifiers import (
    Classifier,
    Preprocessing,
    load_classifier,
    load_label_file,
    save_torchscript_classifier,
)
from disco_inspect.testing import TINY_LABELS, TinyCNN

LABELS = list(TINY_LABELS)  # circle, square, triangle, cross
PRE = Preprocessing(
    input_size=(32, 32), interpolation="bilinear", crop_pct=1.0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)
)


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return TinyCNN(4)


@pytest.fixture
def clf(cnn):
    return Classifier(cnn, PRE, LABELS, source="tiny")


def _images(n=2, h=40, w=48, seed=1):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


# --- preprocessing ---------------------------------------------------------------------------------


def test_preprocessing_shape_normalisation_and_gradient():
    pre = Preprocessing(input_size=(24, 20), interpolation="bicubic", crop_pct=0.875)
    x = _images(h=50, w=70).requires_grad_(True)
    out = pre(x)
    assert out.shape == (2, 3, 24, 20)
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0

    flat = Preprocessing(input_size=(8, 8), mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    ones = flat(torch.ones(1, 3, 8, 8))
    assert torch.allclose(ones[0, :, 0, 0], torch.tensor([1.0, 3.0, 0.5]))


def test_preprocessing_matches_torchvision():
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    x = _images(n=1, h=40, w=56)
    pre = Preprocessing(input_size=(32, 32), interpolation="bicubic", crop_pct=0.875)
    ref = TF.resize(x, 36, interpolation=InterpolationMode.BICUBIC, antialias=True)  # floor(32 / 0.875) = 36
    ref = TF.normalize(TF.center_crop(ref, [32, 32]), list(pre.mean), list(pre.std))
    torch.testing.assert_close(pre(x), ref, atol=1e-5, rtol=0)


def test_crop_pct_is_a_centre_crop():
    x = _images(n=1, h=16, w=16)
    pre = Preprocessing(
        input_size=(8, 8), crop_pct=0.5, mean=(0, 0, 0), std=(1, 1, 1)
    )  # resize to 16 = no-op
    torch.testing.assert_close(pre(x), x[..., 4:12, 4:12])
    wide = Preprocessing(
        input_size=(8, 8), crop_pct=1.0, interpolation="nearest", mean=(0, 0, 0), std=(1, 1, 1)
    )
    assert wide(_images(n=1, h=8, w=24)).shape == (1, 3, 8, 8)
    torch.testing.assert_close(wide(x[..., :8, :]), x[..., :8, 4:12])  # 8x16 -> centre 8x8


def test_preprocessing_round_trip_and_validation():
    pre = Preprocessing(input_size=(10, 12), interpolation="nearest", crop_pct=0.9)
    assert Preprocessing.from_dict(json.loads(json.dumps(pre.to_dict()))) == pre
    assert Preprocessing.from_dict({"input_size": 64}).input_size == (64, 64)
    with pytest.raises(DiscoInspectError, match=r"interpolation.*'lanczos'"):
        Preprocessing(interpolation="lanczos")
    with pytest.raises(DiscoInspectError, match=r"crop_pct.*1\.5"):
        Preprocessing(crop_pct=1.5)
    with pytest.raises(DiscoInspectError, match=r"mean"):
        Preprocessing(mean=(0.5,))
    with pytest.raises(DiscoInspectError, match=r"'size'.*input_size"):
        Preprocessing.from_dict({"size": 3})


def test_preprocessing_from_timm():
    model = timm.create_model("test_resnet", pretrained=False, num_classes=3)
    pre = Preprocessing.from_timm(model)
    assert pre.input_size == (160, 160) and pre.interpolation == "bilinear"
    assert pre.crop_pct == pytest.approx(0.95) and pre.mean == (0.5, 0.5, 0.5)


# --- classifier --------------------------------------------------------------------------------------


def test_classifier_is_frozen_but_input_gets_gradients(clf):
    assert all(not p.requires_grad for p in clf.parameters())
    x = _images().requires_grad_(True)
    logits = clf(x)
    assert logits.shape == (2, 4)
    logits[:, 2].sum().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is None for p in clf.parameters())
    clf.train()
    assert not clf.module.training
    desc = json.loads(json.dumps(clf.describe()))
    assert (
        desc["num_classes"] == 4
        and desc["source"] == "tiny"
        and desc["preprocessing"]["input_size"] == [32, 32]
    )


def test_resolve_class(clf):
    assert clf.resolve_class("Triangle") == 2
    assert clf.resolve_class(" CROSS ") == 3
    assert clf.resolve_class(1) == 1
    assert clf.resolve_class("0") == 0
    with pytest.raises(DiscoInspectError, match=r"(?s)'triangel'.*'triangle'.*0\.\.3"):
        clf.resolve_class("triangel")
    with pytest.raises(DiscoInspectError, match=r"(?s)7.*0\.\.3"):
        clf.resolve_class(7)
    with pytest.raises(DiscoInspectError, match=r"(?s)-1.*0\.\.3"):
        clf.resolve_class(-1)
    with pytest.raises(DiscoInspectError, match=r"'12'.*0\.\.3"):
        clf.resolve_class("12")


def test_resolve_class_synonyms_and_separators(cnn):
    labels = [
        "tiger cat",
        "American lobster, Northern lobster, Maine lobster, Homarus americanus",
        "great_white-shark",
        "crane",
    ]
    c = Classifier(cnn, PRE, labels)
    assert c.resolve_class("TigerCat") == 0
    assert c.resolve_class("tiger_cat") == 0
    assert c.resolve_class("maine lobster") == 1
    assert c.resolve_class("Great White Shark") == 2
    assert c.class_name(1) == "American lobster"
    assert c.class_name(2) == "great white-shark"
    with pytest.raises(DiscoInspectError, match=r"(?s)'lobster'.*'American lobster' \(1\)"):
        c.resolve_class("lobster")


def test_imagenet_labels_and_ambiguity(tmp_path):
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False)  # 1000 classes
    torch.save(model.state_dict(), tmp_path / "in1k.pth")
    c = load_classifier(tmp_path / "in1k.pth", arch="test_resnet", check=False)
    assert c.num_classes == 1000
    assert c.resolve_class("Maine lobster") == 122
    assert c.class_name(122) == "American lobster"
    assert c.resolve_class("tabby cat") == 281
    with pytest.raises(DiscoInspectError, match=r"(?s)ambiguous.*134.*517"):
        c.resolve_class("crane")


def test_wrong_output_shape_and_label_count(cnn):
    class Spatial(nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 4, 2)

    with pytest.raises(DiscoInspectError, match=r"(?s)\[2, 4, 2\].*\[batch, num_classes\]"):
        Classifier(Spatial(), PRE, LABELS).check_output()
    with pytest.raises(DiscoInspectError, match=r"(?s)\[2, 4, 2\]"):
        load_classifier(Spatial())
    with pytest.raises(DiscoInspectError, match=r"(?s)4 classes.*3 label names"):
        load_classifier(cnn, labels=LABELS[:3], preprocessing=PRE.to_dict())


def test_module_without_labels_gets_placeholder_names(cnn):
    c = load_classifier(cnn, preprocessing={"input_size": [32, 32]})
    assert c.label_names == ["class_0", "class_1", "class_2", "class_3"]
    assert c.preprocessing.input_size == (32, 32) and c.preprocessing.interpolation == "bicubic"


def test_label_files(tmp_path, cnn):
    (tmp_path / "l.txt").write_text("circle\nsquare\ntriangle\ncross\n\n")
    (tmp_path / "l.json").write_text(
        json.dumps({"1": "square", "0": "circle", "3": "cross", "2": "triangle"})
    )
    (tmp_path / "gap.json").write_text(json.dumps({"0": "a", "2": "b"}))
    assert load_label_file(tmp_path / "l.txt") == LABELS
    assert load_label_file(tmp_path / "l.json") == LABELS
    with pytest.raises(DiscoInspectError, match=r"gap\.json.*missing \[1\]"):
        load_label_file(tmp_path / "gap.json")
    c = load_classifier(cnn, labels=str(tmp_path / "l.json"), preprocessing=PRE.to_dict())
    assert c.label_names == LABELS


def test_existing_classifier_with_overrides(clf):
    assert load_classifier(clf) is clf
    other = load_classifier(clf, labels=["a", "b", "c", "d"], preprocessing={"crop_pct": 0.5})
    assert other.label_names == ["a", "b", "c", "d"] and other.preprocessing.crop_pct == 0.5
    assert other.preprocessing.input_size == (32, 32) and other.module is clf.module


# --- files -------------------------------------------------------------------------------------------


def test_torchscript_round_trip(tmp_path, clf):
    path = save_torchscript_classifier(
        clf.module, tmp_path / "sub" / "clf.model", label_names=LABELS, preprocessing=PRE.to_dict()
    )
    assert [p.name for p in path.parent.iterdir()] == ["clf.model"]  # no temp file left behind
    loaded = load_classifier(path)
    assert loaded.label_names == LABELS and loaded.preprocessing == PRE
    assert loaded.source.startswith("torchscript:")
    x = _images()
    assert torch.equal(loaded(x), clf(x))
    # explicit preprocessing beats the file's metadata
    assert load_classifier(path, preprocessing={"crop_pct": 0.8}).preprocessing.crop_pct == 0.8


def test_torchscript_falls_back_to_tracing(tmp_path, cnn):
    class Unscriptable(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = cnn

        def forward(self, x, *rest):  # varargs cannot be scripted
            return self.inner(x)

    path = save_torchscript_classifier(
        Unscriptable(), tmp_path / "t.pt", label_names=LABELS, preprocessing=PRE
    )
    loaded = load_classifier(path)
    x = _images()
    torch.testing.assert_close(loaded(x), Classifier(cnn, PRE, LABELS)(x))


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_state_dict_with_timm_arch(tmp_path, fmt):
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=3).eval()
    path = tmp_path / f"w.{fmt}"
    if fmt == "pt":
        torch.save({"epoch": 3, "state_dict": model.state_dict()}, path)  # a training checkpoint
    else:
        from safetensors.torch import save_file

        save_file(model.state_dict(), str(path))
    c = load_classifier(path, arch="test_resnet", labels=["a", "b", "c"])
    assert c.num_classes == 3 and c.preprocessing == Preprocessing.from_timm(model)
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(c(x), model(Preprocessing.from_timm(model)(x)))


def test_state_dict_errors(tmp_path, cnn):
    path = tmp_path / "sd.pt"
    torch.save(cnn.state_dict(), path)
    with pytest.raises(DiscoInspectError, match=r"(?s)sd\.pt.*arch="):
        load_classifier(path)
    with pytest.raises(DiscoInspectError, match=r"(?s)'test_resnet'.*missing keys: conv1"):
        load_classifier(path, arch="test_resnet")
    with pytest.raises(DiscoInspectError, match=r"(?s)'resnet_nope'.*did you mean"):
        load_classifier(path, arch="resnet_nope")


def test_pickled_module_needs_consent(tmp_path, cnn):
    path = tmp_path / "whole.pt"
    torch.save(cnn, path)
    with pytest.raises(
        DiscoInspectError, match=r"(?s)whole\.pt.*arbitrary code.*trust_pickle=True.*--trust-pickle"
    ):
        load_classifier(path)
    c = load_classifier(path, trust_pickle=True, labels=LABELS, preprocessing=PRE.to_dict())
    x = _images()
    assert torch.equal(c(x), Classifier(cnn, PRE, LABELS)(x))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's legacy ONNX exporter
def test_onnx_round_trip(tmp_path, cnn):
    pytest.importorskip("onnx2torch")
    path = tmp_path / "m.onnx"
    try:
        torch.onnx.export(
            cnn.eval(),
            torch.rand(1, 3, 32, 32),
            str(path),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
            dynamo=False,
        )
    except (ImportError, ModuleNotFoundError) as e:  # pragma: no cover - depends on the torch build
        pytest.skip(f"torch.onnx.export needs a missing package: {e}")
    c = load_classifier(
        path, labels=LABELS, preprocessing={"interpolation": "bilinear", "mean": [0.5] * 3, "std": [0.5] * 3}
    )
    assert c.preprocessing.input_size == (32, 32)  # read from the graph's static input shape
    x = _images()
    torch.testing.assert_close(c(x), Classifier(cnn, PRE, LABELS)(x), atol=1e-4, rtol=0)


def test_missing_corrupt_and_truncated_files(tmp_path, cnn):
    with pytest.raises(DiscoInspectError, match=r"nope\.pt.*does not exist"):
        load_classifier(tmp_path / "nope.pt")
    rand = tmp_path / "random.bin"
    rand.write_bytes(os.urandom(4096))
    with pytest.raises(DiscoInspectError, match=r"(?s)random\.bin.*TorchScript.*state dict") as info:
        load_classifier(rand, arch="test_resnet")
    assert isinstance(info.value.__cause__, Exception)
    good = tmp_path / "good.pt"
    torch.save(cnn.state_dict(), good)
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:300])
    with pytest.raises(DiscoInspectError, match=r"(?s)cut\.pt.*TorchScript"):
        load_classifier(tmp_path / "cut.pt", arch="test_resnet")
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(DiscoInspectError, match=r"bad\.safetensors"):
        load_classifier(tmp_path / "bad.safetensors", arch="test_resnet")
    (tmp_path / "bad.onnx").write_bytes(os.urandom(512))
    pytest.importorskip("onnx")
    with pytest.raises(DiscoInspectError, match=r"bad\.onnx"):
        load_classifier(tmp_path / "bad.onnx")
    with pytest.raises(DiscoInspectError, match=r"(?s)int.*nn\.Module"):
        load_classifier(42)


# --- Hugging Face image models: preprocessing is the image processor's data --------------------------


@pytest.fixture
def hf_vit(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=3,
        id2label={0: "cat", 1: "dog", 2: "lobster"},
    )
    model = transformers.ViTForImageClassification(cfg).eval()
    folder = tmp_path / "vit"
    model.save_pretrained(folder)
    transformers.ViTImageProcessor(
        image_mean=[0.5] * 3, image_std=[0.5] * 3, size={"height": 32, "width": 32}, resample=2
    ).save_pretrained(folder)
    return transformers.ViTForImageClassification.from_pretrained(folder).eval(), folder


def test_hf_model_takes_preprocessing_and_labels_from_its_processor_folder(hf_vit):
    model, folder = hf_vit
    c = load_classifier(model)  # config.name_or_path is the local folder holding preprocessor_config.json
    assert c.preprocessing.mean == (0.5, 0.5, 0.5) and c.preprocessing.std == (0.5, 0.5, 0.5)
    assert c.preprocessing.input_size == (32, 32) and c.preprocessing.interpolation == "bilinear"
    assert c.label_names == ["cat", "dog", "lobster"]
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(c(x), model(c.preprocessing(x)).logits)


def test_hf_model_with_an_explicit_image_processor(hf_vit):
    from transformers import ViTImageProcessor

    model, folder = hf_vit
    model.config.name_or_path = ""  # as if built in memory: nothing to read beside it
    proc = ViTImageProcessor(
        image_mean=[0.1, 0.2, 0.3], image_std=[0.4, 0.5, 0.6], size={"height": 24, "width": 24}, resample=3
    )
    c = load_classifier(model, image_processor=proc, check=False)  # 24 px would not fit this 32 px ViT
    assert c.preprocessing.mean == pytest.approx((0.1, 0.2, 0.3)) and c.preprocessing.std == pytest.approx(
        (0.4, 0.5, 0.6)
    )
    assert c.preprocessing.input_size == (24, 24) and c.preprocessing.interpolation == "bicubic"
    assert load_classifier(model, image_processor=folder).preprocessing.mean == (
        0.5,
        0.5,
        0.5,
    )  # a local folder
    # explicit preprocessing still wins over the processor
    assert (
        load_classifier(
            model, image_processor=proc, preprocessing={"mean": [0.5] * 3}, check=False
        ).preprocessing.mean
        == (0.5,) * 3
    )
    with pytest.raises(DiscoInspectError, match=r"(?s)nowhere.*preprocessor_config\.json"):
        load_classifier(model, image_processor=folder / "nowhere")


def test_preprocessing_from_image_processor_configs():
    crop = Preprocessing.from_image_processor(
        {
            "size": {"shortest_edge": 256},
            "crop_size": {"height": 224, "width": 224},
            "do_center_crop": True,
            "resample": 3,
            "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225],
        }
    )
    assert (
        crop.input_size == (224, 224)
        and crop.crop_pct == pytest.approx(0.875)
        and crop.interpolation == "bicubic"
    )
    assert crop.resize_size(300, 400) == (256, 341)
    plain = Preprocessing.from_image_processor({"size": 48, "do_normalize": False, "resample": 0})
    assert plain.input_size == (48, 48) and plain.mean == (0, 0, 0) and plain.std == (1, 1, 1)
    assert plain.interpolation == "nearest"
    with pytest.raises(DiscoInspectError, match=r"image_mean.*\[0\.5\]"):
        Preprocessing.from_image_processor({"image_mean": [0.5]})
