"""Image metrics for counterfactual edits: PSNR, SSIM, classifier-feature distance, LPIPS, CLIP scores."""

import math

import pytest
import torch
from torch import nn

from disco_inspect.editing.metrics import (
    CLASSIFIER_FEATURE_NAME,
    CLASSIFIER_LOGIT_NAME,
    FeatureDistance,
    classifier_features,
    clip_scores,
    lpips_distance,
    mean_pairwise,
    psnr,
    ssim,
)
from disco_inspect.errors import DiscoInspectError
from disco_inspect.models.classifiers import Classifier

PRE = {
    "input_size": [32, 32],
    "mean": [0.5] * 3,
    "std": [0.5] * 3,
    "interpolation": "bilinear",
    "crop_pct": 1.0,
}


def rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def tiny_classifier(seed=0):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 16), nn.ReLU(), nn.Linear(16, 3))
    return Classifier(net, PRE, ["a", "b", "c"])


# -- PSNR / SSIM ------------------------------------------------------------------------------------


def test_psnr_per_image():
    x = rand(3, 3, 16, 16) * 0.8
    same = psnr(x, x)
    assert same.shape == (3,) and (torch.isinf(same) | (same > 80)).all()
    shifted = psnr(x, x + 0.1)  # MSE 0.01 -> 20 dB
    torch.testing.assert_close(shifted, torch.full((3,), 20.0), atol=1e-3, rtol=0)
    mixed = psnr(x, torch.cat([x[:1], x[1:] + 0.1]))
    assert (torch.isinf(mixed[0]) or mixed[0] > 80) and mixed[1] == pytest.approx(20.0, abs=1e-3)


def test_ssim_per_image_and_small_images():
    x = rand(2, 3, 32, 32)
    s = ssim(x, x)
    assert s.shape == (2,)
    torch.testing.assert_close(s, torch.ones(2))
    noisy = (x + 0.2 * rand(2, 3, 32, 32, seed=1)).clamp(0, 1)
    assert (ssim(x, noisy) < 0.99).all()
    small = rand(4, 3, 8, 8)
    torch.testing.assert_close(ssim(small, small), torch.ones(4))
    d = ssim(small, rand(4, 3, 8, 8, seed=2))
    assert d.shape == (4,) and torch.isfinite(d).all() and (d < 0.9).all()
    assert ssim(rand(1, 3, 5, 7), rand(1, 3, 5, 7, seed=3)).shape == (1,)  # odd window 5 fits 5x7


def test_image_checks_are_clear():
    with pytest.raises(DiscoInspectError, match=r"same size"):
        psnr(rand(2, 3, 8, 8), rand(2, 3, 9, 8))
    with pytest.raises(DiscoInspectError, match=r"\[N, 3, H, W\]"):
        ssim(rand(3, 8, 8), rand(3, 8, 8))
    with pytest.raises(DiscoInspectError, match="at least 3x3"):
        ssim(rand(1, 3, 2, 8), rand(1, 3, 2, 8))


# -- classifier features -----------------------------------------------------------------------------


def test_classifier_features_penultimate_and_gradient():
    dist = classifier_features(tiny_classifier())
    assert isinstance(dist, FeatureDistance) and dist.name == CLASSIFIER_FEATURE_NAME
    assert "LPIPS" not in dist.name
    x = rand(4, 3, 32, 32)
    f = dist.features(x)
    assert f.shape == (4, 16)
    same = dist(x, x.clone())
    assert same.shape == (4,) and torch.equal(same, torch.zeros(4))
    y = rand(4, 3, 32, 32, seed=1).requires_grad_(True)
    d = dist(x, y)
    assert d.shape == (4,) and (d > 0).all() and (d <= 2).all()
    d.sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    # the hook is removed after each call
    clf = tiny_classifier()
    dist2 = classifier_features(clf)
    dist2.features(x)
    assert all(len(m._forward_pre_hooks) == 0 for m in clf.modules())


def test_classifier_without_linear_falls_back_to_logits():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    clf = Classifier(net, PRE, ["a", "b", "c"])
    dist = classifier_features(clf)
    assert dist.name == CLASSIFIER_LOGIT_NAME
    x = rand(2, 3, 32, 32)
    assert dist.features(x).shape == (2, 3)
    torch.testing.assert_close(dist.features(x), clf(x))
    assert torch.equal(dist(x, x), torch.zeros(2))


def test_torchscript_classifier_falls_back_to_logits():
    clf = tiny_classifier()
    scripted = Classifier(torch.jit.script(clf.module), PRE, ["a", "b", "c"])
    dist = classifier_features(scripted)
    assert dist.name == CLASSIFIER_LOGIT_NAME
    assert dist.features(rand(2, 3, 32, 32)).shape == (2, 3)


def test_mean_pairwise_is_the_mean_of_the_pairs():
    dist = classifier_features(tiny_classifier())
    x = rand(3, 3, 32, 32, seed=5)
    pairs = [dist(x[i : i + 1], x[j : j + 1]) for i, j in ((0, 1), (0, 2), (1, 2))]
    expected = float(torch.cat(pairs).mean())
    assert mean_pairwise(dist, x) == pytest.approx(expected, rel=1e-5)
    assert math.isnan(mean_pairwise(dist, x[:1]))

    # the generic __call__-based path agrees with the features-once shortcut
    class Generic(FeatureDistance):
        def __call__(self, a, b):
            return super().__call__(a, b)

    generic = Generic("generic", dist.features)
    assert float(generic.pairwise(x, batch_size=2)) == pytest.approx(expected, rel=1e-5)


# -- LPIPS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    import torchvision

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("lpips") / "alexnet.pth"
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return path


def test_lpips_with_user_backbone_never_downloads(alexnet_file, monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr("torch.hub.load_state_dict_from_url", boom)
    dist = lpips_distance(alexnet_file, net="alex")
    assert dist.name == "LPIPS (alex)"
    # the user's layers are in the LPIPS backbone
    sd = torch.load(alexnet_file, weights_only=True)
    torch.testing.assert_close(dist.module.net.slice1[0].weight, sd["features.0.weight"])
    torch.testing.assert_close(getattr(dist.module.net.slice5, "10").bias, sd["features.10.bias"])
    x = rand(2, 3, 32, 32)
    same = dist(x, x.clone())
    assert same.shape == (2,) and (same.abs() < 1e-6).all()
    y = rand(2, 3, 32, 32, seed=1).requires_grad_(True)
    d = dist(x, y)
    assert d.shape == (2,) and (d > 0).all()
    d.sum().backward()
    assert y.grad.abs().sum() > 0
    with pytest.raises(DiscoInspectError, match="pairwise"):
        dist.features(x)
    three = rand(3, 3, 32, 32, seed=2)
    with torch.no_grad():
        pairs = torch.cat([dist(three[i : i + 1], three[j : j + 1]) for i, j in ((0, 1), (0, 2), (1, 2))])
    assert mean_pairwise(dist, three) == pytest.approx(float(pairs.mean()), rel=1e-5)
    with pytest.raises(DiscoInspectError, match="at least 31x31"):
        dist(rand(1, 3, 16, 16), rand(1, 3, 16, 16))


def test_lpips_missing_file(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(DiscoInspectError, match="nope.pth") as e:
        lpips_distance(missing)
    assert "alexnet" in str(e.value) and "never downloads" in str(e.value)


def test_lpips_wrong_state_dict(tmp_path, alexnet_file):
    bad = tmp_path / "resnet.pth"
    torch.save(nn.Linear(3, 2).state_dict(), bad)
    with pytest.raises(DiscoInspectError, match="not a torchvision alexnet state dict"):
        lpips_distance(bad)
    with pytest.raises(DiscoInspectError, match="not a torchvision squeezenet1_1 state dict"):
        lpips_distance(alexnet_file, net="squeeze")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(DiscoInspectError, match="garbage.pth"):
        lpips_distance(garbage)
    with pytest.raises(DiscoInspectError, match="Unknown LPIPS network 'resnet'"):
        lpips_distance(alexnet_file, net="resnet")


# -- CLIP ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_clip():
    import open_clip
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(0)
    vision = CLIPVisionCfg(layers=1, width=32, head_width=16, patch_size=8, image_size=32)
    text = CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2, layers=1)
    model = open_clip.CLIP(embed_dim=32, vision_cfg=vision, text_cfg=text)
    return model.eval(), open_clip.get_tokenizer("ViT-B-32")


def test_clip_scores(tiny_clip):
    model, tok = tiny_clip
    mean = torch.tensor([0.48, 0.46, 0.41]).view(1, 3, 1, 1)
    std = torch.tensor([0.27, 0.26, 0.28]).view(1, 3, 1, 1)

    def preprocess(x):
        x = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
        return (x - mean) / std

    edits, sources = rand(3, 3, 40, 40), rand(3, 3, 40, 40, seed=1)
    texts = ["a plate", "the sea", "a dog"]
    with torch.no_grad():
        s = clip_scores(model, tok, preprocess, edits, sources, texts)
        assert set(s) == {"clip_t", "clip_i"}
        for v in s.values():
            assert v.shape == (3,) and ((-1 <= v) & (v <= 1)).all()
        same = clip_scores(model, tok, preprocess, edits, edits, texts)
        torch.testing.assert_close(same["clip_i"], torch.ones(3))
        # per-edit text: CLIP-T of edit 1 equals a lone call with its own prompt
        one = clip_scores(model, tok, preprocess, edits[1:2], sources[1:2], ["the sea"])
        torch.testing.assert_close(one["clip_t"], s["clip_t"][1:2], atol=1e-5, rtol=1e-5)
        shared = clip_scores(model, tok, preprocess, edits, sources[:1], "a plate", batch_size=2)
        assert shared["clip_t"][0] == pytest.approx(float(s["clip_t"][0]), abs=1e-5)
    with pytest.raises(DiscoInspectError, match="`texts`"):
        clip_scores(model, tok, preprocess, edits, sources, ["a", "b"])
    with pytest.raises(DiscoInspectError, match="`sources`"):
        clip_scores(model, tok, preprocess, edits, sources[:2], texts)
